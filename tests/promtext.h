/*
 * promtext: a strict reader of the Prometheus text exposition format
 * (version 0.0.4) written for the tests, so that what pgjobd serves is
 * checked line by line and not only by the few series a test looks for.
 */
#ifndef PGJOBD_PROMTEXT_H
#define PGJOBD_PROMTEXT_H

/* Fails the test at the first line that is not valid exposition text. */
void prom_assert_text(const char *text);
/* The value of the sample SERIES (name and labels exactly); -1 if absent. */
double prom_metric(const char *text, const char *series);

#endif
