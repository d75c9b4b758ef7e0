/*
 * payment.c - the payment stage's table: see payment.h.
 *
 * payment_apply_batch() decides the batch in queue order, as
 * one-at-a-time processing would, under the lock order of
 * docs/ledger.md#locks; a new decision here becomes its event.
 */
#include <string.h>

#include "clock.h"
#include "msg_encode.h"
#include "payment.h"
#include "stage.h"

/* A new decision: completed (transfer_id) or the refusal in outcome. */
static void decide(item_t *it, const stage_row_t *r)
{
    const msg_approved_t *a = it->msg;
    const char *outcome = stage_col(r, "outcome");
    int64_t now = clock_now_ms();
    char *body;
    const char *type;
    if (strcmp(outcome, "completed") == 0) {
        type = MSG_TYPE_COMPLETED;
        body = msg_encode_completed(&a->payment, stage_col(r, "transfer_id"), now, now);
    } else {
        type = MSG_TYPE_FAILED;
        body = msg_encode_failed(&a->payment, outcome, now);
    }
    stage_new_event(it, type, body, outcome);
}

const stage_t payment_stage = {
    .name = "payment",
    .worker = "payment-worker",
    .queue = "payments",
    .http_port = 9472,
    .consumes = &msg_decoder_approved,
    .verify = STAGE_KEYS_APPROVALS,
    .apply_sql = "SELECT verdict, outcome, transfer_id, prior_payload "
                 "FROM payment_apply_batch($1::jsonb) ORDER BY ord",
    .replays = true,
    .decide = decide,
};
