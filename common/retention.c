/*
 * retention.c - the retention job of the bookkeeping: see retention.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "retention.h"
#include "tick.h"

static int prepare(db_t *db, const settings_t *cfg, int *created)
{
    char part[24], ahead[24];
    snprintf(part, sizeof part, "%lld", cfg->retention.partition_s);
    snprintf(ahead, sizeof ahead, "%lld", cfg->retention.ahead_s);
    const char *p[] = {part, ahead};
    PGresult *r;
    int rc = db_query(db, &r, "SELECT retention_prepare($1::integer, $2::integer)", 2, p);
    if (rc != LL_OK)
        return rc;
    *created = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return LL_OK;
}

static int expire(db_t *db, const settings_t *cfg, retention_report_t *out)
{
    char window[24];
    snprintf(window, sizeof window, "%lld", cfg->retention.window_s);
    const char *p[] = {window, cfg->retention.archive_first ? "true" : "false"};
    PGresult *r;
    int rc = db_query(db, &r,
                      "SELECT part, lo::text, hi::text, action "
                      "FROM retention_expire($1::integer, $2::boolean)",
                      2, p);
    if (rc != LL_OK)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *action = PQgetvalue(r, i, 3);
        if (strcmp(action, "dropped") == 0) {
            out->dropped++;
            log_info("retention: dropped partition %s [%s, %s)", PQgetvalue(r, i, 0),
                     PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        } else {
            out->kept++;
            log_warn("retention: partition %s [%s, %s) is past retention.window_s but %s",
                     PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), action);
        }
    }
    PQclear(r);
    return LL_OK;
}

/* One transaction of the job: its settings and report, which step, and
 * whether it takes the job's lock with a try (a worker) or waits for it
 * (ledgerctl migrate: retention_prepare() waits in SQL). */
typedef struct job {
    const settings_t *cfg;
    retention_report_t *out;
    bool expire; /* expiry, else partitions ahead */
    bool try_lock;
} job_t;

/* In the job's transaction: lock_timeout, and the job's advisory lock
 * (*busy when another worker's job holds it). */
static int job_lock(db_t *db, bool *busy)
{
    int rc = db_exec(db, "SET LOCAL lock_timeout = '" RETENTION_LOCK_TIMEOUT "'");
    PGresult *r = NULL;
    if (rc == LL_OK)
        rc = db_query(db, &r, "SELECT pg_try_advisory_xact_lock(4, 0)", 0, NULL);
    if (rc == LL_OK) {
        *busy = strcmp(PQgetvalue(r, 0, 0), "t") != 0;
        PQclear(r);
    }
    return rc;
}

/* tick_transact()'s work: the step; rolled back when another worker runs
 * the job or the step changed nothing. */
static int job_work(db_t *db, tick_txn_t *tx, void *arg)
{
    (void)tx;
    job_t *j = arg;
    int rc = j->try_lock ? job_lock(db, &j->out->busy) : LL_OK;
    if (rc != LL_OK || j->out->busy)
        return rc == LL_OK ? TICK_ROLLBACK : rc;
    rc = j->expire ? expire(db, j->cfg, j->out) : prepare(db, j->cfg, &j->out->created);
    bool changed = j->expire ? j->out->dropped > 0 : j->out->created > 0;
    return rc == LL_OK && !changed ? TICK_ROLLBACK : rc;
}

/* Runs one step in a transaction of tick_transact() (crash points
 * before_<what>_commit, after_<what>_commit): LL_OK also when it rolled
 * back with nothing to do. */
static int job_transact(db_t *db, job_t *j, const char *what)
{
    tick_env_t env = {.db = db, .cfg = j->cfg};
    int rc = tick_transact(&env, what, job_work, j);
    tick_events_clear(&env); /* it adds none */
    return rc == TICK_ROLLBACK ? LL_OK : rc;
}

int retention_run(db_t *db, const settings_t *cfg, retention_report_t *out)
{
    memset(out, 0, sizeof *out);
    job_t j = {cfg, out, false, true};
    /* partitions ahead in a transaction of their own: a drop that cannot
     * get its lock must not take them with it */
    int rc = job_transact(db, &j, "retention_ahead");
    if (rc != LL_OK || out->busy || !cfg->retention.expire)
        return rc;
    j.expire = true;
    rc = job_transact(db, &j, "retention");
    if (rc != LL_OK)
        out->dropped = out->kept = 0;
    return rc;
}

int retention_prepare(db_t *db, const settings_t *cfg, int *created)
{
    retention_report_t out = {0};
    job_t j = {cfg, &out, false, false};
    int rc = job_transact(db, &j, "retention_ahead");
    *created = rc == LL_OK ? out.created : 0;
    return rc;
}
