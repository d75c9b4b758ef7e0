/*
 * cmd_statement.c - `ledgerctl account statement ID [--from T] [--to T]
 * [--csv | --json]`: an account's statement over [from, to): the opening
 * balance, every entry in the period (time, transfer kind and ref, the
 * other account, amount, balance after) and the closing balance.
 *
 * Balances are sums of entries, not the entries' recorded balance_after:
 * a transfer's time is its transaction's start, and two transactions can
 * commit in the other order than they started, so a time cut may fall
 * between entries that are not neighbours in the account's chain. Summing
 * keeps opening + entries = closing exact for any cut; within a quiet
 * period the running balance equals balance_after (`verify` checks that
 * chain). Amounts in the CSV are integers in minor units.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* clang-format off */
static const char *const statement_sql =
    "WITH a AS (SELECT id, currency FROM accounts WHERE id = $1),"
    " w AS (SELECT e.id, t.created_at, t.kind, t.ref,"
    "              CASE WHEN e.amount < 0 THEN t.credit_account ELSE t.debit_account END AS other,"
    "              e.amount"
    "       FROM entries e JOIN transfers t ON t.id = e.transfer_id"
    "       WHERE e.account_id = $1 AND t.created_at < $3::timestamptz),"
    " o AS (SELECT coalesce(sum(amount), 0)::bigint AS opening FROM w"
    "       WHERE created_at < $2::timestamptz)"
    " SELECT a.currency, " CTL_SQL_TIME("$2::timestamptz") ", " CTL_SQL_TIME(
        "$3::timestamptz") ","
                           "        o.opening, w.id, " CTL_SQL_TIME(
                               "w.created_at") ", w.kind, w.ref, w.other, w.amount,"
                                               "        (o.opening + sum(w.amount) OVER (ORDER BY "
                                               "w.created_at, w.id))::bigint"
                                               " FROM a CROSS JOIN o LEFT JOIN w ON w.created_at "
                                               ">= $2::timestamptz"
                                               " ORDER BY w.created_at, w.id";
/* clang-format on */

static int64_t i64(PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int cmd_account_statement(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("account statement");
    static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"csv", no_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    const char *from = "-infinity", *to = "infinity";
    bool csv = false;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        if (ch == 'f')
            from = optarg;
        else if (ch == 't')
            to = optarg;
        else if (ch == 'c')
            csv = true;
        else
            return ch == 'h' ? 0 : 2;
    }
    const char *id;
    int rc = ctl_id_arg(cmd, argc, argv, "account id", &id);
    if (rc)
        return rc;
    if (csv && c->json)
        return ctl_usage_error(cmd, "--csv and --json exclude each other");
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    if ((rc = ctl_period(cmd, db, from, to)) != 0)
        return rc;
    PGresult *r;
    const char *params[] = {id, from, to};
    if (db_query(db, &r, statement_sql, 3, params) != LL_OK)
        return ctl_fail(NULL, "reading the statement of '%s': %s", id, db_errstr(db));
    if (PQntuples(r) == 0) {
        PQclear(r);
        return ctl_fail("check the id with `ledgerctl account list`", "no account '%s'", id);
    }
    char cur[4], pfrom[32], pto[32];
    snprintf(cur, sizeof cur, "%s", PQgetvalue(r, 0, 0));
    snprintf(pfrom, sizeof pfrom, "%s",
             PQgetisnull(r, 0, 1) ? "the beginning" : PQgetvalue(r, 0, 1));
    snprintf(pto, sizeof pto, "%s", PQgetisnull(r, 0, 2) ? "now" : PQgetvalue(r, 0, 2));
    int64_t opening = i64(r, 0, 3), closing = opening, debits = 0, credits = 0;
    int n = PQgetisnull(r, 0, 4) ? 0 : PQntuples(r);
    for (int i = 0; i < n; i++) {
        int64_t a = i64(r, i, 9);
        if (a < 0)
            debits += a;
        else
            credits += a;
        closing = i64(r, i, 10);
    }
    char m1[48], m2[48];
    if (c->json) {
        json_t *list = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(
                list, json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I}", "entry_id",
                                (json_int_t)i64(r, i, 4), "at", PQgetvalue(r, i, 5), "kind",
                                PQgetvalue(r, i, 6), "ref", PQgetvalue(r, i, 7), "counterparty",
                                PQgetvalue(r, i, 8), "amount", (json_int_t)i64(r, i, 9), "balance",
                                (json_int_t)i64(r, i, 10)));
        ctl_json_print(json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:o, s:I, s:I, s:I}", "account", id,
                                 "currency", cur, "from",
                                 PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1), "to",
                                 PQgetisnull(r, 0, 2) ? NULL : PQgetvalue(r, 0, 2), "opening",
                                 (json_int_t)opening, "entries", list, "debits", (json_int_t)debits,
                                 "credits", (json_int_t)credits, "closing", (json_int_t)closing));
    } else if (csv) {
        printf("at,kind,ref,counterparty,amount,balance,currency\n");
        printf("%s,opening,,,,%" PRId64 ",%s\n", PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1),
               opening, cur);
        for (int i = 0; i < n; i++)
            printf("%s,%s,%s,%s,%" PRId64 ",%" PRId64 ",%s\n", PQgetvalue(r, i, 5),
                   PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), PQgetvalue(r, i, 8), i64(r, i, 9),
                   i64(r, i, 10), cur);
        printf("%s,closing,,,,%" PRId64 ",%s\n", PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2),
               closing, cur);
    } else {
        printf("statement of %s (%s) from %s to %s\n", id, cur, pfrom, pto);
        printf("%-24s %-8s %-36s %-20s %16s %16s\n", "at", "kind", "ref", "counterparty", "amount",
               "balance");
        printf("%-24s %-8s %-36s %-20s %16s %16s\n", "", "opening", "", "", "",
               ctl_money(opening, cur, m1, sizeof m1));
        for (int i = 0; i < n; i++)
            printf("%-24s %-8s %-36s %-20s %16s %16s\n", PQgetvalue(r, i, 5), PQgetvalue(r, i, 6),
                   PQgetvalue(r, i, 7), PQgetvalue(r, i, 8),
                   ctl_money(i64(r, i, 9), cur, m1, sizeof m1),
                   ctl_money(i64(r, i, 10), cur, m2, sizeof m2));
        printf("%-24s %-8s %-36s %-20s %16s %16s\n", "", "closing", "", "", "",
               ctl_money(closing, cur, m1, sizeof m1));
        printf("%d entries: debits %s, credits %s %s\n", n, ctl_money(debits, cur, m1, sizeof m1),
               ctl_money(credits, cur, m2, sizeof m2), cur);
    }
    PQclear(r);
    return 0;
}
