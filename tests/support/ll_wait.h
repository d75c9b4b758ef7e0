/*
 * ll_wait.h - waiting in a test: a monotonic clock, sleeping, and polling a
 * condition until it holds. Every wait has a deadline; it fails the test
 * naming what it waited for and what it saw last, with the tail of every
 * worker's log (ll_proc.h), and fails at once when a worker exits that was
 * not expected to. The generic conditions are here: a query's count, a
 * worker's log line, backends blocked on a lock.
 *
 * Public API: llw_now_ms, llw_sleep_ms, llw_cond_fn, llw_wait_until,
 * llw_try_scalar, llw_wait_sql, llw_wait_logged, llw_wait_lock_waiters.
 */
#ifndef LL_WAIT_H
#define LL_WAIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "db.h"

/* Monotonic milliseconds. */
int64_t llw_now_ms(void);
/* Sleeps ms milliseconds, signals or not. */
void llw_sleep_ms(int ms);

/* A condition: true when met. It may write what it sees into `status`
 * (n bytes) for the failure message ("processed 120 of 200"). */
typedef bool (*llw_cond_fn)(void *arg, char *status, size_t n);
/* Polls `cond` every 50 ms until it holds. Fails the test, naming `what`
 * and the last status, after timeout_ms or when a worker exits
 * unexpectedly (llw_check_alive()). */
void llw_wait_until(llw_cond_fn cond, void *arg, int timeout_ms, const char *what);

/* The first column of the first row of `sql` into *out; false on any
 * error (after which the connection is re-established when possible): for
 * conditions polled while a server restarts. */
bool llw_try_scalar(db_t *db, const char *sql, int64_t *out);
/* Until the formatted query's scalar (llw_try_scalar()) equals `want`. */
void llw_wait_sql(db_t *db, int64_t want, int timeout_ms, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Until the log of pid holds `needle` (fails the test after timeout_ms,
 * naming `what`). */
void llw_wait_logged(pid_t pid, const char *needle, int timeout_ms, const char *what);
/* Until at least n other backends of db's database wait for a lock (a
 * worker blocked on a row the test holds), or fails with `what`. */
void llw_wait_lock_waiters(db_t *db, int64_t n, int timeout_ms, const char *what);

#endif
