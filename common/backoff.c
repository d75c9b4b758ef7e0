/*
 * backoff.c - exponential backoff with full jitter: see backoff.h.
 */
#include "backoff.h"

void backoff_init(backoff_t *b, int base_ms, int max_ms, uint64_t seed)
{
    b->base_ms = base_ms < 1 ? 1 : base_ms;
    b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
    b->attempt = 0;
    /* splitmix64 finaliser: spreads close seeds (pids) and avoids state 0 */
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    b->rng = z ? z : 0x2545f4914f6cdd1dULL;
}

static uint64_t backoff_rand(backoff_t *b)
{
    /* xorshift64* (Vigna) */
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

int backoff_ceiling_ms(const backoff_t *b)
{
    int attempt = b->attempt;
    if (attempt < 0)
        attempt = 0;
    if (attempt > BACKOFF_MAX_ATTEMPT)
        attempt = BACKOFF_MAX_ATTEMPT;
    /* int base * 2^30 fits easily in 64 bits */
    int64_t ceil = (int64_t)b->base_ms << attempt;
    return ceil > b->max_ms ? b->max_ms : (int)ceil;
}

int backoff_next_ms(backoff_t *b)
{
    uint64_t ceil = (uint64_t)backoff_ceiling_ms(b);
    if (b->attempt < BACKOFF_MAX_ATTEMPT)
        b->attempt++;
    /* the top bits of xorshift64* are the good ones */
    return (int)((backoff_rand(b) >> 11) % (ceil + 1));
}

void backoff_reset(backoff_t *b)
{
    b->attempt = 0;
}
