/*
 * cmd_risk.c - `ledgerctl risk show PAYMENT_ID`: the risk stage's recorded
 * decision for a payment (risk_decisions): decision, score, the rules that
 * fired and the rule-set version that decided it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* "{a,b}" -> JSON array of strings (rule names need no unquoting). */
static json_t *rules_json(const char *text)
{
    json_t *arr = json_array();
    char *copy = strdup(text), *save = NULL;
    char *p = copy + (copy[0] == '{');
    p[strcspn(p, "}")] = '\0';
    for (char *tok = strtok_r(p, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(tok));
    free(copy);
    return arr;
}

int cmd_risk_show(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("risk show");
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", NULL)) != -1)
        return ch == 'h' ? 0 : 2;
    const char *id;
    int rc = ctl_id_arg(cmd, argc, argv, "payment id", &id);
    if (rc)
        return rc;
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    const char *params[] = {id};
    PGresult *r;
    if (db_query(db, &r,
                 "SELECT payment_id, payer, payee, amount, currency, decision, score, rules, "
                 "ruleset_version, " CTL_SQL_TIME(
                     "decided_at") " "
                                   "FROM risk_decisions WHERE payment_id = $1",
                 1, params) != LL_OK)
        return ctl_fail("run `ledgerctl migrate` if the schema is missing",
                        "reading the decision: %s", db_errstr(db));
    if (PQntuples(r) != 1) {
        PQclear(r);
        char fix[256];
        snprintf(fix, sizeof fix,
                 "check the id; a payment the risk-worker rejected as bad input has no decision: "
                 "`ledgerctl dlq list risk --payment-id %s` shows it if it was parked",
                 id);
        return ctl_fail(fix, "no risk decision for payment '%s'", id);
    }
    if (c->json) {
        ctl_json_print(json_pack(
            "{s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:o, s:s, s:s}", "payment_id", PQgetvalue(r, 0, 0),
            "payer", PQgetvalue(r, 0, 1), "payee", PQgetvalue(r, 0, 2), "amount",
            (json_int_t)strtoll(PQgetvalue(r, 0, 3), NULL, 10), "currency", PQgetvalue(r, 0, 4),
            "decision", PQgetvalue(r, 0, 5), "score", atoi(PQgetvalue(r, 0, 6)), "rules",
            rules_json(PQgetvalue(r, 0, 7)), "ruleset_version", PQgetvalue(r, 0, 8), "decided_at",
            PQgetvalue(r, 0, 9)));
    } else {
        printf("payment   %s\n%s -> %s, %s %s\ndecision  %s\nscore     %s\nrules     %s\n"
               "ruleset   %s\ndecided   %s\n",
               PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
               PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5), PQgetvalue(r, 0, 6), PQgetvalue(r, 0, 7),
               PQgetvalue(r, 0, 8), PQgetvalue(r, 0, 9));
    }
    PQclear(r);
    return 0;
}
