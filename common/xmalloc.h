/*
 * xmalloc.h - allocation that never returns NULL.
 *
 * A daemon that runs out of memory cannot do anything useful with the
 * failure: these wrappers log one error line and abort() instead (Postfix
 * mymalloc, Redis zmalloc), so callers need no NULL checks.
 *
 * Public API: ll_xmalloc, ll_xcalloc, ll_xrealloc, ll_xstrdup, ll_xstrndup,
 * ll_xasprintf.
 * Everything they return is released with free().
 */
#ifndef LL_XMALLOC_H
#define LL_XMALLOC_H

#include <stddef.h>

/* malloc(n); n == 0 is treated as 1 so the result is never NULL. */
void *ll_xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
/* calloc(nmemb, size); aborts on overflow of nmemb * size too. */
void *ll_xcalloc(size_t nmemb, size_t size) __attribute__((malloc, returns_nonnull));
/* realloc(p, n); p may be NULL. */
void *ll_xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
/* strdup(s); s must not be NULL. */
char *ll_xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
/* A NUL-terminated copy of at most n bytes of s. */
char *ll_xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
/* A formatted string of whatever length it needs: never cut. */
char *ll_xasprintf(const char *fmt, ...)
    __attribute__((malloc, returns_nonnull, format(printf, 1, 2)));

#endif
