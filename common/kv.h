/*
 * kv.h - the Redis client (hiredis 0.14) behind the idempotency fast path,
 * the in-flight guard and distributed locks (docs/contract.md#idempotency,
 * docs/ledger.md#fences).
 *
 * Redis is an accelerator, never the truth, so this client is built to
 * never hold a worker up for long and to survive Redis going away:
 *   - connect and every command are bounded by timeout_ms;
 *   - kv_open() does not fail when Redis is down: the client starts down
 *     (kv_is_up() false) and every command reconnects by itself;
 *   - while down, a command tries to reconnect at most once per backoff
 *     interval (full jitter, 100 ms .. 5 s); between attempts it fails
 *     fast with LL_ECONN without touching the network;
 *   - any I/O error or timeout drops the connection (a hiredis context is
 *     dead after c->err) and returns LL_ECONN; AUTH and SELECT are sent
 *     again on every (re)connect.
 * Return codes: LL_OK; LL_ECONN (down or lost: take the slow path / retry
 * later); LL_EIO (Redis answered with an error reply: kv_errstr() has it);
 * LL_EINVAL (bad argument); and per command LL_EEXISTS / LL_ENOTFOUND /
 * LL_ERANGE as documented below. Every key gets key_prefix prepended.
 * A kv_t is not thread-safe: one per thread. SIGPIPE is ignored process-wide
 * from the first kv_open() on (a write to a dead socket must be an error,
 * not a signal).
 *
 * Public API: kv_t, kv_open, kv_free, kv_is_up, kv_errstr, kv_set_nx,
 * kv_set_nx_many, kv_set_many, kv_get, kv_set, kv_del, kv_del_if_eq, kv_pexpire_if_eq,
 * kv_incr, kv_ping, kv_each_fn, kv_each.
 */
#ifndef LL_KV_H
#define LL_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define KV_BACKOFF_BASE_MS 100
#define KV_BACKOFF_MAX_MS  5000

typedef struct kv kv_t;

/* Creates a client (strings are copied; password "" or NULL: no AUTH;
 * key_prefix NULL: none) and tries to connect once. A failed connect is
 * not an error: see kv_is_up(). LL_EINVAL for bad arguments (port out of
 * range, timeout_ms < 1, db < 0). Caller frees *out with kv_free(). */
int kv_open(kv_t **out, const char *host, int port, const char *password, int db, int timeout_ms,
            const char *key_prefix) LL_MUSTCHECK;
/* Closes the connection and frees; NULL is a no-op. */
void kv_free(kv_t *kv);
/* Connected right now (as of the last command). */
bool kv_is_up(const kv_t *kv);
/* The last error, "" when none. Valid until the next call on kv. */
const char *kv_errstr(const kv_t *kv);

/* SET key val NX [PX ttl_ms] (ttl_ms 0: no expiry): LL_OK if it was set,
 * LL_EEXISTS if the key already existed. */
int kv_set_nx(kv_t *kv, const char *key, const char *val, int64_t ttl_ms) LL_MUSTCHECK;
/* n SET NX in one round trip (pipelined). results[i] = LL_OK / LL_EEXISTS
 * (or LL_EIO for an error reply, then the call returns LL_EIO). On LL_ECONN
 * the results are unknown: some keys may have been set. */
int kv_set_nx_many(kv_t *kv, size_t n, const char *const *keys, const char *const *vals,
                   int64_t ttl_ms, int *results) LL_MUSTCHECK;
/* n SET [PX ttl_ms] in one round trip (pipelined). LL_OK, LL_EIO when
 * Redis refused one, LL_ECONN (some may have been set). */
int kv_set_many(kv_t *kv, size_t n, const char *const *keys, const char *const *vals,
                int64_t ttl_ms) LL_MUSTCHECK;
/* GET into buf (NUL-terminated): LL_OK, LL_ENOTFOUND if absent, LL_ERANGE
 * if the value and its NUL do not fit in n bytes. */
int kv_get(kv_t *kv, const char *key, char *buf, size_t n) LL_MUSTCHECK;
/* SET key val [PX ttl_ms] (ttl_ms 0: no expiry). */
int kv_set(kv_t *kv, const char *key, const char *val, int64_t ttl_ms) LL_MUSTCHECK;
/* DEL key: LL_OK if deleted, LL_ENOTFOUND if it did not exist. */
int kv_del(kv_t *kv, const char *key) LL_MUSTCHECK;
/* Compare-and-delete (lock release): deletes key only if it holds val.
 * LL_OK deleted; LL_ENOTFOUND absent or held by someone else. */
int kv_del_if_eq(kv_t *kv, const char *key, const char *val) LL_MUSTCHECK;
/* Compare-and-expire (lock extension): sets the TTL of key to ttl_ms only
 * if it holds val. LL_OK extended; LL_ENOTFOUND absent or not ours. */
int kv_pexpire_if_eq(kv_t *kv, const char *key, const char *val, int64_t ttl_ms) LL_MUSTCHECK;
/* INCR key into *out (fencing tokens). */
int kv_incr(kv_t *kv, const char *key, long long *out) LL_MUSTCHECK;
/* PING: LL_OK when Redis answers (reconnecting first if allowed). */
int kv_ping(kv_t *kv) LL_MUSTCHECK;
/* Every key matching `pattern` (a SCAN pattern, the prefix added) and its
 * value: fn(ud, key without the prefix, value) for at most `max` of them,
 * until fn returns non-zero. SCAN semantics: a key present throughout is
 * seen at least once. LL_OK or the error of the failing command. For
 * operators' tools (the worker registry), not for hot paths. */
typedef int kv_each_fn(void *ud, const char *key, const char *val);
int kv_each(kv_t *kv, const char *pattern, size_t max, kv_each_fn *fn, void *ud) LL_MUSTCHECK;

#endif
