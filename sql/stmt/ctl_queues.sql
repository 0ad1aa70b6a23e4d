-- pgjobd ctl status: the queues.  Every column of pgjobd.queue_stats, so
-- that a state a later schema adds shows up without a change here.
SELECT * FROM pgjobd.queue_stats ORDER BY queue
