/*
 * cmd_account.c - `ledgerctl account create|fund|freeze|unfreeze|show|list`.
 *
 * Funding is a transfer from the per-currency system account
 * sys:funding:<CUR> (created on first use), posted by ledger_post() like any
 * other transfer, so balances always sum to zero and `verify` holds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "msg.h"
#include "money.h"

static const char *const kinds[] = {"customer", "merchant", NULL};

typedef struct account {
    char id[65], currency[4], status[8], kind[9];
    int64_t balance, overdraft, fee_fixed;
    int fee_bps;
} account_t;

static int64_t pq_i64(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Loads account `id`: 1 found, 0 not found, -1 error (printed). */
static int account_load(db_t *db, const char *id, account_t *a)
{
    const char *params[] = {id};
    PGresult *r;
    if (db_query(db, &r,
                 "SELECT id, currency, status, kind, balance, overdraft_limit, fee_bps, fee_fixed "
                 "FROM accounts WHERE id = $1",
                 1, params) != LL_OK) {
        ctl_fail("run `ledgerctl migrate` if the schema is missing", "reading account '%s': %s", id,
                 db_errstr(db));
        return -1;
    }
    int found = PQntuples(r) == 1;
    if (found) {
        snprintf(a->id, sizeof a->id, "%s", PQgetvalue(r, 0, 0));
        snprintf(a->currency, sizeof a->currency, "%s", PQgetvalue(r, 0, 1));
        snprintf(a->status, sizeof a->status, "%s", PQgetvalue(r, 0, 2));
        snprintf(a->kind, sizeof a->kind, "%s", PQgetvalue(r, 0, 3));
        a->balance = pq_i64(r, 0, 4);
        a->overdraft = pq_i64(r, 0, 5);
        a->fee_bps = (int)pq_i64(r, 0, 6);
        a->fee_fixed = pq_i64(r, 0, 7);
    }
    PQclear(r);
    return found;
}

static json_t *account_json(const account_t *a)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:I}", "id", a->id, "currency",
                     a->currency, "status", a->status, "kind", a->kind, "balance",
                     (json_int_t)a->balance, "overdraft_limit", (json_int_t)a->overdraft, "fee_bps",
                     a->fee_bps, "fee_fixed", (json_int_t)a->fee_fixed);
}

/* Parses a non-negative minor-unit amount option. */
static int parse_amount(const ctl_cmd_t *cmd, const char *opt, const char *s, int64_t min,
                        int64_t *out)
{
    if (money_parse_minor(s, out) != LL_OK || *out < min)
        return ctl_usage_error(cmd, "%s '%s' is not an integer >= %" PRId64 " (minor units)", opt,
                               s, min);
    return 0;
}

static int need_id(const ctl_cmd_t *cmd, int argc, char **argv, const char **id)
{
    if (optind >= argc)
        return ctl_usage_error(cmd, "missing the account ID");
    *id = argv[optind++];
    if (!ctl_valid_id(*id))
        return ctl_usage_error(cmd,
                               "'%s' is not a valid account id (1-64 chars of "
                               "[A-Za-z0-9_.:-])",
                               *id);
    return 0;
}

int cmd_account_create(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("account create");
    static const struct option opts[] = {
        {"currency", required_argument, NULL, 'c'},  {"kind", required_argument, NULL, 'k'},
        {"overdraft", required_argument, NULL, 'o'}, {"fee-bps", required_argument, NULL, 'b'},
        {"fee-fixed", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
    account_t want = {.overdraft = 0};
    snprintf(want.kind, sizeof want.kind, "customer");
    snprintf(want.status, sizeof want.status, "active");
    const char *currency = NULL;
    int64_t v;
    int ch, rc;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        switch (ch) {
        case 'c':
            currency = optarg;
            break;
        case 'k': {
            int ok = 0;
            for (const char *const *k = kinds; *k; k++)
                ok |= strcmp(*k, optarg) == 0;
            if (!ok)
                return ctl_usage_error(cmd,
                                       "--kind '%s' must be customer or merchant (system "
                                       "accounts are managed by ledgerctl itself)",
                                       optarg);
            snprintf(want.kind, sizeof want.kind, "%s", optarg);
            break;
        }
        case 'o':
            if ((rc = parse_amount(cmd, "--overdraft", optarg, 0, &want.overdraft)))
                return rc;
            break;
        case 'b':
            if (money_parse_minor(optarg, &v) != LL_OK || v < 0 || v > 10000)
                return ctl_usage_error(cmd, "--fee-bps '%s' must be an integer 0..10000", optarg);
            want.fee_bps = (int)v;
            break;
        case 'f':
            if ((rc = parse_amount(cmd, "--fee-fixed", optarg, 0, &want.fee_fixed)))
                return rc;
            if (want.fee_fixed > MSG_AMOUNT_MAX) /* fees add up per batch: keep them sane */
                return ctl_usage_error(cmd,
                                       "--fee-fixed '%s' is above 10^14, the largest payment "
                                       "amount",
                                       optarg);
            break;
        default:
            return ch == 'h' ? 0 : 2;
        }
    }
    const char *id = NULL;
    if ((rc = need_id(cmd, argc, argv, &id)))
        return rc;
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!currency)
        return ctl_usage_error(cmd, "--currency is required");
    if (!money_currency_valid(currency))
        return ctl_usage_error(cmd, "--currency '%s' is not an ISO 4217 code (e.g. EUR, USD)",
                               currency);
    if (strncmp(id, "sys:", 4) == 0)
        return ctl_usage_error(cmd, "ids starting with 'sys:' are reserved for system accounts");
    snprintf(want.id, sizeof want.id, "%s", id);
    snprintf(want.currency, sizeof want.currency, "%s", currency);

    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    char od[24], bps[16], ff[24];
    snprintf(od, sizeof od, "%" PRId64, want.overdraft);
    snprintf(bps, sizeof bps, "%d", want.fee_bps);
    snprintf(ff, sizeof ff, "%" PRId64, want.fee_fixed);
    const char *params[] = {id, currency, want.kind, od, bps, ff};
    PGresult *r;
    if (db_query(db, &r,
                 "INSERT INTO accounts (id, currency, kind, overdraft_limit, fee_bps, fee_fixed) "
                 "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id",
                 6, params) != LL_OK)
        return ctl_fail("run `ledgerctl migrate` if the schema is missing",
                        "creating account '%s': %s", id, db_errstr(db));
    int created = PQntuples(r) == 1;
    PQclear(r);
    account_t got;
    if (account_load(db, id, &got) != 1)
        return ctl_fail(NULL, "account '%s' vanished right after being created", id);
    if (!created && (strcmp(got.currency, want.currency) || strcmp(got.kind, want.kind) ||
                     got.overdraft != want.overdraft || got.fee_bps != want.fee_bps ||
                     got.fee_fixed != want.fee_fixed))
        return ctl_fail("choose another id, or repeat the command with the existing attributes "
                        "(see `ledgerctl account show ID`)",
                        "account '%s' already exists with other attributes (%s, %s, overdraft "
                        "%" PRId64 ", fee %d bps + %" PRId64 ")",
                        id, got.currency, got.kind, got.overdraft, got.fee_bps, got.fee_fixed);
    if (c->json) {
        json_t *j = account_json(&got);
        json_object_set_new(j, "created", json_boolean(created));
        ctl_json_print(j);
    } else {
        printf("%s account %s (%s, %s)\n", created ? "created" : "exists, unchanged:", id,
               got.currency, got.kind);
    }
    return 0;
}

/* Makes sure the system account `sys:<role>:<CUR>` exists. */
static int ensure_system(db_t *db, const char *role, const char *currency, char *id, size_t n)
{
    snprintf(id, n, "sys:%s:%s", role, currency);
    const char *params[] = {id, currency};
    PGresult *r;
    if (db_query(db, &r,
                 "INSERT INTO accounts (id, currency, kind) VALUES ($1, $2, 'system') "
                 "ON CONFLICT (id) DO NOTHING",
                 2, params) != LL_OK)
        return ctl_fail(NULL, "creating system account '%s': %s", id, db_errstr(db));
    PQclear(r);
    return 0;
}

int cmd_account_fund(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("account fund");
    static const struct option opts[] = {{"ref", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0}};
    const char *ref = NULL;
    int ch, rc;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        if (ch == 'r')
            ref = optarg;
        else
            return ch == 'h' ? 0 : 2;
    }
    const char *id = NULL;
    if ((rc = need_id(cmd, argc, argv, &id)))
        return rc;
    if (optind >= argc)
        return ctl_usage_error(cmd, "missing the AMOUNT (minor units)");
    int64_t amount;
    if ((rc = parse_amount(cmd, "AMOUNT", argv[optind++], 1, &amount)))
        return rc;
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    /* funding moves money: a retried command must be one funding, so the
     * caller names it (a generated ref made every retry a new funding) */
    if (!ref)
        return ctl_usage_error(cmd,
                               "--ref is required: it names this funding, so running the same "
                               "command again (a retry) funds once; e.g. --ref topup-%s-1",
                               id);

    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    account_t a;
    int found = account_load(db, id, &a);
    if (found < 0)
        return 1;
    if (!found)
        return ctl_fail("create it first: ledgerctl account create ID --currency CUR",
                        "no account '%s'", id);
    char sys[80];
    if ((rc = ensure_system(db, "funding", a.currency, sys, sizeof sys)))
        return rc;
    char amt[24];
    snprintf(amt, sizeof amt, "%" PRId64, amount);
    const char *params[] = {ref, sys, id, amt, a.currency};
    PGresult *r;
    if (db_query(db, &r,
                 "SELECT status, transfer_id FROM ledger_post($1, 'funding', $2, $3, $4, $5)", 5,
                 params) != LL_OK)
        return ctl_fail(NULL, "funding '%s': %s", id, db_errstr(db));
    char status[32], tid[24];
    snprintf(status, sizeof status, "%s", PQgetvalue(r, 0, 0));
    snprintf(tid, sizeof tid, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);

    if (strcmp(status, "duplicate") == 0) {
        /* the same ref again: fine if it is the same funding */
        const char *p2[] = {tid};
        if (db_query(db, &r, "SELECT credit_account, amount FROM transfers WHERE id = $1", 1, p2) !=
            LL_OK)
            return ctl_fail(NULL, "reading transfer %s: %s", tid, db_errstr(db));
        int same = strcmp(PQgetvalue(r, 0, 0), id) == 0 && pq_i64(r, 0, 1) == amount;
        PQclear(r);
        if (!same)
            return ctl_fail("use a new --ref for a new funding",
                            "ref '%s' was already used by transfer %s for another account or "
                            "amount",
                            ref, tid);
    } else if (strcmp(status, "balance_overflow") == 0) {
        return ctl_fail("fund with a smaller amount: balances are signed 64-bit minor units",
                        "funding '%s' with %s would take '%s' or %s past the int64 limit "
                        "(%" PRId64 ")",
                        id, amt, id, sys, INT64_MAX);
    } else if (strcmp(status, "posted") != 0) {
        return ctl_fail(strcmp(status, "account_frozen") == 0
                            ? "unfreeze it first: ledgerctl account unfreeze ID"
                            : NULL,
                        "funding '%s' refused: %s", id, status);
    }
    if (account_load(db, id, &a) != 1)
        return 1;
    char money[40];
    ctl_money(a.balance, a.currency, money, sizeof money);
    if (c->json)
        ctl_json_print(json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}", "account", id, "ref", ref,
                                 "transfer_id", tid, "amount", (json_int_t)amount, "balance",
                                 (json_int_t)a.balance, "duplicate",
                                 strcmp(status, "duplicate") == 0));
    else if (strcmp(status, "duplicate") == 0)
        printf("already funded by ref %s (transfer %s); nothing done. balance %s %s\n", ref, tid,
               money, a.currency);
    else
        printf("funded %s with %" PRId64 " (transfer %s, ref %s); balance %s %s\n", id, amount, tid,
               ref, money, a.currency);
    return 0;
}

static int set_status(ctl_t *c, const char *name, const char *status, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd(name);
    int ch, rc;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", NULL)) != -1)
        return ch == 'h' ? 0 : 2;
    const char *id = NULL;
    if ((rc = need_id(cmd, argc, argv, &id)))
        return rc;
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    const char *params[] = {id, status};
    PGresult *r;
    if (db_query(db, &r,
                 "UPDATE accounts SET status = $2, updated_at = now() "
                 "WHERE id = $1 AND kind <> 'system' RETURNING id",
                 2, params) != LL_OK)
        return ctl_fail(NULL, "updating account '%s': %s", id, db_errstr(db));
    int n = PQntuples(r);
    PQclear(r);
    if (n != 1)
        return ctl_fail("check the id with `ledgerctl account list`",
                        "no customer or merchant account '%s'", id);
    if (c->json)
        ctl_json_print(json_pack("{s:s, s:s}", "account", id, "status", status));
    else
        printf("account %s is now %s\n", id, status);
    return 0;
}

int cmd_account_freeze(ctl_t *c, int argc, char **argv)
{
    return set_status(c, "account freeze", "frozen", argc, argv);
}

int cmd_account_unfreeze(ctl_t *c, int argc, char **argv)
{
    return set_status(c, "account unfreeze", "active", argc, argv);
}

int cmd_account_show(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("account show");
    static const struct option opts[] = {{"entries", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    int64_t nentries = 10;
    int ch, rc;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        if (ch == 'n') {
            if (money_parse_minor(optarg, &nentries) != LL_OK || nentries < 0 || nentries > 10000)
                return ctl_usage_error(cmd, "--entries '%s' must be 0..10000", optarg);
        } else {
            return ch == 'h' ? 0 : 2;
        }
    }
    const char *id = NULL;
    if ((rc = need_id(cmd, argc, argv, &id)))
        return rc;
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    account_t a;
    int found = account_load(db, id, &a);
    if (found < 0)
        return 1;
    if (!found)
        return ctl_fail("check the id with `ledgerctl account list`", "no account '%s'", id);
    char lim[24];
    snprintf(lim, sizeof lim, "%" PRId64, nentries);
    const char *params[] = {id, lim};
    PGresult *r;
    if (db_query(db, &r,
                 "SELECT e.id, t.kind, t.ref, e.amount, e.balance_after, " CTL_SQL_TIME(
                     "t.created_at") ", "
                                     "CASE WHEN e.amount < 0 THEN t.credit_account ELSE "
                                     "t.debit_account END "
                                     "FROM entries e JOIN transfers t ON t.id = e.transfer_id "
                                     "WHERE e.account_id = $1 ORDER BY e.id DESC LIMIT $2",
                 2, params) != LL_OK)
        return ctl_fail(NULL, "reading entries of '%s': %s", id, db_errstr(db));
    char money[40];
    if (c->json) {
        json_t *j = account_json(&a);
        json_t *list = json_array();
        for (int i = 0; i < PQntuples(r); i++)
            json_array_append_new(
                list, json_pack("{s:I, s:s, s:s, s:I, s:I, s:s, s:s}", "entry_id",
                                (json_int_t)pq_i64(r, i, 0), "kind", PQgetvalue(r, i, 1), "ref",
                                PQgetvalue(r, i, 2), "amount", (json_int_t)pq_i64(r, i, 3),
                                "balance_after", (json_int_t)pq_i64(r, i, 4), "at",
                                PQgetvalue(r, i, 5), "counterparty", PQgetvalue(r, i, 6)));
        json_object_set_new(j, "entries", list);
        ctl_json_print(j);
    } else {
        ctl_money(a.balance, a.currency, money, sizeof money);
        printf("account   %s\nkind      %s\nstatus    %s\ncurrency  %s\n"
               "balance   %" PRId64 " (%s %s)\noverdraft %" PRId64 "\n",
               a.id, a.kind, a.status, a.currency, a.balance, money, a.currency, a.overdraft);
        if (strcmp(a.kind, "merchant") == 0)
            printf("fees      %d bps + %" PRId64 "\n", a.fee_bps, a.fee_fixed);
        printf("latest entries (%d):\n", PQntuples(r));
        for (int i = 0; i < PQntuples(r); i++)
            printf("  %s  %-8s %14s  balance %14s  %s %s\n", PQgetvalue(r, i, 5),
                   PQgetvalue(r, i, 1), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
                   pq_i64(r, i, 3) < 0 ? "to" : "from", PQgetvalue(r, i, 6));
    }
    PQclear(r);
    return 0;
}

int cmd_account_list(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("account list");
    static const struct option opts[] = {{"kind", required_argument, NULL, 'k'},
                                         {NULL, 0, NULL, 0}};
    const char *kind = NULL;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        if (ch == 'k')
            kind = optarg;
        else
            return ch == 'h' ? 0 : 2;
    }
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    const char *params[] = {kind};
    PGresult *r;
    if (db_query(db, &r,
                 "SELECT id, kind, status, currency, balance FROM accounts "
                 "WHERE $1::text IS NULL OR kind = $1 ORDER BY id",
                 1, params) != LL_OK)
        return ctl_fail("run `ledgerctl migrate` if the schema is missing", "listing accounts: %s",
                        db_errstr(db));
    if (c->json) {
        json_t *list = json_array();
        for (int i = 0; i < PQntuples(r); i++)
            json_array_append_new(
                list, json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", PQgetvalue(r, i, 0), "kind",
                                PQgetvalue(r, i, 1), "status", PQgetvalue(r, i, 2), "currency",
                                PQgetvalue(r, i, 3), "balance", (json_int_t)pq_i64(r, i, 4)));
        ctl_json_print(json_pack("{s:o}", "accounts", list));
    } else {
        printf("%-24s %-9s %-7s %-4s %16s\n", "ID", "KIND", "STATUS", "CUR", "BALANCE");
        for (int i = 0; i < PQntuples(r); i++)
            printf("%-24s %-9s %-7s %-4s %16s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
    }
    PQclear(r);
    return 0;
}
