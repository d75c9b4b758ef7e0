/*
 * test_migrate.c - `ledgerctl migrate` against a real PostgreSQL: applies
 * every migration once and the function set, is a no-op the second time,
 * is safe when several processes migrate the same database at once,
 * refuses a migration that changed after it was applied unless the file
 * supersedes that text, re-applies the function set when the database's
 * differs, and migrate_check() tells a worker which of these is wrong.
 * Every SQL function lives in exactly one file named after it, and a
 * migrated database holds exactly those functions.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embed.h"
#include "ll_test.h"
#include "migrate.h"

static int compiled(const char *dir)
{
    int n = 0;
    for (const embed_file_t *f = embed_files; f->name; f++)
        n += strncmp(f->name, dir, strlen(dir)) == 0;
    return n;
}

static int compiled_migrations(void)
{
    return compiled("sql/migrations/");
}

static int compiled_functions(void)
{
    return compiled("sql/functions/");
}

/* The functions of the public schema that no extension owns. */
static int64_t functions_in(db_t *db)
{
    return llt_scalar(db, "SELECT count(*) FROM pg_proc p "
                          "JOIN pg_namespace n ON n.oid = p.pronamespace "
                          "WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d "
                          "WHERE d.objid = p.oid AND d.deptype = 'e')");
}

START_TEST(migrate_applies_all_then_nothing)
{
    char *name = llt_tmpdb();
    char *out, *err;
    int rc = llt_ctl(&out, &err, name, "migrate");
    ck_assert_msg(rc == 0, "first migrate: %s%s", out, err);
    ck_assert_ptr_nonnull(strstr(out, "applied         001_ledger.sql"));
    free(out);
    free(err);

    ck_assert_msg(compiled_migrations() >= 14 && compiled_functions() >= 13,
                  "the build embeds %d migrations and %d functions", compiled_migrations(),
                  compiled_functions());
    db_t *db = llt_db(name);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM schema_migrations"),
                     compiled_migrations());
    char e[512];
    int pending = -1;
    ck_assert_msg(migrate_check(db, &pending, e, sizeof e) == LL_OK, "%s", e);
    ck_assert_int_eq(pending, 0);
    ck_assert_int_eq(functions_in(db), compiled_functions());
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM schema_functions WHERE checksum = '%s'",
             migrate_functions_checksum());
    ck_assert_int_eq(llt_scalar(db, q), 1);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM information_schema.tables "
                                    "WHERE table_name IN ('accounts','transfers','entries')"),
                     3);

    rc = llt_ctl(&out, &err, name, "--json migrate");
    ck_assert_msg(rc == 0, "second migrate: %s%s", out, err);
    json_t *j = llt_json(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "applied")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(j, "migrations")), compiled_migrations());
    json_t *fn = json_object_get(j, "functions");
    ck_assert(json_is_false(json_object_get(fn, "applied")));
    ck_assert_int_eq(json_integer_value(json_object_get(fn, "count")), compiled_functions());
    json_decref(j);
    free(out);
    free(err);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM schema_migrations"),
                     compiled_migrations());
    db_free(db);
    llt_dropdb(name);
    free(name);
}
END_TEST

START_TEST(migrate_check_counts_an_empty_database_as_pending)
{
    char *name = llt_tmpdb();
    db_t *db = llt_db(name);
    char e[512];
    int pending = -1;
    ck_assert_int_eq(migrate_check(db, &pending, e, sizeof e), LL_ECONFIG);
    ck_assert_int_eq(pending, compiled_migrations());
    ck_assert_msg(strstr(e, "migration(s) behind") && strstr(e, "ledgerctl migrate"), "%s", e);
    db_free(db);
    llt_dropdb(name);
    free(name);
}
END_TEST

START_TEST(migrate_concurrently_applies_once)
{
    char *name = llt_tmpdb();
    enum { N = 6 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        ck_assert(pids[i] >= 0);
        if (pids[i] == 0) {
            char cmd[512];
            snprintf(cmd, sizeof cmd,
                     "LEDGERLINE_POSTGRES_DBNAME=%s %s migrate >/dev/null 2>/tmp/llt_mig_%d_%d",
                     name, LEDGERCTL_BIN, (int)getppid(), i);
            _exit(WEXITSTATUS(system(cmd)));
        }
    }
    for (int i = 0; i < N; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "migrator %d failed (see "
                      "/tmp/llt_mig_*)",
                      i);
    }
    db_t *db = llt_db(name);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM schema_migrations"),
                     compiled_migrations());
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM pg_proc WHERE proname = 'ledger_post'"),
                     1);
    ck_assert_int_eq(functions_in(db), compiled_functions());
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM schema_functions"), 1);
    db_free(db);
    llt_dropdb(name);
    free(name);
}
END_TEST

START_TEST(migrate_refuses_a_changed_migration)
{
    char *name = llt_ledger();
    db_t *db = llt_db(name);
    llt_exec(db, "UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1");
    char *out, *err;
    int rc = llt_ctl(&out, &err, name, "migrate");
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err, "001_ledger.sql was changed after it was applied") != NULL, "%s",
                  err);
    ck_assert_msg(strstr(err, "fix:") != NULL, "%s", err);
    free(out);
    free(err);
    db_free(db);
    llt_dropdb(name);
    free(name);
}
END_TEST

/* A migration file may be rewritten without changing what a database
 * holds (its functions moved out, say) when it names the checksum of the
 * text it replaces: a database that applied that text is accepted and its
 * record updated; any other recorded checksum is still refused (above). */
START_TEST(migrate_accepts_and_updates_a_superseded_checksum)
{
    const embed_file_t *f = embed_find("sql/migrations/001_ledger.sql");
    ck_assert_ptr_nonnull(f);
    const char *line = strstr(f->data, "\n-- supersedes: ");
    ck_assert_msg(line != NULL, "001_ledger.sql names no superseded text");
    char old[65];
    snprintf(old, sizeof old, "%.64s", line + strlen("\n-- supersedes: "));
    char *name = llt_ledger();
    db_t *db = llt_db(name);
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE schema_migrations SET checksum = '%s' WHERE version = 1",
             old);
    llt_exec(db, sql);
    char e[512];
    ck_assert_int_eq(migrate_check(db, NULL, e, sizeof e), LL_OK); /* applied is applied */
    char *out, *err;
    int rc = llt_ctl(&out, &err, name, "migrate");
    ck_assert_msg(rc == 0, "%s%s", out, err);
    ck_assert_msg(strstr(out, "001_ledger.sql (its text was rewritten since: record updated)"),
                  "%s", out);
    free(out);
    free(err);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM schema_migrations WHERE checksum = '%s'", old);
    ck_assert_int_eq(llt_scalar(db, sql), 0);
    rc = llt_ctl(&out, &err, name, "migrate");
    ck_assert_msg(rc == 0 && strstr(out, "already applied 001_ledger.sql\n"), "%s%s", out, err);
    free(out);
    free(err);
    db_free(db);
    llt_dropdb(name);
    free(name);
}
END_TEST

/* A database whose functions are not this build's (an older or newer
 * ledgerctl migrated it, or someone edited a function by hand and the
 * record says so) is refused by migrate_check() with the fix, and
 * `ledgerctl migrate` puts the build's functions back. */
START_TEST(migrate_reapplies_a_function_set_that_differs)
{
    char *name = llt_ledger();
    db_t *db = llt_db(name);
    ck_assert_int_eq(llt_scalar(db, "SELECT settlement_fee(1000, 100, 5)"), 15);
    llt_exec(db, "CREATE OR REPLACE FUNCTION settlement_fee(p_amount bigint, p_bps integer, "
                 "p_fixed bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT 0::bigint $$");
    llt_exec(db, "UPDATE schema_functions SET checksum = 'an older build'");
    char e[512];
    int pending = -1;
    ck_assert_int_eq(migrate_check(db, &pending, e, sizeof e), LL_ECONFIG);
    ck_assert_int_eq(pending, 0);
    ck_assert_msg(strstr(e, "SQL functions are not this build's") && strstr(e, "ledgerctl migrate"),
                  "%s", e);
    char *out, *err;
    int rc = llt_ctl(&out, &err, name, "--json migrate");
    ck_assert_msg(rc == 0, "%s%s", out, err);
    json_t *j = llt_json(out);
    ck_assert(json_is_true(json_object_get(json_object_get(j, "functions"), "applied")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "applied")), 0);
    json_decref(j);
    free(out);
    free(err);
    ck_assert_int_eq(llt_scalar(db, "SELECT settlement_fee(1000, 100, 5)"), 15);
    ck_assert_int_eq(migrate_check(db, NULL, e, sizeof e), LL_OK);
    db_free(db);
    llt_dropdb(name);
    free(name);
}
END_TEST

/* The rule of schemas/sql/: each function file defines exactly one
 * function, the one it is named after, with CREATE OR REPLACE; no
 * migration defines a function. */
START_TEST(each_function_is_defined_once_in_its_own_file)
{
    int files = 0;
    for (const embed_file_t *f = embed_files; f->name; f++) {
        bool fn = strncmp(f->name, "sql/functions/", 14) == 0;
        bool mig = strncmp(f->name, "sql/migrations/", 15) == 0;
        if (!fn && !mig)
            continue;
        int defs = 0;
        for (const char *p = f->data; (p = strstr(p, "CREATE ")) != NULL; p++) {
            const char *q = p + 7;
            if (strncmp(q, "OR REPLACE ", 11) == 0)
                q += 11;
            if (strncmp(q, "FUNCTION ", 9) != 0)
                continue;
            defs++;
            ck_assert_msg(fn, "%s defines a function: functions live in schemas/sql/functions/",
                          f->name);
            ck_assert_msg(q != p + 7, "%s: write CREATE OR REPLACE FUNCTION", f->name);
            char want[128];
            snprintf(want, sizeof want, "%.*s(", (int)(strlen(f->name) - 14 - 4), f->name + 14);
            ck_assert_msg(strncmp(q + 9, want, strlen(want)) == 0,
                          "%s defines another function than %s", f->name, want);
        }
        if (fn) {
            ck_assert_msg(defs == 1, "%s defines %d functions, not 1", f->name, defs);
            files++;
        }
    }
    ck_assert_int_eq(files, compiled_functions());
}
END_TEST

START_TEST(migrate_names_an_unreachable_server_and_the_fix)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, NULL, "migrate");
    ck_assert_int_eq(rc, 0); /* the stack's own database: fine */
    free(out);
    free(err);
    rc = llt_run(&out, "LEDGERLINE_POSTGRES_PORT=1 %s migrate", LEDGERCTL_BIN);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(out, "127.0.0.1:1") && strstr(out, "fix:"), "%s", out);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("postgres");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, migrate_applies_all_then_nothing);
    tcase_add_test(tc, migrate_check_counts_an_empty_database_as_pending);
    tcase_add_test(tc, migrate_concurrently_applies_once);
    tcase_add_test(tc, migrate_refuses_a_changed_migration);
    tcase_add_test(tc, migrate_accepts_and_updates_a_superseded_checksum);
    tcase_add_test(tc, migrate_reapplies_a_function_set_that_differs);
    tcase_add_test(tc, each_function_is_defined_once_in_its_own_file);
    tcase_add_test(tc, migrate_names_an_unreachable_server_and_the_fix);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
