/*
 * runtime.h - the one worker loop every stage runs on.
 *
 * A stage (workers/<kind>/) hands rt_main() a table of callbacks; the
 * runtime does everything else, in this order per batch (DESIGN.md 3, 6):
 *
 *   consume (prefetch) -> gather up to worker.batch_max_messages or
 *   worker.batch_max_wait_ms -> decode each (bad ones: message.rejected +
 *   parked copy in <queue>.dead) -> Redis fast path / in-flight guard ->
 *   one PostgreSQL transaction: BEGIN, stage->apply (effects + processed
 *   rows, pipelined), outbox rows, COMMIT -> publish every event with
 *   confirms -> mark outbox rows sent -> Redis outcome -> one multiple-ack.
 *
 * Failure handling:
 *   - transient (a server lost, deadlock, serialization failure, confirm
 *     timeout or nack): nothing is acked; reconnect with backoff and jitter,
 *     redeclare the topology, retry the batch (if the consumer connection
 *     itself was lost the broker redelivers the batch instead);
 *   - a batch whose transaction fails for another reason is split in
 *     halves until the message that causes it is alone; that message is
 *     retried up to worker.max_attempts, then parked with processing_failed;
 *   - SIGTERM/SIGINT: stop consuming, finish the batch in hand (bounded by
 *     worker.shutdown_timeout_ms), exit 0; a second signal exits at once;
 *   - SIGHUP: the stage's reload() runs between two batches.
 * A kill -9 anywhere loses nothing (nothing is acked before its outcome is
 * committed and its events confirmed) and doubles nothing (PostgreSQL's
 * processed rows turn a redelivery into a replay of the stored event).
 * Periodically (one tick): the outbox sweep and AMQP heartbeats.
 *
 * Public API: rt_stage_t, rt_main.
 */
#ifndef LL_RUNTIME_H
#define LL_RUNTIME_H

#include <stddef.h>

#include "batch.h"
#include "db.h"
#include "settings.h"

/* What a stage's tick job may use; valid during the call. */
typedef struct rt_env {
    db_t *db;
    struct kv *kv; /* NULL when Redis is not configured */
    const char *instance;
    const char *scope; /* "<ledger id>:<stage>": prefix for its Redis keys */
    const settings_t *cfg;
} rt_env_t;

typedef struct rt_stage {
    const char *name;   /* processed.stage, outbox.stage, Redis keys: "payment" */
    const char *worker; /* program name for logs and usage: "payment-worker" */
    const char *queue;  /* the work queue it consumes: "payments" */

    /* Decodes it->d. LL_OK: it->msg (the stage's), payment_id, hash and
     * canonical are set. LL_EREJECT: it->why is set, and payment_id when it
     * is readable. */
    int (*decode)(item_t *it);
    /* Frees it->msg (NULL-safe). */
    void (*release)(item_t *it);
    /* Inside the batch transaction (BEGIN sent, COMMIT after): decides the
     * BATCHED items of items[0..n) in that order (other items are skipped),
     * writing effects and processed rows. For each: VERDICT_NEW with the
     * outcome event set (item_set_event; the runtime stores it in the
     * outbox), VERDICT_DUPLICATE (the runtime replays the stored event), or
     * item_reject(). Returns LL_OK or the db error (LL_ECONN, LL_ERETRY:
     * retried; LL_EDB: the batch is split to find the culprit). */
    int (*apply)(db_t *db, item_t *items, size_t n);
    /* Optional: called once after the settings are loaded (LL_OK or the
     * process exits 1 with the error logged), and on SIGHUP between two
     * batches (no message is dropped; a failed reload keeps the old
     * state). */
    int (*init)(const settings_t *cfg);
    int (*reload)(const settings_t *cfg);
    /* Optional periodic job for singleton work (closing settlement
     * batches), run from the tick when PostgreSQL is up. It writes its
     * events to the outbox in its own transactions and returns how many;
     * the runtime then publishes unsent outbox rows at once. */
    int (*tick)(const rt_env_t *env);
} rt_stage_t;

/* Parses --config FILE / --check-config / --help / --version, loads the
 * settings and runs the loop until a signal. Returns the exit status. */
int rt_main(const rt_stage_t *stage, int argc, char **argv);

#endif
