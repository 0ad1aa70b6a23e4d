/*
 * pgjobd: run background jobs from PostgreSQL.
 *
 * main.c parses the command line and dispatches: -t checks the config,
 * --migrate installs the schema, `pgjobd ctl VERB` is the operator's
 * command (ctl.c), and otherwise the daemon runs in the foreground until
 * SIGTERM.  See the README's ARCHITECTURE section for the
 * modules and who calls whom.
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cfg.h"
#include "ctl.h"
#include "daemon.h"
#include "log.h"
#include "migrate.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: pgjobd [-d] [-c FILE]          run the daemon in the foreground\n"
	    "       pgjobd -c FILE -t              check the configuration\n"
	    "       pgjobd -c FILE --migrate       install or upgrade the SQL schema\n"
	    "       pgjobd -c FILE --migrate --to N  up- or downgrade the schema to version N\n"
	    "       pgjobd ctl [-c FILE | -d CONNINFO] [--json] VERB [ARGS]\n"
	    "                                      operate: status, jobs, show, enqueue, cancel,\n"
	    "                                      retry, migrate, doctor (pgjobd ctl -h)\n"
	    "       pgjobd -V | -h                 version | this help\n"
	    "  -c, --config FILE   configuration file (default " CFG_DEFAULT_PATH ")\n"
	    "  -t, --test          check the configuration and exit\n"
	    "      --migrate       apply the SQL migrations and exit\n"
	    "      --to N          with --migrate: stop at (or go back to) schema version N\n"
	    "  -d, --debug         log debug lines too\n"
	    "  -V, --version       print the version and exit\n"
	    "  -h, --help          print this help and exit\n");
}

/* Load PATH or print every error and exit EX_CONFIG. */
static struct cfg *
load_or_exit(const char *path)
{
	char *errors = NULL;
	struct cfg *cfg = cfg_load(path, &errors);

	if (!cfg) {
		fputs(errors, stderr);
		free(errors);
		exit(EX_CONFIG);
	}
	return cfg;
}

/* --migrate [--to TARGET]: blocking, one shot. */
static int
run_migrate(struct cfg *cfg, int target)
{
	char err[1024];
	PGconn *conn = PQconnectdb(cfg->database);
	int version;

	if (PQstatus(conn) != CONNECTION_OK) {
		log_errx("cannot connect to the database: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return 1;
	}
	version = migrate_to(conn, target, err, sizeof err);
	PQfinish(conn);
	if (version < 0) {
		log_errx("migration failed: %s", err);
		return 1;
	}
	printf("schema version %d\n", version);
	return 0;
}

int
main(int argc, char **argv)
{
	enum { OPT_MIGRATE = 256, OPT_TO };
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"test", no_argument, NULL, 't'},
		{"migrate", no_argument, NULL, OPT_MIGRATE},
		{"to", required_argument, NULL, OPT_TO},
		{"debug", no_argument, NULL, 'd'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = CFG_DEFAULT_PATH;
	bool test = false, migrate = false, to = false;
	struct cfg *cfg;
	int ch, rc, target = migrate_latest();
	char *end;

	log_init();
	if (argc > 1 && !strcmp(argv[1], "ctl"))
		return ctl_main(argc - 1, argv + 1);
	while ((ch = getopt_long(argc, argv, "c:tdVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 't': test = true; break;
		case OPT_MIGRATE: migrate = true; break;
		case OPT_TO:
			target = (int)strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || target < 1 || target > 9999) {
				fprintf(stderr, "pgjobd: --to %s: not a schema version (1-9999)\n",
				    optarg);
				return EX_CONFIG;
			}
			to = true;
			break;
		case 'd': log_verbose = true; break;
		case 'V': printf("pgjobd %s\n", PGJOBD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EX_CONFIG;
		}
	}
	if (optind != argc || (test && migrate) || (to && !migrate)) {
		usage(stderr);
		return EX_CONFIG;
	}

	cfg = load_or_exit(path);
	if (test) {
		printf("configuration OK\n");
		cfg_free(cfg);
		return 0;
	}
	if (!migrate)
		return daemon_main(path, cfg); /* owns cfg from here */
	rc = run_migrate(cfg, target);
	cfg_free(cfg);
	return rc;
}
