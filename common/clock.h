/*
 * clock.h - the two clocks Ledgerline uses, in milliseconds.
 *
 * Wall time (clock_now_ms) is for timestamps that leave the process: log
 * lines, event occurred_at, database rows. Monotonic time (clock_mono_ms)
 * is for measuring intervals and deadlines: it never jumps when NTP or an
 * operator sets the clock.
 *
 * Public API: clock_now_ms, clock_mono_ms, clock_mono_us.
 */
#ifndef LL_CLOCK_H
#define LL_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t clock_now_ms(void);
/* Milliseconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
int64_t clock_mono_ms(void);
/* The same clock in microseconds: for durations that metrics observe. */
int64_t clock_mono_us(void);

#endif
