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
 * Public API: item_state_t, item_t, item_set_state, item_state_name,
 * item_reject, item_reject_conflict, item_check_signature, batch_requests_json,
 * batch_json_open, item_clear,
 * batch_t, batch_add, batch_clear.
 */
#ifndef LL_BATCH_H
#define LL_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mq.h"
#include "msg.h"
#include "sbuf.h"
#include "sign.h"

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
    void *msg;                        /* the stage's decoded message, released by the stage */
    char payment_id[MSG_ID_MAX + 1];  /* "" when unreadable */
    char hash[65];                    /* idempotency payload hash */
    char *canonical;                  /* canonical request fields (owned) */
    msg_reject_t why;                 /* when rejected */
    char ev_id[MSG_EVENT_ID_LEN + 1]; /* the event to publish for it */
    char *ev_rk;                      /* its routing key (owned) */
    char *ev_body;                    /* its body (owned) */
    int64_t outbox_id;                /* > 0: mark this outbox row sent after publishing */
    bool park;                        /* also park the original in <queue>.dead */
    bool defer;                       /* send the original to the retry tier instead */
    int attempts;                     /* failed processing attempts */
} item_t;

/* Moves `it` to `to`; panics (logs, aborts) on a transition not allowed. */
void item_set_state(item_t *it, item_state_t to);
const char *item_state_name(item_state_t s);
/* Sets the event to publish for `it` (takes ownership of rk and body). */
void item_set_event(item_t *it, const char *event_id, char *rk, char *body);
/* Marks `it` rejected: verdict REJECT, parked, and its message.rejected
 * event (reason, detail, queue, payment_id when readable) encoded now. */
void item_reject(item_t *it, const char *queue, const msg_reject_t *why);
/* Rejects `it` as an idempotency conflict with the payload first processed
 * under its payment_id (canonical JSON, `prior`), naming the fields that
 * differ from `now`. */
void item_reject_conflict(item_t *it, const char *queue, const char *prior,
                          const msg_payment_t *now);

/* The request fields of the BATCHED items of items[0..n) as the JSON array
 * the stages' *_apply_batch() SQL functions take: [{payment_id, hash,
 * payload, payer, payee, amount, currency}, ...]. `pay` gives an item's
 * request fields. *count: how many. Caller frees. */
char *batch_requests_json(item_t *items, size_t n, const msg_payment_t *(*pay)(const item_t *),
                          size_t *count);
/* For a stage whose elements carry other fields: appends to b (started
 * empty) the separator and the open element {payment_id, hash, payload,
 * payee, amount, currency of p; the caller adds the rest, the closing
 * brace, and at the end the closing bracket ("[]" when nothing came). */
void batch_json_open(sbuf_t *b, const item_t *it, const msg_payment_t *p);

/* With a keyring: LL_OK if the delivery carries a signature of its body by
 * one of its keys, else LL_EREJECT with it->why = bad_signature (and the
 * payment_id when readable). Without one (NULL): LL_OK. */
int item_check_signature(item_t *it, const sign_keyring_t *keys) LL_MUSTCHECK;

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
