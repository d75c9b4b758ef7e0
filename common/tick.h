/*
 * tick.h - a stage's periodic job (the settlement closer) and its
 * transactions. The runtime owns them as it owns a batch's: the job calls
 * tick_transact(), which runs BEGIN, the job's work (its writes, and the
 * events it hands back with tick_event()), the outbox rows of those
 * events, COMMIT; when the job returns, the runtime publishes the events
 * committed and marks them sent. No stage writes the outbox itself.
 *
 * Public API: tick_event_t, tick_env_t, tick_txn_t, TICK_ROLLBACK, tick_transact,
 * tick_event, tick_events_clear.
 */
#ifndef LL_TICK_H
#define LL_TICK_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "kv.h"
#include "settings.h"

/* An event committed by a tick job, to publish. */
typedef struct tick_event {
    int64_t outbox_id;
    char *event_id, *routing_key, *body;
} tick_event_t;

/* What a tick job may use; the runtime sets it up for each call. */
typedef struct tick_env {
    db_t *db;
    kv_t *kv; /* NULL when Redis is not configured */
    const char *instance;
    const char *scope; /* "<ledger id>:<stage>": prefix for its Redis keys */
    const char *stage; /* outbox.stage of its events */
    const settings_t *cfg;
    /* the events of the committed transactions (the runtime's) */
    tick_event_t *events;
    size_t nevents, capevents;
} tick_env_t;

/* One transaction of a tick job. */
typedef struct tick_txn tick_txn_t;

/* A work function's answer: roll back quietly (nothing to do after all). */
#define TICK_ROLLBACK 1

/* Runs work(env->db, tx, arg) in a transaction: BEGIN; work; the events it
 * added, into the outbox; COMMIT. work returns LL_OK to commit,
 * TICK_ROLLBACK to roll back, or a db error (rolled back, returned). The
 * crash points before_<what>_commit and after_<what>_commit surround the
 * COMMIT. LL_OK when committed (the events then wait in env->events),
 * TICK_ROLLBACK, or an error code. */
int tick_transact(tick_env_t *env, const char *what,
                  int (*work)(db_t *db, tick_txn_t *tx, void *arg), void *arg) LL_MUSTCHECK;

/* Adds an event to the transaction: `body` (taken) of routing key `type`,
 * its event_id msg_event_id(type, key); payment_id NULL for a batch
 * event. */
void tick_event(tick_txn_t *tx, const char *payment_id, const char *type, const char *key,
                char *body);

/* Frees env's events. */
void tick_events_clear(tick_env_t *env);

#endif
