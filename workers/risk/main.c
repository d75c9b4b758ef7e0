/*
 * main.c - risk-worker. For now it only loads and validates its
 * configuration (--check-config); the risk stage itself lands with its own
 * issue, on the shared runtime of common/.
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "settings.h"

int main(int argc, char **argv)
{
    const char *path = getenv("LEDGERLINE_CONFIG");
    int check = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check-config") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("risk-worker %s\n", LEDGERLINE_VERSION);
            return 0;
        } else {
            printf("usage: risk-worker [--config FILE] --check-config\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    settings_t s;
    cfg_error_t err;
    memset(&err, 0, sizeof err);
    if (settings_load(&s, path && *path ? path : NULL, &err) != LL_OK) {
        fprintf(stderr, "risk-worker: %s\n", err.msg);
        settings_free(&s);
        return 2;
    }
    if (check) {
        settings_print(&s, stdout);
        settings_free(&s);
        return 0;
    }
    settings_free(&s);
    fprintf(stderr, "risk-worker: the risk stage is not part of this build yet; only "
                    "--check-config is available\n");
    return 2;
}
