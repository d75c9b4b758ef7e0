/*
 * test_retention.c - the retention of the bookkeeping (docs/ledger.md#retention)
 * with the real risk, payment and settlement workers on the test stack:
 * the workers' retention job drops the partitions of processed and outbox
 * once they are retention.window_s old, and then a late duplicate is
 * rejected as duplicate_expired at every stage (with Redis up or down),
 * parked, and never posted again, while new payments go on; inside the window a duplicate replays
 * its event exactly, with Redis down too; an outbox partition holding an
 * event the broker has not confirmed is kept until the sweep sent it; a
 * kill -9 in the job's transaction drops nothing; `ledgerctl verify`
 * holds after every expiry. The SQL functions themselves, at their
 * boundaries, are tests/sql/processed_expired.sql and retention_expire.sql.
 *
 * Time is played, not waited for: the test ledger is given daily
 * partitions for the past two weeks (its empty legacy partition dropped),
 * and "aging" moves a payment's bookkeeping rows into the partition of N
 * days ago and its books' times back by N days. Redis records of payments
 * aged past the window are deleted, as their TTL (at most half the
 * window) would have.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_redis.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg.h"
#include "msg_encode.h"
#include "xmalloc.h"

#define RISK_WORKER       LL_BIN_DIR "/risk-worker"
#define PAYMENT_WORKER    LL_BIN_DIR "/payment-worker"
#define SETTLEMENT_WORKER LL_BIN_DIR "/settlement-worker"
#define WAIT_MS           40000
#define STOP_MS           20000

static const char *const queues[] = {"risk",       "risk.dead",       "risk.retry.1s",
                                     "payments",   "payments.dead",   "payments.retry.1s",
                                     "settlement", "settlement.dead", "settlement.retry.1s",
                                     NULL};

LLW_FIXTURE(queues)

/* every worker: a retention tick a second, the default 7-day window;
 * settlement windows that never close during a test */
#define ENV_TICK  "LEDGERLINE_RETENTION_TICK_INTERVAL_S=1"
#define ENV_GRACE "LEDGERLINE_SETTLEMENT_GRACE_MS=86400000"

static char payer[MSG_ID_MAX + 1], payee[MSG_ID_MAX + 1];

/* The ledger as if it had run for two weeks: daily partitions of the past
 * 14 days below the first one `ledgerctl migrate` made (the legacy
 * partition, empty here, goes). */
static void setup_retention(void)
{
    setup();
    llw_past_partitions(db, 14);
    snprintf(payer, sizeof payer, "%s-payer", ledger);
    snprintf(payee, sizeof payee, "%s-shop", ledger);
    llw_ctl(ledger, "account create %s --currency EUR", payer);
    llw_ctl(ledger, "account create %s --currency EUR --kind merchant", payee);
    llw_ctl(ledger, "account fund %s 350 --ref %s-f", payer, ledger);
}

/* Moves everything payment_id left in the bookkeeping (and, with `books`,
 * the times of its books) N days back, in one transaction that first gives
 * a time the workers' retention job already expired a partition again. */
static void age(const char *payment_id, int days, bool books)
{
    char sql[4096];
    int w = snprintf(
        sql, sizeof sql,
        "DO $$ DECLARE lo0 timestamptz := (SELECT min(b.lo) FROM retention_bounds('processed') b); "
        "t text; BEGIN IF lo0 > now() - interval '%d days' THEN "
        "FOREACH t IN ARRAY ARRAY['processed', 'outbox'] LOOP "
        "EXECUTE format('CREATE TABLE %%I PARTITION OF %%I FOR VALUES FROM (%%L) TO (%%L)', "
        "t || '_aged' || extract(epoch FROM lo0)::bigint, t, lo0 - interval '30 days', lo0); "
        "END LOOP; END IF; END $$;"
        "UPDATE processed SET created_at = created_at - interval '%d days' "
        "WHERE payment_id = '%s';"
        "UPDATE outbox_pending q SET created_at = q.created_at - interval '%d days' "
        "FROM outbox o WHERE o.id = q.id AND o.payment_id = '%s';"
        "UPDATE outbox SET created_at = created_at - interval '%d days' "
        "WHERE payment_id = '%s';",
        days, days, payment_id, days, payment_id, days, payment_id);
    if (books)
        w += snprintf(sql + w, sizeof sql - (size_t)w,
                      "UPDATE risk_decisions SET decided_at = decided_at - interval '%d days' "
                      "WHERE payment_id = '%s';"
                      "UPDATE transfers SET created_at = created_at - interval '%d days' "
                      "WHERE ref = '%s' AND kind = 'payment';"
                      "UPDATE payment_failures SET failed_at = failed_at - interval '%d days' "
                      "WHERE payment_id = '%s';"
                      "UPDATE settlement_items SET added_at = added_at - interval '%d days' "
                      "WHERE payment_id = '%s'",
                      days, payment_id, days, payment_id, days, payment_id, days, payment_id);
    ck_assert((size_t)w < sizeof sql);
    llt_exec(db, sql);
}

static void publish_request(const msg_payment_t *p)
{
    char *b = msg_payment_canonical(p);
    ck_assert_ptr_nonnull(b);
    llw_publish_raw(m, "ledgerline.commands", MSG_TYPE_REQUESTED, p->payment_id, MSG_TYPE_REQUESTED,
                    b, strlen(b));
    free(b);
}

static pid_t start(const char *bin, const char *instance, const char *const *more)
{
    const char *env[8] = {ENV_TICK, ENV_GRACE};
    size_t k = 2;
    for (size_t i = 0; more && more[i] && k < 7; i++)
        env[k++] = more[i];
    env[k] = NULL;
    return llw_start_instance(bin, ledger, instance, env);
}

/* The message.rejected events of payment_id with reason `reason`. */
static size_t rejected_for(const char *payment_id, const char *reason, const char *queue)
{
    llw_events_collect(ev);
    size_t n = 0;
    for (size_t i = 0;; i++) {
        json_t *e = llw_events_find(ev, MSG_TYPE_REJECTED, payment_id, i);
        if (!e)
            break;
        json_t *j = json_object_get(e, "json");
        const char *r = json_string_value(json_object_get(j, "reason"));
        const char *q = json_string_value(json_object_get(j, "queue"));
        n += r && strcmp(r, reason) == 0 && q && strcmp(q, queue) == 0;
    }
    return n;
}

typedef struct {
    const char *pid, *reason, *queue;
    size_t n;
} rej_want_t;

static bool rejected_cond(void *arg, char *status, size_t n)
{
    rej_want_t *w = arg;
    size_t got = rejected_for(w->pid, w->reason, w->queue);
    snprintf(status, n, "%zu of %zu message.rejected (%s, queue %s) for %s", got, w->n, w->reason,
             w->queue, w->pid);
    return got >= w->n;
}

static void wait_rejected(const char *pid, const char *reason, const char *queue, size_t n)
{
    rej_want_t w = {pid, reason, queue, n};
    llw_wait_until(rejected_cond, &w, WAIT_MS, "the late duplicate's rejection");
}

/* ---- past the window --------------------------------------------------------- */

/* Three payments complete and one fails (insufficient funds); aged 9 days,
 * their bookkeeping goes with its partition; then a copy of each, at each
 * stage, is rejected as duplicate_expired and parked, nothing is posted
 * again, and a new payment still completes. */
START_TEST(a_late_duplicate_is_rejected_from_the_books_never_posted_again)
{
    msg_payment_t p[4];
    for (int i = 0; i < 4; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "late-%d", i);
        p[i] = llw_payment(ledger, tag, payer, payee, 100, "EUR");
    }
    pid_t risk = start(RISK_WORKER, "risk-1", NULL);
    pid_t pay = start(PAYMENT_WORKER, "payment-1", NULL);
    pid_t settle = start(SETTLEMENT_WORKER, "settlement-1", NULL);
    for (int i = 0; i < 4; i++)
        publish_request(&p[i]);
    llw_confirm(m);
    llw_done_t done = {.counts = {"SELECT count(*) FROM processed WHERE stage = 'payment'",
                                  "SELECT count(*) + 1 FROM settlement_items",
                                  "SELECT count(*) + 3 FROM payment_failures"},
                       .rows = 4,
                       .events = {MSG_TYPE_COMPLETED, MSG_TYPE_FAILED},
                       .distinct = 4,
                       .rejected = 0};
    llw_wait_done(&fx, &done, WAIT_MS, "four payments decided and three batched");
    char *failed = llw_text(db, "SELECT payment_id FROM payment_failures");
    ck_assert_ptr_nonnull(failed);
    for (int i = 0; i < 4; i++) {
        age(p[i].payment_id, 9, true);
        /* their Redis records expired long before (the settlement stage
         * publishes no event per payment: it has none) */
        llr_idem_forget(db, "risk", p[i].payment_id, "after processing");
        llr_idem_forget(db, "payment", p[i].payment_id, "after processing");
    }
    llw_wait_sql(db, 0, WAIT_MS, "the retention job dropping the 9-day-old partition",
                 "SELECT count(*) FROM processed");
    llw_wait_sql(db, 0, WAIT_MS, "the outbox partition going with it",
                 "SELECT count(*) FROM outbox WHERE payment_id LIKE '%s-%%'", ledger);
    llw_assert_verify(ledger);
    /* an operator still reads each outcome, from the books */
    for (int i = 0; i < 4; i++) {
        char *out, *err;
        int rc = llt_ctl(&out, &err, ledger, "payment show %s", p[i].payment_id);
        bool is_failed = strcmp(p[i].payment_id, failed) == 0;
        ck_assert_msg(rc == 0 && strstr(out, is_failed ? "insufficient_funds" : "  completed") &&
                          strstr(out, "bookkeeping expired"),
                      "payment show %s past the window: %s%s", p[i].payment_id, out, err);
        free(out);
        free(err);
    }

    /* the producer sends every request again: risk answers from the books */
    for (int i = 0; i < 4; i++)
        publish_request(&p[i]);
    /* the broker redelivers an approval and a completion */
    char *b = llw_publish_approved(m, &p[0], 0);
    free(b);
    for (int i = 0; i < 4; i++)
        if (strcmp(p[i].payment_id, failed) == 0) {
            b = llw_publish_approved(m, &p[i], 0);
            free(b);
        }
    char *tid = llw_text(db, "SELECT id FROM transfers WHERE kind = 'payment' AND ref = '%s'",
                         p[0].payment_id);
    char *body = msg_encode_completed(&p[0], tid, llw_now_ms(), llw_now_ms());
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_COMPLETED, p[0].payment_id, MSG_TYPE_COMPLETED,
                    body, strlen(body));
    free(body);
    free(tid);
    llw_confirm(m);
    for (int i = 0; i < 4; i++)
        wait_rejected(p[i].payment_id, "duplicate_expired", "risk", 1);
    wait_rejected(p[0].payment_id, "duplicate_expired", "payments", 1);
    wait_rejected(failed, "duplicate_expired", "payments", 1);
    wait_rejected(p[0].payment_id, "duplicate_expired", "settlement", 1);
    json_t *e = llw_events_find(ev, MSG_TYPE_REJECTED, p[0].payment_id, 0);
    const char *detail = json_string_value(json_object_get(json_object_get(e, "json"), "detail"));
    ck_assert_msg(detail && strstr(detail, "before the retention window"), "detail: %s",
                  detail ? detail : "(none)");

    /* nothing posted, batched or decided again; a parked copy of each */
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'"), 3);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM payment_failures"), 1);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM settlement_items"), 3);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM risk_decisions"), 4);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM processed"), 0);
    llw_wait_drained(m, "risk", WAIT_MS);
    json_t *parked = llw_queue_drain(m, "risk.dead");
    ck_assert_int_eq(json_array_size(parked), 4);
    json_decref(parked);
    parked = llw_queue_drain(m, "payments.dead");
    ck_assert_int_eq(json_array_size(parked), 2);
    json_decref(parked);
    parked = llw_queue_drain(m, "settlement.dead");
    ck_assert_int_eq(json_array_size(parked), 1);
    json_decref(parked);

    /* with Redis down the answer is the same: it comes from PostgreSQL */
    llw_stop_ok(pay, STOP_MS, "payment-worker");
    char redis_down[64];
    snprintf(redis_down, sizeof redis_down, "LEDGERLINE_REDIS_PORT=%d", llr_free_port());
    pay = start(PAYMENT_WORKER, "payment-down", (const char *const[]){redis_down, NULL});
    int other = strcmp(p[1].payment_id, failed) == 0 ? 2 : 1;
    b = llw_publish_approved(m, &p[other], 0);
    free(b);
    llw_confirm(m);
    wait_rejected(p[other].payment_id, "duplicate_expired", "payments", 1);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'"), 3);
    parked = llw_queue_drain(m, "payments.dead");
    ck_assert_int_eq(json_array_size(parked), 1);
    json_decref(parked);

    /* the pipeline goes on: a new payment completes and is batched */
    msg_payment_t fresh = llw_payment(ledger, "after", payer, payee, 10, "EUR");
    publish_request(&fresh);
    llw_confirm(m);
    llw_wait_sql(db, 1, WAIT_MS, "a new payment after the expiry, batched",
                 "SELECT count(*) FROM settlement_items WHERE payment_id = '%s'", fresh.payment_id);
    llw_check_alive();
    llw_assert_verify(ledger);
    free(failed);
    llw_stop_ok(risk, STOP_MS, "risk-worker");
    llw_stop_ok(pay, STOP_MS, "payment-worker");
    llw_stop_ok(settle, STOP_MS, "settlement-worker");
}
END_TEST

/* ---- inside the window ------------------------------------------------------- */

/* Aged 5 days (inside the 7-day window), nothing is dropped, and a copy of
 * the approval replays the very same payment.completed: from PostgreSQL
 * with Redis down, and again with Redis up. */
START_TEST(a_duplicate_inside_the_window_replays_its_event_with_redis_up_or_down)
{
    msg_payment_t p = llw_payment(ledger, "inside", payer, payee, 100, "EUR");
    char redis_down[64];
    snprintf(redis_down, sizeof redis_down, "LEDGERLINE_REDIS_PORT=%d", llr_free_port());
    pid_t pay = start(PAYMENT_WORKER, "payment-down", (const char *const[]){redis_down, NULL});
    char *b = llw_publish_approved(m, &p, 0);
    free(b);
    llw_confirm(m);
    llw_wait_events(ev, MSG_TYPE_COMPLETED, p.payment_id, 1, WAIT_MS);
    age(p.payment_id, 5, false);
    /* a few ticks: the 5-day-old partition is not due */
    llw_sleep_ms(3000);
    ck_assert_int_eq(
        llw_count(db, "SELECT count(*) FROM processed WHERE payment_id = '%s'", p.payment_id), 1);
    b = llw_publish_approved(m, &p, 0);
    free(b);
    llw_confirm(m);
    llw_wait_events(ev, MSG_TYPE_COMPLETED, p.payment_id, 2, WAIT_MS);
    llw_stop_ok(pay, STOP_MS, "payment-worker with Redis down");
    pay = start(PAYMENT_WORKER, "payment-up", NULL);
    b = llw_publish_approved(m, &p, 0);
    free(b);
    llw_confirm(m);
    llw_wait_events(ev, MSG_TYPE_COMPLETED, p.payment_id, 3, WAIT_MS);
    json_t *first = NULL;
    ck_assert_int_eq(llw_events_with(ev, MSG_TYPE_COMPLETED, "payment_id", p.payment_id, &first),
                     3); /* three copies, byte for byte one event */
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM transfers WHERE ref = '%s'", p.payment_id),
                     1);
    ck_assert_int_eq(llw_events_count(ev, MSG_TYPE_REJECTED, NULL), 0);
    llw_stop_ok(pay, STOP_MS, "payment-worker");
    llw_assert_verify(ledger);
}
END_TEST

/* ---- what expiry never drops ------------------------------------------------- */

/* An aged event that the broker has not confirmed (its stage's worker is
 * not running) keeps its outbox partition while the processed one goes;
 * once the risk-worker's sweep sent it, the partition goes too. A kill -9
 * just before the job commits drops nothing. */
START_TEST(an_unsent_event_keeps_its_partition_and_a_killed_expiry_drops_nothing)
{
    msg_payment_t p = llw_payment(ledger, "unsent", payer, payee, 100, "EUR");
    pid_t risk = start(RISK_WORKER, "risk-1", NULL);
    publish_request(&p);
    llw_confirm(m);
    llw_wait_events(ev, MSG_TYPE_APPROVED, p.payment_id, 1, WAIT_MS);
    llw_stop_ok(risk, STOP_MS, "risk-worker");
    /* its approval unsent, as after a crash between commit and publish */
    llt_exec(db, "INSERT INTO outbox_pending (id, stage, created_at) SELECT id, stage, created_at "
                 "FROM outbox WHERE routing_key = 'payment.approved'");
    age(p.payment_id, 9, true);
    llr_idem_forget(db, "risk", p.payment_id, "after processing");
    int64_t parts = llw_count(db, "SELECT count(*) FROM retention_bounds('processed')");

    /* killed in the job's transaction: every partition is still there */
    pid_t k = start(PAYMENT_WORKER, "payment-killed",
                    (const char *const[]){"LEDGERLINE_CRASH_AT=before_retention_commit", NULL});
    llw_expect_exit(k);
    ck_assert_msg(llw_wait_exit(k, WAIT_MS) != LLW_TIMEDOUT, "the worker did not reach the crash");
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM retention_bounds('processed')"), parts);
    ck_assert_int_eq(llw_count(db,
                               "SELECT count(*) FROM processed WHERE payment_id = '%s' "
                               "AND stage = 'risk'",
                               p.payment_id),
                     1);

    /* a payment-worker expires processed, keeps the outbox partition */
    pid_t pay = start(PAYMENT_WORKER, "payment-1", NULL);
    llw_wait_sql(db, 0, WAIT_MS, "the processed partition dropped",
                 "SELECT count(*) FROM processed WHERE payment_id = '%s' AND stage = 'risk'",
                 p.payment_id);
    llw_wait_logged(pay, "not confirmed by the broker", WAIT_MS, "the kept outbox partition");
    ck_assert_int_eq(llw_count(db,
                               "SELECT count(*) FROM outbox WHERE payment_id = '%s' "
                               "AND routing_key = 'payment.approved'",
                               p.payment_id),
                     1);
    /* the risk-worker's sweep publishes it; then it goes */
    risk = start(RISK_WORKER, "risk-2", NULL);
    llw_wait_events(ev, MSG_TYPE_APPROVED, p.payment_id, 2, WAIT_MS);
    llw_wait_sql(db, 0, WAIT_MS, "the outbox partition dropped once its event was sent",
                 "SELECT count(*) FROM outbox WHERE payment_id = '%s' "
                 "AND routing_key = 'payment.approved'",
                 p.payment_id);
    llw_stop_ok(risk, STOP_MS, "risk-worker");
    llw_stop_ok(pay, STOP_MS, "payment-worker");
    llw_assert_verify(ledger);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retention");
    TCase *tc = tcase_create("retention");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup_retention, teardown);
    tcase_add_test(tc, a_late_duplicate_is_rejected_from_the_books_never_posted_again);
    tcase_add_test(tc, a_duplicate_inside_the_window_replays_its_event_with_redis_up_or_down);
    tcase_add_test(tc, an_unsent_event_keeps_its_partition_and_a_killed_expiry_drops_nothing);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
