/*
 * kv.c - the Redis client: see kv.h.
 *
 * Every command goes through kv_run(): make sure there is a connection
 * (kv_ensure: reconnect if the backoff allows, else fail fast), send the
 * command with redisCommandArgv (binary-safe, no format-string surprises),
 * and drop the context on any I/O error.
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "backoff.h"
#include "clock.h"
#include "kv.h"
#include "sbuf.h"
#include "xmalloc.h"

struct kv {
    char *host;
    int port;
    char *password; /* "" = no AUTH */
    int db;
    int timeout_ms;
    char *prefix;
    redisContext *c;     /* NULL while down */
    backoff_t backoff;   /* between reconnect attempts */
    int64_t next_try_ms; /* monotonic: no reconnect attempt before this */
    char errstr[256];
};

/* Compare-and-delete and compare-and-expire (the Redis docs' lock recipes). */
static const char KV_DEL_IF_EQ[] = "if redis.call('get', KEYS[1]) == ARGV[1] then "
                                   "return redis.call('del', KEYS[1]) else return 0 end";
static const char KV_PEXPIRE_IF_EQ[] = "if redis.call('get', KEYS[1]) == ARGV[1] then "
                                       "return redis.call('pexpire', KEYS[1], ARGV[2]) "
                                       "else return 0 end";

static pthread_once_t kv_sigpipe_once = PTHREAD_ONCE_INIT;

static void kv_ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}

__attribute__((format(printf, 2, 3))) static void kv_seterr(kv_t *kv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kv->errstr, sizeof kv->errstr, fmt, ap);
    va_end(ap);
}

static void kv_drop(kv_t *kv)
{
    if (kv->c)
        redisFree(kv->c);
    kv->c = NULL;
}

/* An I/O failure on the live connection: the context is dead. The next
 * command may try to reconnect at once (the server may just have
 * restarted); failed reconnects then back off. */
static int kv_lost(kv_t *kv, const char *what)
{
    kv_seterr(kv, "redis %s:%d: %s: %s", kv->host, kv->port, what,
              kv->c && kv->c->errstr[0] ? kv->c->errstr : "connection lost");
    kv_drop(kv);
    kv->next_try_ms = clock_mono_ms();
    return LL_ECONN;
}

/* One command on a fresh context during connect; LL_OK or sets errstr. */
static int kv_handshake(kv_t *kv, int argc, const char **argv, const char *what)
{
    redisReply *r = redisCommandArgv(kv->c, argc, argv, NULL);
    if (!r) {
        kv_seterr(kv, "redis %s:%d: %s: %s", kv->host, kv->port, what, kv->c->errstr);
        return LL_ECONN;
    }
    int rc = LL_OK;
    if (r->type == REDIS_REPLY_ERROR) {
        kv_seterr(kv, "redis %s:%d: %s failed: %s", kv->host, kv->port, what, r->str);
        rc = LL_ECONN;
    }
    freeReplyObject(r);
    return rc;
}

static int kv_connect(kv_t *kv)
{
    struct timeval tv = {kv->timeout_ms / 1000, (kv->timeout_ms % 1000) * 1000};
    kv_drop(kv);
    kv->c = redisConnectWithTimeout(kv->host, kv->port, tv);
    if (!kv->c) {
        kv_seterr(kv, "redis %s:%d: cannot allocate a context", kv->host, kv->port);
        goto fail;
    }
    if (kv->c->err) {
        kv_seterr(kv, "redis %s:%d: connect: %s", kv->host, kv->port, kv->c->errstr);
        goto fail;
    }
    if (redisSetTimeout(kv->c, tv) != REDIS_OK) {
        kv_seterr(kv, "redis %s:%d: setting the timeout: %s", kv->host, kv->port, kv->c->errstr);
        goto fail;
    }
    if (kv->password[0]) {
        const char *argv[] = {"AUTH", kv->password};
        if (kv_handshake(kv, 2, argv, "AUTH") != LL_OK)
            goto fail;
    }
    if (kv->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", kv->db);
        const char *argv[] = {"SELECT", db};
        if (kv_handshake(kv, 2, argv, "SELECT") != LL_OK)
            goto fail;
    }
    backoff_reset(&kv->backoff);
    kv->errstr[0] = '\0';
    return LL_OK;
fail:
    kv_drop(kv);
    kv->next_try_ms = clock_mono_ms() + backoff_next_ms(&kv->backoff);
    return LL_ECONN;
}

/* A connection, or LL_ECONN at once while the backoff says wait. */
static int kv_ensure(kv_t *kv)
{
    if (kv->c)
        return LL_OK;
    if (clock_mono_ms() < kv->next_try_ms)
        return LL_ECONN; /* errstr still holds why we are down */
    return kv_connect(kv);
}

int kv_open(kv_t **out, const char *host, int port, const char *password, int db, int timeout_ms,
            const char *key_prefix)
{
    *out = NULL;
    if (!host || port < 1 || port > 65535 || db < 0 || timeout_ms < 1)
        return LL_EINVAL;
    pthread_once(&kv_sigpipe_once, kv_ignore_sigpipe);

    kv_t *kv = ll_xcalloc(1, sizeof *kv);
    kv->host = ll_xstrdup(host);
    kv->port = port;
    kv->password = ll_xstrdup(password ? password : "");
    kv->db = db;
    kv->timeout_ms = timeout_ms;
    kv->prefix = ll_xstrdup(key_prefix ? key_prefix : "");
    backoff_init(&kv->backoff, KV_BACKOFF_BASE_MS, KV_BACKOFF_MAX_MS,
                 (uint64_t)getpid() ^ (uint64_t)clock_now_ms() ^ (uint64_t)(uintptr_t)kv);
    (void)kv_connect(kv); /* down is a state, not an error */
    *out = kv;
    return LL_OK;
}

void kv_free(kv_t *kv)
{
    if (!kv)
        return;
    kv_drop(kv);
    free(kv->host);
    free(kv->password);
    free(kv->prefix);
    free(kv);
}

bool kv_is_up(const kv_t *kv)
{
    return kv->c != NULL;
}

const char *kv_errstr(const kv_t *kv)
{
    return kv->errstr;
}

/* ---- commands ------------------------------------------------------------ */

/* prefix + key; p points at small or at a heap copy (kv_key_done frees). */
typedef struct {
    char *p;
    size_t len;
    char small[256];
} kv_key_t;

static void kv_key(const kv_t *kv, const char *key, kv_key_t *k)
{
    size_t pl = strlen(kv->prefix), kl = strlen(key);
    k->len = pl + kl;
    k->p = k->len < sizeof k->small ? k->small : ll_xmalloc(k->len + 1);
    memcpy(k->p, kv->prefix, pl);
    memcpy(k->p + pl, key, kl + 1);
}

static void kv_key_done(kv_key_t *k)
{
    if (k->p != k->small)
        free(k->p);
}

/* Sends one command. On LL_OK *out is a reply that is not an error reply
 * (caller frees it); error replies give LL_EIO with errstr. */
static int kv_run(kv_t *kv, redisReply **out, int argc, const char **argv, const size_t *lens)
{
    *out = NULL;
    int rc = kv_ensure(kv);
    if (rc)
        return rc;
    redisReply *r = redisCommandArgv(kv->c, argc, argv, lens);
    if (!r)
        return kv_lost(kv, argv[0]);
    if (r->type == REDIS_REPLY_ERROR) {
        kv_seterr(kv, "redis %s: %s", argv[0], r->str);
        freeReplyObject(r);
        return LL_EIO;
    }
    *out = r;
    return LL_OK;
}

static int kv_unexpected(kv_t *kv, redisReply *r, const char *cmd)
{
    kv_seterr(kv, "redis %s: unexpected reply type %d", cmd, r->type);
    freeReplyObject(r);
    return LL_EIO;
}

/* Builds SET key val [NX] [PX ttl] into argv/lens; returns argc. */
static int kv_set_args(const kv_key_t *k, const char *val, bool nx, int64_t ttl_ms, char ttl[24],
                       const char **argv, size_t *lens)
{
    int argc = 0;
    argv[argc] = "SET", lens[argc++] = 3;
    argv[argc] = k->p, lens[argc++] = k->len;
    argv[argc] = val, lens[argc++] = strlen(val);
    if (nx)
        argv[argc] = "NX", lens[argc++] = 2;
    if (ttl_ms > 0) {
        snprintf(ttl, 24, "%lld", (long long)ttl_ms);
        argv[argc] = "PX", lens[argc++] = 2;
        argv[argc] = ttl, lens[argc++] = strlen(ttl);
    }
    return argc;
}

/* SET [NX] reply: +OK -> LL_OK, nil -> LL_EEXISTS. Frees r. */
static int kv_set_reply(kv_t *kv, redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return LL_EEXISTS;
    }
    if (r->type == REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        return LL_OK;
    }
    return kv_unexpected(kv, r, "SET");
}

static int kv_do_set(kv_t *kv, const char *key, const char *val, int64_t ttl_ms, bool nx)
{
    if (!key || !val || ttl_ms < 0)
        return LL_EINVAL;
    kv_key_t k;
    kv_key(kv, key, &k);
    const char *argv[6];
    size_t lens[6];
    char ttl[24];
    int argc = kv_set_args(&k, val, nx, ttl_ms, ttl, argv, lens);
    redisReply *r;
    int rc = kv_run(kv, &r, argc, argv, lens);
    kv_key_done(&k);
    return rc ? rc : kv_set_reply(kv, r);
}

int kv_set_nx(kv_t *kv, const char *key, const char *val, int64_t ttl_ms)
{
    return kv_do_set(kv, key, val, ttl_ms, true);
}

int kv_set(kv_t *kv, const char *key, const char *val, int64_t ttl_ms)
{
    return kv_do_set(kv, key, val, ttl_ms, false);
}

/* n SET [NX] in one round trip: every command is appended to hiredis's
 * buffer, then the replies are read in order. */
static int kv_set_pipelined(kv_t *kv, size_t n, const char *const *keys, const char *const *vals,
                            bool nx, int64_t ttl_ms, int *results)
{
    if (ttl_ms < 0 || (n > 0 && (!keys || !vals || (nx && !results))))
        return LL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!keys[i] || !vals[i])
            return LL_EINVAL;
    if (n == 0)
        return LL_OK;
    int rc = kv_ensure(kv);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        kv_key_t k;
        kv_key(kv, keys[i], &k);
        const char *argv[6];
        size_t lens[6];
        char ttl[24];
        int argc = kv_set_args(&k, vals[i], nx, ttl_ms, ttl, argv, lens);
        /* only fails on OOM: hiredis copies the command into its buffer */
        int ok = redisAppendCommandArgv(kv->c, argc, argv, lens);
        kv_key_done(&k);
        if (ok != REDIS_OK)
            return kv_lost(kv, "SET (pipelined)");
    }
    rc = LL_OK;
    for (size_t i = 0; i < n; i++) {
        void *reply = NULL;
        if (redisGetReply(kv->c, &reply) != REDIS_OK || !reply)
            return kv_lost(kv, "SET (pipelined)");
        redisReply *r = reply;
        int one;
        if (r->type == REDIS_REPLY_ERROR) {
            kv_seterr(kv, "redis SET: %s", r->str);
            freeReplyObject(r);
            one = LL_EIO;
        } else {
            one = kv_set_reply(kv, r);
        }
        if (results)
            results[i] = one;
        if (one != LL_OK && one != LL_EEXISTS)
            rc = one;
    }
    return rc;
}

int kv_set_nx_many(kv_t *kv, size_t n, const char *const *keys, const char *const *vals,
                   int64_t ttl_ms, int *results)
{
    return kv_set_pipelined(kv, n, keys, vals, true, ttl_ms, results);
}

int kv_set_many(kv_t *kv, size_t n, const char *const *keys, const char *const *vals,
                int64_t ttl_ms)
{
    return kv_set_pipelined(kv, n, keys, vals, false, ttl_ms, NULL);
}

int kv_get(kv_t *kv, const char *key, char *buf, size_t n)
{
    if (!key || !buf || n == 0)
        return LL_EINVAL;
    kv_key_t k;
    kv_key(kv, key, &k);
    const char *argv[] = {"GET", k.p};
    size_t lens[] = {3, k.len};
    redisReply *r;
    int rc = kv_run(kv, &r, 2, argv, lens);
    kv_key_done(&k);
    if (rc)
        return rc;
    if (r->type == REDIS_REPLY_NIL) {
        rc = LL_ENOTFOUND;
    } else if (r->type == REDIS_REPLY_STRING) {
        if ((size_t)r->len >= n) {
            rc = LL_ERANGE;
        } else {
            memcpy(buf, r->str, (size_t)r->len);
            buf[r->len] = '\0';
        }
    } else {
        return kv_unexpected(kv, r, "GET");
    }
    freeReplyObject(r);
    return rc;
}

/* An integer reply: 0 -> LL_ENOTFOUND, else LL_OK (*value set). Frees r. */
static int kv_int_reply(kv_t *kv, redisReply *r, const char *cmd, long long *value)
{
    if (r->type != REDIS_REPLY_INTEGER)
        return kv_unexpected(kv, r, cmd);
    long long v = r->integer;
    freeReplyObject(r);
    if (value)
        *value = v;
    return v == 0 ? LL_ENOTFOUND : LL_OK;
}

int kv_del(kv_t *kv, const char *key)
{
    if (!key)
        return LL_EINVAL;
    kv_key_t k;
    kv_key(kv, key, &k);
    const char *argv[] = {"DEL", k.p};
    size_t lens[] = {3, k.len};
    redisReply *r;
    int rc = kv_run(kv, &r, 2, argv, lens);
    kv_key_done(&k);
    return rc ? rc : kv_int_reply(kv, r, "DEL", NULL);
}

static int kv_eval_if_eq(kv_t *kv, const char *script, const char *key, const char *val,
                         const char *extra)
{
    if (!key || !val)
        return LL_EINVAL;
    kv_key_t k;
    kv_key(kv, key, &k);
    const char *argv[] = {"EVAL", script, "1", k.p, val, extra};
    size_t lens[] = {4, strlen(script), 1, k.len, strlen(val), extra ? strlen(extra) : 0};
    redisReply *r;
    int rc = kv_run(kv, &r, extra ? 6 : 5, argv, lens);
    kv_key_done(&k);
    return rc ? rc : kv_int_reply(kv, r, "EVAL", NULL);
}

int kv_del_if_eq(kv_t *kv, const char *key, const char *val)
{
    return kv_eval_if_eq(kv, KV_DEL_IF_EQ, key, val, NULL);
}

int kv_pexpire_if_eq(kv_t *kv, const char *key, const char *val, int64_t ttl_ms)
{
    if (ttl_ms <= 0)
        return LL_EINVAL;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    return kv_eval_if_eq(kv, KV_PEXPIRE_IF_EQ, key, val, ttl);
}

int kv_incr(kv_t *kv, const char *key, long long *out)
{
    if (!key || !out)
        return LL_EINVAL;
    kv_key_t k;
    kv_key(kv, key, &k);
    const char *argv[] = {"INCR", k.p};
    size_t lens[] = {4, k.len};
    redisReply *r;
    int rc = kv_run(kv, &r, 2, argv, lens);
    kv_key_done(&k);
    if (rc)
        return rc;
    if (r->type != REDIS_REPLY_INTEGER)
        return kv_unexpected(kv, r, "INCR");
    *out = r->integer;
    freeReplyObject(r);
    return LL_OK;
}

int kv_ping(kv_t *kv)
{
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    redisReply *r;
    int rc = kv_run(kv, &r, 1, argv, lens);
    if (rc)
        return rc;
    freeReplyObject(r);
    return LL_OK;
}

int kv_each(kv_t *kv, const char *pattern, size_t max, kv_each_fn *fn, void *ud)
{
    /* the prefix matched literally: its glob characters escaped */
    sbuf_t pat;
    sbuf_init(&pat, 64);
    for (const char *p = kv->prefix; *p; p++) {
        if (strchr("*?[]\\", *p))
            sbuf_addc(&pat, '\\');
        sbuf_addc(&pat, *p);
    }
    sbuf_adds(&pat, pattern);
    kv_key_t k = {.p = sbuf_take(&pat)};
    k.len = strlen(k.p);
    char cursor[32] = "0";
    size_t seen = 0, plen = strlen(kv->prefix);
    int rc = LL_OK;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", k.p, "COUNT", "1000"};
        size_t lens[] = {4, strlen(cursor), 5, k.len, 5, 4};
        redisReply *r;
        if ((rc = kv_run(kv, &r, 6, argv, lens)) != LL_OK)
            break;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            rc = kv_unexpected(kv, r, "SCAN");
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        size_t nk = keys->elements;
        if (nk > 0) { /* the page's values in one round trip */
            const char **mv = ll_xcalloc(nk + 1, sizeof *mv);
            size_t *ml = ll_xcalloc(nk + 1, sizeof *ml);
            mv[0] = "MGET", ml[0] = 4;
            for (size_t i = 0; i < nk; i++)
                mv[i + 1] = keys->element[i]->str, ml[i + 1] = (size_t)keys->element[i]->len;
            redisReply *g;
            rc = kv_run(kv, &g, (int)(nk + 1), mv, ml);
            if (rc == LL_OK && (g->type != REDIS_REPLY_ARRAY || g->elements != nk))
                rc = kv_unexpected(kv, g, "MGET");
            else if (rc == LL_OK) {
                for (size_t i = 0; i < nk && seen < max; i++) {
                    if (g->element[i]->type != REDIS_REPLY_STRING)
                        continue; /* gone since the SCAN */
                    const char *full = keys->element[i]->str;
                    seen++;
                    if (fn(ud, strlen(full) >= plen ? full + plen : full, g->element[i]->str) != 0)
                        seen = max; /* the caller has enough */
                }
                freeReplyObject(g);
            }
            free(mv);
            free(ml);
        }
        freeReplyObject(r);
    } while (rc == LL_OK && seen < max && strcmp(cursor, "0") != 0);
    free(k.p);
    return rc;
}
