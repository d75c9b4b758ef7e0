/*
 * risk.c - the risk stage's table: see risk.h.
 *
 * The rules run in SQL, in the batch transaction, so a decision, the
 * velocity counts it is based on, the processed row and the outbox event
 * commit together: a payment is counted once however often it is
 * delivered, and replicas count one after the other (payer locks). The C
 * side builds the rule configuration (settings + blocklist file) once, and
 * again on SIGHUP; a bad file on reload keeps the previous configuration.
 * The runtime signs what it publishes (stage_t.sign).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "msg_decode.h"
#include "msg_encode.h"
#include "risk.h"
#include "risk_rules.h"
#include "stage.h"

static char *risk_cfg; /* the JSON risk_apply_batch() gets */

static int risk_init(const settings_t *cfg)
{
    char err[512];
    char *c;
    if (risk_config_json(cfg, &c, err, sizeof err) != LL_OK) {
        log_error("%s", err);
        return LL_ECONFIG;
    }
    free(risk_cfg);
    risk_cfg = c;
    log_info("risk rules (ruleset %s): %s", cfg->risk.ruleset_version, risk_cfg);
    return LL_OK;
}

static void risk_params(const char **out)
{
    out[0] = risk_cfg;
}

/* A new decision: approved or declined, with its score and rules. */
static void decide(item_t *it, const stage_row_t *r)
{
    const msg_payment_t *p = it->msg;
    const char *decision = stage_col(r, "decision");
    int score = atoi(stage_col(r, "score"));
    char rules_text[1024];
    snprintf(rules_text, sizeof rules_text, "%s", stage_col(r, "rules"));
    const char *rules[MSG_RULES_MAX];
    size_t nrules = stage_split_rules(rules_text, rules);
    int64_t now = clock_now_ms();
    const char *type;
    char *body;
    if (strcmp(decision, "approved") == 0) {
        type = MSG_TYPE_APPROVED;
        body = msg_encode_approved(p, score, rules, nrules, now);
    } else {
        type = MSG_TYPE_DECLINED;
        body = msg_encode_declined(p, rules, nrules, now);
    }
    stage_new_event(it, type, body, decision);
    log_debugx((&(log_ctx_t){.queue = "risk", .payment_id = it->key}), "%s (score %d)", decision,
               score);
}

const stage_t risk_stage = {
    .name = "risk",
    .worker = "risk-worker",
    .queue = "risk",
    .http_port = 9471,
    .consumes = &msg_decoder_requested,
    .verify = STAGE_KEYS_REQUESTS,
    .sign = STAGE_KEYS_APPROVALS,
    .apply_sql = "SELECT verdict, decision, score, rules, prior_payload "
                 "FROM risk_apply_batch($1::jsonb, $2::jsonb) ORDER BY ord",
    .nparams = 1,
    .params = risk_params,
    .replays = true,
    .decide = decide,
    .init = risk_init,
};
