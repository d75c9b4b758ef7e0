/*
 * retention.c - the retention job of the bookkeeping: see retention.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash.h"
#include "log.h"
#include "retention.h"

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

/* BEGIN; lock_timeout; the job's advisory lock (*busy when another holds
 * it). LL_OK with the transaction open unless *busy. */
static int begin_job(db_t *db, bool *busy)
{
    int rc = db_exec(db, "BEGIN");
    if (rc == LL_OK)
        rc = db_exec(db, "SET LOCAL lock_timeout = '" RETENTION_LOCK_TIMEOUT "'");
    PGresult *r = NULL;
    if (rc == LL_OK)
        rc = db_query(db, &r, "SELECT pg_try_advisory_xact_lock(4, 0)", 0, NULL);
    if (rc == LL_OK) {
        *busy = strcmp(PQgetvalue(r, 0, 0), "t") != 0;
        PQclear(r);
        if (*busy)
            rc = db_exec(db, "ROLLBACK");
    }
    return rc;
}

/* COMMIT when the transaction changed something (crash points around it
 * when `points`), else ROLLBACK; on an error, ROLLBACK. */
static int end_job(db_t *db, int rc, bool changed, bool points)
{
    if (rc == LL_OK && changed) {
        if (points)
            crash_point("before_retention_commit");
        rc = db_exec(db, "COMMIT");
        if (rc == LL_OK && points)
            crash_point("after_retention_commit");
    } else if (rc == LL_OK) {
        rc = db_exec(db, "ROLLBACK");
    }
    if (rc != LL_OK)
        db_try(db, "ROLLBACK");
    return rc;
}

int retention_run(db_t *db, const settings_t *cfg, retention_report_t *out)
{
    memset(out, 0, sizeof *out);
    /* partitions ahead in a transaction of their own: a drop that cannot
     * get its lock must not take them with it */
    int rc = begin_job(db, &out->busy);
    if (rc != LL_OK || out->busy)
        return rc;
    rc = end_job(db, prepare(db, cfg, &out->created), out->created > 0, false);
    if (rc != LL_OK || !cfg->retention.expire)
        return rc;
    rc = begin_job(db, &out->busy);
    if (rc != LL_OK || out->busy)
        return rc;
    rc = expire(db, cfg, out);
    rc = end_job(db, rc, out->dropped > 0, true);
    if (rc != LL_OK)
        out->dropped = out->kept = 0;
    return rc;
}

int retention_prepare(db_t *db, const settings_t *cfg, int *created)
{
    *created = 0;
    int rc = db_exec(db, "BEGIN");
    if (rc == LL_OK)
        rc = prepare(db, cfg, created);
    if (rc == LL_OK)
        rc = db_exec(db, "COMMIT");
    if (rc != LL_OK)
        db_try(db, "ROLLBACK");
    return rc;
}
