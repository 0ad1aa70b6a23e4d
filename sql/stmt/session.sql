-- Sent once on every new daemon connection, before anything else.
--
-- Plan each prepared statement once.  Left to itself the server keeps
-- re-planning the lease at every execution (a custom plan looks cheaper
-- than the generic one to its estimates), which took 40% of the
-- statement's time in make bench.  The statements read only pgjobd.live
-- (the backlog), and every row they change is found by
-- `id = ANY (ARRAY(...))`, an index probe per id, so no plan can turn into
-- a join over a whole table.
SET plan_cache_mode = force_generic_plan;
-- But a plan made once is made for the table of that moment: a daemon
-- that starts on an empty queue would keep a sequential scan of
-- pgjobd.live for the lease and the outcomes (the cheapest way to read an
-- empty table), and then scan the whole backlog at every exchange once
-- jobs pour in (the empty-table drain of make bench ran at half the rate
-- beside 10 million rows).  Every statement here has an index for each
-- table it reads, so no sequential scan is ever the right plan at any
-- size: the planner takes one only where no index can serve (the JSON of
-- the outcomes, the few rows of pgjobd.retention it reads by key anyway).
-- tests/check_plans.c proves the plans with EXPLAIN under these
-- settings, made on an empty table and on one beside a million finished
-- and 100000 scheduled jobs.
SET enable_seqscan = off;
-- That setting prices the scans it disfavours so high that every
-- statement still holding one (of a small catalog, inside maintain())
-- would pass jit_above_cost and be compiled, 70 ms each; and the daemon's
-- statements are short, for which JIT never pays anyway.
SET jit = off;
-- Names in the statements resolve in pg_catalog (and pgjobd, always
-- written out) only: nothing planted in public, nor a schema put first by
-- the login's own settings (options=-csearch_path=...), is ever called
-- (CVE-2018-1058).  Set before anything is prepared.
SET search_path = pg_catalog, pg_temp;
-- New due jobs (payload: the queue) and cancelled jobs (payload: the id).
LISTEN pgjobd_enqueue;
LISTEN pgjobd_cancel;
-- A schedule of a queue (the payload) was created, changed or removed.
LISTEN pgjobd_schedule;
