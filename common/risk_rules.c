/*
 * risk_rules.c - the risk rule configuration: see risk_rules.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "err.h"
#include "log.h"
#include "money.h"
#include "msg.h"
#include "risk_rules.h"
#include "xmalloc.h"

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
