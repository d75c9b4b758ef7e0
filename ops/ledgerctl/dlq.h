/*
 * dlq.h - reading and taking dead letters (the `<queue>.dead` queues) for
 * ledgerctl: `dlq list|show|replay|purge` and the dead-letter counts of
 * `status`.
 *
 * A dead letter is one of two kinds:
 *   - parked by a worker (docs/contract.md#parked-copies): the original
 *     body and headers plus x-ledgerline-reason, -detail, -queue, -worker,
 *     -parked-at, -exchange, -routing-key (copies parked before 2026-12
 *     lack the last three: their route comes from the topology);
 *   - dead-lettered by the broker (a quorum work queue's x-delivery-limit
 *     exceeded): no x-ledgerline-* headers but an x-death array; reason,
 *     queue, time and route come from its entry for the work queue.
 *
 * dlq_scan() reads a dead queue without changing it: every letter is
 * delivered without ack (consumers of the caller's channel, 2,000 letters
 * each), only the current one is in memory, and at the end every letter is
 * given back in queue order, so positions stay the same from one pass to
 * the next (see dlq.c for what RabbitMQ 3.10 does with order and why).
 * dlq_take() is the same pass, but removes the letters its callback picks,
 * after republishing each to its route with confirms when asked to.
 *
 * Public API: DLQ_NAME_MAX, dlq_kind_t, dlq_letter_t, dlq_visit_fn,
 * dlq_resolve, dlq_valid_queues, dlq_scan, dlq_take_t, dlq_take,
 * dlq_replay_header_dropped.
 */
#ifndef LL_DLQ_H
#define LL_DLQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "mq.h"

#define DLQ_NAME_MAX 128 /* queue names, reasons, workers, routes */

typedef enum {
    DLQ_PARKED, /* parked by a worker: x-ledgerline-* headers */
    DLQ_BROKER, /* dead-lettered by the broker: x-death only */
} dlq_kind_t;

/* One dead letter as a visitor sees it. Every pointer (strings, body,
 * delivery) is valid only during the callback; strings are never NULL
 * ("" when unknown). */
typedef struct dlq_letter {
    size_t position; /* 1-based place in the dead queue during this pass */
    dlq_kind_t kind;
    const char *reason;     /* x-ledgerline-reason, else x-death's reason
                               (delivery_limit...), else "unknown" */
    const char *detail;     /* x-ledgerline-detail; "" for broker letters */
    const char *payment_id; /* read from the body as message.rejected does;
                               "" when not readable */
    const char *queue;      /* the work queue it came from */
    const char *worker;     /* the instance that parked it; "" for broker letters */
    const char *parked_at;  /* RFC 3339 UTC; "" when unknown */
    int64_t parked_ms;      /* the same as Unix ms; 0 when unknown */
    const char *exchange;   /* its original route ("" is the default exchange) */
    const char *routing_key;
    const char *route_from; /* where the route came from: "headers", "x-death",
                               "topology", or "" (no route known) */
    const char *message_id; /* AMQP message_id; "" when none */
    const char *body;       /* not NUL-terminated */
    size_t len;
    const mq_delivery_t *d; /* the delivery: every property and raw header */
} dlq_letter_t;

/* Called for each letter, in queue order. Return 0 to go on, 1 to stop
 * early (the pass ends normally), a negative LL_E* code to abort (the pass
 * returns it; write the reason to your own state). */
typedef int dlq_visit_fn(void *ud, const dlq_letter_t *l);

/*
 * `name` as a dead queue: a work queue of the topology ("risk") or its dead
 * queue ("risk.dead"). On LL_OK writes the dead queue's name to dead and
 * the work queue's to work (either may be NULL). Otherwise LL_ENOTFOUND
 * with err naming the valid queues.
 */
int dlq_resolve(const char *name, char dead[DLQ_NAME_MAX], char work[DLQ_NAME_MAX], char *err,
                size_t errlen) LL_MUSTCHECK;
/* "risk, payments, settlement (or risk.dead, payments.dead,
 * settlement.dead)": the names dlq_resolve() accepts. Static storage. */
const char *dlq_valid_queues(void);

/*
 * Calls fn for each letter of `dead_queue`, in order, then gives every
 * letter back: the queue is unchanged. The pass always reads to the end of
 * the queue (when fn returns 1 it is just not called any more), because on
 * a quorum queue the letters given back go behind the unread ones: `max`
 * (0: no limit) stops the pass after that many letters at that price.
 * Uses `m`'s channel; m must not be consuming. LL_OK, or LL_ENOTFOUND (no
 * such queue), LL_ECONN / LL_ETIMEOUT / LL_EPROTO (the broker; the letters
 * go back to the queue with the connection), or fn's negative code; err
 * says what failed (the caller says how to fix it, by the code).
 */
int dlq_scan(mq_t *m, const char *dead_queue, size_t max, dlq_visit_fn *fn, void *ud, char *err,
             size_t errlen) LL_MUSTCHECK;

/* What dlq_take() does with the letters its callback picks. */
typedef struct dlq_take {
    mq_t *pub;         /* NULL: delete them; else republish each to its route on
                          this connection (mandatory, with confirms), then delete */
    size_t max;        /* letters to look at, at most (0: no limit) */
    int confirm_ms;    /* confirm timeout per window of republishes */
    size_t taken;      /* out: letters removed */
    size_t looked;     /* out: letters looked at */
    size_t unroutable; /* out: picked but not removed: no route, or the broker
                          returned or nacked the republish */
    char refused[512]; /* out: why the last of those was not removed */
} dlq_take_t;

/*
 * One pass over `dead_queue` like dlq_scan(); a letter for which pick()
 * returns 1 is removed (republished first when t->pub), one for which it
 * returns 0 stays, a negative code aborts the pass (nothing more is taken;
 * letters already taken stay taken). A letter is acked (removed) only after
 * its republish is confirmed, so a crash in between leaves it in the dead
 * queue as well: replayed twice, which the workers' deduplication by
 * payment_id makes harmless. A letter without a route, or whose republish
 * the broker returned or nacked, stays and is counted in t->unroutable.
 */
int dlq_take(mq_t *m, const char *dead_queue, dlq_take_t *t, dlq_visit_fn *pick, void *ud,
             char *err, size_t errlen) LL_MUSTCHECK;

/* Whether a header of a dead letter is dropped when it is replayed: the
 * parked-copy headers (x-ledgerline-* but the producer's
 * x-ledgerline-signature) and the broker's (x-death, x-first-death-*,
 * x-last-death-*, x-delivery-count). */
bool dlq_replay_header_dropped(const char *key, size_t klen);

#endif
