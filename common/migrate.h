/*
 * migrate.h - brings a database to the schema this binary was built with
 * (docs/ledger.md#schema-evolution), from the files of schemas/sql/
 * compiled into it:
 *
 *   1. the numbered migrations, schemas/sql/migrations/NNN_name.sql
 *      (tables, indexes, data): each applied exactly once, in its own
 *      transaction together with its record in schema_migrations (version,
 *      name, checksum). A migration whose text changed after it was applied
 *      is an error, never silently skipped, unless the file names the
 *      recorded checksum in a line "-- supersedes: <sha256>" (a rewrite
 *      that changes nothing a database holds); the record is then updated.
 *   2. the function set, schemas/sql/functions/<function>.sql (one
 *      CREATE OR REPLACE each): re-applied whole, in one transaction,
 *      whenever its checksum differs from the one in schema_functions.
 *
 * Safe when several processes migrate at once: the whole run holds a
 * PostgreSQL advisory lock, so the second waits and then finds nothing to
 * do. Workers call migrate_check() at connect and refuse a database that
 * is not exactly at their build's schema.
 *
 * Public API: migrate_step_t, migrate_report_fn, migrate_run, migrate_check,
 * migrate_functions_checksum.
 */
#ifndef LL_MIGRATE_H
#define LL_MIGRATE_H

#include "db.h"
#include "err.h"

typedef enum {
    MIGRATE_APPLIED,           /* a migration applied by this run */
    MIGRATE_PRESENT,           /* a migration applied before */
    MIGRATE_REWRITTEN,         /* applied before as a text the file supersedes */
    MIGRATE_FUNCTIONS_APPLIED, /* the function set (re)applied by this run */
    MIGRATE_FUNCTIONS_PRESENT, /* the function set was already this build's */
} migrate_step_t;

/* Called once per migration (version, "NNN_name.sql") and once for the
 * function set (version = number of functions, name = its checksum). */
typedef void migrate_report_fn(void *ud, migrate_step_t step, int version, const char *name);

/* Applies what is pending. LL_OK, or an error with the reason in err. */
int migrate_run(db_t *db, migrate_report_fn *report, void *ud, char *err,
                size_t errlen) LL_MUSTCHECK;

/* LL_OK when every compiled-in migration is applied and the database's
 * function set is this build's. LL_ECONFIG when not (err says what
 * differs and to run `ledgerctl migrate`); *pending (may be NULL) gets the
 * number of migrations not applied. Another db error code when the server
 * could not be asked (err says why). */
int migrate_check(db_t *db, int *pending, char *err, size_t errlen) LL_MUSTCHECK;

/* The checksum of the compiled-in function set (hex SHA-256, static). */
const char *migrate_functions_checksum(void);

#endif
