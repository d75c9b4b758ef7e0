/*
 * fuzz_settings.c - libFuzzer harness for the configuration loader: the
 * input is a YAML settings file, loaded by settings_load_env() with an
 * empty environment, as a worker or ledgerctl loads --config FILE.
 * Invariants checked: the result is LL_OK or LL_ECONFIG; on LL_ECONFIG the
 * message for the operator is non-empty and NUL-terminated; on LL_OK every
 * string setting is non-NULL, every integer is within its row's range, the
 * effective configuration prints, and settings_free() releases everything
 * (ASan/LeakSanitizer catch the rest). The input reaches the loader as a
 * file: an in-memory one (memfd), named by /proc/self/fd.
 * Seeds: tests/fuzz/corpus/fuzz_settings/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_settings", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        perror("memfd");
        abort();
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char *env[] = {NULL};
    settings_t s;
    cfg_error_t err;
    memset(&err, 0, sizeof err);
    int rc = settings_load_env(&s, path, env, &err);
    if (rc == LL_OK) {
        for (size_t i = 0; i < settings_count; i++) {
            const cfg_setting_t *t = &settings_table[i];
            const char *p = (const char *)&s + t->offset;
            if (t->type == CFG_STR && !*(char *const *)p)
                abort(); /* strings are never NULL after a load */
            if (t->type == CFG_INT) {
                long long v = *(const long long *)p;
                if (v < t->min || v > t->max)
                    abort(); /* out of its row's range */
            }
        }
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull) {
            settings_print(&s, devnull);
            fclose(devnull);
        }
        settings_free(&s);
    } else if (rc != LL_ECONFIG || !err.msg[0] || !memchr(err.msg, '\0', sizeof err.msg)) {
        abort();
    }
    close(fd);
    return 0;
}
