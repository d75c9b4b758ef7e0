/*
 * test_payment_crash.c - kill -9 at every crash point of the worker
 * runtime loses and doubles nothing.
 *
 * For each point: 200 approved payments over four generously funded
 * accounts (no payment can fail, so the expected balances do not depend on
 * the order redeliveries come back in); a worker with
 * LEDGERLINE_CRASH_AT=<point> (test builds: -DLEDGERLINE_CRASH_POINTS=ON)
 * and batches of 16 kills itself in its third batch; the test checks it
 * died by SIGKILL, starts a worker without the crash, waits until every
 * payment is decided, its event published and the outbox empty, stops it
 * with SIGTERM (exit 0), then checks: one processed row and one transfer
 * per payment, balances equal to one-at-a-time processing, every
 * payment.completed published (same bytes each time), verify green, the
 * queue empty (nothing left unacked), no unsent outbox row. Payments lost
 * (fewer decided, nothing left to deliver them) fail at once, naming the
 * rule, not at the timeout.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ll_amqp.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"

#define WORKER  LL_BIN_DIR "/payment-worker"
#define NPAY    200
#define NACC    4
#define WAIT_MS 40000
#define T0_MS   1767225600000LL
#define FUNDS   1000000

LLW_FIXTURE(llw_payment_queues)

static const struct {
    const char *point;
    int after; /* LEDGERLINE_CRASH_AFTER */
} points[] = {
    {"mid_batch", 3},    {"after_decode", 3},  {"before_commit", 3},
    {"after_commit", 3}, {"after_publish", 3}, {"after_ack", 3},
};

/* Fails at once, instead of at the timeout, when payments are lost: fewer
 * than NPAY decided, the count still for LOST_QUIET_MS, and nothing left
 * in the queue or its retry tier to deliver them (a message acked before
 * its outcome was committed dies with the crash). Returns when all are
 * decided. */
#define LOST_QUIET_MS 5000
static void fail_fast_if_lost(const char *point, int64_t at_crash)
{
    int64_t last = -1, since = llw_now_ms(), t0 = llw_now_ms();
    while (llw_now_ms() - t0 < WAIT_MS) {
        int64_t n = llw_count(db, "SELECT count(*) FROM processed WHERE stage = 'payment'");
        if (n >= NPAY)
            return;
        if (n != last) {
            last = n;
            since = llw_now_ms();
        } else if (llw_now_ms() - since >= LOST_QUIET_MS && llw_queue_depth(m, "payments") == 0 &&
                   llw_queue_depth(m, "payments.retry.1s") == 0) {
            ck_abort_msg("a message is acked only after its outcome is committed: after a crash at "
                         "%s (%" PRId64 " processed then), %" PRId64 " of %d payments are decided "
                         "and nothing is left to deliver the other %" PRId64 ": they were lost",
                         point, at_crash, n, NPAY, NPAY - n);
        }
        llw_sleep_ms(200);
    }
}

START_TEST(a_kill_at_each_crash_point_loses_and_doubles_nothing)
{
    const char *point = points[_i].point;
    llw_account_t acc[NACC] = {
        {"a0", "EUR", FUNDS, 0, false},
        {"a1", "EUR", FUNDS, 0, false},
        {"a2", "EUR", FUNDS, 0, false},
        {"a3", "EUR", FUNDS, 0, false},
    };
    llw_accounts_create(ledger, acc, NACC);
    static msg_payment_t pays[NPAY];
    for (int i = 0; i < NPAY; i++) {
        msg_payment_t *p = &pays[i];
        memset(p, 0, sizeof *p);
        snprintf(p->payment_id, sizeof p->payment_id, "%s-c%d", ledger, i);
        snprintf(p->payer, sizeof p->payer, "a%d", i % NACC);
        snprintf(p->payee, sizeof p->payee, "a%d", (i % NACC + 1 + (i / NACC) % (NACC - 1)) % NACC);
        p->amount = 1 + (i * 37) % 500;
        snprintf(p->currency, sizeof p->currency, "EUR");
        const char *got = llw_model_apply(acc, NACC, p);
        ck_assert_msg(strcmp(got, "completed") == 0, "test data: payment %d would be %s", i, got);
        free(llw_publish_approved(m, p, T0_MS + i));
    }
    llw_confirm(m);

    char at[64], after[64];
    snprintf(at, sizeof at, "LEDGERLINE_CRASH_AT=%s", point);
    snprintf(after, sizeof after, "LEDGERLINE_CRASH_AFTER=%d", points[_i].after);
    const char *crash_env[] = {"LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=16", at, after, NULL};
    pid_t c = llw_start_instance(WORKER, ledger, "crasher", crash_env);
    llw_expect_exit(c);
    int st = llw_wait_exit(c, WAIT_MS);
    LLW_ASSERT(st == -SIGKILL,
               "LEDGERLINE_CRASH_AT=%s: the worker should kill itself with SIGKILL: %s (a build "
               "without -DLEDGERLINE_CRASH_POINTS=ON never crashes)",
               point, llw_status_str(st));
    int64_t at_crash = llw_count(db, "SELECT count(*) FROM processed");

    static const char *const env[] = {"LEDGERLINE_WORKER_OUTBOX_SWEEP_INTERVAL_MS=200",
                                      "LEDGERLINE_WORKER_OUTBOX_SWEEP_AGE_MS=500", NULL};
    pid_t w = llw_start_instance(WORKER, ledger, "recoverer", env);
    /* every payment decided and published, the outbox empty, nothing ready
     * in payments */
    llw_done_t want = {.counts = {"SELECT count(*) FROM processed WHERE stage = 'payment'"},
                       .rows = NPAY,
                       .events = {MSG_TYPE_COMPLETED},
                       .distinct = NPAY,
                       .rejected = LLW_ANY,
                       .drained = "payments"};
    char what[128];
    snprintf(what, sizeof what, "recovery after a crash at %s (%" PRId64 " processed then)", point,
             at_crash);
    fail_fast_if_lost(point, at_crash);
    llw_wait_done(&fx, &want, WAIT_MS, what);
    llw_stop_ok(w, 20000, point);
    llw_events_collect(ev);

    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM processed WHERE outcome = 'completed'") == NPAY,
               "%s: processed rows not all completed", point);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'") == NPAY,
               "%s: %" PRId64 " payment transfers, want %d", point,
               llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'"), NPAY);
    for (int i = 0; i < NPAY; i++) {
        const char *id = pays[i].payment_id;
        int64_t t = llw_count(db,
                              "SELECT count(*) FROM transfers WHERE kind = 'payment' AND ref = "
                              "'%s' AND debit_account = '%s' AND credit_account = '%s' AND "
                              "amount = %" PRId64,
                              id, pays[i].payer, pays[i].payee, pays[i].amount);
        LLW_ASSERT(t == 1, "%s: payment %s has %" PRId64 " matching transfers", point, id, t);
        size_t n = llw_events_count(ev, MSG_TYPE_COMPLETED, id);
        LLW_ASSERT(n >= 1, "%s: payment.completed of %s never published", point, id);
        json_t *first = llw_events_find(ev, MSG_TYPE_COMPLETED, id, 0);
        char want_id[MSG_EVENT_ID_LEN + 1];
        msg_event_id(MSG_TYPE_COMPLETED, id, want_id);
        for (size_t k = 0; k < n; k++) {
            json_t *e = llw_events_find(ev, MSG_TYPE_COMPLETED, id, k);
            const char *mid = json_string_value(json_object_get(e, "message_id"));
            LLW_ASSERT(mid && strcmp(mid, want_id) == 0 &&
                           json_equal(json_object_get(e, "body"), json_object_get(first, "body")),
                       "%s: payment %s published with another id or other bytes", point, id);
        }
    }
    for (int i = 0; i < NACC; i++) {
        int64_t b = llw_balance(db, acc[i].id);
        LLW_ASSERT(b == acc[i].balance, "%s: %s balance %" PRId64 ", one-at-a-time %" PRId64, point,
                   acc[i].id, b, acc[i].balance);
    }
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0 &&
                   llw_events_count(ev, MSG_TYPE_FAILED, NULL) == 0,
               "%s: unexpected message.rejected or payment.failed", point);
    LLW_ASSERT(llw_queue_depth(m, "payments") == 0, "%s: messages left in payments", point);
    LLW_ASSERT(llw_queue_depth(m, "payments.dead") == 0, "%s: messages parked", point);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM outbox_pending") == 0, "%s: unsent outbox rows",
               point);
    llw_assert_verify(ledger);
    for (int i = 0; i < NPAY; i++)
        msg_payment_clear(&pays[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("payment_crash");
    TCase *tc = tcase_create("crash-points");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, a_kill_at_each_crash_point_loses_and_doubles_nothing, 0,
                        (int)(sizeof points / sizeof points[0]));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
