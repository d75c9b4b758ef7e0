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
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "log.h"
#include "money.h"
#include "msg_decode.h"
#include "msg_encode.h"
#include "risk.h"
#include "stage.h"
#include "xmalloc.h"

static char *risk_cfg; /* the JSON risk_apply_batch() gets */

/* "EUR:100,USD:200" -> {"EUR":100,"USD":200} */
static int parse_limits(const char *s, json_t *out, char *err, size_t errlen)
{
    char *copy = ll_xstrdup(s), *save = NULL;
    int rc = LL_OK;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *colon = strchr(tok, ':');
        int64_t v;
        if (colon)
            *colon = '\0';
        if (!colon || !money_currency_valid(tok) || money_parse_minor(colon + 1, &v) != LL_OK ||
            v < 1) {
            snprintf(err, errlen,
                     "risk.max_amount: '%s' is not CUR:minor_units with an ISO 4217 code and an "
                     "amount >= 1 (example: EUR:1000000,USD:2000000)",
                     tok);
            rc = LL_ECONFIG;
            break;
        }
        json_object_set_new(out, tok, json_integer(v));
    }
    free(copy);
    return rc;
}

static int load_blocklist(const char *path, json_t *out, char *err, size_t errlen)
{
    if (!path[0])
        return LL_OK;
    FILE *f = fopen(path, "r");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "risk.blocklist_file: cannot read %s: %s", path,
                 f ? "not a regular file" : strerror(errno));
        if (f)
            fclose(f);
        return LL_ECONFIG;
    }
    char line[256];
    int n = 0, rc = LL_OK;
    while (fgets(line, sizeof line, f)) {
        n++;
        line[strcspn(line, "\r\n#")] = '\0';
        char *p = line, *e;
        while (*p == ' ' || *p == '\t')
            p++;
        for (e = p + strlen(p); e > p && (e[-1] == ' ' || e[-1] == '\t'); e--)
            ;
        *e = '\0';
        if (!*p)
            continue;
        if (!msg_id_valid(p, strlen(p))) {
            snprintf(err, errlen, "%s line %d: '%s' is not an account id", path, n, p);
            rc = LL_ECONFIG;
            break;
        }
        json_array_append_new(out, json_string(p));
    }
    /* a read error (EISDIR, EIO...) must not pass for an empty blocklist:
     * every blocked id would then be approved */
    if (rc == LL_OK && ferror(f)) {
        snprintf(err, errlen, "risk.blocklist_file: cannot read %s: %s", path, strerror(errno));
        rc = LL_ECONFIG;
    }
    fclose(f);
    return rc;
}

int risk_config_json(const settings_t *cfg, char **out, char *err, size_t errlen)
{
    *out = NULL;
    json_t *limits = json_object(), *block = json_array();
    int rc = parse_limits(cfg->risk.max_amount, limits, err, errlen);
    if (rc == LL_OK)
        rc = load_blocklist(cfg->risk.blocklist_file, block, err, errlen);
    if (rc != LL_OK) {
        json_decref(limits);
        json_decref(block);
        return rc;
    }
    json_t *j = json_pack("{s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "version",
                          cfg->risk.ruleset_version, "max_amount", limits, "blocklist", block,
                          "velocity_count", (json_int_t)cfg->risk.velocity_count, "velocity_sum",
                          (json_int_t)cfg->risk.velocity_sum, "velocity_window_s",
                          (json_int_t)cfg->risk.velocity_window_s, "score_threshold",
                          (json_int_t)cfg->risk.score_threshold, "weight_new_payee",
                          (json_int_t)cfg->risk.weight_new_payee, "weight_above_median",
                          (json_int_t)cfg->risk.weight_above_median, "median_factor",
                          (json_int_t)cfg->risk.median_factor);
    *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!*out)
        log_panic("out of memory building the risk configuration");
    return LL_OK;
}

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

/* rules: a PostgreSQL text[] in text form, "{a,b}" (names need no quoting) */
static size_t split_rules(char *text, const char *out[MSG_RULES_MAX])
{
    size_t n = 0;
    char *p = text, *save = NULL;
    if (*p == '{')
        p++;
    p[strcspn(p, "}")] = '\0';
    for (char *tok = strtok_r(p, ",", &save); tok && n < MSG_RULES_MAX;
         tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
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
    size_t nrules = split_rules(rules_text, rules);
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
    if (!body)
        log_panic("cannot encode %s for %s", type, it->key);
    char ev_id[MSG_EVENT_ID_LEN + 1];
    msg_event_id(type, it->key, ev_id);
    it->verdict = VERDICT_NEW;
    item_set_event(it, ev_id, ll_xstrdup(type), body);
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
