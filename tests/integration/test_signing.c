/*
 * test_signing.c - signed approvals end to end (real servers):
 *  - a payment-worker with approval keys refuses (bad_signature, parked in
 *    payments.dead) approvals that are unsigned, signed with a wrong secret
 *    or by an unknown key, and accepts both keys of a rotation;
 *  - a risk-worker with producer keys refuses unsigned requests and signs
 *    its approvals, which a verifying payment-worker then posts: so a
 *    client allowed to publish on ledgerline.events cannot skip risk.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_amqp.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg.h"
#include "msg_encode.h"
#include "sign.h"

#define K1 "k1-secret-0123456789abcdefghijklmnopqrstuvwxyz"
#define K2 "k2-secret-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210"
#define P1 "p1-producer-secret-0123456789abcdefghijklmnop"

static llw_fixture_t fx;
static const char *const queues[] = {"risk",       "risk.dead",         "payments", "payments.dead",
                                     "settlement", "payments.retry.1s", NULL};

static char *keyfile(const char *name, const char *text)
{
    char *path = malloc(128);
    snprintf(path, 128, "/tmp/llt_%d_%s.keys", (int)getpid(), name);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fputs(text, f);
    fclose(f);
    return path;
}

static void setup(void)
{
    llw_fixture_up(&fx, queues);
    llw_ctl(fx.ledger, "account create alice --currency EUR");
    llw_ctl(fx.ledger, "account create shop --currency EUR --kind merchant");
    llw_ctl(fx.ledger, "account fund alice 1000000 --ref sig-fund");
}

static void teardown(void)
{
    llw_fixture_down(&fx);
}

/* Publishes one payment of `type` with id `id`, signed with `keys` (NULL:
 * unsigned), through ledgerctl. */
static void publish(const char *type, const char *id, const char *keys)
{
    llw_ctl(fx.ledger,
            "publish --type %s --payer alice --payee shop --amount 100 --currency EUR "
            "--payment-id %s %s%s",
            type, id, keys ? "--key-file " : "", keys ? keys : "");
}

static int64_t processed(const char *stage, const char *id)
{
    return llw_count(fx.db,
                     "SELECT count(*) FROM processed WHERE stage = '%s' AND payment_id = '%s'",
                     stage, id);
}

/* Until the payment stage has processed `id`. */
static void wait_processed(const char *id)
{
    llw_wait_sql(fx.db, 1, 10000, "the payment-worker to process the approval",
                 "SELECT count(*) FROM processed WHERE stage = 'payment' AND payment_id = '%s'",
                 id);
}

/* The messages parked in `queue`, checked to carry reason bad_signature;
 * returns how many. */
static size_t parked_bad_signature(const char *queue)
{
    json_t *all = llw_queue_drain(fx.m, queue);
    size_t i, n = json_array_size(all);
    json_t *msg;
    json_array_foreach(all, i, msg)
    {
        const char *reason = llw_header(msg, "x-ledgerline-reason");
        LLW_ASSERT(reason && strcmp(reason, "bad_signature") == 0, "parked with reason %s",
                   reason ? reason : "(none)");
    }
    json_decref(all);
    return n;
}

START_TEST(signing_payment_worker_accepts_only_signed_approvals)
{
    char *ring = keyfile("ring", "k2 " K2 "\nk1 " K1 "\n"); /* rotation: k2 new, k1 old */
    char *k1 = keyfile("k1", "k1 " K1 "\n"), *k2 = keyfile("k2", "k2 " K2 "\n");
    char *forged = keyfile("forged", "k1 forged-secret-0123456789abcdefghijklmnopq\n");
    char *unknown = keyfile("unknown", "k9 " K1 "\n");
    char env[256];
    snprintf(env, sizeof env, "LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE=%s", ring);
    const char *const extra[] = {env, NULL};
    pid_t w = llw_start(LL_BIN_DIR "/payment-worker", fx.ledger, extra, NULL);
    llw_wait_consuming(fx.m, "payments", 1, 30000);
    publish("payment.approved", "sig-none", NULL);
    publish("payment.approved", "sig-old-key", k1);
    publish("payment.approved", "sig-new-key", k2);
    publish("payment.approved", "sig-forged", forged);
    publish("payment.approved", "sig-unknown", unknown);
    llw_wait_drained(fx.m, "payments", 30000);
    llw_stop_ok(w, 20000, "payment-worker");

    LLW_ASSERT(processed("payment", "sig-old-key") == 1, "k1 (old key) refused");
    LLW_ASSERT(processed("payment", "sig-new-key") == 1, "k2 (new key) refused");
    LLW_ASSERT(processed("payment", "sig-none") == 0, "an unsigned approval was processed");
    LLW_ASSERT(processed("payment", "sig-forged") == 0, "a forged approval was processed");
    LLW_ASSERT(processed("payment", "sig-unknown") == 0, "an unknown key was accepted");
    LLW_ASSERT(llw_balance(fx.db, "alice") == 1000000 - 200, "only two payments may post");
    LLW_ASSERT(parked_bad_signature("payments.dead") == 3, "three approvals must be parked");
    llw_events_collect(fx.ev);
    LLW_ASSERT(llw_events_count(fx.ev, "message.rejected", NULL) == 3,
               "one message.rejected per refused approval");
    json_t *e = llw_events_find(fx.ev, "message.rejected", "sig-forged", 0);
    LLW_ASSERT(e != NULL, "no rejection event for sig-forged");
    json_t *body = json_object_get(e, "json");
    LLW_ASSERT(strcmp(json_string_value(json_object_get(body, "reason")), "bad_signature") == 0,
               "reason is not bad_signature");
    LLW_ASSERT(strstr(json_string_value(json_object_get(body, "detail")), "does not match"),
               "detail does not say why");
    llw_assert_verify(fx.ledger);
    const char *files[] = {ring, k1, k2, forged, unknown};
    for (size_t i = 0; i < 5; i++) {
        unlink(files[i]);
        free((void *)files[i]);
    }
}
END_TEST

START_TEST(signing_requests_through_risk_to_payment)
{
    char *approvals = keyfile("approvals", "k1 " K1 "\n");
    char *producers = keyfile("producers", "p1 " P1 "\n");
    char a_env[256], p_env[256];
    snprintf(a_env, sizeof a_env, "LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE=%s", approvals);
    snprintf(p_env, sizeof p_env, "LEDGERLINE_SIGNING_REQUEST_KEYS_FILE=%s", producers);
    const char *const risk_env[] = {a_env, p_env, NULL};
    const char *const pay_env[] = {a_env, NULL};
    pid_t r = llw_start(LL_BIN_DIR "/risk-worker", fx.ledger, risk_env, NULL);
    pid_t p = llw_start(LL_BIN_DIR "/payment-worker", fx.ledger, pay_env, NULL);
    llw_wait_consuming(fx.m, "risk", 1, 30000);
    llw_wait_consuming(fx.m, "payments", 1, 30000);
    publish("payment.requested", "req-unsigned", NULL);
    publish("payment.requested", "req-signed", producers);
    /* a client skipping risk with an unsigned approval gets nowhere */
    publish("payment.approved", "req-skipping-risk", NULL);
    llw_wait_drained(fx.m, "risk", 30000);
    wait_processed("req-signed");
    llw_wait_drained(fx.m, "payments", 30000);
    llw_stop_ok(r, 20000, "risk-worker");
    llw_stop_ok(p, 20000, "payment-worker");

    LLW_ASSERT(processed("risk", "req-unsigned") == 0, "risk decided an unsigned request");
    LLW_ASSERT(processed("risk", "req-signed") == 1, "risk refused a signed request");
    LLW_ASSERT(processed("payment", "req-signed") == 1,
               "the payment-worker refused risk's signed approval");
    LLW_ASSERT(processed("payment", "req-skipping-risk") == 0, "an approval skipped risk");
    LLW_ASSERT(parked_bad_signature("risk.dead") == 1, "the unsigned request is not parked");
    LLW_ASSERT(parked_bad_signature("payments.dead") == 1, "the forged approval is not parked");
    LLW_ASSERT(llw_balance(fx.db, "alice") == 1000000 - 100, "exactly one payment posts");
    llw_assert_verify(fx.ledger);
    unlink(approvals);
    unlink(producers);
    free(approvals);
    free(producers);
}
END_TEST

/* A SIGHUP whose approval keyring is good but whose producer keyring is
 * bad replaces neither: the risk-worker keeps signing with the old key
 * (a payment-worker that knows only that key still accepts), and keeps
 * verifying requests with the old producer key. */
START_TEST(signing_a_half_failed_reload_keeps_both_old_keyrings)
{
    char *approvals = keyfile("half_a", "k1 " K1 "\n");
    char *producers = keyfile("half_p", "p1 " P1 "\n");
    char *pay_keys = keyfile("half_pay", "k1 " K1 "\n");
    char a_env[256], p_env[256], pay_env_s[256];
    snprintf(a_env, sizeof a_env, "LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE=%s", approvals);
    snprintf(p_env, sizeof p_env, "LEDGERLINE_SIGNING_REQUEST_KEYS_FILE=%s", producers);
    snprintf(pay_env_s, sizeof pay_env_s, "LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE=%s", pay_keys);
    const char *const risk_env[] = {a_env, p_env, NULL};
    const char *const pay_env[] = {pay_env_s, NULL};
    pid_t r = llw_start(LL_BIN_DIR "/risk-worker", fx.ledger, risk_env, NULL);
    llw_wait_consuming(fx.m, "risk", 1, 30000);

    free(keyfile("half_a", "k2 " K2 "\n"));    /* a good new approval key ... */
    free(keyfile("half_p", "p1 too-short\n")); /* ... and a bad producer file */
    llw_signal(r, SIGHUP);
    llw_wait_logged(r, "SIGHUP: reload failed", 30000, "the reload to fail on the producer keys");

    pid_t p = llw_start(LL_BIN_DIR "/payment-worker", fx.ledger, pay_env, NULL);
    llw_wait_consuming(fx.m, "payments", 1, 30000);
    free(keyfile("half_p", "p1 " P1 "\n")); /* the signer still has the old key */
    publish("payment.requested", "half-signed", producers);
    llw_wait_drained(fx.m, "risk", 30000);
    wait_processed("half-signed");
    llw_wait_drained(fx.m, "payments", 30000);
    llw_stop_ok(r, 20000, "risk-worker");
    llw_stop_ok(p, 20000, "payment-worker");
    LLW_ASSERT(processed("risk", "half-signed") == 1,
               "risk refused a request signed with the producer key it should have kept");
    LLW_ASSERT(processed("payment", "half-signed") == 1,
               "the approval was not signed with the old key k1: the failed reload replaced it");
    LLW_ASSERT(parked_bad_signature("payments.dead") == 0, "an approval was refused");
    llw_assert_verify(fx.ledger);
    const char *files[] = {approvals, producers, pay_keys};
    for (size_t i = 0; i < 3; i++) {
        unlink(files[i]);
        free((void *)files[i]);
    }
}
END_TEST

/* Publishes a payment.approved for `id` with a raw signature header. */
static void publish_with_signature(const char *id, const char *header)
{
    msg_payment_t p = llw_payment(fx.ledger, id, "alice", "shop", 100, "EUR");
    char *body = msg_encode_approved(&p, 0, NULL, 0, 1795000000000LL);
    ck_assert(body != NULL);
    mq_header_t h = {.key = SIGN_HEADER, .str = header};
    mq_props_t props = {.message_id = p.payment_id,
                        .type = MSG_TYPE_APPROVED,
                        .content_type = "application/json",
                        .headers = &h,
                        .nheaders = 1};
    ck_assert_int_eq(
        mq_publish(fx.m, "ledgerline.events", MSG_TYPE_APPROVED, body, strlen(body), &props, true),
        LL_OK);
    llw_confirm(fx.m);
    free(body);
    msg_payment_clear(&p);
}

/* A signature header whose key id is not valid UTF-8, or whose 64-byte cut
 * splits a character, goes into the rejection's detail: it must come out
 * as a clean message.rejected and a parked copy, and the worker must go
 * on (it used to abort on the unencodable detail, over and over). */
START_TEST(signing_a_hostile_signature_header_is_rejected_not_fatal)
{
    char *ring = keyfile("hostile", "k1 " K1 "\n");
    char env[256];
    snprintf(env, sizeof env, "LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE=%s", ring);
    const char *const extra[] = {env, NULL};
    pid_t w = llw_start(LL_BIN_DIR "/payment-worker", fx.ledger, extra, NULL);
    llw_wait_consuming(fx.m, "payments", 1, 30000);
    char hex[65];
    memset(hex, 'a', 64);
    hex[64] = '\0';
    char bad_utf8[128], split[256] = "";
    snprintf(bad_utf8, sizeof bad_utf8, "\xff\xfe:%s", hex);
    for (int i = 0; i < 22; i++) /* 66 bytes of 3-byte characters: the cut at 64 splits one */
        strcat(split, "\xe2\x82\xac");
    strcat(split, ":");
    strcat(split, hex);
    publish_with_signature("hostile-utf8", bad_utf8);
    publish_with_signature("hostile-split", split);
    publish("payment.approved", "hostile-then-good", ring);
    llw_wait_drained(fx.m, "payments", 30000);
    wait_processed("hostile-then-good");
    llw_check_alive();
    llw_stop_ok(w, 20000, "payment-worker");
    LLW_ASSERT(processed("payment", "hostile-then-good") == 1, "the good approval after them");
    char pid_utf8[MSG_ID_MAX + 1], pid_split[MSG_ID_MAX + 1];
    snprintf(pid_utf8, sizeof pid_utf8, "%s-hostile-utf8", fx.ledger);
    snprintf(pid_split, sizeof pid_split, "%s-hostile-split", fx.ledger);
    LLW_ASSERT(processed("payment", pid_utf8) == 0 && processed("payment", pid_split) == 0,
               "a hostile approval was processed");
    LLW_ASSERT(parked_bad_signature("payments.dead") == 2, "both hostile approvals parked");
    llw_events_collect(fx.ev);
    const char *ids[] = {"hostile-utf8", "hostile-split"};
    for (int i = 0; i < 2; i++) {
        char pid[MSG_ID_MAX + 1];
        snprintf(pid, sizeof pid, "%s-%s", fx.ledger, ids[i]);
        json_t *e = llw_events_find(fx.ev, "message.rejected", pid, 0);
        LLW_ASSERT(e != NULL, "no message.rejected for %s", pid);
        const char *detail =
            json_string_value(json_object_get(json_object_get(e, "json"), "detail"));
        LLW_ASSERT(detail && strstr(detail, "unknown key id"), "detail of %s: %s", pid,
                   detail ? detail : "(none)");
    }
    llw_assert_verify(fx.ledger);
    unlink(ring);
    free(ring);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("signing");
    TCase *tc = tcase_create("hmac");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, signing_payment_worker_accepts_only_signed_approvals);
    tcase_add_test(tc, signing_requests_through_risk_to_payment);
    tcase_add_test(tc, signing_a_half_failed_reload_keeps_both_old_keyrings);
    tcase_add_test(tc, signing_a_hostile_signature_header_is_rejected_not_fatal);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
