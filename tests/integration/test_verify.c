/*
 * test_verify.c - `ledgerctl verify`: green on a funded ledger, and red,
 * naming the broken invariant and the rows involved, on ledgers this test
 * corrupts on purpose, one corruption per case.
 */
#include <stdlib.h>
#include <string.h>

#include "ll_ledger.h"
#include "ll_test.h"

static char *ledger;
static db_t *db;

static void ctl(const char *args)
{
    llw_ctl(ledger, "%s", args);
}

/* A small funded ledger: alice and bob (EUR), carol (USD), a transfer. */
static void setup(void)
{
    ledger = llt_ledger();
    db = llt_db(ledger);
    ctl("account create alice --currency EUR");
    ctl("account create bob --currency EUR --overdraft 100");
    ctl("account create carol --currency USD");
    ctl("account fund alice 1000 --ref f1");
    ctl("account fund bob 500 --ref f2");
    ctl("account fund carol 70 --ref f3");
    llt_exec(db, "SELECT * FROM ledger_post('p-1', 'payment', 'alice', 'bob', 300, 'EUR')");
}

static void teardown(void)
{
    db_free(db);
    llt_dropdb(ledger);
    free(ledger);
}

START_TEST(verify_is_green_on_a_funded_ledger)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "verify");
    ck_assert_msg(rc == 0, "%s%s", out, err);
    ck_assert_msg(strstr(out, "all 21 invariants hold") != NULL, "%s", out);
    free(out);
    free(err);
    rc = llt_ctl(&out, &err, ledger, "verify --json");
    ck_assert_int_eq(rc, 0);
    json_t *j = llt_json(out);
    ck_assert(json_is_true(json_object_get(j, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "broken")), 0);
    json_decref(j);
    free(out);
    free(err);
}
END_TEST

static const struct {
    const char *label;
    const char *corrupt;   /* SQL run on the funded ledger */
    const char *invariant; /* must be reported broken */
    const char *row;       /* must appear in that invariant's rows */
} corruptions[] = {
    {"balance edited by hand", "UPDATE accounts SET balance = balance + 1 WHERE id = 'alice'",
     "balance_matches_entries", "account alice: balance 701, entries sum to 700"},
    {"money created from nothing", "UPDATE accounts SET balance = balance + 1 WHERE id = 'alice'",
     "zero_sum", "currency EUR: balances sum to 1"},
    {"customer below its overdraft",
     "UPDATE accounts SET balance = balance - 75 WHERE id = 'carol';"
     "UPDATE accounts SET balance = balance + 75 WHERE id = 'sys:funding:USD'",
     "overdraft_respected", "account carol: balance -5 is below -0"},
    {"payment posted twice",
     "ALTER TABLE transfers DROP CONSTRAINT transfers_ref_kind_key;"
     "INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency) "
     "VALUES ('p-1', 'payment', 'alice', 'bob', 300, 'EUR')",
     "one_transfer_per_payment", "payment p-1: 2 payment transfers"},
    {"transfer without entries",
     "INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency) "
     "VALUES ('ghost', 'payment', 'alice', 'bob', 5, 'EUR')",
     "double_entry", "(payment ghost): 0 entries"},
    {"entry on a third account",
     "UPDATE entries SET account_id = 'carol' WHERE id = (SELECT max(id) FROM entries)",
     "entries_belong_to_transfers", "account carol is not a side of transfer"},
    {"transfer currency rewritten", "UPDATE transfers SET currency = 'USD' WHERE ref = 'p-1'",
     "currency_consistent", "(p-1): USD, but account alice is EUR"},
    {"balance_after rewritten",
     "UPDATE entries SET balance_after = balance_after + 7 WHERE id = (SELECT min(id) FROM "
     "entries WHERE account_id = 'alice')",
     "balance_after_chain", "of account alice: balance_after 1007, running sum 1000"},
    {"payment from a system account",
     "INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, currency) "
     "VALUES ('p-sys', 'payment', 'sys:funding:EUR', 'bob', 5, 'EUR')",
     "payments_between_customers", "and sys:funding:EUR is a system account"},
    {"payment never settled",
     "UPDATE transfers SET created_at = now() - interval '1 hour' WHERE ref = 'p-1'",
     "payment_settled", "payment p-1 (transfer"},
    {"batch item differs from its transfer",
     "INSERT INTO settlement_batches (id, payee, currency, window_start, window_end, count, "
     "gross, fees_raw) VALUES ('sb-x', 'bob', 'EUR', now(), now() + interval '1 day', 1, 301, 0);"
     "INSERT INTO settlement_items (payment_id, batch_id, amount, fee, late) "
     "VALUES ('p-1', 'sb-x', 301, 0, false)",
     "payment_in_one_batch", "payment p-1: batch sb-x holds 301 EUR for payee bob"},
    {"refunds past their payment",
     "INSERT INTO settlement_batches (id, payee, currency, window_start, window_end) "
     "VALUES ('sb-r', 'bob', 'EUR', now(), now() + interval '1 day');"
     "INSERT INTO refunds (refund_id, payment_id, amount, outcome, transfer_id, batch_id) "
     "SELECT 'r-' || n, 'p-1', 200, 'completed', (SELECT transfer_id FROM ledger_post('r-' || n, "
     "'refund', 'bob', 'alice', 150, 'EUR')), 'sb-r' FROM generate_series(1, 2) n",
     "refunds_within_payment", "payment p-1: refunds 400 exceed its amount 300"},
    {"refund transfer without a request",
     "SELECT * FROM ledger_post('r-9', 'refund', 'bob', 'alice', 10, 'EUR')",
     "refund_processed_once", "(r-9): 0 processed rows, 0 refunds rows"},
    {"deposit without a request",
     "SELECT * FROM ledger_post('d-9', 'deposit', 'sys:funding:EUR', 'alice', 5, 'EUR')",
     "deposits_applied_once", "(d-9): 5 sys:funding:EUR -> alice"},
    {"withdrawal without a request",
     "INSERT INTO accounts (id, currency, kind) VALUES ('sys:withdrawals:EUR', 'EUR', 'system');"
     "SELECT * FROM ledger_post('w-9', 'withdrawal', 'alice', 'sys:withdrawals:EUR', 5, 'EUR')",
     "withdrawals_match_requests", "(w-9): 5 alice -> sys:withdrawals:EUR"},
    {"closed batch that pays out more than gross - fees - refunds",
     "INSERT INTO settlement_batches (id, payee, currency, window_start, window_end, status, "
     "fees, net, carried_out) VALUES ('sb-c', 'bob', 'EUR', now(), now() + interval '1 day', "
     "'closed', 0, 5, 0)",
     "batch_postings_match", "batch sb-c (closed)"},
    {"an event the broker never confirmed",
     "INSERT INTO outbox (stage, payment_id, event_id, exchange, routing_key, body, created_at) "
     "VALUES ('payment', 'p-1', 'e-stuck', 'ledgerline.events', 'payment.completed', '{}', "
     "now() - interval '1 hour');"
     "INSERT INTO outbox_pending (id, stage, created_at) SELECT id, 'payment', "
     "now() - interval '1 hour' FROM outbox WHERE event_id = 'e-stuck'",
     "outbox_sent", "event e-stuck (payment.completed of payment p-1, stage payment"},
    {"a shortfall carried out and never taken",
     "INSERT INTO settlement_batches (id, payee, currency, window_start, window_end, status, "
     "fees, net, carried_out) VALUES ('sb-s', 'bob', 'EUR', now(), now() + interval '1 day', "
     "'closed', 0, 0, 7)",
     "carry_conserved", "payee bob EUR: 7 carried out, 0 carried in, 0 owed"},
    {"a key claimed twice (a claim that skipped processed_claim)",
     "INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome, created_at) "
     "VALUES ('payment', 'p-9', 'h', '{}', 'completed', now()), "
     "('payment', 'p-9', 'h', '{}', 'completed', now() - interval '1 second')",
     "processed_claimed_once", "stage payment, key p-9: 2 processed rows"},
    {"a refused payment posted",
     "INSERT INTO payment_failures (payment_id, reason) VALUES ('p-1', 'insufficient_funds')",
     "payment_decided_once", "payment p-1: refused (insufficient_funds at"},
    {"the outbox partition of now dropped by hand",
     "DO $$ BEGIN EXECUTE (SELECT format('DROP TABLE %I', b.part) FROM retention_bounds('outbox') "
     "b WHERE now() >= b.lo AND now() < b.hi); END $$",
     "partitions_ready", "outbox: no partition holds now"},
};

/* A payment younger than --settle-within is in flight; older, it must be in
 * a settlement batch. */
START_TEST(verify_settle_within_sets_when_a_payment_must_be_in_a_batch)
{
    llt_exec(db, "UPDATE transfers SET created_at = now() - interval '1 hour' WHERE ref = 'p-1'");
    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "verify --settle-within 7200");
    ck_assert_msg(rc == 0, "an hour-old payment within 2 h must pass: %s%s", out, err);
    free(out);
    free(err);
    rc = llt_ctl(&out, &err, ledger, "verify --settle-within 1800");
    ck_assert_msg(rc == 1 && strstr(out, "FAIL  payment_settled"),
                  "an hour-old unsettled "
                  "payment past 30 min must fail: %s%s",
                  out, err);
    free(out);
    free(err);
    rc = llt_ctl(&out, &err, ledger, "verify --settle-within -1");
    ck_assert_msg(rc == 2 && strstr(err, "--settle-within"), "bad value: exit %d: %s", rc, err);
    free(out);
    free(err);
}
END_TEST

/* An unconfirmed event younger than --unsent-within is in flight; older,
 * it is stuck. */
START_TEST(verify_unsent_within_sets_when_an_event_is_stuck)
{
    llt_exec(db, "INSERT INTO outbox (stage, payment_id, event_id, exchange, routing_key, body) "
                 "VALUES ('payment', 'p-1', 'e-new', 'ledgerline.events', 'payment.completed', "
                 "'{}');"
                 "INSERT INTO outbox_pending (id, stage, created_at) SELECT id, 'payment', "
                 "now() - interval '10 minutes' FROM outbox WHERE event_id = 'e-new'");
    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "verify --unsent-within 3600");
    ck_assert_msg(rc == 0, "a 10-minute-old unsent event within an hour must pass: %s%s", out, err);
    free(out);
    free(err);
    rc = llt_ctl(&out, &err, ledger, "verify");
    ck_assert_msg(rc == 1 && strstr(out, "FAIL  outbox_sent") && strstr(out, "e-new"),
                  "past the default 300 s it is stuck: %s%s", out, err);
    free(out);
    free(err);
    rc = llt_ctl(&out, &err, ledger, "verify --unsent-within x");
    ck_assert_msg(rc == 2 && strstr(err, "--unsent-within"), "bad value: exit %d: %s", rc, err);
    free(out);
    free(err);
}
END_TEST

START_TEST(verify_names_each_broken_invariant_and_its_rows)
{
    llt_exec(db, corruptions[_i].corrupt);
    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "verify --json");
    ck_assert_msg(rc == 1, "%s: verify exited %d: %s", corruptions[_i].label, rc, out);
    ck_assert_msg(strstr(err, "invariant(s) broken") && strstr(err, "fix:"), "%s", err);
    json_t *j = llt_json(out);
    ck_assert(json_is_false(json_object_get(j, "ok")));
    json_t *inv;
    size_t k;
    int seen = 0;
    json_array_foreach(json_object_get(j, "invariants"), k, inv)
    {
        if (strcmp(json_string_value(json_object_get(inv, "name")), corruptions[_i].invariant))
            continue;
        seen = 1;
        ck_assert_msg(json_is_false(json_object_get(inv, "ok")), "%s: %s reported ok",
                      corruptions[_i].label, corruptions[_i].invariant);
        char *rows = json_dumps(json_object_get(inv, "rows"), 0);
        ck_assert_msg(strstr(rows, corruptions[_i].row) != NULL, "%s: rows %s lack '%s'",
                      corruptions[_i].label, rows, corruptions[_i].row);
        free(rows);
    }
    ck_assert_msg(seen, "invariant %s not in the report", corruptions[_i].invariant);
    json_decref(j);
    free(out);
    free(err);
    /* the human report names it too */
    rc = llt_ctl(&out, &err, ledger, "verify");
    ck_assert_int_eq(rc, 1);
    char want[128];
    snprintf(want, sizeof want, "FAIL  %s", corruptions[_i].invariant);
    ck_assert_msg(strstr(out, want) && strstr(out, corruptions[_i].row), "%s", out);
    free(out);
    free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_create("postgres");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, verify_is_green_on_a_funded_ledger);
    tcase_add_test(tc, verify_settle_within_sets_when_a_payment_must_be_in_a_batch);
    tcase_add_test(tc, verify_unsent_within_sets_when_an_event_is_stuck);
    tcase_add_loop_test(tc, verify_names_each_broken_invariant_and_its_rows, 0,
                        (int)(sizeof corruptions / sizeof corruptions[0]));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
