/*
 * test_worker_endpoints.c - a real risk-worker's /metrics, /healthz and
 * /readyz (docs/operations.md): its counters move by exactly what the test
 * pushes through (new payments, a duplicate, an idempotency conflict,
 * malformed JSON), promtool accepts the exposition, the producer's request
 * time is passed on to the next stage; /readyz turns false while
 * PostgreSQL is stopped and true when it is back, while /healthz stays
 * true; a port already taken stops the worker at start with the fix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_fixture.h"
#include "ll_http.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_stack.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg.h"

#define WORKER  LL_BIN_DIR "/risk-worker"
#define WAIT_MS 30000

static const char *const purge[] = {"risk", "risk.dead", "payments", NULL};
LLW_FIXTURE(purge)

/* A test that fails with PostgreSQL stopped leaves it stopped: start it. */
static void teardown_all(void)
{
    llw_stack_restore();
    teardown();
}

static pid_t start_with_port(int port)
{
    char env[64];
    snprintf(env, sizeof env, "LEDGERLINE_HTTP_PORT=%d", port);
    const char *extra[] = {env, NULL};
    return llw_start_instance(WORKER, ledger, "risk-endpoints", extra);
}

static double metric(int port, const char *series)
{
    char *text;
    int st = llh_get(port, "/metrics", &text);
    LLW_ASSERT(st == 200, "GET /metrics: HTTP %d", st);
    double v = llh_metric(text, series);
    free(text);
    return v;
}

typedef struct {
    int port;
    const char *series;
    double want;
} metric_cond_t;

static bool metric_is(void *ud, char *seen, size_t n)
{
    metric_cond_t *c = ud;
    double v = metric(c->port, c->series);
    snprintf(seen, n, "%s = %g", c->series, v);
    return v == c->want;
}

static void wait_metric(int port, const char *series, double want)
{
    metric_cond_t c = {port, series, want};
    llw_wait_until(metric_is, &c, WAIT_MS, series);
}

/* Publishes a payment.requested body with the producer's request time in
 * the header workers read it from. */
static void publish(const char *payment_id, const char *body, int64_t requested_ms)
{
    mq_header_t h[] = {{"x-ledgerline-requested-at", NULL, requested_ms}};
    mq_props_t props = {.message_id = payment_id,
                        .type = MSG_TYPE_REQUESTED,
                        .headers = h,
                        .nheaders = requested_ms ? 1 : 0};
    LLW_ASSERT(mq_publish(m, "ledgerline.commands", MSG_TYPE_REQUESTED, body, strlen(body), &props,
                          true) == LL_OK,
               "publish: %s", mq_errstr(m));
}

START_TEST(metrics_count_what_went_through)
{
    int port = llh_free_port();
    start_with_port(port);
    llw_wait_consuming(m, "risk", 1, WAIT_MS);
    llh_wait_status(port, "/readyz", 200, WAIT_MS);

    int64_t t0 = clock_now_ms() - 1500; /* requested 1.5 s ago */
    char *bodies[3];
    for (int i = 0; i < 3; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "ep%d", i);
        msg_payment_t p = llw_payment(ledger, tag, "alice", "shop-1", 100 + i, "EUR");
        bodies[i] = msg_payment_canonical(&p);
        publish(p.payment_id, bodies[i], t0);
        if (i == 0) {
            /* the same id with another amount: an idempotency conflict */
            msg_payment_t q = p;
            q.amount = 999;
            char *conflict = msg_payment_canonical(&q);
            llw_confirm(m);
            wait_metric(port, "ledgerline_messages_acked_total{stage=\"risk\"}", 1);
            publish(q.payment_id, conflict, t0);
            free(conflict);
        }
        msg_payment_clear(&p);
    }
    publish("ep-dup", bodies[1], t0); /* the same payload again: a duplicate */
    publish(NULL, "{not json", 0);
    llw_confirm(m);
    wait_metric(port, "ledgerline_messages_acked_total{stage=\"risk\"}", 6);

    char *text;
    ck_assert_int_eq(llh_get(port, "/metrics", &text), 200);
#define M(s) llh_metric(text, s)
    ck_assert_double_eq(M("ledgerline_messages_consumed_total{stage=\"risk\"}"), 6);
    ck_assert_double_eq(
        M("ledgerline_messages_rejected_total{stage=\"risk\",reason=\"malformed_json\"}"), 1);
    ck_assert_double_eq(
        M("ledgerline_messages_rejected_total{stage=\"risk\",reason=\"idempotency_conflict\"}"), 1);
    ck_assert_double_eq(
        M("ledgerline_messages_rejected_total{stage=\"risk\",reason=\"schema_violation\"}"), 0);
    ck_assert_double_eq(M("ledgerline_messages_parked_total{stage=\"risk\"}"), 2);
    double dups = M("ledgerline_duplicates_replayed_total{stage=\"risk\",source=\"redis\"}") +
                  M("ledgerline_duplicates_replayed_total{stage=\"risk\",source=\"postgres\"}");
    ck_assert_double_eq(dups, 1);
    /* 3 decisions + 1 replayed + 2 message.rejected */
    ck_assert_double_eq(M("ledgerline_events_published_total{stage=\"risk\"}"), 6);
    /* end to end: the 3 new decisions, each at least 1.5 s after the request;
     * at least 2 transactions and batches (the first payment was acked
     * before the rest were published), holding the 6 messages in all */
    ck_assert_double_eq(M("ledgerline_end_to_end_latency_seconds_count{stage=\"risk\"}"), 3);
    ck_assert_double_eq(M("ledgerline_end_to_end_latency_seconds_bucket{stage=\"risk\",le=\"1\"}"),
                        0);
    ck_assert_msg(M("ledgerline_end_to_end_latency_seconds_sum{stage=\"risk\"}") >= 4.5, "%g",
                  M("ledgerline_end_to_end_latency_seconds_sum{stage=\"risk\"}"));
    ck_assert_msg(M("ledgerline_transaction_duration_seconds_count{stage=\"risk\"}") >= 2, "%g",
                  M("ledgerline_transaction_duration_seconds_count{stage=\"risk\"}"));
    ck_assert_msg(M("ledgerline_batch_size_count{stage=\"risk\"}") >= 2, "%g",
                  M("ledgerline_batch_size_count{stage=\"risk\"}"));
    ck_assert_double_eq(M("ledgerline_batch_size_sum{stage=\"risk\"}"), 6);
    ck_assert_double_eq(M("ledgerline_ready{stage=\"risk\"}"), 1);
    ck_assert_double_eq(M("ledgerline_up{stage=\"risk\",dependency=\"postgres\"}"), 1);
    ck_assert_double_eq(
        M("ledgerline_build_info{stage=\"risk\",version=\"" LEDGERLINE_VERSION "\"}"), 1);
    ck_assert_msg(M("process_resident_memory_bytes") > 1e6, "%g",
                  M("process_resident_memory_bytes"));
    ck_assert_msg(M("process_open_fds") > 3, "%g", M("process_open_fds"));
    /* the bookkeeping's partitions reach retention.ahead_s (3 days) ahead,
     * and none has outlived the window */
    ck_assert_msg(M("ledgerline_partitions_ahead_seconds{stage=\"risk\"}") > 2 * 86400, "%g",
                  M("ledgerline_partitions_ahead_seconds{stage=\"risk\"}"));
    ck_assert_double_eq(M("ledgerline_bookkeeping_overdue_seconds{stage=\"risk\"}"), 0);
#undef M

    /* promtool accepts the exposition as it is */
    char path[64];
    snprintf(path, sizeof path, "/tmp/llt-metrics-%d.txt", (int)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    char *out;
    int rc = llt_run(&out, "promtool check metrics < %s", path);
    ck_assert_msg(rc == 0, "promtool check metrics failed (%d): %s", rc, out);
    free(out);
    unlink(path);
    free(text);

    /* the approvals (3, and the duplicate's replay) carry the producer's
     * request time on to the next stage */
    json_t *approvals = llw_queue_drain(m, "payments");
    ck_assert_int_eq(json_array_size(approvals), 4);
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)t0);
    size_t i;
    json_t *msg;
    json_array_foreach(approvals, i, msg)
    {
        json_t *h = json_object_get(json_object_get(msg, "headers"), "x-ledgerline-requested-at");
        ck_assert_msg(h && json_integer_value(h) == t0, "approval %zu lacks requested-at %s", i,
                      want);
    }
    json_decref(approvals);
    for (int k = 0; k < 3; k++)
        free(bodies[k]);
}
END_TEST

START_TEST(readyz_follows_postgres_and_healthz_stays)
{
    int port = llh_free_port();
    start_with_port(port);
    llh_wait_status(port, "/readyz", 200, WAIT_MS);
    ck_assert_int_eq(llh_get(port, "/healthz", NULL), 200);

    ck_assert_int_eq(llw_stack("stop-one", "postgres"), 0);
    /* an idle worker finds out at its next look at PostgreSQL (the outbox
     * sample, every 5 s) */
    llh_wait_status(port, "/readyz", 503, WAIT_MS);
    char *body;
    ck_assert_int_eq(llh_get(port, "/readyz", &body), 503);
    ck_assert_msg(strstr(body, "postgres down"), "%s", body);
    free(body);
    ck_assert_int_eq(llh_get(port, "/healthz", &body),
                     200); /* a dependency down is not a stuck loop */
    free(body);
    ck_assert_double_eq(metric(port, "ledgerline_up{stage=\"risk\",dependency=\"postgres\"}"), 0);

    ck_assert_int_eq(llw_stack("start-one", "postgres"), 0);
    llh_wait_status(port, "/readyz", 200, 60000);
    ck_assert_int_eq(llh_get(port, "/healthz", NULL), 200);
    ck_assert_double_eq(
        metric(port, "ledgerline_reconnects_total{stage=\"risk\",dependency=\"postgres\"}"), 1);
}
END_TEST

START_TEST(a_taken_port_stops_the_worker_with_the_fix)
{
    int port = llh_free_port();
    pid_t first = start_with_port(port);
    llh_wait_status(port, "/healthz", 200, WAIT_MS);
    pid_t second = start_with_port(port);
    llw_expect_exit(second);
    ck_assert_int_eq(llw_wait_exit(second, WAIT_MS), 1);
    LLW_ASSERT(llw_log_count(second, "give each its own http.port") == 1,
               "the second worker should name the fix");
    ck_assert_int_eq(llh_get(port, "/healthz", NULL), 200); /* the first one is unharmed */
    llw_stop_ok(first, 20000, "the first worker");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker_endpoints");
    TCase *tc = tcase_create("risk-worker");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup, teardown_all);
    tcase_add_test(tc, metrics_count_what_went_through);
    tcase_add_test(tc, readyz_follows_postgres_and_healthz_stays);
    tcase_add_test(tc, a_taken_port_stops_the_worker_with_the_fix);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
