/*
 * funds.c - the funds stage's table: see funds.h.
 *
 * One queue, three message types: the runtime picks each delivery's
 * decoder by its routing key (stage_t.consumes_any) and keys it
 * "deposit:<id>", "withdrawal:<id>" or "return:<withdrawal_id>", so ids of
 * different types never meet. funds_apply_batch() decides the batch in
 * queue order under the lock order of docs/ledger.md#locks; withdrawals
 * are screened with the risk stage's rule configuration
 * (common/risk_rules.h: the same settings and blocklist file), built once
 * and again on SIGHUP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "funds.h"
#include "log.h"
#include "msg_decode.h"
#include "msg_encode.h"
#include "reject.h"
#include "risk_rules.h"
#include "stage.h"
#include "xmalloc.h"

static char *rules_cfg; /* the JSON funds_apply_batch() gets */

static int funds_init(const settings_t *cfg)
{
    char err[512];
    char *c;
    if (risk_config_json(cfg, &c, err, sizeof err) != LL_OK) {
        log_error("%s", err);
        return LL_ECONFIG;
    }
    free(rules_cfg);
    rules_cfg = c;
    log_info("withdrawals are screened by the risk rules (ruleset %s)", cfg->risk.ruleset_version);
    return LL_OK;
}

static void funds_params(const char **out)
{
    out[0] = rules_cfg;
}

static void field(sbuf_t *b, const char *name, const char *value)
{
    sbuf_adds(b, ",\"");
    sbuf_adds(b, name);
    sbuf_adds(b, "\":");
    sbuf_json_str(b, value);
}

static void field_i64(sbuf_t *b, const char *name, int64_t value)
{
    sbuf_adds(b, ",\"");
    sbuf_adds(b, name);
    sbuf_adds(b, "\":");
    sbuf_i64(b, value);
}

/* The message's type and the fields funds_apply_batch() reads. */
static void funds_element(sbuf_t *b, const item_t *it)
{
    const char *type = it->dec->type;
    field(b, "type", type);
    if (it->dec == &msg_decoder_deposit_received) {
        const msg_deposit_t *d = it->msg;
        field(b, "deposit_id", d->deposit_id);
        field(b, "account", d->account);
        field_i64(b, "amount", d->amount);
        field(b, "currency", d->currency);
        field(b, "rail", d->rail);
        field(b, "rail_reference", d->rail_reference);
    } else if (it->dec == &msg_decoder_withdrawal_requested) {
        const msg_withdrawal_t *w = it->msg;
        field(b, "withdrawal_id", w->withdrawal_id);
        field(b, "account", w->account);
        field_i64(b, "amount", w->amount);
        field(b, "currency", w->currency);
        field(b, "rail", w->rail);
        if (w->has_destination)
            field(b, "destination", w->destination);
    } else {
        const msg_return_t *r = it->msg;
        field(b, "withdrawal_id", r->withdrawal_id);
        field(b, "rail_reference", r->rail_reference);
        if (r->has_reason)
            field(b, "reason", r->reason);
    }
}

/* A new decision (its event), or an unusable return (rejected, parked). */
static void decide(item_t *it, const stage_row_t *r)
{
    if (stage_col_is(r, "verdict", "unusable")) {
        msg_reject_t why = {.reason = MSG_REASON_PROCESSING_FAILED};
        snprintf(why.field, sizeof why.field, "withdrawal_id");
        snprintf(why.detail, sizeof why.detail, "withdrawal.returned: %s",
                 stage_col(r, "prior_payload"));
        item_reject(it, "funds", &why);
        return;
    }
    const char *outcome = stage_col(r, "outcome");
    const char *type;
    char *body;
    int64_t now = clock_now_ms();
    if (it->dec == &msg_decoder_deposit_received) {
        const msg_deposit_t *d = it->msg;
        bool ok = strcmp(outcome, "completed") == 0;
        type = ok ? MSG_TYPE_DEPOSIT_COMPLETED : MSG_TYPE_DEPOSIT_FAILED;
        body = ok ? msg_encode_deposit_completed(d, stage_col(r, "transfer_id"), now)
                  : msg_encode_deposit_failed(d, outcome, now);
    } else if (it->dec == &msg_decoder_withdrawal_requested) {
        const msg_withdrawal_t *w = it->msg;
        bool ok = strcmp(outcome, "completed") == 0;
        type = ok ? MSG_TYPE_WITHDRAWAL_COMPLETED : MSG_TYPE_WITHDRAWAL_FAILED;
        char *text = ll_xstrdup(stage_col(r, "rules"));
        const char *rules[MSG_RULES_MAX];
        size_t n = stage_split_rules(text, rules);
        body = ok ? msg_encode_withdrawal_completed(w, stage_col(r, "transfer_id"), now)
                  : msg_encode_withdrawal_failed(w, outcome, rules, n, now);
        free(text);
    } else {
        type = MSG_TYPE_WITHDRAWAL_REVERSED;
        body = msg_encode_withdrawal_reversed(
            it->msg, stage_col(r, "account"), strtoll(stage_col(r, "amount"), NULL, 10),
            stage_col(r, "currency"), stage_col(r, "transfer_id"), now);
    }
    stage_new_event(it, type, body, outcome);
}

static const msg_decoder_t *const funds_types[] = {
    &msg_decoder_deposit_received,
    &msg_decoder_withdrawal_requested,
    &msg_decoder_withdrawal_returned,
    NULL,
};

const stage_t funds_stage = {
    .name = "funds",
    .worker = "funds-worker",
    .queue = "funds",
    .http_port = 9475,
    .consumes_any = funds_types,
    .verify = STAGE_KEYS_REQUESTS,
    .apply_sql = "SELECT verdict, outcome, transfer_id, rules, account, amount, currency, "
                 "prior_payload FROM funds_apply_batch($1::jsonb, $2::jsonb) ORDER BY ord",
    .nparams = 1,
    .params = funds_params,
    .element = funds_element,
    .replays = true,
    .decide = decide,
    .init = funds_init,
};
