/*
 * stage.h - what every stage implementation (workers/<kind>/) does the same
 * way, so each keeps only what differs: which codec decodes its messages,
 * which SQL function decides its batch, and what each result row means.
 *
 * Public API: stage_decoded, stage_undecodable, stage_apply_rows.
 */
#ifndef LL_STAGE_H
#define LL_STAGE_H

#include "batch.h"
#include "db.h"

/* A stage decoded it->d into msg, whose request fields are p: sets it->msg,
 * payment_id, canonical and hash. LL_OK. */
int stage_decoded(item_t *it, void *msg, const msg_payment_t *p);

/* The codec refused it->d with `rc` (it->why is set): fills the payment_id
 * when readable and returns LL_EREJECT; out of memory is fatal. */
int stage_undecodable(item_t *it, int rc);

/* Runs `sql` (its params: nparams text values) once for the batch; it must
 * return one row per BATCHED item of items[0..n), in their order, which
 * decide() turns into the item's verdict. `count` is the number of BATCHED
 * items (a mismatch is LL_EDB). db error codes. */
int stage_apply_rows(db_t *db, const char *sql, int nparams, const char *const *params,
                     item_t *items, size_t n, size_t count,
                     void (*decide)(item_t *it, PGresult *r, int row)) LL_MUSTCHECK;

#endif
