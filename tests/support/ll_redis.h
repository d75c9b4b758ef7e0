/*
 * ll_redis.h - Redis for the tests that talk to it directly (test_kv,
 * test_idem): the stack's Redis (from LEDGERLINE_REDIS_*), as a kv_t client
 * or a raw authenticated hiredis connection; and a throwaway redis-server
 * for making Redis go away under a live client: started on a free loopback
 * port, never persisted, killed with the test (PR_SET_PDEATHSIG). One
 * throwaway server at a time per process.
 *
 * Public API: llr_stack_t, llr_stack, llr_stack_kv, llr_stack_raw,
 * llr_free_port, llr_start, llr_stop.
 */
#ifndef LL_REDIS_H
#define LL_REDIS_H

#include <hiredis/hiredis.h>

#include "kv.h"

/* Where the stack's Redis is. */
typedef struct llr_stack {
    const char *host;
    int port;
    char *password; /* "" without one; owned, replaced by each llr_stack() */
} llr_stack_t;

/* Fills *s from LEDGERLINE_REDIS_HOST / _PORT / _PASSWORD(_FILE); a missing
 * variable fails the test (it never skips). */
void llr_stack(llr_stack_t *s);
/* A kv_t on the stack's Redis with key prefix `prefix`, checked up. */
kv_t *llr_stack_kv(const llr_stack_t *s, const char *prefix, int timeout_ms);
/* A raw hiredis connection to the stack's Redis, authenticated: for
 * checking what is stored without the code under test. */
redisContext *llr_stack_raw(const llr_stack_t *s);

/* A loopback TCP port nothing listens on right now. */
int llr_free_port(void);
/* Starts redis-server on 127.0.0.1:port and returns once it answers PING;
 * fails the test if it exits or stays silent for 10 s. */
void llr_start(int port);
/* Stops the server llr_start started (SIGTERM, reaped); safe to call when
 * none runs, so it serves as a fixture teardown and an atexit handler. */
void llr_stop(void);

#endif
