/*
 * mgmt.h - ledgerctl's client of the RabbitMQ management API (HTTP + JSON,
 * libcurl and jansson), for what AMQP cannot do: policies (`topology
 * apply`), queue statistics and the consumer list (`status`).
 *
 * It logs in with amqp.user / amqp.password against amqp.management_url
 * (e.g. "http://127.0.0.1:15672"; a path prefix such as ".../rabbitmq" is
 * kept). One connection is reused for every request. Every request has a
 * connect timeout (amqp.connect_timeout_ms) and a total deadline.
 *
 * Errors: LL_ECONN (nothing answers: plugin off, wrong host or port),
 * LL_ETIMEOUT, LL_ECONFIG (401/403: credentials or user tags), LL_ENOTFOUND
 * (404: no such queue, vhost or policy), LL_EPROTO (another HTTP error, or
 * an answer that is not the management API's JSON). After a failure,
 * mgmt_errstr() names the URL and what went wrong, and mgmt_fix() says
 * what to do about it (both valid until the next request).
 *
 * Not thread-safe: one mgmt_t per thread.
 *
 * Public API: mgmt_t, mgmt_open, mgmt_new, mgmt_free, mgmt_get, mgmt_put,
 * mgmt_delete, mgmt_errstr, mgmt_fix, mgmt_http_status, mgmt_url,
 * mgmt_escape.
 */
#ifndef LL_MGMT_H
#define LL_MGMT_H

#include <stddef.h>

#include <jansson.h>

#include "err.h"
#include "settings.h"

typedef struct mgmt mgmt_t;

/* A client for `url` with these credentials (strings copied). Connects on
 * the first request, not here. connect_timeout_ms bounds the TCP connect,
 * timeout_ms the whole request. Caller frees with mgmt_free(). Never NULL
 * (aborts on out of memory). */
mgmt_t *mgmt_new(const char *url, const char *user, const char *password, int connect_timeout_ms,
                 int timeout_ms);
/* mgmt_new() from the settings: amqp.management_url, amqp.user,
 * amqp.password, amqp.connect_timeout_ms (the total deadline is that plus
 * 10 s). Caller frees with mgmt_free(). */
mgmt_t *mgmt_open(const settings_t *s);
/* NULL is a no-op. */
void mgmt_free(mgmt_t *m);

/* GET url + path ("/api/overview"; the caller escapes each path segment
 * with mgmt_escape()). On LL_OK *out is the parsed body: caller decrefs.
 * On failure *out is NULL. */
int mgmt_get(mgmt_t *m, const char *path, json_t **out) LL_MUSTCHECK;
/* PUT `body` (borrowed) as JSON to url + path. */
int mgmt_put(mgmt_t *m, const char *path, const json_t *body) LL_MUSTCHECK;
/* DELETE url + path. LL_ENOTFOUND when there was nothing to delete. */
int mgmt_delete(mgmt_t *m, const char *path) LL_MUSTCHECK;

/* The last error ("" when none): names the URL. */
const char *mgmt_errstr(const mgmt_t *m);
/* How to fix the last error ("" when none). */
const char *mgmt_fix(const mgmt_t *m);
/* The HTTP status of the last answer, 0 when none came. */
long mgmt_http_status(const mgmt_t *m);
/* The base URL, without a trailing slash. */
const char *mgmt_url(const mgmt_t *m);

/* Percent-encodes `in` as one URL path segment ("/" -> "%2F") into out
 * (n bytes, NUL-terminated). LL_ERANGE if it does not fit. */
int mgmt_escape(const char *in, char *out, size_t n) LL_MUSTCHECK;

#endif
