-- pgjobd ctl grant: $1 the role, $2 the type ('*': every type).  done:
-- whether the right is new.  pgjobd.grant_enqueue refuses what it cannot take.
SELECT pgjobd.grant_enqueue($1::text, $2::text) AS done
