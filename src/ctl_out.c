/* ctl_out: see ctl_out.h. */
#include "ctl_out.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/*
 * Type OIDs of the built-in types we print specially (pg_type.dat; fixed
 * since they were assigned, and the server headers that name them are not
 * a client's dependency).
 */
enum {
	OID_BOOL = 16,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_JSON = 114,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_TEXT_ARRAY = 1009,
	OID_TIMESTAMP = 1114,
	OID_TIMESTAMPTZ = 1184,
	OID_INTERVAL = 1186,
	OID_NUMERIC = 1700,
	OID_JSONB = 3802,
};

static bool
is_integer(Oid t)
{
	return t == OID_INT2 || t == OID_INT4 || t == OID_INT8;
}

static bool
is_number(Oid t)
{
	return is_integer(t) || t == OID_NUMERIC || t == OID_FLOAT4 || t == OID_FLOAT8;
}

/* Characters (UTF-8 code points) in S, the width a terminal gives it for
 * all but wide scripts. */
static size_t
width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/*
 * The items of a one-dimensional text[] literal as PostgreSQL prints it:
 * {a,"b c",NULL,"x\"y"}.  Returns a NULL-terminated vector of malloc'd
 * strings; an SQL NULL item is kept as the string "NULL" only when quoted,
 * and dropped otherwise (the arrays we print, queue and type names, hold
 * no NULLs).
 */
static char **
text_array_items(const char *lit)
{
	char **items = xcalloc(1, sizeof *items);
	size_t n = 0;
	const char *p = lit;

	if (*p == '{')
		p++;
	while (*p && *p != '}') {
		struct buf item = {0};
		bool quoted = *p == '"';

		if (quoted) {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				buf_add(&item, p, 1);
			}
			if (*p == '"')
				p++;
		} else {
			size_t len = strcspn(p, ",}");
			buf_add(&item, p, len);
			p += len;
		}
		if (!quoted && !strcmp(item.p ? item.p : "", "NULL")) {
			free(item.p);
		} else {
			items = xreallocarray(items, n + 2, sizeof *items);
			items[n++] = buf_take(&item);
			items[n] = NULL;
		}
		if (*p == ',')
			p++;
	}
	return items;
}

static void
free_items(char **items)
{
	for (char **i = items; *i; i++)
		free(*i);
	free(items);
}

/* Drop the fraction of the seconds in a timestamp or interval as the
 * default DateStyle/IntervalStyle print them ("12:34:56.789012"). */
static void
strip_fraction(char *s)
{
	char *dot = strchr(s, '.');

	while (dot) {
		char *end = dot + 1;
		while (*end >= '0' && *end <= '9')
			end++;
		if (dot - s >= 3 && dot[-3] == ':' && end > dot + 1) {
			memmove(dot, end, strlen(end) + 1);
			dot = strchr(dot, '.');
		} else {
			dot = strchr(dot + 1, '.');
		}
	}
}

/* Every run of white space or control characters becomes one blank, and
 * the ends are trimmed: a cell is one line. */
static void
one_line(char *s)
{
	char *w = s;
	bool blank = false;

	for (char *r = s; *r; r++) {
		unsigned char c = (unsigned char)*r;
		if (c <= 0x20 || c == 0x7f) {
			blank = w != s;
			continue;
		}
		if (blank)
			*w++ = ' ';
		blank = false;
		*w++ = *r;
	}
	*w = '\0';
}

/* Cut S to MAX characters, the last three of them "...". */
static void
cut(char *s, size_t max)
{
	size_t n = 0;

	if (max < 4 || width(s) <= max)
		return;
	for (char *p = s; *p; p++) {
		if (((unsigned char)*p & 0xC0) != 0x80 && n++ == max - 3) {
			strcpy(p, "...");
			return;
		}
	}
}

/* The text of one cell for people (malloc'd). */
static char *
cell(const PGresult *res, int row, int col, bool oneline, size_t max)
{
	Oid t = PQftype(res, col);
	char *s;

	if (PQgetisnull(res, row, col))
		return xstrdup("-");
	if (t == OID_TEXT_ARRAY) {
		char **items = text_array_items(PQgetvalue(res, row, col));
		struct buf b = {0};
		for (char **i = items; *i; i++)
			buf_printf(&b, "%s%s", i == items ? "" : ",", *i);
		free_items(items);
		s = buf_take(&b);
	} else {
		s = xstrdup(PQgetvalue(res, row, col));
	}
	if (t == OID_TIMESTAMP || t == OID_TIMESTAMPTZ || t == OID_INTERVAL)
		strip_fraction(s);
	if (oneline)
		one_line(s);
	cut(s, max);
	return s;
}

void
ctlout_table(FILE *f, const PGresult *res, size_t cell_max)
{
	int nrows = PQntuples(res), ncols = PQnfields(res);
	char **cells;
	size_t *w;

	if (nrows == 0) {
		fputs("(none)\n", f);
		return;
	}
	cells = xcalloc((size_t)nrows * (size_t)ncols, sizeof *cells);
	w = xcalloc((size_t)ncols, sizeof *w);
	for (int c = 0; c < ncols; c++)
		w[c] = width(PQfname(res, c));
	for (int r = 0; r < nrows; r++) {
		for (int c = 0; c < ncols; c++) {
			char *s = cell(res, r, c, true, cell_max);
			size_t n = width(s);
			cells[r * ncols + c] = s;
			if (n > w[c])
				w[c] = n;
		}
	}
	for (int r = -1; r < nrows; r++) {
		struct buf line = {0};
		for (int c = 0; c < ncols; c++) {
			const char *s = r < 0 ? PQfname(res, c) : cells[r * ncols + c];
			int pad = (int)(w[c] - width(s));
			bool last = c == ncols - 1;
			const char *sep = c ? "  " : "";
			if (is_number(PQftype(res, c)))
				buf_printf(&line, "%s%*s%s", sep, pad, "", s);
			else
				buf_printf(&line, "%s%s%*s", sep, s, last ? 0 : pad, "");
		}
		fprintf(f, "%s\n", line.p ? line.p : "");
		free(line.p);
	}
	for (int i = 0; i < nrows * ncols; i++)
		free(cells[i]);
	free(cells);
	free(w);
}

void
ctlout_record(FILE *f, const PGresult *res, int row)
{
	int ncols = PQnfields(res);
	size_t w = 0;

	for (int c = 0; c < ncols; c++)
		if (width(PQfname(res, c)) > w)
			w = width(PQfname(res, c));
	for (int c = 0; c < ncols; c++) {
		char *s = cell(res, row, c, false, 0);
		const char *line = s;
		int pad = (int)(w - width(PQfname(res, c)));

		/* Trailing line breaks (a handler's output usually ends in
		 * one) would print as empty continuation lines. */
		for (size_t n = strlen(s); n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'); n--)
			s[n - 1] = '\0';
		fprintf(f, "%s%*s  ", PQfname(res, c), pad, "");
		for (;;) {
			const char *nl = strchr(line, '\n');
			if (!nl) {
				fprintf(f, "%s\n", line);
				break;
			}
			fprintf(f, "%.*s\n%*s  ", (int)(nl - line), line, (int)w, "");
			line = nl + 1;
		}
		free(s);
	}
}

static void
json_value(struct buf *b, const PGresult *res, int row, int col)
{
	Oid t = PQftype(res, col);
	const char *v = PQgetvalue(res, row, col);

	if (PQgetisnull(res, row, col)) {
		buf_add(b, "null", 4);
	} else if (is_integer(t) || t == OID_JSON || t == OID_JSONB) {
		buf_add(b, v, strlen(v));
	} else if (t == OID_BOOL) {
		buf_printf(b, "%s", *v == 't' ? "true" : "false");
	} else if (t == OID_TEXT_ARRAY) {
		char **items = text_array_items(v);
		buf_add(b, "[", 1);
		for (char **i = items; *i; i++) {
			if (i != items)
				buf_add(b, ",", 1);
			buf_json_string(b, *i);
		}
		buf_add(b, "]", 1);
		free_items(items);
	} else {
		/* numeric and float too: "NaN" and "Infinity" are not JSON. */
		buf_json_string(b, v);
	}
}

void
ctlout_json_object(struct buf *b, const PGresult *res, int row)
{
	buf_add(b, "{", 1);
	for (int c = 0; c < PQnfields(res); c++) {
		if (c)
			buf_add(b, ",", 1);
		buf_json_string(b, PQfname(res, c));
		buf_add(b, ":", 1);
		json_value(b, res, row, c);
	}
	buf_add(b, "}", 1);
}

void
ctlout_json_array(struct buf *b, const PGresult *res)
{
	buf_add(b, "[", 1);
	for (int r = 0; r < PQntuples(res); r++) {
		if (r)
			buf_add(b, ",", 1);
		ctlout_json_object(b, res, r);
	}
	buf_add(b, "]", 1);
}
