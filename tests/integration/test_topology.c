/*
 * test_topology.c - `ledgerctl topology apply` on a real RabbitMQ: applying
 * twice is fine, every queue of schemas/topology.yaml exists afterwards,
 * work queues are of the configured type (a mismatching re-declare is
 * refused with a fix), and the dead-letter and retry wiring moves messages
 * where docs/contract.md#topology says.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ll_test.h"
#include "topo.h"

static void apply_ok(void)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, NULL, "topology apply");
    ck_assert_msg(rc == 0, "topology apply: %s%s", out, err);
    ck_assert_msg(strstr(out, "declared 4 exchanges, 12 queues (quorum work queues)") != NULL, "%s",
                  out);
    free(out);
    free(err);
}

START_TEST(topology_apply_twice_declares_every_queue)
{
    apply_ok();
    apply_ok();
    topo_t *t;
    char e[256];
    ck_assert_int_eq(topo_load_builtin(&t, e, sizeof e), LL_OK);
    mq_t *m = llt_mq();
    for (size_t i = 0; i < t->nq; i++) {
        uint32_t msgs, consumers;
        int rc = mq_queue_stats(m, t->q[i].name, &msgs, &consumers);
        ck_assert_msg(rc == LL_OK, "queue %s: %s", t->q[i].name, mq_errstr(m));
    }
    topo_free(t);
    mq_free(m);
}
END_TEST

START_TEST(topology_apply_refuses_another_queue_type_with_a_fix)
{
    apply_ok();
    char *out;
    int rc = llt_run(&out, "LEDGERLINE_AMQP_QUEUE_TYPE=classic %s topology apply", LEDGERCTL_BIN);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "queue 'risk'") && strstr(out, "x-queue-type") && strstr(out, "fix:"),
                  "%s", out);
    free(out);
}
END_TEST

/* Waits up to ms for a message in `queue`; returns it (caller clears). */
static int wait_get(mq_t *m, const char *queue, mq_delivery_t *d, int ms)
{
    int64_t end = clock_mono_ms() + ms;
    do {
        bool empty;
        ck_assert_int_eq(mq_get(m, queue, d, &empty), LL_OK);
        if (!empty)
            return 1;
        usleep(50 * 1000);
    } while (clock_mono_ms() < end);
    return 0;
}

START_TEST(topology_rejected_work_message_lands_in_dead_queue)
{
    apply_ok();
    mq_t *m = llt_mq();
    uint32_t n;
    ck_assert_int_eq(mq_purge(m, "payments", &n), LL_OK);
    ck_assert_int_eq(mq_purge(m, "payments.dead", &n), LL_OK);
    const char *body = "{\"probe\":\"dead-letter\"}";
    ck_assert_int_eq(
        mq_publish(m, "ledgerline.events", "payment.approved", body, strlen(body), NULL, true),
        LL_OK);
    ck_assert_int_eq(mq_confirm_wait(m, 5000, NULL), LL_OK);
    mq_delivery_t d;
    ck_assert(wait_get(m, "payments", &d, 5000));
    ck_assert_int_eq(mq_reject(m, d.tag, false), LL_OK);
    mq_delivery_clear(&d);
    ck_assert_msg(wait_get(m, "payments.dead", &d, 5000), "nothing in payments.dead");
    ck_assert_int_eq((int)d.len, (int)strlen(body));
    ck_assert(memcmp(d.body, body, d.len) == 0);
    ck_assert_int_eq(mq_ack(m, d.tag, false), LL_OK);
    mq_delivery_clear(&d);
    mq_free(m);
}
END_TEST

START_TEST(topology_retry_tier_returns_message_to_work_queue)
{
    apply_ok();
    mq_t *m = llt_mq();
    uint32_t n;
    ck_assert_int_eq(mq_purge(m, "settlement", &n), LL_OK);
    const char *body = "{\"probe\":\"retry\"}";
    int64_t t0 = clock_mono_ms();
    ck_assert_int_eq(
        mq_publish(m, "ledgerline.retry", "settlement.1s", body, strlen(body), NULL, true), LL_OK);
    ck_assert_int_eq(mq_confirm_wait(m, 5000, NULL), LL_OK);
    mq_delivery_t d;
    ck_assert_msg(wait_get(m, "settlement", &d, 10000), "message never came back");
    int64_t waited = clock_mono_ms() - t0;
    ck_assert_msg(waited >= 900, "came back after %lld ms, before the 1 s tier", (long long)waited);
    ck_assert(memcmp(d.body, body, d.len) == 0);
    ck_assert_int_eq(mq_ack(m, d.tag, false), LL_OK);
    mq_delivery_clear(&d);
    mq_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("topology");
    TCase *tc = tcase_create("rabbitmq");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, topology_apply_twice_declares_every_queue);
    tcase_add_test(tc, topology_apply_refuses_another_queue_type_with_a_fix);
    tcase_add_test(tc, topology_rejected_work_message_lands_in_dead_queue);
    tcase_add_test(tc, topology_retry_tier_returns_message_to_work_queue);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
