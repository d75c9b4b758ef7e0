/*
 * settlement.c - the settlement stage's table and its closer: see
 * settlement.h.
 *
 * A payment joins a batch in the batch transaction like any stage effect;
 * settlement publishes no event per payment (duplicates have nothing to
 * replay). The closer is a tick job: for each batch due, SET NX a lock with
 * the lease settlement.lock_ttl_ms, INCR its fencing counter, then one
 * transaction (tick_transact) that starts with fence_advance() (a holder
 * paused past its lease holds an older token: its transaction is refused
 * before it writes anything), closes the batch, hands its event to the
 * runtime and, last, extends the lease if it is still ours (else rolls
 * back); the runtime stores the event in the outbox, commits, and
 * publishes it after the round.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "crash.h"
#include "kv.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "msg_encode.h"
#include "reject.h"
#include "sbuf.h"
#include "settlement.h"
#include "stage.h"
#include "xmalloc.h"

#define CLOSE_LIMIT 50 /* batches looked at per round */

static char window_param[24] = "86400"; /* settlement.window_s, $2 of the batch function */
static int64_t next_close;

/* The settlement metrics (docs/operations.md#metrics), registered at the
 * first tick, when the runtime's registry exists; the gauges are sampled
 * every SAMPLE_MS from the open batches (a partial index). */
#define SAMPLE_MS 5000
static struct {
    metric_t *batches, *overdue, *closes, *duration;
    int64_t next_sample;
} sm;

static void metrics_sample(const tick_env_t *env)
{
    if (!sm.batches) {
        sm.batches = metric_new(METRIC_GAUGE, "ledgerline_settlement_batches",
                                "Open settlement batches, and those held after a refused close.",
                                "state", NULL, 0);
        sm.overdue = metric_new(METRIC_GAUGE, "ledgerline_settlement_batches_overdue",
                                "Open batches whose window ended more than grace + 60 s ago.", NULL,
                                NULL, 0);
        sm.closes = metric_new(METRIC_COUNTER, "ledgerline_settlement_closes_total",
                               "Batch closes by this worker: closed, or held (refused).", "result",
                               NULL, 0);
        sm.duration = metric_new(METRIC_HISTOGRAM, "ledgerline_settlement_close_duration_seconds",
                                 "One batch close, lock to commit or hold.", "result",
                                 metrics_duration_buckets, metrics_duration_nbuckets);
        metric_set(sm.batches, "open", 0);
        metric_set(sm.batches, "held", 0);
        metric_set(sm.overdue, NULL, 0);
        metric_add(sm.closes, "closed", 0);
        metric_add(sm.closes, "held", 0);
        metric_add(sm.duration, "closed", 0); /* exported before the first close */
        metric_add(sm.duration, "held", 0);
    }
    int64_t now = clock_mono_ms();
    if (now < sm.next_sample)
        return;
    sm.next_sample = now + SAMPLE_MS;
    char grace[48];
    snprintf(grace, sizeof grace, "%lld milliseconds", env->cfg->settlement.grace_ms + 60000);
    const char *p[] = {grace};
    PGresult *r;
    if (db_query(env->db, &r,
                 "SELECT count(*) FILTER (WHERE close_error IS NULL) AS open, "
                 "count(*) FILTER (WHERE close_error IS NOT NULL) AS held, "
                 "count(*) FILTER (WHERE window_end + $1::interval < now()) AS overdue "
                 "FROM settlement_batches WHERE status = 'open'",
                 1, p) != LL_OK)
        return; /* the gauges keep their last value; the close query reports faults */
    stage_row_t row = {r, 0};
    metric_set(sm.batches, "open", atof(stage_col(&row, "open")));
    metric_set(sm.batches, "held", atof(stage_col(&row, "held")));
    metric_set(sm.overdue, NULL, atof(stage_col(&row, "overdue")));
    PQclear(r);
}

static int settlement_init(const settings_t *cfg)
{
    snprintf(window_param, sizeof window_param, "%lld", (long long)cfg->settlement.window_s);
    return LL_OK;
}

static void settlement_params(const char **out)
{
    out[0] = window_param;
}

/* posted_at of the payment.completed event: its window */
static void settlement_element(sbuf_t *b, const item_t *it)
{
    const msg_completed_t *c = it->msg;
    sbuf_adds(b, ",\"posted_ms\":");
    sbuf_i64(b, c->posted_ms);
}

/* A new row ('new' or 'duplicate': either way nothing to publish) or an
 * event that does not match the ledger ('unposted': forged, or corrupt). */
static void decide(item_t *it, const stage_row_t *r)
{
    if (stage_col_is(r, "verdict", "unposted")) {
        msg_reject_t why = {.reason = MSG_REASON_PROCESSING_FAILED};
        snprintf(why.field, sizeof why.field, "payment_id");
        snprintf(why.detail, sizeof why.detail, "payment.completed does not match the ledger: %s",
                 stage_col(r, "prior_payload"));
        item_reject(it, "settlement", &why);
        return;
    }
    it->verdict = VERDICT_NEW;
    if (stage_col_is(r, "late", "t"))
        log_infox((&(log_ctx_t){.queue = "settlement", .payment_id = it->key}),
                  "late: its window is closed, added to %s", stage_col(r, "batch_id"));
}

/* A close the ledger refused (payee frozen, short of funds, or any other
 * error of the batch itself): the batch stays open, says why, and is not
 * tried again for settlement.close_retry_ms, so it cannot starve others. */
static void hold(const tick_env_t *env, const char *id, const char *why)
{
    char retry[32];
    snprintf(retry, sizeof retry, "%lld", env->cfg->settlement.close_retry_ms);
    const char *p[] = {id, why, retry};
    PGresult *r;
    if (db_query(env->db, &r, "SELECT settlement_hold($1, $2, $3::bigint)", 3, p) != LL_OK) {
        log_warnx((&(log_ctx_t){.err = db_errstr(env->db)}), "could not hold batch %s", id);
        return;
    }
    PQclear(r);
    log_warn("settlement batch %s held: its close was refused (%s); next try in %lld ms", id, why,
             env->cfg->settlement.close_retry_ms);
}

/* One close: the batch, its fencing token and Redis lock, and what the
 * transaction found. */
typedef struct close_ctx {
    const tick_env_t *env;
    const char *id, *lock, *token;
    long long fence;
    msg_batch_closed_t b;
    bool refused;  /* settlement_close() raised (not a fencing refusal) */
    char why[512]; /* its error */
} close_ctx_t;

/* In the closing transaction: settlement_close() (fence first), the
 * batch's event, and as the last step before the runtime stores the event
 * and commits, the lease of the lock extended if it is still ours; if it
 * is not (or Redis cannot say), the transaction is rolled back and the
 * batch left to the next round: the fencing check alone would already
 * refuse a holder that a newer token overtook, this also stops one whose
 * lease ran out before anyone took over. */
static int close_work(db_t *db, tick_txn_t *tx, void *arg)
{
    close_ctx_t *c = arg;
    char tok[32];
    snprintf(tok, sizeof tok, "%lld", c->fence);
    const char *p[] = {c->id, tok, c->env->instance};
    PGresult *r;
    int rc = db_query(db, &r,
                      "SELECT id, payee, currency, "
                      "(extract(epoch FROM window_start) * 1000)::bigint AS window_start_ms, "
                      "(extract(epoch FROM window_end) * 1000)::bigint AS window_end_ms, "
                      "count, gross, fees, refunds, refund_count, carried_in, carried_out, net "
                      "FROM settlement_close($1, $2::bigint, $3)",
                      3, p);
    if (rc != LL_OK) {
        snprintf(c->why, sizeof c->why, "%s", db_errstr(db));
        if (strcmp(db_sqlstate(db), "LL001") == 0)
            log_warn("fencing: closing %s refused, my token %lld is stale (my lock expired "
                     "while I was paused and another worker took over): %s",
                     c->id, c->fence, c->why);
        else
            log_warnx((&(log_ctx_t){.err = c->why}), "closing %s failed", c->id);
        c->refused = rc == LL_EDB && strcmp(db_sqlstate(db), "LL001") != 0;
        return rc;
    }
    if (PQntuples(r) == 0) { /* closed by someone else already */
        PQclear(r);
        return TICK_ROLLBACK;
    }
    stage_row_t row = {r, 0};
    msg_batch_closed_t *b = &c->b;
    snprintf(b->batch_id, sizeof b->batch_id, "%s", stage_col(&row, "id"));
    snprintf(b->payee, sizeof b->payee, "%s", stage_col(&row, "payee"));
    snprintf(b->currency, sizeof b->currency, "%s", stage_col(&row, "currency"));
    b->window_start_ms = strtoll(stage_col(&row, "window_start_ms"), NULL, 10);
    b->window_end_ms = strtoll(stage_col(&row, "window_end_ms"), NULL, 10);
    b->count = strtoll(stage_col(&row, "count"), NULL, 10);
    b->gross = strtoll(stage_col(&row, "gross"), NULL, 10);
    b->fees = strtoll(stage_col(&row, "fees"), NULL, 10);
    b->refunds = strtoll(stage_col(&row, "refunds"), NULL, 10);
    b->refund_count = strtoll(stage_col(&row, "refund_count"), NULL, 10);
    b->carried_in = strtoll(stage_col(&row, "carried_in"), NULL, 10);
    b->carried_out = strtoll(stage_col(&row, "carried_out"), NULL, 10);
    b->net = strtoll(stage_col(&row, "net"), NULL, 10);
    PQclear(r);
    char *body = msg_encode_batch_closed(b, clock_now_ms());
    if (!body)
        log_panic("cannot encode settlement.batch.closed for %s", b->batch_id);
    tick_event(tx, NULL, MSG_TYPE_BATCH_CLOSED, b->batch_id, body);
    int kr = kv_pexpire_if_eq(c->env->kv, c->lock, c->token, c->env->cfg->settlement.lock_ttl_ms);
    if (kr != LL_OK) {
        log_warn("closing %s abandoned before COMMIT: %s; the next round retries", c->id,
                 kr == LL_ENOTFOUND ? "my lock expired (its lease ran out while I worked)"
                                    : "Redis cannot confirm I still hold the lock");
        return TICK_ROLLBACK;
    }
    return LL_OK;
}

/* Closes batch `id` under fencing token `fence` and lock `lock` (value
 * `token`). 1 closed, 0 nothing to do or refused (a refusal holds the
 * batch), < 0 error. */
static int close_one(tick_env_t *env, const char *id, long long fence, const char *lock,
                     const char *token)
{
    close_ctx_t c = {.env = env, .id = id, .lock = lock, .token = token, .fence = fence};
    int64_t t0 = clock_mono_us();
    int rc = tick_transact(env, "close", close_work, &c);
    if (rc == TICK_ROLLBACK)
        return 0;
    const char *result = rc == LL_OK ? "closed" : "held";
    if (rc == LL_OK || c.refused) {
        metric_add(sm.closes, result, 1);
        metric_observe(sm.duration, result, (double)(clock_mono_us() - t0) / 1e6);
    }
    if (rc != LL_OK) {
        if (c.refused)
            hold(env, id, c.why);
        return rc == LL_EDB ? 0 : rc;
    }
    log_infox((&(log_ctx_t){.count = (long long)c.b.count,
                            .has_count = true,
                            .duration_ms = (double)(clock_mono_us() - t0) / 1000.0,
                            .has_duration = true}),
              "closed settlement batch %s: %lld payment(s), gross %lld, fees %lld, refunds %lld, "
              "carried in %lld, net %lld, carried out %lld",
              c.b.batch_id, (long long)c.b.count, (long long)c.b.gross, (long long)c.b.fees,
              (long long)c.b.refunds, (long long)c.b.carried_in, (long long)c.b.net,
              (long long)c.b.carried_out);
    return 1;
}

static int settlement_tick(tick_env_t *env)
{
    metrics_sample(env);
    int64_t now = clock_mono_ms();
    if (now < next_close || !env->kv)
        return 0;
    next_close = now + env->cfg->settlement.close_interval_ms;
    char grace[32];
    snprintf(grace, sizeof grace, "%lld milliseconds", env->cfg->settlement.grace_ms);
    char limit[16];
    snprintf(limit, sizeof limit, "%d", CLOSE_LIMIT);
    const char *p[] = {grace, limit};
    PGresult *r;
    if (db_query(env->db, &r,
                 "SELECT id FROM settlement_batches WHERE status = 'open' "
                 "AND window_end + $1::interval < now() "
                 "AND (close_retry_at IS NULL OR close_retry_at <= now()) "
                 "ORDER BY window_end, id LIMIT $2::int",
                 2, p) != LL_OK) {
        log_warnx((&(log_ctx_t){.err = db_errstr(env->db)}), "looking for batches to close");
        return 0;
    }
    int closed = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        char lock[256], fence_key[256], token[192];
        snprintf(lock, sizeof lock, "lock:%s:%s", env->scope, id);
        snprintf(fence_key, sizeof fence_key, "fence:%s:%s", env->scope, id);
        snprintf(token, sizeof token, "%s:%" PRId64, env->instance, clock_mono_ms());
        int rc = kv_set_nx(env->kv, lock, token, env->cfg->settlement.lock_ttl_ms);
        if (rc == LL_EEXISTS)
            continue; /* another worker is closing it */
        if (rc != LL_OK)
            break; /* Redis down: no lock, no close; the next round retries */
        long long fence;
        if (kv_incr(env->kv, fence_key, &fence) == LL_OK) {
            pause_point("closer_locked");
            int n = close_one(env, id, fence, lock, token);
            if (n > 0)
                closed += n;
        }
        if (kv_del_if_eq(env->kv, lock, token) != LL_OK)
            log_warn("lock of %s was not mine any more when I released it (lease expired)", id);
    }
    PQclear(r);
    return closed;
}

const stage_t settlement_stage = {
    .name = "settlement",
    .worker = "settlement-worker",
    .queue = "settlement",
    .http_port = 9473,
    .consumes = &msg_decoder_completed,
    .apply_sql = "SELECT verdict, batch_id, late, prior_payload "
                 "FROM settlement_apply_batch($1::jsonb, $2::bigint) ORDER BY ord",
    .nparams = 1,
    .params = settlement_params,
    .element = settlement_element,
    .decide = decide,
    .init = settlement_init,
    .tick = settlement_tick,
};
