/*
 * payment.h - the payment stage: consumes `payments` (payment.approved,
 * signed by risk when signing.approval_keys_file is set), posts one
 * double-entry transfer per payment with payment_apply_batch()
 * (schemas/sql/functions/), and publishes payment.completed or
 * payment.failed (insufficient_funds, unknown_account, account_frozen,
 * currency_mismatch, balance_overflow).
 *
 * Public API: payment_stage.
 */
#ifndef LL_PAYMENT_H
#define LL_PAYMENT_H

#include "runtime.h"

extern const stage_t payment_stage;

#endif
