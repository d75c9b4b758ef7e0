/*
 * sbuf.h - a growing string buffer for text built on the hot path (a
 * batch's JSON for the stage functions, Redis keys and values), where
 * printf-style formatting and a JSON library's object trees cost more than
 * the work itself.
 *
 * sbuf_json_str() writes a JSON string literal: quotes, `"` and `\`
 * escaped, control characters by name (\n, \t...) or as \uXXXX with
 * upper-case hex (the bytes jansson writes), everything else byte for byte,
 * so valid UTF-8 in is valid JSON out (callers pass text the codec has
 * already checked).
 *
 * Out of memory aborts (xmalloc.h). Public API: sbuf_t, sbuf_init,
 * sbuf_add, sbuf_adds, sbuf_addc, sbuf_i64, sbuf_json_str, sbuf_take,
 * sbuf_free.
 */
#ifndef LL_SBUF_H
#define LL_SBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct sbuf {
    char *p;    /* NUL-terminated text so far (NULL before the first add) */
    size_t len; /* bytes before the NUL */
    size_t cap; /* bytes allocated */
} sbuf_t;

/* An empty buffer that will hold about `hint` bytes without growing. */
void sbuf_init(sbuf_t *b, size_t hint);
void sbuf_add(sbuf_t *b, const char *s, size_t n);
void sbuf_adds(sbuf_t *b, const char *s);
void sbuf_addc(sbuf_t *b, char c);
/* The decimal text of v. */
void sbuf_i64(sbuf_t *b, int64_t v);
/* s as a quoted JSON string. */
void sbuf_json_str(sbuf_t *b, const char *s);
/* The text (never NULL, "" when nothing was added); the caller frees it
 * with free() and the buffer is empty again. */
char *sbuf_take(sbuf_t *b);
void sbuf_free(sbuf_t *b);

#endif
