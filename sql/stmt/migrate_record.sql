-- --migrate: record migration $1 (version) named $2 as applied.
INSERT INTO pgjobd.migrations (version, name) VALUES ($1, $2)
