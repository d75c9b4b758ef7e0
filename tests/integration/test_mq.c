/*
 * test_mq.c - the AMQP client (common/mq.c) on a real RabbitMQ: publish
 * with confirms then consume, multiple-ack, mandatory publishes nobody
 * takes, a refused declare that leaves the connection usable, bounded
 * waits, and clear errors for a bad password or a closed port.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ll_test.h"

#define Q "llt.mq.probe"

static mq_t *m;

static void setup(void)
{
    m = llt_mq();
    if (mq_delete_queue(m, Q) != LL_OK) /* left over from an aborted run, or absent */
        ck_assert(mq_is_up(m));
    amqp_table_entry_t e = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("classic")}};
    amqp_table_t args = {.num_entries = 1, .entries = &e};
    ck_assert_int_eq(mq_declare_queue(m, Q, &args), LL_OK);
}

static void teardown(void)
{
    if (mq_delete_queue(m, Q) != LL_OK)
        ck_abort_msg("cleanup: %s", mq_errstr(m));
    mq_free(m);
}

START_TEST(mq_publish_confirm_consume_ack_multiple)
{
    enum { N = 50 };
    for (int i = 0; i < N; i++) {
        char body[32];
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        mq_header_t h[] = {{"x-probe", "yes", 0}, {"x-n", NULL, i}};
        mq_props_t p = {.message_id = "m", .type = "probe", .headers = h, .nheaders = 2};
        ck_assert_int_eq(mq_publish(m, "", Q, body, strlen(body), &p, true), LL_OK);
    }
    ck_assert_uint_eq(mq_pending(m), N);
    ck_assert_int_eq(mq_confirm_wait(m, 5000, NULL), LL_OK);
    ck_assert_uint_eq(mq_pending(m), 0);

    mq_t *c = llt_mq();
    ck_assert_int_eq(mq_consume(c, Q, 100), LL_OK);
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        mq_delivery_t d;
        int rc = mq_next(c, &d, 5000);
        ck_assert_msg(rc == LL_OK, "delivery %d: %s %s", i, ll_errname(rc), mq_errstr(c));
        char want[32];
        snprintf(want, sizeof want, "{\"n\":%d}", i);
        ck_assert_int_eq((int)d.len, (int)strlen(want));
        ck_assert(memcmp(d.body, want, d.len) == 0);
        char buf[16];
        ck_assert_str_eq(mq_delivery_header(&d, "x-probe", buf, sizeof buf), "yes");
        ck_assert_ptr_null(mq_delivery_header(&d, "x-n", buf, sizeof buf)); /* not a string */
        ck_assert_ptr_null(mq_delivery_header(&d, "absent", buf, sizeof buf));
        ck_assert(!d.redelivered);
        last = d.tag;
        mq_delivery_clear(&d);
    }
    ck_assert_int_eq(mq_ack(c, last, true), LL_OK);
    mq_delivery_t d;
    int64_t t0 = clock_mono_ms();
    ck_assert_int_eq(mq_next(c, &d, 300), LL_ETIMEOUT);
    int64_t waited = clock_mono_ms() - t0;
    ck_assert_msg(waited >= 250 && waited < 3000, "waited %lld ms", (long long)waited);
    mq_free(c);
    uint32_t msgs, consumers;
    ck_assert_int_eq(mq_queue_stats(m, Q, &msgs, &consumers), LL_OK);
    ck_assert_uint_eq(msgs, 0); /* all acked, none back in the queue */
}
END_TEST

START_TEST(mq_unacked_messages_return_when_the_consumer_dies)
{
    ck_assert_int_eq(mq_publish(m, "", Q, "a", 1, NULL, true), LL_OK);
    ck_assert_int_eq(mq_confirm_wait(m, 5000, NULL), LL_OK);
    mq_t *c = llt_mq();
    ck_assert_int_eq(mq_consume(c, Q, 10), LL_OK);
    mq_delivery_t d;
    ck_assert_int_eq(mq_next(c, &d, 5000), LL_OK);
    mq_delivery_clear(&d);
    mq_free(c); /* no ack */
    bool empty = true;
    int64_t end = clock_mono_ms() + 5000;
    while (empty && clock_mono_ms() < end) {
        ck_assert_int_eq(mq_get(m, Q, &d, &empty), LL_OK);
        if (empty)
            usleep(50000);
    }
    ck_assert(!empty);
    ck_assert(d.redelivered);
    ck_assert_int_eq(mq_ack(m, d.tag, false), LL_OK);
    mq_delivery_clear(&d);
}
END_TEST

START_TEST(mq_mandatory_publish_nobody_takes_is_reported)
{
    size_t failed = 0;
    ck_assert_int_eq(mq_publish(m, "", "llt.no.such.queue", "x", 1, NULL, true), LL_OK);
    ck_assert_int_eq(mq_confirm_wait(m, 5000, &failed), LL_ENOTFOUND);
    ck_assert_uint_eq(failed, 1);
    ck_assert_msg(strstr(mq_errstr(m), "NO_ROUTE") != NULL, "%s", mq_errstr(m));
    /* not mandatory: silently dropped by the broker, confirmed */
    ck_assert_int_eq(mq_publish(m, "", "llt.no.such.queue", "x", 1, NULL, false), LL_OK);
    ck_assert_int_eq(mq_confirm_wait(m, 5000, NULL), LL_OK);
}
END_TEST

START_TEST(mq_refused_declare_keeps_the_connection_usable)
{
    /* Q exists as classic: declaring it quorum is refused */
    amqp_table_entry_t e = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}};
    amqp_table_t args = {.num_entries = 1, .entries = &e};
    ck_assert_int_eq(mq_declare_queue(m, Q, &args), LL_EPROTO);
    ck_assert_msg(strstr(mq_errstr(m), "PRECONDITION_FAILED") != NULL, "%s", mq_errstr(m));
    ck_assert(mq_is_up(m));
    uint32_t msgs, consumers;
    ck_assert_int_eq(mq_queue_stats(m, "llt.absent.queue", &msgs, &consumers), LL_ENOTFOUND);
    ck_assert_int_eq(mq_publish(m, "", Q, "ok", 2, NULL, true), LL_OK);
    ck_assert_int_eq(mq_confirm_wait(m, 5000, NULL), LL_OK);
    ck_assert_int_eq(mq_queue_stats(m, Q, &msgs, &consumers), LL_OK);
    ck_assert_uint_eq(msgs, 1);
}
END_TEST

START_TEST(mq_connect_errors_name_the_problem)
{
    mq_opts_t o = {.host = "127.0.0.1", .port = 1, .connect_timeout_ms = 2000};
    mq_t *x = mq_new(&o);
    ck_assert_int_eq(mq_connect(x), LL_ECONN);
    ck_assert_msg(strstr(mq_errstr(x), "127.0.0.1:1") != NULL, "%s", mq_errstr(x));
    ck_assert(!mq_is_up(x));
    ck_assert_int_eq(mq_publish(x, "", Q, "x", 1, NULL, false), LL_ECONN);
    mq_free(x);

    o.port = atoi(llt_env("LEDGERLINE_AMQP_PORT"));
    o.user = llt_env("LEDGERLINE_AMQP_USER");
    o.password = "definitely-wrong";
    x = mq_new(&o);
    int64_t t0 = clock_mono_ms();
    ck_assert_int_eq(mq_connect(x), LL_ECONN);
    ck_assert_msg(clock_mono_ms() - t0 < 10000, "bad login took too long");
    ck_assert_msg(strstr(mq_errstr(x), "amqp.password") != NULL, "%s", mq_errstr(x));
    mq_free(x);
    mq_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mq");
    TCase *tc = tcase_create("rabbitmq");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, mq_publish_confirm_consume_ack_multiple);
    tcase_add_test(tc, mq_unacked_messages_return_when_the_consumer_dies);
    tcase_add_test(tc, mq_mandatory_publish_nobody_takes_is_reported);
    tcase_add_test(tc, mq_refused_declare_keeps_the_connection_usable);
    tcase_add_test(tc, mq_connect_errors_name_the_problem);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
