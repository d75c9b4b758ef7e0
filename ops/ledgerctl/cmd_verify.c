/*
 * cmd_verify.c - `ledgerctl verify`: checks every ledger invariant of
 * docs/ledger.md#invariants. A payment younger than --settle-within (default
 * 900 s) is in flight, not yet expected in a settlement batch.
 *
 * One table row per invariant: a stable name (used in --json and by
 * tests), what it promises, and a query returning the offending rows (no
 * row = the invariant holds). Each offending row is printed as text built
 * by the query itself, so the report names the rows involved. Later stages
 * add their invariants (settlement batches) as rows of the same table.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "money.h"

#define VERIFY_ROWS 20 /* offending rows shown per invariant */

typedef struct invariant {
    const char *name;
    const char *promise;
    const char *sql; /* one text column per offending row; LIMIT applied here */
    int nparams;     /* 1: $1 = --settle-within in seconds; 2: $1 = --unsent-within */
} invariant_t;

static const invariant_t invariants[] = {
    {"zero_sum", "per currency, all balances sum to zero",
     "SELECT format('currency %s: balances sum to %s', currency, sum(balance)) "
     "FROM accounts GROUP BY currency HAVING sum(balance) <> 0 ORDER BY currency",
     0},
    {"balance_matches_entries", "each balance equals the sum of its entries",
     "SELECT format('account %s: balance %s, entries sum to %s', a.id, a.balance, "
     "coalesce(e.s, 0)) FROM accounts a "
     "LEFT JOIN (SELECT account_id, sum(amount) AS s FROM entries GROUP BY account_id) e "
     "ON e.account_id = a.id WHERE a.balance <> coalesce(e.s, 0) ORDER BY a.id",
     0},
    {"overdraft_respected",
     "no customer or merchant account is below -overdraft_limit, except a payee by the "
     "shortfall it carries into its next settlement",
     "SELECT format('account %s: balance %s is below -%s - %s carried', a.id, a.balance, "
     "a.overdraft_limit, coalesce(c.s, 0)) FROM accounts a "
     "LEFT JOIN (SELECT payee, sum(amount) AS s FROM settlement_carry GROUP BY payee) c "
     "ON c.payee = a.id "
     "WHERE a.kind <> 'system' AND a.balance::numeric < -a.overdraft_limit - coalesce(c.s, 0) "
     "ORDER BY a.id",
     0},
    {"one_transfer_per_payment", "every payment_id has at most one payment transfer",
     "SELECT format('payment %s: %s payment transfers (ids %s)', ref, count(*), "
     "string_agg(id::text, ',' ORDER BY id)) FROM transfers WHERE kind = 'payment' "
     "GROUP BY ref HAVING count(*) > 1 ORDER BY ref",
     0},
    {"double_entry",
     "each transfer has exactly two entries: -amount on the debit account, +amount on the "
     "credit account",
     "SELECT format('transfer %s (%s %s): %s entries, debit side %s, credit side %s', t.id, "
     "t.kind, t.ref, count(e.id), "
     "CASE WHEN count(*) FILTER (WHERE e.account_id = t.debit_account "
     "AND e.amount = -t.amount) = 1 THEN 'ok' ELSE 'wrong' END, "
     "CASE WHEN count(*) FILTER (WHERE e.account_id = t.credit_account "
     "AND e.amount = t.amount) = 1 THEN 'ok' ELSE 'wrong' END) "
     "FROM transfers t LEFT JOIN entries e ON e.transfer_id = t.id GROUP BY t.id "
     "HAVING count(e.id) <> 2 "
     "OR count(*) FILTER (WHERE e.account_id = t.debit_account AND e.amount = -t.amount) <> 1 "
     "OR count(*) FILTER (WHERE e.account_id = t.credit_account AND e.amount = t.amount) <> 1 "
     "ORDER BY t.id",
     0},
    {"entries_belong_to_transfers", "every entry belongs to a transfer of its account",
     "SELECT format('entry %s: account %s is not a side of transfer %s', e.id, e.account_id, "
     "e.transfer_id) FROM entries e JOIN transfers t ON t.id = e.transfer_id "
     "WHERE e.account_id NOT IN (t.debit_account, t.credit_account) ORDER BY e.id",
     0},
    {"currency_consistent", "a transfer's currency is the currency of both its accounts",
     "SELECT format('transfer %s (%s): %s, but account %s is %s', t.id, t.ref, t.currency, a.id, "
     "a.currency) FROM transfers t JOIN accounts a ON a.id IN (t.debit_account, "
     "t.credit_account) WHERE a.currency <> t.currency ORDER BY t.id",
     0},
    {"balance_after_chain", "each entry's balance_after is the running sum of its account",
     "SELECT format('entry %s of account %s: balance_after %s, running sum %s', id, account_id, "
     "balance_after, running) FROM (SELECT id, account_id, balance_after, "
     "sum(amount) OVER (PARTITION BY account_id ORDER BY id) AS running FROM entries) x "
     "WHERE balance_after <> running ORDER BY id",
     0},
    {"payments_between_customers", "no payment transfer touches a system account",
     "SELECT format('payment %s (transfer %s): %s -> %s, and %s is a system account', t.ref, "
     "t.id, t.debit_account, t.credit_account, a.id) FROM transfers t JOIN accounts a "
     "ON a.id IN (t.debit_account, t.credit_account) WHERE t.kind = 'payment' "
     "AND a.kind = 'system' ORDER BY t.id",
     0},
    {"payment_settled",
     "every payment posted longer ago than --settle-within is in a settlement batch",
     "SELECT format('payment %s (transfer %s, posted %s): in no settlement batch', t.ref, t.id, "
     "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) "
     "FROM transfers t WHERE t.kind = 'payment' "
     "AND t.created_at < now() - $1::bigint * interval '1 second' AND NOT EXISTS "
     "(SELECT 1 FROM settlement_items i WHERE i.payment_id = t.ref) ORDER BY t.id",
     1},
    {"payment_in_one_batch",
     "every completed payment the settlement stage took is in exactly one settlement batch, "
     "and every batch item is a completed payment with the amount, payee and currency of its "
     "transfer",
     "SELECT format('payment %s: settled but in no batch', p.payment_id) FROM processed p "
     "WHERE p.stage = 'settlement' AND p.outcome LIKE 'batched:%' AND NOT EXISTS "
     "(SELECT 1 FROM settlement_items i WHERE i.payment_id = p.payment_id) "
     "UNION ALL SELECT format('payment %s: in batch %s but it has no payment transfer', "
     "i.payment_id, i.batch_id) FROM settlement_items i WHERE NOT EXISTS "
     "(SELECT 1 FROM transfers t WHERE t.kind = 'payment' AND t.ref = i.payment_id) "
     "UNION ALL SELECT format('payment %s: batch %s holds %s %s for payee %s, its transfer %s "
     "is %s %s to %s', i.payment_id, b.id, i.amount, b.currency, b.payee, t.id, t.amount, "
     "t.currency, t.credit_account) FROM settlement_items i "
     "JOIN settlement_batches b ON b.id = i.batch_id "
     "JOIN transfers t ON t.kind = 'payment' AND t.ref = i.payment_id "
     "WHERE t.amount <> i.amount OR t.currency <> b.currency OR t.credit_account <> b.payee "
     "ORDER BY 1",
     0},
    {"batch_postings_match",
     "each batch's count and gross are its items', its refunds its completed refunds; a "
     "closed batch has fees = min(item fees, gross), net - carried_out = gross - fees - "
     "refunds - carried_in with net >= 0, carried_out >= 0 and one of them 0, and its fee "
     "and payout transfers carry exactly fees and net",
     "SELECT format('batch %s (%s): count %s gross %s fees %s refunds %s/%s carried in %s out "
     "%s net %s; items %s/%s fees %s; refunds %s/%s; fee transfer %s payout transfer %s', "
     "b.id, b.status, b.count, b.gross, b.fees, b.refund_count, b.refunds, b.carried_in, "
     "b.carried_out, b.net, coalesce(i.n, 0), coalesce(i.g, 0), coalesce(i.f, 0), "
     "coalesce(r.n, 0), coalesce(r.s, 0), coalesce(ft.amount, 0), coalesce(pt.amount, 0)) "
     "FROM settlement_batches b "
     "LEFT JOIN (SELECT batch_id, count(*) n, sum(amount) g, sum(fee) f FROM settlement_items "
     "GROUP BY batch_id) i ON i.batch_id = b.id "
     "LEFT JOIN (SELECT batch_id, count(*) n, sum(amount) s FROM refunds "
     "WHERE batch_id IS NOT NULL GROUP BY batch_id) r ON r.batch_id = b.id "
     "LEFT JOIN transfers ft ON ft.kind = 'fee' AND ft.ref = b.id "
     "LEFT JOIN transfers pt ON pt.kind = 'payout' AND pt.ref = b.id "
     "WHERE b.count <> coalesce(i.n, 0) OR b.gross <> coalesce(i.g, 0) "
     "OR b.fees_raw <> coalesce(i.f, 0) OR b.refund_count <> coalesce(r.n, 0) "
     "OR b.refunds <> coalesce(r.s, 0) "
     "OR (b.status = 'closed' AND (b.net < 0 OR (b.net > 0 AND b.carried_out > 0) "
     "OR b.net::numeric - coalesce(b.carried_out, 0) <> b.gross::numeric - b.fees - b.refunds "
     "- b.carried_in "
     "OR b.fees <> least(b.fees_raw, b.gross) OR coalesce(ft.amount, 0) <> b.fees "
     "OR coalesce(pt.amount, 0) <> b.net)) "
     "OR (b.status = 'open' AND (ft.id IS NOT NULL OR pt.id IS NOT NULL OR b.carried_in <> 0)) "
     "ORDER BY 1",
     0},
    {"carry_conserved",
     "per payee and currency, every shortfall a closed batch carried out was taken by a later "
     "close or is still owed (settlement_carry)",
     "SELECT format('payee %s %s: %s carried out, %s carried in, %s owed', x.payee, x.currency, "
     "x.o, x.i, coalesce(c.amount, 0)) FROM "
     "(SELECT payee, currency, sum(coalesce(carried_out, 0)) o, sum(carried_in) i "
     "FROM settlement_batches GROUP BY payee, currency) x "
     "LEFT JOIN settlement_carry c ON c.payee = x.payee AND c.currency = x.currency "
     "WHERE x.o <> x.i + coalesce(c.amount, 0) "
     "UNION ALL SELECT format('payee %s %s: owes %s with no closed batch to carry it', "
     "c.payee, c.currency, c.amount) FROM settlement_carry c WHERE NOT EXISTS (SELECT 1 "
     "FROM settlement_batches b WHERE b.payee = c.payee AND b.currency = c.currency "
     "AND b.carried_out > 0) ORDER BY 1",
     0},
    {"refunds_within_payment",
     "a payment's completed refunds add up to at most its amount, and each is a refund "
     "transfer of its amount from the payment's payee to its payer, in a batch of that payee",
     "SELECT format('payment %s: refunds %s exceed its amount %s', r.payment_id, sum(r.amount), "
     "min(t.amount)) FROM refunds r JOIN transfers t ON t.kind = 'payment' "
     "AND t.ref = r.payment_id WHERE r.outcome = 'completed' GROUP BY r.payment_id "
     "HAVING sum(r.amount) > min(t.amount) "
     "UNION ALL SELECT format('refund %s: completed without a payment transfer of %s', "
     "r.refund_id, r.payment_id) FROM refunds r WHERE r.outcome = 'completed' AND NOT EXISTS "
     "(SELECT 1 FROM transfers t WHERE t.kind = 'payment' AND t.ref = r.payment_id) "
     "UNION ALL SELECT format('refund %s: transfer %s is %s %s -> %s, the payment %s is %s -> "
     "%s, batch %s of %s', r.refund_id, x.id, x.amount, x.debit_account, x.credit_account, "
     "t.ref, t.debit_account, t.credit_account, b.id, b.payee) FROM refunds r "
     "JOIN transfers t ON t.kind = 'payment' AND t.ref = r.payment_id "
     "LEFT JOIN transfers x ON x.id = r.transfer_id "
     "LEFT JOIN settlement_batches b ON b.id = r.batch_id WHERE r.outcome = 'completed' "
     "AND (x.id IS NULL OR x.kind <> 'refund' OR x.ref <> r.refund_id OR x.amount <> r.amount "
     "OR x.debit_account <> t.credit_account OR x.credit_account <> t.debit_account "
     "OR b.payee IS DISTINCT FROM t.credit_account OR b.currency <> t.currency) ORDER BY 1",
     0},
    {"refund_processed_once",
     "every refund transfer has exactly one processed refund request (none once it is "
     "older than the retention horizon) and one refunds row",
     "SELECT format('refund transfer %s (%s): %s processed rows, %s refunds rows', x.id, x.ref, "
     "(SELECT count(*) FROM processed p WHERE p.stage = 'refund' AND p.payment_id = x.ref), "
     "(SELECT count(*) FROM refunds r WHERE r.refund_id = x.ref AND r.transfer_id = x.id)) "
     "FROM transfers x WHERE x.kind = 'refund' AND ((SELECT count(*) FROM processed p "
     "WHERE p.stage = 'refund' AND p.payment_id = x.ref AND p.outcome = 'completed') <> "
     "CASE WHEN x.created_at < retention_horizon() THEN 0 ELSE 1 END "
     "OR (SELECT count(*) FROM refunds r WHERE r.refund_id = x.ref AND r.transfer_id = x.id) "
     "<> 1) ORDER BY x.id",
     0},
    {"deposits_applied_once",
     "every deposit transfer is one processed deposit_id (its processed row gone once older "
     "than the retention horizon), from sys:funding:<CUR> to its account with its amount, and "
     "every completed deposit has its transfer",
     "SELECT format('deposit transfer %s (%s): %s %s -> %s; deposit row %s %s -> %s %s; "
     "processed %s', x.id, x.ref, x.amount, x.debit_account, x.credit_account, d.outcome, "
     "d.amount, d.account, d.transfer_id, (SELECT count(*) FROM processed p WHERE "
     "p.stage = 'funds' AND p.payment_id = 'deposit:' || x.ref AND p.outcome = 'completed')) "
     "FROM transfers x LEFT JOIN deposits d ON d.deposit_id = x.ref WHERE x.kind = 'deposit' "
     "AND (d.deposit_id IS NULL OR d.outcome <> 'completed' OR d.transfer_id <> x.id "
     "OR d.amount <> x.amount OR d.account <> x.credit_account "
     "OR x.debit_account <> 'sys:funding:' || x.currency OR (SELECT count(*) FROM processed p "
     "WHERE p.stage = 'funds' AND p.payment_id = 'deposit:' || x.ref "
     "AND p.outcome = 'completed') <> "
     "CASE WHEN x.created_at < retention_horizon() THEN 0 ELSE 1 END) "
     "UNION ALL SELECT format('deposit %s: completed without a deposit transfer', d.deposit_id) "
     "FROM deposits d WHERE d.outcome = 'completed' AND NOT EXISTS (SELECT 1 FROM transfers x "
     "WHERE x.id = d.transfer_id AND x.kind = 'deposit') ORDER BY 1",
     0},
    {"withdrawals_match_requests",
     "every withdrawal transfer is one processed withdrawal_id (its processed row gone once "
     "older than the retention horizon), from its account to "
     "sys:withdrawals:<CUR> with its amount; a returned one came back once, the same amount "
     "to the same account",
     "SELECT format('withdrawal transfer %s (%s): %s %s -> %s; withdrawal row %s %s %s; "
     "processed %s', x.id, x.ref, x.amount, x.debit_account, x.credit_account, w.outcome, "
     "w.amount, w.account, (SELECT count(*) FROM processed p WHERE p.stage = 'funds' "
     "AND p.payment_id = 'withdrawal:' || x.ref AND p.outcome = 'completed')) "
     "FROM transfers x LEFT JOIN withdrawals w ON w.withdrawal_id = x.ref "
     "WHERE x.kind = 'withdrawal' AND (w.withdrawal_id IS NULL OR w.outcome <> 'completed' "
     "OR w.transfer_id <> x.id OR w.amount <> x.amount OR w.account <> x.debit_account "
     "OR x.credit_account <> 'sys:withdrawals:' || x.currency OR (SELECT count(*) FROM "
     "processed p WHERE p.stage = 'funds' AND p.payment_id = 'withdrawal:' || x.ref "
     "AND p.outcome = 'completed') <> "
     "CASE WHEN x.created_at < retention_horizon() THEN 0 ELSE 1 END) "
     "UNION ALL SELECT format('withdrawal %s: returned by transfer %s of %s %s -> %s', "
     "w.withdrawal_id, r.id, r.amount, r.debit_account, r.credit_account) FROM withdrawals w "
     "JOIN transfers r ON r.kind = 'withdrawal_return' AND r.ref = w.withdrawal_id "
     "WHERE w.return_transfer_id IS DISTINCT FROM r.id OR r.amount <> w.amount "
     "OR r.credit_account <> w.account OR r.debit_account <> 'sys:withdrawals:' || w.currency "
     "OR w.outcome <> 'completed' "
     "UNION ALL SELECT format('withdrawal %s: return_transfer_id %s is not its return', "
     "w.withdrawal_id, w.return_transfer_id) FROM withdrawals w "
     "WHERE w.return_transfer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM transfers r "
     "WHERE r.id = w.return_transfer_id AND r.kind = 'withdrawal_return' "
     "AND r.ref = w.withdrawal_id) "
     "UNION ALL SELECT format('withdrawal %s: completed without its transfer', w.withdrawal_id) "
     "FROM withdrawals w WHERE w.outcome = 'completed' AND NOT EXISTS (SELECT 1 FROM "
     "transfers x WHERE x.id = w.transfer_id AND x.kind = 'withdrawal') ORDER BY 1",
     0},
    {"outbox_sent",
     "every event committed longer ago than --unsent-within was confirmed by the broker (an "
     "older unsent one means no worker of its stage is running, or its broker is unreachable)",
     "SELECT format('event %s (%s of %s %s, stage %s, committed %s): not confirmed by the "
     "broker yet', o.event_id, o.routing_key, o.stage, coalesce(o.payment_id, '-'), p.stage, "
     "to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) "
     "FROM outbox_pending p JOIN outbox o ON o.id = p.id "
     "WHERE p.created_at < now() - $1::bigint * interval '1 second' ORDER BY p.id",
     2},
    {"processed_claimed_once",
     "each stage claimed each key at most once (processed_claim's class 3 locks: the "
     "partitioned table has no unique index on it)",
     "SELECT format('stage %s, key %s: %s processed rows', stage, payment_id, count(*)) "
     "FROM processed GROUP BY stage, payment_id HAVING count(*) > 1 ORDER BY 1",
     0},
    {"payment_decided_once", "no payment was both refused (payment_failures) and posted",
     "SELECT format('payment %s: refused (%s at %s) and posted (transfer %s)', f.payment_id, "
     "f.reason, to_char(f.failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), t.id) "
     "FROM payment_failures f JOIN transfers t ON t.kind = 'payment' AND t.ref = f.payment_id "
     "ORDER BY 1",
     0},
    {"partitions_ready",
     "processed and outbox each have a partition that holds now, with the same bounds (a "
     "worker's retention job creates them ahead: retention.ahead_s)",
     "SELECT format('%s: no partition holds now (%s): is any worker running its retention "
     "job? run `ledgerctl migrate` to create them', t.t, now()) FROM (VALUES ('processed'), "
     "('outbox')) t(t) WHERE NOT EXISTS (SELECT 1 FROM retention_bounds(t.t) b "
     "WHERE now() >= b.lo AND now() < b.hi) "
     "UNION ALL SELECT format('partition %s [%s, %s) of processed has no outbox partition of "
     "the same bounds', p.part, p.lo, p.hi) FROM retention_bounds('processed') p "
     "WHERE NOT EXISTS (SELECT 1 FROM retention_bounds('outbox') o WHERE o.lo = p.lo "
     "AND o.hi = p.hi) ORDER BY 1",
     0},
};

#define NINVARIANTS (sizeof invariants / sizeof invariants[0])

int ctl_verify_ledger(ctl_t *c, int64_t settle_within, int64_t unsent_within, json_t *list,
                      bool print)
{
    db_t *db = ctl_db(c);
    if (!db)
        return -1;
    /* one consistent snapshot for every check */
    if (db_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != LL_OK) {
        ctl_fail(NULL, "cannot start a read-only transaction: %s", db_errstr(db));
        return -1;
    }
    int broken = 0;
    for (size_t i = 0; i < NINVARIANTS; i++) {
        const invariant_t *inv = &invariants[i];
        char sql[2048];
        snprintf(sql, sizeof sql, "%s LIMIT %d", inv->sql, VERIFY_ROWS + 1);
        char within[24];
        snprintf(within, sizeof within, "%" PRId64,
                 inv->nparams == 2 ? unsent_within : settle_within);
        const char *params[] = {within};
        PGresult *r;
        if (db_query(db, &r, sql, inv->nparams ? 1 : 0, inv->nparams ? params : NULL) != LL_OK) {
            ctl_fail("run `ledgerctl migrate` if the schema is missing", "checking %s: %s",
                     inv->name, db_errstr(db));
            db_try(db, "ROLLBACK");
            return -1;
        }
        int n = PQntuples(r);
        broken += n > 0;
        if (list) {
            json_t *rows = json_array();
            for (int k = 0; k < n && k < VERIFY_ROWS; k++)
                json_array_append_new(rows, json_string(PQgetvalue(r, k, 0)));
            json_array_append_new(list,
                                  json_pack("{s:s, s:s, s:b, s:o}", "name", inv->name, "promise",
                                            inv->promise, "ok", n == 0, "rows", rows));
        }
        if (print) {
            printf("%-5s %-28s %s\n", n ? "FAIL" : "ok", inv->name, inv->promise);
            for (int k = 0; k < n && k < VERIFY_ROWS; k++)
                printf("        %s\n", PQgetvalue(r, k, 0));
            if (n > VERIFY_ROWS)
                printf("        ... and more\n");
        }
        PQclear(r);
    }
    db_try(db, "COMMIT");
    return broken;
}

size_t ctl_verify_count(void)
{
    return NINVARIANTS;
}

int cmd_verify(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("verify");
    static const struct option opts[] = {{"settle-within", required_argument, NULL, 's'},
                                         {"unsent-within", required_argument, NULL, 'u'},
                                         {NULL, 0, NULL, 0}};
    int64_t settle_within = 900, unsent_within = CTL_VERIFY_UNSENT_WITHIN;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        if (ch != 's' && ch != 'u')
            return ch == 'h' ? 0 : 2;
        int64_t *v = ch == 's' ? &settle_within : &unsent_within;
        if (money_parse_minor(optarg, v) != LL_OK || *v < 0 || *v > 315360000)
            return ctl_usage_error(cmd, "%s '%s' must be 0..315360000 seconds",
                                   ch == 's' ? "--settle-within" : "--unsent-within", optarg);
    }
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    json_t *list = c->json ? json_array() : NULL;
    int broken = ctl_verify_ledger(c, settle_within, unsent_within, list, !c->json);
    if (broken < 0) {
        json_decref(list);
        return 1;
    }
    if (list) {
        ctl_json_print(json_pack("{s:b, s:i, s:i, s:o}", "ok", broken == 0, "checked",
                                 (int)NINVARIANTS, "broken", broken, "invariants", list));
    } else if (broken) {
        printf("ledger verify: %d of %zu invariants BROKEN\n", broken, NINVARIANTS);
    } else {
        printf("ledger verify: all %zu invariants hold\n", NINVARIANTS);
    }
    if (broken)
        fprintf(stderr,
                "ledgerctl: %d ledger invariant(s) broken (listed above)\n"
                "  fix: stop the workers, find what wrote the rows listed above "
                "(worker logs, manual SQL), and repair them with compensating transfers\n",
                broken);
    return broken ? 1 : 0;
}
