-- pgjobd ctl cancel: $1 the job id.  done: whether it was cancelled.
SELECT pgjobd.cancel($1::bigint) AS done
