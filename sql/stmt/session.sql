-- Sent once on every new daemon connection, before anything else.
--
-- Plan each prepared statement once.  Left to itself the server keeps
-- re-planning the lease at every execution (a custom plan looks cheaper
-- than the generic one to its estimates), which took 40% of the
-- statement's time in make bench.  The generic plans are safe at every
-- table size: the statements read only pgjobd.live (the backlog), and
-- every row they change is found by `id = ANY (ARRAY(...))`, an index
-- probe per id whatever the estimates, so no plan can turn into a join
-- over a whole table.  tests/check_storage.c proves it with EXPLAIN under
-- both plan modes beside a million finished and 100000 scheduled jobs.
SET plan_cache_mode = force_generic_plan;
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
