/*
 * outbox.h - the transactional outbox (docs/ledger.md#outbox): table outbox
 * holds every event, written once, and outbox_pending the ones the broker
 * has not confirmed yet.
 *
 * In the batch transaction, after the stage decided: outbox_write() stores
 * the outcome event of every new item and its pending mark (one statement
 * for the batch) and fetches the stored event of every duplicate (one
 * SELECT); a tick job stores its event with outbox_add(). After publishing
 * with confirms: outbox_mark_sent(). A crash in between leaves events
 * pending; outbox_claim() hands them to exactly one sweeper: it claims
 * pending events older than `age` with FOR UPDATE SKIP LOCKED and a lease,
 * so two workers never republish the same events at once (a sweeper that
 * dies loses its lease).
 *
 * Public API: outbox_write, outbox_add, outbox_unpend, outbox_mark_sent, outbox_row_t,
 * outbox_claim, outbox_rows_free.
 */
#ifndef LL_OUTBOX_H
#define LL_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "db.h"

#define OUTBOX_EXCHANGE "ledgerline.events"

/* For the BATCHED items of `items`: VERDICT_NEW -> row inserted, outbox_id
 * set; VERDICT_DUPLICATE -> ev_* and outbox_id set from the stored row.
 * Inside the caller's transaction. db error codes. */
int outbox_write(db_t *db, const char *stage, item_t *items, size_t n) LL_MUSTCHECK;

/* Stores one event (payment_id may be NULL: a batch event) and its pending
 * mark, inside the caller's transaction; *id (may be NULL) gets its id. */
int outbox_add(db_t *db, const char *stage, const char *payment_id, const char *event_id,
               const char *routing_key, const char *body, int64_t *id) LL_MUSTCHECK;

/* Marks events sent: their pending marks go. outbox_unpend() inside the
 * caller's transaction (the runtime folds the marks of one batch into the
 * next batch's transaction); outbox_mark_sent() in a transaction of its own
 * that does not wait for the WAL flush. Either way a mark lost in a crash
 * only makes the sweep publish the event again. */
int outbox_unpend(db_t *db, const int64_t *ids, size_t n) LL_MUSTCHECK;
int outbox_mark_sent(db_t *db, const int64_t *ids, size_t n) LL_MUSTCHECK;

typedef struct outbox_row {
    int64_t id;
    char *exchange, *routing_key, *event_id, *body;
} outbox_row_t;

/* Claims up to `limit` pending events of `stage` older than age_ms for
 * `instance` (lease 60 s). A stage sweeps only its own rows: only it can
 * publish them as it would have (risk signs its approvals). On LL_OK *rows
 * (caller frees with outbox_rows_free) holds *n rows. */
int outbox_claim(db_t *db, const char *stage, const char *instance, int64_t age_ms, int limit,
                 outbox_row_t **rows, size_t *n) LL_MUSTCHECK;
void outbox_rows_free(outbox_row_t *rows, size_t n);

#endif
