/*
 * refund.h - the refund stage: consumes `refunds` (refund.requested from
 * producers) and decides each refund exactly once per refund_id in
 * refund_apply_batch (schemas/sql/functions/): a transfer from the
 * payment's payee back to its payer, never past what the payment has left
 * to refund, netted by the payee's settlement batch; publishes
 * refund.completed or refund.failed (docs/contract.md#refunds).
 *
 * Public API: refund_stage.
 */
#ifndef LL_REFUND_H
#define LL_REFUND_H

#include "runtime.h"

extern const stage_t refund_stage;

#endif
