/*
 * migrate.h - applies the numbered SQL migrations of schemas/sql/ (compiled
 * into the binary) exactly once each, recorded in schema_migrations.
 *
 * Safe when several processes migrate at the same time: the whole run holds
 * a PostgreSQL advisory lock, so the second waits and then finds nothing to
 * do. Each migration runs in its own transaction together with its record.
 * A migration whose file changed after it was applied is an error (its
 * checksum is recorded), never silently skipped.
 *
 * Public API: migrate_run, migrate_pending.
 */
#ifndef LL_MIGRATE_H
#define LL_MIGRATE_H

#include "db.h"
#include "err.h"

/* Called once per migration: applied = 1 if this run applied it, 0 if it
 * was applied before. */
typedef void migrate_report_fn(void *ud, int version, const char *name, int applied);

/* Applies what is pending. LL_OK, or an error with the reason in err. */
int migrate_run(db_t *db, migrate_report_fn *report, void *ud, char *err,
                size_t errlen) LL_MUSTCHECK;

/* Number of migrations compiled in but not applied (0 = up to date), or a
 * negative error. Workers call it at start to refuse an old schema. */
int migrate_pending(db_t *db, char *err, size_t errlen) LL_MUSTCHECK;

#endif
