/*
 * test_migrate.c - `ledgerctl migrate` against a real PostgreSQL: applies
 * every migration once, is a no-op the second time, is safe when several
 * processes migrate the same database at once, and refuses a migration
 * that changed after it was applied.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embed.h"
#include "ll_test.h"
#include "migrate.h"

static int compiled_migrations(void)
{
    int n = 0;
    for (const embed_file_t *f = embed_files; f->name; f++)
        n += strncmp(f->name, "sql/", 4) == 0;
    return n;
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

    db_t *db = llt_db(name);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM schema_migrations"),
                     compiled_migrations());
    char e[256];
    ck_assert_int_eq(migrate_pending(db, e, sizeof e), 0);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM information_schema.tables "
                                    "WHERE table_name IN ('accounts','transfers','entries')"),
                     3);

    rc = llt_ctl(&out, &err, name, "--json migrate");
    ck_assert_msg(rc == 0, "second migrate: %s%s", out, err);
    json_t *j = llt_json(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "applied")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(j, "migrations")), compiled_migrations());
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

START_TEST(migrate_pending_counts_an_empty_database)
{
    char *name = llt_tmpdb();
    db_t *db = llt_db(name);
    char e[256];
    ck_assert_int_eq(migrate_pending(db, e, sizeof e), compiled_migrations());
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
    tcase_add_test(tc, migrate_pending_counts_an_empty_database);
    tcase_add_test(tc, migrate_concurrently_applies_once);
    tcase_add_test(tc, migrate_refuses_a_changed_migration);
    tcase_add_test(tc, migrate_names_an_unreachable_server_and_the_fix);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
