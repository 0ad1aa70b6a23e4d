-- pgjobd ctl grants: who may enqueue which types (pgjobd.grant_enqueue),
-- by role, then type.
SELECT g.grantee::text AS role, g.type FROM pgjobd.enqueue_grants g ORDER BY 1, 2
