/*
 * backoff.h - exponential backoff with full jitter, for reconnect loops.
 *
 * The n-th delay (n = 0, 1, ...) is uniform in [0, min(max_ms, base_ms * 2^n)]
 * ("full jitter", AWS architecture blog): many workers that lost the same
 * server at the same moment spread their reconnects instead of stampeding.
 * The attempt counter saturates, so a loop that retries forever never
 * overflows. The generator is a private xorshift state, seeded by the
 * caller (tests pass a fixed seed; daemons pass something like pid ^ time).
 *
 *     backoff_t b;
 *     backoff_init(&b, 100, 5000, seed);
 *     while (connect() != 0)
 *         sleep_ms(backoff_next_ms(&b));
 *     backoff_reset(&b);
 *
 * Public API: backoff_t, backoff_init, backoff_next_ms, backoff_reset,
 * backoff_ceiling_ms.
 */
#ifndef LL_BACKOFF_H
#define LL_BACKOFF_H

#include <stdint.h>

/* attempt stops growing here: base * 2^30 already exceeds any sane max */
#define BACKOFF_MAX_ATTEMPT 30

typedef struct {
    int base_ms;  /* ceiling of the first delay (>= 1) */
    int max_ms;   /* ceiling of every delay (>= base_ms) */
    int attempt;  /* delays handed out since init/reset, saturating */
    uint64_t rng; /* xorshift64* state, never 0 */
} backoff_t;

/* base_ms < 1 becomes 1; max_ms < base_ms becomes base_ms; seed 0 is fine. */
void backoff_init(backoff_t *b, int base_ms, int max_ms, uint64_t seed);
/* The next delay in ms, in [0, backoff_ceiling_ms(b)] before the call. */
int backoff_next_ms(backoff_t *b);
/* Back to the first attempt (after a success). Keeps the generator state. */
void backoff_reset(backoff_t *b);
/* Upper bound of the delay the next backoff_next_ms() call returns. */
int backoff_ceiling_ms(const backoff_t *b);

#endif
