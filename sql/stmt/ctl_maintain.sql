-- pgjobd ctl maintain: one run of the periodic upkeep, with its counts.
SELECT m.promoted, m.expired, m.created, m.dropped, m.skipped
  FROM pgjobd.maintain() m
