/*
 * test_idem.c - the Redis fast path and in-flight guard (common/idem.c,
 * docs/contract.md#idempotency) against a real Redis: the stack's, from
 * LEDGERLINE_REDIS_HOST / _PORT / _PASSWORD(_FILE); a missing variable fails
 * the test, it never skips.
 *
 * idem_claim: a free key is claimed ("P|hash|instance", in-flight TTL) and
 * the item goes on to PostgreSQL; so do our own claim, a redelivery, a "D"
 * with another hash and anything unreadable; a "D" with the same hash is
 * answered with the stored event; a "P" of another instance defers; scopes
 * (ledger id, stage) never answer for each other; Redis down (nothing
 * listening, or a throwaway redis-server stopped under a live client) sends
 * every item to PostgreSQL. idem_done: "D|hash|event_id|rk|body" with the
 * done TTL for PUBLISHED items processed now with an outcome event (not a
 * replayed duplicate), nothing else touched.
 *
 * Every test gets its own key prefix and its own ledger id in its scopes;
 * Redis contents are checked with a raw hiredis connection, not only
 * through the code under test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "batch.h"
#include "clock.h"
#include "idem.h"
#include "kv.h"
#include "ll_redis.h"
#include "ll_test.h"
#include "log.h"
#include "xmalloc.h"

#define TIMEOUT_MS  500
#define INFLIGHT_MS 45000   /* the in-flight TTL the tests pass */
#define DONE_MS     3600000 /* the done TTL the tests pass */
#define STORED_MS   600000  /* TTL of the entries the tests write themselves */
#define MARGIN_MS   15000   /* generous: a TTL read back may be this much lower */

#define OURS   "host-a:101"
#define OTHER  "host-b:202"
#define STAGE  "payment"
#define STAGE2 "risk"

static llr_stack_t rs;
static char prefix[96]; /* kv key prefix of this test only */
static char ledger[17]; /* a ledger id of this test only */
static char ledger2[17];
static char scope[64]; /* "<ledger>:payment" */

/* ---- helpers ------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* n lower-case hex characters derived from `seed` and `salt`. */
static void hex_of(char *out, size_t n, const char *seed, uint64_t salt)
{
    uint64_t h = 1469598103934665603ULL ^ salt;
    for (const char *p = seed; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    for (size_t i = 0; i < n; i++) {
        h = mix(h + i);
        out[i] = "0123456789abcdef"[h & 15];
    }
    out[n] = '\0';
}

/* A payload hash (64 hex) and an event id (32 hex) named by a label. */
static void hash_of(char out[65], const char *label)
{
    hex_of(out, 64, label, 1);
}

static void event_id_of(char out[MSG_EVENT_ID_LEN + 1], const char *label)
{
    hex_of(out, MSG_EVENT_ID_LEN, label, 2);
}

static void stack_conf(void)
{
    static int seq;
    llr_stack(&rs);
    long long now = (long long)clock_now_ms();
    seq++;
    snprintf(prefix, sizeof prefix, "llt:idem:%d:%lld:%d:", (int)getpid(), now, seq);
    char seed[64];
    snprintf(seed, sizeof seed, "%d:%lld:%d", (int)getpid(), now, seq);
    hex_of(ledger, 16, seed, 3);
    hex_of(ledger2, 16, seed, 4);
    snprintf(scope, sizeof scope, "%s:%s", ledger, STAGE);
}

static kv_t *stack_kv(void)
{
    stack_conf();
    return llr_stack_kv(&rs, prefix, TIMEOUT_MS);
}

static redisContext *raw(void)
{
    return llr_stack_raw(&rs);
}

/* The full Redis key idem.c uses for (scope, payment_id), prefix included. */
static void full_key(char *buf, size_t n, const char *sc, const char *payment_id)
{
    snprintf(buf, n, "%sidem:%s:%s", prefix, sc, payment_id);
}

/* The value of key (caller frees), NULL when absent. */
static char *raw_get(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "GET %s", key);
    ck_assert_msg(r != NULL, "raw GET %s: %s", key, c->errstr);
    char *v = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        v = malloc((size_t)r->len + 1);
        memcpy(v, r->str, (size_t)r->len);
        v[r->len] = '\0';
    } else {
        ck_assert_msg(r->type == REDIS_REPLY_NIL, "raw GET %s: reply type %d", key, r->type);
    }
    freeReplyObject(r);
    return v;
}

static long long raw_pttl(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "PTTL %s", key);
    ck_assert_msg(r && r->type == REDIS_REPLY_INTEGER, "raw PTTL %s", key);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void raw_set(redisContext *c, const char *key, const char *val, long long ttl_ms)
{
    redisReply *r = redisCommand(c, "SET %s %b PX %lld", key, val, strlen(val), ttl_ms);
    ck_assert_msg(r && r->type == REDIS_REPLY_STATUS, "raw SET %s", key);
    freeReplyObject(r);
}

/* Asserts key holds exactly `want` (NULL: absent). */
/* Asserts the key's value is `want` (NULL: no key); `rule` (or NULL) is
 * the rule a difference breaks, named first in the failure. */
static void assert_value_rule(redisContext *c, const char *key, const char *want, const char *rule)
{
    char *got = raw_get(c, key);
    if (!want)
        ck_assert_msg(got == NULL, "%s%s%s: want no key, got \"%s\"", rule ? rule : "",
                      rule ? ": " : "", key, got);
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "%s%s%s: want \"%s\", got \"%s\"",
                      rule ? rule : "", rule ? ": " : "", key, want, got ? got : "(absent)");
    free(got);
}

static void assert_value(redisContext *c, const char *key, const char *want)
{
    assert_value_rule(c, key, want, NULL);
}

/* Asserts the key's TTL is ttl_ms or a little less. */
static void assert_ttl_near(redisContext *c, const char *key, long long ttl_ms)
{
    long long t = raw_pttl(c, key);
    ck_assert_msg(t > ttl_ms - MARGIN_MS && t <= ttl_ms, "%s: PTTL %lld, want about %lld", key, t,
                  ttl_ms);
}

/* Deletes every key of this test's prefix (they all have TTLs anyway). */
static void drop_keys(void)
{
    if (!rs.host || !prefix[0])
        return;
    redisContext *c = raw();
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s* COUNT 1000", cursor, prefix);
        ck_assert_msg(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "raw SCAN");
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *d = redisCommand(c, "DEL %s", r->element[1]->element[i]->str);
            freeReplyObject(d);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(c);
}

/* A DECODED item as the stage's decoder leaves it. */
static void item_decoded(item_t *it, const char *payment_id, const char *hash, bool redelivered)
{
    memset(it, 0, sizeof *it);
    snprintf(it->key, sizeof it->key, "%s", payment_id);
    snprintf(it->hash, sizeof it->hash, "%s", hash);
    it->d.redelivered = redelivered;
    item_set_state(it, ITEM_DECODED);
}

static void items_clear(item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        item_clear(&items[i]);
}

/* Not answered: still DECODED, untouched, for the transaction. */
static void assert_to_postgres(const item_t *it, const char *label)
{
    ck_assert_msg(it->state == ITEM_DECODED, "%s: state %s, want decoded (to PostgreSQL)", label,
                  item_state_name(it->state));
    ck_assert_msg(it->verdict == VERDICT_NONE, "%s: verdict %d", label, (int)it->verdict);
    ck_assert_msg(!it->defer, "%s: deferred", label);
    ck_assert_msg(it->ev_id[0] == '\0' && !it->ev_rk && !it->ev_body, "%s: an event was set",
                  label);
}

/* Answered from Redis: a duplicate, COMMITTED, the stored event set exactly. */
static void assert_answered(const item_t *it, const char *label, const char *ev_id, const char *rk,
                            const char *body)
{
    ck_assert_msg(it->state == ITEM_COMMITTED, "%s: state %s, want committed (answered)", label,
                  item_state_name(it->state));
    ck_assert_msg(it->verdict == VERDICT_DUPLICATE, "%s: verdict %d", label, (int)it->verdict);
    ck_assert_msg(!it->defer, "%s: deferred", label);
    ck_assert_msg(!it->park, "%s: parked", label);
    ck_assert_str_eq(it->ev_id, ev_id);
    ck_assert_ptr_nonnull(it->ev_rk);
    ck_assert_ptr_nonnull(it->ev_body);
    ck_assert_str_eq(it->ev_rk, rk);
    ck_assert_str_eq(it->ev_body, body);
    ck_assert_int_eq(it->outbox_id, 0);
}

/* Deferred: COMMITTED, for the retry tier, no verdict and no event. */
static void assert_deferred(const item_t *it, const char *label)
{
    ck_assert_msg(it->state == ITEM_COMMITTED, "%s: state %s, want committed (deferred)", label,
                  item_state_name(it->state));
    ck_assert_msg(it->defer, "%s: not marked for the retry tier", label);
    ck_assert_msg(it->verdict == VERDICT_NONE, "%s: verdict %d", label, (int)it->verdict);
    ck_assert_msg(!it->park, "%s: parked", label);
    ck_assert_msg(it->ev_id[0] == '\0' && !it->ev_rk && !it->ev_body, "%s: an event was set",
                  label);
}

/* "D|hash|event_id|rk|body" into buf. */
static void done_value(char *buf, size_t n, const char *hash, const char *ev_id, const char *rk,
                       const char *body)
{
    snprintf(buf, n, "D|%s|%s|%s|%s", hash, ev_id, rk, body);
}

/* ---- idem_claim: the key is free ------------------------------------------ */

START_TEST(idem_free_key_claims_and_goes_to_postgres)
{
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    enum { N = 3 };
    item_t items[N];
    char hashes[N][65], pids[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(pids[i], sizeof pids[i], "pay-free-%d", i);
        hash_of(hashes[i], pids[i]);
        item_decoded(&items[i], pids[i], hashes[i], false);
    }
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, items, N, INFLIGHT_MS), 0);
    for (int i = 0; i < N; i++) {
        assert_to_postgres(&items[i], pids[i]);
        char key[256], want[256];
        full_key(key, sizeof key, scope, pids[i]);
        snprintf(want, sizeof want, "P|%s|%s", hashes[i], OURS);
        assert_value(c, key, want);
        assert_ttl_near(c, key, INFLIGHT_MS);
    }
    /* the claim is under exactly "<prefix>idem:<ledger>:<stage>:<payment_id>" */
    char exact[256];
    snprintf(exact, sizeof exact, "%sidem:%s:%s:pay-free-0", prefix, ledger, STAGE);
    char *v = raw_get(c, exact);
    ck_assert_ptr_nonnull(v);
    ck_assert(strncmp(v, "P|", 2) == 0);
    free(v);
    items_clear(items, N);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* ---- idem_claim: our own claim, redeliveries -------------------------------- */

typedef struct {
    const char *label;
    const char *owner;  /* the instance of the "P" already there; NULL: key free */
    bool same_hash;     /* the "P" holds the item's hash */
    bool redelivered;   /* d.redelivered of the item */
    bool claimed_by_us; /* afterwards the key holds our "P" (else: unchanged) */
} claim_case_t;

static const claim_case_t own_cases[] = {
    {"our claim, same hash", OURS, true, false, false},
    {"our claim, another hash", OURS, false, false, false},
    {"our claim, redelivered", OURS, true, true, false},
};

/* The key holds our own claim (a rollback and retry, a redelivery to us):
 * the item goes to PostgreSQL, the claim stays as it was. */
START_TEST(idem_own_claim_goes_to_postgres)
{
    const claim_case_t *tc = &own_cases[_i];
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    char hash[65], prior[65], key[256], stored[256];
    hash_of(hash, "own");
    hash_of(prior, tc->same_hash ? "own" : "own-earlier");
    full_key(key, sizeof key, scope, "pay-own");
    snprintf(stored, sizeof stored, "P|%s|%s", prior, tc->owner);
    raw_set(c, key, stored, STORED_MS);

    item_t it;
    item_decoded(&it, "pay-own", hash, tc->redelivered);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, &it, 1, INFLIGHT_MS), 0);
    assert_to_postgres(&it, tc->label);
    assert_value(c, key, stored); /* SET NX changed nothing */
    ck_assert_int_gt(raw_pttl(c, key), INFLIGHT_MS);
    item_clear(&it);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* An instance name longer than any fixed buffer is stored whole, so the
 * worker still recognises its own claim (a cut one would look like another
 * instance's and defer its own payment). */
START_TEST(idem_a_long_instance_name_is_stored_whole)
{
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    char hash[65], key[256], inst[401];
    memset(inst, 'i', sizeof inst - 1);
    inst[sizeof inst - 1] = '\0';
    hash_of(hash, "long-instance");
    full_key(key, sizeof key, scope, "pay-long-instance");

    item_t it;
    item_decoded(&it, "pay-long-instance", hash, false);
    ck_assert_uint_eq(idem_claim(kv, scope, inst, &it, 1, INFLIGHT_MS), 0);
    assert_to_postgres(&it, "long instance, free key");
    item_clear(&it);
    char *want = ll_xasprintf("P|%s|%s", hash, inst);
    assert_value(c, key, want);
    free(want);

    item_decoded(&it, "pay-long-instance", hash, false);
    ck_assert_uint_eq(idem_claim(kv, scope, inst, &it, 1, INFLIGHT_MS), 0);
    assert_to_postgres(&it, "long instance, its own claim");
    ck_assert(!it.defer);
    item_clear(&it);
    redisFree(c);
    kv_free(kv);
}
END_TEST

static const claim_case_t redelivery_cases[] = {
    {"redelivered, key free", NULL, true, true, true},
    {"redelivered, P of another instance, same hash", OTHER, true, true, false},
    {"redelivered, P of another instance, another hash", OTHER, false, true, false},
};

/* A redelivered message whose first holder most likely died: to
 * PostgreSQL, never deferred; a free key is claimed for us. */
START_TEST(idem_redelivery_goes_to_postgres)
{
    const claim_case_t *tc = &redelivery_cases[_i];
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    char hash[65], prior[65], key[256], stored[256] = "";
    hash_of(hash, "redelivered");
    hash_of(prior, tc->same_hash ? "redelivered" : "redelivered-earlier");
    full_key(key, sizeof key, scope, "pay-redelivered");
    if (tc->owner) {
        snprintf(stored, sizeof stored, "P|%s|%s", prior, tc->owner);
        raw_set(c, key, stored, STORED_MS);
    }

    item_t it;
    item_decoded(&it, "pay-redelivered", hash, tc->redelivered);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, &it, 1, INFLIGHT_MS), 0);
    assert_to_postgres(&it, tc->label);
    if (tc->claimed_by_us) {
        char want[256];
        snprintf(want, sizeof want, "P|%s|%s", hash, OURS);
        assert_value(c, key, want);
        assert_ttl_near(c, key, INFLIGHT_MS);
    } else {
        assert_value(c, key, stored);
        ck_assert_int_gt(raw_pttl(c, key), INFLIGHT_MS);
    }
    item_clear(&it);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* ---- idem_claim: "D" -------------------------------------------------------- */

typedef struct {
    const char *label;
    const char *rk;
    const char *body;
    bool redelivered;
} done_case_t;

static const done_case_t done_cases[] = {
    {"plain event", "payment.accepted", "{\"payment_id\":\"pay-done\",\"amount\":1250}", false},
    {"body with separators", "payment.accepted", "{\"note\":\"a|b||c|\",\"x\":\"D|P|\"}", false},
    {"one-byte body", "r", "x", false},
    {"redelivered: the outcome is known", "payment.accepted", "{\"payment_id\":\"pay-done\"}",
     true},
};

/* "D" with the same hash: a duplicate answered without database work, the
 * stored event (event_id, routing key, body) set exactly; the entry and
 * its TTL are left as they were. */
START_TEST(idem_done_entry_same_hash_is_answered)
{
    const done_case_t *tc = &done_cases[_i];
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    char hash[65], ev_id[MSG_EVENT_ID_LEN + 1], key[256], stored[1024];
    hash_of(hash, "done");
    event_id_of(ev_id, tc->label);
    full_key(key, sizeof key, scope, "pay-done");
    done_value(stored, sizeof stored, hash, ev_id, tc->rk, tc->body);
    raw_set(c, key, stored, STORED_MS);

    item_t it;
    item_decoded(&it, "pay-done", hash, tc->redelivered);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, &it, 1, INFLIGHT_MS), 1);
    assert_answered(&it, tc->label, ev_id, tc->rk, tc->body);
    assert_value(c, key, stored);
    ck_assert_int_gt(raw_pttl(c, key), INFLIGHT_MS);
    item_clear(&it);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* "D" with another hash: a conflict, which PostgreSQL decides (it has the
 * first payload); the entry is not replaced. */
START_TEST(idem_done_entry_other_hash_goes_to_postgres)
{
    bool redelivered = _i == 1;
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    char hash[65], first[65], ev_id[MSG_EVENT_ID_LEN + 1], key[256], stored[512];
    hash_of(hash, "conflict-now");
    hash_of(first, "conflict-first");
    event_id_of(ev_id, "conflict");
    full_key(key, sizeof key, scope, "pay-conflict");
    done_value(stored, sizeof stored, first, ev_id, "payment.accepted", "{\"amount\":1}");
    raw_set(c, key, stored, STORED_MS);

    item_t it;
    item_decoded(&it, "pay-conflict", hash, redelivered);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, &it, 1, INFLIGHT_MS), 0);
    assert_to_postgres(&it, redelivered ? "conflict, redelivered" : "conflict");
    assert_value(c, key, stored);
    item_clear(&it);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* ---- idem_claim: unreadable values ------------------------------------------ */

/* {H} is the item's own hash, {E} a well-formed event id: each value is
 * one defect away from one idem.c would act on. */
static const char *const garbage[] = {
    "",
    "garbage",
    "D",
    "D|",
    "D|{H}",
    "D|{H}|{E}",
    "D|{H}|{E}|payment.accepted",
    "D|{H}|{E}1|payment.accepted|{}",             /* event id of 33 */
    "D|{H}|0123456789abcdef|payment.accepted|{}", /* event id of 16 */
    "D|{H}||payment.accepted|{}",                 /* no event id */
    "D|{H}|{E}||{}",                              /* empty routing key */
    "D|{H}|{E}|payment.accepted|",                /* empty body */
    "d|{H}|{E}|payment.accepted|{}",              /* lower case */
    "X|{H}|{E}|payment.accepted|{}",
    "P",
    "P|{H}", /* a claim without an owner */
    "p|{H}|" OTHER,
    "DD|{H}|{E}|payment.accepted|{}",
    " D|{H}|{E}|payment.accepted|{}",
};

/* Replaces {H} and {E} in tmpl. */
static void expand(char *out, size_t n, const char *tmpl, const char *hash, const char *ev_id)
{
    size_t o = 0;
    for (const char *p = tmpl; *p && o + 1 < n;) {
        const char *sub = NULL;
        if (strncmp(p, "{H}", 3) == 0)
            sub = hash;
        else if (strncmp(p, "{E}", 3) == 0)
            sub = ev_id;
        if (sub) {
            o += (size_t)snprintf(out + o, n - o, "%s", sub);
            p += 3;
        } else {
            out[o++] = *p++;
        }
    }
    out[o < n ? o : n - 1] = '\0';
}

/* Anything idem.c cannot read goes to PostgreSQL, untouched. */
START_TEST(idem_garbage_goes_to_postgres)
{
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    char hash[65], ev_id[MSG_EVENT_ID_LEN + 1], key[256], stored[512];
    hash_of(hash, "garbage");
    event_id_of(ev_id, "garbage");
    full_key(key, sizeof key, scope, "pay-garbage");
    expand(stored, sizeof stored, garbage[_i], hash, ev_id);
    raw_set(c, key, stored, STORED_MS);

    item_t it;
    item_decoded(&it, "pay-garbage", hash, false);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, &it, 1, INFLIGHT_MS), 0);
    assert_to_postgres(&it, stored);
    assert_value(c, key, stored);
    item_clear(&it);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* Values idem.c cannot GET into its buffer: (0) a well-formed "D" with the
 * same hash, larger than its value buffer (MSG_BODY_MAX * 2 + 256), (1) a
 * key of another type (a list: GET answers WRONGTYPE). To PostgreSQL; the
 * key is left as it was. Another payment's "P" of another instance is read
 * just before it in the same batch: what was read for it must not decide
 * for the unreadable one. */
START_TEST(idem_unreadable_value_goes_to_postgres)
{
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    char hash[65], ev_id[MSG_EVENT_ID_LEN + 1], key[256];
    hash_of(hash, "unreadable");
    event_id_of(ev_id, "unreadable");
    full_key(key, sizeof key, scope, "pay-unreadable");
    char *stored = NULL;
    if (_i == 0) {
        size_t blen = MSG_BODY_MAX * 3;
        char *body = malloc(blen + 1);
        memset(body, 'x', blen);
        body[blen] = '\0';
        size_t vn = blen + 256;
        stored = malloc(vn);
        done_value(stored, vn, hash, ev_id, "payment.accepted", body);
        free(body);
        raw_set(c, key, stored, STORED_MS);
    } else {
        redisReply *r = redisCommand(c, "RPUSH %s D|%s", key, hash);
        ck_assert_msg(r && r->type == REDIS_REPLY_INTEGER, "raw RPUSH");
        freeReplyObject(r);
        r = redisCommand(c, "PEXPIRE %s %d", key, STORED_MS);
        freeReplyObject(r);
    }

    char before[256], claim[256];
    full_key(before, sizeof before, scope, "pay-before");
    snprintf(claim, sizeof claim, "P|%s|%s", hash, OTHER);
    raw_set(c, before, claim, STORED_MS);

    item_t items[2];
    item_decoded(&items[0], "pay-before", hash, false);
    item_decoded(&items[1], "pay-unreadable", hash, false);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, items, 2, INFLIGHT_MS), 1);
    assert_deferred(&items[0], "in flight elsewhere, just before");
    assert_to_postgres(&items[1], _i == 0 ? "oversized D" : "a list");
    if (stored) {
        assert_value(c, key, stored);
    } else {
        redisReply *r = redisCommand(c, "LLEN %s", key);
        ck_assert_msg(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "the list changed");
        freeReplyObject(r);
    }
    ck_assert(kv_is_up(kv)); /* an error reply is not an outage */
    items_clear(items, 2);
    free(stored);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* ---- idem_claim: in flight elsewhere ---------------------------------------- */

static const claim_case_t elsewhere_cases[] = {
    {"P of another instance, same hash", OTHER, true, false, false},
    {"P of another instance, another hash", OTHER, false, false, false},
    {"P of an instance our name is a prefix of", OURS "0", true, false, false},
    {"P of an instance that is a prefix of ours", "host-a:10", true, false, false},
    {"P of an instance with separators in its name", "host|b:7", true, false, false},
};

/* A "P" of another instance on a first delivery: in flight elsewhere, so
 * deferred (COMMITTED, defer set for the retry tier); the other claim and
 * its TTL stay as they were; the log names the holder. */
START_TEST(idem_inflight_elsewhere_is_deferred)
{
    const claim_case_t *tc = &elsewhere_cases[_i];
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    char hash[65], prior[65], key[256], stored[256];
    hash_of(hash, "elsewhere");
    hash_of(prior, tc->same_hash ? "elsewhere" : "elsewhere-other");
    full_key(key, sizeof key, scope, "pay-elsewhere");
    snprintf(stored, sizeof stored, "P|%s|%s", prior, tc->owner);
    raw_set(c, key, stored, STORED_MS);

    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *cap = open_memstream(&logbuf, &loglen);
    ck_assert_ptr_nonnull(cap);
    log_set_output(cap);
    item_t it;
    item_decoded(&it, "pay-elsewhere", hash, false);
    size_t got = idem_claim(kv, scope, OURS, &it, 1, INFLIGHT_MS);
    log_set_output(NULL);
    fclose(cap);

    ck_assert_uint_eq(got, 1);
    assert_deferred(&it, tc->label);
    assert_value(c, key, stored);
    ck_assert_int_gt(raw_pttl(c, key), INFLIGHT_MS);
    ck_assert_msg(strstr(logbuf, tc->owner) && strstr(logbuf, "pay-elsewhere"),
                  "no log line naming the holder: %s", logbuf);
    free(logbuf);
    item_clear(&it);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* ---- idem_claim: scopes ----------------------------------------------------- */

/* An entry under "<ledger>:<stage>" never answers or defers under another
 * ledger id or another stage; there the item is claimed afresh. */
START_TEST(idem_scope_isolates_ledgers_and_stages)
{
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    char other_ledger[64], other_stage[64], hash[65], ev_id[MSG_EVENT_ID_LEN + 1];
    snprintf(other_ledger, sizeof other_ledger, "%s:%s", ledger2, STAGE);
    snprintf(other_stage, sizeof other_stage, "%s:%s", ledger, STAGE2);
    const char *others[] = {other_ledger, other_stage};
    hash_of(hash, "scoped");
    event_id_of(ev_id, "scoped");

    /* under `scope`: a done entry for pay-s-done, another's claim on pay-s-inflight */
    char kdone[256], kflight[256], vdone[512], vflight[256];
    full_key(kdone, sizeof kdone, scope, "pay-s-done");
    full_key(kflight, sizeof kflight, scope, "pay-s-inflight");
    done_value(vdone, sizeof vdone, hash, ev_id, "payment.accepted", "{\"s\":1}");
    snprintf(vflight, sizeof vflight, "P|%s|%s", hash, OTHER);
    raw_set(c, kdone, vdone, STORED_MS);
    raw_set(c, kflight, vflight, STORED_MS);

    for (size_t s = 0; s < 2; s++) {
        item_t items[2];
        item_decoded(&items[0], "pay-s-done", hash, false);
        item_decoded(&items[1], "pay-s-inflight", hash, false);
        ck_assert_uint_eq(idem_claim(kv, others[s], OURS, items, 2, INFLIGHT_MS), 0);
        assert_to_postgres(&items[0], others[s]);
        assert_to_postgres(&items[1], others[s]);
        char want[256];
        snprintf(want, sizeof want, "P|%s|%s", hash, OURS);
        for (int i = 0; i < 2; i++) {
            char k[256];
            full_key(k, sizeof k, others[s], items[i].key);
            assert_value(c, k, want);
            assert_ttl_near(c, k, INFLIGHT_MS);
        }
        items_clear(items, 2);
    }
    /* the original scope's entries are untouched, and still act there */
    assert_value(c, kdone, vdone);
    assert_value(c, kflight, vflight);
    item_t items[2];
    item_decoded(&items[0], "pay-s-done", hash, false);
    item_decoded(&items[1], "pay-s-inflight", hash, false);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, items, 2, INFLIGHT_MS), 2);
    assert_answered(&items[0], "original scope", ev_id, "payment.accepted", "{\"s\":1}");
    assert_deferred(&items[1], "original scope");
    items_clear(items, 2);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* ---- idem_claim: Redis down ------------------------------------------------- */

enum { DOWN_N = 4 };

/* A batch that a live Redis would partly answer and defer (see the
 * entries set on the throwaway server): with Redis down all of it must
 * go to PostgreSQL. */
static void down_batch(item_t items[DOWN_N], char hashes[DOWN_N][65])
{
    const char *pids[DOWN_N] = {"pay-down-free", "pay-down-done", "pay-down-elsewhere",
                                "pay-down-redelivered"};
    for (int i = 0; i < DOWN_N; i++) {
        hash_of(hashes[i], pids[i]);
        item_decoded(&items[i], pids[i], hashes[i], i == DOWN_N - 1);
    }
}

static void assert_down_claim(kv_t *kv, const char *label)
{
    item_t items[DOWN_N];
    char hashes[DOWN_N][65];
    down_batch(items, hashes);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, items, DOWN_N, INFLIGHT_MS), 0);
    for (int i = 0; i < DOWN_N; i++)
        assert_to_postgres(&items[i], label);
    /* idem_done with Redis down: best effort, nothing happens */
    char ev_id[MSG_EVENT_ID_LEN + 1];
    event_id_of(ev_id, "down");
    item_set_state(&items[0], ITEM_BATCHED);
    item_set_state(&items[0], ITEM_COMMITTED);
    item_set_state(&items[0], ITEM_PUBLISHED);
    items[0].verdict = VERDICT_NEW;
    item_set_event(&items[0], ev_id, strdup("payment.accepted"), strdup("{}"));
    idem_done(kv, scope, items, DOWN_N, DONE_MS);
    ck_assert_int_eq(items[0].state, ITEM_PUBLISHED);
    ck_assert_str_eq(items[0].ev_body, "{}");
    items_clear(items, DOWN_N);
}

/* Redis down: every item goes to PostgreSQL, idem_claim returns 0, nothing
 * crashes; (0) nothing listens on the port, (1) a live client whose server
 * is stopped under it, (2) no Redis configured (kv NULL). */
START_TEST(idem_redis_down_sends_all_to_postgres)
{
    stack_conf(); /* prefix, scope */
    kv_t *kv = NULL;
    if (_i == 0) {
        int p = llr_free_port();
        ck_assert_int_eq(kv_open(&kv, "127.0.0.1", p, NULL, 0, TIMEOUT_MS, prefix), LL_OK);
        ck_assert(!kv_is_up(kv));
        assert_down_claim(kv, "nothing listens");
        assert_down_claim(kv, "nothing listens, again (backoff)");
        ck_assert(!kv_is_up(kv));
    } else if (_i == 1) {
        int p = llr_free_port();
        llr_start(p);
        ck_assert_int_eq(kv_open(&kv, "127.0.0.1", p, NULL, 0, TIMEOUT_MS, prefix), LL_OK);
        ck_assert_msg(kv_is_up(kv), "%s", kv_errstr(kv));
        /* entries that would answer and defer while it is up */
        item_t items[DOWN_N];
        char hashes[DOWN_N][65], ev_id[MSG_EVENT_ID_LEN + 1], v[512];
        down_batch(items, hashes);
        event_id_of(ev_id, "down-done");
        done_value(v, sizeof v, hashes[1], ev_id, "payment.accepted", "{}");
        char k[256];
        snprintf(k, sizeof k, "idem:%s:pay-down-done", scope);
        ck_assert_int_eq(kv_set(kv, k, v, STORED_MS), LL_OK);
        snprintf(k, sizeof k, "idem:%s:pay-down-elsewhere", scope);
        snprintf(v, sizeof v, "P|%s|%s", hashes[2], OTHER);
        ck_assert_int_eq(kv_set(kv, k, v, STORED_MS), LL_OK);
        /* ... which they do, while it is up */
        ck_assert_uint_eq(idem_claim(kv, scope, OURS, items, DOWN_N, INFLIGHT_MS), 2);
        assert_to_postgres(&items[0], "up: free");
        assert_answered(&items[1], "up: done", ev_id, "payment.accepted", "{}");
        assert_deferred(&items[2], "up: elsewhere");
        assert_to_postgres(&items[3], "up: redelivered");
        items_clear(items, DOWN_N);

        llr_stop();
        ck_assert(kv_is_up(kv)); /* it does not know yet */
        assert_down_claim(kv, "server stopped");
        ck_assert(!kv_is_up(kv));
        assert_down_claim(kv, "server stopped, again (backoff)");
    } else {
        assert_down_claim(NULL, "no Redis configured");
    }
    kv_free(kv);
    llr_stop();
}
END_TEST

/* ---- idem_done -------------------------------------------------------------- */

typedef struct {
    const char *label;
    item_state_t state; /* reached through the legal transitions */
    item_verdict_t verdict;
    bool event;   /* carries an event */
    bool no_pid;  /* payment_id "" (unreadable) */
    bool defer;   /* deferred to the retry tier */
    bool written; /* want "D|..." with the done TTL; else the key untouched */
} done_row_t;

static const done_row_t done_rows[] = {
    {"published, new", ITEM_PUBLISHED, VERDICT_NEW, true, false, false, true},
    /* not again: the record's TTL counts from the first processing, so it
     * never outlives the processed row (docs/ledger.md#retention) */
    {"published, duplicate (replayed)", ITEM_PUBLISHED, VERDICT_DUPLICATE, true, false, false,
     false},
    {"published, rejected", ITEM_PUBLISHED, VERDICT_REJECT, true, false, false, false},
    {"published, deferred", ITEM_PUBLISHED, VERDICT_NONE, false, false, true, false},
    {"published, no verdict but an event", ITEM_PUBLISHED, VERDICT_NONE, true, false, false, false},
    {"published, new, no event", ITEM_PUBLISHED, VERDICT_NEW, false, false, false, false},
    {"published, new, no payment_id", ITEM_PUBLISHED, VERDICT_NEW, true, true, false, false},
    {"committed, new (not yet published)", ITEM_COMMITTED, VERDICT_NEW, true, false, false, false},
    {"committed, duplicate (not yet published)", ITEM_COMMITTED, VERDICT_DUPLICATE, true, false,
     false, false},
    {"acked, new", ITEM_ACKED, VERDICT_NEW, true, false, false, false},
    {"decoded", ITEM_DECODED, VERDICT_NONE, false, false, false, false},
    {"batched, new", ITEM_BATCHED, VERDICT_NEW, true, false, false, false},
    {"published, new, body with separators", ITEM_PUBLISHED, VERDICT_NEW, true, false, false, true},
};

#define DONE_ROWS (sizeof done_rows / sizeof done_rows[0])

static void advance(item_t *it, item_state_t to)
{
    static const item_state_t path[] = {ITEM_DECODED, ITEM_BATCHED, ITEM_COMMITTED, ITEM_PUBLISHED,
                                        ITEM_ACKED};
    for (size_t i = 0; i < sizeof path / sizeof path[0] && it->state != to; i++)
        if (path[i] > it->state)
            item_set_state(it, path[i]);
    ck_assert_int_eq(it->state, to);
}

/* One batch of every kind of item: "D|hash|event_id|rk|body" with the done
 * TTL for the PUBLISHED ones processed now with an outcome event, over our
 * claim; every other key (a replayed duplicate's too) keeps its value and
 * TTL. */
START_TEST(idem_done_records_published_outcomes)
{
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    item_t items[DONE_ROWS];
    char hashes[DONE_ROWS][65], claims[DONE_ROWS][256], bodies[DONE_ROWS][128];
    char evs[DONE_ROWS][MSG_EVENT_ID_LEN + 1];
    for (size_t i = 0; i < DONE_ROWS; i++) {
        const done_row_t *r = &done_rows[i];
        char pid[32];
        snprintf(pid, sizeof pid, "pay-d%zu", i);
        hash_of(hashes[i], r->label);
        event_id_of(evs[i], r->label);
        snprintf(bodies[i], sizeof bodies[i], "{\"payment_id\":\"%s\",\"n\":\"%zu|x|\"}", pid, i);
        memset(&items[i], 0, sizeof items[i]);
        snprintf(items[i].key, sizeof items[i].key, "%s", r->no_pid ? "" : pid);
        snprintf(items[i].hash, sizeof items[i].hash, "%s", hashes[i]);
        advance(&items[i], r->state);
        items[i].verdict = r->verdict;
        items[i].defer = r->defer;
        if (r->event)
            item_set_event(&items[i], evs[i], strdup("payment.accepted"), strdup(bodies[i]));
        /* our claim, as idem_claim left it */
        char key[256];
        full_key(key, sizeof key, scope, items[i].key);
        snprintf(claims[i], sizeof claims[i], "P|%s|%s", hashes[i], OURS);
        if (!r->no_pid)
            raw_set(c, key, claims[i], STORED_MS);
    }
    idem_done(kv, scope, items, DONE_ROWS, DONE_MS);

    for (size_t i = 0; i < DONE_ROWS; i++) {
        const done_row_t *r = &done_rows[i];
        char key[256];
        full_key(key, sizeof key, scope, items[i].key);
        if (r->no_pid) {
            assert_value(c, key, NULL); /* "idem:<scope>:" never written */
        } else if (r->written) {
            char want[512];
            done_value(want, sizeof want, hashes[i], evs[i], "payment.accepted", bodies[i]);
            assert_value(c, key, want);
            assert_ttl_near(c, key, DONE_MS);
        } else {
            char rule[256];
            snprintf(rule, sizeof rule,
                     "%s: idem_done records only outcomes processed now, so Redis never "
                     "outlives the processed row; it must leave this claim as it was",
                     r->label);
            assert_value_rule(c, key, claims[i], rule);
            long long t = raw_pttl(c, key);
            ck_assert_msg(t > 0 && t <= STORED_MS, "%s: PTTL %lld changed", r->label, t);
        }
        /* the items themselves are not changed */
        ck_assert_int_eq(items[i].state, r->state);
        ck_assert_int_eq(items[i].verdict, r->verdict);
    }
    items_clear(items, DONE_ROWS);
    redisFree(c);
    kv_free(kv);
}
END_TEST

/* What idem_done writes, idem_claim reads back: a later duplicate (first
 * delivery, another instance) is answered with the very same event; the
 * same payment_id with another payload goes to PostgreSQL. */
START_TEST(idem_done_then_claim_replays_the_event)
{
    kv_t *kv = stack_kv();
    char hash[65], other[65], ev_id[MSG_EVENT_ID_LEN + 1];
    const char *body = "{\"payment_id\":\"pay-rt\",\"memo\":\"a|b\",\"amount\":\"12.50\"}";
    hash_of(hash, "roundtrip");
    hash_of(other, "roundtrip-other");
    event_id_of(ev_id, "roundtrip");

    item_t it;
    item_decoded(&it, "pay-rt", hash, false);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, &it, 1, INFLIGHT_MS), 0);
    item_set_state(&it, ITEM_BATCHED);
    item_set_state(&it, ITEM_COMMITTED);
    it.verdict = VERDICT_NEW;
    item_set_event(&it, ev_id, strdup("payment.accepted"), strdup(body));
    item_set_state(&it, ITEM_PUBLISHED);
    idem_done(kv, scope, &it, 1, DONE_MS);
    item_clear(&it);

    item_t again[2];
    item_decoded(&again[0], "pay-rt", hash, false);
    item_decoded(&again[1], "pay-rt", other, false);
    ck_assert_uint_eq(idem_claim(kv, scope, OTHER, again, 2, INFLIGHT_MS), 1);
    assert_answered(&again[0], "duplicate", ev_id, "payment.accepted", body);
    assert_to_postgres(&again[1], "conflict");
    items_clear(again, 2);
    kv_free(kv);
}
END_TEST

/* ---- idem_claim: a mixed batch ---------------------------------------------- */

typedef enum { GOES_PG, GOES_ANSWER, GOES_DEFER, GOES_UNTOUCHED } fate_t;

typedef enum {
    HAS_NOTHING,
    HAS_OUR_P,
    HAS_OTHER_P,
    HAS_D_SAME,
    HAS_D_OTHER,
    HAS_GARBAGE,
} holds_t;

typedef struct {
    const char *payment_id;
    holds_t holds;
    bool redelivered;
    bool rejected; /* COMMITTED by the codec before idem_claim: not DECODED */
    fate_t want;
} mixed_row_t;

static const mixed_row_t mixed[] = {
    {"pay-m-free", HAS_NOTHING, false, false, GOES_PG},
    {"pay-m-done", HAS_D_SAME, false, false, GOES_ANSWER},
    {"pay-m-ours", HAS_OUR_P, false, false, GOES_PG},
    {"pay-m-elsewhere", HAS_OTHER_P, false, false, GOES_DEFER},
    {"pay-m-conflict", HAS_D_OTHER, false, false, GOES_PG},
    {"pay-m-redelivered", HAS_OTHER_P, true, false, GOES_PG},
    {"pay-m-garbage", HAS_GARBAGE, false, false, GOES_PG},
    {"pay-m-rejected", HAS_D_SAME, false, true, GOES_UNTOUCHED},
    {"pay-m-rejected-free", HAS_NOTHING, false, true, GOES_UNTOUCHED},
    {"pay-m-done2", HAS_D_SAME, true, false, GOES_ANSWER},
    {"pay-m-elsewhere2", HAS_OTHER_P, false, false, GOES_DEFER},
    {"pay-m-free", HAS_NOTHING, false, false, GOES_PG}, /* twice in the batch */
    {"pay-m-done3", HAS_D_SAME, false, false, GOES_ANSWER},
};

#define MIXED_ROWS (sizeof mixed / sizeof mixed[0])

/* The return value is the number of items answered or deferred; items that
 * are not DECODED are neither looked at, nor claimed, nor counted. */
START_TEST(idem_claim_counts_answered_and_deferred)
{
    kv_t *kv = stack_kv();
    redisContext *c = raw();
    item_t items[MIXED_ROWS];
    char hashes[MIXED_ROWS][65], evs[MIXED_ROWS][MSG_EVENT_ID_LEN + 1];
    char stored[MIXED_ROWS][512];
    size_t want = 0;
    for (size_t i = 0; i < MIXED_ROWS; i++) {
        const mixed_row_t *r = &mixed[i];
        hash_of(hashes[i], r->payment_id);
        event_id_of(evs[i], r->payment_id);
        char key[256], other[65];
        full_key(key, sizeof key, scope, r->payment_id);
        hash_of(other, "someone else's payload");
        stored[i][0] = '\0';
        switch (r->holds) {
        case HAS_NOTHING:
            break;
        case HAS_OUR_P:
            snprintf(stored[i], sizeof stored[i], "P|%s|%s", hashes[i], OURS);
            break;
        case HAS_OTHER_P:
            snprintf(stored[i], sizeof stored[i], "P|%s|%s", hashes[i], OTHER);
            break;
        case HAS_D_SAME:
            done_value(stored[i], sizeof stored[i], hashes[i], evs[i], "payment.accepted",
                       r->payment_id);
            break;
        case HAS_D_OTHER:
            done_value(stored[i], sizeof stored[i], other, evs[i], "payment.accepted", "{}");
            break;
        case HAS_GARBAGE:
            snprintf(stored[i], sizeof stored[i], "D|%s|short|payment.accepted|{}", hashes[i]);
            break;
        }
        if (stored[i][0])
            raw_set(c, key, stored[i], STORED_MS);
        if (r->rejected) {
            memset(&items[i], 0, sizeof items[i]);
            snprintf(items[i].key, sizeof items[i].key, "%s", r->payment_id);
            snprintf(items[i].hash, sizeof items[i].hash, "%s", hashes[i]);
            items[i].verdict = VERDICT_REJECT;
            items[i].park = true;
            item_set_state(&items[i], ITEM_COMMITTED);
        } else {
            item_decoded(&items[i], r->payment_id, hashes[i], r->redelivered);
        }
        want += r->want == GOES_ANSWER || r->want == GOES_DEFER;
    }
    ck_assert_uint_eq(want, 5);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, items, MIXED_ROWS, INFLIGHT_MS), want);

    for (size_t i = 0; i < MIXED_ROWS; i++) {
        const mixed_row_t *r = &mixed[i];
        char key[256];
        full_key(key, sizeof key, scope, r->payment_id);
        switch (r->want) {
        case GOES_PG:
            assert_to_postgres(&items[i], r->payment_id);
            break;
        case GOES_ANSWER:
            assert_answered(&items[i], r->payment_id, evs[i], "payment.accepted", r->payment_id);
            break;
        case GOES_DEFER:
            assert_deferred(&items[i], r->payment_id);
            break;
        case GOES_UNTOUCHED:
            ck_assert_int_eq(items[i].state, ITEM_COMMITTED);
            ck_assert_int_eq(items[i].verdict, VERDICT_REJECT);
            ck_assert(!items[i].defer);
            ck_assert_ptr_null(items[i].ev_body);
            break;
        }
        if (r->holds == HAS_NOTHING && r->want == GOES_PG) {
            char claim[256];
            snprintf(claim, sizeof claim, "P|%s|%s", hashes[i], OURS);
            assert_value(c, key, claim);
        } else {
            assert_value(c, key, stored[i][0] ? stored[i] : NULL);
        }
    }
    /* nothing DECODED: nothing to do, nothing written */
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, items, 0, INFLIGHT_MS), 0);
    ck_assert(mixed[7].rejected && mixed[8].rejected);
    ck_assert_uint_eq(idem_claim(kv, scope, OURS, &items[7], 2, INFLIGHT_MS), 0);
    char kfree[256];
    full_key(kfree, sizeof kfree, scope, mixed[8].payment_id);
    assert_value(c, kfree, NULL);
    items_clear(items, MIXED_ROWS);
    redisFree(c);
    kv_free(kv);
}
END_TEST

int main(void)
{
    atexit(llr_stop);
    Suite *s = suite_create("idem");
    TCase *tc = tcase_create("stack");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, NULL, drop_keys);
    tcase_add_test(tc, idem_free_key_claims_and_goes_to_postgres);
    tcase_add_loop_test(tc, idem_own_claim_goes_to_postgres, 0,
                        (int)(sizeof own_cases / sizeof own_cases[0]));
    tcase_add_loop_test(tc, idem_redelivery_goes_to_postgres, 0,
                        (int)(sizeof redelivery_cases / sizeof redelivery_cases[0]));
    tcase_add_loop_test(tc, idem_done_entry_same_hash_is_answered, 0,
                        (int)(sizeof done_cases / sizeof done_cases[0]));
    tcase_add_loop_test(tc, idem_done_entry_other_hash_goes_to_postgres, 0, 2);
    tcase_add_loop_test(tc, idem_garbage_goes_to_postgres, 0,
                        (int)(sizeof garbage / sizeof garbage[0]));
    tcase_add_loop_test(tc, idem_unreadable_value_goes_to_postgres, 0, 2);
    tcase_add_loop_test(tc, idem_inflight_elsewhere_is_deferred, 0,
                        (int)(sizeof elsewhere_cases / sizeof elsewhere_cases[0]));
    tcase_add_test(tc, idem_a_long_instance_name_is_stored_whole);
    tcase_add_test(tc, idem_scope_isolates_ledgers_and_stages);
    tcase_add_test(tc, idem_done_records_published_outcomes);
    tcase_add_test(tc, idem_done_then_claim_replays_the_event);
    tcase_add_test(tc, idem_claim_counts_answered_and_deferred);
    suite_add_tcase(s, tc);
    TCase *down = tcase_create("redis-down");
    tcase_set_timeout(down, 60);
    tcase_add_checked_fixture(down, NULL, llr_stop);
    tcase_add_loop_test(down, idem_redis_down_sends_all_to_postgres, 0, 3);
    suite_add_tcase(s, down);
    return llt_run_suite(s);
}
