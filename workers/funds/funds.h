/*
 * funds.h - the funds stage: money that enters or leaves through an
 * external rail. Consumes `funds`: deposit.received (credits a customer
 * from sys:funding:<CUR>, once per deposit_id), withdrawal.requested
 * (screened by the risk rules, then debits the customer to
 * sys:withdrawals:<CUR>) and withdrawal.returned (the rail failed a
 * completed withdrawal: its money goes back, once). Decided in
 * funds_apply_batch (schemas/sql/functions/); publishes deposit.completed
 * or deposit.failed, withdrawal.completed or withdrawal.failed, and
 * withdrawal.reversed (docs/contract.md#deposits-and-withdrawals).
 *
 * Public API: funds_stage.
 */
#ifndef LL_FUNDS_H
#define LL_FUNDS_H

#include "runtime.h"

extern const stage_t funds_stage;

#endif
