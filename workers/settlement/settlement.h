/*
 * settlement.h - the settlement stage: consumes `settlement`
 * (payment.completed) and adds each payment to its payee's batch for the
 * window of its posted_at (settlement_apply_batch,
 * schemas/sql/functions/); its tick job closes the batches whose
 * window ended more than settlement.grace_ms ago, exactly once whatever the
 * number of replicas: a Redis lock, then a fencing token that PostgreSQL
 * checks before any write (settlement_close), then the fee and payout
 * transfers and the settlement.batch.closed event in one transaction.
 *
 * Public API: settlement_stage.
 */
#ifndef LL_SETTLEMENT_H
#define LL_SETTLEMENT_H

#include "runtime.h"

extern const stage_t settlement_stage;

#endif
