/*
 * tick.c - transactions of a stage's periodic job: see tick.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "log.h"
#include "msg.h"
#include "outbox.h"
#include "tick.h"
#include "xmalloc.h"

#define TICK_TXN_EVENTS 8 /* events one transaction may add */

struct tick_txn {
    const char *payment_id[TICK_TXN_EVENTS];
    tick_event_t ev[TICK_TXN_EVENTS];
    size_t n;
};

void tick_event(tick_txn_t *tx, const char *payment_id, const char *type, const char *key,
                char *body)
{
    if (tx->n == TICK_TXN_EVENTS)
        log_panic("a tick transaction adds more than %d events", TICK_TXN_EVENTS);
    char id[MSG_EVENT_ID_LEN + 1];
    msg_event_id(type, key, id);
    tick_event_t *e = &tx->ev[tx->n];
    tx->payment_id[tx->n++] = payment_id;
    e->event_id = ll_xstrdup(id);
    e->routing_key = ll_xstrdup(type);
    e->body = body;
}

static void event_free(tick_event_t *e)
{
    free(e->event_id);
    free(e->routing_key);
    free(e->body);
    memset(e, 0, sizeof *e);
}

static void keep(tick_env_t *env, tick_event_t *e)
{
    if (env->nevents == env->capevents) {
        env->capevents = env->capevents ? env->capevents * 2 : 16;
        env->events = ll_xrealloc(env->events, env->capevents * sizeof *env->events);
    }
    env->events[env->nevents++] = *e;
    memset(e, 0, sizeof *e);
}

int tick_transact(tick_env_t *env, const char *what,
                  int (*work)(db_t *db, tick_txn_t *tx, void *arg), void *arg)
{
    tick_txn_t tx;
    memset(&tx, 0, sizeof tx);
    char before[64], after[64];
    snprintf(before, sizeof before, "before_%s_commit", what);
    snprintf(after, sizeof after, "after_%s_commit", what);
    int rc = db_exec(env->db, "BEGIN");
    if (rc == LL_OK)
        rc = work(env->db, &tx, arg);
    for (size_t i = 0; rc == LL_OK && i < tx.n; i++)
        rc = outbox_add(env->db, env->stage, tx.payment_id[i], tx.ev[i].event_id,
                        tx.ev[i].routing_key, tx.ev[i].body, &tx.ev[i].outbox_id);
    if (rc == LL_OK) {
        crash_point(before);
        rc = db_exec(env->db, "COMMIT");
    }
    if (rc != LL_OK) {
        db_try(env->db, "ROLLBACK");
        for (size_t i = 0; i < tx.n; i++)
            event_free(&tx.ev[i]);
        return rc;
    }
    crash_point(after);
    for (size_t i = 0; i < tx.n; i++)
        keep(env, &tx.ev[i]);
    return LL_OK;
}

void tick_events_clear(tick_env_t *env)
{
    for (size_t i = 0; i < env->nevents; i++)
        event_free(&env->events[i]);
    env->nevents = 0;
}
