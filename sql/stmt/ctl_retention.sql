-- pgjobd ctl retention: how long finished jobs are kept, per final state.
SELECT r.state, r.keep
  FROM pgjobd.retention r
 ORDER BY array_position(ARRAY['done', 'dead', 'cancelled', 'expired'], r.state)
