/*
 * bench_stats.c - the run's slots, the latency histogram and exact
 * percentiles of `ledgerctl bench`: see bench.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "xmalloc.h"

int64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bench_run_init(bench_run_t *r, const char *prefix)
{
    memset(r, 0, sizeof *r);
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    r->prefix_len = strlen(r->prefix);
}

void bench_run_free(bench_run_t *r)
{
    for (size_t k = 0; k < sizeof r->chunk / sizeof r->chunk[0]; k++)
        free(atomic_load(&r->chunk[k]));
}

bench_slot_t *bench_slot(bench_run_t *r, int64_t i)
{
    size_t k = (size_t)i >> BENCH_CHUNK_BITS;
    bench_slot_t *c = atomic_load_explicit(&r->chunk[k], memory_order_acquire);
    if (!c) {
        c = ll_xcalloc((size_t)1 << BENCH_CHUNK_BITS, sizeof *c);
        atomic_store_explicit(&r->chunk[k], c, memory_order_release);
    }
    return &c[(size_t)i & (((size_t)1 << BENCH_CHUNK_BITS) - 1)];
}

bench_slot_t *bench_slot_get(bench_run_t *r, int64_t i)
{
    if (i < 0 || i >= BENCH_MAX_COUNT)
        return NULL;
    bench_slot_t *c =
        atomic_load_explicit(&r->chunk[(size_t)i >> BENCH_CHUNK_BITS], memory_order_acquire);
    return c ? &c[(size_t)i & (((size_t)1 << BENCH_CHUNK_BITS) - 1)] : NULL;
}

static size_t hist_index(int64_t v)
{
    if (v < 128)
        return v < 0 ? 0 : (size_t)v;
    int e = 63 - __builtin_clzll((unsigned long long)v); /* >= 7 */
    size_t sub = (size_t)(v >> (e - 7)) - 128;           /* 0..127 */
    size_t idx = 128 + (size_t)(e - 7) * 128 + sub;
    return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

static int64_t hist_upper(size_t idx)
{
    if (idx < 128)
        return (int64_t)idx;
    int e = (int)((idx - 128) / 128) + 7;
    int64_t sub = (int64_t)((idx - 128) % 128);
    return ((128 + sub + 1) << (e - 7)) - 1;
}

void bench_hist_add(bench_hist_t *h, int64_t us)
{
    atomic_fetch_add_explicit(&h->n[hist_index(us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->total, 1, memory_order_relaxed);
}

int64_t bench_hist_pct(const bench_hist_t *h, double q)
{
    uint64_t total = atomic_load_explicit(&h->total, memory_order_relaxed);
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total + 0.5), seen = 0;
    if (want < 1)
        want = 1;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->n[i], memory_order_relaxed);
        if (seen >= want)
            return hist_upper(i);
    }
    return hist_upper(BENCH_HIST_BUCKETS - 1);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* nearest-rank percentile of a sorted sample */
static int64_t rank(const int64_t *v, size_t n, double q)
{
    size_t k = (size_t)(q * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

bench_pct_t bench_pcts(int64_t *v, size_t n)
{
    bench_pct_t p = {.n = n};
    if (n == 0)
        return p;
    qsort(v, n, sizeof *v, cmp_i64);
    p.p50 = rank(v, n, 0.50);
    p.p90 = rank(v, n, 0.90);
    p.p99 = rank(v, n, 0.99);
    p.max = v[n - 1];
    return p;
}
