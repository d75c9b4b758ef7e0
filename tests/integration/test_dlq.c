/*
 * test_dlq.c - `ledgerctl dlq list|show|replay|purge` on the stack's real
 * broker, dead queue risk.dead of the stack's queue type (quorum unless
 * LEDGERLINE_AMQP_QUEUE_TYPE says classic):
 *  - letters parked the way the runtime parks them (published to
 *    ledgerline.dead with the x-ledgerline-* headers), with and without the
 *    route headers of older copies, and letters the broker dead-letters
 *    itself (x-death: rejected, and delivery_limit on quorum queues);
 *  - list shows what each letter says and the filters select exactly the
 *    letters they should, without changing the queue; positions stay the
 *    same from one pass to the next, past 32 letters (quorum queues give
 *    back letters in no order when asked carelessly: see dlq.c);
 *  - show prints headers and body; replay --dry-run changes nothing;
 *    replay reaches the original route (a private tap sees it) and removes
 *    exactly the selected letters; purge deletes exactly them, and refuses
 *    without --yes when stdin is not a terminal; a bad queue name is
 *    refused with the valid ones;
 *  - with a real risk-worker: a request it parked (bad_signature, the
 *    producer's key unknown to it) is listed with its reason, worker and
 *    time, and once the key is trusted, replaying it gets it approved.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ll_amqp.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg.h"

#define DEAD "risk.dead"
#define P1   "p9-producer-secret-0123456789abcdefghijklmnop"

static mq_t *m;
static char tap[96];     /* private queue on ledgerline.commands / payment.requested */
static char tap_ev[96];  /* private queue on ledgerline.events / tap_key */
static char tap_key[96]; /* a routing key of this test alone */
static int64_t now_ms;

/* --- fixture: broker only ----------------------------------------------- */

static void setup(void)
{
    llw_ctl(NULL, "topology apply");
    m = llt_mq();
    uint32_t n;
    ck_assert_int_eq(mq_purge(m, "risk", &n), LL_OK);
    ck_assert_int_eq(mq_purge(m, DEAD, &n), LL_OK);
    static int seq;
    seq++;
    snprintf(tap, sizeof tap, "llt.dlq.%d.%d.commands", (int)getpid(), seq);
    snprintf(tap_ev, sizeof tap_ev, "llt.dlq.%d.%d.events", (int)getpid(), seq);
    snprintf(tap_key, sizeof tap_key, "llt.dlq.%d.%d", (int)getpid(), seq);
    ck_assert_int_eq(mq_declare_private_queue(m, tap), LL_OK);
    ck_assert_int_eq(mq_bind(m, tap, "ledgerline.commands", "payment.requested"), LL_OK);
    ck_assert_int_eq(mq_declare_private_queue(m, tap_ev), LL_OK);
    ck_assert_int_eq(mq_bind(m, tap_ev, "ledgerline.events", tap_key), LL_OK);
    now_ms = clock_now_ms();
}

static void teardown(void)
{
    uint32_t n;
    if (mq_purge(m, DEAD, &n) != LL_OK || mq_purge(m, "risk", &n) != LL_OK)
        fprintf(stderr, "test_dlq: purge after the test failed: %s\n", mq_errstr(m));
    mq_free(m); /* the taps go with the connection */
    m = NULL;
}

static bool quorum(void)
{
    const char *t = getenv("LEDGERLINE_AMQP_QUEUE_TYPE");
    return !t || !*t || strcmp(t, "quorum") == 0;
}

static uint32_t depth(const char *queue)
{
    uint32_t msgs = 0, consumers;
    ck_assert_int_eq(mq_queue_stats(m, queue, &msgs, &consumers), LL_OK);
    return msgs;
}

/* Parks one letter as the runtime does: body {"payment_id":id,...} on
 * ledgerline.dead key risk, with the parked-copy headers; `age_ms` before
 * the test started; `ex`/`rk` NULL: an older copy without route headers. */
static void park(const char *id, const char *reason, const char *worker, int64_t age_ms,
                 const char *ex, const char *rk)
{
    char body[256], detail[128], at[MSG_TIME_LEN + 1];
    snprintf(body, sizeof body, "{\"payment_id\":\"%s\",\"amount\":\"twelve\"}", id);
    snprintf(detail, sizeof detail, "amount: must be a JSON integer (%s)", id);
    msg_format_time(now_ms - age_ms, at);
    mq_header_t h[9] = {{"x-ledgerline-reason", reason, 0}, {"x-ledgerline-detail", detail, 0},
                        {"x-ledgerline-queue", "risk", 0},  {"x-ledgerline-worker", worker, 0},
                        {"x-ledgerline-parked-at", at, 0},  {"x-producer-trace", "t-1", 0}};
    size_t n = 6;
    if (ex) {
        h[n++] = (mq_header_t){"x-ledgerline-exchange", ex, 0};
        h[n++] = (mq_header_t){"x-ledgerline-routing-key", rk, 0};
    }
    mq_props_t p = {.message_id = id, .type = "payment.requested", .headers = h, .nheaders = n};
    ck_assert_int_eq(mq_publish(m, "ledgerline.dead", "risk", body, strlen(body), &p, true), LL_OK);
    size_t failed;
    ck_assert_msg(mq_confirm_wait(m, 5000, &failed) == LL_OK, "park %s: %s", id, mq_errstr(m));
}

/* Runs ledgerctl, expecting exit `want`; returns stdout (caller frees) and
 * stderr in *err (caller frees; NULL: dropped). */
static char *ctl(int want, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static char *ctl(int want, char **err, const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *out, *e;
    int rc = llt_ctl(&out, &e, NULL, "%s", args);
    ck_assert_msg(rc == want, "ledgerctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", args, rc,
                  want, out, e);
    if (err)
        *err = e;
    else
        free(e);
    return out;
}

/* `dlq list risk --json ARGS`: its letters (caller decrefs). */
static json_t *list(const char *args)
{
    char *out = ctl(0, NULL, "dlq list risk --json %s", args);
    json_t *doc = llt_json(out);
    free(out);
    json_t *letters = json_incref(json_object_get(doc, "letters"));
    ck_assert_msg(json_is_array(letters), "no letters array");
    ck_assert(json_is_true(json_object_get(doc, "complete")));
    ck_assert_str_eq(json_string_value(json_object_get(doc, "queue")), DEAD);
    json_decref(doc);
    return letters;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The payment ids of `letters`, in order, comma-separated (static). */
static const char *ids(const json_t *letters)
{
    static char buf[4096];
    buf[0] = '\0';
    size_t i;
    json_t *l;
    json_array_foreach(letters, i, l)
    {
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "", jstr(l, "payment_id"));
    }
    return buf;
}

/* Every message of private queue q (acked): bodies joined by '|', and the
 * number in *n. Waits up to wait_ms for at least `want`. Static buffer. */
static const char *tap_take(const char *q, size_t want, int wait_ms, size_t *n,
                            char *hdr_check_fail, size_t hlen)
{
    static char buf[8192];
    buf[0] = '\0';
    *n = 0;
    int64_t deadline = clock_mono_ms() + wait_ms;
    for (;;) {
        mq_delivery_t d;
        bool empty;
        ck_assert_int_eq(mq_get(m, q, &d, &empty), LL_OK);
        if (empty) {
            if (*n >= want || clock_mono_ms() >= deadline)
                return buf;
            llw_sleep_ms(50);
            continue;
        }
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "%s%.*s", *n ? "|" : "", (int)d.len, d.body);
        (*n)++;
        const amqp_table_t *h = mq_delivery_headers(&d);
        for (int i = 0; h && i < h->num_entries && hdr_check_fail; i++) {
            const amqp_bytes_t k = h->entries[i].key;
            bool ours = k.len > 13 && memcmp(k.bytes, "x-ledgerline-", 13) == 0;
            bool death = k.len == 7 && memcmp(k.bytes, "x-death", 7) == 0;
            if ((ours || death) && !hdr_check_fail[0])
                snprintf(hdr_check_fail, hlen, "replayed with header %.*s", (int)k.len,
                         (const char *)k.bytes);
        }
        char trace[32];
        if (hdr_check_fail && !hdr_check_fail[0] &&
            !mq_delivery_header(&d, "x-producer-trace", trace, sizeof trace))
            snprintf(hdr_check_fail, hlen, "the producer's own header was not replayed");
        ck_assert_int_eq(mq_ack(m, d.tag, false), LL_OK);
        mq_delivery_clear(&d);
    }
}

/* --- list, filters, positions ------------------------------------------ */

START_TEST(dlq_list_shows_each_letter)
{
    park("dl-1", "schema_violation", "risk-a", 3 * 3600 * 1000, "ledgerline.commands",
         "payment.requested");
    park("dl-2", "malformed_json", "risk-b", 10 * 60 * 1000, NULL, NULL);
    park("dl-3", "bad_signature", "risk-a", 5 * 1000, "ledgerline.commands", "payment.requested");
    json_t *l = list("");
    ck_assert_int_eq(json_array_size(l), 3);
    ck_assert_str_eq(ids(l), "dl-1,dl-2,dl-3");
    const char *reasons[] = {"schema_violation", "malformed_json", "bad_signature"};
    const char *workers[] = {"risk-a", "risk-b", "risk-a"};
    const char *from[] = {"headers", "topology", "headers"};
    int64_t ages[] = {3 * 3600 * 1000, 10 * 60 * 1000, 5 * 1000};
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(l, i);
        ck_assert_int_eq(json_integer_value(json_object_get(e, "position")), (json_int_t)i + 1);
        ck_assert_str_eq(jstr(e, "kind"), "parked");
        ck_assert_str_eq(jstr(e, "reason"), reasons[i]);
        ck_assert_str_eq(jstr(e, "worker"), workers[i]);
        ck_assert_str_eq(jstr(e, "queue"), "risk");
        ck_assert_msg(strstr(jstr(e, "detail"), "must be a JSON integer"), "detail %s",
                      jstr(e, "detail"));
        int64_t at;
        ck_assert_int_eq(msg_parse_time(jstr(e, "parked_at"), &at), LL_OK);
        ck_assert_int_eq(at, now_ms - ages[i]);
        ck_assert_str_eq(jstr(e, "exchange"), "ledgerline.commands");
        ck_assert_str_eq(jstr(e, "routing_key"), "payment.requested");
        ck_assert_str_eq(jstr(e, "route_from"), from[i]);
    }
    json_decref(l);
    /* the text form says the same */
    char *out = ctl(0, NULL, "dlq list risk.dead");
    ck_assert_msg(strstr(out, "FIRST_SEEN") && strstr(out, "dl-2") && strstr(out, "risk-b") &&
                      strstr(out, "malformed_json"),
                  "text list: %s", out);
    free(out);
    ck_assert_int_eq(depth(DEAD), 3);
}
END_TEST

START_TEST(dlq_list_filters_select_exactly)
{
    park("f-old", "schema_violation", "w1", 2 * 86400 * 1000LL, NULL, NULL);
    park("f-hour", "malformed_json", "w1", 3600 * 1000, NULL, NULL);
    park("f-min", "schema_violation", "w2", 60 * 1000, NULL, NULL);
    park("f-new", "bad_signature", "w2", 1000, NULL, NULL);
    struct {
        const char *args, *want;
    } cases[] = {
        {"", "f-old,f-hour,f-min,f-new"},
        {"--reason schema_violation", "f-old,f-min"},
        {"--reason oversized", ""},
        {"--payment-id f-hour", "f-hour"},
        {"--older-than 1d", "f-old"},
        {"--older-than 30m", "f-old,f-hour"},
        {"--newer-than 5m", "f-min,f-new"},
        {"--newer-than 2h --older-than 30s", "f-hour,f-min"},
        {"--reason schema_violation --newer-than 1h", "f-min"},
        {"--limit 2", "f-old,f-hour"},
        {"--reason schema_violation --limit 1", "f-old"},
        {"--position 3", "f-min"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *l = list(cases[i].args);
        ck_assert_msg(strcmp(ids(l), cases[i].want) == 0, "list %s: got '%s', want '%s'",
                      cases[i].args, ids(l), cases[i].want);
        json_decref(l);
    }
    ck_assert_int_eq(depth(DEAD), 4);
    char *err;
    free(ctl(2, &err, "dlq list risk --older-than 5x"));
    ck_assert_msg(strstr(err, "30s, 5m, 2h, 1d"), "bad duration: %s", err);
    free(err);
}
END_TEST

START_TEST(dlq_positions_stay_put_across_passes)
{
    /* more than 32: a quorum queue's client returns beyond that in bulk */
    char want[4096] = "";
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof id, "o-%02d", i);
        park(id, "malformed_json", "w", 1000, NULL, NULL);
        size_t n = strlen(want);
        snprintf(want + n, sizeof want - n, "%s%s", i ? "," : "", id);
    }
    for (int pass = 0; pass < 3; pass++) {
        json_t *l = list("");
        ck_assert_msg(strcmp(ids(l), want) == 0, "pass %d: order %s", pass, ids(l));
        json_decref(l);
    }
    /* show by position names the letter list gave that position */
    char *out = ctl(0, NULL, "dlq show risk 37 --json");
    json_t *j = llt_json(out);
    ck_assert_str_eq(jstr(j, "payment_id"), "o-36");
    json_decref(j);
    free(out);
    /* removing letters keeps the order of the rest */
    free(ctl(0, NULL, "dlq purge risk --position 5 --yes"));
    free(ctl(0, NULL, "dlq purge risk --payment-id o-30 --yes"));
    json_t *l = list("");
    ck_assert_int_eq(json_array_size(l), 38);
    ck_assert_str_eq(jstr(json_array_get(l, 3), "payment_id"), "o-03");
    ck_assert_str_eq(jstr(json_array_get(l, 4), "payment_id"), "o-05");
    ck_assert_str_eq(jstr(json_array_get(l, 28), "payment_id"), "o-29");
    ck_assert_str_eq(jstr(json_array_get(l, 29), "payment_id"), "o-31");
    ck_assert_str_eq(jstr(json_array_get(l, 37), "payment_id"), "o-39");
    json_decref(l);
}
END_TEST

START_TEST(dlq_a_queue_deeper_than_one_prefetch_is_read_whole_in_order)
{
    /* 4,500 letters: more than two consumers' worth of prefetch (2,000) */
    enum { N = 4500 };
    char at[MSG_TIME_LEN + 1];
    msg_format_time(now_ms, at);
    for (int i = 0; i < N; i++) {
        char body[64], id[16];
        snprintf(id, sizeof id, "big-%04d", i);
        snprintf(body, sizeof body, "{\"payment_id\":\"%s\"}", id);
        mq_header_t h[] = {{"x-ledgerline-reason", i % 3 ? "malformed_json" : "oversized", 0},
                           {"x-ledgerline-parked-at", at, 0}};
        mq_props_t p = {.message_id = id, .headers = h, .nheaders = 2};
        ck_assert_int_eq(mq_publish(m, "ledgerline.dead", "risk", body, strlen(body), &p, true),
                         LL_OK);
    }
    size_t failed;
    ck_assert_msg(mq_confirm_wait(m, 30000, &failed) == LL_OK, "%s", mq_errstr(m));
    for (int pass = 0; pass < 2; pass++) {
        json_t *l = list("");
        ck_assert_int_eq(json_array_size(l), N);
        for (int i = 0; i < N; i++) {
            char id[16];
            snprintf(id, sizeof id, "big-%04d", i);
            ck_assert_msg(strcmp(jstr(json_array_get(l, (size_t)i), "payment_id"), id) == 0,
                          "pass %d: position %d holds %s", pass, i + 1,
                          jstr(json_array_get(l, (size_t)i), "payment_id"));
        }
        json_decref(l);
    }
    free(ctl(0, NULL, "dlq purge risk --reason oversized --yes"));
    json_t *l = list("--limit 3");
    ck_assert_str_eq(ids(l), "big-0001,big-0002,big-0004");
    json_decref(l);
    ck_assert_int_eq(depth(DEAD), N - N / 3);
}
END_TEST

/* --- letters the broker dead-lettered ------------------------------------ */

START_TEST(dlq_list_reads_broker_dead_letters)
{
    llw_ctl(NULL, "publish --payer a --payee b --amount 7 --currency EUR --payment-id bx-rej");
    mq_delivery_t d;
    bool empty;
    ck_assert_int_eq(mq_get(m, "risk", &d, &empty), LL_OK);
    ck_assert(!empty);
    ck_assert_int_eq(mq_reject(m, d.tag, false), LL_OK); /* dead-letters it: "rejected" */
    mq_delivery_clear(&d);
    size_t want = 1;
    if (quorum()) {
        /* a message that keeps coming back: x-delivery-limit parks it */
        llw_ctl(NULL, "publish --payer a --payee b --amount 7 --currency EUR --payment-id bx-lim");
        for (int i = 0; i < 400 && depth(DEAD) < 2; i++) {
            ck_assert_int_eq(mq_get(m, "risk", &d, &empty), LL_OK);
            if (empty) {
                llw_sleep_ms(20); /* being returned, or dead-lettered by now */
                continue;
            }
            ck_assert_int_eq(mq_nack(m, d.tag, false, true), LL_OK);
            mq_delivery_clear(&d);
        }
        want = 2;
    }
    for (int i = 0; i < 100 && depth(DEAD) < want; i++)
        llw_sleep_ms(50);
    json_t *l = list("");
    ck_assert_msg(json_array_size(l) == want, "letters: %s", ids(l));
    json_t *e = json_array_get(l, 0);
    ck_assert_str_eq(jstr(e, "payment_id"), "bx-rej");
    ck_assert_str_eq(jstr(e, "kind"), "broker");
    ck_assert_str_eq(jstr(e, "reason"), "rejected");
    ck_assert(json_is_null(json_object_get(e, "worker")));
    ck_assert_str_eq(jstr(e, "route_from"), "x-death");
    ck_assert_str_eq(jstr(e, "exchange"), "ledgerline.commands");
    ck_assert_str_eq(jstr(e, "routing_key"), "payment.requested");
    int64_t at;
    ck_assert_int_eq(msg_parse_time(jstr(e, "parked_at"), &at), LL_OK);
    ck_assert_msg(at >= now_ms - 2000 && at <= clock_now_ms() + 1000, "x-death time %s",
                  jstr(e, "parked_at"));
    if (want == 2) {
        e = json_array_get(l, 1);
        ck_assert_str_eq(jstr(e, "payment_id"), "bx-lim");
        ck_assert_str_eq(jstr(e, "reason"), "delivery_limit");
        ck_assert_str_eq(jstr(e, "route_from"), "x-death");
    }
    json_decref(l);
    /* replayed, it goes back where it came from, without x-death (the tap
     * saw the original publishes first) */
    size_t n;
    tap_take(tap, want, 5000, &n, NULL, 0);
    ck_assert_int_eq(n, want);
    free(ctl(0, NULL, "dlq replay risk --reason rejected"));
    char bad[256] = "";
    const char *got = tap_take(tap, 1, 5000, &n, bad, sizeof bad);
    ck_assert_msg(n == 1 && strstr(got, "bx-rej"), "tap got %zu: %s", n, got);
    ck_assert_msg(!bad[0] || strstr(bad, "producer"), "%s", bad); /* no trace header here */
    ck_assert_int_eq(depth(DEAD), want - 1);
}
END_TEST

/* --- show ----------------------------------------------------------------- */

START_TEST(dlq_show_prints_headers_and_body)
{
    park("s-1", "schema_violation", "risk-a", 1000, NULL, NULL);
    park("s-2", "malformed_json", "risk-b", 2000, "ledgerline.commands", "payment.requested");
    char *out = ctl(0, NULL, "dlq show risk 2");
    ck_assert_msg(strstr(out, "x-ledgerline-reason: malformed_json") &&
                      strstr(out, "x-ledgerline-worker: risk-b") &&
                      strstr(out, "x-producer-trace: t-1") &&
                      strstr(out, "{\"payment_id\":\"s-2\",\"amount\":\"twelve\"}") &&
                      strstr(out, "message_id: s-2") && !strstr(out, "s-1"),
                  "show: %s", out);
    free(out);
    out = ctl(0, NULL, "dlq show risk --payment-id s-1 --json");
    json_t *j = llt_json(out);
    ck_assert_str_eq(jstr(j, "reason"), "schema_violation");
    ck_assert_str_eq(jstr(j, "body"), "{\"payment_id\":\"s-1\",\"amount\":\"twelve\"}");
    ck_assert_str_eq(jstr(json_object_get(j, "headers"), "x-ledgerline-worker"), "risk-a");
    ck_assert_str_eq(jstr(json_object_get(j, "properties"), "type"), "payment.requested");
    json_decref(j);
    free(out);
    char *err;
    free(ctl(1, &err, "dlq show risk 3"));
    ck_assert_msg(strstr(err, "no letter at position 3") && strstr(err, "fix:"), "%s", err);
    free(err);
    ck_assert_int_eq(depth(DEAD), 2);
}
END_TEST

/* --- replay ---------------------------------------------------------------- */

START_TEST(dlq_replay_dry_run_changes_nothing)
{
    park("r-1", "schema_violation", "w", 1000, NULL, NULL);
    park("r-2", "malformed_json", "w", 1000, "ledgerline.commands", "payment.requested");
    char *out = ctl(0, NULL, "dlq replay risk --all --dry-run");
    ck_assert_msg(strstr(out, "would replay 1") && strstr(out, "would replay 2") &&
                      strstr(out, "nothing changed"),
                  "dry run: %s", out);
    free(out);
    size_t n;
    tap_take(tap, 0, 500, &n, NULL, 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(depth(DEAD), 2);
    ck_assert_int_eq(depth("risk"), 0);
    json_t *l = list("");
    ck_assert_str_eq(ids(l), "r-1,r-2");
    json_decref(l);
}
END_TEST

START_TEST(dlq_replay_publishes_to_the_original_route_and_removes_only_those)
{
    park("rp-1", "schema_violation", "w", 1000, NULL, NULL); /* older copy: topology route */
    park("rp-2", "malformed_json", "w", 1000, "ledgerline.events", tap_key);
    park("rp-3", "schema_violation", "w", 1000, "ledgerline.commands", "payment.requested");
    park("rp-4", "bad_signature", "w", 1000, "ledgerline.commands", "payment.requested");
    char *out = ctl(0, NULL, "dlq replay risk --reason schema_violation");
    ck_assert_msg(strstr(out, "2 letter(s) replayed"), "replay: %s", out);
    free(out);
    size_t n;
    char bad[256] = "";
    const char *got = tap_take(tap, 2, 5000, &n, bad, sizeof bad);
    ck_assert_msg(n == 2 && strstr(got, "rp-1") && strstr(got, "rp-3"), "tap got %zu: %s", n, got);
    ck_assert_msg(!bad[0], "%s", bad);
    json_t *l = list("");
    ck_assert_str_eq(ids(l), "rp-2,rp-4");
    json_decref(l);
    /* the route of the headers, not the topology's */
    free(ctl(0, NULL, "dlq replay risk --payment-id rp-2"));
    got = tap_take(tap_ev, 1, 5000, &n, bad, sizeof bad);
    ck_assert_msg(n == 1 && strstr(got, "rp-2"), "events tap got %zu: %s", n, got);
    ck_assert_msg(!bad[0], "%s", bad);
    tap_take(tap, 0, 300, &n, NULL, 0);
    ck_assert_int_eq(n, 0);
    l = list("");
    ck_assert_str_eq(ids(l), "rp-4");
    json_decref(l);
    /* nothing selected, nothing done */
    out = ctl(0, NULL, "dlq replay risk --reason oversized");
    ck_assert_msg(strstr(out, "0 letter(s) replayed"), "%s", out);
    free(out);
    ck_assert_int_eq(depth(DEAD), 1);
    /* a route nothing is bound to: the broker returns it, the letter stays */
    park("rp-5", "malformed_json", "w", 1000, "ledgerline.retry", tap_key);
    char *err;
    free(ctl(1, &err, "dlq replay risk --payment-id rp-5"));
    ck_assert_msg(strstr(err, "1 letter(s) not replayed") && strstr(err, "NO_ROUTE") &&
                      strstr(err, "fix:"),
                  "%s", err);
    free(err);
    l = list("");
    ck_assert_str_eq(ids(l), "rp-4,rp-5");
    json_decref(l);
}
END_TEST

START_TEST(dlq_replay_and_purge_need_a_selection)
{
    park("a-1", "schema_violation", "w", 1000, NULL, NULL);
    char *err;
    free(ctl(2, &err, "dlq replay risk"));
    ck_assert_msg(strstr(err, "--all") && strstr(err, "fix:"), "%s", err);
    free(err);
    free(ctl(2, &err, "dlq purge risk --yes"));
    ck_assert_msg(strstr(err, "--all"), "%s", err);
    free(err);
    ck_assert_int_eq(depth(DEAD), 1);
}
END_TEST

/* --- purge ----------------------------------------------------------------- */

START_TEST(dlq_purge_deletes_exactly_the_selected)
{
    park("p-1", "schema_violation", "w", 1000, NULL, NULL);
    park("p-2", "malformed_json", "w", 1000, NULL, NULL);
    park("p-3", "schema_violation", "w", 1000, NULL, NULL);
    park("p-4", "bad_signature", "w", 1000, NULL, NULL);
    char *out = ctl(0, NULL, "dlq purge risk --reason schema_violation --yes");
    ck_assert_msg(strstr(out, "2 letter(s) deleted"), "purge: %s", out);
    free(out);
    json_t *l = list("");
    ck_assert_str_eq(ids(l), "p-2,p-4");
    json_decref(l);
    size_t n;
    tap_take(tap, 0, 300, &n, NULL, 0);
    ck_assert_int_eq(n, 0); /* purge publishes nothing */
    out = ctl(0, NULL, "dlq purge risk.dead --all --yes --json");
    json_t *j = llt_json(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "deleted")), 2);
    json_decref(j);
    free(out);
    ck_assert_int_eq(depth(DEAD), 0);
}
END_TEST

START_TEST(dlq_purge_without_a_terminal_needs_yes)
{
    park("y-1", "schema_violation", "w", 1000, NULL, NULL);
    char *err;
    free(ctl(2, &err, "dlq purge risk --all < /dev/null"));
    ck_assert_msg(strstr(err, "--yes") && strstr(err, "fix:"), "%s", err);
    free(err);
    ck_assert_int_eq(depth(DEAD), 1);
}
END_TEST

START_TEST(dlq_bad_queue_names_the_valid_ones)
{
    char *err;
    free(ctl(2, &err, "dlq list riskk"));
    ck_assert_msg(strstr(err, "riskk") && strstr(err, "risk, payments, settlement") &&
                      strstr(err, "risk.dead") && strstr(err, "fix:"),
                  "%s", err);
    free(err);
    free(ctl(2, &err, "dlq purge events.audit --all --yes"));
    ck_assert_msg(strstr(err, "settlement.dead"), "%s", err);
    free(err);
}
END_TEST

/* --- with a real risk-worker --------------------------------------------- */

static const char *const worker_queues[] = {"risk", DEAD, NULL};
static llw_fixture_t fx;

static void setup_worker(void)
{
    llw_fixture_up(&fx, worker_queues);
}

static void teardown_worker(void)
{
    llw_kill_all();
    llw_purge(fx.m, worker_queues); /* leave no letter to the next suite */
    llw_fixture_down(&fx);
}

static char *keyfile(const char *name, const char *text)
{
    char *path = malloc(128);
    snprintf(path, 128, "/tmp/llt_dlq_%d_%s.keys", (int)getpid(), name);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fputs(text, f);
    fclose(f);
    return path;
}

static void wait_depth(mq_t *mm, const char *queue, uint32_t want)
{
    for (int i = 0; i < 300; i++) {
        uint32_t n = 0, c;
        ck_assert_int_eq(mq_queue_stats(mm, queue, &n, &c), LL_OK);
        if (n == want)
            return;
        llw_sleep_ms(100);
    }
    LLW_ASSERT(0, "%s never held %u messages", queue, want);
}

START_TEST(dlq_replay_of_a_fixed_letter_is_processed)
{
    char *ring = keyfile("ring", "k1 k1-secret-0123456789abcdefghijklmnopqrstuvwxyz\n");
    char *fixed =
        keyfile("fixed", "k1 k1-secret-0123456789abcdefghijklmnopqrstuvwxyz\np9 " P1 "\n");
    char *producer = keyfile("producer", "p9 " P1 "\n");
    char env[256];
    snprintf(env, sizeof env, "LEDGERLINE_SIGNING_REQUEST_KEYS_FILE=%s", ring);
    const char *const extra[] = {env, NULL};
    pid_t w = llw_start_instance(LL_BIN_DIR "/risk-worker", fx.ledger, "dlq-risk-1", extra);
    llw_wait_consuming(fx.m, "risk", 1, 30000);
    /* signed by a producer key the worker does not know yet: parked */
    llw_ctl(fx.ledger,
            "publish --payer alice --payee shop --amount 100 --currency EUR --payment-id dlq-fix "
            "--key-file %s",
            producer);
    llw_ctl(
        fx.ledger,
        "publish --payer alice --payee shop --amount 100 --currency EUR --payment-id dlq-nokey");
    wait_depth(fx.m, DEAD, 2);
    llw_stop_ok(w, 20000, "risk-worker");

    char *out, *err;
    int rc = llt_ctl(&out, &err, fx.ledger, "dlq list risk --json");
    LLW_ASSERT(rc == 0, "list: %s%s", out, err);
    json_t *doc = llt_json(out);
    json_t *l = json_object_get(doc, "letters");
    LLW_ASSERT(json_array_size(l) == 2, "letters: %s", out);
    size_t i;
    json_t *e;
    json_array_foreach(l, i, e)
    {
        LLW_ASSERT(strcmp(jstr(e, "reason"), "bad_signature") == 0, "reason %s", jstr(e, "reason"));
        LLW_ASSERT(strcmp(jstr(e, "worker"), "dlq-risk-1") == 0, "worker %s", jstr(e, "worker"));
        LLW_ASSERT(strcmp(jstr(e, "route_from"), "headers") == 0, "route from %s",
                   jstr(e, "route_from"));
        LLW_ASSERT(strcmp(jstr(e, "exchange"), "ledgerline.commands") == 0 &&
                       strcmp(jstr(e, "routing_key"), "payment.requested") == 0,
                   "route %s %s", jstr(e, "exchange"), jstr(e, "routing_key"));
        int64_t at;
        LLW_ASSERT(msg_parse_time(jstr(e, "parked_at"), &at) == LL_OK &&
                       at >= clock_now_ms() - 120000 && at <= clock_now_ms(),
                   "parked at %s", jstr(e, "parked_at"));
        LLW_ASSERT(strstr(jstr(e, "detail"), "") != NULL, "detail");
    }
    LLW_ASSERT(strcmp(ids(l), "dlq-fix,dlq-nokey") == 0, "order %s", ids(l));
    json_decref(doc);
    free(out);
    free(err);

    /* the fix: the worker trusts the producer's key; replay that letter */
    snprintf(env, sizeof env, "LEDGERLINE_SIGNING_REQUEST_KEYS_FILE=%s", fixed);
    w = llw_start_instance(LL_BIN_DIR "/risk-worker", fx.ledger, "dlq-risk-2", extra);
    llw_wait_consuming(fx.m, "risk", 1, 30000);
    rc = llt_ctl(&out, &err, fx.ledger, "dlq replay risk --payment-id dlq-fix");
    LLW_ASSERT(rc == 0, "replay: %s%s", out, err);
    free(out);
    free(err);
    llw_wait_events(fx.ev, "payment.approved", "dlq-fix", 1, 30000);
    wait_depth(fx.m, DEAD, 1);
    llw_stop_ok(w, 20000, "risk-worker");
    rc = llt_ctl(&out, &err, fx.ledger, "dlq list risk --json");
    LLW_ASSERT(rc == 0 && strstr(out, "dlq-nokey") && !strstr(out, "dlq-fix\""), "left: %s", out);
    free(out);
    free(err);
    LLW_ASSERT(llw_events_count(fx.ev, "payment.approved", "dlq-nokey") == 0,
               "the unsigned request was approved");
    unlink(ring);
    unlink(fixed);
    unlink(producer);
    free(ring);
    free(fixed);
    free(producer);
}
END_TEST

static Suite *dlq_suite(void)
{
    Suite *s = suite_create("dlq");
    TCase *tc = tcase_create("broker");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, dlq_list_shows_each_letter);
    tcase_add_test(tc, dlq_list_filters_select_exactly);
    tcase_add_test(tc, dlq_positions_stay_put_across_passes);
    tcase_add_test(tc, dlq_a_queue_deeper_than_one_prefetch_is_read_whole_in_order);
    tcase_add_test(tc, dlq_list_reads_broker_dead_letters);
    tcase_add_test(tc, dlq_show_prints_headers_and_body);
    tcase_add_test(tc, dlq_replay_dry_run_changes_nothing);
    tcase_add_test(tc, dlq_replay_publishes_to_the_original_route_and_removes_only_those);
    tcase_add_test(tc, dlq_replay_and_purge_need_a_selection);
    tcase_add_test(tc, dlq_purge_deletes_exactly_the_selected);
    tcase_add_test(tc, dlq_purge_without_a_terminal_needs_yes);
    tcase_add_test(tc, dlq_bad_queue_names_the_valid_ones);
    suite_add_tcase(s, tc);
    TCase *tw = tcase_create("risk-worker");
    tcase_add_checked_fixture(tw, setup_worker, teardown_worker);
    tcase_set_timeout(tw, 180);
    tcase_add_test(tw, dlq_replay_of_a_fixed_letter_is_processed);
    suite_add_tcase(s, tw);
    return s;
}

int main(void)
{
    return llt_run_suite(dlq_suite());
}
