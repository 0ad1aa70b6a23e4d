-- pgjobd ctl schedules: every schedule, by name.
SELECT s.name, s.queue, s.cron, s.time_zone, s.type, s.enabled, s.next_run, s.last_run,
       s.last_job_state, s.last_error
  FROM pgjobd.schedules s
 ORDER BY s.name
