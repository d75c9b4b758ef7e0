/*
 * reject.h - the rejection of a message a stage cannot use
 * (docs/contract.md#rejections): its message.rejected event, encoded when
 * the item is rejected, and its parked copy (the runtime publishes both).
 *
 * Public API: item_reject, item_reject_conflict.
 */
#ifndef LL_REJECT_H
#define LL_REJECT_H

#include "batch.h"

/* Marks `it` rejected: verdict REJECT, parked, and its message.rejected
 * event (reason, detail, queue, payment_id when readable, refund_id when
 * the item's key is one) encoded now; the event id is of it->key. */
void item_reject(item_t *it, const char *queue, const msg_reject_t *why);
/* Rejects `it` as an idempotency conflict with the payload first processed
 * under its key (canonical JSON, `prior`), naming the fields that differ
 * from it->canonical. */
void item_reject_conflict(item_t *it, const char *queue, const char *prior);

#endif
