-- Why cancel or retry did nothing: the job's state, no row when there is
-- no such job.  $1 the job id.
SELECT j.state FROM pgjobd.jobs j WHERE j.id = $1::bigint
