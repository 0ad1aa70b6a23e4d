-- pgjobd ctl enqueue: the SQL API's enqueue, which validates everything.
-- $1 type  $2 payload (JSON text)  $3 queue  $4 run_at (timestamptz text)
-- $5 run in this many ms (used when $4 is NULL; both NULL: now)
-- $6 priority  $7 max_attempts  $8 idempotency key  $9 timeout in ms
SELECT pgjobd.enqueue($1::text, $2::jsonb, $3::text,
                      coalesce($4::timestamptz, now() + $5::bigint * interval '1 ms'),
                      $6::int, $7::int, $8::text, $9::bigint * interval '1 ms') AS id
