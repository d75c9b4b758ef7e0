/*
 * log.h - JSON-lines logging: one JSON object per line on stdout.
 *
 *   {"ts":"2026-11-23T09:31:25.123Z","level":"info","worker":"payment-worker",
 *    "instance":"payment-1","msg":"...","queue":"payments","payment_id":"p-1",
 *    "count":12,"duration_ms":3.25,"err":"..."}
 *
 * ts, level, worker and msg are always present, instance once set; queue,
 * payment_id, event_id, reason, count, duration_ms and err only when the
 * caller passes them in a log_ctx_t: ids, counts and durations are fields,
 * so a log pipeline filters and sums them without parsing the text. Every string is escaped so
 * that each line is valid JSON whatever the input (quotes, control
 * characters, invalid UTF-8, which becomes U+FFFD). A line is built in a
 * buffer of at most LOG_LINE_MAX bytes (== PIPE_BUF: over-long values are
 * cut, marked with "...") and written with one fwrite + fflush, so lines
 * from processes sharing a pipe never interleave.
 *
 * Levels have fixed meanings (Postfix msg_*, PgBouncer slog_*):
 *   error  needs a human;          warn   degraded but coping;
 *   info   lifecycle (start, connect, stop);  debug  per message.
 * The macros test the level before evaluating their arguments, so a
 * disabled level costs one comparison. Never log secrets.
 *
 * Public API: log_level_t, log_ctx_t, log_init, log_set_instance,
 * log_set_level, log_get_level, log_set_output, log_last_problem, log_level_parse, log_level_name,
 * log_enabled, log_error, log_warn, log_info, log_debug, log_errorx, log_warnx, log_infox,
 * log_debugx, log_panic, log_write.
 */
#ifndef LL_LOG_H
#define LL_LOG_H

#include <stdbool.h>
#include <stdio.h>

#include "err.h"

#define LOG_LINE_MAX 4096 /* bytes per line, newline included */

typedef enum { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG } log_level_t;

/* Optional per-line context; any field may be NULL (then it is omitted).
 * Borrowed: only read during the call. */
typedef struct {
    const char *queue;
    const char *payment_id;
    const char *event_id;
    const char *reason; /* a rejection or failure reason code */
    const char *err;    /* error detail, e.g. kv_errstr() */
    long long count;    /* written when has_count */
    double duration_ms; /* written when has_duration */
    bool has_count, has_duration;
} log_ctx_t;

/* Sets the worker name (copied, at most 63 bytes) and the level.
 * Before log_init the worker is the program name and the level info. */
void log_init(const char *worker, log_level_t level);
/* The process's instance name (copied, at most 127 bytes), in every line. */
void log_set_instance(const char *instance);
void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* Where lines go; NULL means stdout (the default). Borrowed: the caller
 * keeps `out` open while it is set. For tests. */
void log_set_output(FILE *out);
/* "error" | "warn" | "info" | "debug" (case-insensitive) -> LL_OK, else
 * LL_EINVAL and *out untouched. */
int log_level_parse(const char *s, log_level_t *out) LL_MUSTCHECK;
/* "error", "warn", "info", "debug"; "?" for anything else. */
const char *log_level_name(log_level_t level);

/* The last line written at warn or error: its msg (and err, after ": ")
 * into buf, and when (Unix ms) into *at_ms. False when there was none. */
bool log_last_problem(char *buf, size_t len, long long *at_ms);

/* Would a line at `lvl` be written now? (The macros below check it.) */
#define log_enabled(lvl) ((lvl) <= log_get_level())

/* Writes one line at `level` regardless of the current level (the macros
 * below do the check). ctx may be NULL. */
void log_write(log_level_t level, const log_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log__at(lvl, ctx, ...)                                                                     \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write((lvl), (ctx), __VA_ARGS__);                                                  \
    } while (0)

#define log_error(...) log__at(LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(...)  log__at(LOG_WARN, NULL, __VA_ARGS__)
#define log_info(...)  log__at(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log__at(LOG_DEBUG, NULL, __VA_ARGS__)

/* Same with a const log_ctx_t * first (may be NULL). */
#define log_errorx(ctx, ...) log__at(LOG_ERROR, (ctx), __VA_ARGS__)
#define log_warnx(ctx, ...)  log__at(LOG_WARN, (ctx), __VA_ARGS__)
#define log_infox(ctx, ...)  log__at(LOG_INFO, (ctx), __VA_ARGS__)
#define log_debugx(ctx, ...) log__at(LOG_DEBUG, (ctx), __VA_ARGS__)

/* A broken invariant: logs at error (whatever the level), then abort(). */
__attribute__((noreturn, format(printf, 1, 2))) void log_panic(const char *fmt, ...);

#endif
