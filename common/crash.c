/*
 * crash.c - crash points for tests: see crash.h.
 */
#ifdef LEDGERLINE_CRASH_POINTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash.h"
#include "log.h"

void crash_point(const char *name)
{
    static long hits;
    const char *at = getenv("LEDGERLINE_CRASH_AT");
    if (!at || strcmp(at, name) != 0)
        return;
    const char *after = getenv("LEDGERLINE_CRASH_AFTER");
    long n = after ? strtol(after, NULL, 10) : 1;
    if (++hits < (n > 0 ? n : 1))
        return;
    log_warn("crash point %s reached (hit %ld): killing myself with SIGKILL", name, hits);
    kill(getpid(), SIGKILL);
    _exit(137); /* not reached */
}

void pause_point(const char *name)
{
    const char *at = getenv("LEDGERLINE_PAUSE_AT");
    if (!at || strcmp(at, name) != 0)
        return;
    log_warn("pause point %s reached: stopping myself (SIGSTOP) until SIGCONT", name);
    raise(SIGSTOP);
    log_warn("pause point %s: continued", name);
}
#else
/* ISO C forbids an empty translation unit */
typedef int crash_points_disabled;
#endif
