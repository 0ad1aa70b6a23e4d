-- pgjobd ctl schedule: the SQL API's schedule, which validates everything
-- and creates or replaces.  $1 name  $2 cron  $3 type  $4 payload (JSON
-- text)  $5 queue  $6 time zone  $7 priority  $8 max_attempts
-- $9 timeout in ms  $10 missed  $11 overlap.  next_run: its next slot.
SELECT pgjobd.schedule($1::text, $2::text, $3::text, $4::jsonb, $5::text, $6::text, $7::int,
                       $8::int, $9::bigint * interval '1 ms', $10::text, $11::text) AS next_run
