/*
 * settlement.c - the settlement stage's callbacks and its closer: see
 * settlement.h.
 *
 * A payment joins a batch in the batch transaction like any stage effect;
 * settlement publishes no event per payment (duplicates have nothing to
 * replay). The closer is a tick job: for each batch due, SET NX a lock with
 * the lease settlement.lock_ttl_ms, INCR its fencing counter, then one
 * transaction that starts with fence_advance() (a holder paused past its
 * lease holds an older token: its transaction is refused before it writes
 * anything), closes the batch, stores its event in the outbox and, just
 * before COMMIT, extends the lease if it is still ours (else rolls back);
 * the runtime publishes the event right after.
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
#include "msg.h"
#include "outbox.h"
#include "sbuf.h"
#include "settlement.h"
#include "stage.h"
#include "xmalloc.h"

#define CLOSE_LIMIT 50 /* batches looked at per round */

static int64_t window_s = 86400;
static int64_t next_close;

static int settlement_init(const settings_t *cfg)
{
    window_s = cfg->settlement.window_s;
    return LL_OK;
}

static int settlement_decode(item_t *it)
{
    msg_completed_t *c = ll_xcalloc(1, sizeof *c);
    int rc = msg_completed_decode(it->d.body, it->d.len, c, &it->why);
    if (rc != LL_OK) {
        free(c);
        return stage_undecodable(it, rc);
    }
    return stage_decoded(it, c, &c->payment);
}

static void settlement_release(item_t *it)
{
    if (it->msg) {
        msg_completed_clear(it->msg);
        free(it->msg);
        it->msg = NULL;
    }
}

static char *batch_json(item_t *items, size_t n, size_t *count)
{
    sbuf_t b;
    sbuf_init(&b, 64 + n * 512);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (it->state != ITEM_BATCHED)
            continue;
        const msg_completed_t *c = it->msg;
        batch_json_open(&b, it, &c->payment);
        sbuf_adds(&b, ",\"posted_ms\":");
        sbuf_i64(&b, c->posted_ms);
        sbuf_addc(&b, '}');
        (*count)++;
    }
    sbuf_adds(&b, *count ? "]" : "[]");
    return sbuf_take(&b);
}

/* Row `row`: ord, verdict, batch_id, late, prior_payload (for 'unposted':
 * why the event does not match the ledger). */
static void decide(item_t *it, PGresult *r, int row)
{
    if (strcmp(PQgetvalue(r, row, 1), "conflict") == 0) {
        const msg_completed_t *c = it->msg;
        item_reject_conflict(it, "settlement", PQgetvalue(r, row, 4), &c->payment);
        return;
    }
    if (strcmp(PQgetvalue(r, row, 1), "unposted") == 0) {
        /* the event does not match the ledger (forged, or corrupt) */
        msg_reject_t why = {.reason = MSG_REASON_PROCESSING_FAILED};
        snprintf(why.field, sizeof why.field, "payment_id");
        snprintf(why.detail, sizeof why.detail, "payment.completed does not match the ledger: %s",
                 PQgetvalue(r, row, 4));
        item_reject(it, "settlement", &why);
        return;
    }
    /* added now, or added before: either way nothing to publish */
    it->verdict = VERDICT_NEW;
    if (strcmp(PQgetvalue(r, row, 3), "t") == 0)
        log_infox((&(log_ctx_t){.queue = "settlement", .payment_id = it->payment_id}),
                  "late: its window is closed, added to %s", PQgetvalue(r, row, 2));
}

static int settlement_apply(db_t *db, item_t *items, size_t n)
{
    size_t count;
    char *batch = batch_json(items, n, &count);
    char w[24];
    snprintf(w, sizeof w, "%" PRId64, window_s);
    const char *params[] = {batch, w};
    int rc = stage_apply_rows(db,
                              "SELECT ord, verdict, batch_id, late, prior_payload "
                              "FROM settlement_apply_batch($1::jsonb, $2::bigint) ORDER BY ord",
                              2, params, items, n, count, decide);
    free(batch);
    return rc;
}

/* A close the ledger refused (payee frozen, short of funds, or any other
 * error of the batch itself): the batch stays open, says why, and is not
 * tried again for settlement.close_retry_ms, so it cannot starve others. */
static void hold(const rt_env_t *env, const char *id, const char *why)
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

/* Closes batch `id` under fencing token `fence`, in one transaction with
 * its outbox event. Just before COMMIT the lease of `lock` (value `token`)
 * is extended if it is still ours; if it is not (or Redis cannot say), the
 * transaction is rolled back and the batch left to the next round: the
 * fencing check alone would already refuse a holder that a newer token
 * overtook, this also stops one whose lease ran out before anyone took
 * over. 1 closed, 0 nothing to do or refused, < 0 error. */
static int close_one(const rt_env_t *env, const char *id, long long fence, const char *lock,
                     const char *token)
{
    db_t *db = env->db;
    char tok[32];
    snprintf(tok, sizeof tok, "%lld", fence);
    const char *p[] = {id, tok, env->instance};
    PGresult *r = NULL;
    int rc = db_exec(db, "BEGIN");
    if (rc == LL_OK)
        rc = db_query(db, &r,
                      "SELECT id, payee, currency, "
                      "(extract(epoch FROM window_start) * 1000)::bigint, "
                      "(extract(epoch FROM window_end) * 1000)::bigint, count, gross, fees, net "
                      "FROM settlement_close($1, $2::bigint, $3)",
                      3, p);
    if (rc != LL_OK) {
        bool fenced = strcmp(db_sqlstate(db), "LL001") == 0;
        if (fenced)
            log_warn("fencing: closing %s refused, my token %lld is stale (my lock expired "
                     "while I was paused and another worker took over): %s",
                     id, fence, db_errstr(db));
        else
            log_warnx((&(log_ctx_t){.err = db_errstr(db)}), "closing %s failed", id);
        char *why = ll_xstrdup(db_errstr(db));
        db_try(db, "ROLLBACK");
        if (rc == LL_EDB && !fenced)
            hold(env, id, why);
        free(why);
        return rc == LL_EDB ? 0 : rc;
    }
    if (PQntuples(r) == 0) { /* closed by someone else already */
        PQclear(r);
        db_try(db, "ROLLBACK");
        return 0;
    }
    msg_batch_closed_t b;
    memset(&b, 0, sizeof b);
    snprintf(b.batch_id, sizeof b.batch_id, "%s", PQgetvalue(r, 0, 0));
    snprintf(b.payee, sizeof b.payee, "%s", PQgetvalue(r, 0, 1));
    snprintf(b.currency, sizeof b.currency, "%s", PQgetvalue(r, 0, 2));
    b.window_start_ms = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    b.window_end_ms = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    b.count = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    b.gross = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
    b.fees = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
    b.net = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
    PQclear(r);
    char *body = msg_encode_batch_closed(&b, clock_now_ms());
    if (!body)
        log_panic("cannot encode settlement.batch.closed for %s", b.batch_id);
    char ev_id[MSG_EVENT_ID_LEN + 1];
    msg_event_id(MSG_TYPE_BATCH_CLOSED, b.batch_id, ev_id);
    rc = outbox_add(db, "settlement", NULL, ev_id, MSG_TYPE_BATCH_CLOSED, body, NULL);
    free(body);
    if (rc == LL_OK) {
        int kr = kv_pexpire_if_eq(env->kv, lock, token, env->cfg->settlement.lock_ttl_ms);
        if (kr != LL_OK) {
            log_warn("closing %s abandoned before COMMIT: %s; the next round retries", id,
                     kr == LL_ENOTFOUND ? "my lock expired (its lease ran out while I worked)"
                                        : "Redis cannot confirm I still hold the lock");
            db_try(db, "ROLLBACK");
            return 0;
        }
        crash_point("before_close_commit");
        rc = db_exec(db, "COMMIT");
    }
    if (rc != LL_OK) {
        db_try(db, "ROLLBACK");
        return rc;
    }
    crash_point("after_close_commit");
    log_info("closed settlement batch %s: %lld payment(s), gross %lld, fees %lld, net %lld",
             b.batch_id, (long long)b.count, (long long)b.gross, (long long)b.fees,
             (long long)b.net);
    return 1;
}

static int settlement_tick(const rt_env_t *env)
{
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

const rt_stage_t settlement_stage = {
    .name = "settlement",
    .worker = "settlement-worker",
    .queue = "settlement",
    .decode = settlement_decode,
    .release = settlement_release,
    .apply = settlement_apply,
    .init = settlement_init,
    .reload = settlement_init,
    .tick = settlement_tick,
};
