/*
 * payment.h - the payment stage: consumes `payments` (payment.approved),
 * posts one double-entry transfer per payment through payment_apply()
 * (schemas/sql/002_runtime.sql), and decides payment.completed or
 * payment.failed (insufficient_funds, unknown_account, account_frozen,
 * currency_mismatch).
 *
 * Public API: payment_stage.
 */
#ifndef LL_PAYMENT_H
#define LL_PAYMENT_H

#include "runtime.h"

extern const rt_stage_t payment_stage;

#endif
