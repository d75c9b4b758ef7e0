/*
 * batch.h - the messages of one batch and the state of each.
 *
 * Every message moves through explicit states, changed only by
 * item_set_state(), which panics on a transition the table does not allow
 * (PgBouncer change_client_state):
 *
 *   RECEIVED --decode ok--> DECODED --into the transaction--> BATCHED
 *   BATCHED --commit--> COMMITTED --events confirmed--> PUBLISHED --ack--> ACKED
 *   BATCHED --rollback (retry)--> DECODED
 *   RECEIVED --rejected by the codec--> COMMITTED   (nothing to commit: decided)
 *   DECODED --answered by Redis / deferred--> COMMITTED
 *
 * "COMMITTED" thus means "its outcome is durable or needs no durability":
 * from there on the only work left is publishing and acking.
 *
 * Public API: item_state_t, item_verdict_t, item_t, item_set_state,
 * item_state_name, item_set_event, item_clear, batch_t, batch_add,
 * batch_clear, batch_free.
 */
#ifndef LL_BATCH_H
#define LL_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq.h"
#include "msg.h"

typedef enum {
    ITEM_RECEIVED,
    ITEM_DECODED,
    ITEM_BATCHED,
    ITEM_COMMITTED,
    ITEM_PUBLISHED,
    ITEM_ACKED,
} item_state_t;

/* What the stage decided about a decoded message in the transaction. */
typedef enum {
    VERDICT_NONE,
    VERDICT_NEW,       /* processed now: ev_* is the outcome event, to the outbox */
    VERDICT_DUPLICATE, /* processed before, same payload: replay the stored event */
    VERDICT_REJECT,    /* cannot be used (conflict...): ev_* is message.rejected */
} item_verdict_t;

typedef struct item {
    mq_delivery_t d; /* owned */
    item_state_t state;
    item_verdict_t verdict;
    void *msg; /* the stage's decoded message, released by the stage */
    /* its idempotency key: the payment_id, refund_id, or for a stage of
     * several types "<type prefix><id>" ("deposit:d-1"); "" when unreadable */
    char key[MSG_ID_MAX + 16];
    size_t key_skip;                  /* length of that prefix */
    const char *key_field;            /* the key's field name, "payment_id" when NULL (static) */
    const struct msg_decoder *dec;    /* the decoder of its type (static), NULL until decoded */
    char payment_id[MSG_ID_MAX + 1];  /* the payment it is about, "" when unreadable */
    char hash[65];                    /* idempotency payload hash */
    char *canonical;                  /* canonical request fields (owned) */
    msg_reject_t why;                 /* when rejected */
    char ev_id[MSG_EVENT_ID_LEN + 1]; /* the event to publish for it */
    char *ev_rk;                      /* its routing key (owned) */
    char *ev_body;                    /* its body (owned) */
    int64_t outbox_id;                /* > 0: mark this outbox row sent after publishing */
    bool park;                        /* also park the original in <queue>.dead */
    bool defer;                       /* send the original to the retry tier instead */
    bool from_redis;                  /* a duplicate answered by the Redis fast path */
    int64_t requested_ms;             /* the producer's request time (Unix ms), 0: unknown */
    int attempts;                     /* failed processing attempts */
} item_t;

/* Moves `it` to `to`; panics (logs, aborts) on a transition not allowed. */
void item_set_state(item_t *it, item_state_t to);
const char *item_state_name(item_state_t s);
/* Sets the event to publish for `it` (takes ownership of rk and body). */
void item_set_event(item_t *it, const char *event_id, char *rk, char *body);
/* Frees what the item owns except the stage's msg (the stage releases it). */
void item_clear(item_t *it);

typedef struct batch {
    item_t *items;
    size_t n, cap;
} batch_t;

/* A new RECEIVED item at the end, taking ownership of *d. */
item_t *batch_add(batch_t *b, mq_delivery_t *d);
/* Clears every item; the stage must have released their msgs. */
void batch_clear(batch_t *b);
void batch_free(batch_t *b);

#endif
