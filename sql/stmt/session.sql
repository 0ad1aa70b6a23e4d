-- Sent once on every new daemon connection, before anything else.
--
-- Plan each prepared statement once.  Left to itself the server keeps
-- re-planning the lease at every execution (a custom plan looks cheaper
-- than the generic one to its estimates), which took 40% of the
-- statement's time in make bench; the generic plan is the same index probe
-- per (queue, type).
SET plan_cache_mode = force_generic_plan;
-- New due jobs (payload: the queue) and cancelled jobs (payload: the id).
LISTEN pgjobd_enqueue;
LISTEN pgjobd_cancel;
-- A schedule of a queue (the payload) was created, changed or removed.
LISTEN pgjobd_schedule;
