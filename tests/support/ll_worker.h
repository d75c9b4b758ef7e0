/*
 * ll_worker.h - helpers for the integration suites that run real worker
 * processes: start and stop them, wait for what they do (every wait has a
 * deadline and fails the test with the workers' log tails), read the events
 * they publish, stop and start the stack's servers, and a one-at-a-time
 * model of the ledger to compare with.
 *
 * Worker processes:
 *   - each is registered; llw_kill_all() (call it from the fixture
 *     teardown) SIGKILLs and reaps whatever is left. In Check's fork mode a
 *     failing test _exit()s without running the teardown: Check then
 *     SIGKILLs the test's process group, which the workers belong to, and
 *     every worker also has PR_SET_PDEATHSIG = SIGKILL, so none survives the
 *     test that started it;
 *   - stdout and stderr go to a log file under /tmp; LLW_ASSERT() and every
 *     failing wait print the tail of each registered worker's log;
 *   - a worker that exits while a wait is running fails the test at once
 *     (unless llw_expect_exit() said it may), with its status and log.
 *
 * Servers: llw_stack() runs ops/stack in a new session (setsid), so a
 * server it starts never belongs to the test's process group (which Check
 * kills after each test). llw_stack_restore() starts whatever is down and
 * never fails the test: it is safe in an unchecked fixture.
 *
 * Public API: LLW_ASSERT, LLW_TIMEDOUT, llw_now_ms, llw_sleep_ms, llw_start,
 * llw_log, llw_expect_exit, llw_wait_exit, llw_stop, llw_signal,
 * llw_kill_all, llw_status_str, llw_dump_logs, llw_check_alive,
 * llw_cond_fn, llw_wait_until, llw_queue_depth, llw_purge,
 * llw_wait_consuming, llw_wait_drained, llw_publish_raw,
 * llw_publish_approved, llw_confirm, llw_queue_drain, llw_header,
 * llw_events_t, llw_events_open, llw_events_collect, llw_events_all,
 * llw_events_count, llw_events_distinct, llw_events_find,
 * llw_events_close, llw_stack, llw_stack_is_up, llw_stack_restore, llw_kv,
 * llw_redis_key, llw_ctl, llw_account_t, llw_accounts_create,
 * llw_model_apply, llw_model_find, llw_balance, llw_assert_verify, llw_count,
 * llw_try_scalar, llw_text, llw_slurp, llw_log_count, llw_start_instance,
 * llw_stop_ok, llw_wait_logged, llw_wait_lock_waiters, llw_wait_events, llw_payment,
 * llw_payment_queues,
 * LLW_FIXTURE.
 */
#ifndef LL_WORKER_H
#define LL_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>
#include <jansson.h>

#include "db.h"
#include "kv.h"
#include "mq.h"
#include "msg.h"

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

/* Monotonic milliseconds. */
int64_t llw_now_ms(void);
void llw_sleep_ms(int ms);

/* ---- worker processes ------------------------------------------------- */

/*
 * Starts `bin` (no arguments) with the test's environment plus
 * LEDGERLINE_POSTGRES_DBNAME=dbname (when not NULL) plus `extra_env`
 * ("NAME=value" strings, NULL-terminated, may be NULL; later ones win).
 * stdout and stderr go to `logpath` (truncated), or when NULL to
 * /tmp/llw-<test pid>-<n>.log. The process is registered. Fails the test
 * if it cannot fork.
 */
pid_t llw_start(const char *bin, const char *dbname, const char *const *extra_env,
                const char *logpath);
/* The log file of a registered process; "" if unknown. Static storage of
 * the registry: valid until llw_kill_all(). */
const char *llw_log(pid_t pid);
/* llw_start(bin, dbname, ...) with LEDGERLINE_WORKER_INSTANCE=instance
 * followed by `extra` (NULL-terminated, may be NULL; at most 22 are
 * passed), the log under /tmp. */
pid_t llw_start_instance(const char *bin, const char *dbname, const char *instance,
                         const char *const *extra);
/* llw_stop(pid, timeout_ms) must give exit 0: a worker finishes its batch
 * on SIGTERM. Fails the test with the status otherwise. */
void llw_stop_ok(pid_t pid, int timeout_ms);
/* The whole file at path ("" if unreadable). Caller frees. */
char *llw_slurp(const char *path);
/* How many times `needle` occurs in the log of the registered pid. */
size_t llw_log_count(pid_t pid, const char *needle);
/* Until the log of pid holds `needle` (fails the test after timeout_ms,
 * naming `what`). */
void llw_wait_logged(pid_t pid, const char *needle, int timeout_ms, const char *what);
/* Until at least n other backends of db's database wait for a lock (a
 * worker blocked on a row the test holds), or fails with `what`. */
void llw_wait_lock_waiters(db_t *db, int64_t n, int timeout_ms, const char *what);
/* `pid` may exit (a crash test): waits no longer fail because of it. */
void llw_expect_exit(pid_t pid);
/* Waits up to timeout_ms for `pid` to exit and reaps it: its exit status
 * (>= 0), -signal when a signal killed it, LLW_TIMEDOUT if still running.
 * A process reaped before returns the status recorded then. */
int llw_wait_exit(pid_t pid, int timeout_ms);
/* SIGTERM, then llw_wait_exit(timeout_ms); if it still runs: SIGKILL,
 * reap, and LLW_TIMEDOUT. */
int llw_stop(pid_t pid, int timeout_ms);
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
 * llw_expect_exit() has exited. Called by every wait below. */
void llw_check_alive(void);

/* ---- waiting ---------------------------------------------------------- */

/* A condition: true when met. It may write what it sees into `status`
 * (n bytes) for the failure message ("processed 120 of 200"). */
typedef bool (*llw_cond_fn)(void *arg, char *status, size_t n);
/* Polls `cond` every 50 ms until it holds. Fails the test, naming `what`
 * and the last status, after timeout_ms or when a worker exits
 * unexpectedly. */
void llw_wait_until(llw_cond_fn cond, void *arg, int timeout_ms, const char *what);

/* Ready messages of `queue` (fails the test if it does not exist). */
uint32_t llw_queue_depth(mq_t *m, const char *queue);
/* Purges each of the NULL-terminated queue names. */
void llw_purge(mq_t *m, const char *const *queues);
/* Until `queue` has at least `consumers` consumers. */
void llw_wait_consuming(mq_t *m, const char *queue, uint32_t consumers, int timeout_ms);
/* Until `queue` has shown 0 ready messages for 300 ms in a row. Ready
 * only: unacked deliveries are not counted. */
void llw_wait_drained(mq_t *m, const char *queue, int timeout_ms);

/* ---- publishing and reading messages ----------------------------------- */

/* Publishes one persistent, mandatory message (content_type JSON,
 * message_id and type may be NULL). Not confirmed: see llw_confirm(). */
void llw_publish_raw(mq_t *m, const char *exchange, const char *rk, const char *message_id,
                     const char *type, const void *body, size_t len);
/* Encodes p as payment.approved (score 0, no rules) and publishes it the
 * way the risk stage does: exchange ledgerline.events, routing key and
 * type payment.approved, message_id = payment_id. Returns the body
 * (caller frees). Not confirmed. */
char *llw_publish_approved(mq_t *m, const msg_payment_t *p, int64_t occurred_ms);
/* Waits for every publish since the last call to be confirmed and routed. */
void llw_confirm(mq_t *m);

/* Takes (and acks) every ready message of `queue`: a new JSON array of
 * {"routing_key", "message_id", "type", "body", "headers": {name: value}}
 * (string values, integers as integers). Caller decrefs. */
json_t *llw_queue_drain(mq_t *m, const char *queue);
/* The string header `name` of a message object of llw_queue_drain(), or
 * NULL. Borrowed. */
const char *llw_header(const json_t *msg, const char *name);

/*
 * An event tap: a classic queue "llt.events.<pid>.<n>" of its own
 * connection, bound to ledgerline.events with `binding_key` (NULL: "#"),
 * purged, expiring 10 minutes after its last use (so a test that dies
 * leaves nothing behind for long). llw_events_collect() moves what is
 * ready into memory; the rest read that. Survives a broker restart
 * (reconnects and redeclares when a read fails).
 */
typedef struct llw_events llw_events_t;
llw_events_t *llw_events_open(const char *binding_key);
/* Reads every ready message; returns how many were new. */
size_t llw_events_collect(llw_events_t *ev);
/* Everything collected, in arrival order: objects {"routing_key",
 * "message_id", "type", "body" (string), "json" (the parsed body or
 * null)}. Borrowed. */
json_t *llw_events_all(llw_events_t *ev);
/* Collected events with routing key `rk` (NULL: any) and body payment_id
 * `payment_id` (NULL: any). */
size_t llw_events_count(llw_events_t *ev, const char *rk, const char *payment_id);
/* Distinct event_ids (from the bodies) among events with routing key rk. */
size_t llw_events_distinct(llw_events_t *ev, const char *rk);
/* The nth (0-based) collected event with that rk and payment_id; NULL if
 * none. Borrowed. */
json_t *llw_events_find(llw_events_t *ev, const char *rk, const char *payment_id, size_t nth);
/* Deletes the queue, closes, frees. NULL is a no-op. */
void llw_events_close(llw_events_t *ev);
/* Collects ev until it holds at least n events of routing key rk for
 * payment_id (fails the test after timeout_ms). */
void llw_wait_events(llw_events_t *ev, const char *rk, const char *payment_id, size_t n,
                     int timeout_ms);

/* ---- the stack's servers ---------------------------------------------- */

/* Runs `$LL_SOURCE_DIR/ops/stack --name $LEDGERLINE_STACK_NAME cmd server`
 * in a new session with a 180 s deadline; returns its exit status (its
 * output is printed when it is not 0). */
int llw_stack(const char *cmd, const char *server);
/* What `ops/stack status` says of `server`. */
bool llw_stack_is_up(const char *server);
/* start-one for each server that is down. Never fails the test. */
void llw_stack_restore(void);

/* A Redis client on the stack's Redis, with no key prefix (pass full keys,
 * see llw_redis_key()). Caller frees with kv_free(). */
kv_t *llw_kv(void);
/* The idempotency key of payment_id in stage on the ledger `db` is
 * connected to, into out: "<prefix>idem:<ledger id>:<stage>:<payment_id>",
 * prefix = LEDGERLINE_REDIS_KEY_PREFIX or "ll:", ledger id = the row of
 * table ledger_identity (schemas/sql/004_ledger_identity.sql). */
void llw_redis_key(char *out, size_t n, db_t *db, const char *stage, const char *payment_id);

/* ---- the ledger ------------------------------------------------------- */

/* Runs ledgerctl on `dbname`; fails the test unless it exits 0. */
void llw_ctl(const char *dbname, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An account of the test and of the model. */
typedef struct llw_account {
    const char *id;
    const char *currency;
    int64_t balance;   /* funded with this much (>= 0) at creation */
    int64_t overdraft; /* overdraft_limit */
    bool frozen;
} llw_account_t;

/* Creates, funds and freezes each account with ledgerctl. */
void llw_accounts_create(const char *dbname, const llw_account_t *a, size_t n);
/* The account `id` of accts, or NULL. */
llw_account_t *llw_model_find(llw_account_t *accts, size_t n, const char *id);
/* Applies p to the model as ledger_post() does, in this order of checks:
 * unknown_account, account_frozen, currency_mismatch, insufficient_funds.
 * Returns "completed" (balances moved) or the refusal reason; "overflow"
 * when a balance would leave int64 (the database raises an error). */
const char *llw_model_apply(llw_account_t *accts, size_t n, const msg_payment_t *p);
/* accounts.balance of `id`; fails the test if there is no such account. */
int64_t llw_balance(db_t *db, const char *id);
/* `ledgerctl verify` must exit 0 (fails with its report and the logs). */
void llw_assert_verify(const char *dbname);
/* llt_scalar() of a formatted query. */
int64_t llw_count(db_t *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first column of the first row of `sql` into *out; false on any
 * error (after which the connection is re-established when possible): for
 * conditions polled while a server restarts. */
bool llw_try_scalar(db_t *db, const char *sql, int64_t *out);
/* The text of the first column of the first row of a formatted query, or
 * NULL (no row, or NULL). Fails the test if the query fails. Caller
 * frees. */
char *llw_text(db_t *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A payment with the unique id "<ledger>-<tag>" (Redis is shared by every
 * test: ids must never repeat across tests), no description or metadata. */
msg_payment_t llw_payment(const char *ledger, const char *tag, const char *payer, const char *payee,
                          int64_t amount, const char *currency);

/* ---- the common fixture of the worker suites --------------------------- */

/* What a worker test needs: a fresh migrated ledger, the topology, clients,
 * the stage's queues purged, and a private queue collecting every event. */
typedef struct llw_fixture {
    char *ledger; /* database name */
    db_t *db;
    mq_t *m;
    llw_events_t *ev;
} llw_fixture_t;

/* Sets up *f; `purge` is a NULL-terminated list of queues to empty. */
void llw_fixture_up(llw_fixture_t *f, const char *const *purge);
/* Kills every registered worker, then releases and drops what up made. */
void llw_fixture_down(llw_fixture_t *f);

/* The queues of the payment stage, NULL-terminated: what its suites purge. */
extern const char *const llw_payment_queues[];

/*
 * The fixture of a suite that needs nothing more than llw_fixture_up():
 * defines the statics fx and its aliases ledger, db, m, ev, and setup() /
 * teardown() for tcase_add_checked_fixture(), purging `purge` (a
 * NULL-terminated array of queue names).
 */
#define LLW_FIXTURE(purge)                                                                         \
    static char *ledger;                                                                           \
    static db_t *db;                                                                               \
    static mq_t *m;                                                                                \
    static llw_events_t *ev;                                                                       \
    static llw_fixture_t fx;                                                                       \
    static void setup(void)                                                                        \
    {                                                                                              \
        llw_fixture_up(&fx, (purge));                                                              \
        ledger = fx.ledger, db = fx.db, m = fx.m, ev = fx.ev;                                      \
    }                                                                                              \
    static void teardown(void)                                                                     \
    {                                                                                              \
        llw_fixture_down(&fx);                                                                     \
    }

#endif
