/*
 * migrate.c - SQL migrations runner: see migrate.h.
 *
 * Files are embedded as "sql/NNN_name.sql"; NNN is the version. The
 * checksum is the hex SHA-256 of the file's bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "embed.h"
#include "migrate.h"

/* pg_advisory_lock key: "ledgerline:migrate" folded into 63 bits, fixed. */
#define MIGRATE_LOCK_KEY "7238419023317040321"

static int parse_version(const char *name, int *version)
{
    /* name is "sql/NNN_something.sql" */
    if (strncmp(name, "sql/", 4) != 0)
        return 0;
    const char *s = name + 4;
    int v = 0, digits = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        digits++;
    }
    if (digits == 0 || *s != '_' || v <= 0)
        return 0;
    size_t n = strlen(name);
    if (n < 4 || strcmp(name + n - 4, ".sql") != 0)
        return 0;
    *version = v;
    return 1;
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int setup(db_t *db, char *err, size_t errlen)
{
    int rc = db_exec(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")");
    if (rc == LL_OK)
        rc = db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                         " version integer PRIMARY KEY,"
                         " name text NOT NULL,"
                         " checksum text NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())");
    if (rc != LL_OK)
        snprintf(err, errlen, "cannot prepare schema_migrations: %s", db_errstr(db));
    return rc;
}

static void unlock(db_t *db)
{
    db_try(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
}

/* Looks up version v: 1 applied (checksum compared), 0 not applied. */
static int applied(db_t *db, int v, const char *sum, const char *name, char *err, size_t errlen)
{
    char vs[16];
    snprintf(vs, sizeof vs, "%d", v);
    const char *params[] = {vs};
    PGresult *res;
    int rc =
        db_query(db, &res, "SELECT checksum FROM schema_migrations WHERE version = $1", 1, params);
    if (rc != LL_OK) {
        snprintf(err, errlen, "reading schema_migrations: %s", db_errstr(db));
        return rc;
    }
    int found = PQntuples(res) > 0;
    if (found && strcmp(PQgetvalue(res, 0, 0), sum) != 0) {
        snprintf(err, errlen,
                 "migration %s was changed after it was applied (checksum %.12s... recorded, "
                 "%.12s... now); fix: restore the file and add a new numbered migration instead",
                 name, PQgetvalue(res, 0, 0), sum);
        PQclear(res);
        return LL_ECONFIG;
    }
    PQclear(res);
    return found;
}

static int apply_one(db_t *db, int v, const embed_file_t *f, const char *sum, char *err,
                     size_t errlen)
{
    char vs[16];
    snprintf(vs, sizeof vs, "%d", v);
    const char *params[] = {vs, f->name + 4, sum};
    PGresult *res = NULL;
    int rc = db_exec(db, "BEGIN");
    if (rc == LL_OK)
        rc = db_exec(db, f->data);
    if (rc == LL_OK)
        rc = db_query(db, &res,
                      "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                      3, params);
    PQclear(res);
    if (rc == LL_OK)
        rc = db_exec(db, "COMMIT");
    if (rc != LL_OK) {
        snprintf(err, errlen, "migration %s failed: %s", f->name, db_errstr(db));
        db_try(db, "ROLLBACK");
    }
    return rc;
}

int migrate_run(db_t *db, migrate_report_fn *report, void *ud, char *err, size_t errlen)
{
    int rc = setup(db, err, errlen);
    if (rc != LL_OK)
        return rc;
    /* embed_files is sorted by name and versions are zero-padded */
    for (const embed_file_t *f = embed_files; f->name; f++) {
        int v;
        if (!parse_version(f->name, &v))
            continue;
        char sum[65];
        sha256_hex(f->data, f->len, sum);
        int done = applied(db, v, sum, f->name, err, errlen);
        if (done < 0) {
            rc = done;
            break;
        }
        if (!done && (rc = apply_one(db, v, f, sum, err, errlen)) != LL_OK)
            break;
        if (report)
            report(ud, v, f->name + 4, !done);
    }
    unlock(db);
    return rc;
}

int migrate_pending(db_t *db, char *err, size_t errlen)
{
    PGresult *res;
    int rc = db_query(db, &res, "SELECT version FROM schema_migrations", 0, NULL);
    if (rc != LL_OK) {
        /* the table itself does not exist: nothing applied */
        if (strcmp(db_sqlstate(db), "42P01") != 0) {
            snprintf(err, errlen, "reading schema_migrations: %s", db_errstr(db));
            return rc;
        }
        res = NULL;
    }
    int pending = 0;
    for (const embed_file_t *f = embed_files; f->name; f++) {
        int v, found = 0;
        if (!parse_version(f->name, &v))
            continue;
        for (int i = 0; res && i < PQntuples(res); i++)
            found |= atoi(PQgetvalue(res, i, 0)) == v;
        pending += !found;
    }
    PQclear(res);
    return pending;
}
