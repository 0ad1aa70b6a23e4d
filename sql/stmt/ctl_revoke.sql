-- pgjobd ctl revoke: $1 the role, $2 the type.  done: whether there was
-- such a right to take back.
SELECT pgjobd.revoke_enqueue($1::text, $2::text) AS done
