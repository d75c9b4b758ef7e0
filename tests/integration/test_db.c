/*
 * test_db.c - the PostgreSQL client (common/db.c) on a real server:
 * queries with parameters, error classification (retryable, connection
 * lost, other), pipeline mode with an error in the middle, reconnect after
 * the server dropped the connection, TCP keepalives and user timeout set.
 */
#include <stdlib.h>
#include <string.h>

#include "ll_test.h"

START_TEST(db_query_with_params)
{
    db_t *db = llt_db(NULL);
    const char *params[] = {"41", NULL};
    PGresult *r;
    ck_assert_int_eq(db_query(db, &r, "SELECT $1::int + 1, $2::text IS NULL", 2, params), LL_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "t");
    PQclear(r);
    db_free(db);
}
END_TEST

static const struct {
    const char *sql;
    int want;
    const char *state;
} classes[] = {
    {"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END $$", LL_ERETRY, "40001"},
    {"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$", LL_ERETRY, "40P01"},
    {"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '57014'; END $$", LL_ERETRY, "57014"},
    {"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '55P03'; END $$", LL_ERETRY, "55P03"},
    {"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '53100'; END $$", LL_ERETRY, "53100"},
    {"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '53200'; END $$", LL_ERETRY, "53200"},
    {"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '58030'; END $$", LL_ERETRY, "58030"},
    {"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '25006'; END $$", LL_ECONN, "25006"},
    /* the real thing: a read-only session, a statement timeout */
    {"SET TRANSACTION READ ONLY; CREATE TABLE t_ro (x int)", LL_ECONN, "25006"},
    {"SET statement_timeout = 50; SELECT pg_sleep(1)", LL_ERETRY, "57014"},
    {"SELECT 1/0", LL_EDB, "22012"},
    {"SELECT * FROM no_such_table", LL_EDB, "42P01"},
    {"SELEKT 1", LL_EDB, "42601"},
};

START_TEST(db_errors_are_classified)
{
    db_t *db = llt_db(NULL);
    int rc = db_exec(db, classes[_i].sql);
    ck_assert_msg(rc == classes[_i].want, "%s: got %s (%s)", classes[_i].sql, ll_errname(rc),
                  db_errstr(db));
    ck_assert_str_eq(db_sqlstate(db), classes[_i].state);
    ck_assert_msg(strstr(db_errstr(db), classes[_i].state) != NULL, "%s", db_errstr(db));
    /* the connection stays usable */
    ck_assert_int_eq(db_exec(db, "SELECT 1"), LL_OK);
    db_free(db);
}
END_TEST

START_TEST(db_pipeline_reads_every_result_and_reports_the_first_error)
{
    db_t *db = llt_db(NULL);
    ck_assert_int_eq(db_pipeline_enter(db), LL_OK);
    PGconn *c = db_conn(db);
    const char *p1[] = {"1"};
    ck_assert(PQsendQueryParams(c, "SELECT $1::int", 1, NULL, p1, NULL, NULL, 0));
    ck_assert(PQsendQueryParams(c, "SELECT 2", 0, NULL, NULL, NULL, NULL, 0));
    PGresult *res[8];
    int n;
    ck_assert_int_eq(db_pipeline_sync_read(db, res, 8, &n), LL_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(PQgetvalue(res[0], 0, 0), "1");
    ck_assert_str_eq(PQgetvalue(res[1], 0, 0), "2");
    for (int i = 0; i < n; i++)
        PQclear(res[i]);

    /* an error aborts the rest up to the sync; the first error is reported */
    ck_assert(PQsendQueryParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0));
    ck_assert(PQsendQueryParams(c, "SELECT 1/0", 0, NULL, NULL, NULL, NULL, 0));
    ck_assert(PQsendQueryParams(c, "SELECT 3", 0, NULL, NULL, NULL, NULL, 0));
    int rc = db_pipeline_sync_read(db, res, 8, &n);
    ck_assert_int_eq(rc, LL_EDB);
    ck_assert_str_eq(db_sqlstate(db), "22012");
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(PQresultStatus(res[2]), PGRES_PIPELINE_ABORTED);
    for (int i = 0; i < n; i++)
        PQclear(res[i]);
    ck_assert_int_eq(db_pipeline_exit(db), LL_OK);
    ck_assert_int_eq(db_exec(db, "SELECT 1"), LL_OK);
    db_free(db);
}
END_TEST

START_TEST(db_lost_connection_is_conn_error_then_reconnects)
{
    db_t *db = llt_db(NULL);
    db_t *killer = llt_db(NULL);
    int64_t pid = llt_scalar(db, "SELECT pg_backend_pid()");
    char sql[100];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)", (long long)pid);
    llt_exec(killer, sql);
    int rc = db_exec(db, "SELECT 1");
    ck_assert_msg(rc == LL_ECONN, "got %s: %s", ll_errname(rc), db_errstr(db));
    ck_assert_int_eq(db_connect(db), LL_OK);
    ck_assert_int_eq(db_exec(db, "SELECT 1"), LL_OK);
    db_free(killer);
    db_free(db);
}
END_TEST

/* The connection carries TCP keepalives and a user timeout, so a server
 * that vanished without a FIN becomes a lost connection in about 30 s. */
START_TEST(db_connections_detect_a_vanished_server)
{
    db_t *db = llt_db(NULL);
    PQconninfoOption *opts = PQconninfo(db_conn(db));
    ck_assert_ptr_nonnull(opts);
    static const struct {
        const char *key, *want;
    } want[] = {{"keepalives", "1"},
                {"keepalives_idle", "10"},
                {"keepalives_interval", "5"},
                {"keepalives_count", "3"},
                {"tcp_user_timeout", "30000"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *got = NULL;
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (strcmp(o->keyword, want[i].key) == 0)
                got = o->val;
        ck_assert_msg(got && strcmp(got, want[i].want) == 0, "%s = %s, want %s", want[i].key,
                      got ? got : "(unset)", want[i].want);
    }
    PQconninfoFree(opts);
    db_free(db);
}
END_TEST

START_TEST(db_connect_failure_names_the_server)
{
    db_opts_t o = {
        .host = "127.0.0.1", .port = 1, .dbname = "x", .user = "u", .connect_timeout_s = 2};
    db_t *db = db_new(&o);
    ck_assert_int_eq(db_connect(db), LL_ECONN);
    ck_assert_msg(strstr(db_errstr(db), "127.0.0.1:1") != NULL, "%s", db_errstr(db));
    ck_assert(!db_is_up(db));
    ck_assert_ptr_null(db_conn(db));
    db_free(db);
    db_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("db");
    TCase *tc = tcase_create("postgres");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, db_query_with_params);
    tcase_add_loop_test(tc, db_errors_are_classified, 0, (int)(sizeof classes / sizeof classes[0]));
    tcase_add_test(tc, db_pipeline_reads_every_result_and_reports_the_first_error);
    tcase_add_test(tc, db_lost_connection_is_conn_error_then_reconnects);
    tcase_add_test(tc, db_connect_failure_names_the_server);
    tcase_add_test(tc, db_connections_detect_a_vanished_server);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
