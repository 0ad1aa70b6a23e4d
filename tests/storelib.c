/* storelib: see storelib.h. */
#include "storelib.h"

#include "stmts.h"
#include "testlib.h"

PGconn *
st_fresh(const char *name)
{
	t_use_fresh_db(name);
	t_migrate(NULL, NULL, T_MIGRATED);
	return t_connect();
}

PGresult *
st_exchange(PGconn *c, const char *types, const char *free_, const char *outcomes)
{
	return t_exec(c, stmt_exchange, "w", "{q}", types, free_, "100", "60000", outcomes, NULL);
}
