/*
 * ll_amqp.h - the broker side of a worker test: queue depths, purges and
 * waits on consumers and drained queues; publishing raw messages and
 * payment.approved the way the risk stage does, with publisher confirms;
 * taking every message of a queue (with its headers); and event taps,
 * private queues bound to ledgerline.events that collect what the workers
 * publish. Failures go through LLW_ASSERT()/the waits of ll_wait.h, with
 * the workers' log tails.
 *
 * Public API: llw_queue_depth, llw_purge, llw_assert_queues_empty,
 * llw_wait_consuming, llw_wait_drained, llw_publish_raw,
 * llw_publish_approved, llw_confirm, llw_queue_drain, llw_header,
 * llw_events_t, llw_events_open, llw_events_collect, llw_events_all,
 * llw_events_count, llw_events_distinct, llw_events_find,
 * llw_events_close, llw_wait_events.
 */
#ifndef LL_AMQP_H
#define LL_AMQP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mq.h"
#include "msg.h"

/* ---- queues --------------------------------------------------------------- */

/* Ready messages of `queue` (fails the test if it does not exist). */
uint32_t llw_queue_depth(mq_t *m, const char *queue);
/* Purges each of the NULL-terminated queue names. */
void llw_purge(mq_t *m, const char *const *queues);
/* Each of the NULL-terminated queues holds no ready message (fails the
 * test, with the logs, naming the first that does). */
void llw_assert_queues_empty(mq_t *m, const char *const *queues);
/* Until `queue` has at least `consumers` consumers. */
void llw_wait_consuming(mq_t *m, const char *queue, uint32_t consumers, int timeout_ms);
/* Until `queue` has shown 0 ready messages for 300 ms in a row. Ready
 * only: unacked deliveries are not counted. */
void llw_wait_drained(mq_t *m, const char *queue, int timeout_ms);

/* ---- publishing and reading messages -------------------------------------- */

/* Publishes one persistent, mandatory message (content_type JSON,
 * message_id and type may be NULL). Not confirmed: see llw_confirm(). */
void llw_publish_raw(mq_t *m, const char *exchange, const char *rk, const char *message_id,
                     const char *type, const void *body, size_t len);
/* Encodes p as payment.approved (score 0, no rules) and publishes it the
 * way the risk stage does: exchange ledgerline.events, routing key and
 * type payment.approved, message_id = payment_id. Returns the body
 * (caller frees). Not confirmed. */
char *llw_publish_approved(mq_t *m, const msg_payment_t *p, int64_t occurred_ms);
/* Waits for every publish since the last call to be confirmed and routed. */
void llw_confirm(mq_t *m);

/* Takes (and acks) every ready message of `queue`: a new JSON array of
 * {"routing_key", "message_id", "type", "body", "headers": {name: value}}
 * (string values, integers as integers). Caller decrefs. */
json_t *llw_queue_drain(mq_t *m, const char *queue);
/* The string header `name` of a message object of llw_queue_drain(), or
 * NULL. Borrowed. */
const char *llw_header(const json_t *msg, const char *name);

/* ---- event taps ------------------------------------------------------------ */

/*
 * An event tap: a classic queue "llt.events.<pid>.<n>" of its own
 * connection, bound to ledgerline.events with `binding_key` (NULL: "#"),
 * purged, expiring 10 minutes after its last use (so a test that dies
 * leaves nothing behind for long). llw_events_collect() moves what is
 * ready into memory; the rest read that. Survives a broker restart
 * (reconnects and redeclares when a read fails).
 */
typedef struct llw_events llw_events_t;
llw_events_t *llw_events_open(const char *binding_key);
/* Reads every ready message; returns how many were new. */
size_t llw_events_collect(llw_events_t *ev);
/* Everything collected, in arrival order: objects {"routing_key",
 * "message_id", "type", "body" (string), "json" (the parsed body or
 * null)}. Borrowed. */
json_t *llw_events_all(llw_events_t *ev);
/* Collected events with routing key `rk` (NULL: any) and body payment_id
 * `payment_id` (NULL: any). */
size_t llw_events_count(llw_events_t *ev, const char *rk, const char *payment_id);
/* Distinct event_ids (from the bodies) among events with routing key rk. */
size_t llw_events_distinct(llw_events_t *ev, const char *rk);
/* The nth (0-based) collected event with that rk and payment_id; NULL if
 * none. Borrowed. */
json_t *llw_events_find(llw_events_t *ev, const char *rk, const char *payment_id, size_t nth);
/* Collects ev, then counts the events with routing key rk whose body has
 * the string `field` equal to `id` (a refund_id, a deposit_id...); *first
 * gets the first (borrowed, NULL if none). Fails the test if two copies
 * of one differ in their bytes (an outcome is published once, replayed
 * identically). */
size_t llw_events_with(llw_events_t *ev, const char *rk, const char *field, const char *id,
                       json_t **first);
/* Deletes the queue, closes, frees. NULL is a no-op. */
void llw_events_close(llw_events_t *ev);
/* Collects ev until it holds at least n events of routing key rk for
 * payment_id (NULL: any payment), as llw_events_count() counts them
 * (fails the test after timeout_ms). Waiting for one payment's outcome, it
 * fails at once when the other outcome of that payment comes instead
 * (payment.failed for payment.completed, payment.declined for
 * payment.approved, and so on for refunds, deposits and withdrawals):
 * an outcome is final, so the wanted one can no longer come. */
void llw_wait_events(llw_events_t *ev, const char *rk, const char *payment_id, size_t n,
                     int timeout_ms);

#endif
