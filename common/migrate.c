/*
 * migrate.c - the schema runner: see migrate.h.
 *
 * Files are embedded as "sql/migrations/NNN_name.sql" (NNN is the version)
 * and "sql/functions/<function>.sql". A migration's checksum is the hex
 * SHA-256 of its bytes; the function set's is the SHA-256 of every
 * function file's base name and bytes, in name order.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "embed.h"
#include "migrate.h"

/* pg_advisory_lock key: "ledgerline:migrate" folded into 63 bits, fixed. */
#define MIGRATE_LOCK_KEY "7238419023317040321"
#define MIGRATIONS_DIR   "sql/migrations/"
#define FUNCTIONS_DIR    "sql/functions/"
#define SUPERSEDES       "-- supersedes: "

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* "sql/migrations/NNN_something.sql" -> NNN; 0 for any other file. */
static int migration_version(const char *name)
{
    if (!has_prefix(name, MIGRATIONS_DIR) || !has_suffix(name, ".sql"))
        return 0;
    const char *s = name + strlen(MIGRATIONS_DIR);
    int v = 0, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 9) {
        v = v * 10 + (*s++ - '0');
        digits++;
    }
    return digits > 0 && *s == '_' ? v : 0;
}

static bool is_function_file(const char *name)
{
    return has_prefix(name, FUNCTIONS_DIR) && has_suffix(name, ".sql") &&
           !strchr(name + strlen(FUNCTIONS_DIR), '/');
}

static const char *base_name(const char *name)
{
    const char *slash = strrchr(name, '/');
    return slash ? slash + 1 : name;
}

/* Does migration file f say it supersedes the text whose checksum is sum? */
static bool supersedes(const embed_file_t *f, const char *sum)
{
    for (const char *p = f->data; (p = strstr(p, SUPERSEDES)) != NULL; p++) {
        if ((p == f->data || p[-1] == '\n') &&
            strncmp(p + strlen(SUPERSEDES), sum, DIGEST_HEX_LEN) == 0)
            return true;
    }
    return false;
}

const char *migrate_functions_checksum(void)
{
    static char sum[DIGEST_HEX_LEN + 1];
    if (sum[0])
        return sum;
    /* pieces: name NUL data NUL, per file, in embed order (sorted by name) */
    size_t n = 0;
    for (const embed_file_t *f = embed_files; f->name; f++)
        n += is_function_file(f->name) ? 4 : 0;
    const void **parts = calloc(n ? n : 1, sizeof *parts);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    if (!parts || !lens)
        abort();
    size_t k = 0;
    for (const embed_file_t *f = embed_files; f->name; f++) {
        if (!is_function_file(f->name))
            continue;
        const char *b = base_name(f->name);
        parts[k] = b;
        lens[k++] = strlen(b);
        parts[k] = "";
        lens[k++] = 1;
        parts[k] = f->data;
        lens[k++] = f->len;
        parts[k] = "";
        lens[k++] = 1;
    }
    unsigned char md[32];
    digest_sha256(parts, lens, n, md);
    digest_hex(md, sizeof md, sum);
    free(parts);
    free(lens);
    return sum;
}

static int function_count(void)
{
    int n = 0;
    for (const embed_file_t *f = embed_files; f->name; f++)
        n += is_function_file(f->name);
    return n;
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
    if (rc == LL_OK)
        rc = db_exec(db, "CREATE TABLE IF NOT EXISTS schema_functions ("
                         " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
                         " checksum text NOT NULL,"
                         " functions integer NOT NULL,"
                         " applied_at timestamptz NOT NULL DEFAULT now())");
    if (rc != LL_OK)
        snprintf(err, errlen, "cannot prepare schema_migrations: %s", db_errstr(db));
    return rc;
}

static void unlock(db_t *db)
{
    db_try(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
}

/* Where migration f (version v, checksum sum) stands: MIGRATE_APPLIED
 * when it is not applied yet, MIGRATE_PRESENT when it is, MIGRATE_REWRITTEN
 * when it was applied as a text f supersedes (the record is updated now);
 * or a negative error. */
static int migration_state(db_t *db, int v, const embed_file_t *f, const char *sum, char *err,
                           size_t errlen)
{
    char vs[16];
    snprintf(vs, sizeof vs, "%d", v);
    const char *params[] = {vs, sum};
    PGresult *res;
    int rc =
        db_query(db, &res, "SELECT checksum FROM schema_migrations WHERE version = $1", 1, params);
    if (rc != LL_OK) {
        snprintf(err, errlen, "reading schema_migrations: %s", db_errstr(db));
        return rc;
    }
    int state = MIGRATE_APPLIED;
    if (PQntuples(res) > 0) {
        const char *recorded = PQgetvalue(res, 0, 0);
        if (strcmp(recorded, sum) == 0) {
            state = MIGRATE_PRESENT;
        } else if (strlen(recorded) == DIGEST_HEX_LEN && supersedes(f, recorded)) {
            state = MIGRATE_REWRITTEN;
        } else {
            snprintf(err, errlen,
                     "migration %s was changed after it was applied (checksum %.12s... "
                     "recorded, %.12s... now); fix: restore the file and add a new numbered "
                     "migration instead",
                     base_name(f->name), recorded, sum);
            state = LL_ECONFIG;
        }
    }
    PQclear(res);
    if (state == MIGRATE_REWRITTEN) {
        PGresult *u = NULL;
        rc = db_query(db, &u, "UPDATE schema_migrations SET checksum = $2 WHERE version = $1", 2,
                      params);
        PQclear(u);
        if (rc != LL_OK) {
            snprintf(err, errlen, "updating schema_migrations: %s", db_errstr(db));
            return rc;
        }
    }
    return state;
}

static int apply_migration(db_t *db, int v, const embed_file_t *f, const char *sum, char *err,
                           size_t errlen)
{
    char vs[16];
    snprintf(vs, sizeof vs, "%d", v);
    const char *params[] = {vs, base_name(f->name), sum};
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
        snprintf(err, errlen, "migration %s failed: %s", base_name(f->name), db_errstr(db));
        db_try(db, "ROLLBACK");
    }
    return rc;
}

static int run_migrations(db_t *db, migrate_report_fn *report, void *ud, char *err, size_t errlen)
{
    /* embed_files is sorted by name and versions are zero-padded */
    for (const embed_file_t *f = embed_files; f->name; f++) {
        int v = migration_version(f->name);
        if (v == 0)
            continue;
        char sum[DIGEST_HEX_LEN + 1];
        digest_sha256_hex(f->data, f->len, sum);
        int state = migration_state(db, v, f, sum, err, errlen);
        if (state < 0)
            return state;
        if (state == MIGRATE_APPLIED) {
            int rc = apply_migration(db, v, f, sum, err, errlen);
            if (rc != LL_OK)
                return rc;
        }
        if (report)
            report(ud, (migrate_step_t)state, v, base_name(f->name));
    }
    return LL_OK;
}

/* Every function file, in name order. */
static int exec_functions(db_t *db, char *err, size_t errlen)
{
    for (const embed_file_t *f = embed_files; f->name; f++) {
        if (is_function_file(f->name) && db_exec(db, f->data) != LL_OK) {
            snprintf(err, errlen, "function file %s failed: %s", base_name(f->name), db_errstr(db));
            return LL_EDB;
        }
    }
    return LL_OK;
}

/* Reads schema_functions' checksum into sum ("" when there is none yet:
 * no row, or no table). LL_OK or a db error code. */
static int recorded_functions(db_t *db, char sum[DIGEST_HEX_LEN + 1], char *err, size_t errlen)
{
    sum[0] = '\0';
    PGresult *res;
    int rc = db_query(db, &res, "SELECT checksum FROM schema_functions", 0, NULL);
    if (rc != LL_OK) {
        if (strcmp(db_sqlstate(db), "42P01") == 0)
            return LL_OK;
        snprintf(err, errlen, "reading schema_functions: %s", db_errstr(db));
        return rc;
    }
    if (PQntuples(res) > 0)
        snprintf(sum, DIGEST_HEX_LEN + 1, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return LL_OK;
}

/* Re-applies the function set when the database records another one. All
 * files are created first without checking their bodies (pg_dump's way:
 * a LANGUAGE sql function may name one that comes later in the set), then
 * again with the checks, in the same transaction. */
static int run_functions(db_t *db, migrate_report_fn *report, void *ud, char *err, size_t errlen)
{
    const char *sum = migrate_functions_checksum();
    char have[DIGEST_HEX_LEN + 1];
    int rc = recorded_functions(db, have, err, errlen);
    if (rc != LL_OK)
        return rc;
    if (strcmp(have, sum) == 0) {
        if (report)
            report(ud, MIGRATE_FUNCTIONS_PRESENT, function_count(), sum);
        return LL_OK;
    }
    char count[16];
    snprintf(count, sizeof count, "%d", function_count());
    const char *params[] = {sum, count};
    PGresult *res = NULL;
    rc = db_exec(db, "BEGIN");
    if (rc == LL_OK && (rc = db_exec(db, "SET LOCAL check_function_bodies = off")) == LL_OK &&
        (rc = exec_functions(db, err, errlen)) == LL_OK &&
        (rc = db_exec(db, "SET LOCAL check_function_bodies = on")) == LL_OK &&
        (rc = exec_functions(db, err, errlen)) == LL_OK)
        rc = db_query(db, &res,
                      "INSERT INTO schema_functions (checksum, functions) VALUES ($1, $2::int) "
                      "ON CONFLICT (singleton) DO UPDATE SET checksum = EXCLUDED.checksum, "
                      "functions = EXCLUDED.functions, applied_at = now()",
                      2, params);
    PQclear(res);
    if (rc == LL_OK)
        rc = db_exec(db, "COMMIT");
    if (rc != LL_OK) {
        if (!err[0])
            snprintf(err, errlen, "applying the SQL functions failed: %s", db_errstr(db));
        db_try(db, "ROLLBACK");
        return rc;
    }
    if (report)
        report(ud, MIGRATE_FUNCTIONS_APPLIED, function_count(), sum);
    return LL_OK;
}

int migrate_run(db_t *db, migrate_report_fn *report, void *ud, char *err, size_t errlen)
{
    err[0] = '\0';
    int rc = setup(db, err, errlen);
    if (rc == LL_OK)
        rc = run_migrations(db, report, ud, err, errlen);
    if (rc == LL_OK)
        rc = run_functions(db, report, ud, err, errlen);
    unlock(db);
    return rc;
}

int migrate_check(db_t *db, int *pending, char *err, size_t errlen)
{
    if (pending)
        *pending = 0;
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
    int behind = 0;
    for (const embed_file_t *f = embed_files; f->name; f++) {
        int v = migration_version(f->name), found = 0;
        if (v == 0)
            continue;
        for (int i = 0; res && i < PQntuples(res); i++)
            found |= atoi(PQgetvalue(res, i, 0)) == v;
        behind += !found;
    }
    PQclear(res);
    if (pending)
        *pending = behind;
    if (behind > 0) {
        snprintf(err, errlen,
                 "the database schema is %d migration(s) behind this build: run `ledgerctl "
                 "migrate`",
                 behind);
        return LL_ECONFIG;
    }
    char have[DIGEST_HEX_LEN + 1];
    if ((rc = recorded_functions(db, have, err, errlen)) != LL_OK)
        return rc;
    const char *sum = migrate_functions_checksum();
    if (strcmp(have, sum) != 0) {
        snprintf(err, errlen,
                 "the database's SQL functions are not this build's (database: %.12s, this "
                 "build: %.12s): run `ledgerctl migrate` with this build's ledgerctl",
                 have[0] ? have : "none", sum);
        return LL_ECONFIG;
    }
    return LL_OK;
}
