/*
 * ctl: `pgjobd ctl VERB`, the operator's command: a thin layer over the SQL
 * API (status, jobs, show, enqueue, cancel, retry, migrate, doctor) with the
 * daemon's connection settings.  It is a one-shot command line program and
 * uses blocking libpq; it never runs inside the daemon's event loop.
 *
 * Exit status: 0 done; 1 the operation did not happen, the database
 * refused it or could not be reached, or (doctor) something needs
 * attention; 64 (EX_USAGE) bad usage; 78 (EX_CONFIG) bad configuration.
 */
#ifndef PGJOBD_CTL_H
#define PGJOBD_CTL_H

/* ARGV[0] is "ctl"; the rest are its options, the verb and its arguments.
 * Returns the exit status. */
int ctl_main(int argc, char **argv);

#endif
