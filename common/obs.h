/*
 * obs.h - what a running worker tells the people operating it
 * (docs/operations.md): its health (/healthz, /readyz), its metrics
 * (/metrics) and its record in the Redis worker registry.
 *
 * The runtime reports what happens (obs_deps, obs_consumed,
 * obs_batch_done...); obs keeps the metrics and the health state, serves
 * them on the HTTP thread (httpd.h) and writes the registry record from the
 * loop's thread (obs_tick). Health reads are the only thing the HTTP thread
 * shares with the loop, behind obs's own lock.
 *
 * Public API: obs_t, obs_dep_t, obs_new, obs_listen, obs_free, obs_deps, obs_consumed, obs_batch,
 * obs_batch_done, obs_tx, obs_tx_retry, obs_retried, obs_published, obs_confirm, obs_e2e, obs_tick,
 * obs_port.
 */
#ifndef LL_OBS_H
#define LL_OBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "db.h"
#include "kv.h"
#include "settings.h"

typedef enum { OBS_POSTGRES, OBS_RABBITMQ, OBS_REDIS, OBS_NDEPS } obs_dep_t;

typedef struct obs obs_t;

/* Registers the worker's metrics (stage label = `stage`) and its health
 * state; `cfg` is borrowed for the process's life. */
obs_t *obs_new(const char *stage, const char *worker, const char *instance, const settings_t *cfg);
/* Starts the endpoints when `port` > 0. LL_OK, or LL_ECONFIG with err. */
int obs_listen(obs_t *o, int port, char *err, size_t errlen);
/* The port listened on (0: off). */
int obs_port(const obs_t *o);
void obs_free(obs_t *o);

/* The loop made progress (an iteration, a backoff step): the connection
 * states now, consuming, draining (after SIGTERM). Sets up, ready and the
 * progress time, and counts reconnections (a dependency up again after
 * being down). */
void obs_deps(obs_t *o, const bool up[OBS_NDEPS], bool consuming, bool draining);

void obs_consumed(obs_t *o, size_t n);
void obs_batch(obs_t *o, size_t n);
/* After the ack of a batch: acked, rejected by reason, parked, deferred,
 * duplicates by source, over items[0..n). */
void obs_batch_done(obs_t *o, const item_t *items, size_t n);
void obs_tx(obs_t *o, double seconds);
/* A transient transaction failure, by its code and SQLSTATE. */
void obs_tx_retry(obs_t *o, int rc, const char *sqlstate);
void obs_retried(obs_t *o);
void obs_published(obs_t *o, size_t n);
void obs_confirm(obs_t *o, double seconds);
/* End-to-end latency of one message: requested (Unix ms) to now. */
void obs_e2e(obs_t *o, int64_t requested_ms);

/* Between batches: samples the outbox backlog (every 5 s, when db is up)
 * and writes the registry record (every 5 s, when kv is up). `ledger` is
 * the ledger identity ("" before PostgreSQL answered). */
void obs_tick(obs_t *o, db_t *db, kv_t *kv, const char *ledger);

#endif
