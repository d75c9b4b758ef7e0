/*
 * ll_test.c - helpers for the Check suites: see ll_test.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ll_test.h"

const char *llt_env(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v && *v,
                  "%s is not set: run integration tests under ./ops/test, or start the stack "
                  "and export its settings: ./ops/stack up && eval \"$(./ops/stack env)\"",
                  name);
    return v;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s: %s", path, strerror(errno));
    char *buf = calloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return buf;
}

char *llt_secret(const char *var)
{
    const char *v = getenv(var);
    if (v)
        return strdup(v);
    char fvar[128];
    snprintf(fvar, sizeof fvar, "%s_FILE", var);
    const char *f = getenv(fvar);
    if (f && *f)
        return slurp(f);
    return strdup("");
}

db_t *llt_db(const char *dbname)
{
    char *pw = llt_secret("LEDGERLINE_POSTGRES_PASSWORD");
    db_opts_t o = {
        .host = llt_env("LEDGERLINE_POSTGRES_HOST"),
        .port = atoi(llt_env("LEDGERLINE_POSTGRES_PORT")),
        .dbname = dbname ? dbname : llt_env("LEDGERLINE_POSTGRES_DBNAME"),
        .user = llt_env("LEDGERLINE_POSTGRES_USER"),
        .password = pw,
        .connect_timeout_s = 10,
        .sslmode = "disable",
        .application_name = "ledgerline-tests",
    };
    db_t *db = db_new(&o);
    free(pw);
    int rc = db_connect(db);
    ck_assert_msg(rc == LL_OK, "cannot connect to PostgreSQL: %s", db_errstr(db));
    return db;
}

char *llt_tmpdb(void)
{
    static int seq;
    char *name = malloc(64);
    snprintf(name, 64, "llt_%d_%d", (int)getpid(), ++seq);
    db_t *db = llt_db(NULL);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
    llt_exec(db, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE template0", name);
    llt_exec(db, sql);
    db_free(db);
    return name;
}

void llt_dropdb(const char *name)
{
    db_t *db = llt_db(NULL);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    llt_exec(db, sql);
    db_free(db);
}

void llt_restore(const char *dbname, const char *dump)
{
    char *pw = llt_secret("LEDGERLINE_POSTGRES_PASSWORD");
    setenv("PGPASSWORD", pw, 1);
    free(pw);
    char *out = NULL;
    int rc =
        llt_run(&out, "pg_restore --no-owner --exit-on-error -h '%s' -p '%s' -U '%s' -d '%s' '%s'",
                llt_env("LEDGERLINE_POSTGRES_HOST"), llt_env("LEDGERLINE_POSTGRES_PORT"),
                llt_env("LEDGERLINE_POSTGRES_USER"), dbname, dump);
    ck_assert_msg(rc == 0, "pg_restore of %s failed (%d): %s", dump, rc, out);
    free(out);
    /* every database the older code created drew its own identity */
    db_t *db = llt_db(dbname);
    llt_exec(db, "UPDATE ledger_identity "
                 "SET id = substr(md5(gen_random_uuid()::text || clock_timestamp()::text), 1, 16)");
    db_free(db);
}

char *llt_ledger(void)
{
    char *name = llt_tmpdb();
    const char *from = getenv("LEDGERLINE_TEST_LEDGER_FROM");
    if (from && *from)
        llt_restore(name, from);
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, name, "migrate");
    ck_assert_msg(rc == 0, "ledgerctl migrate failed (%d): %s%s", rc, out, err);
    /* the upgrade pass must really have upgraded: the older database
     * records another function set */
    ck_assert_msg(!(from && *from) || strstr(out, "applied         "),
                  "ledgerctl migrate of a ledger restored from %s applied nothing: %s", from, out);
    free(out);
    free(err);
    return name;
}

mq_t *llt_mq(void)
{
    char *pw = llt_secret("LEDGERLINE_AMQP_PASSWORD");
    const char *vhost = getenv("LEDGERLINE_AMQP_VHOST");
    mq_opts_t o = {
        .host = llt_env("LEDGERLINE_AMQP_HOST"),
        .port = atoi(llt_env("LEDGERLINE_AMQP_PORT")),
        .user = llt_env("LEDGERLINE_AMQP_USER"),
        .password = pw,
        .vhost = vhost && *vhost ? vhost : "/",
        .heartbeat_s = 30,
        .connect_timeout_ms = 5000,
        .conn_name = "ledgerline-tests",
    };
    mq_t *m = mq_new(&o);
    free(pw);
    int rc = mq_connect(m);
    ck_assert_msg(rc == LL_OK, "cannot connect to RabbitMQ: %s", mq_errstr(m));
    return m;
}

/* Reads all of fd into a malloc'd string. */
static char *read_all(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    return buf;
}

static int vrun(char **out, const char *cmd)
{
    FILE *p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "popen failed: %s", strerror(errno));
    char *text = read_all(p);
    int st = pclose(p);
    if (out)
        *out = text;
    else
        free(text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int llt_run(char **out, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd - 8, fmt, ap);
    va_end(ap);
    strcat(cmd, " 2>&1");
    return vrun(out, cmd);
}

int llt_ctl(char **out, char **err, const char *dbname, const char *fmt, ...)
{
    char args[6000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char errpath[] = "/tmp/llt_err_XXXXXX";
    int fd = mkstemp(errpath);
    ck_assert(fd >= 0);
    close(fd);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s%s %s %s 2>%s", dbname ? "LEDGERLINE_POSTGRES_DBNAME=" : "",
             dbname ? dbname : "", LEDGERCTL_BIN, args, errpath);
    int rc = vrun(out, cmd);
    FILE *f = fopen(errpath, "r");
    char *e = f ? read_all(f) : strdup("");
    if (f)
        fclose(f);
    unlink(errpath);
    if (err)
        *err = e;
    else
        free(e);
    return rc;
}

int64_t llt_scalar(db_t *db, const char *sql)
{
    PGresult *r;
    int rc = db_query(db, &r, sql, 0, NULL);
    ck_assert_msg(rc == LL_OK, "%s: %s", sql, db_errstr(db));
    ck_assert_msg(PQntuples(r) >= 1, "%s: no row", sql);
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

void llt_exec(db_t *db, const char *sql)
{
    int rc = db_exec(db, sql);
    ck_assert_msg(rc == LL_OK, "%s: %s", sql, db_errstr(db));
}

json_t *llt_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", e.text, text);
    return j;
}

int llt_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    int ran = srunner_ntests_run(sr);
    srunner_free(sr);
    if (ran == 0) {
        /* a suite that ran nothing proves nothing: a CK_RUN_CASE or
         * CK_RUN_SUITE naming no test case of it, most likely */
        fprintf(stderr,
                "no test ran (CK_RUN_SUITE='%s', CK_RUN_CASE='%s'): name a test case of "
                "this suite, or unset them\n",
                getenv("CK_RUN_SUITE") ? getenv("CK_RUN_SUITE") : "",
                getenv("CK_RUN_CASE") ? getenv("CK_RUN_CASE") : "");
        return 1;
    }
    return failed == 0 ? 0 : 1;
}
