-- pgjobd ctl retry: $1 the job id.  done: whether it is ready again.
SELECT pgjobd.retry($1::bigint) AS done
