-- pgjobd ctl retention STATE KEEP: the SQL API's set_retention, which
-- validates both.  $1 state  $2 keep (interval text).
SELECT $1::text AS state, pgjobd.set_retention($1::text, $2::interval) AS keep
