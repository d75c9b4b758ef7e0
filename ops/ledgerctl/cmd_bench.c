/*
 * cmd_bench.c - `ledgerctl bench`: the load tool users point at their own
 * deployment, as pgbench, redis-benchmark and RabbitMQ PerfTest are for
 * theirs.
 *
 * A run: prepare accounts (or use given ones), start the outcome tap (a
 * private queue bound to ledgerline.events, bench_tap.c), publish
 * payment.requested (or payment.approved for --stage payment) at --rate or
 * as fast as publisher confirms allow, for --count or --duration, then
 * follow until every payment reached the end of the stages measured: its
 * risk decision, its payment outcome, and its settlement batch (read from
 * PostgreSQL: settlement publishes no event per payment). Then the report:
 * outcome counts, the rate of each stage (its first to its last outcome),
 * the whole run's rate, end-to-end latency percentiles (publish to
 * payment.completed seen on the tap; publish to the settlement batch, from
 * settlement_items.added_at, the settlement transaction's start), and
 * `verify` of the ledger.
 *
 * --prefill publishes everything before following (the workers may start
 * after it: the stage rates are first to last outcome, so they measure
 * the drain, not the wait); it says "prefilled" on stderr when it is done,
 * which ops/bench waits for before starting workers. --stage settlement
 * publishes nothing: it follows the payments of an earlier --run-id
 * through settlement. --broker measures the broker alone (bench_broker.c).
 *
 * Payment ids are "bench-<run id>-<i>", so runs never collide and the tap
 * can tell the run's events from everything else on the exchange.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "clock.h"
#include "migrate.h"
#include "money.h"
#include "msg.h"
#include "msg_decode.h"
#include "msg_encode.h"
#include "sign.h"
#include "xmalloc.h"

#define MAX_ACCOUNTS   100000
#define PROGRESS_US    500000
#define SETTLE_POLL_US 1000000
#define STALL_US       30000000        /* no payment finished for this long: say so */
#define FUND_AMOUNT    "1000000000000" /* 10^12 minor units per prepared payer */

typedef enum { ST_PIPELINE, ST_RISK, ST_PAYMENT, ST_SETTLEMENT } stage_t;
static const char *const stage_names[] = {"pipeline", "risk", "payment", "settlement"};

typedef struct opts {
    int64_t count, duration_s, rate, window, payers, payees, min_amount, max_amount, timeout_s;
    int64_t size; /* --broker */
    stage_t stage;
    bool prefill, verify, broker, count_given;
    const char *currency, *run_id, *key_file;
    char *payer_list, *payee_list;
} opts_t;

typedef struct bench {
    ctl_t *c;
    opts_t o;
    db_t *db;
    mq_t *m;
    bench_run_t run;
    bench_tap_t tap;
    sign_keyring_t *keys;
    char **payer, **payee;
    int npayer, npayee;
    char *payee_array; /* the payees as a PostgreSQL text[] literal */
    char run_id[32];
    uint64_t rng;
    int64_t t_start, t_first_pub, t_last_pub;
    int64_t settled, settle_base; /* settled: exact or estimated, see settle_poll */
    int64_t next_progress, next_settle_poll;
    int64_t prog_at, prog_finished; /* the progress line's last time and count */
    bool tty;
} bench_t;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void sleep_until_us(int64_t t)
{
    int64_t d = t - bench_now_us();
    if (d <= 0)
        return;
    struct timespec ts = {d / 1000000, (long)(d % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- accounts ------------------------------------------------------------ */

static int split_ids(char *s, char ***out)
{
    int n = 0, cap = 16;
    char **v = ll_xcalloc((size_t)cap, sizeof *v);
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_ACCOUNTS || !ctl_valid_id(tok)) {
            free(v);
            return -1;
        }
        if (n == cap)
            v = ll_xrealloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[n++] = tok;
    }
    *out = v;
    return n;
}

static char *pg_array(char **ids, int n)
{
    size_t len = 3;
    for (int i = 0; i < n; i++)
        len += strlen(ids[i]) + 3;
    char *a = ll_xmalloc(len), *w = a;
    *w++ = '{';
    for (int i = 0; i < n; i++)
        w += sprintf(w, "%s\"%s\"", i ? "," : "", ids[i]); /* ids hold no quote */
    strcpy(w, "}");
    return a;
}

/* Creates (idempotently) bench-payer-1..N, funded from sys:funding:<CUR>
 * through ledger_post() once per account, and bench-shop-1..M, merchants
 * with fees; fills b->payer / b->payee. */
static int prepare_accounts(bench_t *b)
{
    char np[24], nq[24];
    snprintf(np, sizeof np, "%" PRId64, b->o.payers);
    snprintf(nq, sizeof nq, "%" PRId64, b->o.payees);
    const char *p[] = {b->o.currency, np, nq, FUND_AMOUNT};
    PGresult *r;
    int rc = db_exec(b->db, "BEGIN");
    if (rc == LL_OK)
        rc = db_query(
            b->db, &r,
            "WITH f AS (INSERT INTO accounts (id, currency, kind) "
            "  VALUES ('sys:funding:' || $1, $1, 'system') ON CONFLICT DO NOTHING RETURNING 1), "
            "c AS (INSERT INTO accounts (id, currency) SELECT 'bench-payer-' || i, $1 "
            "  FROM generate_series(1, $2::int) i ON CONFLICT DO NOTHING RETURNING 1), "
            "m AS (INSERT INTO accounts (id, currency, kind, fee_bps, fee_fixed) "
            "  SELECT 'bench-shop-' || i, $1, 'merchant', 150, 25 "
            "  FROM generate_series(1, $3::int) i ON CONFLICT DO NOTHING RETURNING 1) "
            "SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM m), $4::bigint",
            4, p);
    if (rc == LL_OK) {
        PQclear(r);
        /* funding: once per account (ref bench-fund-<id>), so re-runs reuse */
        rc = db_query(b->db, &r,
                      "SELECT count(*) FILTER (WHERE l.status NOT IN ('posted', 'duplicate')), "
                      "min(l.status) FILTER (WHERE l.status NOT IN ('posted', 'duplicate')) "
                      "FROM generate_series(1, $2::int) i, LATERAL ledger_post("
                      "'bench-fund-bench-payer-' || i, 'funding', 'sys:funding:' || $1, "
                      "'bench-payer-' || i, $3::bigint, $1) l",
                      3, (const char *[]){b->o.currency, np, FUND_AMOUNT});
    }
    if (rc == LL_OK) {
        bool bad = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
        char why[64];
        snprintf(why, sizeof why, "%s", PQgetvalue(r, 0, 1));
        PQclear(r);
        if (bad) {
            db_try(b->db, "ROLLBACK");
            return ctl_fail("use another --currency, or remove the bench-* accounts of another "
                            "currency",
                            "cannot fund the bench payers in %s: %s (accounts bench-payer-* "
                            "exist with another currency, or are frozen)",
                            b->o.currency, why);
        }
        rc = db_exec(b->db, "COMMIT");
    }
    if (rc != LL_OK) {
        db_try(b->db, "ROLLBACK");
        return ctl_fail("run `ledgerctl migrate` if the schema is missing",
                        "preparing the bench accounts failed: %s", db_errstr(b->db));
    }
    b->npayer = (int)b->o.payers;
    b->npayee = (int)b->o.payees;
    b->payer = ll_xcalloc((size_t)b->npayer, sizeof *b->payer);
    b->payee = ll_xcalloc((size_t)b->npayee, sizeof *b->payee);
    for (int i = 0; i < b->npayer; i++)
        b->payer[i] = ll_xasprintf("bench-payer-%d", i + 1);
    for (int i = 0; i < b->npayee; i++)
        b->payee[i] = ll_xasprintf("bench-shop-%d", i + 1);
    return 0;
}

/* Given accounts: each must exist, be active and of the currency. */
static int check_given(bench_t *b, char **ids, int n, const char *what)
{
    char *arr = pg_array(ids, n);
    const char *p[] = {arr, b->o.currency};
    PGresult *r;
    int rc = db_query(b->db, &r,
                      "SELECT string_agg(x, ', ') FROM unnest($1::text[]) x WHERE NOT EXISTS "
                      "(SELECT 1 FROM accounts a WHERE a.id = x AND a.currency = $2 "
                      "AND a.status = 'active' AND a.kind <> 'system')",
                      2, p);
    free(arr);
    if (rc != LL_OK)
        return ctl_fail("run `ledgerctl migrate` if the schema is missing", "%s", db_errstr(b->db));
    int bad = !PQgetisnull(r, 0, 0);
    if (bad)
        ctl_fail("create and fund them (ledgerctl account create/fund), or let bench prepare "
                 "its own (drop the list option)",
                 "%s not usable in %s (missing, frozen, system or another currency): %.300s", what,
                 b->o.currency, PQgetvalue(r, 0, 0));
    PQclear(r);
    return bad;
}

/* ---- settlement progress -------------------------------------------------- */

/* Items in the batches of the run's payees: cheap (the batches' unique
 * index), an upper bound of the run's settled payments once the items
 * there before the run are subtracted (other traffic to these payees would
 * add to it, so the end is decided by exact_settled()). */
static int64_t batch_items(bench_t *b)
{
    const char *p[] = {b->payee_array, b->o.currency};
    PGresult *r;
    if (db_query(b->db, &r,
                 "SELECT coalesce(sum(count), 0) FROM settlement_batches "
                 "WHERE payee = ANY($1::text[]) AND currency = $2",
                 2, p) != LL_OK)
        return -1;
    int64_t n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* The run's payments in settlement batches, exactly (one index lookup per
 * payment published). */
static int64_t exact_settled(bench_t *b, int64_t n)
{
    char nn[24];
    snprintf(nn, sizeof nn, "%" PRId64, n);
    const char *p[] = {b->run.prefix, nn};
    PGresult *r;
    if (db_query(b->db, &r,
                 "SELECT count(*) FROM generate_series(0, $2::bigint - 1) g "
                 "JOIN settlement_items i ON i.payment_id = $1 || g",
                 2, p) != LL_OK)
        return -1;
    int64_t k = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return k;
}

/* ---- what is finished ----------------------------------------------------- */

static int64_t published(bench_t *b)
{
    return atomic_load(&b->run.published);
}

static int64_t decided(bench_t *b)
{
    bench_run_t *r = &b->run;
    return atomic_load(&r->approved) + atomic_load(&r->declined) + atomic_load(&r->rejected_risk);
}

static int64_t posted_or_failed(bench_t *b)
{
    bench_run_t *r = &b->run;
    return atomic_load(&r->completed) + atomic_load(&r->failed) + atomic_load(&r->rejected_payment);
}

/* Payments that reached the end of what this run measures. */
static int64_t finished(bench_t *b)
{
    bench_run_t *r = &b->run;
    switch (b->o.stage) {
    case ST_RISK:
        return decided(b);
    case ST_PAYMENT:
        return posted_or_failed(b);
    case ST_SETTLEMENT:
        return b->settled;
    case ST_PIPELINE:
    default:
        /* declined at risk, failed or rejected at payments, or settled */
        return atomic_load(&r->declined) + atomic_load(&r->rejected_risk) +
               atomic_load(&r->failed) + atomic_load(&r->rejected_payment) +
               (b->settled < atomic_load(&r->completed) ? b->settled : atomic_load(&r->completed));
    }
}

static bool wants_settlement(const bench_t *b)
{
    return b->o.stage == ST_PIPELINE || b->o.stage == ST_SETTLEMENT;
}

/* Updates b->settled: exact once the cheap estimate says the run may have
 * settled everything that completed. */
static void settle_poll(bench_t *b, bool force)
{
    if (!wants_settlement(b))
        return;
    int64_t now = bench_now_us();
    if (!force && now < b->next_settle_poll)
        return;
    b->next_settle_poll = now + SETTLE_POLL_US;
    int64_t want = b->o.stage == ST_SETTLEMENT ? b->o.count : atomic_load(&b->run.completed);
    int64_t est = batch_items(b);
    if (est >= 0)
        b->settled = est - b->settle_base < 0 ? 0 : est - b->settle_base;
    if (b->settled >= want || force) {
        int64_t exact = exact_settled(b, b->o.stage == ST_SETTLEMENT ? b->o.count : published(b));
        if (exact >= 0)
            b->settled = exact;
    }
}

static void progress(bench_t *b, bool last)
{
    if (!b->tty)
        return;
    int64_t now = bench_now_us();
    if (!last && now < b->next_progress)
        return;
    double dt = b->prog_at ? (double)(now - b->prog_at) / 1e6 : 0;
    int64_t pub = published(b), fin = finished(b);
    double pub_s = (double)(b->t_last_pub - b->t_first_pub) / 1e6;
    fprintf(stderr,
            "\r%6.1fs  published %" PRId64 " (%.0f/s)  decided %" PRId64 "  posted %" PRId64
            "  settled %" PRId64 "  finishing %.0f/s  backlog %" PRId64 "  p99 %.1f ms   %s",
            (double)(now - b->t_start) / 1e6, pub, pub_s > 0 ? (double)pub / pub_s : 0.0,
            decided(b), posted_or_failed(b), b->settled,
            dt > 0 ? (double)(fin - b->prog_finished) / dt : 0.0, pub - fin,
            (double)bench_hist_pct(&b->run.to_done, 0.99) / 1000, last ? "\n" : "");
    b->next_progress = now + PROGRESS_US;
    b->prog_at = now;
    b->prog_finished = fin;
}

static int tap_check(bench_t *b)
{
    if (atomic_load(&b->tap.failed))
        return ctl_fail("check the broker, then run the bench again",
                        "the outcome tap lost its connection: %s", b->tap.errstr);
    return 0;
}

/* ---- publishing ------------------------------------------------------------ */

static int confirm(bench_t *b)
{
    size_t failed = 0;
    int rc = mq_confirm_wait(b->m, (int)b->c->cfg.amqp.confirm_timeout_ms, &failed);
    if (rc == LL_ENOTFOUND)
        return ctl_fail("declare the topology first: ledgerctl topology apply",
                        "no queue took %zu message(s): %s", failed, mq_errstr(b->m));
    if (rc != LL_OK)
        return ctl_fail("check the broker (ledgerctl status, its log and alarms), then run the "
                        "bench again",
                        "publish not confirmed: %s", mq_errstr(b->m));
    return 0;
}

static int publish_one(bench_t *b, int64_t i)
{
    uint64_t x = splitmix64(&b->rng);
    int a = (int)(x % (uint64_t)b->npayer);
    int k = (int)((x >> 20) % (uint64_t)b->npayee);
    while (strcmp(b->payer[a], b->payee[k]) == 0) /* ends: checked up front */
        k = (k + 1) % b->npayee;
    int64_t amount =
        b->o.min_amount + (int64_t)((x >> 8) % (uint64_t)(b->o.max_amount - b->o.min_amount + 1));
    char id[MSG_ID_MAX + 1];
    snprintf(id, sizeof id, "%s%" PRId64, b->run.prefix, i);
    const char *type = b->o.stage == ST_PAYMENT ? MSG_TYPE_APPROVED : MSG_TYPE_REQUESTED;
    char body[512];
    char *owned = NULL;
    const char *out = body;
    int len =
        snprintf(body, sizeof body,
                 "{\"payment_id\":\"%s\",\"payer\":\"%s\",\"payee\":\"%s\",\"amount\":%" PRId64
                 ",\"currency\":\"%s\"}",
                 id, b->payer[a], b->payee[k], amount, b->o.currency);
    if (len < 0 || (size_t)len >= sizeof body)
        return ctl_fail(NULL, "payment %s does not fit the body buffer", id);
    if (b->o.stage == ST_PAYMENT) {
        /* what the risk-worker would publish for it (score 0, no rules) */
        msg_payment_t p;
        msg_reject_t why;
        memset(&p, 0, sizeof p);
        if (msg_payment_decode(body, (size_t)len, &p, &why) != LL_OK)
            return ctl_fail(NULL, "bench payment %s is invalid: %s", id, why.detail);
        owned = msg_encode_approved(&p, 0, NULL, 0, bench_now_us() / 1000);
        msg_payment_clear(&p);
        if (!owned)
            return ctl_fail(NULL, "out of memory");
        out = owned;
        len = (int)strlen(owned);
    }
    mq_props_t props = {.message_id = id, .type = type, .timestamp_s = bench_now_us() / 1000000};
    char sig[SIGN_MAX];
    /* the request time, for the workers' end-to-end latency metrics */
    mq_header_t h[2] = {{"x-ledgerline-requested-at", NULL, clock_now_ms()}};
    props.headers = h;
    props.nheaders = 1;
    if (b->keys) {
        sign_body(b->keys, out, (size_t)len, sig);
        h[props.nheaders++] = (mq_header_t){SIGN_HEADER, sig, 0};
    }
    bench_slot_t *s = bench_slot(&b->run, i);
    int64_t now = bench_now_us();
    atomic_store(&s->pub, now);
    if (b->t_first_pub == 0)
        b->t_first_pub = now;
    b->t_last_pub = now;
    int rc =
        mq_publish(b->m, b->o.stage == ST_PAYMENT ? "ledgerline.events" : "ledgerline.commands",
                   type, out, (size_t)len, &props, true);
    free(owned);
    if (rc != LL_OK)
        return ctl_fail("check the broker, then run the bench again", "publish failed: %s",
                        mq_errstr(b->m));
    atomic_fetch_add(&b->run.published, 1);
    return 0;
}

/* Publishes the run; with --rate, on an absolute schedule (publish i at
 * start + i/rate), reading confirms in between without waiting for them. */
static int publish_all(bench_t *b)
{
    int64_t t0 = bench_now_us(), unconfirmed = 0;
    int64_t end = b->o.duration_s > 0 ? t0 + b->o.duration_s * 1000000 : 0;
    int64_t last_service = t0;
    for (int64_t i = 0; i < b->o.count; i++) {
        if (end && bench_now_us() >= end)
            break;
        if (b->o.rate > 0)
            sleep_until_us(t0 + (int64_t)((double)i * 1e6 / (double)b->o.rate));
        if (publish_one(b, i) != 0)
            return 1;
        unconfirmed++;
        if (unconfirmed >= b->o.window) {
            if (confirm(b) != 0)
                return 1;
            unconfirmed = 0;
        } else if (b->o.rate > 0 && bench_now_us() - last_service > 5000) {
            /* take the confirms that came, without blocking the schedule */
            last_service = bench_now_us();
            if (mq_service(b->m) != LL_OK)
                return ctl_fail("check the broker", "publisher connection: %s", mq_errstr(b->m));
            if (mq_pending(b->m) == 0) {
                if (confirm(b) != 0)
                    return 1;
                unconfirmed = 0;
            }
        }
        if (tap_check(b))
            return 1;
        if (!b->o.prefill)
            settle_poll(b, false);
        progress(b, false);
    }
    return confirm(b);
}

/* ---- following -------------------------------------------------------------- */

/* Until every published payment is finished, or the timeout. */
static int follow(bench_t *b, int64_t deadline)
{
    int64_t target = b->o.stage == ST_SETTLEMENT ? b->o.count : published(b);
    int64_t next_service = 0, moved_at = bench_now_us(), last_finished = -1;
    bool warned = false;
    for (;;) {
        if (tap_check(b))
            return 1;
        /* the publisher is idle now: answer the broker's heartbeats */
        if (b->m && bench_now_us() >= next_service) {
            next_service = bench_now_us() + 1000000;
            if (mq_service(b->m) != LL_OK)
                next_service = INT64_MAX; /* gone: nothing more goes through it */
        }
        settle_poll(b, false);
        bool done = finished(b) >= target;
        if (done && wants_settlement(b) && b->o.stage == ST_PIPELINE) {
            settle_poll(b, true); /* exact, not the estimate */
            done = finished(b) >= target;
        }
        progress(b, done);
        if (done)
            return 0;
        if (finished(b) != last_finished) {
            last_finished = finished(b);
            moved_at = bench_now_us();
        } else if (!warned && bench_now_us() - moved_at > STALL_US) {
            warned = true;
            fprintf(stderr,
                    "%sledgerctl bench: warning: no payment of run %s finished in %d s "
                    "(decided %" PRId64 ", posted or failed %" PRId64 ", settled %" PRId64
                    "): do workers of every stage run? `ledgerctl status` shows the queues "
                    "and their consumers\n",
                    b->tty ? "\n" : "", b->run_id, (int)(STALL_US / 1000000), decided(b),
                    posted_or_failed(b), b->settled);
        }
        if (bench_now_us() >= deadline) {
            progress(b, true);
            const char *stage =
                decided(b) < published(b) ? "risk"
                : b->o.stage != ST_RISK && posted_or_failed(b) < atomic_load(&b->run.approved)
                    ? "payment"
                    : "settlement";
            if (b->o.stage == ST_PAYMENT)
                stage = "payment";
            if (b->o.stage == ST_SETTLEMENT)
                stage = "settlement";
            return ctl_fail("check that workers of that stage run and read their logs "
                            "(ops/workers status; ledgerctl status for the queues)",
                            "timed out after %" PRId64 " s: %" PRId64 " of %" PRId64
                            " payment(s) finished; the %s stage fell short (decided %" PRId64
                            ", posted or failed %" PRId64 ", settled %" PRId64 ")",
                            b->o.timeout_s, finished(b), target, stage, decided(b),
                            posted_or_failed(b), b->settled);
        }
        usleep(20000);
    }
}

/* ---- the report ---------------------------------------------------------- */

typedef struct report {
    int64_t t_end;
    double pipeline_rate, risk_rate, payment_rate, settle_rate;
    bench_pct_t to_decided, to_done, to_settled;
    int64_t settled, settle_first, settle_last;
    int verify_broken; /* -1: not run or failed */
    json_t *verify;
} report_t;

static double rate(int64_t n, int64_t first_us, int64_t last_us)
{
    return last_us > first_us && n > 1 ? (double)(n - 1) * 1e6 / (double)(last_us - first_us) : 0.0;
}

/* Publish -> settlement batch of every settled payment of the run. */
static int settle_latencies(bench_t *b, int64_t n, int64_t **out, size_t *nout, int64_t *settled,
                            int64_t *first, int64_t *last)
{
    char nn[24];
    snprintf(nn, sizeof nn, "%" PRId64, n);
    const char *p[] = {b->run.prefix, nn};
    PGresult *r;
    *out = NULL;
    *nout = 0;
    *first = *last = 0;
    if (db_query(b->db, &r,
                 "SELECT g, (extract(epoch FROM i.added_at) * 1000000)::bigint "
                 "FROM generate_series(0, $2::bigint - 1) g "
                 "JOIN settlement_items i ON i.payment_id = $1 || g",
                 2, p) != LL_OK)
        return ctl_fail(NULL, "reading the settlement batches: %s", db_errstr(b->db));
    int rows = PQntuples(r);
    *settled = rows;
    int64_t *v = ll_xcalloc(rows ? (size_t)rows : 1, sizeof *v);
    size_t k = 0;
    for (int i = 0; i < rows; i++) {
        int64_t g = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        int64_t at = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        bench_slot_t *s = bench_slot_get(&b->run, g);
        if (*first == 0 || at < *first)
            *first = at;
        if (at > *last)
            *last = at;
        if (s && atomic_load(&s->pub) > 0)
            v[k++] = at - atomic_load(&s->pub);
    }
    PQclear(r);
    *out = v;
    *nout = k;
    return 0;
}

static void report_build(bench_t *b, report_t *rep)
{
    bench_run_t *r = &b->run;
    int64_t n = b->o.stage == ST_SETTLEMENT ? b->o.count : published(b);
    int64_t *dec = ll_xcalloc(n ? (size_t)n : 1, sizeof *dec);
    int64_t *done = ll_xcalloc(n ? (size_t)n : 1, sizeof *done);
    size_t nd = 0, nc = 0;
    for (int64_t i = 0; i < n && b->o.stage != ST_SETTLEMENT; i++) {
        bench_slot_t *s = bench_slot_get(r, i);
        int64_t pub = s ? atomic_load(&s->pub) : 0;
        if (!pub)
            continue;
        if (atomic_load(&s->decided))
            dec[nd++] = atomic_load(&s->decided) - pub;
        if (atomic_load(&s->done_outcome) == BO_COMPLETED)
            done[nc++] = atomic_load(&s->done) - pub;
    }
    rep->to_decided = bench_pcts(dec, nd);
    rep->to_done = bench_pcts(done, nc);
    free(dec);
    free(done);
    rep->risk_rate =
        rate(decided(b), atomic_load(&r->first_decided), atomic_load(&r->last_decided));
    rep->payment_rate =
        rate(posted_or_failed(b), atomic_load(&r->first_done), atomic_load(&r->last_done));
    if (wants_settlement(b)) {
        int64_t *v;
        size_t nv;
        if (settle_latencies(b, n, &v, &nv, &rep->settled, &rep->settle_first, &rep->settle_last) ==
            0) {
            rep->to_settled = bench_pcts(v, nv);
            free(v);
        }
        rep->settle_rate = rate(rep->settled, rep->settle_first, rep->settle_last);
    }
    /* the run: from its first publish (or, prefilled, its first outcome:
     * the workers may not have been running) to its last outcome */
    int64_t start = b->t_first_pub;
    if (b->o.prefill || b->o.stage == ST_SETTLEMENT)
        start = b->o.stage == ST_RISK || b->o.stage == ST_PIPELINE ? atomic_load(&r->first_decided)
                : b->o.stage == ST_PAYMENT                         ? atomic_load(&r->first_done)
                                                                   : rep->settle_first;
    int64_t end = 0;
    if (b->o.stage == ST_RISK)
        end = atomic_load(&r->last_decided);
    else if (b->o.stage == ST_PAYMENT)
        end = atomic_load(&r->last_done);
    else {
        end = rep->settle_last;
        if (b->o.stage == ST_PIPELINE) {
            if (atomic_load(&r->last_done) > end)
                end = atomic_load(&r->last_done);
            if (atomic_load(&r->last_decided) > end)
                end = atomic_load(&r->last_decided);
        }
    }
    rep->t_end = end;
    rep->pipeline_rate = end > start ? (double)n * 1e6 / (double)(end - start) : 0.0;
}

static json_t *pct_json(const bench_pct_t *p)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f}", "n", (json_int_t)p->n, "p50",
                     (double)p->p50 / 1000, "p90", (double)p->p90 / 1000, "p99",
                     (double)p->p99 / 1000, "max", (double)p->max / 1000);
}

static void pct_line(const char *what, const bench_pct_t *p)
{
    if (p->n == 0)
        return;
    printf("  %-34s %8.1f %8.1f %8.1f %8.1f  (%zu)\n", what, (double)p->p50 / 1000,
           (double)p->p90 / 1000, (double)p->p99 / 1000, (double)p->max / 1000, p->n);
}

static void report_print(bench_t *b, const report_t *rep)
{
    bench_run_t *r = &b->run;
    int64_t n = b->o.stage == ST_SETTLEMENT ? b->o.count : published(b);
    double pub_s = (double)(b->t_last_pub - b->t_first_pub) / 1e6;
    if (b->c->json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:b, s:I, s:I, s:I, s:f, s:f}", "run_id", b->run_id, "stage",
            stage_names[b->o.stage], "prefill", b->o.prefill, "count", (json_int_t)n, "rate_target",
            (json_int_t)b->o.rate, "published", (json_int_t)published(b), "publish_per_s",
            pub_s > 0 && published(b) > 1 ? (double)(published(b) - 1) / pub_s : 0.0,
            "payments_per_s", rep->pipeline_rate);
        json_object_set_new(j, "outcomes",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "approved",
                                      (json_int_t)atomic_load(&r->approved), "declined",
                                      (json_int_t)atomic_load(&r->declined), "completed",
                                      (json_int_t)atomic_load(&r->completed), "failed",
                                      (json_int_t)atomic_load(&r->failed), "rejected",
                                      (json_int_t)(atomic_load(&r->rejected_risk) +
                                                   atomic_load(&r->rejected_payment) +
                                                   atomic_load(&r->rejected_other)),
                                      "settled", (json_int_t)rep->settled, "repeated",
                                      (json_int_t)atomic_load(&r->repeated), "foreign",
                                      (json_int_t)atomic_load(&r->foreign)));
        json_object_set_new(j, "stage_per_s",
                            json_pack("{s:f, s:f, s:f}", "risk", rep->risk_rate, "payment",
                                      rep->payment_rate, "settlement", rep->settle_rate));
        json_object_set_new(j, "latency_ms",
                            json_pack("{s:o, s:o, s:o}", "decided", pct_json(&rep->to_decided),
                                      "completed", pct_json(&rep->to_done), "settled",
                                      pct_json(&rep->to_settled)));
        json_object_set_new(j, "verify",
                            rep->verify_broken < 0
                                ? json_null()
                                : json_pack("{s:b, s:i, s:o}", "ok", rep->verify_broken == 0,
                                            "broken", rep->verify_broken, "invariants",
                                            json_incref(rep->verify)));
        ctl_json_print(j);
        return;
    }
    printf("ledgerctl bench: run %s, stage %s%s, %" PRId64 " payment(s), %d payer(s), %d "
           "payee(s)\n",
           b->run_id, stage_names[b->o.stage], b->o.prefill ? " (prefilled)" : "", n, b->npayer,
           b->npayee);
    if (b->o.stage != ST_SETTLEMENT)
        printf("published   %" PRId64 " in %.2f s (%.0f/s%s)\n", published(b), pub_s,
               pub_s > 0 && published(b) > 1 ? (double)(published(b) - 1) / pub_s : 0.0,
               b->o.rate > 0 ? ", paced" : ", as fast as confirms allow");
    printf("outcomes    approved %" PRId64 "  declined %" PRId64 "  completed %" PRId64
           "  failed %" PRId64 "  rejected %" PRId64 "  settled %" PRId64 "\n",
           atomic_load(&r->approved), atomic_load(&r->declined), atomic_load(&r->completed),
           atomic_load(&r->failed),
           atomic_load(&r->rejected_risk) + atomic_load(&r->rejected_payment) +
               atomic_load(&r->rejected_other),
           rep->settled);
    printf("rates/s     risk %.0f  payment %.0f  settlement %.0f  (each stage: first to last "
           "outcome)\n",
           rep->risk_rate, rep->payment_rate, rep->settle_rate);
    printf("run         %.0f payments/s (%s to the last outcome)\n", rep->pipeline_rate,
           b->o.prefill ? "first outcome" : "first publish");
    if (rep->to_decided.n || rep->to_done.n || rep->to_settled.n) {
        printf("latency ms  %-34s %8s %8s %8s %8s\n", "", "p50", "p90", "p99", "max");
        pct_line("publish -> risk decision", &rep->to_decided);
        pct_line("publish -> payment.completed", &rep->to_done);
        pct_line("publish -> in a settlement batch", &rep->to_settled);
    }
    if (atomic_load(&r->repeated))
        printf("note        %" PRId64 " outcome event(s) seen again (republished or replayed "
               "duplicates: consumers dedupe by event_id)\n",
               atomic_load(&r->repeated));
    if (rep->verify_broken == 0)
        printf("verify      ok: all %zu ledger invariants hold\n", ctl_verify_count());
    else if (rep->verify_broken > 0)
        printf("verify      BROKEN: %d invariant(s); run `ledgerctl verify` for the rows\n",
               rep->verify_broken);
}

/* ---- the command ------------------------------------------------------------ */

static int parse_opts(ctl_t *c, const ctl_cmd_t *cmd, int argc, char **argv, opts_t *o)
{
    static const struct option lo[] = {
        {"count", required_argument, NULL, 'n'},      {"duration", required_argument, NULL, 'd'},
        {"rate", required_argument, NULL, 'r'},       {"window", required_argument, NULL, 'w'},
        {"stage", required_argument, NULL, 'S'},      {"prefill", no_argument, NULL, 'P'},
        {"payers", required_argument, NULL, 'a'},     {"payees", required_argument, NULL, 'b'},
        {"payer-list", required_argument, NULL, 'A'}, {"payee-list", required_argument, NULL, 'B'},
        {"currency", required_argument, NULL, 'c'},   {"min-amount", required_argument, NULL, 'x'},
        {"max-amount", required_argument, NULL, 'X'}, {"run-id", required_argument, NULL, 'i'},
        {"key-file", required_argument, NULL, 'K'},   {"timeout", required_argument, NULL, 't'},
        {"no-verify", no_argument, NULL, 'V'},        {"broker", no_argument, NULL, 'Q'},
        {"size", required_argument, NULL, 'z'},       {NULL, 0, NULL, 0}};
    *o = (opts_t){.count = 10000,
                  .window = 256,
                  .payers = 2000,
                  .payees = 500,
                  .min_amount = 100,
                  .max_amount = 10000,
                  .timeout_s = 600,
                  .size = 512,
                  .stage = ST_PIPELINE,
                  .verify = true,
                  .currency = "EUR"};
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", lo)) != -1) {
        int64_t *num = NULL;
        const char *name = NULL;
        switch (ch) {
        case 'n':
            num = &o->count, name = "--count", o->count_given = true;
            break;
        case 'd':
            num = &o->duration_s, name = "--duration";
            break;
        case 'r':
            num = &o->rate, name = "--rate";
            break;
        case 'w':
            num = &o->window, name = "--window";
            break;
        case 'a':
            num = &o->payers, name = "--payers";
            break;
        case 'b':
            num = &o->payees, name = "--payees";
            break;
        case 'x':
            num = &o->min_amount, name = "--min-amount";
            break;
        case 'X':
            num = &o->max_amount, name = "--max-amount";
            break;
        case 't':
            num = &o->timeout_s, name = "--timeout";
            break;
        case 'z':
            num = &o->size, name = "--size";
            break;
        case 'S': {
            size_t k = 0;
            while (k < 4 && strcmp(optarg, stage_names[k]) != 0)
                k++;
            if (k == 4)
                return ctl_usage_error(cmd, "--stage must be pipeline, risk, payment or "
                                            "settlement");
            o->stage = (stage_t)k;
            break;
        }
        case 'P':
            o->prefill = true;
            break;
        case 'A':
            o->payer_list = optarg;
            break;
        case 'B':
            o->payee_list = optarg;
            break;
        case 'c':
            o->currency = optarg;
            break;
        case 'i':
            o->run_id = optarg;
            break;
        case 'K':
            o->key_file = optarg;
            break;
        case 'V':
            o->verify = false;
            break;
        case 'Q':
            o->broker = true;
            break;
        default:
            return ch == 'h' ? -1 : 2;
        }
        if (num && money_parse_minor(optarg, num) != LL_OK)
            return ctl_usage_error(cmd, "%s '%s' is not an integer", name, optarg);
    }
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o->broker && !o->count_given)
        o->count = 50000;
    if (o->duration_s > 0 && !o->count_given)
        o->count = BENCH_MAX_COUNT;
    if (o->count < 1 || o->count > BENCH_MAX_COUNT || o->duration_s < 0 || o->duration_s > 86400 ||
        o->rate < 0 || o->rate > 1000000 || o->window < 1 || o->window > 65535 ||
        o->timeout_s < 1 || o->timeout_s > 86400)
        return ctl_usage_error(cmd, "need 1 <= --count <= 10^8, 0 <= --duration <= 86400, "
                                    "0 <= --rate <= 10^6, 1 <= --window <= 65535, "
                                    "1 <= --timeout <= 86400");
    if (o->broker)
        return o->size >= 1 && o->size <= MSG_BODY_MAX
                   ? 0
                   : ctl_usage_error(cmd, "--size must be 1..%d bytes", MSG_BODY_MAX);
    if (o->payers < 1 || o->payers > MAX_ACCOUNTS || o->payees < 1 || o->payees > MAX_ACCOUNTS ||
        o->min_amount < 1 || o->max_amount < o->min_amount || o->max_amount > MSG_AMOUNT_MAX)
        return ctl_usage_error(cmd,
                               "need 1 <= --payers, --payees <= %d and 1 <= --min-amount "
                               "<= --max-amount <= 10^14",
                               MAX_ACCOUNTS);
    if (!money_currency_valid(o->currency))
        return ctl_usage_error(cmd,
                               "--currency '%s' is not an ISO 4217 code (3 upper-case "
                               "letters)",
                               o->currency);
    if (o->run_id && (strlen(o->run_id) > 16 || !ctl_valid_id(o->run_id)))
        return ctl_usage_error(cmd, "--run-id '%s' must be 1-16 chars of [A-Za-z0-9_.:-]",
                               o->run_id);
    if (o->stage == ST_SETTLEMENT && (!o->run_id || !o->count_given))
        return ctl_usage_error(cmd, "--stage settlement follows an earlier run: give its "
                                    "--run-id and --count");
    if (o->stage == ST_SETTLEMENT && (o->prefill || o->rate || o->duration_s))
        return ctl_usage_error(cmd, "--stage settlement publishes nothing: --prefill, --rate "
                                    "and --duration do not apply");
    if (o->prefill && o->rate)
        return ctl_usage_error(cmd, "--prefill publishes as fast as confirms allow: drop "
                                    "--rate");
    return 0;
}

static int setup_accounts(bench_t *b)
{
    if (!b->o.payer_list != !b->o.payee_list)
        return ctl_fail("give both --payer-list and --payee-list, or neither (bench then "
                        "prepares its own accounts)",
                        "only one of --payer-list and --payee-list was given");
    if (b->o.payer_list) {
        b->npayer = split_ids(b->o.payer_list, &b->payer);
        b->npayee = split_ids(b->o.payee_list, &b->payee);
        if (b->npayer < 1 || b->npayee < 1)
            return ctl_fail("give comma-separated account ids (at most 100000 each)",
                            "--payer-list/--payee-list: not a list of account ids");
        if (check_given(b, b->payer, b->npayer, "payer(s)") ||
            check_given(b, b->payee, b->npayee, "payee(s)"))
            return 1;
        for (int a = 0; a < b->npayer; a++) {
            bool other = false;
            for (int k = 0; k < b->npayee && !other; k++)
                other = strcmp(b->payer[a], b->payee[k]) != 0;
            if (!other)
                return ctl_fail("add another payee", "payer %s has no payee other than itself",
                                b->payer[a]);
        }
    } else if (prepare_accounts(b) != 0) {
        return 1;
    }
    b->payee_array = pg_array(b->payee, b->npayee);
    return 0;
}

/* Before publishing: the schema the workers need (they refuse to run on an
 * older one), and a consumer on every queue the run goes through (a
 * warning only: the workers may start later, as with --prefill). */
static int preflight(bench_t *b)
{
    char err[512];
    int rc = migrate_check(b->db, NULL, err, sizeof err);
    if (rc == LL_ECONFIG)
        return ctl_fail("run `ledgerctl migrate` (workers refuse to run on another schema too)",
                        "%s", err);
    if (rc != LL_OK)
        return ctl_fail("check the database", "%s", err);
    static const char *const queues[][3] = {
        [ST_PIPELINE] = {"risk", "payments", "settlement"},
        [ST_RISK] = {"risk", NULL, NULL},
        [ST_PAYMENT] = {"payments", NULL, NULL},
        [ST_SETTLEMENT] = {"settlement", NULL, NULL},
    };
    if (b->o.stage != ST_SETTLEMENT) {
        b->m = ctl_mq(b->c);
        if (!b->m)
            return 1;
    }
    mq_t *m = b->m ? b->m : ctl_mq(b->c);
    if (!m)
        return 1;
    for (int k = 0; k < 3 && queues[b->o.stage][k]; k++) {
        const char *q = queues[b->o.stage][k];
        uint32_t msgs = 0, consumers = 0;
        if (mq_queue_stats(m, q, &msgs, &consumers) != LL_OK)
            return ctl_fail("declare the topology first: ledgerctl topology apply",
                            "queue '%s': %s", q, mq_errstr(m));
        if (consumers == 0 && !b->o.prefill)
            fprintf(stderr,
                    "ledgerctl bench: warning: queue '%s' has no consumer: nothing gets past it "
                    "until a worker of that stage runs\n",
                    q);
        if (msgs > 0)
            fprintf(stderr,
                    "ledgerctl bench: warning: queue '%s' already holds %u message(s): this "
                    "run's payments wait behind them\n",
                    q, msgs);
    }
    return 0;
}

static void bench_free(bench_t *b)
{
    bench_tap_stop(&b->tap);
    bench_run_free(&b->run);
    sign_free(b->keys);
    if (!b->o.payer_list) {
        for (int i = 0; b->payer && i < b->npayer; i++)
            free(b->payer[i]);
        for (int i = 0; b->payee && i < b->npayee; i++)
            free(b->payee[i]);
    }
    free(b->payer);
    free(b->payee);
    free(b->payee_array);
}

int cmd_bench(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("bench");
    static bench_t b; /* large (the slot table): not on the stack */
    memset(&b, 0, sizeof b);
    b.c = c;
    int rc = parse_opts(c, cmd, argc, argv, &b.o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (b.o.broker)
        return bench_broker(c, b.o.count, b.o.size, (int)b.o.window);
    b.tty = !c->json && isatty(STDERR_FILENO);
    if (b.o.key_file) {
        char err[512];
        if (sign_load(b.o.key_file, &b.keys, err, sizeof err) != LL_OK)
            return ctl_fail("give a file of \"KEY_ID SECRET\" lines (secret >= 32 bytes)", "%s",
                            err);
    }
    if (b.o.run_id) {
        snprintf(b.run_id, sizeof b.run_id, "%s", b.o.run_id);
    } else {
        static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
        uint64_t s = (uint64_t)bench_now_us() ^ ((uint64_t)getpid() << 32);
        for (int i = 0; i < 6; i++)
            b.run_id[i] = digits[splitmix64(&s) % 36];
    }
    char prefix[48];
    snprintf(prefix, sizeof prefix, "bench-%s-", b.run_id);
    bench_run_init(&b.run, prefix);
    b.rng = (uint64_t)bench_now_us();
    rc = 1;
    b.db = ctl_db(c);
    if (!b.db || setup_accounts(&b) != 0)
        goto out;
    if (preflight(&b) != 0)
        goto out;
    if (b.o.stage != ST_SETTLEMENT) {
        if (bench_tap_start(&b.tap, c, &b.run) != 0)
            goto out;
    }
    if (wants_settlement(&b) && b.o.stage != ST_SETTLEMENT) {
        int64_t base = batch_items(&b);
        if (base < 0) {
            ctl_fail("run `ledgerctl migrate` if the schema is missing",
                     "reading the settlement batches: %s", db_errstr(b.db));
            goto out;
        }
        b.settle_base = base;
    }
    b.t_start = bench_now_us();
    if (b.o.stage != ST_SETTLEMENT) {
        if (publish_all(&b) != 0)
            goto out;
        if (b.o.prefill)
            fprintf(stderr,
                    "ledgerctl bench: prefilled %" PRId64 " payment(s) of run %s; following "
                    "them now\n",
                    published(&b), b.run_id);
    }
    if (follow(&b, bench_now_us() + b.o.timeout_s * 1000000) != 0)
        goto out;
    bench_tap_stop(&b.tap);
    report_t rep = {.verify_broken = -1};
    report_build(&b, &rep);
    if (b.o.verify) {
        rep.verify = json_array();
        rep.verify_broken = ctl_verify_ledger(c, 900, CTL_VERIFY_UNSENT_WITHIN, rep.verify, false);
    }
    report_print(&b, &rep);
    json_decref(rep.verify);
    rc = rep.verify_broken > 0 || (b.o.verify && rep.verify_broken < 0) ? 1 : 0;
    if (rep.verify_broken > 0)
        ctl_fail("run `ledgerctl verify` for the rows involved, and stop the workers",
                 "the ledger is broken after the run");
out:
    bench_free(&b);
    return rc;
}
