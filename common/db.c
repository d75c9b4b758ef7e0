/*
 * db.c - PostgreSQL client: see db.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "xmalloc.h"

#define DB_PREPARED_MAX 32 /* statements db_query_prepared() keeps per connection */

struct db {
    char *host, *dbname, *user, *password, *sslmode, *appname;
    char *sslrootcert, *sslcert, *sslkey; /* "" when unset */
    char port[16];
    char connect_timeout[16];
    PGconn *conn;
    uint64_t prepared[DB_PREPARED_MAX]; /* hashes of the statements prepared on conn */
    size_t nprepared;
    char sqlstate[6];
    char errstr[512]; /* room for a TLS failure and its fix */
};

static void db_seterr(db_t *db, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void db_seterr(db_t *db, const char *state, const char *fmt, ...)
{
    va_list ap;
    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state ? state : "");
    va_start(ap, fmt);
    vsnprintf(db->errstr, sizeof db->errstr, fmt, ap);
    va_end(ap);
    /* libpq messages end in a newline; logs want one line */
    size_t n = strlen(db->errstr);
    while (n > 0 && (db->errstr[n - 1] == '\n' || db->errstr[n - 1] == ' '))
        db->errstr[--n] = '\0';
    for (char *p = db->errstr; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

/* Server notices ("relation already exists, skipping") are not errors:
 * debug log only, never stderr. */
static void db_notice(void *arg, const char *message)
{
    log_debug("postgres notice: %.*s", (int)strcspn(message, "\n"), message);
}

db_t *db_new(const db_opts_t *o)
{
    db_t *db = ll_xcalloc(1, sizeof *db);
    db->host = ll_xstrdup(o->host ? o->host : "127.0.0.1");
    db->dbname = ll_xstrdup(o->dbname ? o->dbname : "ledgerline");
    db->user = ll_xstrdup(o->user ? o->user : "ledgerline");
    db->password = ll_xstrdup(o->password ? o->password : "");
    db->sslmode = ll_xstrdup(o->sslmode ? o->sslmode : "prefer");
    db->appname = ll_xstrdup(o->application_name ? o->application_name : "ledgerline");
    db->sslrootcert = ll_xstrdup(o->sslrootcert ? o->sslrootcert : "");
    db->sslcert = ll_xstrdup(o->sslcert ? o->sslcert : "");
    db->sslkey = ll_xstrdup(o->sslkey ? o->sslkey : "");
    snprintf(db->port, sizeof db->port, "%d", o->port > 0 ? o->port : 5432);
    snprintf(db->connect_timeout, sizeof db->connect_timeout, "%d",
             o->connect_timeout_s > 0 ? o->connect_timeout_s : 5);
    return db;
}

void db_close(db_t *db)
{
    if (db && db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    if (db)
        db->nprepared = 0; /* prepared statements die with their connection */
}

void db_free(db_t *db)
{
    if (!db)
        return;
    db_close(db);
    if (db->password)
        memset(db->password, 0, strlen(db->password));
    free(db->host);
    free(db->dbname);
    free(db->user);
    free(db->password);
    free(db->sslmode);
    free(db->appname);
    free(db->sslrootcert);
    free(db->sslcert);
    free(db->sslkey);
    free(db);
}

/* The setting that fixes a refused TLS connection, from libpq's message;
 * "" when the failure is not about TLS. */
static const char *db_tls_fix(const char *msg)
{
    if (strstr(msg, "certificate verify failed"))
        return "; check postgres.sslrootcert: it must hold the CA that signed the server's "
               "certificate";
    if (strstr(msg, "does not match host name"))
        return "; check postgres.host: it must be a name or address the server's certificate "
               "carries (subjectAltName)";
    if (strstr(msg, "root certificate file"))
        return "; set postgres.sslrootcert to the CA file, or lower postgres.sslmode";
    if (strstr(msg, "server does not support SSL"))
        return "; turn ssl on in the server, or lower postgres.sslmode";
    if (strstr(msg, "SSL error") && (strstr(msg, "alert") || strstr(msg, "certificate")))
        return "; the server refused the TLS connection: check postgres.sslcert and "
               "postgres.sslkey (a client certificate signed by a CA the server trusts)";
    if (strstr(msg, "certificate") || strstr(msg, "private key"))
        return "; check postgres.sslcert and postgres.sslkey";
    return "";
}

int db_connect(db_t *db)
{
    db_close(db);
    /* TCP keepalives and a user timeout: a server that vanished without a
     * FIN (a failover, a black-holed network) is noticed in about 30 s
     * instead of the system default of hours, and becomes a lost
     * connection the runtime retries */
    const char *keys[] = {"host",
                          "port",
                          "dbname",
                          "user",
                          "sslmode",
                          "sslrootcert",
                          "sslcert",
                          "sslkey",
                          "connect_timeout",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "password",
                          NULL};
    const char *vals[] = {db->host,
                          db->port,
                          db->dbname,
                          db->user,
                          db->sslmode,
                          db->sslrootcert, /* "" is left to libpq's default */
                          db->sslcert,
                          db->sslkey,
                          db->connect_timeout,
                          db->appname,
                          "1",
                          "10",
                          "5",
                          "3",
                          "30000",
                          db->password[0] ? db->password : NULL,
                          NULL};
    /* libpq goes on without a client certificate it cannot read: one that
     * was configured is an error here, naming the setting */
    const char *files[][2] = {{"postgres.sslcert", db->sslcert}, {"postgres.sslkey", db->sslkey}};
    for (size_t i = 0; i < 2; i++) {
        if (files[i][1][0] && access(files[i][1], R_OK) != 0) {
            db_seterr(db, NULL,
                      "PostgreSQL %s:%s: cannot read %s %s: %s; point %s at a readable PEM file",
                      db->host, db->port, files[i][0], files[i][1], strerror(errno), files[i][0]);
            return LL_ECONN;
        }
    }
    db->conn = PQconnectdbParams(keys, vals, 0);
    if (!db->conn) {
        db_seterr(db, NULL, "%s", "out of memory creating a PostgreSQL connection");
        return LL_ENOMEM;
    }
    if (PQstatus(db->conn) != CONNECTION_OK) {
        char where[160];
        snprintf(where, sizeof where, "PostgreSQL %s:%s db=%s user=%s: ", db->host, db->port,
                 db->dbname, db->user);
        const char *pqmsg = PQerrorMessage(db->conn);
        int n = (int)strlen(pqmsg);
        while (n > 0 && (pqmsg[n - 1] == '\n' || pqmsg[n - 1] == ' '))
            n--;
        char msg[sizeof db->errstr];
        snprintf(msg, sizeof msg, "%s%.*s%s", where, n, pqmsg, db_tls_fix(pqmsg));
        db_seterr(db, NULL, "%s", msg);
        db_close(db);
        return LL_ECONN;
    }
    PQsetNoticeProcessor(db->conn, db_notice, NULL);
    db->errstr[0] = '\0';
    db->sqlstate[0] = '\0';
    return LL_OK;
}

bool db_is_up(const db_t *db)
{
    return db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

PGconn *db_conn(db_t *db)
{
    return db->conn;
}

const char *db_errstr(const db_t *db)
{
    return db->errstr;
}

const char *db_sqlstate(const db_t *db)
{
    return db->sqlstate;
}

int db_check(db_t *db, const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_PIPELINE_SYNC ||
        st == PGRES_EMPTY_QUERY)
        return LL_OK;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = db->conn ? PQerrorMessage(db->conn) : "no connection";
    if (st == PGRES_PIPELINE_ABORTED)
        msg = "statement skipped: an earlier statement of the pipeline failed";
    db_seterr(db, state, "%s", msg);
    if (state && strlen(state) == 5) {
        if (db->errstr[0]) {
            char tmp[sizeof db->errstr];
            snprintf(tmp, sizeof tmp, "%s (SQLSTATE %s)", db->errstr, state);
            memcpy(db->errstr, tmp, sizeof tmp);
        }
    }
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
        return LL_ECONN;
    /* Faults of the server, not of the statement: retried, never counted
     * against a message. 40001 serialization, 40P01 deadlock, 57014
     * cancelled (an operator, a timeout), 55P03 lock timeout, class 53
     * insufficient resources (disk full, out of memory), class 58 system
     * error (I/O). */
    if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
                  strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0 ||
                  strncmp(state, "53", 2) == 0 || strncmp(state, "58", 2) == 0))
        return LL_ERETRY;
    /* 23514 "no partition of relation ... found for row": processed or
     * outbox has no partition of now yet (no worker ran its retention job
     * for longer than retention.ahead_s). The next tick's job creates it:
     * retried, never parked. Any other 23514 is a CHECK constraint. */
    if (state && strcmp(state, "23514") == 0 && strstr(msg, "no partition of relation"))
        return LL_ERETRY;
    /* class 08: connection exception; 57P01..03: admin shutdown, crash, cannot
     * connect; 25006: read-only transaction (a standby, a demoted primary after
     * a failover): reconnect to find the primary */
    if (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0 ||
                  strcmp(state, "25006") == 0))
        return LL_ECONN;
    if (st == PGRES_PIPELINE_ABORTED)
        return LL_EDB;
    return state ? LL_EDB : LL_ECONN;
}

int db_exec(db_t *db, const char *sql)
{
    if (!db->conn) {
        db_seterr(db, NULL, "%s", "not connected to PostgreSQL");
        return LL_ECONN;
    }
    PGresult *res = PQexec(db->conn, sql);
    int rc = db_check(db, res);
    /* PQexec returns the last result; earlier ones in a multi-statement
     * string are checked by the server aborting at the first error */
    PQclear(res);
    return rc;
}

int db_query(db_t *db, PGresult **out, const char *sql, int nparams, const char *const *params)
{
    *out = NULL;
    if (!db->conn) {
        db_seterr(db, NULL, "%s", "not connected to PostgreSQL");
        return LL_ECONN;
    }
    PGresult *res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    int rc = db_check(db, res);
    if (rc != LL_OK) {
        PQclear(res);
        return rc;
    }
    *out = res;
    return LL_OK;
}

int db_pipeline_enter(db_t *db)
{
    if (!db->conn || PQenterPipelineMode(db->conn) != 1) {
        db_seterr(db, NULL, "cannot enter pipeline mode: %s",
                  db->conn ? PQerrorMessage(db->conn) : "not connected");
        return db->conn ? LL_EDB : LL_ECONN;
    }
    return LL_OK;
}

int db_pipeline_exit(db_t *db)
{
    if (!db->conn || PQexitPipelineMode(db->conn) != 1) {
        db_seterr(db, NULL, "cannot leave pipeline mode: %s",
                  db->conn ? PQerrorMessage(db->conn) : "not connected");
        return db->conn && PQstatus(db->conn) == CONNECTION_OK ? LL_EDB : LL_ECONN;
    }
    return LL_OK;
}

int db_pipeline_sync_read(db_t *db, PGresult **results, int max, int *nread)
{
    int first = LL_OK, n = 0;
    if (nread)
        *nread = 0;
    if (!db->conn)
        return LL_ECONN;
    if (PQpipelineSync(db->conn) != 1) {
        db_seterr(db, NULL, "pipeline sync failed: %s", PQerrorMessage(db->conn));
        return LL_ECONN;
    }
    for (;;) {
        PGresult *res = PQgetResult(db->conn);
        if (!res) {
            /* end of one statement's results; a broken connection also
             * ends here, with no sync ever coming */
            if (PQstatus(db->conn) != CONNECTION_OK) {
                if (first == LL_OK)
                    first = db_check(db, NULL);
                break;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (first == LL_OK)
            first = db_check(db, res); /* keep the first error's text */
        if (results && n < max)
            results[n++] = res;
        else
            PQclear(res);
    }
    if (nread)
        *nread = n;
    return first;
}

/* FNV-1a: names a statement by its text */
static uint64_t db_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

int db_query_prepared(db_t *db, PGresult **out, const char *sql, int nparams,
                      const char *const *params)
{
    *out = NULL;
    if (!db->conn) {
        db_seterr(db, NULL, "%s", "not connected to PostgreSQL");
        return LL_ECONN;
    }
    uint64_t h = db_hash(sql);
    size_t i = 0;
    while (i < db->nprepared && db->prepared[i] != h)
        i++;
    if (i == db->nprepared && i == DB_PREPARED_MAX)
        return db_query(db, out, sql, nparams, params); /* full: run it unnamed */
    char name[24];
    snprintf(name, sizeof name, "ll_%016llx", (unsigned long long)h);
    if (i == db->nprepared) {
        PGresult *p = PQprepare(db->conn, name, sql, nparams, NULL);
        int rc = db_check(db, p);
        PQclear(p);
        if (rc != LL_OK)
            return rc;
        db->prepared[db->nprepared++] = h;
    }
    PGresult *res = PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
    int rc = db_check(db, res);
    if (rc != LL_OK) {
        PQclear(res);
        return rc;
    }
    *out = res;
    return LL_OK;
}

void db_try(db_t *db, const char *sql)
{
    if (!db_is_up(db))
        return;
    PGresult *res = PQexec(db->conn, sql);
    PQclear(res);
}
