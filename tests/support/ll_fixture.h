/*
 * ll_fixture.h - the common fixture of the worker suites: a fresh migrated
 * ledger, the topology, a database and a broker client, the stage's queues
 * purged, and an event tap collecting everything published; the queues of
 * the payment stage; and the wait every stage test ends its run with, until
 * the stage has done all its work (rows written, events published, outbox
 * empty).
 *
 * Public API: llw_fixture_t, llw_fixture_up, llw_fixture_down,
 * llw_payment_queues, LLW_FIXTURE, LLW_ANY, llw_never_t, llw_done_t, llw_wait_done.
 */
#ifndef LL_FIXTURE_H
#define LL_FIXTURE_H

#include <stdint.h>

#include "db.h"
#include "ll_amqp.h"
#include "mq.h"

/* What a worker test needs: a fresh migrated ledger, the topology, clients,
 * the stage's queues purged, and a private queue collecting every event. */
typedef struct llw_fixture {
    char *ledger; /* database name */
    db_t *db;
    mq_t *m;
    llw_events_t *ev;
} llw_fixture_t;

/* Sets up *f; `purge` is a NULL-terminated list of queues to empty. */
void llw_fixture_up(llw_fixture_t *f, const char *const *purge);
/* Kills every registered worker, then releases and drops what up made. */
void llw_fixture_down(llw_fixture_t *f);

/* The queues of the payment stage, NULL-terminated: what its suites purge. */
extern const char *const llw_payment_queues[];

/*
 * The fixture of a suite that needs nothing more than llw_fixture_up():
 * defines the statics fx and its aliases ledger, db, m, ev, and setup() /
 * teardown() for tcase_add_checked_fixture(), purging `purge` (a
 * NULL-terminated array of queue names).
 */
#define LLW_FIXTURE(purge)                                                                         \
    static char *ledger;                                                                           \
    static db_t *db;                                                                               \
    static mq_t *m;                                                                                \
    static llw_events_t *ev;                                                                       \
    static llw_fixture_t fx;                                                                       \
    static void setup(void)                                                                        \
    {                                                                                              \
        llw_fixture_up(&fx, (purge));                                                              \
        ledger = fx.ledger, db = fx.db, m = fx.m, ev = fx.ev;                                      \
    }                                                                                              \
    static void teardown(void)                                                                     \
    {                                                                                              \
        llw_fixture_down(&fx);                                                                     \
    }

/* A count of llw_done_t that is not checked. */
#define LLW_ANY (-1)

/* A rule a wait watches while it waits: `sql` counts what breaks it and
 * must stay 0 (see llw_done_t.never). */
typedef struct llw_never {
    const char *rule;
    const char *sql;
} llw_never_t;

/*
 * What "the stage has done its work" means to a test; all of it at once:
 *   - each query of `counts` (up to 3; a NULL ends them) returns `rows`;
 *   - the distinct event ids collected on the fixture's tap for the routing
 *     keys of `events` (up to 3; a NULL ends them) add up to `distinct`;
 *   - there are `rejected` distinct message.rejected event ids (LLW_ANY:
 *     not checked);
 *   - queue `drained` (NULL: no queue) holds no ready message;
 *   - no outbox row is left unsent (outbox_pending is empty).
 */
typedef struct llw_done {
    const char *counts[3];
    int64_t rows;
    const char *events[3];
    int64_t distinct;
    int64_t rejected;
    const char *drained;
    llw_never_t never[3]; /* watched, not waited for: a NULL sql ends them */
} llw_done_t;

/*
 * Collects f's tap and polls f's ledger and broker until `want` holds
 * (fails the test, naming `what` and what it saw, after timeout_ms). Fails
 * at once, without waiting out the deadline, when the outcome can no
 * longer come: a worker exited (llw_check_alive()), more distinct events
 * or message.rejected than wanted were published (they are never taken
 * back; the message shows the newest), or a query of `never` counted a
 * row (the message names its rule).
 */
void llw_wait_done(const llw_fixture_t *f, const llw_done_t *want, int timeout_ms,
                   const char *what);

#endif
