/*
 * ll_fixture.c - the common fixture of the worker suites: see ll_fixture.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg.h"

const char *const llw_payment_queues[] = {"payments",          "payments.dead",      "settlement",
                                          "payments.retry.1s", "payments.retry.30s", NULL};

void llw_fixture_up(llw_fixture_t *f, const char *const *purge)
{
    f->ledger = llt_ledger(); /* first: fails with advice when the stack's env is missing */
    llw_ctl(NULL, "topology apply");
    f->db = llt_db(f->ledger);
    f->m = llt_mq();
    llw_purge(f->m, purge);
    f->ev = llw_events_open(NULL);
}

void llw_fixture_down(llw_fixture_t *f)
{
    llw_kill_all();
    llw_events_close(f->ev);
    mq_free(f->m);
    db_free(f->db);
    if (f->ledger)
        llt_dropdb(f->ledger);
    free(f->ledger);
    memset(f, 0, sizeof *f);
}

typedef struct {
    const llw_fixture_t *f;
    const llw_done_t *want;
    const char *what;
} done_wait_t;

/* Appends to status (n bytes) at *len, never past its end. */
static void put(char *status, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *status, size_t n, size_t *len, const char *fmt, ...)
{
    if (*len >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(status + *len, n - *len, fmt, ap);
    va_end(ap);
    *len = k < 0 ? n : *len + (size_t)k;
}

/* The newest event collected on ev with one of the routing keys rks (up to
 * 3, NULL-terminated), as its body, or "-". */
static const char *newest_body(llw_events_t *ev, const char *const *rks)
{
    json_t *all = llw_events_all(ev);
    for (size_t i = json_array_size(all); i-- > 0;) {
        json_t *o = json_array_get(all, i);
        const char *rk = json_string_value(json_object_get(o, "routing_key"));
        for (size_t k = 0; k < 3 && rks[k]; k++)
            if (rk && strcmp(rk, rks[k]) == 0)
                return llc_jstr(o, "body");
    }
    return "-";
}

/* Fails the test at once, without waiting out the deadline: `have`
 * distinct events (rejections) are more than `want`, and they are never
 * taken back; the message shows the newest of rks. */
static void fail_overshoot(const done_wait_t *w, int64_t have, int64_t want, const char *what,
                           const char *const *rks)
{
    if (have <= want)
        return;
    llw_dump_logs();
    ck_abort_msg("while waiting for %s: %" PRId64 " distinct %s, want %" PRId64
                 ": an outcome the test does not expect (the newest: %s)",
                 w->what, have, what, want, newest_body(w->f->ev, rks));
}

/* Fails the test at once when a rule of want->never is broken. */
static void fail_broken_rule(const done_wait_t *w)
{
    for (size_t i = 0; i < 3 && w->want->never[i].sql; i++) {
        int64_t broken = 0;
        if (llw_try_scalar(w->f->db, w->want->never[i].sql, &broken) && broken != 0) {
            llw_dump_logs();
            ck_abort_msg("while waiting for %s: broken rule: %s (%" PRId64 " row(s) of: %s)",
                         w->what, w->want->never[i].rule, broken, w->want->never[i].sql);
        }
    }
}

static bool done_cond(void *arg, char *status, size_t n)
{
    const done_wait_t *w = arg;
    const llw_done_t *want = w->want;
    db_t *db = w->f->db;
    llw_events_t *ev = w->f->ev;
    llw_events_collect(ev);
    fail_broken_rule(w);
    bool done = true;
    size_t len = 0;
    for (size_t i = 0; i < 3 && want->counts[i]; i++) {
        int64_t have = -1;
        llw_try_scalar(db, want->counts[i], &have);
        put(status, n, &len, "%s: %" PRId64 "/%" PRId64 ", ", want->counts[i], have, want->rows);
        done = done && have == want->rows;
    }
    if (want->events[0]) {
        int64_t have = 0;
        put(status, n, &len, "distinct ");
        for (size_t i = 0; i < 3 && want->events[i]; i++) {
            have += (int64_t)llw_events_distinct(ev, want->events[i]);
            put(status, n, &len, "%s%s", i ? "+" : "", want->events[i]);
        }
        put(status, n, &len, " events %" PRId64 "/%" PRId64 ", ", have, want->distinct);
        fail_overshoot(w, have, want->distinct, want->events[0], want->events);
        done = done && have == want->distinct;
    }
    if (want->rejected != LLW_ANY) {
        int64_t have = (int64_t)llw_events_distinct(ev, MSG_TYPE_REJECTED);
        static const char *const rej[] = {MSG_TYPE_REJECTED, NULL, NULL};
        put(status, n, &len, "message.rejected %" PRId64 "/%" PRId64 ", ", have, want->rejected);
        fail_overshoot(w, have, want->rejected, MSG_TYPE_REJECTED " (rejections)", rej);
        done = done && have == want->rejected;
    }
    if (want->drained) {
        uint32_t ready = 0, consumers = 0;
        int rc = mq_queue_stats(w->f->m, want->drained, &ready, &consumers);
        put(status, n, &len, "%s ready %u (%s), ", want->drained, ready, ll_errname(rc));
        done = done && rc == LL_OK && ready == 0;
    }
    int64_t unsent = -1;
    llw_try_scalar(db, "SELECT count(*) FROM outbox_pending", &unsent);
    put(status, n, &len, "unsent outbox rows %" PRId64, unsent);
    return done && unsent == 0;
}

void llw_wait_done(const llw_fixture_t *f, const llw_done_t *want, int timeout_ms, const char *what)
{
    done_wait_t w = {f, want, what};
    llw_wait_until(done_cond, &w, timeout_ms, what);
}
