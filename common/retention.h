/*
 * retention.h - the retention job of the bookkeeping (docs/ledger.md#retention):
 * processed and outbox are partitioned by time; the job creates their
 * partitions ahead (retention.ahead_s) and drops those older than
 * retention.window_s (retention.expire), never an outbox partition that
 * holds an event the broker has not confirmed, or whose time still has
 * processed rows; with retention.archive_first, only what `ledgerctl
 * archive` has written (table retention_archives).
 *
 * Every worker runs it when it starts and at each
 * retention.tick_interval_s; one at a time: each of the job's two
 * transactions (partitions ahead, then expiry) first takes
 * pg_try_advisory_xact_lock(4, 0), and a worker that does not get it does
 * nothing. A kill anywhere in the expiry drops all of its partitions or
 * none (crash points before_retention_commit, after_retention_commit;
 * the partitions ahead: before_retention_ahead_commit,
 * after_retention_ahead_commit). Both run as tick_transact() transactions
 * (tick.h) that add no event.
 * Its DDL first takes processed and outbox in one LOCK, waiting at most
 * RETENTION_LOCK_TIMEOUT, so batches queue behind it about that long at
 * most (then it gives up until the next tick).
 *
 * Public API: retention_report_t, retention_run, retention_prepare.
 */
#ifndef LL_RETENTION_H
#define LL_RETENTION_H

#include "db.h"
#include "err.h"
#include "settings.h"

#define RETENTION_LOCK_TIMEOUT "1s"

typedef struct retention_report {
    bool busy;   /* another worker holds the job's lock: nothing done */
    int created; /* pairs of partitions created ahead */
    int dropped; /* partitions dropped (processed and outbox counted apart) */
    int kept;    /* old outbox partitions kept (unsent events, processed rows) */
} retention_report_t;

/* Runs the job once on db (no transaction open). Logs each partition
 * dropped or kept. LL_OK (see *out) or a db error (rolled back). */
int retention_run(db_t *db, const settings_t *cfg, retention_report_t *out) LL_MUSTCHECK;

/* Creates the partitions ahead only, waiting for the job's lock (ledgerctl
 * migrate, after the migrations): *created gets how many pairs. */
int retention_prepare(db_t *db, const settings_t *cfg, int *created) LL_MUSTCHECK;

#endif
