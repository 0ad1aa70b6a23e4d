/* storelib: see storelib.h. */
#include "storelib.h"

#include "stmts.h"
#include "testlib.h"

PGresult *
st_exchange(PGconn *c, const char *types, const char *free_, const char *outcomes)
{
	return t_exec(c, stmt_exchange, "w", "{q}", types, free_, "100", "60000", outcomes, NULL);
}
