/*
 * cmd_config.c - `ledgerctl config check|reference` (and --check-config).
 */
#include <stdio.h>

#include "ctl.h"

int cmd_config_check(ctl_t *c, int argc, char **argv)
{
    if (argv) {
        const ctl_cmd_t *cmd = ctl_find_cmd("config check");
        int ch;
        while ((ch = ctl_getopt(c, cmd, argc, argv, NULL, NULL)) != -1)
            return ch == 'h' ? 0 : 2;
    }
    settings_print(&c->cfg, stdout);
    fprintf(stderr, "configuration OK (%s)\n",
            c->config_path ? c->config_path : "defaults and environment, no file");
    return 0;
}

int cmd_config_reference(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("config reference");
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, NULL, NULL)) != -1)
        return ch == 'h' ? 0 : 2;
    cfg_print_reference(settings_table, settings_count, stdout);
    return 0;
}
