/*
 * test_stage.c - the stage skeleton (stage.h) without servers: decoding
 * through a stage's decoder sets the payment_id, the canonical request and
 * the payload hash msg_payment_hash() gives; a body the decoder refuses,
 * and an unsigned body for a stage that verifies, are rejections that
 * still name the payment_id; the batch JSON carries the common fields of
 * the BATCHED items only, in order, plus the stage's own; release frees
 * what decoding allocated (ASan would see a leak).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_test.h"
#include "stage.h"

#define K1 "k1-secret-0123456789abcdefghijklmnopqrstuvwxyz"

static void extra(sbuf_t *b, const item_t *it)
{
    const msg_completed_t *c = it->msg;
    sbuf_adds(b, ",\"posted_ms\":");
    sbuf_i64(b, c->posted_ms);
}

static const stage_t completed_stage = {
    .name = "t",
    .queue = "settlement",
    .consumes = &msg_decoder_completed,
    .element = extra,
};

static const stage_t requested_stage = {
    .name = "t",
    .queue = "risk",
    .consumes = &msg_decoder_requested,
};

static void item_of(item_t *it, const char *body)
{
    memset(it, 0, sizeof *it);
    it->d.body = body;
    it->d.len = strlen(body);
}

static void item_done(const stage_t *st, item_t *it)
{
    stage_release(st, it);
    it->d.body = NULL; /* not a delivery's: item_clear must not free it */
    item_clear(it);
}

static const char completed[] =
    "{\"type\":\"payment.completed\",\"event_id\":\"0123456789abcdef0123456789abcdef\","
    "\"occurred_at\":\"2026-12-01T10:00:00.000Z\",\"payment_id\":\"p-%d\",\"payer\":\"alice\","
    "\"payee\":\"shop\",\"amount\":%d,\"currency\":\"EUR\",\"transfer_id\":\"7\","
    "\"posted_at\":\"2026-12-01T10:00:00.%03dZ\"}";

START_TEST(decoding_sets_the_id_the_canonical_request_and_its_hash)
{
    char body[512];
    snprintf(body, sizeof body, completed, 1, 250, 5);
    item_t it;
    item_of(&it, body);
    ck_assert_int_eq(stage_decode(&completed_stage, NULL, &it), LL_OK);
    ck_assert_str_eq(it.key, "p-1");
    const msg_payment_t *p = stage_payment(&completed_stage, &it);
    ck_assert_str_eq(p->payer, "alice");
    ck_assert_int_eq(p->amount, 250);
    char hash[65];
    ck_assert_int_eq(msg_payment_hash(p, hash), LL_OK);
    ck_assert_str_eq(it.hash, hash);
    json_t *c = llt_json(it.canonical);
    ck_assert_str_eq(json_string_value(json_object_get(c, "payee")), "shop");
    ck_assert_ptr_null(json_object_get(c, "transfer_id")); /* the request fields only */
    json_decref(c);
    item_done(&completed_stage, &it);
}
END_TEST

START_TEST(a_refused_body_is_a_rejection_naming_its_payment_id)
{
    static const char body[] = "{\"payment_id\":\"p-2\",\"amount\":1.5}";
    item_t it;
    item_of(&it, body);
    ck_assert_int_eq(stage_decode(&requested_stage, NULL, &it), LL_EREJECT);
    ck_assert_str_eq(it.key, "p-2");
    ck_assert_int_eq(it.why.reason, MSG_REASON_SCHEMA_VIOLATION);
    ck_assert_ptr_null(it.msg);
    item_done(&requested_stage, &it);
}
END_TEST

START_TEST(an_unsigned_body_is_refused_when_the_stage_verifies)
{
    char path[] = "/tmp/llt_stage_keys_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    static const char keys[] = "k1 " K1 "\n";
    ck_assert(write(fd, keys, strlen(keys)) == (ssize_t)strlen(keys));
    close(fd);
    sign_keyring_t *k;
    char err[256];
    ck_assert_msg(sign_load(path, &k, err, sizeof err) == LL_OK, "%s", err);
    unlink(path);
    static const char body[] = "{\"payment_id\":\"p-3\",\"payer\":\"a\",\"payee\":\"b\",\"amount\":"
                               "1,\"currency\":\"EUR\"}";
    item_t it;
    item_of(&it, body);
    ck_assert_int_eq(stage_decode(&requested_stage, k, &it), LL_EREJECT);
    ck_assert_int_eq(it.why.reason, MSG_REASON_BAD_SIGNATURE);
    ck_assert_str_eq(it.key, "p-3");
    item_done(&requested_stage, &it);
    item_of(&it, body); /* without a keyring the same body is fine */
    ck_assert_int_eq(stage_decode(&requested_stage, NULL, &it), LL_OK);
    item_done(&requested_stage, &it);
    sign_free(k);
}
END_TEST

START_TEST(the_batch_json_holds_the_batched_items_in_order)
{
    enum { N = 3 };
    char bodies[N][512];
    item_t items[N];
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], completed, i, 100 + i, i);
        item_of(&items[i], bodies[i]);
        ck_assert_int_eq(stage_decode(&completed_stage, NULL, &items[i]), LL_OK);
        items[i].state = i == 1 ? ITEM_DECODED : ITEM_BATCHED; /* 1 is not in the batch */
    }
    size_t count;
    char *text = stage_batch_json(&completed_stage, items, N, &count);
    ck_assert_uint_eq(count, 2);
    json_t *a = llt_json(text);
    ck_assert_uint_eq(json_array_size(a), 2);
    for (size_t k = 0; k < 2; k++) {
        int i = k == 0 ? 0 : 2;
        json_t *e = json_array_get(a, k);
        ck_assert_str_eq(json_string_value(json_object_get(e, "payment_id")), items[i].payment_id);
        ck_assert_str_eq(json_string_value(json_object_get(e, "hash")), items[i].hash);
        ck_assert_str_eq(json_string_value(json_object_get(e, "payload")), items[i].canonical);
        ck_assert_str_eq(json_string_value(json_object_get(e, "payer")), "alice");
        ck_assert_str_eq(json_string_value(json_object_get(e, "payee")), "shop");
        ck_assert_int_eq(json_integer_value(json_object_get(e, "amount")), 100 + i);
        ck_assert_str_eq(json_string_value(json_object_get(e, "currency")), "EUR");
        ck_assert_int_eq(json_integer_value(json_object_get(e, "posted_ms")) % 1000, i);
    }
    json_decref(a);
    free(text);
    for (int i = 0; i < N; i++)
        items[i].state = ITEM_RECEIVED;
    text = stage_batch_json(&completed_stage, items, N, &count);
    ck_assert_uint_eq(count, 0);
    ck_assert_str_eq(text, "[]");
    free(text);
    for (int i = 0; i < N; i++)
        item_done(&completed_stage, &items[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stage");
    TCase *tc = tcase_create("skeleton");
    tcase_add_test(tc, decoding_sets_the_id_the_canonical_request_and_its_hash);
    tcase_add_test(tc, a_refused_body_is_a_rejection_naming_its_payment_id);
    tcase_add_test(tc, an_unsigned_body_is_refused_when_the_stage_verifies);
    tcase_add_test(tc, the_batch_json_holds_the_batched_items_in_order);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
