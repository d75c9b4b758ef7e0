/*
 * main.c - ledgerctl: the operator's command line for Ledgerline.
 *
 * Parses the global options, loads the settings (YAML file given by
 * --config or LEDGERLINE_CONFIG, then LEDGERLINE_* environment), and runs
 * one command of the table (commands.c). Commands live one group per file
 * (cmd_*.c; `ledgerctl bench` in cmd_bench.c and bench_*.c); shared
 * plumbing in ctl.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: ledgerctl [--config FILE] [--json] COMMAND [ARGS]\n\n"
                 "Operate a Ledgerline deployment. Connection settings come from\n"
                 "LEDGERLINE_* variables (eval \"$(./ops/stack env)\" for the local stack)\n"
                 "and, optionally, a YAML file (--config or LEDGERLINE_CONFIG).\n\n"
                 "commands:\n");
    for (const ctl_cmd_t *c = ctl_commands(); c->name; c++)
        fprintf(out, "  %-18s %s\n", c->name, c->summary);
    fprintf(out, "\n`ledgerctl COMMAND --help` shows a command's options.\n");
}

/* Is argv[i] the group word of a two-word command ("account", ...)? */
static bool is_group(const char *w)
{
    size_t n = strlen(w);
    for (const ctl_cmd_t *c = ctl_commands(); c->name; c++)
        if (strncmp(c->name, w, n) == 0 && c->name[n] == ' ')
            return true;
    return false;
}

static void group_usage(const char *group)
{
    size_t n = strlen(group);
    fprintf(stderr, "ledgerctl %s: which one?\n", group);
    for (const ctl_cmd_t *c = ctl_commands(); c->name; c++)
        if (strncmp(c->name, group, n) == 0 && c->name[n] == ' ')
            fprintf(stderr, "  ledgerctl %-18s %s\n", c->name, c->summary);
}

int main(int argc, char **argv)
{
    ctl_t c;
    memset(&c, 0, sizeof c);
    c.config_path = getenv("LEDGERLINE_CONFIG");
    if (c.config_path && !*c.config_path)
        c.config_path = NULL;

    int i = 1;
    bool check_config = false;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("ledgerctl %s\n", LEDGERLINE_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = true;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_config = true;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            c.config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            c.config_path = argv[i] + 9;
        } else {
            fprintf(stderr,
                    "ledgerctl: unknown option '%s'\n  fix: see `ledgerctl --help`; command "
                    "options go after the command\n",
                    argv[i]);
            return 2;
        }
    }
    if (!check_config && i >= argc) {
        usage(stderr);
        return 2;
    }

    cfg_error_t err;
    memset(&err, 0, sizeof err);
    if (settings_load(&c.cfg, c.config_path, &err) != LL_OK) {
        /* msg names the source, line, key, the problem and the fix */
        fprintf(stderr, "ledgerctl: %s\n", err.msg);
        settings_free(&c.cfg);
        return 2;
    }
    log_init("ledgerctl", LOG_WARN);

    int rc;
    if (check_config) {
        rc = cmd_config_check(&c, 0, NULL);
        goto out;
    }
    char name[64];
    int used = 1;
    if (is_group(argv[i])) {
        if (i + 1 >= argc || argv[i + 1][0] == '-') {
            group_usage(argv[i]);
            rc = 2;
            goto out;
        }
        snprintf(name, sizeof name, "%s %s", argv[i], argv[i + 1]);
        used = 2;
    } else {
        snprintf(name, sizeof name, "%s", argv[i]);
    }
    const ctl_cmd_t *cmd = ctl_find_cmd(name);
    if (!cmd) {
        fprintf(stderr, "ledgerctl: unknown command '%s'\n  fix: `ledgerctl --help` lists them\n",
                name);
        rc = 2;
        goto out;
    }
    /* the command sees argv[0] = its name, then its own arguments */
    int cargc = argc - i - used + 1;
    char **cargv = argv + i + used - 1;
    rc = cmd->run(&c, cargc, cargv);
out:
    db_free(c.db);
    mq_free(c.mq);
    settings_free(&c.cfg);
    return rc;
}
