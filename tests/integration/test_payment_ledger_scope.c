/*
 * test_payment_ledger_scope.c - a Redis that outlived its database must not
 * answer for a ledger that never saw the payment (regression: a benchmark
 * recreated its database, Redis still held the old "done" entries, and one
 * payment with an identical payload was acked without ever being posted).
 *
 * Ledger A processes payment P with Redis up, so Redis remembers it. Then a
 * fresh ledger B, same accounts, receives the very same P: B must post it.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_amqp.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"

static void setup_ledger(const char *db)
{
    llw_ctl(db, "account create scope-payer --currency EUR");
    llw_ctl(db, "account create scope-shop --currency EUR --kind merchant");
    llw_ctl(db, "account fund scope-payer 10000 --ref scope-fund");
}

/* Runs one worker on `db` until `payments` is drained, then stops it. */
static void run_once(mq_t *m, const char *db, const msg_payment_t *p)
{
    pid_t w = llw_start(LL_BIN_DIR "/payment-worker", db, NULL, NULL);
    llw_wait_consuming(m, "payments", 1, 30000);
    free(llw_publish_approved(m, p, 1700000000000));
    llw_confirm(m);
    llw_wait_drained(m, "payments", 30000);
    llw_stop_ok(w, 20000, db);
}

START_TEST(payment_redis_entries_of_another_ledger_are_ignored)
{
    mq_t *m = llt_mq();
    const char *const queues[] = {"payments", "payments.dead", NULL};
    llw_purge(m, queues);
    msg_payment_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.payment_id, sizeof p.payment_id, "scope-%d", (int)getpid());
    snprintf(p.payer, sizeof p.payer, "scope-payer");
    snprintf(p.payee, sizeof p.payee, "scope-shop");
    p.amount = 700;
    snprintf(p.currency, sizeof p.currency, "EUR");

    char *a = llt_ledger(), *b = llt_ledger();
    setup_ledger(a);
    setup_ledger(b);
    run_once(m, a, &p);
    db_t *dba = llt_db(a);
    LLW_ASSERT(llw_balance(dba, "scope-payer") == 9300, "ledger A did not post the payment");

    run_once(m, b, &p);
    db_t *dbb = llt_db(b);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM processed WHERE stage = 'payment' AND payment_id = '%s'",
             p.payment_id);
    LLW_ASSERT(llt_scalar(dbb, sql) == 1, "ledger B never processed %s: Redis answered for it",
               p.payment_id);
    LLW_ASSERT(llw_balance(dbb, "scope-payer") == 9300, "ledger B did not post the payment");
    db_free(dba);
    db_free(dbb);
    llt_dropdb(a);
    llt_dropdb(b);
    free(a);
    free(b);
    mq_free(m);
}
END_TEST

static void teardown(void)
{
    llw_kill_all();
}

int main(void)
{
    Suite *s = suite_create("payment_ledger_scope");
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, payment_redis_entries_of_another_ledger_are_ignored);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
