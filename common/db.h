/*
 * db.h - PostgreSQL client (libpq 15): connect with timeout, reconnect,
 * error classification, and pipeline mode for callers that batch.
 *
 * Errors are classified so that callers can branch on one thing:
 *   LL_ECONN   the connection is gone (server down, restarted, network):
 *              reconnect with db_connect() and retry the whole transaction;
 *   LL_ERETRY  serialization failure (40001) or deadlock (40P01): retry;
 *   LL_EDB     anything else (constraint, syntax...): a bug or bad data.
 * The detail (SQLSTATE and server message) is in db_errstr(); a refused TLS
 * connection (sslmode verify-ca/verify-full) also names the setting to fix.
 *
 * Public API: db_t, db_opts_t, db_new, db_free, db_connect, db_close,
 * db_is_up, db_conn, db_errstr, db_sqlstate, db_exec, db_try, db_query,
 * db_query_prepared, db_check, db_pipeline_enter, db_pipeline_exit,
 * db_pipeline_sync_read.
 */
#ifndef LL_DB_H
#define LL_DB_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "err.h"

typedef struct db_opts {
    const char *host;
    int port;
    const char *dbname;
    const char *user;
    const char *password;
    int connect_timeout_s;
    const char *sslmode;          /* libpq sslmode keyword */
    const char *sslrootcert;      /* CA bundle for verify-ca/-full; NULL or "": libpq's default */
    const char *sslcert;          /* client certificate; NULL or "": libpq's default */
    const char *sslkey;           /* its key */
    const char *application_name; /* shown in pg_stat_activity */
} db_opts_t;

typedef struct db db_t;

/* A client for `opts` (strings are copied); not connected yet.
 * Caller frees with db_free(). Never NULL (aborts on OOM). */
db_t *db_new(const db_opts_t *opts);
void db_free(db_t *db);

/* (Re)connects: drops any old connection first. LL_ECONN with errstr. */
int db_connect(db_t *db) LL_MUSTCHECK;
void db_close(db_t *db);
bool db_is_up(const db_t *db);

/* The raw connection, NULL when down; valid until the next db_connect(),
 * db_close() or db_free(). For pipeline-mode callers. */
PGconn *db_conn(db_t *db);
const char *db_errstr(const db_t *db);
/* SQLSTATE of the last error ("" when none or not from the server). */
const char *db_sqlstate(const db_t *db);

/* Runs one or more statements without parameters, discarding results. */
int db_exec(db_t *db, const char *sql) LL_MUSTCHECK;

/* Runs `sql` ignoring any failure, and without touching errstr: for
 * best-effort cleanup (ROLLBACK, advisory unlock) on a path that already
 * failed or whose connection is about to be reset. */
void db_try(db_t *db, const char *sql);

/* Runs one statement with text parameters (NULL param = SQL NULL).
 * On LL_OK *out holds a TUPLES_OK or COMMAND_OK result: caller PQclear()s.
 * On failure *out is NULL. */
int db_query(db_t *db, PGresult **out, const char *sql, int nparams,
             const char *const *params) LL_MUSTCHECK;

/* db_query() of a statement the caller runs again and again (a batch's
 * statements): prepared on this connection at its first use, then run by
 * name, so PostgreSQL parses and plans it once per connection. The text
 * must be fixed (its hash names it); at most 32 such statements per
 * connection, further ones run unnamed. */
int db_query_prepared(db_t *db, PGresult **out, const char *sql, int nparams,
                      const char *const *params) LL_MUSTCHECK;

/* Classifies `res` (may be NULL): LL_OK for COMMAND_OK/TUPLES_OK/
 * PIPELINE_SYNC, else LL_ECONN / LL_ERETRY / LL_EDB with errstr set.
 * Does not free `res`. */
int db_check(db_t *db, const PGresult *res) LL_MUSTCHECK;

/* Pipeline mode: enter, send with PQsendQueryParams/PQsendQueryPrepared on
 * db_conn(), then db_pipeline_sync_read() sends a sync and reads every
 * result up to it. `results` (may be NULL) receives up to `max` results in
 * order; the caller PQclear()s them. Returns the first error found (all
 * results are read even then, so the connection stays usable), and sets
 * *nread to the number of results stored. */
int db_pipeline_enter(db_t *db) LL_MUSTCHECK;
int db_pipeline_exit(db_t *db) LL_MUSTCHECK;
int db_pipeline_sync_read(db_t *db, PGresult **results, int max, int *nread) LL_MUSTCHECK;

#endif
