/*
 * test_stage_locks.c - the stages never wait on each other in a cycle.
 *
 * Each stage was proven alone; together they share rows: the payment stage
 * updates the balances of payers and payees, the settlement stage adds the
 * same payees' payments to batches (a new batch row checks its foreign key
 * to the payee's account) and its closer posts fees and payouts from them.
 * When the payment stage locked accounts FOR UPDATE, a settlement-worker's
 * foreign-key check (FOR KEY SHARE) on a payee it had just locked another
 * way formed a cycle with it: PostgreSQL broke it as a deadlock on most
 * batches, each costing deadlock_timeout and a retried batch.
 *
 * The test runs two payment-workers and two settlement-workers at once
 * over the same 60 merchants, with one-second settlement windows closed
 * without grace (so new batch rows, closes and late payments happen all the
 * time, while payments to the same merchants are posted), pushes 3000
 * payments through, and checks:
 *   - pg_stat_database.deadlocks of the ledger's database did not move
 *     (read after the workers exited, so their backends' counters are
 *     flushed), and no worker logged a deadlock or a retried transaction;
 *   - every payment was posted and is in exactly one settlement batch,
 *     and `ledgerctl verify` holds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_amqp.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"

#define PAYMENT    LL_BIN_DIR "/payment-worker"
#define SETTLEMENT LL_BIN_DIR "/settlement-worker"
#define NPAY       3000
#define NPAYERS    40
#define NPAYEES    60
#define WAIT_MS    180000
#define T0_MS      1767225600000LL

static const char *const queues[] = {
    "payments",   "payments.dead",   "payments.retry.1s",   "payments.retry.30s",
    "settlement", "settlement.dead", "settlement.retry.1s", "settlement.retry.30s",
    NULL};

LLW_FIXTURE(queues)

static bool all_settled(void *arg, char *status, size_t n)
{
    (void)arg;
    int64_t posted = -1, items = -1, closed = -1;
    llw_try_scalar(db, "SELECT count(*) FROM processed WHERE stage = 'payment'", &posted);
    llw_try_scalar(db, "SELECT count(*) FROM settlement_items", &items);
    llw_try_scalar(db, "SELECT count(*) FROM settlement_batches WHERE status = 'closed'", &closed);
    snprintf(status, n,
             "payments decided %" PRId64 "/%d, in settlement batches %" PRId64
             ", closed batches %" PRId64,
             posted, NPAY, items, closed);
    return posted == NPAY && items == NPAY;
}

START_TEST(payment_and_settlement_workers_share_merchants_without_deadlock)
{
    /* accounts in bulk; funding through ledger_post() like ledgerctl */
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO accounts (id, currency, kind) VALUES ('sys:funding:EUR', 'EUR', "
             "'system'); "
             "INSERT INTO accounts (id, currency) SELECT 'p' || i, 'EUR' FROM "
             "generate_series(1, %d) i; "
             "INSERT INTO accounts (id, currency, kind, fee_bps, fee_fixed) SELECT 'm' || i, "
             "'EUR', 'merchant', 150, 25 FROM generate_series(1, %d) i",
             NPAYERS, NPAYEES);
    llt_exec(db, sql);
    int64_t funded = llw_count(db,
                               "SELECT count(*) FROM generate_series(1, %d) i, LATERAL "
                               "ledger_post('fund-' || i, 'funding', 'sys:funding:EUR', 'p' || i, "
                               "1000000000000, 'EUR') l WHERE l.status = 'posted'",
                               NPAYERS);
    ck_assert_int_eq(funded, NPAYERS);

    const char *pay_env[] = {"LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=64",
                             "LEDGERLINE_AMQP_PREFETCH=128", NULL};
    const char *set_env[] = {"LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=64",
                             "LEDGERLINE_AMQP_PREFETCH=128",
                             "LEDGERLINE_SETTLEMENT_WINDOW_S=1",
                             "LEDGERLINE_SETTLEMENT_GRACE_MS=0",
                             "LEDGERLINE_SETTLEMENT_CLOSE_INTERVAL_MS=100",
                             NULL};
    int64_t before = llw_deadlocks(db);
    pid_t w[4];
    w[0] = llw_start_instance(PAYMENT, ledger, "lk-pay-1", pay_env);
    w[1] = llw_start_instance(PAYMENT, ledger, "lk-pay-2", pay_env);
    w[2] = llw_start_instance(SETTLEMENT, ledger, "lk-set-1", set_env);
    w[3] = llw_start_instance(SETTLEMENT, ledger, "lk-set-2", set_env);
    llw_wait_consuming(m, "payments", 2, 30000);
    llw_wait_consuming(m, "settlement", 2, 30000);

    uint64_t seed = 7;
    for (int i = 0; i < NPAY; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        char payer[16], payee[16];
        snprintf(payer, sizeof payer, "p%d", (int)((seed >> 33) % NPAYERS) + 1);
        snprintf(payee, sizeof payee, "m%d", (int)((seed >> 40) % NPAYEES) + 1);
        char tag[32];
        snprintf(tag, sizeof tag, "lk%d", i);
        msg_payment_t p =
            llw_payment(ledger, tag, payer, payee, 100 + (int64_t)(seed >> 50) % 9000, "EUR");
        free(llw_publish_approved(m, &p, T0_MS + i));
        msg_payment_clear(&p);
        if (i % 500 == 499)
            llw_confirm(m);
    }
    llw_confirm(m);
    llw_wait_until(all_settled, NULL, WAIT_MS,
                   "every payment posted by the payment-workers and batched by the "
                   "settlement-workers");
    for (int k = 0; k < 4; k++)
        llw_stop_ok(w[k], 30000, NULL);
    int64_t after = llw_deadlocks(db);

    size_t logged = 0, retried = 0;
    for (int k = 0; k < 4; k++) {
        logged += llw_log_count(w[k], "deadlock detected");
        retried += llw_log_count(w[k], "failed (LL_ERETRY)");
    }
    LLW_ASSERT(after == before && logged == 0,
               "PostgreSQL counted %" PRId64 " deadlock(s) while the payment and settlement "
               "stages ran together (the workers logged %zu): the stages lock shared rows in "
               "conflicting modes or orders",
               after - before, logged);
    LLW_ASSERT(retried == 0, "%zu batch transaction(s) were retried after a server fault", retried);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM processed WHERE stage = 'payment' AND outcome "
                             "<> 'completed'") == 0,
               "every payment has the funds: all must complete");
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM settlement_items i JOIN transfers t ON "
                             "t.kind = 'payment' AND t.ref = i.payment_id") == NPAY,
               "every posted payment is in a settlement batch");
    LLW_ASSERT(llw_queue_depth(m, "payments.dead") == 0 &&
                   llw_queue_depth(m, "settlement.dead") == 0,
               "nothing may be parked");
    llw_assert_verify(ledger);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stage_locks");
    TCase *tc = tcase_create("pipeline");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, payment_and_settlement_workers_share_merchants_without_deadlock);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
