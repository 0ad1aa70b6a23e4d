/*
 * promtext: a strict reader of the Prometheus text format (promtext.h),
 * shared by check_metrics and check_metrics_http.
 */
#include "promtext.h"

#include <check.h>
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a strict reader of the text format (version 0.0.4) ---- */

struct family {
	char name[128];
	char type[16];
	bool help;
};

struct parse {
	struct family fam[64];
	int nfam;
	char *series[4096]; /* every sample's name and labels, to refuse repeats */
	int nseries;
	double last_bucket; /* the running histogram's cumulative count */
	double inf_bucket;  /* its +Inf bucket, which _count must equal */
	char err[256];
};

static bool
name_char(char c, bool first, bool colon)
{
	return isalpha((unsigned char)c) || c == '_' || (colon && c == ':') ||
	       (!first && isdigit((unsigned char)c));
}

/* A name at *P; advances past it. */
static bool
read_name(const char **p, char *out, size_t len, bool colon)
{
	size_t n = 0;

	if (!name_char(**p, true, colon))
		return false;
	while (name_char(**p, n == 0, colon) && n + 1 < len)
		out[n++] = *(*p)++;
	out[n] = '\0';
	return !name_char(**p, false, colon);
}

static bool
read_value(const char *s, double *v)
{
	char *end;

	if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf") || !strcmp(s, "NaN")) {
		*v = s[0] == '-' ? -INFINITY : s[0] == '+' ? INFINITY : NAN;
		return true;
	}
	if (!*s || isspace((unsigned char)*s))
		return false;
	*v = strtod(s, &end);
	return *end == '\0';
}

static struct family *
family_of(struct parse *ps, const char *name)
{
	for (int i = 0; i < ps->nfam; i++)
		if (!strcmp(ps->fam[i].name, name))
			return &ps->fam[i];
	return NULL;
}

/* The family a sample belongs to: a histogram's NAME_bucket, _sum and
 * _count are NAME's. */
static struct family *
sample_family(struct parse *ps, const char *name, const char **suffix)
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	struct family *f;
	char base[128];

	*suffix = "";
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(name), s = strlen(suffixes[i]);
		if (n > s && !strcmp(name + n - s, suffixes[i])) {
			snprintf(base, sizeof base, "%.*s", (int)(n - s), name);
			f = family_of(ps, base);
			if (f && !strcmp(f->type, "histogram")) {
				*suffix = suffixes[i];
				return f;
			}
		}
	}
	return family_of(ps, name);
}

static bool
comment_line(struct parse *ps, const char *line)
{
	char name[128];
	const char *p = line + 7;
	struct family *f;

	if (strncmp(line, "# HELP ", 7) && strncmp(line, "# TYPE ", 7)) {
		snprintf(ps->err, sizeof ps->err, "a comment that is neither HELP nor TYPE");
		return false;
	}
	if (!read_name(&p, name, sizeof name, true) || *p != ' ') {
		snprintf(ps->err, sizeof ps->err, "bad metric name");
		return false;
	}
	p++;
	f = family_of(ps, name);
	if (!f) {
		if (ps->nfam == 64)
			return false;
		f = &ps->fam[ps->nfam++];
		snprintf(f->name, sizeof f->name, "%s", name);
	}
	if (line[2] == 'H') {
		if (f->help || f->type[0]) { /* HELP goes first, once */
			snprintf(ps->err, sizeof ps->err, "HELP repeated or after TYPE");
			return false;
		}
		f->help = true;
		return *p != '\0';
	}
	if (f->type[0] || (strcmp(p, "counter") && strcmp(p, "gauge") && strcmp(p, "histogram") &&
	                   strcmp(p, "summary") && strcmp(p, "untyped"))) {
		snprintf(ps->err, sizeof ps->err, "TYPE repeated or unknown");
		return false;
	}
	snprintf(f->type, sizeof f->type, "%s", p);
	return true;
}

/* {name="value",...}: escapes only \\ \" \n; returns the le label's value. */
static bool
read_labels(struct parse *ps, const char **pp, char *le, size_t lelen)
{
	const char *p = *pp;
	char lname[128], seen[16][128];
	int nseen = 0;

	le[0] = '\0';
	if (*p != '{')
		return true;
	p++;
	while (*p != '}') {
		size_t n = 0;
		char val[256];
		if (!read_name(&p, lname, sizeof lname, false) || *p++ != '=' || *p++ != '"') {
			snprintf(ps->err, sizeof ps->err, "bad label");
			return false;
		}
		for (int i = 0; i < nseen; i++)
			if (!strcmp(seen[i], lname)) {
				snprintf(ps->err, sizeof ps->err, "label %s repeated", lname);
				return false;
			}
		if (nseen < 16)
			snprintf(seen[nseen++], sizeof seen[0], "%s", lname);
		while (*p != '"') {
			if (!*p || *p == '\n')
				return false;
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n') {
					snprintf(ps->err, sizeof ps->err, "bad escape \\%c", *p);
					return false;
				}
			}
			if (n + 1 < sizeof val)
				val[n++] = *p;
			p++;
		}
		val[n] = '\0';
		p++;
		if (!strcmp(lname, "le"))
			snprintf(le, lelen, "%s", val);
		if (*p == ',')
			p++;
		else if (*p != '}') {
			snprintf(ps->err, sizeof ps->err, "labels not separated by ,");
			return false;
		}
	}
	*pp = p + 1;
	return true;
}

static bool
sample_line(struct parse *ps, const char *line)
{
	char name[128], le[256];
	const char *p = line, *suffix, *labels;
	struct family *f;
	double v;

	if (!read_name(&p, name, sizeof name, true)) {
		snprintf(ps->err, sizeof ps->err, "bad metric name");
		return false;
	}
	if (!(f = sample_family(ps, name, &suffix)) || !f->type[0]) {
		snprintf(ps->err, sizeof ps->err, "sample before its # TYPE");
		return false;
	}
	labels = p;
	if (!read_labels(ps, &p, le, sizeof le))
		return false;
	if (*p++ != ' ' || !read_value(p, &v)) {
		snprintf(ps->err, sizeof ps->err, "bad value");
		return false;
	}
	if (!strcmp(f->type, "counter") &&
	    (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total") || v < 0)) {
		snprintf(ps->err, sizeof ps->err, "a counter not named _total, or negative");
		return false;
	}
	if (!strcmp(suffix, "_bucket")) {
		double bound;
		if (!le[0] || !read_value(le, &bound) || v < ps->last_bucket) {
			snprintf(ps->err, sizeof ps->err, "bucket without le or not cumulative");
			return false;
		}
		ps->last_bucket = isinf(bound) ? 0 : v;
		if (isinf(bound))
			ps->inf_bucket = v;
	} else if (!strcmp(suffix, "_count") && v != ps->inf_bucket) {
		snprintf(ps->err, sizeof ps->err, "_count differs from the +Inf bucket");
		return false;
	}
	for (int i = 0; i < ps->nseries; i++)
		if (!strncmp(ps->series[i], line, (size_t)(p - 1 - line)) &&
		    ps->series[i][p - 1 - line] == '\0') {
			snprintf(ps->err, sizeof ps->err, "series repeated");
			return false;
		}
	(void)labels;
	if (ps->nseries < 4096)
		ps->series[ps->nseries++] = strndup(line, (size_t)(p - 1 - line));
	return true;
}

/* Fails the test at the first line that is not valid exposition text. */
void
prom_assert_text(const char *text)
{
	struct parse *ps = calloc(1, sizeof *ps);
	const char *line = text;
	int n = 0;

	ck_assert_msg(*text && text[strlen(text) - 1] == '\n', "empty, or no final newline");
	while (*line) {
		const char *nl = strchr(line, '\n');
		char *l = strndup(line, (size_t)(nl - line));
		bool ok = l[0] == '#' ? comment_line(ps, l) : sample_line(ps, l);
		ck_assert_msg(ok, "line %d is not Prometheus text (%s): %s", n + 1, ps->err, l);
		free(l);
		line = nl + 1;
		n++;
	}
	for (int i = 0; i < ps->nseries; i++)
		free(ps->series[i]);
	free(ps);
}

/* The value of the sample SERIES (name and labels exactly); -1 if absent. */
double
prom_metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, series, n) && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}
