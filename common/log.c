/*
 * log.c - JSON-lines logging: see log.h.
 *
 * Everything happens in a stack buffer (no allocation, so xmalloc can log
 * its own out-of-memory), then one fwrite + fflush.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

static log_level_t log__level = LOG_INFO;

static FILE *log_out; /* NULL: stdout */
static char log_worker[64];
static char log_instance[128];
static char log_problem[512]; /* the last warn/error line's msg (+ err) */
static long long log_problem_at;

static const char *const log_names[] = {"error", "warn", "info", "debug"};

void log_init(const char *worker, log_level_t level)
{
    snprintf(log_worker, sizeof log_worker, "%s", worker ? worker : "");
    log_set_level(level);
}

void log_set_instance(const char *instance)
{
    snprintf(log_instance, sizeof log_instance, "%s", instance ? instance : "");
}

bool log_last_problem(char *buf, size_t len, long long *at_ms)
{
    if (!log_problem_at)
        return false;
    snprintf(buf, len, "%s", log_problem);
    *at_ms = log_problem_at;
    return true;
}

void log_set_level(log_level_t level)
{
    if (level < LOG_ERROR)
        level = LOG_ERROR;
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    log__level = level;
}

log_level_t log_get_level(void)
{
    return log__level;
}

void log_set_output(FILE *out)
{
    log_out = out;
}

int log_level_parse(const char *s, log_level_t *out)
{
    for (size_t i = 0; s && i < sizeof log_names / sizeof log_names[0]; i++) {
        if (strcasecmp(s, log_names[i]) == 0) {
            *out = (log_level_t)i;
            return LL_OK;
        }
    }
    return LL_EINVAL;
}

const char *log_level_name(log_level_t level)
{
    if (level < LOG_ERROR || level > LOG_DEBUG)
        return "?";
    return log_names[level];
}

/* ---- line buffer ---------------------------------------------------- */

typedef struct {
    char buf[LOG_LINE_MAX];
    size_t len;
} log_line_t;

static void line_raw(log_line_t *l, const char *s)
{
    size_t n = strlen(s);
    if (n > sizeof l->buf - l->len)
        n = sizeof l->buf - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Length of the valid UTF-8 sequence at s (at most `avail` bytes), or 0 when
 * it is invalid (bad lead byte, truncated, overlong, surrogate, > U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* The JSON escape of the character at p: sets *out / *n to the bytes to
 * write (out may point into esc) and returns how many input bytes it used. */
static size_t esc_char(const unsigned char *p, size_t avail, char esc[8], const char **out,
                       size_t *n)
{
    unsigned c = *p;
    size_t used = 1;
    *n = 2;
    switch (c) {
    case '"':
        *out = "\\\"";
        break;
    case '\\':
        *out = "\\\\";
        break;
    case '\n':
        *out = "\\n";
        break;
    case '\r':
        *out = "\\r";
        break;
    case '\t':
        *out = "\\t";
        break;
    default:
        if (c < 0x20 || c == 0x7f) {
            snprintf(esc, 8, "\\u%04x", c);
            *out = esc;
            *n = 6;
        } else if ((used = utf8_seq(p, avail)) == 0) {
            *out = "\\ufffd"; /* invalid UTF-8: U+FFFD */
            *n = 6;
            used = 1;
        } else {
            *out = (const char *)p;
            *n = used;
        }
    }
    return used;
}

/* Appends s as a JSON string (quotes included), using at most `cap` bytes of
 * the buffer; a value that does not fit is cut at a character boundary and
 * ends in "...". Always leaves the string closed. */
static void line_str(log_line_t *l, const char *s, size_t cap)
{
    size_t room = sizeof l->buf - l->len;
    if (cap > room)
        cap = room;
    if (cap < 6) { /* not even "..." fits: the callers' reserve prevents this */
        line_raw(l, "\"\"");
        return;
    }

    const unsigned char *p = (const unsigned char *)s;
    size_t avail = strlen(s), total = 0;
    char esc[8];
    const char *out;
    size_t n;
    for (size_t i = 0; i < avail;) {
        i += esc_char(p + i, avail - i, esc, &out, &n);
        total += n;
    }
    bool cut = total + 2 > cap;
    size_t limit = l->len + 1 + (cut ? cap - 5 : total); /* 5: two quotes and ... */

    l->buf[l->len++] = '"';
    while (avail > 0) {
        size_t used = esc_char(p, avail, esc, &out, &n);
        if (l->len + n > limit)
            break;
        memcpy(l->buf + l->len, out, n);
        l->len += n;
        p += used;
        avail -= used;
    }
    if (cut)
        line_raw(l, "...");
    line_raw(l, "\"");
}

static void line_field(log_line_t *l, const char *key, const char *val, size_t cap)
{
    line_raw(l, ",\"");
    line_raw(l, key);
    line_raw(l, "\":");
    line_str(l, val, cap);
}

void log_write(log_level_t level, const log_ctx_t *ctx, const char *fmt, ...)
{
    int saved_errno = errno;
    log_line_t l;
    l.len = 0;

    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[96];
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000));

    const char *worker = log_worker[0] ? log_worker : program_invocation_short_name;
    const char *queue = ctx ? ctx->queue : NULL;
    const char *pid = ctx ? ctx->payment_id : NULL;
    const char *err = ctx ? ctx->err : NULL;
    const char *evid = ctx ? ctx->event_id : NULL;
    const char *reason = ctx ? ctx->reason : NULL;
    char num[96] = "";
    if (ctx && ctx->has_count)
        snprintf(num, sizeof num, ",\"count\":%lld", ctx->count);
    if (ctx && ctx->has_duration)
        snprintf(num + strlen(num), sizeof num - strlen(num), ",\"duration_ms\":%.3f",
                 ctx->duration_ms);

    /* context first gets bounded room; msg gets what is left, minus the
     * context fields that follow it and the closing "}\n" */
    enum { CAP_QUEUE = 256, CAP_PID = 256, CAP_ID = 128, CAP_ERR = 1024, KEYS = 64 };
    size_t tail = 2 + strlen(num) + (queue ? CAP_QUEUE + 16 : 0) + (pid ? CAP_PID + 16 : 0) +
                  (evid ? CAP_ID + 16 : 0) + (reason ? CAP_ID + 16 : 0) + (err ? CAP_ERR + 16 : 0);

    line_raw(&l, "{\"ts\":\"");
    line_raw(&l, stamp);
    line_raw(&l, "\",\"level\":\"");
    line_raw(&l, log_level_name(level));
    line_raw(&l, "\"");
    line_field(&l, "worker", worker, 128);
    if (log_instance[0])
        line_field(&l, "instance", log_instance, 128);
    line_raw(&l, ",\"msg\":");
    line_str(&l, msg, sizeof l.buf - l.len - tail);
    if (queue)
        line_field(&l, "queue", queue, CAP_QUEUE);
    if (pid)
        line_field(&l, "payment_id", pid, CAP_PID);
    if (evid)
        line_field(&l, "event_id", evid, CAP_ID);
    if (reason)
        line_field(&l, "reason", reason, CAP_ID);
    line_raw(&l, num);
    if (err)
        line_field(&l, "err", err, CAP_ERR);
    line_raw(&l, "}\n");
    if (level <= LOG_WARN) {
        snprintf(log_problem, sizeof log_problem, "%s%s%s", msg, err ? ": " : "", err ? err : "");
        log_problem_at = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }

    FILE *out = log_out ? log_out : stdout;
    fwrite(l.buf, 1, l.len, out);
    fflush(out);
    errno = saved_errno; /* log_error("...: %m") patterns stay usable */
}

void log_panic(const char *fmt, ...)
{
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_write(LOG_ERROR, NULL, "panic: %s", msg);
    abort();
}
