/*
 * bench_tap.c - the outcome tap of `ledgerctl bench`: see bench.h.
 *
 * One thread, one connection, one private queue bound to ledgerline.events
 * for the outcome and rejection events. For each event of the run (its
 * payment_id has the run's prefix) it stamps the payment's slot with the
 * time it arrived, once: a republished event (the outbox sweep, a replayed
 * duplicate) finds the slot stamped and only counts as repeated. Bodies are
 * the workers' compact JSON; the tap reads the two fields it needs
 * (payment_id, and queue for a rejection) without a full parse, so that
 * following a run costs the machine little next to the run itself.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "msg.h"

#define TAP_PREFETCH  2000
#define TAP_ACK_EVERY 256

static const char *const tap_keys[] = {MSG_TYPE_APPROVED, MSG_TYPE_DECLINED, MSG_TYPE_COMPLETED,
                                       MSG_TYPE_FAILED,   MSG_TYPE_REJECTED, NULL};

/* The string value of "key":"..." in a compact JSON body, or NULL. */
static const char *field(const char *body, size_t len, const char *key, size_t *vlen)
{
    char pat[32];
    int pl = snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *end = body + len;
    for (const char *p = body; p + pl <= end; p++) {
        p = memchr(p, '"', (size_t)(end - p));
        if (!p || p + pl > end)
            return NULL;
        if (memcmp(p, pat, (size_t)pl) != 0)
            continue;
        const char *v = p + pl, *q = memchr(v, '"', (size_t)(end - v));
        if (!q)
            return NULL;
        *vlen = (size_t)(q - v);
        return v;
    }
    return NULL;
}

static bool rk_is(const amqp_bytes_t *rk, const char *s)
{
    size_t n = strlen(s);
    return rk->len == n && memcmp(rk->bytes, s, n) == 0;
}

static void stamp_first(_Atomic int64_t *first, int64_t now)
{
    int64_t zero = 0;
    atomic_compare_exchange_strong(first, &zero, now);
}

static void on_event(bench_run_t *r, const mq_delivery_t *d)
{
    const amqp_bytes_t *rk = &d->env.routing_key;
    size_t n = 0;
    const char *id = field(d->body, d->len, "payment_id", &n);
    if (!id || n <= r->prefix_len || memcmp(id, r->prefix, r->prefix_len) != 0) {
        atomic_fetch_add(&r->foreign, 1);
        return;
    }
    int64_t i = 0;
    for (size_t k = r->prefix_len; k < n; k++) {
        if (id[k] < '0' || id[k] > '9' || i > BENCH_MAX_COUNT) {
            atomic_fetch_add(&r->foreign, 1);
            return;
        }
        i = i * 10 + (id[k] - '0');
    }
    bench_slot_t *s = bench_slot_get(r, i);
    if (!s || atomic_load(&s->pub) == 0) {
        atomic_fetch_add(&r->foreign, 1);
        return;
    }
    int64_t now = bench_now_us();
    bool decided = false;
    bench_outcome_t o;
    _Atomic int64_t *counter;
    if (rk_is(rk, MSG_TYPE_APPROVED)) {
        decided = true, o = BO_APPROVED, counter = &r->approved;
    } else if (rk_is(rk, MSG_TYPE_DECLINED)) {
        decided = true, o = BO_DECLINED, counter = &r->declined;
    } else if (rk_is(rk, MSG_TYPE_COMPLETED)) {
        o = BO_COMPLETED, counter = &r->completed;
    } else if (rk_is(rk, MSG_TYPE_FAILED)) {
        o = BO_FAILED, counter = &r->failed;
    } else if (rk_is(rk, MSG_TYPE_REJECTED)) {
        size_t qn = 0;
        const char *q = field(d->body, d->len, "queue", &qn);
        o = BO_REJECTED;
        if (q && qn == 4 && memcmp(q, "risk", 4) == 0) {
            decided = true, counter = &r->rejected_risk;
        } else if (q && qn == 8 && memcmp(q, "payments", 8) == 0) {
            counter = &r->rejected_payment;
        } else {
            atomic_fetch_add(&r->rejected_other, 1);
            return;
        }
    } else {
        return;
    }
    _Atomic int64_t *at = decided ? &s->decided : &s->done;
    int64_t zero = 0;
    if (!atomic_compare_exchange_strong(at, &zero, now)) {
        atomic_fetch_add(&r->repeated, 1);
        return;
    }
    atomic_store(decided ? &s->dec_outcome : &s->done_outcome, (uint8_t)o);
    atomic_fetch_add(counter, 1);
    if (decided) {
        stamp_first(&r->first_decided, now);
        atomic_store(&r->last_decided, now);
    } else {
        stamp_first(&r->first_done, now);
        atomic_store(&r->last_done, now);
        bench_hist_add(&r->to_done, now - atomic_load(&s->pub));
    }
}

static void *tap_main(void *arg)
{
    bench_tap_t *t = arg;
    uint64_t last = 0;
    int unacked = 0;
    while (!atomic_load(&t->stop)) {
        mq_delivery_t d;
        int rc = mq_next(t->m, &d, 100);
        if (rc == LL_OK) {
            on_event(t->run, &d);
            last = d.tag;
            mq_delivery_clear(&d);
            if (++unacked < TAP_ACK_EVERY)
                continue;
        } else if (rc != LL_ETIMEOUT) {
            snprintf(t->errstr, sizeof t->errstr, "%s", mq_errstr(t->m));
            atomic_store(&t->failed, 1);
            return NULL;
        }
        if (unacked > 0 && mq_ack(t->m, last, true) != LL_OK) {
            snprintf(t->errstr, sizeof t->errstr, "%s", mq_errstr(t->m));
            atomic_store(&t->failed, 1);
            return NULL;
        }
        unacked = 0;
    }
    return NULL;
}

int bench_tap_start(bench_tap_t *t, ctl_t *c, bench_run_t *run)
{
    memset(t, 0, sizeof *t);
    t->run = run;
    t->m = ctl_mq_new(c, "bench tap");
    if (!t->m)
        return 1;
    char queue[96];
    snprintf(queue, sizeof queue, "ledgerline.bench.%.*s", (int)run->prefix_len - 1, run->prefix);
    int rc = mq_declare_private_queue(t->m, queue);
    for (size_t k = 0; rc == LL_OK && tap_keys[k]; k++)
        rc = mq_bind(t->m, queue, "ledgerline.events", tap_keys[k]);
    if (rc == LL_OK)
        rc = mq_consume(t->m, queue, TAP_PREFETCH);
    if (rc != LL_OK) {
        ctl_fail("declare the topology first: ledgerctl topology apply",
                 "cannot set up the outcome tap (queue %s): %s", queue, mq_errstr(t->m));
        mq_free(t->m);
        t->m = NULL;
        return 1;
    }
    if (pthread_create(&t->th, NULL, tap_main, t) != 0) {
        mq_free(t->m);
        t->m = NULL;
        return ctl_fail(NULL, "cannot start the outcome tap thread");
    }
    t->started = true;
    return 0;
}

void bench_tap_stop(bench_tap_t *t)
{
    if (t->started) {
        atomic_store(&t->stop, true);
        pthread_join(t->th, NULL);
        t->started = false;
    }
    mq_free(t->m);
    t->m = NULL;
}
