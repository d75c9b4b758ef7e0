/*
 * ll_wait.c - waiting in a test: see ll_wait.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <check.h>

#include "clock.h"
#include "ll_proc.h"
#include "ll_wait.h"

int64_t llw_now_ms(void)
{
    return clock_mono_ms();
}

void llw_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void llw_wait_until(llw_cond_fn cond, void *arg, int timeout_ms, const char *what)
{
    int64_t start = llw_now_ms();
    char status[512];
    for (;;) {
        llw_check_alive();
        status[0] = '\0';
        if (cond(arg, status, sizeof status))
            return;
        if (llw_now_ms() - start >= timeout_ms) {
            llw_dump_logs();
            ck_abort_msg("timed out after %d ms waiting for %s (last seen: %s)", timeout_ms, what,
                         status[0] ? status : "-");
        }
        llw_sleep_ms(50);
    }
}

bool llw_try_scalar(db_t *db, const char *sql, int64_t *out)
{
    if (!db_is_up(db) && db_connect(db) != LL_OK)
        return false;
    PGresult *r = NULL;
    if (db_query(db, &r, sql, 0, NULL) != LL_OK) {
        if (db_connect(db) != LL_OK)
            db_close(db);
        return false;
    }
    bool ok = PQntuples(r) >= 1 && !PQgetisnull(r, 0, 0);
    if (ok)
        *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return ok;
}

typedef struct {
    db_t *db;
    char sql[1024];
    int64_t want;
} sql_wait_t;

static bool sql_cond(void *arg, char *status, size_t n)
{
    sql_wait_t *w = arg;
    int64_t have = -1;
    llw_try_scalar(w->db, w->sql, &have);
    snprintf(status, n, "%" PRId64 " of %" PRId64 " (%s)", have, w->want, w->sql);
    return have == w->want;
}

void llw_wait_sql(db_t *db, int64_t want, int timeout_ms, const char *what, const char *fmt, ...)
{
    sql_wait_t w = {.db = db, .want = want};
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(w.sql, sizeof w.sql, fmt, ap);
    va_end(ap);
    ck_assert_msg(len >= 0 && (size_t)len < sizeof w.sql, "query too long: %s...", w.sql);
    llw_wait_until(sql_cond, &w, timeout_ms, what);
}

typedef struct {
    pid_t pid;
    const char *needle;
} log_wait_t;

static bool log_cond(void *arg, char *status, size_t n)
{
    const log_wait_t *w = arg;
    size_t have = llw_log_count(w->pid, w->needle);
    snprintf(status, n, "'%s' logged %zu time(s) by %d", w->needle, have, (int)w->pid);
    return have > 0;
}

void llw_wait_logged(pid_t pid, const char *needle, int timeout_ms, const char *what)
{
    log_wait_t w = {pid, needle};
    llw_wait_until(log_cond, &w, timeout_ms, what);
}

typedef struct {
    db_t *db;
    int64_t n;
} lock_wait_t;

static bool lock_waiters_cond(void *arg, char *status, size_t n)
{
    const lock_wait_t *w = arg;
    int64_t waiting = 0;
    llw_try_scalar(w->db,
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                   &waiting);
    snprintf(status, n, "%" PRId64 " backend(s) waiting for a lock, want %" PRId64, waiting, w->n);
    return waiting >= w->n;
}

void llw_wait_lock_waiters(db_t *db, int64_t n, int timeout_ms, const char *what)
{
    lock_wait_t w = {db, n};
    llw_wait_until(lock_waiters_cond, &w, timeout_ms, what);
}
