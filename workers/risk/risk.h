/*
 * risk.h - the risk stage, the front door: consumes `risk`
 * (payment.requested, signed by producers when signing.request_keys_file
 * is set), validates every request (rejections: message.rejected + a
 * parked copy in risk.dead), deduplicates, evaluates the rules of the
 * `risk` settings in a fixed order inside the batch transaction
 * (risk_apply_batch, schemas/sql/functions/), records every decision in
 * risk_decisions, and publishes payment.approved (request + risk {score,
 * rules}, signed with signing.approval_keys_file) or payment.declined
 * (reason risk_declined, rules).
 *
 * Public API: risk_stage (its rule configuration: common/risk_rules.h).
 */
#ifndef LL_RISK_H
#define LL_RISK_H

#include "runtime.h"

extern const stage_t risk_stage;

#endif
