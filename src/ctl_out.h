/*
 * ctl_out: how `pgjobd ctl` prints query results, for people (aligned
 * tables, one record per line, long text cut short) and for scripts (JSON).
 *
 * Everything is driven by the result's column names and types, so that a
 * verb is one statement and one call here: the SQL names its columns the
 * way the output shows them.  JSON values follow the column's type: integers
 * and booleans as such, json/jsonb as they are, text[] as arrays of strings,
 * SQL NULL as null, everything else as the string PostgreSQL printed.  The
 * connection's client_encoding must be UTF8 (ctl sets it), so that every
 * string is valid UTF-8 and needs only JSON's escapes.
 */
#ifndef PGJOBD_CTL_OUT_H
#define PGJOBD_CTL_OUT_H

#include <libpq-fe.h>
#include <stdio.h>

#include "buf.h"

/* Cells of a table are cut to this many characters ("..." marks the cut),
 * unless the caller passes 0 (`--full`). */
#define CTLOUT_CELL_MAX 48

/* An aligned table: a header row of the column names, then one line per
 * row; numbers right-aligned, NULL as "-", line breaks as blanks, and
 * timestamps and intervals to the second.  "(none)" when there are no rows. */
void ctlout_table(FILE *f, const PGresult *res, size_t cell_max);

/* Row ROW as "name  value" lines, values in full; a value spanning lines
 * continues indented under the first. */
void ctlout_record(FILE *f, const PGresult *res, int row);

/* Row ROW as a JSON object. */
void ctlout_json_object(struct buf *b, const PGresult *res, int row);
/* Every row as a JSON array of objects. */
void ctlout_json_array(struct buf *b, const PGresult *res);

#endif
