/*
 * cmd_migrate.c - `ledgerctl migrate`: apply the pending SQL migrations and
 * the function set (migrate.h), then create the partitions of processed
 * and outbox ahead (retention.h), with the configured retention.*.
 */
#include <stdbool.h>
#include <stdio.h>

#include "ctl.h"
#include "migrate.h"
#include "retention.h"

typedef struct report {
    json_t *list;      /* --json: the migrations */
    json_t *functions; /* --json: the function set */
    int applied;
} report_t;

static void on_step(void *ud, migrate_step_t step, int version, const char *name)
{
    report_t *r = ud;
    if (step == MIGRATE_FUNCTIONS_APPLIED || step == MIGRATE_FUNCTIONS_PRESENT) {
        bool now = step == MIGRATE_FUNCTIONS_APPLIED;
        if (r->list)
            r->functions =
                json_pack("{s:i, s:s, s:b}", "count", version, "checksum", name, "applied", now);
        else
            printf("%s %d SQL functions (set %.12s)\n", now ? "applied        " : "already applied",
                   version, name);
        return;
    }
    bool applied = step == MIGRATE_APPLIED;
    r->applied += applied;
    if (r->list)
        json_array_append_new(r->list, json_pack("{s:i, s:s, s:b, s:b}", "version", version, "name",
                                                 name, "applied", applied, "rewritten",
                                                 step == MIGRATE_REWRITTEN));
    else if (step == MIGRATE_REWRITTEN)
        printf("already applied %s (its text was rewritten since: record updated)\n", name);
    else
        printf("%s %s\n", applied ? "applied        " : "already applied", name);
}

int cmd_migrate(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("migrate");
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, NULL, NULL)) != -1)
        return ch == 'h' ? 0 : 2;
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    db_t *db = ctl_db(c);
    if (!db)
        return 1;
    report_t r = {.list = c->json ? json_array() : NULL};
    char err[512];
    if (migrate_run(db, on_step, &r, err, sizeof err) != LL_OK) {
        json_decref(r.list);
        json_decref(r.functions);
        return ctl_fail("fix the cause above and run `ledgerctl migrate` again; applied "
                        "migrations are kept, the failed one was rolled back",
                        "%s", err);
    }
    int created = 0;
    if (retention_prepare(db, &c->cfg, &created) != LL_OK) {
        json_decref(r.list);
        json_decref(r.functions);
        return ctl_fail("check retention.partition_s and retention.ahead_s, and run `ledgerctl "
                        "migrate` again (the migrations are applied)",
                        "creating the partitions ahead failed: %s", db_errstr(db));
    }
    if (r.list)
        ctl_json_print(json_pack("{s:o, s:i, s:o, s:i}", "migrations", r.list, "applied", r.applied,
                                 "functions", r.functions ? r.functions : json_null(),
                                 "partitions_created", created));
    else
        printf("schema up to date (%d applied now; %d partition(s) created ahead)\n", r.applied,
               created);
    return 0;
}
