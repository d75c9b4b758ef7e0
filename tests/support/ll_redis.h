/*
 * ll_redis.h - a throwaway redis-server for the tests that make Redis go
 * away under a live client (test_kv, test_idem): started on a free
 * loopback port, never persisted, killed with the test (PR_SET_PDEATHSIG).
 * One at a time per process.
 *
 * Public API: llr_free_port, llr_start, llr_stop.
 */
#ifndef LL_REDIS_H
#define LL_REDIS_H

/* A loopback TCP port nothing listens on right now. */
int llr_free_port(void);
/* Starts redis-server on 127.0.0.1:port and returns once it answers PING;
 * fails the test if it exits or stays silent for 10 s. */
void llr_start(int port);
/* Stops the server llr_start started (SIGTERM, reaped); safe to call when
 * none runs, so it serves as a fixture teardown and an atexit handler. */
void llr_stop(void);

#endif
