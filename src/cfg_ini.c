/*
 * cfg_ini: see cfg_ini.h.
 *
 * Why a reader of our own in front of inih: Debian's prebuilt libinih (r55)
 * reads each line into a fixed 200-byte stack buffer (INI_MAX_LINE) and is
 * built without INI_HANDLER_LINENO, so its handler never learns the line
 * number, and ini_parse_stream() returns only the first error's line.  A
 * longer line would be split into several "lines" (half a value becoming a
 * key, every later line number off by one).
 *
 * So inih reads through reader(), which hands it one whole line at a time
 * read with getline(), counts lines, and classifies each line exactly as
 * inih is about to (classify()), reporting syntax errors itself.  A line
 * that fits inih's buffer goes in unchanged and inih splits it into name
 * and value.  A longer one, up to CFG_LINE_MAX, goes in as a short
 * stand-in that inih classifies the same way (stand_in()); its real name
 * and value are split here, as inih would, and on_value() takes them
 * instead of the stand-in's.
 *
 * inih's section names are ignored: it cuts them at 49 bytes, and the
 * reader sees every header whole anyway.
 */
#include "cfg_ini.h"

#include "xmalloc.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

void
cfg_error(struct cfg_errors *e, int line, const char *fmt, ...)
{
	va_list ap;
	char *raw, *msg, *o;

	va_start(ap, fmt);
	raw = xvasprintf(fmt, ap);
	va_end(ap);
	msg = xmalloc(4 * strlen(raw) + 1);
	o = msg;
	for (const unsigned char *p = (const unsigned char *)raw; *p != '\0'; p++) {
		if (*p == '\n')
			o += sprintf(o, "\\n");
		else if (*p == '\t')
			o += sprintf(o, "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			o += sprintf(o, "\\x%02x", *p);
		else
			*o++ = (char)*p;
	}
	*o = '\0';
	free(raw);

	if (e->n == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 8;
		e->v = xreallocarray(e->v, e->cap, sizeof(*e->v));
	}
	e->v[e->n].line = line;
	e->v[e->n].seq = (int)e->n;
	e->v[e->n].msg = msg;
	e->n++;
}

bool
cfg_errors_on(const struct cfg_errors *e, int line)
{
	for (size_t i = 0; i < e->n; i++) {
		if (e->v[i].line == line)
			return true;
	}
	return false;
}

static int
cmp_errors(const void *a, const void *b)
{
	const struct cfg_error *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

char *
cfg_errors_format(struct cfg_errors *e, const char *path)
{
	size_t len = 1, plen = strlen(path);
	char *out, *o;

	qsort(e->v, e->n, sizeof(*e->v), cmp_errors);
	for (size_t i = 0; i < e->n; i++)
		len += plen + strlen(e->v[i].msg) + 16;
	out = xmalloc(len);
	o = out;
	for (size_t i = 0; i < e->n; i++)
		o += sprintf(o, "%s:%d: %s\n", path, e->v[i].line, e->v[i].msg);
	*o = '\0';
	return out;
}

void
cfg_errors_free(struct cfg_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i].msg);
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

/* ------------------------------------------------------------------ */
/* The reader                                                           */
/* ------------------------------------------------------------------ */

/* What inih does with the line it is about to process (ini.c, r55). */
enum line_kind {
	LINE_NOTHING,      /* blank, comment, or refused (no '=' or no ']'): no change */
	LINE_SECTION,      /* [name]: inih forgets its key */
	LINE_KEY,          /* name = value: the handler gets them, inih keeps the name */
	LINE_NAMELESS,     /* "= value": the handler gets an empty name, inih forgets its key */
	LINE_CONTINUATION, /* indented, after a key: the handler gets more value */
};

struct reader {
	FILE *fp;
	const struct cfg_ini_ops *ops;
	void *user;
	struct cfg_errors *errs;

	char *buf; /* the current line, whole */
	size_t bufsize;
	int lineno;
	int num; /* buffer size inih asks for on ordinary reads */
	bool read_failed;

	enum line_kind kind;
	bool cut;         /* an inline comment was cut off the current line */
	bool prev_key;    /* inih has a key that an indented line would continue */
	bool continuable; /* ... and no bad line came since: pass continuations on */
	/* For a line too long for inih: the name and value split here. */
	const char *long_name, *long_value;
};

/*
 * inih's own scan for CHARS or an inline comment: a ';' after whitespace
 * (Debian builds inih with inline comments on, prefix ";").
 */
static char *
find_chars_or_comment(char *s, const char *chars)
{
	bool was_space = false;

	while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
	       !(was_space && *s == ';')) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static char *
skip_space(char *s)
{
	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	return s;
}

/* Length of S[0..n) without trailing whitespace. */
static size_t
rtrim_len(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return n;
}

/* After a line that went wrong, continuation lines would continue nothing. */
static void
syntax_error(struct reader *r)
{
	cfg_error(r->errs, r->lineno, "syntax error: expected 'key = value' or '[section]'");
	r->continuable = false;
}

/* A line starting with '[': inih wants a ']' before any inline comment. */
static void
classify_section(struct reader *r, char *start)
{
	char *end = find_chars_or_comment(start + 1, "]");
	char *name, *after, *sname;

	if (*end != ']') {
		/* Keys below belong to no section we know: ignore them, do not misfile them. */
		r->kind = LINE_NOTHING;
		syntax_error(r);
		r->ops->section(r->user, NULL, r->lineno);
		return;
	}
	r->kind = LINE_SECTION;
	r->prev_key = false;
	r->continuable = false;
	name = skip_space(start + 1);
	sname = xstrndup(name, rtrim_len(name, (size_t)(end - name)));
	r->ops->section(r->user, sname, r->lineno);
	free(sname);
	/* inih ignores what follows ']'; a stray word there is more likely a typo. */
	after = skip_space(end + 1);
	if (*after != '\0' && *after != ';')
		syntax_error(r);
}

/*
 * Classify LINE as inih r55 is about to (see ini.c), and report what it
 * would refuse.  Sections are announced from here, since inih calls the
 * handler only for values.
 */
static void
classify(struct reader *r, char *line)
{
	char *start = skip_space(line);
	char *end;

	r->cut = false;
	if (*start == '\0' || *start == ';' || *start == '#') {
		/* Blank lines and comments neither end nor continue a value. */
		r->kind = LINE_NOTHING;
	} else if (r->prev_key && start > line) {
		/* inih tests this before '[': an indented [x] continues a value. */
		r->kind = LINE_CONTINUATION;
		r->cut = *find_chars_or_comment(start, NULL) == ';';
	} else if (*start == '[') {
		classify_section(r, start);
	} else {
		end = find_chars_or_comment(start, "=:");
		if (*end != '=' && *end != ':') {
			/* inih keeps its previous key: so do we, but we drop continuations. */
			r->kind = LINE_NOTHING;
			syntax_error(r);
			return;
		}
		r->cut = *find_chars_or_comment(end + 1, NULL) == ';';
		if (rtrim_len(start, (size_t)(end - start)) == 0) {
			/* "= value": inih would hand us an empty name and forget its key. */
			r->kind = LINE_NAMELESS;
			r->prev_key = false;
			syntax_error(r);
			return;
		}
		r->kind = LINE_KEY;
		r->prev_key = true;
		r->continuable = true;
	}
}

/*
 * For a line longer than inih's buffer: split LINE into name and value
 * here, as inih would have (a key's value loses its inline comment, a
 * continuation keeps it in r55), and give inih a stand-in of the same kind.
 * Stand-ins are at most 2 characters; a header needs none of its text,
 * since the reader has announced the section already.
 */
static const char *
stand_in(struct reader *r, char *line)
{
	char *start = skip_space(line);
	char *end, *value;

	switch (r->kind) {
	case LINE_NOTHING: return "";
	case LINE_SECTION: return "[]";
	case LINE_NAMELESS: return "=";
	case LINE_KEY:
		end = find_chars_or_comment(start, "=:");
		*find_chars_or_comment(end + 1, NULL) = '\0';
		value = skip_space(end + 1);
		value[rtrim_len(value, strlen(value))] = '\0';
		start[rtrim_len(start, (size_t)(end - start))] = '\0';
		r->long_name = start;
		r->long_value = value;
		return "k=";
	case LINE_CONTINUATION:
		start[rtrim_len(start, strlen(start))] = '\0';
		r->long_value = start;
		return " v";
	}
	abort();
}

/* Hand inih an empty line, which changes nothing, in place of a bad one. */
static char *
bad_line(struct reader *r, char *str)
{
	r->kind = LINE_NOTHING;
	r->continuable = false;
	str[0] = '\0';
	return str;
}

/* The ini_reader: see the top of this file. */
static char *
reader(char *str, int num, void *stream)
{
	struct reader *r = stream;
	ssize_t len;

	/*
	 * Newer inih releases, given a line that fills the buffer without a
	 * '\n', read on with a smaller buffer to discard "the rest of the
	 * line".  Lines are never cut here, so there is no rest: say so
	 * without consuming the next line.  3: room for a stand-in.
	 */
	if (r->num == 0)
		r->num = num;
	if (num != r->num || num < 3)
		return NULL;

	errno = 0;
	len = getline(&r->buf, &r->bufsize, r->fp);
	if (len < 0) {
		if (ferror(r->fp)) {
			cfg_error(r->errs, 0, "cannot read: %s", strerror(errno ? errno : EIO));
			r->read_failed = true;
		}
		return NULL;
	}
	r->lineno++;
	r->long_name = r->long_value = NULL;
	if (len > 0 && r->buf[len - 1] == '\n')
		r->buf[--len] = '\0';
	/* inih skips a UTF-8 byte order mark on line 1; doing it here keeps columns honest. */
	if (r->lineno == 1 && len >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0) {
		memmove(r->buf, r->buf + 3, (size_t)len - 2);
		len -= 3;
	}

	if (strlen(r->buf) != (size_t)len) {
		cfg_error(r->errs, r->lineno, "line contains a NUL byte");
		return bad_line(r, str);
	}
	if (len > CFG_LINE_MAX) {
		cfg_error(r->errs, r->lineno, "line too long (at most %d characters)",
		          CFG_LINE_MAX);
		/* A header we cannot read: its keys must not land in the previous section. */
		if (*skip_space(r->buf) == '[')
			r->ops->section(r->user, NULL, r->lineno);
		return bad_line(r, str);
	}
	classify(r, r->buf);
	if (len < num)
		memcpy(str, r->buf, (size_t)len + 1);
	else
		strcpy(str, stand_in(r, r->buf));
	return str;
}

/*
 * inih r55 keeps inline comments on continuation lines (later releases cut
 * them): cut them here, as inih does on a key's line.
 */
static void
continuation(struct reader *r, const char *value)
{
	char *v = xstrdup(value);

	*find_chars_or_comment(v, NULL) = '\0';
	v[rtrim_len(v, strlen(v))] = '\0';
	r->ops->continuation(r->user, v, r->lineno, r->cut);
	free(v);
}

static int
on_value(void *user, const char *section, const char *name, const char *value)
{
	struct reader *r = user;

	(void)section;
	if (r->long_value != NULL) {
		name = r->long_name;
		value = r->long_value;
	}
	if (r->kind == LINE_KEY)
		r->ops->key(r->user, name, value, r->lineno, r->cut);
	else if (r->kind == LINE_CONTINUATION && r->continuable)
		continuation(r, value);
	/* Errors are ours to report, with their lines: never fail inih's count. */
	return 1;
}

int
cfg_ini_read(const char *path, const struct cfg_ini_ops *ops, void *user, struct cfg_errors *errs)
{
	struct reader r = {.ops = ops, .user = user, .errs = errs};
	int rc;

	/* Close-on-exec: the daemon that reloads this file spawns handlers. */
	r.fp = fopen(path, "re");
	if (r.fp == NULL) {
		cfg_error(errs, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	rc = ini_parse_stream(reader, &r, on_value, &r);
	fclose(r.fp);
	free(r.buf);
	/* A line inih refused that the reader let through: still say where. */
	if (rc > 0 && !cfg_errors_on(errs, rc))
		cfg_error(errs, rc, "syntax error: expected 'key = value' or '[section]'");
	else if (rc < 0)
		cfg_error(errs, 0, "cannot parse: inih failed (%d)", rc);
	return r.read_failed ? -1 : 0;
}
