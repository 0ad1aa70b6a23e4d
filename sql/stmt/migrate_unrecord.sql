-- --migrate --to N: migration $1 (version) was undone.
DELETE FROM pgjobd.migrations WHERE version = $1::int
