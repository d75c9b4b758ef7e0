/*
 * test_publish.c - `ledgerctl publish` then read back from the queue: the
 * message a producer would send (persistent, message_id = payment_id,
 * type = routing key, a body the codec accepts), generated batches that
 * are deterministic per seed, payment.approved straight to the payments
 * queue, and refusals (a body the codec rejects, no queue bound).
 */
#include <stdlib.h>
#include <string.h>

#include "ll_ledger.h"
#include "ll_test.h"
#include "msg.h"
#include "msg_decode.h"

static mq_t *m;

static void setup(void)
{
    llw_ctl(NULL, "topology apply");
    m = llt_mq();
    uint32_t n;
    ck_assert_int_eq(mq_purge(m, "risk", &n), LL_OK);
    ck_assert_int_eq(mq_purge(m, "payments", &n), LL_OK);
}

static void teardown(void)
{
    mq_free(m);
}

static uint32_t depth(const char *queue)
{
    uint32_t msgs = 0, consumers;
    ck_assert_int_eq(mq_queue_stats(m, queue, &msgs, &consumers), LL_OK);
    return msgs;
}

static char *prop(amqp_bytes_t b)
{
    return strndup(b.bytes, b.len);
}

START_TEST(publish_one_reads_back_as_a_valid_request)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, NULL,
                     "publish --payer alice --payee bob --amount 1250 --currency EUR "
                     "--payment-id t-one --description 'coffee' --metadata order=42");
    ck_assert_msg(rc == 0, "%s%s", out, err);
    free(out);
    free(err);
    mq_delivery_t d;
    bool empty;
    ck_assert_int_eq(mq_get(m, "risk", &d, &empty), LL_OK);
    ck_assert_msg(!empty, "nothing in risk");
    const amqp_basic_properties_t *p = &d.env.message.properties;
    ck_assert_int_eq(p->delivery_mode, 2);
    char *s = prop(p->message_id);
    ck_assert_str_eq(s, "t-one");
    free(s);
    s = prop(p->type);
    ck_assert_str_eq(s, "payment.requested");
    free(s);
    s = prop(p->content_type);
    ck_assert_str_eq(s, "application/json");
    free(s);
    msg_payment_t pay = {0};
    msg_reject_t why;
    ck_assert_int_eq(msg_payment_decode(d.body, d.len, &pay, &why), LL_OK);
    ck_assert_str_eq(pay.payment_id, "t-one");
    ck_assert_str_eq(pay.payer, "alice");
    ck_assert_str_eq(pay.payee, "bob");
    ck_assert_int_eq(pay.amount, 1250);
    ck_assert_str_eq(pay.currency, "EUR");
    ck_assert_str_eq(pay.description, "coffee");
    ck_assert_str_eq(json_string_value(json_object_get(pay.metadata, "order")), "42");
    msg_payment_clear(&pay);
    ck_assert_int_eq(mq_ack(m, d.tag, false), LL_OK);
    mq_delivery_clear(&d);
}
END_TEST

/* Reads every message of `queue` into a JSON array of bodies (acked). */
static json_t *drain(const char *queue)
{
    json_t *all = json_array();
    for (;;) {
        mq_delivery_t d;
        bool empty;
        ck_assert_int_eq(mq_get(m, queue, &d, &empty), LL_OK);
        if (empty)
            return all;
        json_array_append_new(all, json_stringn(d.body, d.len));
        ck_assert_int_eq(mq_ack(m, d.tag, false), LL_OK);
        mq_delivery_clear(&d);
    }
}

START_TEST(publish_count_is_deterministic_per_seed)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, NULL,
                     "publish --count 300 --seed 7 --payers a1,a2,a3 --payees m1,a1 --currency "
                     "EUR --min-amount 5 --max-amount 50 --window 64 --json");
    ck_assert_msg(rc == 0, "%s%s", out, err);
    json_t *j = llt_json(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "published")), 300);
    json_decref(j);
    free(out);
    free(err);
    ck_assert_int_eq(depth("risk"), 300);
    json_t *first = drain("risk");
    ck_assert_int_eq(json_array_size(first), 300);
    size_t i;
    json_t *b;
    json_array_foreach(first, i, b)
    {
        msg_payment_t pay = {0};
        msg_reject_t why;
        ck_assert_int_eq(
            msg_payment_decode(json_string_value(b), json_string_length(b), &pay, &why), LL_OK);
        char want[32];
        snprintf(want, sizeof want, "gen-7-%zu", i);
        ck_assert_str_eq(pay.payment_id, want);
        ck_assert_str_ne(pay.payer, pay.payee);
        ck_assert(pay.amount >= 5 && pay.amount <= 50);
        msg_payment_clear(&pay);
    }
    rc = llt_ctl(&out, &err, NULL,
                 "publish --count 300 --seed 7 --payers a1,a2,a3 --payees m1,a1 --currency EUR "
                 "--min-amount 5 --max-amount 50");
    ck_assert_int_eq(rc, 0);
    free(out);
    free(err);
    json_t *second = drain("risk");
    ck_assert_msg(json_equal(first, second), "same seed, different payments");
    json_decref(first);
    json_decref(second);
}
END_TEST

START_TEST(publish_approved_goes_to_the_payments_queue)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, NULL,
                     "publish --type payment.approved --count 5 --seed 3 --payers a --payees b "
                     "--currency EUR");
    ck_assert_msg(rc == 0, "%s%s", out, err);
    free(out);
    free(err);
    ck_assert_int_eq(depth("risk"), 0);
    ck_assert_int_eq(depth("payments"), 5);
    mq_delivery_t d;
    bool empty;
    ck_assert_int_eq(mq_get(m, "payments", &d, &empty), LL_OK);
    ck_assert(!empty);
    msg_approved_t a;
    memset(&a, 0, sizeof a);
    msg_reject_t why;
    ck_assert_msg(msg_approved_decode(d.body, d.len, &a, &why) == LL_OK, "%s", why.detail);
    ck_assert_str_eq(a.payment.payment_id, "gen-3-0");
    msg_approved_clear(&a);
    mq_delivery_clear(&d);
}
END_TEST

static const struct {
    const char *args, *want;
    int rc;
} refusals[] = {
    {"publish --payer a --payee a --amount 5 --currency EUR", "payee", 1},
    {"publish --payer a --payee b --amount 0 --currency EUR", "amount", 1},
    {"publish --payer a --payee b --amount 100000000000001 --currency EUR", "amount", 1},
    {"publish --payer a --payee b --amount 5 --currency eur", "currency", 1},
    {"publish --payer 'a b' --payee b --amount 5 --currency EUR", "payer", 1},
    {"publish --payer a --payee b --amount 5", "--currency", 2},
    {"publish --payer a --payee b --amount 5x --currency EUR", "not an integer", 2},
    {"publish --count 3 --payers a --payees a --currency EUR", "other than itself", 2},
    /* b can pay a, but a has no payee other than itself: refused before any publish */
    {"publish --count 50 --payers a,b --payees a --currency EUR", "other than itself", 2},
    {"publish --count 50 --payers a,b --payees a,a --currency EUR", "other than itself", 2},
    /* text a producer cannot mean: refused naming the flag, never dropped */
    {"publish --payer a --payee b --amount 5 --currency EUR --description \"$(printf 'x\\377')\"",
     "--description is not valid UTF-8", 2},
    {"publish --payer a --payee b --amount 5 --currency EUR --metadata k=1 --metadata k=2",
     "--metadata key 'k' is given twice", 2},
    {"publish --payer a --payee b --amount 5 --currency EUR --metadata \"k=$(printf '\\377')\"",
     "valid UTF-8", 2},
};

START_TEST(publish_refuses_what_the_workers_would_reject)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, NULL, "%s", refusals[_i].args);
    ck_assert_msg(rc == refusals[_i].rc, "%s -> %d: %s", refusals[_i].args, rc, err);
    ck_assert_msg(strstr(err, refusals[_i].want) != NULL, "%s: %s", refusals[_i].args, err);
    free(out);
    free(err);
    ck_assert_int_eq(depth("risk"), 0);
}
END_TEST

/* Without --payment-id the id comes from the request: the same command
 * twice (a retry) is the same payment; another amount is another one. */
START_TEST(publish_retried_without_an_id_is_one_payment)
{
    const char *args = "publish --payer alice --payee bob --amount 700 --currency EUR "
                       "--description 'retry me' --metadata order=7";
    char *out1, *out2, *out3;
    ck_assert_int_eq(llt_ctl(&out1, NULL, NULL, "%s --json", args), 0);
    ck_assert_int_eq(llt_ctl(&out2, NULL, NULL, "%s --json", args), 0);
    ck_assert_int_eq(llt_ctl(&out3, NULL, NULL,
                             "publish --payer alice --payee bob --amount 701 --currency EUR "
                             "--description 'retry me' --metadata order=7 --json"),
                     0);
    json_t *j1 = llt_json(out1), *j2 = llt_json(out2), *j3 = llt_json(out3);
    const char *id1 = json_string_value(json_object_get(j1, "payment_id"));
    const char *id2 = json_string_value(json_object_get(j2, "payment_id"));
    const char *id3 = json_string_value(json_object_get(j3, "payment_id"));
    ck_assert_msg(id1 && strncmp(id1, "cli-", 4) == 0 && strlen(id1) == 32, "%s", out1);
    ck_assert_str_eq(id1, id2);
    ck_assert_str_ne(id1, id3);
    json_t *bodies = drain("risk");
    ck_assert_int_eq(json_array_size(bodies), 3);
    /* the retry is byte for byte the first request: the workers see a duplicate */
    ck_assert_str_eq(json_string_value(json_array_get(bodies, 0)),
                     json_string_value(json_array_get(bodies, 1)));
    json_decref(bodies);
    json_decref(j1);
    json_decref(j2);
    json_decref(j3);
    free(out1);
    free(out2);
    free(out3);
}
END_TEST

START_TEST(publish_without_a_bound_queue_says_apply_topology)
{
    ck_assert_int_eq(mq_delete_queue(m, "risk"), LL_OK);
    char *out, *err;
    int rc = llt_ctl(&out, &err, NULL,
                     "publish --payer a --payee b --amount 5 --currency EUR --payment-id t-lost");
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err, "NO_ROUTE") && strstr(err, "ledgerctl topology apply"), "%s", err);
    free(out);
    free(err);
    rc = llt_ctl(&out, &err, NULL, "topology apply");
    ck_assert_int_eq(rc, 0);
    free(out);
    free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("publish");
    TCase *tc = tcase_create("rabbitmq");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, publish_one_reads_back_as_a_valid_request);
    tcase_add_test(tc, publish_count_is_deterministic_per_seed);
    tcase_add_test(tc, publish_approved_goes_to_the_payments_queue);
    tcase_add_loop_test(tc, publish_refuses_what_the_workers_would_reject, 0,
                        (int)(sizeof refusals / sizeof refusals[0]));
    tcase_add_test(tc, publish_retried_without_an_id_is_one_payment);
    tcase_add_test(tc, publish_without_a_bound_queue_says_apply_topology);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
