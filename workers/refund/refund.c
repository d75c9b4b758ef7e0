/*
 * refund.c - the refund stage's table: see refund.h.
 *
 * refund_apply_batch() decides the batch in queue order under the lock
 * order of docs/ledger.md#locks (the payee's lock serialises two
 * refunds of one payment on two workers); a new decision here becomes its
 * event. The settlement window is a parameter: a refund of a payment
 * already paid out joins the payee's next batch, created for the current
 * window when the payee has none open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "msg_decode.h"
#include "msg_encode.h"
#include "refund.h"
#include "stage.h"

static char window_param[24] = "86400"; /* settlement.window_s, $2 of the batch function */

static int refund_init(const settings_t *cfg)
{
    snprintf(window_param, sizeof window_param, "%lld", (long long)cfg->settlement.window_s);
    return LL_OK;
}

static void refund_params(const char **out)
{
    out[0] = window_param;
}

/* The request fields refund_apply_batch() reads (ids of a checked charset). */
static void refund_element(sbuf_t *b, const item_t *it)
{
    const msg_refund_t *r = it->msg;
    sbuf_adds(b, ",\"refund_id\":");
    sbuf_json_str(b, r->refund_id);
    sbuf_adds(b, ",\"payment_id\":");
    sbuf_json_str(b, r->payment_id);
    sbuf_adds(b, ",\"amount\":");
    sbuf_i64(b, r->amount);
    if (r->has_reason) {
        sbuf_adds(b, ",\"reason\":");
        sbuf_json_str(b, r->reason);
    }
}

static int64_t col_i64(const stage_row_t *r, const char *name)
{
    return strtoll(stage_col(r, name), NULL, 10);
}

/* A new decision: completed (transfer, totals, batch) or refused. */
static void decide(item_t *it, const stage_row_t *r)
{
    const msg_refund_t *rq = it->msg;
    const char *outcome = stage_col(r, "outcome");
    const char *type;
    char *body;
    if (strcmp(outcome, "completed") == 0) {
        msg_refund_done_t d;
        memset(&d, 0, sizeof d);
        snprintf(d.payer, sizeof d.payer, "%s", stage_col(r, "payer"));
        snprintf(d.payee, sizeof d.payee, "%s", stage_col(r, "payee"));
        snprintf(d.currency, sizeof d.currency, "%s", stage_col(r, "currency"));
        snprintf(d.transfer_id, sizeof d.transfer_id, "%s", stage_col(r, "transfer_id"));
        snprintf(d.batch_id, sizeof d.batch_id, "%s", stage_col(r, "batch_id"));
        d.refunded_total = col_i64(r, "refunded_total");
        d.remaining = col_i64(r, "remaining");
        type = MSG_TYPE_REFUND_COMPLETED;
        body = msg_encode_refund_completed(rq, &d, clock_now_ms());
    } else {
        type = MSG_TYPE_REFUND_FAILED;
        body = msg_encode_refund_failed(rq, outcome, clock_now_ms());
    }
    stage_new_event(it, type, body, outcome);
}

const stage_t refund_stage = {
    .name = "refund",
    .worker = "refund-worker",
    .queue = "refunds",
    .http_port = 9474,
    .consumes = &msg_decoder_refund_requested,
    .verify = STAGE_KEYS_REQUESTS,
    .apply_sql = "SELECT verdict, outcome, transfer_id, payer, payee, currency, refunded_total, "
                 "remaining, batch_id, prior_payload "
                 "FROM refund_apply_batch($1::jsonb, $2::bigint) ORDER BY ord",
    .nparams = 1,
    .params = refund_params,
    .element = refund_element,
    .replays = true,
    .decide = decide,
    .init = refund_init,
};
