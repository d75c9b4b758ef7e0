/*
 * ll_test.h - helpers for the Check suites: the stack's coordinates from
 * the environment, fresh PostgreSQL databases per test, running ledgerctl
 * and capturing what it prints.
 *
 * Integration tests need the LEDGERLINE_* variables of a running stack
 * (./ops/test exports them; by hand: eval "$(./ops/stack env)"). When they
 * are missing a test FAILS with that advice; it never skips.
 *
 * Public API: llt_env, llt_secret, llt_db, llt_tmpdb, llt_dropdb, llt_restore,
 * llt_ledger, llt_mq, llt_run, llt_ctl, llt_scalar, llt_exec, llt_json,
 * llt_run_suite.
 */
#ifndef LL_TEST_H
#define LL_TEST_H

#include <check.h>
#include <jansson.h>
#include <stdint.h>

#include "db.h"
#include "mq.h"

/* The value of an environment variable the test needs; fails the test
 * with advice when it is unset. */
const char *llt_env(const char *name);
/* A secret from LEDGERLINE_<X> or the file named by LEDGERLINE_<X>_FILE;
 * "" when neither is set. Caller frees. */
char *llt_secret(const char *var);

/* A connected client on database `dbname` (NULL: the stack's own). */
db_t *llt_db(const char *dbname);
/* Creates an empty database with a unique name; returns it (static buffer
 * per call site is not needed: caller frees). */
char *llt_tmpdb(void);
void llt_dropdb(const char *name);
/* Restores the pg_dump (custom format) `dump` into the empty database
 * `dbname` and gives it a new ledger identity. */
void llt_restore(const char *dbname, const char *dump);
/* llt_tmpdb() migrated with `ledgerctl migrate`: an empty ledger. When
 * LEDGERLINE_TEST_LEDGER_FROM names a dump (the upgrade pass: see
 * tests/fixtures/upgrade/README.md), the database is restored from it
 * first, so the ledger is one an older build created, upgraded. */
char *llt_ledger(void);
/* A connected AMQP client on the stack's broker. */
mq_t *llt_mq(void);

/* Runs `cmd` with /bin/sh, capturing stdout and stderr together into *out
 * (caller frees; may be NULL to discard). Returns the exit status, or -1
 * if it did not exit normally. */
int llt_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs ledgerctl with the given arguments against database `dbname`
 * (NULL: the stack's own). stdout only into *out; stderr into *err if not
 * NULL. Returns the exit status. */
int llt_ctl(char **out, char **err, const char *dbname, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The first column of the first row of `sql` as int64; fails the test on
 * error or no row. */
int64_t llt_scalar(db_t *db, const char *sql);
/* Runs `sql`, failing the test on error. */
void llt_exec(db_t *db, const char *sql);
/* Parses `text` as JSON, failing the test if it is not. Caller decrefs. */
json_t *llt_json(const char *text);

/* Runs suite `s` (no fork when CK_FORK=no; CK_RUN_CASE picks one test
 * case), prints the summary, returns the process exit status: 1 when a
 * test failed or none ran. */
int llt_run_suite(Suite *s);

#endif
