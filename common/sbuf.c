/*
 * sbuf.c - growing string buffer: see sbuf.h.
 */
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "xmalloc.h"

static void sbuf_grow(sbuf_t *b, size_t more)
{
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->p = ll_xrealloc(b->p, cap);
    b->cap = cap;
}

void sbuf_init(sbuf_t *b, size_t hint)
{
    b->p = NULL;
    b->len = b->cap = 0;
    sbuf_grow(b, hint);
    b->p[0] = '\0';
}

void sbuf_add(sbuf_t *b, const char *s, size_t n)
{
    sbuf_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sbuf_adds(sbuf_t *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

void sbuf_addc(sbuf_t *b, char c)
{
    sbuf_grow(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void sbuf_i64(sbuf_t *b, int64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    /* negate in unsigned: INT64_MIN has no positive int64 */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        tmp[--i] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        tmp[--i] = '-';
    sbuf_add(b, tmp + i, sizeof tmp - i);
}

void sbuf_json_str(sbuf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF"; /* as jansson writes them */
    sbuf_grow(b, strlen(s) + 2);
    sbuf_addc(b, '"');
    const char *run = s; /* bytes copied as they are, in one go */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\')
            continue;
        sbuf_add(b, run, (size_t)((const char *)p - run));
        run = (const char *)p + 1;
        char esc[7] = {'\\', 0};
        switch (*p) {
        case '"':
        case '\\':
            esc[1] = (char)*p;
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            sbuf_add(b, esc, 6);
            continue;
        }
        sbuf_add(b, esc, 2);
    }
    sbuf_add(b, run, strlen(run));
    sbuf_addc(b, '"');
}

char *sbuf_take(sbuf_t *b)
{
    char *p = b->p ? b->p : ll_xstrdup("");
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void sbuf_free(sbuf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
