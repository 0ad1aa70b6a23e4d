-- pgjobd schema, version 2: each worker row lists the job types its daemon
-- maps to a handler, so that `pgjobd ctl doctor` can find jobs that no
-- running daemon would ever lease.  Written by every heartbeat.
ALTER TABLE pgjobd.workers ADD COLUMN types text[] NOT NULL DEFAULT '{}';
