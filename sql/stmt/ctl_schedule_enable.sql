-- pgjobd ctl enable / disable: $1 the schedule's name, $2 true to enable,
-- false to disable.  done: whether it exists.
SELECT pgjobd.schedule_enable($1::text, $2::boolean) AS done
