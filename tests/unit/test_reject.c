/*
 * test_reject.c - a rejected item carries its message.rejected event
 * (reason, queue, payment_id; the same event for the same body) and is
 * parked; an idempotency conflict names the fields that differ from the
 * payload first processed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test.h"
#include "log.h"
#include "msg_decode.h"
#include "reject.h"

START_TEST(a_rejected_item_carries_its_event_and_is_parked)
{
    log_set_output(fopen("/dev/null", "w"));
    item_t it;
    memset(&it, 0, sizeof it);
    static char body[] = "{\"payment_id\":\"p-9\",\"amount\":1.5}";
    it.d.body = body;
    it.d.len = strlen(body);
    snprintf(it.key, sizeof it.key, "p-9");
    msg_reject_t why = {.reason = MSG_REASON_SCHEMA_VIOLATION};
    snprintf(why.field, sizeof why.field, "amount");
    snprintf(why.detail, sizeof why.detail, "amount: must be a JSON integer");
    item_reject(&it, "payments", &why);
    ck_assert_int_eq(it.verdict, VERDICT_REJECT);
    ck_assert(it.park);
    ck_assert_str_eq(it.ev_rk, "message.rejected");
    json_t *j = llt_json(it.ev_body);
    ck_assert_str_eq(json_string_value(json_object_get(j, "event_id")), it.ev_id);
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "schema_violation");
    ck_assert_str_eq(json_string_value(json_object_get(j, "queue")), "payments");
    ck_assert_str_eq(json_string_value(json_object_get(j, "payment_id")), "p-9");
    json_decref(j);
    /* the same body rejected again is the same event */
    char first[MSG_EVENT_ID_LEN + 1];
    snprintf(first, sizeof first, "%s", it.ev_id);
    item_reject(&it, "payments", &why);
    ck_assert_str_eq(it.ev_id, first);
    it.d.body = NULL; /* not owned by a delivery: do not let item_clear free it */
    it.d.filled = false;
    item_clear(&it);
}
END_TEST

START_TEST(a_conflict_names_the_fields_that_differ)
{
    log_set_output(fopen("/dev/null", "w"));
    static const char first[] = "{\"amount\":100,\"currency\":\"EUR\",\"payee\":\"m\","
                                "\"payer\":\"a\",\"payment_id\":\"p-1\"}";
    static char now_body[] = "{\"payment_id\":\"p-1\",\"payer\":\"a\",\"payee\":\"n\","
                             "\"amount\":200,\"currency\":\"EUR\"}";
    msg_payment_t now;
    msg_reject_t ignore;
    ck_assert_int_eq(msg_payment_decode(now_body, strlen(now_body), &now, &ignore), LL_OK);
    char *canonical = msg_payment_canonical(&now);
    ck_assert_ptr_nonnull(canonical);
    item_t it;
    memset(&it, 0, sizeof it);
    it.d.body = now_body;
    it.d.len = strlen(now_body);
    snprintf(it.key, sizeof it.key, "p-1");
    it.canonical = canonical; /* item_clear frees it */
    item_reject_conflict(&it, "risk", first);
    ck_assert_int_eq(it.verdict, VERDICT_REJECT);
    ck_assert(it.park);
    ck_assert_int_eq(it.why.reason, MSG_REASON_IDEMPOTENCY_CONFLICT);
    ck_assert_msg(strstr(it.why.detail, "different values of: amount,payee") != NULL, "%s",
                  it.why.detail);
    json_t *j = llt_json(it.ev_body);
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "idempotency_conflict");
    ck_assert_str_eq(json_string_value(json_object_get(j, "queue")), "risk");
    json_decref(j);
    msg_payment_clear(&now);
    it.d.body = NULL;
    it.d.filled = false;
    item_clear(&it);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reject");
    TCase *tc = tcase_create("reject");
    tcase_add_test(tc, a_rejected_item_carries_its_event_and_is_parked);
    tcase_add_test(tc, a_conflict_names_the_fields_that_differ);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
