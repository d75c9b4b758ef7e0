/*
 * cmd_storage.c - `ledgerctl storage`: where the ledger's disk goes, per
 * table (pg_total_relation_size: rows, indexes and TOAST), each table
 * classed as BOOKS (the ledger's record, kept forever: accounts,
 * transfers, entries, decisions, batches, refunds, deposits, withdrawals)
 * or BOOKKEEPING (what exactly-once delivery needs for a while: the
 * processed claims and payloads, the outbox of event bodies and what is
 * pending), with the totals of each and the bytes per posted payment.
 * The figure an SRE watches for growth, and what a soak reports. A
 * partitioned table (processed, outbox) counts all its partitions; the
 * oldest time the bookkeeping still holds is retention_horizon().
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* The tables of the bookkeeping; every other table of the schema is books,
 * but the schema's own records (class "schema"). */
static const char *const bookkeeping[] = {"processed", "outbox", "outbox_pending", NULL};
static const char *const schema_tables[] = {"schema_migrations", "schema_functions", NULL};

static const char *table_class(const char *name)
{
    for (size_t i = 0; bookkeeping[i]; i++)
        if (strcmp(name, bookkeeping[i]) == 0)
            return "bookkeeping";
    for (size_t i = 0; schema_tables[i]; i++)
        if (strcmp(name, schema_tables[i]) == 0)
            return "schema";
    return "books";
}

/* "12.3 MB" */
static const char *human(int64_t b, char *out, size_t n)
{
    static const char *const unit[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
    return out;
}

int cmd_storage(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("storage");
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", NULL)) != -1)
        return ch == 'h' ? 0 : 2;
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    PGresult *r;
    /* clang-format off */
    if (db_query(db, &r,
                 "SELECT c.relname, s.bytes, s.rows, "
                 "(SELECT count(*) FROM transfers WHERE kind = 'payment'), "
                 "pg_database_size(current_database()), s.parts, "
                 "(SELECT retention_horizon())::text "
                 "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 /* pg_partition_tree() lists nothing for a plain table */
                 "CROSS JOIN LATERAL (SELECT CASE WHEN c.relkind = 'r' "
                 "  THEN pg_total_relation_size(c.oid) "
                 "  ELSE coalesce(sum(pg_total_relation_size(t.relid)), 0) END::bigint AS bytes, "
                 "  CASE WHEN c.relkind = 'r' THEN greatest(c.reltuples, 0) "
                 "  ELSE coalesce(sum(greatest(x.reltuples, 0)) FILTER (WHERE t.isleaf), 0) "
                 "  END::bigint AS rows, count(t.relid) FILTER (WHERE t.isleaf) AS parts "
                 "  FROM pg_partition_tree(c.oid) t JOIN pg_class x ON x.oid = t.relid) s "
                 "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
                 "AND NOT c.relispartition "
                 "ORDER BY s.bytes DESC, c.relname",
                 0, NULL) != LL_OK)
        return ctl_fail("run `ledgerctl migrate` if the schema is missing", "reading sizes: %s",
                        db_errstr(db));
    /* clang-format on */
    int64_t sum[3] = {0, 0, 0}, payments = 0, dbsize = 0;
    char horizon[64] = "";
    static const char *const classes[] = {"books", "bookkeeping", "schema"};
    json_t *tables = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 0), *cls = table_class(name);
        int64_t bytes = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        payments = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        dbsize = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        snprintf(horizon, sizeof horizon, "%s", PQgetvalue(r, i, 6));
        int parts = atoi(PQgetvalue(r, i, 5));
        for (int k = 0; k < 3; k++)
            if (strcmp(cls, classes[k]) == 0)
                sum[k] += bytes;
        json_array_append_new(tables, json_pack("{s:s, s:s, s:I, s:I, s:i}", "table", name, "class",
                                                cls, "bytes", (json_int_t)bytes, "rows_estimate",
                                                (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10),
                                                "partitions", parts));
    }
    PQclear(r);
    int64_t total = sum[0] + sum[1] + sum[2];
    double per = payments ? (double)total / (double)payments : 0;
    if (c->json) {
        ctl_json_print(json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:s}", "tables", tables,
                                 "books_bytes", (json_int_t)sum[0], "bookkeeping_bytes",
                                 (json_int_t)sum[1], "schema_bytes", (json_int_t)sum[2],
                                 "tables_bytes", (json_int_t)total, "database_bytes",
                                 (json_int_t)dbsize, "payments", (json_int_t)payments,
                                 "bytes_per_payment", per, "bookkeeping_kept_since", horizon));
        return 0;
    }
    char h[32];
    printf("%-28s %-12s %12s %14s %10s\n", "TABLE", "CLASS", "SIZE", "ROWS (est.)", "PARTITIONS");
    size_t i;
    json_t *t;
    json_array_foreach(tables, i, t)
    {
        long long parts = json_integer_value(json_object_get(t, "partitions"));
        char pc[16] = "-";
        if (parts)
            snprintf(pc, sizeof pc, "%lld", parts);
        printf("%-28s %-12s %12s %14lld %10s\n", json_string_value(json_object_get(t, "table")),
               json_string_value(json_object_get(t, "class")),
               human(json_integer_value(json_object_get(t, "bytes")), h, sizeof h),
               (long long)json_integer_value(json_object_get(t, "rows_estimate")), pc);
    }
    json_decref(tables);
    printf("books %s, bookkeeping %s (%.0f %% of the tables), database %s\n",
           human(sum[0], (char[32]){0}, 32), human(sum[1], (char[32]){0}, 32),
           total ? 100.0 * (double)sum[1] / (double)total : 0.0, human(dbsize, h, sizeof h));
    printf("bookkeeping kept since %s (retention.window_s; docs/ledger.md#retention)\n",
           strcmp(horizon, "-infinity") == 0 ? "the beginning (nothing expired yet)" : horizon);
    if (payments)
        printf("%" PRId64 " payments posted: %.0f bytes of tables per payment\n", payments, per);
    else
        printf("no payment posted yet\n");
    return 0;
}
