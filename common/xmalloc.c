/*
 * xmalloc.c - allocation that logs and aborts on failure: see xmalloc.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

void *ll_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        log_panic("out of memory allocating %zu bytes", n);
    return p;
}

void *ll_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        log_panic("out of memory allocating %zu x %zu bytes", nmemb, size);
    return p;
}

void *ll_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        log_panic("out of memory reallocating to %zu bytes", n);
    return q;
}

char *ll_xstrdup(const char *s)
{
    return ll_xstrndup(s, strlen(s));
}

char *ll_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = ll_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *ll_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0)
        log_panic("cannot format '%s'", fmt);
    char *p = ll_xmalloc((size_t)len + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return p;
}
