/*
 * ll_http.h - asking a worker's endpoints in a test (/healthz, /readyz,
 * /metrics): a GET with a deadline, a free port to give a worker, and a
 * metric's value read from the exposition text.
 *
 * Public API: llh_get, llh_free_port, llh_metric, llh_wait_status.
 */
#ifndef LL_HTTP_H
#define LL_HTTP_H

#include <stdbool.h>

/* GETs http://127.0.0.1:port/path: the HTTP status, or -1 when nothing
 * answered within 2 s. *body (may be NULL) gets the body; caller frees. */
int llh_get(int port, const char *path, char **body);
/* A TCP port on 127.0.0.1 nobody listens on right now. */
int llh_free_port(void);
/* The value of the series `series` (name with its labels exactly as
 * written, e.g. `ledgerline_messages_acked_total{stage="risk"}`) in an
 * exposition text; -1 when absent. */
double llh_metric(const char *text, const char *series);
/* Until GET path on port answers `status` (fails the test naming what it
 * saw, with the workers' logs, after timeout_ms). */
void llh_wait_status(int port, const char *path, int status, int timeout_ms);

#endif
