/*
 * test_kv.c - the Redis client against a real Redis (the stack's, from
 * LEDGERLINE_REDIS_HOST / _PORT / _PASSWORD_FILE): SET NX, TTLs, get/set/
 * del, compare-and-delete / compare-and-expire, INCR, pipelined SET NX,
 * the key prefix (checked with a raw hiredis connection), a wrong
 * password, error replies; and, on a throwaway redis-server this test
 * starts itself, Redis going away (calls fail fast with LL_ECONN) and
 * coming back (the client is up again within the backoff).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "kv.h"
#include "ll_redis.h"
#include "ll_test.h"

#define TIMEOUT_MS 500

static llr_stack_t rs;
static char prefix[64];

static void stack_conf(void)
{
    llr_stack(&rs);
    /* keys of this run only */
    snprintf(prefix, sizeof prefix, "llt:kv:%d:%lld:", (int)getpid(), (long long)clock_now_ms());
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

START_TEST(kv_set_nx_twice)
{
    kv_t *kv = stack_kv();
    ck_assert_int_eq(kv_set_nx(kv, "once", "h1", 10000), LL_OK);
    ck_assert_int_eq(kv_set_nx(kv, "once", "h2", 10000), LL_EEXISTS);
    char buf[16];
    ck_assert_int_eq(kv_get(kv, "once", buf, sizeof buf), LL_OK);
    ck_assert_str_eq(buf, "h1"); /* the second SET NX changed nothing */
    ck_assert_int_eq(kv_set_nx(kv, "forever", "v", 0), LL_OK);
    ck_assert_int_eq(kv_del(kv, "forever"), LL_OK);
    ck_assert_int_eq(kv_del(kv, "once"), LL_OK);
    kv_free(kv);
}
END_TEST

START_TEST(kv_ttl_expires)
{
    kv_t *kv = stack_kv();
    char buf[16];
    ck_assert_int_eq(kv_set_nx(kv, "short", "x", 150), LL_OK);
    ck_assert_int_eq(kv_get(kv, "short", buf, sizeof buf), LL_OK);
    ck_assert_int_eq(kv_set_nx(kv, "short", "y", 150), LL_EEXISTS);
    usleep(400 * 1000);
    ck_assert_int_eq(kv_get(kv, "short", buf, sizeof buf), LL_ENOTFOUND);
    ck_assert_int_eq(kv_set_nx(kv, "short", "y", 150), LL_OK);
    /* kv_set with a TTL expires too */
    ck_assert_int_eq(kv_set(kv, "short2", "z", 150), LL_OK);
    usleep(400 * 1000);
    ck_assert_int_eq(kv_get(kv, "short2", buf, sizeof buf), LL_ENOTFOUND);
    kv_free(kv);
}
END_TEST

/* values that must round-trip unchanged */
static const char *const values[] = {
    "",      "v", "with space", "quote\"back\\slash", "line\nbreak", "caf\xc3\xa9 \xe2\x82\xac",
    "%s%n%d"};

START_TEST(kv_get_set_del)
{
    kv_t *kv = stack_kv();
    const char *v = values[_i];
    char buf[64];
    ck_assert_int_eq(kv_get(kv, "gsd", buf, sizeof buf), LL_ENOTFOUND);
    ck_assert_int_eq(kv_set(kv, "gsd", "old", 0), LL_OK);
    ck_assert_int_eq(kv_set(kv, "gsd", v, 0), LL_OK); /* overwrites */
    ck_assert_int_eq(kv_get(kv, "gsd", buf, sizeof buf), LL_OK);
    ck_assert_str_eq(buf, v);
    /* exactly fitting and one byte short */
    size_t len = strlen(v);
    ck_assert_int_eq(kv_get(kv, "gsd", buf, len + 1), LL_OK);
    if (len > 0)
        ck_assert_int_eq(kv_get(kv, "gsd", buf, len), LL_ERANGE);
    ck_assert_int_eq(kv_del(kv, "gsd"), LL_OK);
    ck_assert_int_eq(kv_del(kv, "gsd"), LL_ENOTFOUND);
    ck_assert_int_eq(kv_get(kv, "gsd", buf, sizeof buf), LL_ENOTFOUND);
    kv_free(kv);
}
END_TEST

START_TEST(kv_compare_and_delete_expire)
{
    kv_t *kv = stack_kv();
    char buf[32];
    ck_assert_int_eq(kv_del_if_eq(kv, "lock", "tokA"), LL_ENOTFOUND); /* absent */
    ck_assert_int_eq(kv_pexpire_if_eq(kv, "lock", "tokA", 1000), LL_ENOTFOUND);
    ck_assert_int_eq(kv_set_nx(kv, "lock", "tokA", 60000), LL_OK);

    /* someone else's token changes nothing */
    ck_assert_int_eq(kv_del_if_eq(kv, "lock", "tokB"), LL_ENOTFOUND);
    ck_assert_int_eq(kv_pexpire_if_eq(kv, "lock", "tokB", 100), LL_ENOTFOUND);
    ck_assert_int_eq(kv_get(kv, "lock", buf, sizeof buf), LL_OK);
    ck_assert_str_eq(buf, "tokA");

    redisContext *c = raw();
    redisReply *r = redisCommand(c, "PTTL %slock", prefix);
    ck_assert_int_gt(r->integer, 50000); /* tokB's 100 ms was not applied */
    freeReplyObject(r);

    /* the owner extends: the TTL is what it asked for */
    ck_assert_int_eq(kv_pexpire_if_eq(kv, "lock", "tokA", 30000), LL_OK);
    r = redisCommand(c, "PTTL %slock", prefix);
    ck_assert_int_gt(r->integer, 25000);
    ck_assert_int_le(r->integer, 30000);
    freeReplyObject(r);

    ck_assert_int_eq(kv_del_if_eq(kv, "lock", "tokA"), LL_OK);
    ck_assert_int_eq(kv_get(kv, "lock", buf, sizeof buf), LL_ENOTFOUND);
    ck_assert_int_eq(kv_del_if_eq(kv, "lock", "tokA"), LL_ENOTFOUND);
    ck_assert_int_eq(kv_pexpire_if_eq(kv, "lock", "tokA", 0), LL_EINVAL);
    redisFree(c);
    kv_free(kv);
}
END_TEST

START_TEST(kv_incr_monotonic)
{
    kv_t *kv = stack_kv();
    long long prev = 0, v = 0;
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(kv_incr(kv, "fence", &v), LL_OK);
        ck_assert_int_eq(v, prev + 1);
        prev = v;
    }
    ck_assert_int_eq(v, 200);
    /* an error reply is LL_EIO with Redis's text */
    ck_assert_int_eq(kv_set(kv, "notnum", "abc", 10000), LL_OK);
    ck_assert_int_eq(kv_incr(kv, "notnum", &v), LL_EIO);
    ck_assert_msg(strstr(kv_errstr(kv), "not an integer") != NULL, "%s", kv_errstr(kv));
    ck_assert(kv_is_up(kv)); /* an error reply is not a lost connection */
    ck_assert_int_eq(kv_ping(kv), LL_OK);
    ck_assert_int_eq(kv_del(kv, "fence"), LL_OK);
    kv_free(kv);
}
END_TEST

START_TEST(kv_set_nx_many_mixed)
{
    kv_t *kv = stack_kv();
    ck_assert_int_eq(kv_set_nx(kv, "m1", "old1", 60000), LL_OK);
    ck_assert_int_eq(kv_set_nx(kv, "m3", "old3", 60000), LL_OK);
    const char *keys[] = {"m0", "m1", "m2", "m3", "m4", "m2"};
    const char *vals[] = {"new0", "new1", "new2", "new3", "new4", "again"};
    int want[] = {LL_OK, LL_EEXISTS, LL_OK, LL_EEXISTS, LL_OK, LL_EEXISTS};
    int got[6];
    memset(got, 0x7f, sizeof got);
    ck_assert_int_eq(kv_set_nx_many(kv, 6, keys, vals, 60000, got), LL_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(got[i] == want[i], "result %d: %s, want %s", i, ll_errname(got[i]),
                      ll_errname(want[i]));
    const char *after[] = {"new0", "old1", "new2", "old3", "new4"};
    for (int i = 0; i < 5; i++) {
        char buf[16];
        ck_assert_int_eq(kv_get(kv, keys[i], buf, sizeof buf), LL_OK);
        ck_assert_str_eq(buf, after[i]);
    }
    ck_assert_int_eq(kv_set_nx_many(kv, 0, NULL, NULL, 0, NULL), LL_OK);
    kv_free(kv);
}
END_TEST

START_TEST(kv_prefix_applied)
{
    kv_t *kv = stack_kv();
    ck_assert_int_eq(kv_set(kv, "pfx", "here", 60000), LL_OK);
    redisContext *c = raw();
    redisReply *r = redisCommand(c, "GET %spfx", prefix);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->str, "here");
    freeReplyObject(r);
    r = redisCommand(c, "EXISTS pfx");
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    redisFree(c);
    kv_free(kv);
}
END_TEST

typedef struct {
    int n, stop_at;
    char seen[8][32];
} each_t;

static int collect(void *ud, const char *key, const char *val)
{
    each_t *e = ud;
    if (e->n < 8)
        snprintf(e->seen[e->n], sizeof e->seen[0], "%s=%s", key, val);
    e->n++;
    return e->n == e->stop_at;
}

static bool saw(const each_t *e, const char *kv)
{
    for (int i = 0; i < e->n && i < 8; i++)
        if (strcmp(e->seen[i], kv) == 0)
            return true;
    return false;
}

/* kv_each: keys of this prefix only (its glob characters taken
 * literally), without the prefix, with their values; max and the
 * callback's stop are kept */
START_TEST(kv_each_scans_this_prefix_only)
{
    stack_conf();
    char pfx[96];
    snprintf(pfx, sizeof pfx, "%s[x]*", prefix); /* glob characters in the prefix */
    kv_t *kv = llr_stack_kv(&rs, pfx, TIMEOUT_MS);
    kv_t *other = llr_stack_kv(&rs, prefix, TIMEOUT_MS);
    ck_assert_int_eq(kv_set(kv, "w:a", "1", 60000), LL_OK);
    ck_assert_int_eq(kv_set(kv, "w:b", "2", 60000), LL_OK);
    ck_assert_int_eq(kv_set(kv, "v:c", "3", 60000), LL_OK);
    ck_assert_int_eq(kv_set(other, "xw:d", "4", 60000), LL_OK); /* matches [x] as a glob */
    each_t e = {0};
    ck_assert_int_eq(kv_each(kv, "w:*", 100, collect, &e), LL_OK);
    ck_assert_int_eq(e.n, 2);
    ck_assert_msg(saw(&e, "w:a=1") && saw(&e, "w:b=2"), "saw %s, %s", e.seen[0], e.seen[1]);
    each_t one = {0};
    ck_assert_int_eq(kv_each(kv, "*", 1, collect, &one), LL_OK);
    ck_assert_int_eq(one.n, 1);
    each_t stop = {.stop_at = 2};
    ck_assert_int_eq(kv_each(kv, "*", 100, collect, &stop), LL_OK);
    ck_assert_int_eq(stop.n, 2);
    kv_free(other);
    kv_free(kv);
}
END_TEST

START_TEST(kv_wrong_password)
{
    stack_conf();
    kv_t *kv;
    ck_assert_int_eq(
        kv_open(&kv, rs.host, rs.port, "definitely-not-the-password", 0, TIMEOUT_MS, prefix),
        LL_OK);
    ck_assert(!kv_is_up(kv));
    const char *e = kv_errstr(kv);
    ck_assert_msg(strstr(e, "AUTH") != NULL, "%s", e);
    ck_assert_msg(strstr(e, "WRONGPASS") || strstr(e, "invalid") || strstr(e, "no password"), "%s",
                  e);
    ck_assert_msg(strstr(e, "definitely") == NULL, "password in errstr: %s", e);
    ck_assert_int_eq(kv_ping(kv), LL_ECONN);
    kv_free(kv);
    /* nothing listens: down, not an error */
    ck_assert_int_eq(kv_open(&kv, "127.0.0.1", 1, NULL, 0, TIMEOUT_MS, NULL), LL_OK);
    ck_assert(!kv_is_up(kv));
    ck_assert_msg(strstr(kv_errstr(kv), "connect") != NULL, "%s", kv_errstr(kv));
    kv_free(kv);
    ck_assert_int_eq(kv_open(&kv, "127.0.0.1", 0, NULL, 0, TIMEOUT_MS, NULL), LL_EINVAL);
    ck_assert_ptr_null(kv);
}
END_TEST

/* ---- our own redis-server: going away and coming back ------------------- */

START_TEST(kv_server_goes_away_and_comes_back)
{
    int p = llr_free_port();
    llr_start(p);
    kv_t *kv;
    ck_assert_int_eq(kv_open(&kv, "127.0.0.1", p, NULL, 0, TIMEOUT_MS, "t:"), LL_OK);
    ck_assert_msg(kv_is_up(kv), "%s", kv_errstr(kv));
    ck_assert_int_eq(kv_set_nx(kv, "k", "v", 0), LL_OK);

    llr_stop();
    /* every call fails with LL_ECONN, each well within 2x the timeout */
    int fails = 0;
    int64_t worst = 0;
    for (int i = 0; i < 200; i++) {
        int64_t t0 = clock_mono_ms();
        int rc = kv_set_nx(kv, "k2", "v", 0);
        int64_t took = clock_mono_ms() - t0;
        worst = took > worst ? took : worst;
        ck_assert_msg(rc == LL_ECONN, "call %d: %s", i, ll_errname(rc));
        ck_assert_msg(took <= 2 * TIMEOUT_MS, "call %d blocked %lld ms", i, (long long)took);
        fails++;
        usleep(1000);
    }
    ck_assert_int_eq(fails, 200);
    ck_assert(!kv_is_up(kv));
    ck_assert_msg(kv_errstr(kv)[0] != '\0', "no errstr while down");
    char buf[8];
    ck_assert_int_eq(kv_get(kv, "k", buf, sizeof buf), LL_ECONN);
    long long n;
    ck_assert_int_eq(kv_incr(kv, "n", &n), LL_ECONN);

    /* back on the same port: up again within the backoff ceiling */
    llr_start(p);
    int64_t t0 = clock_mono_ms();
    int rc;
    while ((rc = kv_ping(kv)) != LL_OK && clock_mono_ms() - t0 < KV_BACKOFF_MAX_MS + 2000)
        usleep(10000);
    ck_assert_msg(rc == LL_OK, "not back after %lld ms: %s", (long long)(clock_mono_ms() - t0),
                  kv_errstr(kv));
    ck_assert(kv_is_up(kv));
    ck_assert_int_eq(kv_set_nx(kv, "k", "v", 0), LL_OK); /* fresh server, empty */
    ck_assert_int_eq(kv_set_nx(kv, "k", "v", 0), LL_EEXISTS);
    kv_free(kv);
    llr_stop();
}
END_TEST

int main(void)
{
    atexit(llr_stop);
    Suite *s = suite_create("kv");
    TCase *tc = tcase_create("stack");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, kv_set_nx_twice);
    tcase_add_test(tc, kv_ttl_expires);
    tcase_add_loop_test(tc, kv_get_set_del, 0, (int)(sizeof values / sizeof values[0]));
    tcase_add_test(tc, kv_compare_and_delete_expire);
    tcase_add_test(tc, kv_incr_monotonic);
    tcase_add_test(tc, kv_set_nx_many_mixed);
    tcase_add_test(tc, kv_prefix_applied);
    tcase_add_test(tc, kv_each_scans_this_prefix_only);
    tcase_add_test(tc, kv_wrong_password);
    suite_add_tcase(s, tc);
    TCase *own = tcase_create("own-server");
    tcase_set_timeout(own, 60);
    tcase_add_checked_fixture(own, NULL, llr_stop);
    tcase_add_test(own, kv_server_goes_away_and_comes_back);
    suite_add_tcase(s, own);
    return llt_run_suite(s);
}
