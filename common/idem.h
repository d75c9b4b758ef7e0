/*
 * idem.h - the Redis fast path and in-flight guard
 * (docs/contract.md#idempotency), per (ledger, stage, payment_id): key
 * "<prefix>idem:<scope>:<payment_id>", scope = "<ledger id>:<stage>". The
 * ledger id (table ledger_identity) keeps a Redis that outlived its
 * database, or serves several, from answering for a payment this ledger
 * never processed.
 *
 *   before work: SET NX "P|<hash>|<instance>" with the in-flight TTL;
 *   after publish: SET "D|<hash>|<event_id>|<routing key>|<event body>"
 *                  with the done TTL.
 *
 * idem_claim() decides, for each DECODED item of a batch:
 *   - the key was free, or holds our own claim, or the message is a
 *     redelivery (its first holder most likely died): go to PostgreSQL;
 *   - "D" with the same hash: a duplicate answered without database work;
 *     the stored event is set on the item to publish again (COMMITTED);
 *   - "P" of another instance: in flight elsewhere: defer (COMMITTED, the
 *     item goes to the retry tier and comes back later);
 *   - anything else ("D" with another hash, Redis down, garbage): go to
 *     PostgreSQL, which always decides correctly.
 * Redis is never trusted for correctness, only for speed.
 *
 * Public API: idem_claim, idem_done.
 */
#ifndef LL_IDEM_H
#define LL_IDEM_H

#include "batch.h"
#include "kv.h"

/* Returns the number of items answered or deferred (now COMMITTED). */
size_t idem_claim(kv_t *kv, const char *scope, const char *instance, item_t *items, size_t n,
                  int64_t inflight_ttl_ms);

/* Records the outcome of every PUBLISHED item processed now that carries
 * an outcome event; best effort. A replayed duplicate is not recorded
 * again: the record's TTL counts from the first processing, so it never
 * outlives the processed row it stands for (retention.window_s is at
 * least twice worker.done_ttl_s; docs/ledger.md#retention). */
void idem_done(kv_t *kv, const char *scope, item_t *items, size_t n, int64_t done_ttl_ms);

#endif
