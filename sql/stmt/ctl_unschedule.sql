-- pgjobd ctl unschedule: $1 the schedule's name.  done: whether it existed.
SELECT pgjobd.unschedule($1::text) AS done
