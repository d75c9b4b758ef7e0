/*
 * bench.h - what the files of `ledgerctl bench` share.
 *
 *   bench_run_t   the run: one slot per payment (when it was published,
 *                 when its risk decision and its payment outcome were seen,
 *                 and which) plus live counters; written by the publisher
 *                 (main thread) and the tap (its own thread), so every
 *                 field the two share is atomic;
 *   bench_tap_*   the tap: a private queue bound to ledgerline.events on its
 *                 own connection, read by a thread that stamps the run's
 *                 outcome events into their slots (bench_tap.c);
 *   bench_hist_*  a fixed-size latency histogram (within 1%) for
 *                 the live progress line; final figures come from exact
 *                 sorted samples (bench_stats.c);
 *   bench_broker  the broker baseline of `--broker` (bench_broker.c).
 *
 * Times are wall-clock microseconds (CLOCK_REALTIME), so they compare with
 * the timestamps PostgreSQL records (settlement_items.added_at).
 *
 * Public API: bench_now_us, bench_outcome_t, bench_slot_t, bench_run_t,
 * bench_run_init, bench_run_free, bench_slot, bench_slot_get, bench_hist_t,
 * bench_hist_add, bench_hist_pct, bench_pct_t, bench_pcts, bench_tap_t,
 * bench_tap_start, bench_tap_stop, bench_broker.
 */
#ifndef LL_BENCH_H
#define LL_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl.h"

#define BENCH_CHUNK_BITS 16 /* slots are allocated 65536 at a time */
#define BENCH_MAX_COUNT  100000000

int64_t bench_now_us(void);

typedef enum {
    BO_NONE = 0,
    BO_APPROVED,
    BO_DECLINED,
    BO_COMPLETED,
    BO_FAILED,
    BO_REJECTED, /* message.rejected by the stage that had it */
} bench_outcome_t;

typedef struct bench_slot {
    _Atomic int64_t pub;     /* published (before basic.publish) */
    _Atomic int64_t decided; /* payment.approved/declined, or rejected by risk */
    _Atomic int64_t done;    /* payment.completed/failed, or rejected by payments */
    _Atomic uint8_t dec_outcome, done_outcome;
} bench_slot_t;

/* The latency histogram: values in microseconds, exact below 128, then 128
 * buckets per power of two (under 1% apart). */
#define BENCH_HIST_BUCKETS (58 * 128)
typedef struct bench_hist {
    _Atomic uint64_t n[BENCH_HIST_BUCKETS];
    _Atomic uint64_t total;
} bench_hist_t;

typedef struct bench_run {
    char prefix[48]; /* payment ids are "<prefix><i>", e.g. "bench-k3x9q-17" */
    size_t prefix_len;
    bench_slot_t *_Atomic chunk[(BENCH_MAX_COUNT >> BENCH_CHUNK_BITS) + 1];
    _Atomic int64_t published;
    /* seen by the tap */
    _Atomic int64_t approved, declined, completed, failed, rejected_risk, rejected_payment,
        rejected_other, foreign, /* foreign: events of other payments */
        repeated;                /* an outcome seen again (republished, replayed) */
    _Atomic int64_t first_decided, last_decided, first_done, last_done;
    bench_hist_t to_done; /* publish -> payment.completed/failed */
} bench_run_t;

void bench_run_init(bench_run_t *r, const char *prefix);
void bench_run_free(bench_run_t *r);
/* The slot of payment i, allocated on first use by the publisher (the only
 * caller that may allocate: it does so before publishing i). */
bench_slot_t *bench_slot(bench_run_t *r, int64_t i);
/* The slot of payment i or NULL when it was never allocated (the tap). */
bench_slot_t *bench_slot_get(bench_run_t *r, int64_t i);

void bench_hist_add(bench_hist_t *h, int64_t us);
/* The q-quantile (0..1) of h in microseconds (upper bound of its bucket);
 * 0 when empty. */
int64_t bench_hist_pct(const bench_hist_t *h, double q);

/* Exact percentiles of a sample (sorted in place), in microseconds. */
typedef struct bench_pct {
    size_t n;
    int64_t p50, p90, p99, max;
} bench_pct_t;
bench_pct_t bench_pcts(int64_t *v, size_t n);

/* The tap: its own connection and queue "ledgerline.bench.<run>", bound
 * to ledgerline.events for every outcome and rejection, and a thread. */
typedef struct bench_tap {
    mq_t *m;
    bench_run_t *run;
    pthread_t th;
    bool started;
    atomic_bool stop;
    atomic_int failed; /* the thread stopped on a connection error */
    char errstr[256];
} bench_tap_t;

/* Connects, declares and binds the queue, starts the thread. 0 or 1 (the
 * error has been printed). Before the first publish: nothing of the run
 * may be missed. */
int bench_tap_start(bench_tap_t *t, ctl_t *c, bench_run_t *run);
/* Stops and joins the thread, closes the connection (the queue goes). */
void bench_tap_stop(bench_tap_t *t);

/* `ledgerctl bench --broker`: the broker alone, the baseline of a run.
 * Publishes `count` persistent messages of `size` bytes with confirms
 * (at most `window` unconfirmed) to a quorum queue of its own while a
 * second connection consumes and acks them; prints the rates. */
int bench_broker(ctl_t *c, int64_t count, int64_t size, int window);

#endif
