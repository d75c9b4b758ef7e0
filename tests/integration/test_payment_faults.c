/*
 * test_payment_faults.c - the payment-worker under server faults, and a
 * poison message.
 *
 *   - Redis stopped mid-run (ops/stack stop-one redis): payments are still
 *     posted exactly once while it is down; once it is back (and the
 *     client's reconnect backoff, at most KV_BACKOFF_MAX_MS, has passed) the
 *     worker writes its idempotency keys there again;
 *   - PostgreSQL stopped right after a burst of payments and started again
 *     two seconds later, with more payments published while it is down;
 *   - RabbitMQ stopped right after a burst and started again (~10 s);
 *   - a poison message: a trigger the test adds to `transfers` raises an
 *     error for one payment_id (as a constraint an operator added, or a
 *     corrupt page, would) at every attempt; with
 *     LEDGERLINE_WORKER_MAX_ATTEMPTS=3 it is parked with processing_failed
 *     while the 20 good payments around it are posted.
 * After each: every payment decided once, balances equal one-at-a-time
 * processing (accounts are funded so that nothing fails), the worker exits
 * 0 on SIGTERM, verify green, the queue empty.
 *
 * The servers are always restored: by the checked setup of the next test,
 * by the teardown, and by an unchecked teardown that Check runs in its own
 * process even when a test failed.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ll_amqp.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_redis.h"
#include "ll_stack.h"
#include "ll_test.h"
#include "ll_wait.h"

#define WORKER  LL_BIN_DIR "/payment-worker"
#define WAIT_MS 60000
#define T0_MS   1767225600000LL
#define NACC    4
#define FUNDS   1000000

static char *ledger;
static db_t *db;
static mq_t *m;
static llw_events_t *ev;

static llw_fixture_t fx;

static void setup(void)
{
    llw_stack_restore();
    llw_fixture_up(&fx, llw_payment_queues);
    ledger = fx.ledger, db = fx.db, m = fx.m, ev = fx.ev;
}

static void teardown(void)
{
    llw_kill_all();
    llw_stack_restore();
    llw_fixture_down(&fx);
}

static llw_account_t acc[NACC];
static msg_payment_t pays[200];
static int npays;

static void accounts_generous(void)
{
    static const char *const ids[NACC] = {"f0", "f1", "f2", "f3"};
    for (int i = 0; i < NACC; i++)
        acc[i] = (llw_account_t){ids[i], "EUR", FUNDS, 0, false};
    llw_accounts_create(ledger, acc, NACC);
    npays = 0;
}

/* Publishes n more payments among the generous accounts (model updated). */
static void publish_more(int n)
{
    for (int k = 0; k < n; k++, npays++) {
        ck_assert(npays < (int)(sizeof pays / sizeof pays[0]));
        int i = npays;
        msg_payment_t *p = &pays[i];
        memset(p, 0, sizeof *p);
        snprintf(p->payment_id, sizeof p->payment_id, "%s-f%d", ledger, i);
        snprintf(p->payer, sizeof p->payer, "f%d", i % NACC);
        snprintf(p->payee, sizeof p->payee, "f%d", (i % NACC + 1 + (i / NACC) % (NACC - 1)) % NACC);
        p->amount = 1 + (i * 53) % 700;
        snprintf(p->currency, sizeof p->currency, "EUR");
        const char *got = llw_model_apply(acc, NACC, p);
        ck_assert_msg(strcmp(got, "completed") == 0, "test data: payment %d would be %s", i, got);
        free(llw_publish_approved(m, p, T0_MS + i));
    }
    llw_confirm(m);
}

/* Until `processed` payments are completed with as many distinct
 * payment.completed events, `rejected` distinct message.rejected events,
 * and no outbox row is left unsent. */
static void wait_done(int64_t processed, size_t completed, size_t rejected, const char *what)
{
    llw_done_t w = {.counts = {"SELECT count(*) FROM processed WHERE stage = 'payment' AND "
                               "outcome = 'completed'"},
                    .rows = processed,
                    .events = {MSG_TYPE_COMPLETED},
                    .distinct = (int64_t)completed,
                    .rejected = (int64_t)rejected};
    llw_wait_done(&fx, &w, WAIT_MS, what);
}

/* Ready messages of `queue`, reconnecting the test's client if needed. */
static uint32_t depth(const char *queue)
{
    if (!mq_is_up(m)) {
        int rc = mq_connect(m);
        ck_assert_msg(rc == LL_OK, "reconnect to RabbitMQ: %s", mq_errstr(m));
    }
    return llw_queue_depth(m, queue);
}

/* Everything the generous runs must end with. */
static void check_all_posted_once(const char *label)
{
    llw_events_collect(ev);
    int64_t processed = llw_count(db, "SELECT count(*) FROM processed WHERE outcome = 'completed'");
    LLW_ASSERT(processed == npays, "%s: %" PRId64 " completed processed rows, want %d", label,
               processed, npays);
    for (int i = 0; i < npays; i++) {
        const char *id = pays[i].payment_id;
        int64_t t = llw_count(db,
                              "SELECT count(*) FROM transfers WHERE kind = 'payment' AND ref = "
                              "'%s' AND amount = %" PRId64,
                              id, pays[i].amount);
        LLW_ASSERT(t == 1, "%s: payment %s has %" PRId64 " transfers", label, id, t);
        LLW_ASSERT(llw_events_count(ev, MSG_TYPE_COMPLETED, id) >= 1,
                   "%s: payment.completed of %s never published", label, id);
    }
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'") == npays,
               "%s: extra payment transfers", label);
    for (int i = 0; i < NACC; i++) {
        int64_t b = llw_balance(db, acc[i].id);
        LLW_ASSERT(b == acc[i].balance, "%s: %s balance %" PRId64 ", one-at-a-time %" PRId64, label,
                   acc[i].id, b, acc[i].balance);
    }
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0, "%s: message.rejected", label);
    LLW_ASSERT(depth("payments") == 0, "%s: messages left in payments", label);
    LLW_ASSERT(depth("payments.dead") == 0, "%s: messages parked", label);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM outbox_pending") == 0, "%s: unsent outbox rows",
               label);
    llw_assert_verify(ledger);
}

/* A payment-worker named `instance`, plus one more setting (or NULL). */
static pid_t start_with(const char *instance, const char *extra)
{
    const char *env[] = {"LEDGERLINE_WORKER_OUTBOX_SWEEP_INTERVAL_MS=200",
                         "LEDGERLINE_WORKER_OUTBOX_SWEEP_AGE_MS=1000", extra, NULL};
    pid_t w = llw_start_instance(WORKER, ledger, instance, env);
    llw_wait_consuming(m, "payments", 1, WAIT_MS);
    return w;
}

static pid_t start(const char *instance)
{
    return start_with(instance, NULL);
}

static void stop_ok(pid_t w, const char *label)
{
    llw_stop_ok(w, 20000, label);
}

static void server(const char *cmd, const char *name)
{
    int rc = llw_stack(cmd, name);
    LLW_ASSERT(rc == 0, "ops/stack %s %s exited %d", cmd, name, rc);
}

START_TEST(redis_stopped_mid_run)
{
    accounts_generous();
    pid_t w = start("redis-fault");
    publish_more(30);
    wait_done(30, 30, 0, "30 payments with Redis up");
    server("stop-one", "redis");
    publish_more(30);
    wait_done(60, 60, 0, "30 more payments with Redis stopped");
    server("start-one", "redis");
    kv_t *kv = llr_kv(); /* a fresh client: connects now */
    LLW_ASSERT(kv_ping(kv) == LL_OK, "the test cannot reach Redis: %s", kv_errstr(kv));
    /* the worker uses Redis again once its client's reconnect backoff has
     * passed: probe with one payment at a time until one leaves its key */
    bool back = false;
    for (int64_t until = llw_now_ms() + WAIT_MS; !back && llw_now_ms() < until;) {
        publish_more(1);
        wait_done(npays, (size_t)npays, 0, "a probe payment after Redis came back");
        char key[160], val[4096];
        llr_idem_key(key, sizeof key, db, "payment", pays[npays - 1].payment_id);
        int rc = kv_get(kv, key, val, sizeof val);
        back = rc == LL_OK || rc == LL_ERANGE;
        if (!back)
            llw_sleep_ms(200);
    }
    LLW_ASSERT(back, "the worker never used Redis again after it came back");
    int first_after = npays;
    publish_more(30);
    wait_done(npays, (size_t)npays, 0, "30 more payments after Redis came back");
    for (int i = first_after; i < npays; i++) {
        char key[160], val[4096];
        llr_idem_key(key, sizeof key, db, "payment", pays[i].payment_id);
        int rc = kv_get(kv, key, val, sizeof val);
        LLW_ASSERT(rc == LL_OK || rc == LL_ERANGE,
                   "Redis is back but the worker did not use it: %s for %s (payment %d)",
                   ll_errname(rc), key, i);
    }
    kv_free(kv);
    stop_ok(w, "redis");
    check_all_posted_once("redis stopped");
}
END_TEST

START_TEST(postgres_restarted_mid_run)
{
    accounts_generous();
    pid_t w = start("pg-fault");
    publish_more(60);
    server("stop-one", "postgres");
    publish_more(40); /* while PostgreSQL is down */
    llw_sleep_ms(2000);
    llw_check_alive();
    server("start-one", "postgres");
    publish_more(40);
    wait_done(npays, (size_t)npays, 0, "every payment after PostgreSQL came back");
    stop_ok(w, "postgres");
    check_all_posted_once("postgres restarted");
}
END_TEST

/* PostgreSQL down for several heartbeat intervals while the worker holds a
 * batch it cannot commit: the consumer connection, which it must not read
 * (that would take more deliveries), is kept alive with heartbeats, so the
 * broker neither closes it nor requeues the batch (each requeue counts
 * against the queue's delivery limit). */
START_TEST(a_postgres_outage_longer_than_the_heartbeat_keeps_the_consumer)
{
    accounts_generous();
    pid_t w = start_with("pg-long", "LEDGERLINE_AMQP_HEARTBEAT_S=1");
    publish_more(20);
    wait_done(20, 20, 0, "the payments before the outage");
    server("stop-one", "postgres");
    publish_more(20);   /* gathered into a batch that cannot commit */
    llw_sleep_ms(6000); /* six heartbeat intervals: the broker closes after two missed */
    llw_check_alive();
    server("start-one", "postgres");
    wait_done(npays, (size_t)npays, 0, "every payment after PostgreSQL came back");
    LLW_ASSERT(llw_log_count(w, "consuming (prefetch") == 1,
               "the consumer connection was lost during the outage and reopened (%zu times "
               "consuming)",
               llw_log_count(w, "consuming (prefetch"));
    LLW_ASSERT(llw_log_count(w, "ack of") == 0, "an ack failed after the outage");
    stop_ok(w, "postgres long outage");
    check_all_posted_once("postgres long outage");
}
END_TEST

/* The worker lost PostgreSQL and, on reconnecting, could not read the
 * schema version (here: the table is swapped for a view that raises). That
 * is a server fault, retried like a lost connection, not "schema out of
 * date" (which stops the worker); once the read works again every payment
 * is posted exactly once. */
START_TEST(a_failed_schema_version_read_is_retried)
{
    accounts_generous();
    pid_t w = start("schema-read");
    publish_more(20);
    wait_done(20, 20, 0, "the payments before the fault");
    llt_exec(db, "BEGIN; "
                 "ALTER TABLE schema_migrations RENAME TO schema_migrations_hidden; "
                 "CREATE FUNCTION llt_fail() RETURNS boolean LANGUAGE plpgsql AS "
                 "$$ BEGIN RAISE EXCEPTION 'schema version unreadable (test)' "
                 "USING ERRCODE = 'XX000'; END $$; "
                 "CREATE VIEW schema_migrations AS SELECT version FROM schema_migrations_hidden "
                 "WHERE llt_fail(); "
                 "COMMIT");
    llt_exec(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    publish_more(20);
    llw_wait_logged(w, "reading the schema version failed", WAIT_MS,
                    "the worker to fail reading the schema version on reconnect");
    llw_sleep_ms(2000);
    llw_check_alive(); /* retried, not fatal */
    llt_exec(db, "BEGIN; DROP VIEW schema_migrations; DROP FUNCTION llt_fail(); "
                 "ALTER TABLE schema_migrations_hidden RENAME TO schema_migrations; COMMIT");
    wait_done(npays, (size_t)npays, 0, "every payment once the schema version reads again");
    stop_ok(w, "schema read");
    check_all_posted_once("schema read");
}
END_TEST

/* SIGTERM while the worker is blocked inside PostgreSQL (a row lock held
 * by another session, which SIGTERM cannot interrupt): it must still exit
 * within worker.shutdown_timeout_ms plus the hard-stop margin (5 s), with
 * status 1 and nothing acked; a restarted worker then posts every payment
 * exactly once. */
START_TEST(sigterm_while_blocked_in_postgres_exits_within_the_bound)
{
    accounts_generous();
    pid_t w = start_with("hard-stop", "LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT_MS=1000");
    db_t *locker = llt_db(ledger);
    llt_exec(locker, "BEGIN");
    llt_exec(locker, "SELECT 1 FROM accounts WHERE id = 'f0' FOR UPDATE");
    publish_more(8); /* every batch touches f0: the worker waits on the lock */
    llw_wait_lock_waiters(db, 1, WAIT_MS, "the worker to block on the test's row lock");
    llw_check_alive();
    int64_t t0 = llw_now_ms();
    llw_signal(w, SIGTERM);
    int st = llw_wait_exit(w, 15000);
    int64_t took = llw_now_ms() - t0;
    llt_exec(locker, "ROLLBACK");
    db_free(locker);
    LLW_ASSERT(st == 1, "a worker blocked past its shutdown deadline must exit 1 (got %s)",
               llw_status_str(st));
    LLW_ASSERT(took < 9000, "it took %" PRId64 " ms to exit (bound: 1 s + 5 s)", took);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'") == 0,
               "nothing may be posted while the lock was held");
    pid_t w2 = start("after-hard-stop");
    wait_done(npays, (size_t)npays, 0, "every payment after the restart");
    stop_ok(w2, "after hard stop");
    check_all_posted_once("hard stop");
}
END_TEST

START_TEST(rabbitmq_restarted_mid_run)
{
    accounts_generous();
    pid_t w = start("rmq-fault");
    publish_more(60);
    server("stop-one", "rabbitmq");
    llw_check_alive();
    server("start-one", "rabbitmq");
    mq_free(m);
    fx.m = m = llt_mq(); /* the fixture frees the current client */
    publish_more(40);
    wait_done(npays, (size_t)npays, 0, "every payment after RabbitMQ came back");
    llw_wait_consuming(m, "payments", 1, WAIT_MS);
    stop_ok(w, "rabbitmq");
    check_all_posted_once("rabbitmq restarted");
}
END_TEST

START_TEST(a_poison_message_is_parked_after_max_attempts)
{
    llw_account_t pacc[] = {
        {"alice", "EUR", 0, 10000000, false},
        {"bob", "EUR", 0, 10000000, false},
        {"carol", "EUR", 0, 10000000, false},
        {"rich", "EUR", 0, 0, false},
    };
    const size_t nacc = sizeof pacc / sizeof pacc[0];
    llw_accounts_create(ledger, pacc, nacc);
    static const char *const names[] = {"alice", "bob", "carol"};
    msg_payment_t good[20], poison;
    memset(&poison, 0, sizeof poison);
    snprintf(poison.payment_id, sizeof poison.payment_id, "%s-poison", ledger);
    snprintf(poison.payer, sizeof poison.payer, "alice");
    snprintf(poison.payee, sizeof poison.payee, "rich");
    poison.amount = 10000;
    snprintf(poison.currency, sizeof poison.currency, "EUR");
    char *poison_body = NULL;
    for (int i = 0; i < 20; i++) {
        if (i == 10) {
            char sql[512];
            snprintf(sql, sizeof sql,
                     "CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$ "
                     "BEGIN IF NEW.ref = '%s' THEN RAISE EXCEPTION 'poisoned by the test'; "
                     "END IF; RETURN NEW; END $$; "
                     "CREATE TRIGGER test_poison BEFORE INSERT ON transfers "
                     "FOR EACH ROW EXECUTE FUNCTION test_poison()",
                     poison.payment_id);
            llt_exec(db, sql);
            poison_body = llw_publish_approved(m, &poison, T0_MS);
        }
        msg_payment_t *p = &good[i];
        memset(p, 0, sizeof *p);
        snprintf(p->payment_id, sizeof p->payment_id, "%s-g%d", ledger, i);
        snprintf(p->payer, sizeof p->payer, "%s", names[i % 3]);
        snprintf(p->payee, sizeof p->payee, "%s", names[(i + 1) % 3]);
        p->amount = 100 + i;
        snprintf(p->currency, sizeof p->currency, "EUR");
        const char *got = llw_model_apply(pacc, nacc, p);
        ck_assert_msg(strcmp(got, "completed") == 0, "test data: payment %d would be %s", i, got);
        free(llw_publish_approved(m, p, T0_MS + i));
    }
    llw_confirm(m);
    const char *env[] = {"LEDGERLINE_WORKER_MAX_ATTEMPTS=3", NULL};
    pid_t w = llw_start_instance(WORKER, ledger, "poison", env);
    wait_done(20, 20, 1, "20 good payments posted and the poison rejected");
    llw_wait_drained(m, "payments", WAIT_MS);
    stop_ok(w, "poison");
    llw_events_collect(ev);

    json_t *e = llw_events_find(ev, MSG_TYPE_REJECTED, poison.payment_id, 0);
    LLW_ASSERT(e, "no message.rejected for the poison");
    const json_t *j = json_object_get(e, "json");
    const char *reason = json_string_value(json_object_get(j, "reason"));
    const char *queue = json_string_value(json_object_get(j, "queue"));
    LLW_ASSERT(reason && strcmp(reason, "processing_failed") == 0 && queue &&
                   strcmp(queue, "payments") == 0,
               "poison: %s", json_string_value(json_object_get(e, "body")));
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 1, "more than one rejection");
    json_t *dead = llw_queue_drain(m, "payments.dead");
    LLW_ASSERT(json_array_size(dead) == 1, "payments.dead holds %zu messages, want the poison",
               json_array_size(dead));
    json_t *parked = json_array_get(dead, 0);
    const char *hr = llw_header(parked, "x-ledgerline-reason");
    LLW_ASSERT(strcmp(json_string_value(json_object_get(parked, "body")), poison_body) == 0,
               "the parked message is not the poison");
    LLW_ASSERT(hr && strcmp(hr, "processing_failed") == 0, "parked with reason %s",
               hr ? hr : "(none)");
    json_decref(dead);
    free(poison_body);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment' AND ref = '%s'",
                         poison.payment_id) == 0,
               "the poison was posted");
    LLW_ASSERT(llw_count(db,
                         "SELECT count(*) FROM processed WHERE payment_id = '%s' AND outcome = "
                         "'completed'",
                         poison.payment_id) == 0,
               "the poison is recorded as completed");
    for (int i = 0; i < 20; i++) {
        LLW_ASSERT(llw_count(db,
                             "SELECT count(*) FROM transfers WHERE kind = 'payment' AND ref = "
                             "'%s'",
                             good[i].payment_id) == 1,
                   "good payment %d not posted once", i);
        LLW_ASSERT(llw_events_count(ev, MSG_TYPE_COMPLETED, good[i].payment_id) >= 1,
                   "good payment %d: no payment.completed", i);
    }
    for (size_t i = 0; i < nacc; i++) {
        int64_t b = llw_balance(db, pacc[i].id);
        LLW_ASSERT(b == pacc[i].balance, "%s balance %" PRId64 ", want %" PRId64, pacc[i].id, b,
                   pacc[i].balance);
    }
    LLW_ASSERT(llw_queue_depth(m, "payments") == 0, "messages left in payments");
    llw_assert_verify(ledger);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("payment_faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, setup, teardown);
    /* runs in Check's own process, even after a failed test */
    tcase_add_unchecked_fixture(tc, NULL, llw_stack_restore);
    tcase_add_test(tc, redis_stopped_mid_run);
    tcase_add_test(tc, postgres_restarted_mid_run);
    tcase_add_test(tc, a_postgres_outage_longer_than_the_heartbeat_keeps_the_consumer);
    tcase_add_test(tc, a_failed_schema_version_read_is_retried);
    tcase_add_test(tc, sigterm_while_blocked_in_postgres_exits_within_the_bound);
    tcase_add_test(tc, rabbitmq_restarted_mid_run);
    tcase_add_test(tc, a_poison_message_is_parked_after_max_attempts);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
