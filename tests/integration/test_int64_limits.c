/*
 * test_int64_limits.c - money at the signed 64-bit limit is a business
 * outcome, never an arithmetic error that parks a message
 * (docs/ledger.md#invariants).
 *
 *   - ledger_post refuses a posting that would take the credit balance past
 *     INT64_MAX, or a system debit balance past INT64_MIN, with
 *     'balance_overflow', and posts up to exactly the limit;
 *   - payment_apply_batch: two payments that fit alone but not together
 *     (the running sum passes the limit) give completed then
 *     balance_overflow, in one call, with no error; the balances end at the
 *     one-at-a-time result;
 *   - settlement_apply_batch: a payment that would take its window's batch
 *     gross (or fees) past the limit joins the next window, marked late,
 *     and the full batch keeps its sums. The full batch's gross is set by
 *     hand: reaching it with real payments would take 92,234 payments of
 *     the largest amount, so this test checks the function, not `verify`;
 *   - settlement_close: a payout that would take sys:payout past the limit
 *     raises naming balance_overflow (the closer then holds the batch).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test.h"

#define MAX "9223372036854775807"

static char *ledger;
static db_t *db;

static void setup(void)
{
    ledger = llt_ledger();
    db = llt_db(ledger);
}

static void teardown(void)
{
    db_free(db);
    llt_dropdb(ledger);
    free(ledger);
}

/* The single text value of `sql` (NULL as "<null>"). Caller frees. */
static char *value(const char *sql)
{
    PGresult *r;
    int rc = db_query(db, &r, sql, 0, NULL);
    ck_assert_msg(rc == LL_OK, "%s: %s", sql, db_errstr(db));
    ck_assert_msg(PQntuples(r) == 1, "%s: %d rows", sql, PQntuples(r));
    char *v = strdup(PQgetisnull(r, 0, 0) ? "<null>" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void value_is(const char *sql, const char *want)
{
    char *got = value(sql);
    ck_assert_msg(strcmp(got, want) == 0, "%s: got %s, want %s", sql, got, want);
    free(got);
}

/* a merchant 1000 short of the limit, a customer on overdraft */
static void near_limit_accounts(void)
{
    llt_exec(db, "INSERT INTO accounts (id, currency, kind) VALUES "
                 "('sys:funding:EUR', 'EUR', 'system');"
                 "INSERT INTO accounts (id, currency, kind) VALUES ('rich', 'EUR', 'merchant');"
                 "INSERT INTO accounts (id, currency, overdraft_limit) VALUES "
                 "('cust', 'EUR', 100000)");
    value_is("SELECT status FROM ledger_post('f-rich', 'funding', 'sys:funding:EUR', 'rich', " MAX
             " - 1000, 'EUR')",
             "posted");
}

START_TEST(ledger_post_refuses_a_balance_past_int64_and_posts_up_to_it)
{
    near_limit_accounts();
    value_is("SELECT status FROM ledger_post('p1', 'payment', 'cust', 'rich', 1001, 'EUR')",
             "balance_overflow");
    value_is("SELECT count(*) FROM transfers WHERE ref = 'p1'", "0");
    value_is("SELECT status FROM ledger_post('p2', 'payment', 'cust', 'rich', 1000, 'EUR')",
             "posted");
    value_is("SELECT balance FROM accounts WHERE id = 'rich'", MAX);
    value_is("SELECT status FROM ledger_post('p3', 'payment', 'cust', 'rich', 1, 'EUR')",
             "balance_overflow");
    /* the system debit side (no funds floor): sys:funding is at
     * -(MAX - 1000); 1001 more reach -MAX - 1 = INT64_MIN exactly, 1 more
     * would pass it */
    llt_exec(db, "INSERT INTO accounts (id, currency) VALUES ('other', 'EUR')");
    value_is("SELECT status FROM ledger_post('f-o1', 'funding', 'sys:funding:EUR', 'other', "
             "1001, 'EUR')",
             "posted"); /* -MAX - 1 = INT64_MIN */
    value_is("SELECT balance = -" MAX " - 1 FROM accounts WHERE id = 'sys:funding:EUR'", "t");
    value_is("SELECT status FROM ledger_post('f-o2', 'funding', 'sys:funding:EUR', 'other', "
             "1, 'EUR')",
             "balance_overflow");
    /* a customer far in the red is refused for funds, not overflow */
    value_is("SELECT status FROM ledger_post('p4', 'payment', 'cust', 'other', " MAX ", 'EUR')",
             "insufficient_funds");
}
END_TEST

START_TEST(a_batch_whose_running_sum_passes_int64_fails_the_payment_that_passes_it)
{
    near_limit_accounts();
    const char *batch =
        "[{\"key\":\"a\",\"payment_id\":\"a\",\"hash\":\"h\",\"payload\":\"p\",\"payer\":\"cust\","
        "\"payee\":\"rich\",\"amount\":600,\"currency\":\"EUR\"},"
        "{\"key\":\"b\",\"payment_id\":\"b\",\"hash\":\"h\",\"payload\":\"p\",\"payer\":\"cust\","
        "\"payee\":\"rich\",\"amount\":600,\"currency\":\"EUR\"},"
        "{\"key\":\"c\",\"payment_id\":\"c\",\"hash\":\"h\",\"payload\":\"p\",\"payer\":\"cust\","
        "\"payee\":\"rich\",\"amount\":400,\"currency\":\"EUR\"}]";
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(verdict || ':' || outcome, ',' ORDER BY ord) "
             "FROM payment_apply_batch('%s'::jsonb)",
             batch);
    value_is(sql, "new:completed,new:balance_overflow,new:completed");
    value_is("SELECT balance FROM accounts WHERE id = 'rich'", MAX);
    value_is("SELECT balance FROM accounts WHERE id = 'cust'", "-1000");
    value_is("SELECT string_agg(payment_id || '=' || outcome, ',' ORDER BY payment_id) "
             "FROM processed WHERE stage = 'payment'",
             "a=completed,b=balance_overflow,c=completed");
    value_is("SELECT count(*) FROM transfers WHERE kind = 'payment'", "2");
    /* the running balances of the entries end at the limit */
    value_is("SELECT max(balance_after) FROM entries WHERE account_id = 'rich'", MAX);
}
END_TEST

/* An event of a payment posted now into `payee`, window 60 s at t0_s. */
static void completed_event(char *buf, size_t n, const char *id, const char *payee, int64_t amount,
                            int64_t t0_s)
{
    snprintf(buf, n,
             "{\"key\":\"%s\",\"payment_id\":\"%s\",\"hash\":\"h-%s\",\"payload\":\"p\","
             "\"payee\":\"%s\",\"amount\":%" PRId64 ",\"currency\":\"EUR\",\"posted_ms\":%" PRId64
             "}",
             id, id, id, payee, amount, t0_s * 1000 + 5);
}

START_TEST(a_payment_that_would_fill_its_batch_past_int64_joins_the_next_window)
{
    llt_exec(db, "INSERT INTO accounts (id, currency, kind) VALUES "
                 "('sys:funding:EUR', 'EUR', 'system');"
                 "INSERT INTO accounts (id, currency, overdraft_limit) VALUES "
                 "('cust', 'EUR', 1000000000000);"
                 "INSERT INTO accounts (id, currency, kind, fee_bps) VALUES "
                 "('shop', 'EUR', 'merchant', 100)");
    const int64_t t0 = 1700000040; /* a multiple of 60 */
    char e1[256], e2[256], e3[256], sql[1400];
    completed_event(e1, sizeof e1, "s1", "shop", 5000, t0);
    completed_event(e2, sizeof e2, "s2", "shop", 7000, t0);
    completed_event(e3, sizeof e3, "s3", "shop", 100, t0);
    llt_exec(db, "SELECT ledger_post('s1', 'payment', 'cust', 'shop', 5000, 'EUR');"
                 "SELECT ledger_post('s2', 'payment', 'cust', 'shop', 7000, 'EUR');"
                 "SELECT ledger_post('s3', 'payment', 'cust', 'shop', 100, 'EUR')");
    snprintf(sql, sizeof sql,
             "SELECT string_agg(verdict || ':' || late, ',') FROM settlement_apply_batch("
             "'[%s]'::jsonb, 60)",
             e1);
    value_is(sql, "new:false");
    /* as if 92,000 payments had filled the batch: 6000 short of the limit */
    llt_exec(db, "UPDATE settlement_batches SET gross = " MAX " - 6000");
    snprintf(sql, sizeof sql,
             "SELECT string_agg(verdict || ':' || late || ':' || "
             "(batch_id = settlement_batch_id('shop', 'EUR', to_timestamp(%" PRId64 "))), ',' "
             "ORDER BY ord) FROM settlement_apply_batch('[%s,%s]'::jsonb, 60)",
             t0 + 60, e2, e3);
    value_is(sql, "new:true:true,new:false:false");
    value_is("SELECT gross = " MAX " - 6000 + 100 FROM settlement_batches "
             "WHERE window_start = to_timestamp(1700000040)",
             "t");
    value_is("SELECT gross || '/' || count || '/' || late_count FROM settlement_batches "
             "WHERE window_start = to_timestamp(1700000100)",
             "7000/1/1");
    /* the fees side: fees_raw 1 short of the limit, a fee of 1 more fills it */
    llt_exec(db, "UPDATE settlement_batches SET fees_raw = " MAX " - 1 "
                 "WHERE window_start = to_timestamp(1700000100)");
    llt_exec(db, "SELECT ledger_post('s4', 'payment', 'cust', 'shop', 250, 'EUR')");
    char e4[256];
    completed_event(e4, sizeof e4, "s4", "shop", 250, t0 + 60); /* fee 3 */
    snprintf(sql, sizeof sql,
             "SELECT verdict || ':' || late || ':' || "
             "(batch_id = settlement_batch_id('shop', 'EUR', to_timestamp(%" PRId64 "))) "
             "FROM settlement_apply_batch('[%s]'::jsonb, 60)",
             t0 + 120, e4);
    value_is(sql, "new:true:true");
}
END_TEST

START_TEST(a_payout_past_int64_is_refused_so_the_batch_is_held)
{
    llt_exec(db, "INSERT INTO accounts (id, currency, kind) VALUES "
                 "('sys:funding:EUR', 'EUR', 'system'), ('sys:payout:EUR', 'EUR', 'system');"
                 "INSERT INTO accounts (id, currency, overdraft_limit) VALUES "
                 "('cust', 'EUR', 1000000);"
                 "INSERT INTO accounts (id, currency, kind) VALUES ('shop', 'EUR', 'merchant')");
    /* sys:payout at the limit, as after a very long life of payouts */
    llt_exec(db, "INSERT INTO accounts (id, currency) VALUES ('filler', 'EUR');"
                 "SELECT ledger_post('f1', 'funding', 'sys:funding:EUR', 'filler', " MAX ", 'EUR');"
                 "SELECT ledger_post('old-batch', 'payout', 'filler', 'sys:payout:EUR', " MAX
                 ", 'EUR')");
    value_is("SELECT balance FROM accounts WHERE id = 'sys:payout:EUR'", MAX);
    llt_exec(db, "SELECT ledger_post('s1', 'payment', 'cust', 'shop', 500, 'EUR')");
    char e1[256], sql[600];
    completed_event(e1, sizeof e1, "s1", "shop", 500, 1700000040);
    snprintf(sql, sizeof sql, "SELECT batch_id FROM settlement_apply_batch('[%s]'::jsonb, 60)", e1);
    char *bid = value(sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM settlement_close('%s', 1, 'test')", bid);
    PGresult *r = NULL;
    int rc = db_query(db, &r, sql, 0, NULL);
    ck_assert_msg(rc != LL_OK, "the close of %s succeeded", bid);
    ck_assert_msg(strstr(db_errstr(db), "balance_overflow"), "close error: %s", db_errstr(db));
    snprintf(sql, sizeof sql, "SELECT status FROM settlement_batches WHERE id = '%s'", bid);
    value_is(sql, "open");
    value_is("SELECT balance FROM accounts WHERE id = 'shop'", "500");
    free(bid);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("int64_limits");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, ledger_post_refuses_a_balance_past_int64_and_posts_up_to_it);
    tcase_add_test(tc, a_batch_whose_running_sum_passes_int64_fails_the_payment_that_passes_it);
    tcase_add_test(tc, a_payment_that_would_fill_its_batch_past_int64_joins_the_next_window);
    tcase_add_test(tc, a_payout_past_int64_is_refused_so_the_batch_is_held);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
