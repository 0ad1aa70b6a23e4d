-- Sent once on every `pgjobd ctl` connection.  Timestamps and intervals in
-- the one format the tables shorten to the second and scripts can parse,
-- whatever the role's or database's defaults are.
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
