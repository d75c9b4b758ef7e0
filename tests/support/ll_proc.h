/*
 * ll_proc.h - the worker processes of a test: start them (with their own
 * environment and a log file), signal, stop and reap them, read their logs,
 * and fail the test with the tail of every log.
 *
 *   - each process is registered; llw_kill_all() (call it from the fixture
 *     teardown) SIGKILLs and reaps whatever is left. In Check's fork mode a
 *     failing test _exit()s without running the teardown: Check then
 *     SIGKILLs the test's process group, which the workers belong to, and
 *     every worker also has PR_SET_PDEATHSIG = SIGKILL, so none survives the
 *     test that started it;
 *   - stdout and stderr go to a log file under /tmp; LLW_ASSERT() and every
 *     failing wait (ll_wait.h) print the tail of each registered worker's
 *     log;
 *   - a worker that exits while a wait is running fails the test at once
 *     (unless llw_expect_exit() said it may), with its status and log: the
 *     waits call llw_check_alive().
 *
 * Public API: LLW_TAIL_LINES, LLW_TIMEDOUT, LLW_ASSERT, llw_start,
 * llw_start_instance, llw_log, llw_slurp, llw_log_count, llw_expect_exit,
 * llw_wait_exit, llw_stop, llw_stop_ok, llw_signal, llw_kill_all,
 * llw_status_str, llw_dump_logs, llw_check_alive.
 */
#ifndef LL_PROC_H
#define LL_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include <check.h>

/* Lines of each worker log printed when a test fails. */
#define LLW_TAIL_LINES 40

/* Status of llw_wait_exit() when the process is still running, and of
 * llw_stop() when it had to SIGKILL the process after the timeout. */
#define LLW_TIMEDOUT (-1000)

/* ck_assert_msg() that first prints the tail of every worker's log. */
#define LLW_ASSERT(expr, ...)                                                                      \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            llw_dump_logs();                                                                       \
            ck_abort_msg(__VA_ARGS__);                                                             \
        }                                                                                          \
    } while (0)

/*
 * Starts `bin` (no arguments) with the test's environment plus
 * LEDGERLINE_POSTGRES_DBNAME=dbname (when not NULL), LEDGERLINE_HTTP_PORT=0
 * (the endpoints off: set it in extra_env to serve them) plus `extra_env`
 * ("NAME=value" strings, NULL-terminated, may be NULL; later ones win).
 * stdout and stderr go to `logpath` (truncated), or when NULL to
 * /tmp/llw-<test pid>-<n>.log. The process is registered. Fails the test
 * if it cannot fork.
 */
pid_t llw_start(const char *bin, const char *dbname, const char *const *extra_env,
                const char *logpath);
/* llw_start(bin, dbname, ...) with LEDGERLINE_WORKER_INSTANCE=instance
 * followed by `extra` (NULL-terminated, may be NULL; at most 22 are
 * passed), the log under /tmp. */
pid_t llw_start_instance(const char *bin, const char *dbname, const char *instance,
                         const char *const *extra);
/* The log file of a registered process; "" if unknown. Static storage of
 * the registry: valid until llw_kill_all(). */
const char *llw_log(pid_t pid);
/* The whole file at path ("" if unreadable). Caller frees. */
char *llw_slurp(const char *path);
/* How many times `needle` occurs in the log of the registered pid. */
size_t llw_log_count(pid_t pid, const char *needle);

/* `pid` may exit (a crash test): waits no longer fail because of it. */
void llw_expect_exit(pid_t pid);
/* Waits up to timeout_ms for `pid` to exit and reaps it: its exit status
 * (>= 0), -signal when a signal killed it, LLW_TIMEDOUT if still running.
 * A process reaped before returns the status recorded then. */
int llw_wait_exit(pid_t pid, int timeout_ms);
/* SIGTERM, then llw_wait_exit(timeout_ms); if it still runs: SIGKILL,
 * reap, and LLW_TIMEDOUT. */
int llw_stop(pid_t pid, int timeout_ms);
/* llw_stop(pid, timeout_ms) must give exit 0: a worker finishes its batch
 * on SIGTERM. Fails the test with the status otherwise, the message
 * starting with `what` (names the worker or the step; NULL: nothing). */
void llw_stop_ok(pid_t pid, int timeout_ms, const char *what);
/* kill(pid, sig) for a registered, not yet reaped process. */
void llw_signal(pid_t pid, int sig);
/* SIGKILLs and reaps every registered process still running, removes the
 * log files (kept when LLW_KEEP_LOGS is set in the environment) and
 * empties the registry. Never fails the test. */
void llw_kill_all(void);

/* "exit 0", "killed by signal 9 (Killed)", "still running (timed out)".
 * Static buffer: valid until the next call. */
const char *llw_status_str(int status);
/* Prints to stderr the last LLW_TAIL_LINES lines of every registered
 * process's log, with its pid and status. */
void llw_dump_logs(void);
/* Fails the test (with logs) if a registered process not marked by
 * llw_expect_exit() has exited. Called by every wait of ll_wait.h. */
void llw_check_alive(void);

#endif
