/*
 * ll_check.h - assertions on what a real worker published, shared by the
 * worker suites: the envelope of an event, copies of one event, the outbox
 * row behind it, and the message.rejected event and parked original of a
 * bad or conflicting input. Every check fails the test through LLW_ASSERT()
 * (ll_proc.h: with the workers' log tails) and says what it found.
 *
 * Public API: llc_jstr, llc_dump, llc_edit, llc_check_envelope, llc_same_event,
 * llc_check_outbox, llc_check_rejected, llc_find_parked, llc_check_conflict.
 */
#ifndef LL_CHECK_H
#define LL_CHECK_H

#include <stddef.h>

#include <jansson.h>

#include "db.h"
#include "ll_amqp.h"

/* The string member k of o, "" when absent or not a string. Borrowed. */
const char *llc_jstr(const json_t *o, const char *k);
/* j as compact JSON text; j is stolen (decref'd). Caller frees. For
 * building bad inputs. */
char *llc_dump(json_t *j);
/* Sets member `field` of j to `value` (stolen; NULL: removes the member),
 * then llc_dump(j). Caller frees. */
char *llc_edit(json_t *j, const char *field, json_t *value);

/* The envelope every event must have: message_id = event_id = the
 * deterministic id of (rk, key), AMQP type = routing key = body type, and
 * an occurred_at that parses. e is an object of llw_events_all(). */
void llc_check_envelope(const json_t *e, const char *rk, const char *key);

/* Every collected event of rk for payment_id has the same message_id and
 * body bytes as the first (which must exist and pass
 * llc_check_envelope()); returns how many there are. */
size_t llc_same_event(llw_events_t *ev, const char *rk, const char *payment_id);

/* payment_id has exactly one outbox row, of routing key rk, holding `body`
 * byte for byte. */
void llc_check_outbox(db_t *db, const char *payment_id, const char *rk, const char *body);

/*
 * The one message.rejected event for a bad input of `len` bytes consumed
 * from `queue` (payment_id: what the body's id reads as, NULL when
 * unreadable): its envelope, `reason`, queue, a non-empty detail that names
 * `field` (NULL: any detail), and payment_id present exactly when readable.
 * `label` starts each failure message. Returns the event's parsed body
 * (borrowed from ev).
 */
const json_t *llc_check_rejected(llw_events_t *ev, const char *queue, const char *label,
                                 const char *payment_id, const char *body, size_t len,
                                 const char *reason, const char *field);
/* The message of llw_queue_drain() array `dead` (drained from dead_queue)
 * holding `body` byte for byte: it must be there exactly once, with header
 * x-ledgerline-reason = reason. Returns it (borrowed from dead). */
const json_t *llc_find_parked(const json_t *dead, const char *dead_queue, const char *label,
                              const char *body, size_t len, const char *reason);

/*
 * Conflict number i (`changes` describes it) of payment_id, published as
 * `body` and consumed from `queue`: its message.rejected event exists, has
 * the envelope, reason idempotency_conflict, that payment_id and queue, and
 * a detail naming each of names[0..3) up to the first NULL; the body is
 * parked in `dead` (drained from dead_queue) with that reason and a detail
 * header.
 */
void llc_check_conflict(llw_events_t *ev, const json_t *dead, const char *queue,
                        const char *dead_queue, size_t i, const char *changes,
                        const char *const names[3], const char *payment_id, const char *body);

#endif
