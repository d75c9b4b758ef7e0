/*
 * cmd_settlement.c - `ledgerctl settlement list|show`: settlement batches
 * (settlement_batches) and the payments in one (settlement_items). An open
 * batch whose close was refused shows as "held", with the reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define BATCH_COLS                                                                                 \
    "id, payee, currency, status, count, gross, coalesce(fees, least(fees_raw, gross)), "          \
    "coalesce(net, gross - least(fees_raw, gross)), late_count, "                                  \
    "to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                 \
    "to_char(window_end AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "                   \
    "coalesce(closed_by, ''), coalesce(fence::text, ''), "                                         \
    "CASE WHEN status = 'open' AND close_error IS NOT NULL THEN 'held' ELSE status END, "          \
    "coalesce(close_error, ''), "                                                                  \
    "coalesce(to_char(close_retry_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"

static json_t *batch_json(PGresult *r, int i)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:s}", "id", PQgetvalue(r, i, 0),
        "payee", PQgetvalue(r, i, 1), "currency", PQgetvalue(r, i, 2), "status",
        PQgetvalue(r, i, 3), "count", (json_int_t)strtoll(PQgetvalue(r, i, 4), NULL, 10), "gross",
        (json_int_t)strtoll(PQgetvalue(r, i, 5), NULL, 10), "fees",
        (json_int_t)strtoll(PQgetvalue(r, i, 6), NULL, 10), "net",
        (json_int_t)strtoll(PQgetvalue(r, i, 7), NULL, 10), "late_count",
        (json_int_t)strtoll(PQgetvalue(r, i, 8), NULL, 10), "window_start", PQgetvalue(r, i, 9),
        "window_end", PQgetvalue(r, i, 10), "closed_by", PQgetvalue(r, i, 11));
    if (strcmp(PQgetvalue(r, i, 13), "held") == 0) {
        json_object_set_new(j, "held", json_true());
        json_object_set_new(j, "close_error", json_string(PQgetvalue(r, i, 14)));
        json_object_set_new(j, "close_retry_at", json_string(PQgetvalue(r, i, 15)));
    }
    return j;
}

int cmd_settlement_list(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("settlement list");
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", NULL)) != -1)
        return ch == 'h' ? 0 : 2;
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    PGresult *r;
    if (db_query(db, &r, "SELECT " BATCH_COLS " FROM settlement_batches ORDER BY window_start, id",
                 0, NULL) != LL_OK)
        return ctl_fail("run `ledgerctl migrate` if the schema is missing", "listing batches: %s",
                        db_errstr(db));
    if (c->json) {
        json_t *list = json_array();
        for (int i = 0; i < PQntuples(r); i++)
            json_array_append_new(list, batch_json(r, i));
        ctl_json_print(json_pack("{s:o}", "batches", list));
    } else {
        printf("%-36s %-6s %-20s %6s %12s %10s %12s %5s\n", "BATCH", "STATUS", "WINDOW START",
               "COUNT", "GROSS", "FEES", "NET", "LATE");
        for (int i = 0; i < PQntuples(r); i++)
            printf("%-36s %-6s %-20s %6s %12s %10s %12s %5s\n", PQgetvalue(r, i, 0),
                   PQgetvalue(r, i, 13), PQgetvalue(r, i, 9), PQgetvalue(r, i, 4),
                   PQgetvalue(r, i, 5), PQgetvalue(r, i, 6), PQgetvalue(r, i, 7),
                   PQgetvalue(r, i, 8));
    }
    PQclear(r);
    return 0;
}

int cmd_settlement_show(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("settlement show");
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", NULL)) != -1)
        return ch == 'h' ? 0 : 2;
    if (optind >= argc)
        return ctl_usage_error(cmd, "missing the BATCH_ID");
    const char *id = argv[optind++];
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    const char *p[] = {id};
    PGresult *r, *items;
    if (db_query(db, &r, "SELECT " BATCH_COLS " FROM settlement_batches WHERE id = $1", 1, p) !=
        LL_OK)
        return ctl_fail("run `ledgerctl migrate` if the schema is missing", "reading batch: %s",
                        db_errstr(db));
    if (PQntuples(r) != 1) {
        PQclear(r);
        return ctl_fail("list them with `ledgerctl settlement list`", "no settlement batch '%s'",
                        id);
    }
    if (db_query(db, &items,
                 "SELECT payment_id, amount, fee, late FROM settlement_items WHERE batch_id = $1 "
                 "ORDER BY added_at, payment_id",
                 1, p) != LL_OK) {
        PQclear(r);
        return ctl_fail(NULL, "reading items: %s", db_errstr(db));
    }
    if (c->json) {
        json_t *j = batch_json(r, 0), *list = json_array();
        for (int i = 0; i < PQntuples(items); i++)
            json_array_append_new(
                list, json_pack("{s:s, s:I, s:I, s:b}", "payment_id", PQgetvalue(items, i, 0),
                                "amount", (json_int_t)strtoll(PQgetvalue(items, i, 1), NULL, 10),
                                "fee", (json_int_t)strtoll(PQgetvalue(items, i, 2), NULL, 10),
                                "late", strcmp(PQgetvalue(items, i, 3), "t") == 0));
        json_object_set_new(j, "items", list);
        ctl_json_print(j);
    } else {
        printf("batch     %s\npayee     %s (%s)\nwindow    %s .. %s\nstatus    %s%s%s\n"
               "count     %s (late %s)\ngross     %s\nfees      %s\nnet       %s\n",
               PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 9),
               PQgetvalue(r, 0, 10), PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 11)[0] ? " by " : "",
               PQgetvalue(r, 0, 11), PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 8), PQgetvalue(r, 0, 5),
               PQgetvalue(r, 0, 6), PQgetvalue(r, 0, 7));
        if (strcmp(PQgetvalue(r, 0, 13), "held") == 0)
            printf("held      until %s: %s\n", PQgetvalue(r, 0, 15), PQgetvalue(r, 0, 14));
        for (int i = 0; i < PQntuples(items); i++)
            printf("  %-40s %12s  fee %8s%s\n", PQgetvalue(items, i, 0), PQgetvalue(items, i, 1),
                   PQgetvalue(items, i, 2),
                   strcmp(PQgetvalue(items, i, 3), "t") == 0 ? "  late" : "");
    }
    PQclear(items);
    PQclear(r);
    return 0;
}
