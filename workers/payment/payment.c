/*
 * payment.c - the payment stage's callbacks: see payment.h.
 *
 * apply() is one statement per batch: payment_apply_batch()
 * (schemas/sql/003_payment_batch.sql) locks every account the batch
 * touches in sorted-id order (so concurrent workers never deadlock on each
 * other's accounts), then decides each payment in queue order, so the
 * outcome equals one-at-a-time processing. apply() then encodes each
 * outcome event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "payment.h"
#include "sign.h"
#include "stage.h"
#include "xmalloc.h"

static sign_keyring_t *approval_keys; /* verifies payment.approved */

static int payment_init(const settings_t *cfg)
{
    char err[512];
    if (sign_reload(cfg->signing.approval_keys_file, &approval_keys, err, sizeof err) != LL_OK) {
        log_error("signing: %s", err);
        return LL_ECONFIG;
    }
    if (!approval_keys)
        log_warn("signing.approval_keys_file is not set: approvals are not verified, so anyone "
                 "who may publish on ledgerline.events can skip risk");
    return LL_OK;
}

static int payment_decode(item_t *it)
{
    if (item_check_signature(it, approval_keys) != LL_OK)
        return LL_EREJECT;
    msg_approved_t *a = ll_xcalloc(1, sizeof *a);
    int rc = msg_approved_decode(it->d.body, it->d.len, a, &it->why);
    if (rc != LL_OK) {
        free(a);
        return stage_undecodable(it, rc);
    }
    return stage_decoded(it, a, &a->payment);
}

static void payment_release(item_t *it)
{
    if (it->msg) {
        msg_approved_clear(it->msg);
        free(it->msg);
        it->msg = NULL;
    }
}

/* Sets the item's outcome from row `row` of payment_apply_batch(): columns
 * ord, verdict, outcome, transfer_id, prior_payload. */
static void decide(item_t *it, PGresult *r, int row)
{
    const msg_approved_t *a = it->msg;
    const char *verdict = PQgetvalue(r, row, 1);
    const char *outcome = PQgetvalue(r, row, 2);
    if (strcmp(verdict, "duplicate") == 0) {
        it->verdict = VERDICT_DUPLICATE;
        return;
    }
    if (strcmp(verdict, "conflict") == 0) {
        item_reject_conflict(it, "payments", PQgetvalue(r, row, 4), &a->payment);
        return;
    }
    int64_t now = clock_now_ms();
    char ev_id[MSG_EVENT_ID_LEN + 1];
    char *body;
    const char *type;
    if (strcmp(outcome, "completed") == 0) {
        type = MSG_TYPE_COMPLETED;
        body = msg_encode_completed(&a->payment, PQgetvalue(r, row, 3), now, now);
    } else {
        type = MSG_TYPE_FAILED;
        body = msg_encode_failed(&a->payment, outcome, now);
    }
    if (!body)
        log_panic("cannot encode %s for %s (outcome %s)", type, it->payment_id, outcome);
    msg_event_id(type, it->payment_id, ev_id);
    it->verdict = VERDICT_NEW;
    item_set_event(it, ev_id, ll_xstrdup(type), body);
}

static const msg_payment_t *request_of(const item_t *it)
{
    return &((const msg_approved_t *)it->msg)->payment;
}

static int payment_apply(db_t *db, item_t *items, size_t n)
{
    size_t count;
    char *batch = batch_requests_json(items, n, request_of, &count);
    const char *params[] = {batch};
    int rc = stage_apply_rows(db,
                              "SELECT ord, verdict, outcome, transfer_id, prior_payload "
                              "FROM payment_apply_batch($1::jsonb) ORDER BY ord",
                              1, params, items, n, count, decide);
    free(batch);
    return rc;
}

const rt_stage_t payment_stage = {
    .name = "payment",
    .worker = "payment-worker",
    .queue = "payments",
    .decode = payment_decode,
    .release = payment_release,
    .apply = payment_apply,
    .init = payment_init,
    .reload = payment_init,
};
