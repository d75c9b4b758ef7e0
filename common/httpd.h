/*
 * httpd.h - a tiny GET-only HTTP server on its own thread (libmicrohttpd),
 * for a worker's /healthz, /readyz and /metrics (docs/operations.md).
 *
 * The handler runs on the server's thread, not the worker loop's: it must
 * only read state that is safe to read from there (metrics.h is; the
 * runtime's health fields are behind its own lock). Methods other than GET
 * and HEAD get 405; connections are limited in number and time, so a slow
 * or hostile client cannot tie up the process.
 *
 * Public API: httpd_t, httpd_reply_t, httpd_handler_fn, httpd_start,
 * httpd_port, httpd_stop.
 */
#ifndef LL_HTTPD_H
#define LL_HTTPD_H

#include <stddef.h>

#include "err.h"

typedef struct httpd httpd_t;

/* What a handler answers: a status, a content type (a literal) and a
 * body the server frees. */
typedef struct httpd_reply {
    int status;
    const char *content_type;
    char *body; /* malloc'd */
} httpd_reply_t;

typedef void httpd_handler_fn(void *ud, const char *path, httpd_reply_t *reply);

/* Listens on address:port (IPv4 or IPv6 literal; port 0: any free port,
 * see httpd_port) and serves `fn`. LL_OK, or LL_ECONFIG with err saying
 * why the address cannot be used (bad address, port in use...). */
int httpd_start(httpd_t **out, const char *address, int port, httpd_handler_fn *fn, void *ud,
                char *err, size_t errlen) LL_MUSTCHECK;
/* The port it listens on. */
int httpd_port(const httpd_t *h);
/* Stops the thread and closes the socket; NULL-safe. */
void httpd_stop(httpd_t *h);

#endif
