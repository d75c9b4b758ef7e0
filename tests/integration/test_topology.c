/*
 * test_topology.c - `ledgerctl topology apply` on a real RabbitMQ: applying
 * twice is fine, every queue of schemas/topology.yaml exists afterwards,
 * work queues are of the configured type (a mismatching re-declare is
 * refused with a fix), and the dead-letter and retry wiring moves messages
 * where docs/contract.md#topology says. The length-limit policies it sets
 * through the management API hold on the real broker: with a tiny
 * amqp.dead_max_length a full dead queue nacks the publish (reject-publish)
 * or drops its oldest letter (drop-head), on a quorum and on a classic dead
 * queue; events.audit drops its oldest events; an unreachable management
 * API fails the command, saying the queues are declared but not limited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "clock.h"
#include "ll_http.h"
#include "ll_test.h"
#include "topo.h"

static void apply_ok(void)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, NULL, "topology apply");
    ck_assert_msg(rc == 0, "topology apply: %s%s", out, err);
    ck_assert_msg(strstr(out, "declared 4 exchanges, 21 queues (quorum work queues)") != NULL, "%s",
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

/* ---- the length-limit policies (management API) ------------------------------ */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    char **buf = ud;
    size_t old = *buf ? strlen(*buf) : 0;
    char *b = realloc(*buf, old + size * n + 1);
    ck_assert(b != NULL);
    memcpy(b + old, data, size * n);
    b[old + size * n] = '\0';
    *buf = b;
    return size * n;
}

/* GET `path` of the stack's management API (amqp.user / password, as
 * ledgerctl logs in): the parsed answer (caller decrefs), NULL on any
 * failure. */
static json_t *mgmt_get(const char *path)
{
    char url[512], *pw = llt_secret("LEDGERLINE_AMQP_PASSWORD"), *body = NULL;
    snprintf(url, sizeof url, "%s%s", llt_env("LEDGERLINE_AMQP_MANAGEMENT_URL"), path);
    CURL *c = curl_easy_init();
    ck_assert(c != NULL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_USERNAME, llt_env("LEDGERLINE_AMQP_USER"));
    curl_easy_setopt(c, CURLOPT_PASSWORD, pw);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    long st = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_cleanup(c);
    free(pw);
    json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}

/* Until `queue` is under a policy with this max-length and overflow (a
 * policy reaches the queues right after it is set, not within the PUT). */
static void wait_policy(const char *queue, long long max, const char *overflow)
{
    char path[256], seen[512] = "nothing";
    snprintf(path, sizeof path, "/api/queues/%%2F/%s", queue);
    int64_t end = clock_mono_ms() + 10000;
    do {
        json_t *q = mgmt_get(path);
        json_t *d = json_object_get(q, "effective_policy_definition");
        if (d) {
            char *txt = json_dumps(d, JSON_COMPACT);
            snprintf(seen, sizeof seen, "%s", txt ? txt : "?");
            free(txt);
        }
        bool ok = json_integer_value(json_object_get(d, "max-length")) == max &&
                  json_is_string(json_object_get(d, "overflow")) &&
                  strcmp(json_string_value(json_object_get(d, "overflow")), overflow) == 0;
        json_decref(q);
        if (ok)
            return;
        usleep(100 * 1000);
    } while (clock_mono_ms() < end);
    ck_abort_msg("queue %s is not under max-length %lld, overflow %s after topology apply; it "
                 "has %s",
                 queue, max, overflow, seen);
}

/* `ledgerctl topology apply` with the environment assignments `env`. */
static void apply_env(const char *env)
{
    char *out;
    int rc = llt_run(&out, "%s %s topology apply", env, LEDGERCTL_BIN);
    ck_assert_msg(rc == 0, "%s topology apply exited %d: %s", env, rc, out);
    free(out);
}

/* Parks `body` as a worker does (ledgerline.dead, routing key = the work
 * queue): the confirm's outcome. */
static int park(mq_t *m, const char *work, const char *body)
{
    mq_header_t h = {.key = "x-ledgerline-reason", .str = "invalid_json"};
    mq_props_t p = {.headers = &h, .nheaders = 1, .timestamp_s = clock_now_ms() / 1000};
    ck_assert_int_eq(mq_publish(m, "ledgerline.dead", work, body, strlen(body), &p, true), LL_OK);
    return mq_confirm_wait(m, 5000, NULL);
}

/* Takes every message of `queue`: their bodies joined by ",". Caller frees. */
static char *take_all(mq_t *m, const char *queue)
{
    char *all = calloc(1, 1024);
    for (;;) {
        mq_delivery_t d;
        bool empty;
        ck_assert_int_eq(mq_get(m, queue, &d, &empty), LL_OK);
        if (empty)
            break;
        size_t n = strlen(all);
        snprintf(all + n, 1024 - n, "%s%.*s", n ? "," : "", (int)d.len, d.body);
        ck_assert_int_eq(mq_ack(m, d.tag, false), LL_OK);
        mq_delivery_clear(&d);
    }
    return all;
}

/* settlement.dead as a classic queue (the policy's pattern still matches). */
static void settlement_dead_classic(mq_t *m)
{
    ck_assert_int_eq(mq_delete_queue(m, "settlement.dead"), LL_OK);
    amqp_table_entry_t e = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("classic")}};
    amqp_table_t args = {1, &e};
    ck_assert_int_eq(mq_declare_queue(m, "settlement.dead", &args), LL_OK);
    ck_assert_int_eq(mq_bind(m, "settlement.dead", "ledgerline.dead", "settlement"), LL_OK);
}

/* Back to the declared topology and the default limits, whatever a test
 * left: settlement.dead quorum again (deleted, then declared by apply),
 * the policies of the defaults, the probes' letters gone. Asserts nothing,
 * so it also serves outside a test. */
static void restore_topology(void)
{
    char *pw = llt_secret("LEDGERLINE_AMQP_PASSWORD");
    const char *base = getenv("LEDGERLINE_AMQP_MANAGEMENT_URL");
    static const char *const paths[] = {"/api/queues/%2F/settlement.dead",
                                        "/api/queues/%2F/payments.dead/contents",
                                        "/api/queues/%2F/events.audit/contents"};
    for (size_t i = 0; base && i < sizeof paths / sizeof paths[0]; i++) {
        char url[512];
        snprintf(url, sizeof url, "%s%s", base, paths[i]);
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
        curl_easy_setopt(c, CURLOPT_USERNAME, getenv("LEDGERLINE_AMQP_USER"));
        curl_easy_setopt(c, CURLOPT_PASSWORD, pw);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_perform(c);
        curl_easy_cleanup(c);
    }
    free(pw);
    if (system(LEDGERCTL_BIN " topology apply >/dev/null") != 0)
        fprintf(stderr, "restore: ledgerctl topology apply failed\n");
}

/*
 * The limit of a dead queue, reject-publish then drop-head. Measured on
 * RabbitMQ 3.10: a classic queue nacks the publish that would exceed
 * max-length; a quorum queue takes that one (it then holds max-length + 1)
 * and nacks every publish after it. Both keep the oldest letters. Under
 * drop-head both hold exactly max-length, the newest.
 */
static void check_dead_limit(mq_t *m, const char *work, const char *dead, bool classic)
{
    uint32_t n;
    apply_env("LEDGERLINE_AMQP_DEAD_MAX_LENGTH=2");
    if (classic)
        settlement_dead_classic(m);
    ck_assert_int_eq(mq_purge(m, dead, &n), LL_OK);
    wait_policy(dead, 2, "reject-publish");
    int taken = classic ? 2 : 3;
    char want[32] = "";
    for (int i = 1; i <= taken + 2; i++) {
        char b[8];
        snprintf(b, sizeof b, "d%d", i);
        int rc = park(m, work, b);
        if (i <= taken) {
            ck_assert_msg(rc == LL_OK, "%s (%s) under max-length 2 refused letter %d: %s", dead,
                          classic ? "classic" : "quorum", i, ll_errname(rc));
            size_t k = strlen(want);
            snprintf(want + k, sizeof want - k, "%s%s", k ? "," : "", b);
        } else {
            ck_assert_msg(rc == LL_ENACK,
                          "%s (%s) under max-length 2, reject-publish: letter %d should be "
                          "nacked, it was %s",
                          dead, classic ? "classic" : "quorum", i, ll_errname(rc));
        }
    }
    char *got = take_all(m, dead);
    ck_assert_msg(strcmp(got, want) == 0, "%s kept %s, want %s", dead, got, want);
    free(got);

    if (classic)
        ck_assert_int_eq(mq_delete_queue(m, dead), LL_OK); /* apply declares it quorum */
    apply_env("LEDGERLINE_AMQP_DEAD_MAX_LENGTH=2 LEDGERLINE_AMQP_DEAD_OVERFLOW=drop-head");
    if (classic)
        settlement_dead_classic(m);
    wait_policy(dead, 2, "drop-head");
    for (int i = 1; i <= 3; i++) {
        char b[8];
        snprintf(b, sizeof b, "d%d", i);
        int rc = park(m, work, b);
        ck_assert_msg(rc == LL_OK, "%s under drop-head refused %s: %s", dead, b, ll_errname(rc));
    }
    got = take_all(m, dead);
    ck_assert_msg(strcmp(got, "d2,d3") == 0,
                  "%s (%s) under max-length 2, drop-head kept %s, want d2,d3 (the oldest dropped)",
                  dead, classic ? "classic" : "quorum", got);
    free(got);
}

START_TEST(topology_dead_policy_limits_a_quorum_dead_queue)
{
    apply_ok();
    mq_t *m = llt_mq();
    check_dead_limit(m, "payments", "payments.dead", false);
    mq_free(m);
}
END_TEST

START_TEST(topology_dead_policy_limits_a_classic_dead_queue)
{
    apply_ok();
    mq_t *m = llt_mq();
    check_dead_limit(m, "settlement", "settlement.dead", true);
    mq_free(m);
}
END_TEST

START_TEST(topology_audit_policy_drops_the_oldest_events)
{
    apply_env("LEDGERLINE_AMQP_AUDIT_MAX_LENGTH=2");
    mq_t *m = llt_mq();
    uint32_t n;
    ck_assert_int_eq(mq_purge(m, "events.audit", &n), LL_OK);
    wait_policy("events.audit", 2, "drop-head");
    for (int i = 1; i <= 3; i++) {
        char b[8];
        snprintf(b, sizeof b, "e%d", i);
        /* a key only the audit queue's "#" binding takes */
        ck_assert_int_eq(
            mq_publish(m, "ledgerline.events", "llt.audit.probe", b, strlen(b), NULL, true), LL_OK);
    }
    ck_assert_int_eq(mq_confirm_wait(m, 5000, NULL), LL_OK);
    char *got = take_all(m, "events.audit");
    ck_assert_msg(strcmp(got, "e2,e3") == 0, "events.audit under max-length 2 kept %s, want e2,e3",
                  got);
    free(got);
    mq_free(m);
}
END_TEST

START_TEST(topology_apply_json_reports_the_policies)
{
    char *out, *err;
    int rc = llt_run(&out,
                     "LEDGERLINE_AMQP_DEAD_MAX_LENGTH=7 LEDGERLINE_AMQP_DEAD_OVERFLOW=drop-head "
                     "LEDGERLINE_AMQP_AUDIT_MAX_LENGTH=9 %s topology apply --json 2>/dev/null",
                     LEDGERCTL_BIN);
    ck_assert_msg(rc == 0, "%s", out);
    json_t *j = llt_json(out);
    json_t *p = json_object_get(j, "policies");
    ck_assert_int_eq((int)json_array_size(p), 2);
    json_t *dead = json_array_get(p, 0), *audit = json_array_get(p, 1);
    ck_assert_str_eq(json_string_value(json_object_get(dead, "name")), "ledgerline-dead");
    ck_assert_str_eq(json_string_value(json_object_get(dead, "pattern")),
                     "^(risk|payments|settlement|refunds|funds)\\.dead$");
    json_t *dd = json_object_get(dead, "definition");
    ck_assert_int_eq(json_integer_value(json_object_get(dd, "max-length")), 7);
    ck_assert_str_eq(json_string_value(json_object_get(dd, "overflow")), "drop-head");
    ck_assert_str_eq(json_string_value(json_object_get(audit, "name")), "ledgerline-audit");
    json_t *ad = json_object_get(audit, "definition");
    ck_assert_int_eq(json_integer_value(json_object_get(ad, "max-length")), 9);
    ck_assert_str_eq(json_string_value(json_object_get(ad, "overflow")), "drop-head");
    json_decref(j);
    free(out);
    /* and the broker holds them */
    wait_policy("risk.dead", 7, "drop-head");
    wait_policy("events.audit", 9, "drop-head");
    (void)err;
}
END_TEST

START_TEST(topology_apply_without_management_api_fails_naming_the_fix)
{
    int port = llh_free_port();
    char *out;
    int rc = llt_run(&out, "LEDGERLINE_AMQP_MANAGEMENT_URL=http://127.0.0.1:%d %s topology apply",
                     port, LEDGERCTL_BIN);
    ck_assert_msg(rc == 1, "exit %d with no management API: %s", rc, out);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    ck_assert_msg(strstr(out, "queues are declared") && strstr(out, "are not") &&
                      strstr(out, where) && strstr(out, "fix:") &&
                      strstr(out, "rabbitmq_management") &&
                      strstr(out, "LEDGERLINE_AMQP_MANAGEMENT_URL"),
                  "%s", out);
    free(out);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    Suite *s = suite_create("topology");
    TCase *tc = tcase_create("rabbitmq");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, topology_apply_twice_declares_every_queue);
    tcase_add_test(tc, topology_apply_refuses_another_queue_type_with_a_fix);
    tcase_add_test(tc, topology_rejected_work_message_lands_in_dead_queue);
    tcase_add_test(tc, topology_retry_tier_returns_message_to_work_queue);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("policies");
    tcase_set_timeout(tp, 120);
    tcase_add_checked_fixture(tp, restore_topology, NULL);
    tcase_add_unchecked_fixture(tp, NULL, restore_topology);
    tcase_add_test(tp, topology_dead_policy_limits_a_quorum_dead_queue);
    tcase_add_test(tp, topology_dead_policy_limits_a_classic_dead_queue);
    tcase_add_test(tp, topology_audit_policy_drops_the_oldest_events);
    tcase_add_test(tp, topology_apply_json_reports_the_policies);
    tcase_add_test(tp, topology_apply_without_management_api_fails_naming_the_fix);
    suite_add_tcase(s, tp);
    int rc = llt_run_suite(s);
    curl_global_cleanup();
    return rc;
}
