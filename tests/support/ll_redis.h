/*
 * ll_redis.h - Redis in the tests, the one helper for it: the stack's Redis
 * (from LEDGERLINE_REDIS_HOST / _PORT / _PASSWORD(_FILE) / _DB, as the
 * workers read them), as a kv_t client or a raw authenticated hiredis
 * connection for checking what is stored without the code under test; the
 * idempotency keys the stages write there; and a throwaway redis-server for
 * making Redis go away under a live client: started on a free loopback
 * port, never persisted, killed with the test (PR_SET_PDEATHSIG). One
 * throwaway server at a time per process.
 *
 * Public API: llr_stack_t, llr_stack, llr_stack_kv, llr_stack_raw, llr_kv,
 * llr_idem_key, llr_idem_forget, llr_free_port, llr_start, llr_stop.
 */
#ifndef LL_REDIS_H
#define LL_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "db.h"
#include "kv.h"

/* Where the stack's Redis is. */
typedef struct llr_stack {
    const char *host;
    int port;
    char *password; /* "" without one; owned, replaced by each llr_stack() */
    int db;         /* LEDGERLINE_REDIS_DB, 0 when unset */
} llr_stack_t;

/* Fills *s from LEDGERLINE_REDIS_HOST / _PORT / _PASSWORD(_FILE) / _DB; a
 * missing variable fails the test (it never skips). */
void llr_stack(llr_stack_t *s);
/* A kv_t on the stack's Redis with key prefix `prefix` (NULL: none: pass
 * full keys), checked up. Caller frees with kv_free(). */
kv_t *llr_stack_kv(const llr_stack_t *s, const char *prefix, int timeout_ms);
/* A raw hiredis connection to the stack's Redis, authenticated, on its
 * database: for checking what is stored without the code under test. */
redisContext *llr_stack_raw(const llr_stack_t *s);
/* llr_stack_kv() on the stack's Redis with no key prefix and a 2 s
 * timeout: the client of the worker suites. Caller frees with kv_free(). */
kv_t *llr_kv(void);

/* The idempotency key of payment_id in stage on the ledger `db` is
 * connected to, into out: "<prefix>idem:<ledger id>:<stage>:<payment_id>",
 * prefix = LEDGERLINE_REDIS_KEY_PREFIX or "ll:", ledger id = the row of
 * table ledger_identity (schemas/sql/migrations/004_ledger_identity.sql). */
void llr_idem_key(char *out, size_t n, db_t *db, const char *stage, const char *payment_id);
/* Deletes that key from the stack's Redis (a worker must then fall back on
 * PostgreSQL); fails the test, with the workers' logs, unless it was there.
 * `what` says why it must be there ("after processing"). */
void llr_idem_forget(db_t *db, const char *stage, const char *payment_id, const char *what);

/* A loopback TCP port nothing listens on right now. */
int llr_free_port(void);
/* Starts redis-server on 127.0.0.1:port and returns once it answers PING;
 * fails the test if it exits or stays silent for 10 s. */
void llr_start(int port);
/* Stops the server llr_start started (SIGTERM, reaped); safe to call when
 * none runs, so it serves as a fixture teardown and an atexit handler. */
void llr_stop(void);

#endif
