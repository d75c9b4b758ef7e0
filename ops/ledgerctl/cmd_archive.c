/*
 * cmd_archive.c - `ledgerctl archive`: the bookkeeping older than a time
 * (and, with --books, the closed settlement batches of that time with
 * their items, refunds, transfers and entries) written to a directory before the
 * retention job drops it; `ledgerctl archive verify`: that directory
 * checked against its manifest (docs/operations.md#archive).
 *
 * One file per table, gzip-compressed CSV with a header line, written by
 * COPY (SELECT ...) TO STDOUT from one REPEATABLE READ snapshot, then
 * manifest.json: the format, the ledger id, --before, and per file its
 * table, rows, bytes and SHA-256. Everything is written into
 * DIR.partial-<pid>, synced, and renamed to DIR last: a kill leaves no
 * DIR, only the partial one (delete it; a run that fails removes its own),
 * and the archive is recorded (table
 * retention_archives, what retention.archive_first waits for) only after
 * the rename. --before must be an hour old: a transaction that began
 * before it may still be committing rows of that time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "crash.h"
#include "ctl.h"
#include "digest.h"

#define ARCHIVE_FORMAT "ledgerline-archive/1"

/* One file: its table and the query whose rows it holds (:before stands
 * for the quoted --before). */
typedef struct archive_spec {
    const char *table;
    const char *query;
    bool books;
} archive_spec_t;

/* The transfers of the batches closed before :before: their payments',
 * their refunds', their fee and payout. */
#define BATCH_TRANSFERS                                                                            \
    "SELECT x.id FROM settlement_items i JOIN settlement_batches b ON b.id = i.batch_id "          \
    "JOIN transfers x ON x.kind = 'payment' AND x.ref = i.payment_id "                             \
    "WHERE b.status = 'closed' AND b.closed_at < :before "                                         \
    "UNION SELECT r.transfer_id FROM refunds r JOIN settlement_batches b ON b.id = r.batch_id "    \
    "WHERE b.status = 'closed' AND b.closed_at < :before "                                         \
    "UNION SELECT unnest(ARRAY[b.fee_transfer, b.payout_transfer]) FROM settlement_batches b "     \
    "WHERE b.status = 'closed' AND b.closed_at < :before"

static const archive_spec_t specs[] = {
    {"processed",
     "SELECT * FROM processed WHERE created_at < :before ORDER BY created_at, stage, payment_id",
     false},
    {"outbox", "SELECT * FROM outbox WHERE created_at < :before ORDER BY id", false},
    {"settlement_batches",
     "SELECT * FROM settlement_batches WHERE status = 'closed' AND closed_at < :before ORDER BY id",
     true},
    {"settlement_items",
     "SELECT i.* FROM settlement_items i JOIN settlement_batches b ON b.id = i.batch_id "
     "WHERE b.status = 'closed' AND b.closed_at < :before ORDER BY i.batch_id, i.payment_id",
     true},
    {"refunds",
     "SELECT r.* FROM refunds r JOIN settlement_batches b ON b.id = r.batch_id "
     "WHERE b.status = 'closed' AND b.closed_at < :before ORDER BY r.refund_id",
     true},
    {"transfers", "SELECT t.* FROM transfers t WHERE t.id IN (" BATCH_TRANSFERS ") ORDER BY t.id",
     true},
    {"entries",
     "SELECT e.* FROM entries e WHERE e.transfer_id IN (" BATCH_TRANSFERS ") ORDER BY e.id", true},
};
#define NSPECS (sizeof specs / sizeof specs[0])

/* ---- writing ------------------------------------------------------------------ */

/* COPY (query) TO STDOUT as CSV into path, gzip-compressed; *rows gets the
 * number of rows (the header not counted). 0, or 1 after printing why. */
static int copy_out(db_t *db, const char *query, const char *path, long long *rows)
{
    PGconn *pg = db_conn(db);
    size_t len = strlen(query) + 64;
    char *sql = malloc(len);
    if (!sql)
        return ctl_fail("free some memory", "out of memory");
    snprintf(sql, len, "COPY (%s) TO STDOUT WITH (FORMAT csv, HEADER)", query);
    PGresult *r = PQexec(pg, sql);
    free(sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        int rc = ctl_fail("check the database's health and run the archive again", "reading %s: %s",
                          path, PQerrorMessage(pg));
        PQclear(r);
        return rc;
    }
    PQclear(r);
    gzFile gz = gzopen(path, "wb6");
    if (!gz)
        return ctl_fail("check the directory's permissions and free space", "cannot write %s",
                        path);
    char *buf;
    int n, bad = 0;
    *rows = -1; /* the header */
    while ((n = PQgetCopyData(pg, &buf, 0)) > 0) {
        if (!bad && gzwrite(gz, buf, (unsigned)n) != n)
            bad = 1;
        (*rows)++;
        PQfreemem(buf);
        if (*rows == 1)
            crash_point("archive_mid_write");
    }
    r = PQgetResult(pg);
    bool ok = n == -1 && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    while ((r = PQgetResult(pg)) != NULL)
        PQclear(r);
    if (gzclose(gz) != Z_OK)
        bad = 1;
    if (!ok)
        return ctl_fail("check the database's health and run the archive again",
                        "reading rows for %s: %s", path, PQerrorMessage(pg));
    if (bad)
        return ctl_fail("check the directory's free space and run the archive again",
                        "writing %s failed", path);
    if (*rows < 0)
        *rows = 0;
    return 0;
}

/* q with every ":before" replaced by `value`, into out (cut at n). */
static void subst(char *out, size_t n, const char *q, const char *value)
{
    size_t w = 0;
    while (*q && w + 1 < n) {
        if (strncmp(q, ":before", 7) == 0) {
            w += (size_t)snprintf(out + w, n - w, "%s", value);
            if (w >= n)
                w = n - 1;
            q += 7;
        } else {
            out[w++] = *q++;
        }
    }
    out[w] = '\0';
}

/* fsync of a file or directory by path; 0 or -1 */
static int sync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The parent directory of path ("." when none) into out. */
static void parent_of(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
}

/* Removes what an archive run wrote into its partial directory. */
static void remove_partial(const char *tmp)
{
    char path[4400];
    for (size_t i = 0; i < NSPECS; i++) {
        snprintf(path, sizeof path, "%s/%s.csv.gz", tmp, specs[i].table);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/manifest.json", tmp);
    unlink(path);
    rmdir(tmp);
}

static int archive_write(ctl_t *c, const char *before_arg, const char *dir, bool books)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return ctl_fail("name a new directory: an archive is never written over another",
                        "%s exists", dir);
    char parent[4096];
    parent_of(dir, parent, sizeof parent);
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
        return ctl_fail("create it first", "the parent directory %s does not exist", parent);
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    PGresult *r;
    const char *p[] = {before_arg};
    if (db_query(db, &r,
                 "SELECT " CTL_SQL_TIME(
                     "t") ", quote_literal(t::text), t <= now() - "
                          "interval '1 hour', (SELECT id::text FROM ledger_identity) FROM (SELECT "
                          "$1::timestamptz AS t) x",
                 1, p) != LL_OK)
        return ctl_fail("give a time such as 2026-11-01 or 2026-11-01T00:00:00Z (UTC unless "
                        "it names a zone)",
                        "--before '%s' is not a time: %s", before_arg, db_errstr(db));
    char before[64], quoted[96], ledger_id[128];
    snprintf(before, sizeof before, "%s", PQgetvalue(r, 0, 0));
    snprintf(quoted, sizeof quoted, "%s::timestamptz", PQgetvalue(r, 0, 1));
    bool old_enough = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    snprintf(ledger_id, sizeof ledger_id, "%s", PQgetvalue(r, 0, 3));
    PQclear(r);
    if (!old_enough)
        return ctl_fail("choose a time at least an hour ago: a transaction that began before "
                        "it may still be committing rows of that time",
                        "--before %s is less than an hour ago", before);

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.partial-%d", dir, (int)getpid());
    if (mkdir(tmp, 0750) != 0)
        return ctl_fail("check the parent directory's permissions", "cannot create %s: %s", tmp,
                        strerror(errno));
    if (db_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != LL_OK ||
        db_exec(db, "SET LOCAL TIME ZONE 'UTC'") != LL_OK) {
        db_try(db, "ROLLBACK");
        remove_partial(tmp);
        return ctl_fail("check the database's health and run the archive again",
                        "cannot open a snapshot: %s", db_errstr(db));
    }
    json_t *files = json_array();
    for (size_t i = 0; i < NSPECS; i++) {
        if (specs[i].books && !books)
            continue;
        char query[4096], path[4400], name[96];
        subst(query, sizeof query, specs[i].query, quoted);
        snprintf(name, sizeof name, "%s.csv.gz", specs[i].table);
        snprintf(path, sizeof path, "%s/%s", tmp, name);
        long long rows = 0, bytes = 0;
        char sum[DIGEST_HEX_LEN + 1];
        if (copy_out(db, query, path, &rows) != 0) {
            db_try(db, "ROLLBACK");
            json_decref(files);
            remove_partial(tmp);
            return 1;
        }
        if (sync_path(path) != 0 || digest_sha256_file(path, sum, &bytes) != 0) {
            db_try(db, "ROLLBACK");
            json_decref(files);
            remove_partial(tmp);
            return ctl_fail("check the directory's disk", "cannot sync or read back %s", path);
        }
        json_array_append_new(files, json_pack("{s:s, s:s, s:I, s:I, s:s}", "name", name, "table",
                                               specs[i].table, "rows", (json_int_t)rows, "bytes",
                                               (json_int_t)bytes, "sha256", sum));
    }
    db_try(db, "COMMIT");
    json_t *manifest = json_pack("{s:s, s:s, s:s, s:b, s:o}", "format", ARCHIVE_FORMAT, "ledger_id",
                                 ledger_id, "before", before, "books", books, "files", files);
    char mpath[4400];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", tmp);
    if (json_dump_file(manifest, mpath, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 ||
        sync_path(mpath) != 0 || sync_path(tmp) != 0) {
        json_decref(manifest);
        remove_partial(tmp);
        return ctl_fail("check the directory's disk", "cannot write %s", mpath);
    }
    char msum[DIGEST_HEX_LEN + 1];
    if (digest_sha256_file(mpath, msum, NULL) != 0) {
        json_decref(manifest);
        remove_partial(tmp);
        return ctl_fail("check the directory's disk", "cannot read back %s", mpath);
    }
    crash_point("archive_before_rename");
    if (rename(tmp, dir) != 0) {
        int e = errno;
        json_decref(manifest);
        remove_partial(tmp);
        return ctl_fail("check the parent directory", "cannot rename %s to %s: %s", tmp, dir,
                        strerror(e));
    }
    if (sync_path(parent) != 0) {
        json_decref(manifest);
        return ctl_fail("check the parent directory's disk, then `ledgerctl archive verify` it",
                        "cannot sync %s after renaming the archive into it", parent);
    }
    const char *ip[] = {before, dir, msum};
    if (db_query(db, &r,
                 "INSERT INTO retention_archives (before, location, manifest_sha256) "
                 "VALUES ($1::timestamptz, $2, $3) RETURNING id",
                 3, ip) != LL_OK) {
        json_decref(manifest);
        return ctl_fail("the files are complete: run `ledgerctl archive` again into a new "
                        "directory to record an archive (retention.archive_first waits for "
                        "one)",
                        "recording the archive failed: %s", db_errstr(db));
    }
    PQclear(r);
    if (c->json) {
        json_object_set_new(manifest, "directory", json_string(dir));
        json_object_set_new(manifest, "manifest_sha256", json_string(msum));
        ctl_json_print(manifest);
        return 0;
    }
    printf("archived to %s everything older than %s (manifest %.12s):\n", dir, before, msum);
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(manifest, "files"), i, f)
    {
        printf("  %-26s %10lld rows %12lld bytes\n", json_string_value(json_object_get(f, "name")),
               (long long)json_integer_value(json_object_get(f, "rows")),
               (long long)json_integer_value(json_object_get(f, "bytes")));
    }
    json_decref(manifest);
    return 0;
}

/* ---- verifying ---------------------------------------------------------------- */

/* Rows of a gzip CSV file with a header line: newlines outside quotes,
 * minus the header. -1 when it cannot be read. */
static long long csv_rows(const char *path)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return -1;
    char buf[65536];
    int n;
    long long lines = 0;
    bool quoted = false;
    while ((n = gzread(gz, buf, sizeof buf)) > 0)
        for (int i = 0; i < n; i++) {
            if (buf[i] == '"')
                quoted = !quoted;
            else if (buf[i] == '\n' && !quoted)
                lines++;
        }
    int err = 0;
    gzerror(gz, &err);
    bool ok = n == 0 && err == Z_OK && !quoted;
    gzclose(gz);
    return ok ? (lines > 0 ? lines - 1 : 0) : -1;
}

static int archive_verify(ctl_t *c, const char *dir)
{
    char mpath[4400];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *m = json_load_file(mpath, 0, &jerr);
    if (!m)
        return ctl_fail("point at a directory `ledgerctl archive` completed (a *.partial-* "
                        "one was interrupted: delete it and archive again)",
                        "cannot read %s: %s", mpath, jerr.text);
    const char *format = json_string_value(json_object_get(m, "format"));
    json_t *files = json_object_get(m, "files");
    if (!format || strcmp(format, ARCHIVE_FORMAT) != 0 || !json_is_array(files)) {
        json_decref(m);
        return ctl_fail("use the ledgerctl that wrote it", "%s: not a %s manifest", mpath,
                        ARCHIVE_FORMAT);
    }
    int broken = 0;
    json_t *report = json_array();
    size_t i;
    json_t *f;
    /* every table an archive of its kind holds is listed */
    bool books = json_is_true(json_object_get(m, "books"));
    for (size_t k = 0; k < NSPECS; k++) {
        if (specs[k].books && !books)
            continue;
        bool listed = false;
        json_array_foreach(files, i, f)
        {
            const char *t = json_string_value(json_object_get(f, "table"));
            listed |= t && strcmp(t, specs[k].table) == 0;
        }
        if (!listed) {
            broken++;
            json_array_append_new(report, json_pack("{s:s, s:b, s:s}", "name", specs[k].table, "ok",
                                                    0, "problem", "missing from the manifest"));
            if (!c->json)
                printf("FAIL  %-26s missing from the manifest\n", specs[k].table);
        }
    }
    json_array_foreach(files, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *want = json_string_value(json_object_get(f, "sha256"));
        long long rows = json_integer_value(json_object_get(f, "rows"));
        long long bytes = json_integer_value(json_object_get(f, "bytes"));
        char problem[256] = "";
        char path[4400], sum[DIGEST_HEX_LEN + 1];
        long long have_bytes = 0, have_rows;
        if (!name || !want || strchr(name, '/')) {
            snprintf(problem, sizeof problem, "manifest entry %zu is malformed", i);
        } else {
            snprintf(path, sizeof path, "%s/%s", dir, name);
            if (digest_sha256_file(path, sum, &have_bytes) != 0)
                snprintf(problem, sizeof problem, "cannot read it: %s", strerror(errno));
            else if (have_bytes != bytes)
                snprintf(problem, sizeof problem, "%lld bytes, the manifest says %lld", have_bytes,
                         bytes);
            else if (strcmp(sum, want) != 0)
                snprintf(problem, sizeof problem, "SHA-256 %.12s, the manifest says %.12s", sum,
                         want);
            else if ((have_rows = csv_rows(path)) != rows)
                snprintf(problem, sizeof problem, "%lld rows, the manifest says %lld", have_rows,
                         rows);
        }
        broken += problem[0] != '\0';
        json_array_append_new(report, json_pack("{s:s, s:I, s:b, s:s?}", "name", name ? name : "",
                                                "rows", (json_int_t)rows, "ok", !problem[0],
                                                "problem", problem[0] ? problem : NULL));
        if (!c->json) {
            if (problem[0])
                printf("FAIL  %-26s %s\n", name ? name : "?", problem);
            else
                printf("ok    %-26s %lld rows\n", name, rows);
        }
    }
    if (c->json)
        ctl_json_print(json_pack("{s:s, s:O, s:i, s:o}", "directory", dir, "before",
                                 json_object_get(m, "before"), "broken", broken, "files", report));
    else
        json_decref(report);
    json_decref(m);
    if (broken)
        return ctl_fail("restore the named files from another copy of the archive, or archive "
                        "again (while the partitions are still there)",
                        "%d file(s) of %s do not match the manifest", broken, dir);
    if (!c->json)
        printf("archive %s: every file matches its manifest\n", dir);
    return 0;
}

int cmd_archive(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("archive");
    static const struct option opts[] = {{"before", required_argument, NULL, 'b'},
                                         {"to", required_argument, NULL, 't'},
                                         {"books", no_argument, NULL, 'B'},
                                         {NULL, 0, NULL, 0}};
    const char *before = NULL, *to = NULL;
    bool books = false;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        switch (ch) {
        case 'b':
            before = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'B':
            books = true;
            break;
        default:
            return ch == 'h' ? 0 : 2;
        }
    }
    if (optind < argc && strcmp(argv[optind], "verify") == 0) {
        if (before || to || books)
            return ctl_usage_error(cmd, "archive verify takes only the directory");
        if (argc - optind != 2)
            return ctl_usage_error(cmd, "archive verify takes one directory");
        return archive_verify(c, argv[optind + 1]);
    }
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!before || !to)
        return ctl_usage_error(cmd, "archive needs --before TIME and --to DIR");
    return archive_write(c, before, to, books);
}
