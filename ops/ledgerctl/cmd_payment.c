/*
 * cmd_payment.c - `ledgerctl payment show PAYMENT_ID`: the whole life of
 * one payment in one view, read in one statement (one snapshot): the
 * request as the risk stage recorded it, each stage's outcome, the risk
 * decision and its rules, the posting (transfer and the balances after
 * its entries), every event stored for it with its event_id and whether
 * the broker confirmed it, the settlement batch with its payout, and its
 * refunds (each with its outcome, transfer, netting batch and events).
 *
 * The statement builds the JSON document (`--json` prints it as is); the
 * text view is drawn from that document, so both always agree.
 *
 * `ledgerctl payment list [--account ID] [--status S] [--from T] [--to T]
 * [--limit N] [--after PAYMENT_ID]`: decided payments in decision order,
 * a page at a time (keyset paging: --after the last id of a page).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "msg.h"

/* clang-format off */
static const char *const show_sql =
    "SELECT json_build_object("
    " 'payment_id', $1::text,"
    " 'request', coalesce((SELECT p.payload::json FROM processed p"
    "                      WHERE p.payment_id = $1 AND p.stage = 'risk'),"
    /* past the retention window: what the risk decision recorded of it */
    "                     (SELECT json_build_object('payment_id', d.payment_id, 'payer', d.payer,"
    "                             'payee', d.payee, 'amount', d.amount, 'currency', d.currency)"
    "                      FROM risk_decisions d WHERE d.payment_id = $1)),"
    " 'failure', (SELECT json_build_object('reason', f.reason,"
    "                    'failed_at', " CTL_SQL_TIME("f.failed_at") ")"
    "             FROM payment_failures f WHERE f.payment_id = $1),"
    " 'bookkeeping_kept_since', (SELECT retention_horizon()::text),"
    " 'stages', (SELECT json_agg(json_build_object('stage', p.stage, 'outcome', p.outcome,"
    "                   'at', " CTL_SQL_TIME("p.created_at") ") ORDER BY p.created_at, p.stage)"
    "            FROM processed p WHERE p.payment_id = $1"
    "              AND p.stage IN ('risk', 'payment', 'settlement')),"
    " 'risk', (SELECT json_build_object('decision', d.decision, 'score', d.score,"
    "                 'rules', d.rules, 'ruleset_version', d.ruleset_version,"
    "                 'decided_at', " CTL_SQL_TIME("d.decided_at") ")"
    "          FROM risk_decisions d WHERE d.payment_id = $1),"
    " 'transfer', (SELECT json_build_object('id', t.id::text, 'debit', t.debit_account,"
    "                     'credit', t.credit_account, 'amount', t.amount,"
    "                     'currency', t.currency, 'posted_at', " CTL_SQL_TIME("t.created_at") ","
    "                     'entries', (SELECT json_agg(json_build_object('account', e.account_id,"
    "                                 'amount', e.amount, 'balance_after', e.balance_after)"
    "                                 ORDER BY e.id) FROM entries e WHERE e.transfer_id = t.id))"
    "              FROM transfers t WHERE t.kind = 'payment' AND t.ref = $1),"
    " 'events', (SELECT json_agg(json_build_object('event_id', o.event_id,"
    "                   'type', o.routing_key, 'stage', o.stage,"
    "                   'stored_at', " CTL_SQL_TIME("o.created_at") ","
    "                   'confirmed', NOT EXISTS (SELECT 1 FROM outbox_pending q"
    "                                            WHERE q.id = o.id)) ORDER BY o.id)"
    "            FROM outbox o WHERE o.stage IN ('risk', 'payment', 'settlement')"
    "              AND o.payment_id = $1),"
    " 'settlement', (SELECT json_build_object('batch_id', b.id, 'status', b.status,"
    "                       'window_start', " CTL_SQL_TIME("b.window_start") ","
    "                       'window_end', " CTL_SQL_TIME("b.window_end") ","
    "                       'fee', i.fee, 'late', i.late,"
    "                       'added_at', " CTL_SQL_TIME("i.added_at") ","
    "                       'closed_at', " CTL_SQL_TIME("b.closed_at") ","
    "                       'close_error', b.close_error, 'batch_count', b.count,"
    "                       'batch_gross', b.gross, 'batch_fees', b.fees, 'batch_net', b.net,"
    "                       'fee_transfer', b.fee_transfer::text,"
    "                       'payout_transfer', b.payout_transfer::text)"
    "                FROM settlement_items i JOIN settlement_batches b ON b.id = i.batch_id"
    "                WHERE i.payment_id = $1),"
    " 'refunds', (SELECT json_agg(json_build_object('refund_id', r.refund_id,"
    "                    'amount', r.amount, 'outcome', r.outcome, 'reason', r.reason,"
    "                    'transfer_id', r.transfer_id::text, 'batch_id', r.batch_id,"
    "                    'decided_at', " CTL_SQL_TIME("r.created_at") ","
    "                    'events', (SELECT json_agg(json_build_object('event_id', o.event_id,"
    "                                'type', o.routing_key,"
    "                                'stored_at', " CTL_SQL_TIME("o.created_at") ","
    "                                'confirmed', NOT EXISTS (SELECT 1 FROM outbox_pending q"
    "                                                         WHERE q.id = o.id)) ORDER BY o.id)"
    "                               FROM outbox o WHERE o.stage = 'refund'"
    "                                 AND o.payment_id = r.refund_id))"
    "                    ORDER BY r.created_at, r.refund_id)"
    "             FROM refunds r WHERE r.payment_id = $1),"
    " 'refunded', (SELECT coalesce(sum(r.amount), 0) FROM refunds r"
    "              WHERE r.payment_id = $1 AND r.outcome = 'completed'))";
/* clang-format on */

static const char *js(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

/* The stage's outcome: "completed", "declined", "batched:<id>", ... */
static const char *stage_outcome(const json_t *doc, const char *stage)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(doc, "stages"), i, s)
    {
        if (strcmp(js(s, "stage"), stage) == 0)
            return js(s, "outcome");
    }
    return NULL;
}

/* Member k of the document, NULL when missing or null (what SQL had none of). */
static const json_t *member(const json_t *doc, const char *k)
{
    const json_t *v = json_object_get(doc, k);
    return json_is_null(v) ? NULL : v;
}

static void draw(const json_t *doc)
{
    const json_t *req = member(doc, "request"), *risk = member(doc, "risk");
    const json_t *t = member(doc, "transfer"), *st = member(doc, "settlement");
    const char *cur = req ? js(req, "currency") : t ? js(t, "currency") : "XXX";
    char m1[48], m2[48];
    const json_t *fail = member(doc, "failure");
    const char *pay = stage_outcome(doc, "payment");
    /* past the retention window the stage outcomes are gone: the books say */
    const char *status = pay    ? pay
                         : t    ? "completed"
                         : fail ? js(fail, "reason")
                         : risk && strcmp(js(risk, "decision"), "declined") == 0 ? "declined"
                         : risk ? "approved, not yet posted"
                                : "requested, not yet decided";
    printf("payment     %s  %s\n", js(doc, "payment_id"), status);
    if (json_is_null(json_object_get(doc, "stages")))
        printf("bookkeeping expired (kept since %s): the request's description, metadata and "
               "events are no longer kept; the books above stand\n",
               js(doc, "bookkeeping_kept_since"));
    if (req)
        printf("request     %s -> %s  %s %s\n", js(req, "payer"), js(req, "payee"),
               ctl_money(json_integer_value(json_object_get(req, "amount")), cur, m1, sizeof m1),
               cur);
    if (risk) {
        char *rules = json_dumps(json_object_get(risk, "rules"), JSON_COMPACT);
        printf("risk        %s  score %lld  rules %s  ruleset %s  at %s\n", js(risk, "decision"),
               (long long)json_integer_value(json_object_get(risk, "score")), rules ? rules : "[]",
               js(risk, "ruleset_version"), js(risk, "decided_at"));
        free(rules);
    }
    if (t) {
        printf("posting     transfer %s  %s -> %s  %s %s  at %s\n", js(t, "id"), js(t, "debit"),
               js(t, "credit"),
               ctl_money(json_integer_value(json_object_get(t, "amount")), cur, m1, sizeof m1), cur,
               js(t, "posted_at"));
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(t, "entries"), i, e)
        {
            printf("              %-24s %14s  balance after %s\n", js(e, "account"),
                   ctl_money(json_integer_value(json_object_get(e, "amount")), cur, m1, sizeof m1),
                   ctl_money(json_integer_value(json_object_get(e, "balance_after")), cur, m2,
                             sizeof m2));
        }
    }
    if (st) {
        printf("settlement  batch %s  %s  window %s .. %s  fee %s%s\n", js(st, "batch_id"),
               js(st, "status"), js(st, "window_start"), js(st, "window_end"),
               ctl_money(json_integer_value(json_object_get(st, "fee")), cur, m1, sizeof m1),
               json_is_true(json_object_get(st, "late")) ? "  (late)" : "");
        if (strcmp(js(st, "status"), "closed") == 0)
            printf(
                "            closed at %s: %lld payments, net %s paid out by transfer %s\n",
                js(st, "closed_at"),
                (long long)json_integer_value(json_object_get(st, "batch_count")),
                ctl_money(json_integer_value(json_object_get(st, "batch_net")), cur, m2, sizeof m2),
                js(st, "payout_transfer"));
        else if (json_is_string(json_object_get(st, "close_error")))
            printf("            held: %s\n", js(st, "close_error"));
    }
    size_t i;
    json_t *ev, *r;
    json_array_foreach(json_object_get(doc, "refunds"), i, r)
    {
        printf("%-11s %s  %s %s  %s", i ? "" : "refunds", js(r, "refund_id"),
               ctl_money(json_integer_value(json_object_get(r, "amount")), cur, m1, sizeof m1), cur,
               js(r, "outcome"));
        if (json_is_string(json_object_get(r, "transfer_id")))
            printf("  transfer %s  netted in batch %s", js(r, "transfer_id"), js(r, "batch_id"));
        printf("  at %s\n", js(r, "decided_at"));
    }
    if (json_array_size(json_object_get(doc, "refunds")))
        printf("            refunded %s of %s %s\n",
               ctl_money(json_integer_value(json_object_get(doc, "refunded")), cur, m1, sizeof m1),
               t ? ctl_money(json_integer_value(json_object_get(t, "amount")), cur, m2, sizeof m2)
                 : "-",
               cur);
    json_array_foreach(json_object_get(doc, "events"), i, ev)
    {
        printf("%-11s %s  %-20s %s  %s\n", i ? "" : "events", js(ev, "stored_at"), js(ev, "type"),
               js(ev, "event_id"),
               json_is_true(json_object_get(ev, "confirmed")) ? "confirmed by the broker"
                                                              : "NOT YET CONFIRMED");
    }
    json_array_foreach(json_object_get(doc, "refunds"), i, r)
    {
        size_t k;
        json_array_foreach(json_object_get(r, "events"), k, ev)
        {
            printf("%-11s %s  %-20s %s  %s\n", "", js(ev, "stored_at"), js(ev, "type"),
                   js(ev, "event_id"),
                   json_is_true(json_object_get(ev, "confirmed")) ? "confirmed by the broker"
                                                                  : "NOT YET CONFIRMED");
        }
    }
}

int cmd_payment_show(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("payment show");
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
    if (db_query(db, &r, show_sql, 1, params) != LL_OK)
        return ctl_fail("run `ledgerctl migrate` if the schema is missing",
                        "reading payment '%s': %s", id, db_errstr(db));
    json_error_t je;
    json_t *doc = json_loads(PQgetvalue(r, 0, 0), 0, &je);
    PQclear(r);
    if (!doc)
        return ctl_fail(NULL, "the database returned a document that is not JSON: %s", je.text);
    if (json_is_null(json_object_get(doc, "stages")) &&
        json_is_null(json_object_get(doc, "transfer")) &&
        json_is_null(json_object_get(doc, "risk")) &&
        json_is_null(json_object_get(doc, "failure"))) {
        json_decref(doc);
        char fix[256];
        snprintf(fix, sizeof fix,
                 "check the id and the ledger (postgres.dbname); a request rejected as bad input "
                 "was parked, not processed: ledgerctl dlq list risk --payment-id %s",
                 id);
        return ctl_fail(fix, "no payment '%s' in this ledger", id);
    }
    if (c->json)
        ctl_json_print(doc);
    else {
        draw(doc);
        json_decref(doc);
    }
    return 0;
}

/* ---- payment list ---------------------------------------------------------- */

/* The statuses of `payment list --status`, in the order a payment passes
 * them; a payment.failed reason is accepted too (it selects failed ones
 * with that reason). */
static const char *const list_statuses[] = {"pending", "declined", "completed", "failed", NULL};

/* One page: decided payments in (decided_at, payment_id) order, after the
 * cursor payment when given; $1 account or NULL, $2 status or NULL, $3/$4
 * the period, $5 the cursor payment_id or NULL, $6 the page size + 1. */
/* clang-format off */
static const char *const list_sql =
    "SELECT x.payment_id, x.decided, x.payer, x.payee, x.amount, x.currency, x.status,"
    "       x.reason, x.batch_id, x.batch_status"
    " FROM (SELECT d.payment_id, d.decided_at, " CTL_SQL_TIME(
        "d.decided_at") " AS decided,"
                        "              d.payer, d.payee, d.amount, d.currency, f.reason AS outcome,"
                        /* from the books: the processed rows expire (retention) */
                        "              CASE WHEN d.decision = 'declined' THEN 'declined'"
                        "                   WHEN t.id IS NOT NULL THEN 'completed'"
                        "                   WHEN f.reason IS NOT NULL THEN 'failed'"
                        "                   ELSE 'pending' END AS status,"
                        "              CASE WHEN d.decision = 'declined' THEN "
                        "array_to_string(d.rules, ',')"
                        "                   ELSE f.reason END AS reason,"
                        "              i.batch_id, b.status AS batch_status"
                        "       FROM risk_decisions d"
                        "       LEFT JOIN transfers t ON t.ref = d.payment_id AND t.kind = 'payment'"
                        "       LEFT JOIN payment_failures f ON f.payment_id = d.payment_id"
                        "       LEFT JOIN settlement_items i ON i.payment_id = d.payment_id"
                        "       LEFT JOIN settlement_batches b ON b.id = i.batch_id"
                        "       WHERE ($1::text IS NULL OR d.payer = $1 OR d.payee = $1)"
                        "         AND d.decided_at >= $3::timestamptz AND d.decided_at < "
                        "$4::timestamptz"
                        "         AND ($5::text IS NULL OR (d.decided_at, d.payment_id) >"
                        "              (SELECT c.decided_at, c.payment_id FROM risk_decisions c"
                        "               WHERE c.payment_id = $5))) x"
                        " WHERE $2::text IS NULL OR x.status = $2 OR x.outcome = $2"
                        " ORDER BY x.decided_at, x.payment_id LIMIT $6::int";
/* clang-format on */

int cmd_payment_list(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("payment list");
    static const struct option opts[] = {{"account", required_argument, NULL, 'a'},
                                         {"status", required_argument, NULL, 's'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"after", required_argument, NULL, 'A'},
                                         {NULL, 0, NULL, 0}};
    const char *account = NULL, *status = NULL, *from = "-infinity", *to = "infinity";
    const char *after = NULL;
    long limit = 50;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        char *end;
        switch (ch) {
        case 'a':
            account = optarg;
            break;
        case 's':
            status = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'A':
            after = optarg;
            break;
        case 'l':
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 1 || limit > 10000)
                return ctl_usage_error(cmd, "--limit '%s' must be 1..10000", optarg);
            break;
        default:
            return ch == 'h' ? 0 : 2;
        }
    }
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (account && !ctl_valid_id(account))
        return ctl_usage_error(cmd, "--account '%s' is not a valid account id", account);
    if (after && !ctl_valid_id(after))
        return ctl_usage_error(cmd, "--after '%s' is not a valid payment id", after);
    if (status) {
        bool ok = msg_failure_reason_valid(status);
        for (size_t i = 0; !ok && list_statuses[i]; i++)
            ok = strcmp(status, list_statuses[i]) == 0;
        if (!ok)
            return ctl_usage_error(cmd,
                                   "--status '%s' is none of pending, declined, completed, "
                                   "failed, or a payment.failed reason (e.g. insufficient_funds)",
                                   status);
    }
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    int rc = ctl_period(cmd, db, from, to);
    if (rc)
        return rc;
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", limit + 1); /* one more: is there a next page? */
    const char *params[] = {account, status, from, to, after, lim};
    PGresult *r;
    if (db_query(db, &r, list_sql, 6, params) != LL_OK)
        return ctl_fail(NULL, "listing payments: %s", db_errstr(db));
    int n = PQntuples(r) > limit ? (int)limit : PQntuples(r);
    const char *next = PQntuples(r) > limit ? PQgetvalue(r, n - 1, 0) : NULL;
    if (c->json) {
        json_t *list = json_array();
        for (int i = 0; i < n; i++) {
            json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "payment_id",
                                  PQgetvalue(r, i, 0), "decided_at", PQgetvalue(r, i, 1), "payer",
                                  PQgetvalue(r, i, 2), "payee", PQgetvalue(r, i, 3), "amount",
                                  (json_int_t)strtoll(PQgetvalue(r, i, 4), NULL, 10), "currency",
                                  PQgetvalue(r, i, 5), "status", PQgetvalue(r, i, 6));
            if (!PQgetisnull(r, i, 7))
                json_object_set_new(p, "reason", json_string(PQgetvalue(r, i, 7)));
            if (!PQgetisnull(r, i, 8)) {
                json_object_set_new(p, "batch_id", json_string(PQgetvalue(r, i, 8)));
                json_object_set_new(p, "batch_status", json_string(PQgetvalue(r, i, 9)));
            }
            json_array_append_new(list, p);
        }
        ctl_json_print(json_pack("{s:o, s:s?}", "payments", list, "next_after", next));
    } else {
        printf("%-24s %-32s %-16s %-16s %14s %-10s %s\n", "decided", "payment", "payer", "payee",
               "amount", "status", "reason / batch");
        for (int i = 0; i < n; i++) {
            char m[48];
            const char *cur = PQgetvalue(r, i, 5);
            printf("%-24s %-32s %-16s %-16s %10s %-3s %-10s %s%s%s\n", PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 0), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                   ctl_money(strtoll(PQgetvalue(r, i, 4), NULL, 10), cur, m, sizeof m), cur,
                   PQgetvalue(r, i, 6), PQgetvalue(r, i, 7),
                   PQgetisnull(r, i, 8) ? "" : PQgetvalue(r, i, 8),
                   PQgetisnull(r, i, 8)                         ? ""
                   : strcmp(PQgetvalue(r, i, 9), "closed") == 0 ? " (closed)"
                                                                : " (open)");
        }
        if (next)
            printf("more: add --after %s for the next page\n", next);
        else
            printf("%d payment(s)\n", n);
    }
    PQclear(r);
    return 0;
}
