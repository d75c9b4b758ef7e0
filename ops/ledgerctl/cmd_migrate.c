/*
 * cmd_migrate.c - `ledgerctl migrate`: apply pending SQL migrations.
 */
#include <stdio.h>

#include "ctl.h"
#include "migrate.h"

typedef struct report {
    json_t *list; /* --json */
    int applied;
} report_t;

static void on_migration(void *ud, int version, const char *name, int applied)
{
    report_t *r = ud;
    r->applied += applied;
    if (r->list)
        json_array_append_new(r->list, json_pack("{s:i, s:s, s:b}", "version", version, "name",
                                                 name, "applied", applied));
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
    if (migrate_run(db, on_migration, &r, err, sizeof err) != LL_OK) {
        json_decref(r.list);
        return ctl_fail("fix the cause above and run `ledgerctl migrate` again; applied "
                        "migrations are kept, the failed one was rolled back",
                        "%s", err);
    }
    if (r.list)
        ctl_json_print(json_pack("{s:o, s:i}", "migrations", r.list, "applied", r.applied));
    else
        printf("schema up to date (%d applied now)\n", r.applied);
    return 0;
}
