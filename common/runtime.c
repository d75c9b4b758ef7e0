/*
 * runtime.c - the worker loop: see runtime.h for the order of things and
 * the failure rules. One rt_t per process; single-threaded.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "clock.h"
#include "conn.h"
#include "crash.h"
#include "idem.h"
#include "kv.h"
#include "log.h"
#include "migrate.h"
#include "mq.h"
#include "obs.h"
#include "outbox.h"
#include "reject.h"
#include "retention.h"
#include "runtime.h"
#include "settings.h"
#include "sign.h"
#include "topo.h"
#include "xmalloc.h"

#define RT_POLL_MS         200 /* longest wait for a delivery: the tick period */
#define RT_SWEEP_LIMIT     500
#define RT_STATS_PERIOD_MS 10000
#define RT_MARKS_FLUSH_MS  100    /* sent marks wait this long for a batch to carry them */
#define RT_MARKS_MAX       100000 /* past this many, marks are dropped: the sweep repairs */

typedef struct rt {
    const stage_t *st;
    sign_keyring_t *verify; /* the stage's verify keyring (stage_t.verify), NULL: none */
    sign_keyring_t *sign;   /* the stage's sign keyring (stage_t.sign), NULL: none */
    settings_t cfg;
    char instance[128];
    char scope[96];  /* "<ledger id>:<stage>": the Redis key scope (idem.h) */
    char ledger[64]; /* the ledger identity, "" until PostgreSQL answered */
    obs_t *obs;      /* health, metrics, registry (obs.h) */
    mq_t *in;        /* consumes the work queue */
    mq_t *out;       /* publishes, with confirms */
    db_t *db;
    kv_t *kv;
    topo_t *topo;
    bool consuming;
    batch_t batch;
    backoff_t bo;
    int64_t stop_deadline; /* mono ms; set at the first signal */
    int64_t next_sweep, next_stats, next_retention;
    long long done, done_at_stats;
    /* Outbox events published and confirmed whose pending marks are not
     * deleted yet: the next batch's transaction deletes them with its own
     * work, or the tick in a transaction of their own when no batch came
     * for RT_MARKS_FLUSH_MS. Lost in a crash, they only make the sweep
     * publish those events again (consumers dedupe by event_id). */
    int64_t *marks;
    size_t nmarks, capmarks;
    int64_t marks_at; /* mono ms of the oldest mark, 0 when none */
    tick_env_t tick;  /* the stage's tick job: its environment and events */
} rt_t;

static volatile sig_atomic_t rt_signals;
static volatile sig_atomic_t rt_hup;

static void on_hup(int sig)
{
    (void)sig;
    rt_hup = 1;
}

/* The shutdown bound: the soft deadline counts from the signal itself
 * (noted in the handler, not when the loop next looks), and a hard one,
 * RT_HARD_STOP_S later, is an alarm: whatever call the worker is blocked in
 * (a database lock wait, a broker that stopped reading), it exits then.
 * Nothing unacked is lost: the broker requeues it. */
#define RT_HARD_STOP_S 5
static struct timespec rt_signal_at;
static unsigned rt_alarm_s; /* shutdown_timeout_ms rounded up + RT_HARD_STOP_S */

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "{\"level\":\"error\",\"msg\":\"shutdown took longer than "
                              "worker.shutdown_timeout_ms: exiting now; unacked messages "
                              "return to the queue\"}\n";
    ssize_t w = write(STDOUT_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

static void on_signal(int sig)
{
    if (rt_signals++ > 0)
        _exit(128 + sig); /* second signal: now; unacked messages go back */
    clock_gettime(CLOCK_MONOTONIC, &rt_signal_at);
    alarm(rt_alarm_s);
}

static bool rt_stopping(rt_t *rt)
{
    if (rt_signals && rt->stop_deadline == 0) {
        int64_t at = (int64_t)rt_signal_at.tv_sec * 1000 + rt_signal_at.tv_nsec / 1000000;
        rt->stop_deadline = (at > 0 ? at : clock_mono_ms()) + rt->cfg.worker.shutdown_timeout_ms;
        log_info("signal received: finishing the batch in hand, then exiting");
    }
    return rt_signals != 0;
}

/* Past the shutdown deadline: give up on the batch (nothing acked). */
static bool rt_give_up(rt_t *rt)
{
    return rt_stopping(rt) && clock_mono_ms() > rt->stop_deadline;
}

/* Tells obs the loop is alive and what is connected. */
static void rt_observe(rt_t *rt)
{
    bool up[OBS_NDEPS] = {
        [OBS_POSTGRES] = db_is_up(rt->db),
        [OBS_RABBITMQ] = mq_is_up(rt->out) && mq_is_up(rt->in),
        [OBS_REDIS] = rt->kv && kv_is_up(rt->kv),
    };
    obs_deps(rt->obs, up, rt->consuming, rt_signals != 0);
}

/* Sleeps the next backoff interval, waking early on a signal. */
static void rt_backoff(rt_t *rt)
{
    int ms = backoff_next_ms(&rt->bo);
    int64_t end = clock_mono_ms() + ms;
    while (clock_mono_ms() < end && !rt_give_up(rt)) {
        /* a batch may be in hand: keep its consumer connection alive
         * (failures show at the ack, which then leaves the batch to be
         * redelivered) */
        if (rt->in && mq_is_up(rt->in) && mq_keepalive(rt->in) != LL_OK)
            rt->consuming = false;
        rt_observe(rt); /* waiting for a server is progress, not a stuck loop */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* --- connections ---------------------------------------------------------- */

static mq_t *rt_mq_new(rt_t *rt, const char *role)
{
    char name[256];
    if (rt->cfg.amqp.connection_name[0])
        snprintf(name, sizeof name, "%s %s", rt->cfg.amqp.connection_name, role);
    else
        snprintf(name, sizeof name, "%s %s %s", rt->st->worker, rt->instance, role);
    mq_opts_t o = conn_mq_opts(&rt->cfg, name);
    return mq_new(&o);
}

static int rt_connect_db(rt_t *rt)
{
    int rc = db_connect(rt->db);
    if (rc != LL_OK) {
        log_warnx((&(log_ctx_t){.err = db_errstr(rt->db)}), "PostgreSQL unavailable");
        return rc;
    }
    char err[512];
    rc = migrate_check(rt->db, NULL, err, sizeof err);
    if (rc == LL_ECONFIG) {
        log_error("refusing to work: %s", err);
        db_close(rt->db);
        return LL_ECONFIG;
    }
    if (rc != LL_OK) { /* could not even ask: a server fault, retried like one */
        log_warn("PostgreSQL unavailable: reading the schema version failed: %s", err);
        db_close(rt->db);
        return LL_ECONN;
    }
    PGresult *r;
    if (db_query(rt->db, &r, "SELECT id FROM ledger_identity", 0, NULL) != LL_OK ||
        PQntuples(r) != 1) {
        log_error("cannot read the ledger identity: %s", db_errstr(rt->db));
        db_close(rt->db);
        return LL_ECONN;
    }
    snprintf(rt->scope, sizeof rt->scope, "%s:%s", PQgetvalue(r, 0, 0), rt->st->name);
    snprintf(rt->ledger, sizeof rt->ledger, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    log_info("connected to PostgreSQL (ledger %.16s)", rt->scope);
    return LL_OK;
}

static int rt_connect_out(rt_t *rt)
{
    int rc = mq_connect(rt->out);
    char err[512];
    if (rc == LL_OK) {
        topo_params_t p = {.quorum = rt->cfg.amqp.queue_type == SETTINGS_QUEUE_QUORUM,
                           .delivery_limit = (int)rt->cfg.amqp.delivery_limit};
        rc = topo_apply(rt->topo, rt->out, &p, NULL, NULL, err, sizeof err);
        if (rc != LL_OK) {
            log_error("declaring the topology failed: %s", err);
            mq_close(rt->out);
            return rc;
        }
        log_info("connected to RabbitMQ (publisher), topology declared");
        return LL_OK;
    }
    log_warnx((&(log_ctx_t){.err = mq_errstr(rt->out)}), "RabbitMQ unavailable (publisher)");
    return rc;
}

static int rt_connect_in(rt_t *rt)
{
    rt->consuming = false;
    int rc = mq_connect(rt->in);
    if (rc == LL_OK) {
        long long prefetch = rt->cfg.amqp.prefetch;
        if (prefetch < rt->cfg.worker.batch_max_messages)
            prefetch = rt->cfg.worker.batch_max_messages;
        rc = mq_consume(rt->in, rt->st->queue, (int)prefetch);
        if (rc == LL_OK) {
            rt->consuming = true;
            log_infox((&(log_ctx_t){.queue = rt->st->queue}), "consuming (prefetch %lld)",
                      prefetch);
            return LL_OK;
        }
        mq_close(rt->in);
    }
    log_warnx((&(log_ctx_t){.queue = rt->st->queue, .err = mq_errstr(rt->in)}),
              "RabbitMQ unavailable (consumer)");
    return rc;
}

/* Brings every connection up, backing off between rounds. LL_OK, or
 * LL_ESTATE when stopping, or LL_ECONFIG (do not retry). */
static int rt_ensure_up(rt_t *rt, bool want_consumer)
{
    for (;;) {
        int rc = LL_OK;
        if (!db_is_up(rt->db))
            rc = rt_connect_db(rt);
        if (rc == LL_ECONFIG)
            return rc;
        if (rc == LL_OK && !mq_is_up(rt->out))
            rc = rt_connect_out(rt);
        if (rc == LL_ECONFIG || rc == LL_EPROTO)
            return LL_ECONFIG;
        if (rc == LL_OK && want_consumer && !(mq_is_up(rt->in) && rt->consuming))
            rc = rt_connect_in(rt);
        if (rc == LL_OK) {
            backoff_reset(&rt->bo);
            return LL_OK;
        }
        if (rt_stopping(rt) && (want_consumer || rt_give_up(rt)))
            return LL_ESTATE;
        rt_backoff(rt);
    }
}

/* --- gathering ------------------------------------------------------------- */

/* The producer's request time of a delivery, Unix ms: the header
 * RT_REQUESTED_AT (workers pass it on with the events they publish), else
 * the AMQP timestamp property (seconds), else 0. */
#define RT_REQUESTED_AT "x-ledgerline-requested-at"
static int64_t rt_requested_ms(const mq_delivery_t *d)
{
    const amqp_basic_properties_t *p = &d->env.message.properties;
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG)
        for (int i = 0; i < p->headers.num_entries; i++) {
            const amqp_table_entry_t *e = &p->headers.entries[i];
            if (e->key.len != strlen(RT_REQUESTED_AT) ||
                memcmp(e->key.bytes, RT_REQUESTED_AT, e->key.len) != 0)
                continue;
            switch (e->value.kind) {
            case AMQP_FIELD_KIND_I64:
                return e->value.value.i64;
            case AMQP_FIELD_KIND_U64:
                return (int64_t)e->value.value.u64;
            case AMQP_FIELD_KIND_I32:
                return e->value.value.i32;
            case AMQP_FIELD_KIND_UTF8:
            case AMQP_FIELD_KIND_BYTES: {
                char v[32];
                snprintf(v, sizeof v, "%.*s", (int)e->value.value.bytes.len,
                         (const char *)e->value.value.bytes.bytes);
                return strtoll(v, NULL, 10);
            }
            default:
                return 0;
            }
        }
    if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)
        return (int64_t)p->timestamp * 1000;
    return 0;
}

/* Fills the batch: LL_OK (possibly empty), or LL_ECONN when the consumer
 * connection broke (the batch is dropped: the broker redelivers it).
 * After the first message it takes what is already there (polls that do
 * not wait) and, only with worker.batch_max_wait_ms > 0, waits that long
 * for more. With 0 (the default) a batch never waits for messages that are
 * not arriving, and under load it grows by itself: what arrives while a
 * batch commits is the next batch (group commit). */
static int rt_gather(rt_t *rt)
{
    mq_delivery_t d;
    int rc = mq_next(rt->in, &d, RT_POLL_MS);
    if (rc == LL_ETIMEOUT)
        return LL_OK;
    if (rc != LL_OK)
        goto lost;
    item_t *first = batch_add(&rt->batch, &d);
    first->requested_ms = rt_requested_ms(&first->d);
    crash_point("mid_batch");
    int64_t deadline = clock_mono_ms() + rt->cfg.worker.batch_max_wait_ms;
    while ((long long)rt->batch.n < rt->cfg.worker.batch_max_messages && !rt_stopping(rt)) {
        /* waits of at most RT_POLL_MS, so a signal ends the gathering at
         * once (librabbitmq resumes its wait when a signal interrupts it) */
        int64_t left = deadline - clock_mono_ms();
        rc = mq_next(rt->in, &d, left <= 0 ? 0 : left < RT_POLL_MS ? (int)left : RT_POLL_MS);
        if (rc == LL_ETIMEOUT) {
            if (clock_mono_ms() >= deadline)
                break;
            continue;
        }
        if (rc != LL_OK)
            goto lost;
        item_t *it = batch_add(&rt->batch, &d);
        it->requested_ms = rt_requested_ms(&it->d);
    }
    obs_consumed(rt->obs, rt->batch.n);
    return LL_OK;
lost:
    obs_consumed(rt->obs, rt->batch.n);
    log_warnx((&(log_ctx_t){.queue = rt->st->queue, .err = mq_errstr(rt->in)}),
              "consumer connection lost: %zu unacked message(s) will be redelivered", rt->batch.n);
    mq_close(rt->in);
    rt->consuming = false;
    return LL_ECONN;
}

static void rt_release_all(rt_t *rt)
{
    for (size_t i = 0; i < rt->batch.n; i++) {
        stage_release(rt->st, &rt->batch.items[i]);
        rt->batch.items[i].msg = NULL;
    }
    batch_clear(&rt->batch);
}

/* --- the transaction ------------------------------------------------------- */

static bool transient(int rc)
{
    return rc == LL_ECONN || rc == LL_ERETRY || rc == LL_ETIMEOUT;
}

static void rt_retention(rt_t *rt);

/* Undoes what a failed transaction left on its items. */
static void rt_unbatch(item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (it->state != ITEM_BATCHED)
            continue;
        free(it->ev_rk);
        free(it->ev_body);
        it->ev_rk = it->ev_body = NULL;
        it->ev_id[0] = '\0';
        it->verdict = VERDICT_NONE;
        it->outbox_id = 0;
        it->park = false;
        item_set_state(it, ITEM_DECODED);
    }
}

/* One transaction over the DECODED items of items[0..n). */
static int rt_tx(rt_t *rt, item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (items[i].state == ITEM_DECODED)
            item_set_state(&items[i], ITEM_BATCHED);
    int64_t t0 = clock_mono_us();
    int rc = db_exec(rt->db, "BEGIN");
    if (rc == LL_OK && rt->nmarks)
        rc = outbox_unpend(rt->db, rt->marks, rt->nmarks);
    if (rc == LL_OK)
        rc = stage_apply(rt->st, rt->db, items, n);
    if (rc == LL_OK)
        rc = outbox_write(rt->db, rt->st->name, items, n);
    if (rc == LL_OK) {
        crash_point("before_commit");
        rc = db_exec(rt->db, "COMMIT");
    }
    if (rc != LL_OK) {
        db_try(rt->db, "ROLLBACK");
        rt_unbatch(items, n);
        return rc;
    }
    obs_tx(rt->obs, (double)(clock_mono_us() - t0) / 1e6);
    for (size_t i = 0; i < n; i++)
        if (items[i].state == ITEM_BATCHED) {
            item_set_state(&items[i], ITEM_COMMITTED);
            if (items[i].verdict == VERDICT_NEW)
                obs_e2e(rt->obs, items[i].requested_ms);
        }
    rt->nmarks = 0; /* committed with the batch */
    rt->marks_at = 0;
    return LL_OK;
}

static size_t count_decoded(const item_t *items, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += items[i].state == ITEM_DECODED;
    return k;
}

/* Commits items[0..n): retries transient faults, splits on other failures
 * until one message is alone, parks it after max_attempts. LL_OK, or
 * LL_ESTATE when giving up (shutdown, or a server that cannot be used any
 * more, e.g. a schema gone out of date): the caller abandons the batch. */
static int rt_commit(rt_t *rt, item_t *items, size_t n)
{
    for (;;) {
        size_t k = count_decoded(items, n);
        if (k == 0)
            return LL_OK;
        int rc = rt_tx(rt, items, n);
        if (rc == LL_OK) {
            backoff_reset(&rt->bo);
            return LL_OK;
        }
        if (transient(rc)) {
            /* no partition of now (db.c): the retention job creates it */
            bool no_partition = rc == LL_ERETRY && strcmp(db_sqlstate(rt->db), "23514") == 0;
            obs_tx_retry(rt->obs, rc, db_sqlstate(rt->db));
            log_warnx((&(log_ctx_t){.queue = rt->st->queue,
                                    .err = db_errstr(rt->db),
                                    .count = (long long)k,
                                    .has_count = true}),
                      "transaction of %zu message(s) failed (%s): retrying", k, ll_errname(rc));
            if (rc == LL_ECONN)
                db_close(rt->db);
            if (rt_give_up(rt))
                return LL_ESTATE;
            rt_backoff(rt);
            if (rt_ensure_up(rt, false) != LL_OK)
                return LL_ESTATE;
            if (no_partition)
                rt_retention(rt);
            continue;
        }
        if (k > 1) {
            /* split at the middle decoded item and commit each half */
            size_t half = k / 2, seen = 0, mid = 0;
            for (; mid < n; mid++)
                if (items[mid].state == ITEM_DECODED && seen++ == half)
                    break;
            log_warnx((&(log_ctx_t){.queue = rt->st->queue,
                                    .err = db_errstr(rt->db),
                                    .count = (long long)k,
                                    .has_count = true}),
                      "transaction of %zu messages failed: splitting to find the cause", k);
            if ((rc = rt_commit(rt, items, mid)) != LL_OK)
                return rc;
            return rt_commit(rt, items + mid, n - mid);
        }
        item_t *it = items;
        while (it->state != ITEM_DECODED)
            it++;
        it->attempts++;
        log_warnx(
            (&(log_ctx_t){.queue = rt->st->queue, .payment_id = it->key, .err = db_errstr(rt->db)}),
            "processing failed (attempt %d of %lld)", it->attempts, rt->cfg.worker.max_attempts);
        if (it->attempts >= rt->cfg.worker.max_attempts) {
            msg_reject_t why = {.reason = MSG_REASON_PROCESSING_FAILED};
            snprintf(why.detail, sizeof why.detail, "failed %d times: %s", it->attempts,
                     db_errstr(rt->db));
            item_reject(it, rt->st->queue, &why);
            item_set_state(it, ITEM_COMMITTED);
            continue;
        }
        obs_retried(rt->obs);
        if (rt_give_up(rt))
            return LL_ESTATE;
        rt_backoff(rt);
    }
}

/* --- publishing ------------------------------------------------------------ */

/* Publishes a copy of the original delivery, headers kept, plus `extra`. */
static int rt_republish(rt_t *rt, const item_t *it, const char *exchange, const char *key,
                        const mq_header_t *extra, size_t nextra)
{
    const amqp_basic_properties_t *p = &it->d.env.message.properties;
    amqp_table_entry_t entries[64];
    int n = 0;
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG)
        for (int i = 0; i < p->headers.num_entries && n < 48; i++) {
            const amqp_table_entry_t *e = &p->headers.entries[i];
            bool ours = false;
            for (size_t j = 0; j < nextra; j++)
                ours |= e->key.len == strlen(extra[j].key) &&
                        memcmp(e->key.bytes, extra[j].key, e->key.len) == 0;
            if (!ours)
                entries[n++] = *e;
        }
    for (size_t j = 0; j < nextra; j++, n++) {
        entries[n].key = amqp_cstring_bytes(extra[j].key);
        entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[n].value.value.bytes = amqp_cstring_bytes(extra[j].str);
    }
    amqp_table_t headers = {.num_entries = n, .entries = entries};
    char mid[256] = "", type[128] = "";
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        snprintf(mid, sizeof mid, "%.*s", (int)p->message_id.len, (char *)p->message_id.bytes);
    if (p->_flags & AMQP_BASIC_TYPE_FLAG)
        snprintf(type, sizeof type, "%.*s", (int)p->type.len, (char *)p->type.bytes);
    mq_props_t props = {.message_id = mid[0] ? mid : NULL,
                        .type = type[0] ? type : NULL,
                        .raw_headers = &headers,
                        .timestamp_s = clock_now_ms() / 1000};
    return mq_publish(rt->out, exchange, key, it->d.body, it->d.len, &props, false);
}

/* Publishes an event (signed when the stage installed a keyring), with the
 * producer's request time passed on when known (requested_ms > 0). */
static int rt_publish_event(rt_t *rt, const char *exchange, const char *rk, const char *event_id,
                            const char *body, int64_t requested_ms)
{
    char sig[SIGN_MAX];
    mq_header_t h[2];
    size_t nh = 0;
    mq_props_t props = {.message_id = event_id, .type = rk, .timestamp_s = clock_now_ms() / 1000};
    if (rt->sign) {
        sign_body(rt->sign, body, strlen(body), sig);
        h[nh++] = (mq_header_t){SIGN_HEADER, sig, 0};
    }
    if (requested_ms > 0)
        h[nh++] = (mq_header_t){RT_REQUESTED_AT, NULL, requested_ms};
    props.headers = nh ? h : NULL;
    props.nheaders = nh;
    return mq_publish(rt->out, exchange, rk, body, strlen(body), &props, false);
}

static int rt_publish_item(rt_t *rt, item_t *it)
{
    int rc = LL_OK;
    if (it->ev_body)
        rc = rt_publish_event(rt, OUTBOX_EXCHANGE, it->ev_rk, it->ev_id, it->ev_body,
                              it->requested_ms);
    if (rc == LL_OK && it->park) {
        /* what `ledgerctl dlq` lists and replays by (docs/operations.md) */
        char at[MSG_TIME_LEN + 1], ex[256], rk[256];
        const amqp_envelope_t *e = &it->d.env;
        msg_format_time(clock_now_ms(), at);
        snprintf(ex, sizeof ex, "%.*s", (int)e->exchange.len, (const char *)e->exchange.bytes);
        snprintf(rk, sizeof rk, "%.*s", (int)e->routing_key.len,
                 (const char *)e->routing_key.bytes);
        mq_header_t h[] = {{"x-ledgerline-reason", msg_reason_str(it->why.reason), 0},
                           {"x-ledgerline-detail", it->why.detail, 0},
                           {"x-ledgerline-queue", rt->st->queue, 0},
                           {"x-ledgerline-worker", rt->instance, 0},
                           {"x-ledgerline-parked-at", at, 0},
                           {"x-ledgerline-exchange", ex, 0},
                           {"x-ledgerline-routing-key", rk, 0},
                           {STAGE_TYPE_HEADER, it->dec ? it->dec->type : NULL, 0}};
        rc = rt_republish(rt, it, "ledgerline.dead", rt->st->queue, h, it->dec ? 8 : 7);
    }
    if (rc == LL_OK && it->defer) {
        char key[128];
        snprintf(key, sizeof key, "%s.1s", rt->st->queue);
        mq_header_t h[] = {{"x-ledgerline-deferred-by", rt->instance, 0},
                           {STAGE_TYPE_HEADER, it->dec ? it->dec->type : NULL, 0}};
        rc = rt_republish(rt, it, "ledgerline.retry", key, h, it->dec ? 2 : 1);
    }
    return rc;
}

/* Publishes the events, parked and deferred copies of every COMMITTED item
 * and waits for the confirms; on any fault reconnects and publishes them
 * all again (consumers dedupe by event_id). LL_OK or LL_ESTATE. */
static int rt_publish(rt_t *rt)
{
    batch_t *b = &rt->batch;
    int64_t t0 = clock_mono_us();
    for (;;) {
        int rc = LL_OK;
        for (size_t i = 0; i < b->n && rc == LL_OK; i++)
            if (b->items[i].state == ITEM_COMMITTED)
                rc = rt_publish_item(rt, &b->items[i]);
        if (rc == LL_OK)
            rc = mq_confirm_wait(rt->out, (int)rt->cfg.amqp.confirm_timeout_ms, NULL);
        if (rc == LL_OK)
            break;
        log_warnx((&(log_ctx_t){.queue = rt->st->queue, .err = mq_errstr(rt->out)}),
                  "publishing the batch's events failed (%s): publishing again", ll_errname(rc));
        if (rc != LL_ENACK)
            mq_close(rt->out);
        if (rt_give_up(rt))
            return LL_ESTATE;
        rt_backoff(rt);
        if (rt_ensure_up(rt, false) != LL_OK)
            return LL_ESTATE;
    }
    size_t events = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == ITEM_COMMITTED) {
            item_set_state(&b->items[i], ITEM_PUBLISHED);
            events += b->items[i].ev_body != NULL;
        }
    obs_confirm(rt->obs, (double)(clock_mono_us() - t0) / 1e6);
    obs_published(rt->obs, events);
    return LL_OK;
}

/* Adds an outbox id to the sent marks (see rt_t.marks). */
static void rt_mark(rt_t *rt, int64_t id)
{
    if (rt->nmarks == RT_MARKS_MAX)
        return; /* PostgreSQL long gone: the sweep republishes the rest */
    if (rt->nmarks == rt->capmarks) {
        rt->capmarks = rt->capmarks ? rt->capmarks * 2 : 256;
        rt->marks = ll_xrealloc(rt->marks, rt->capmarks * sizeof *rt->marks);
    }
    rt->marks[rt->nmarks++] = id;
    if (!rt->marks_at)
        rt->marks_at = clock_mono_ms();
}

/* After the confirms: the batch's events are sent; their pending marks go
 * with the next batch's transaction (see rt_t.marks). */
static void rt_mark_sent(rt_t *rt)
{
    batch_t *b = &rt->batch;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].outbox_id > 0)
            rt_mark(rt, b->items[i].outbox_id);
}

/* The marks no batch carried: in a transaction of their own. */
static void rt_flush_marks(rt_t *rt)
{
    if (!rt->nmarks || !db_is_up(rt->db))
        return;
    if (outbox_mark_sent(rt->db, rt->marks, rt->nmarks) != LL_OK) {
        log_warnx((&(log_ctx_t){.err = db_errstr(rt->db)}),
                  "could not mark %zu outbox event(s) sent: trying again", rt->nmarks);
        return;
    }
    rt->nmarks = 0;
    rt->marks_at = 0;
}

/* --- one batch ------------------------------------------------------------- */

static void rt_process(rt_t *rt)
{
    batch_t *b = &rt->batch;
    const stage_t *st = rt->st;
    int64_t t0 = clock_mono_us();
    obs_batch(rt->obs, b->n);
    for (size_t i = 0; i < b->n; i++) {
        item_t *it = &b->items[i];
        if (stage_decode(st, rt->verify, it) == LL_OK) {
            item_set_state(it, ITEM_DECODED);
        } else {
            item_reject(it, st->queue, &it->why);
            item_set_state(it, ITEM_COMMITTED);
        }
    }
    crash_point("after_decode");
    idem_claim(rt->kv, rt->scope, rt->instance, b->items, b->n, rt->cfg.worker.inflight_ttl_ms);
    if (rt_commit(rt, b->items, b->n) != LL_OK)
        goto abandon;
    crash_point("after_commit");
    if (rt_publish(rt) != LL_OK)
        goto abandon;
    crash_point("after_publish");
    rt_mark_sent(rt);
    idem_done(rt->kv, rt->scope, b->items, b->n, rt->cfg.worker.done_ttl_s * 1000);
    uint64_t last = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].d.tag > last)
            last = b->items[i].d.tag;
    if (mq_ack(rt->in, last, true) != LL_OK) {
        /* the broker redelivers them; their replays are idempotent */
        log_warnx((&(log_ctx_t){.queue = st->queue, .err = mq_errstr(rt->in)}),
                  "ack of %zu message(s) failed: they will be redelivered and replayed", b->n);
        rt->consuming = false;
    } else {
        for (size_t i = 0; i < b->n; i++)
            item_set_state(&b->items[i], ITEM_ACKED);
        rt->done += (long long)b->n;
        obs_batch_done(rt->obs, b->items, b->n);
    }
    crash_point("after_ack");
    log_debugx((&(log_ctx_t){.queue = st->queue,
                             .count = (long long)b->n,
                             .has_count = true,
                             .duration_ms = (double)(clock_mono_us() - t0) / 1000.0,
                             .has_duration = true}),
               "batch of %zu done", b->n);
    rt_release_all(rt);
    return;
abandon:
    /* Nothing of this batch may be acked by a later one (acks are multiple):
     * closing the consumer returns every unacked message to the queue. */
    log_warnx((&(log_ctx_t){.queue = st->queue}),
              "%s: abandoning a batch of %zu unacked message(s); closing the consumer so they "
              "return to the queue",
              rt_stopping(rt) ? "shutdown deadline passed" : "cannot finish the batch", b->n);
    mq_close(rt->in);
    rt->consuming = false;
    rt_release_all(rt);
}

/* --- the stage's keyrings and state ------------------------------------------ */

static const char *rt_keys_file(const rt_t *rt, stage_keys_t k)
{
    switch (k) {
    case STAGE_KEYS_REQUESTS:
        return rt->cfg.signing.request_keys_file;
    case STAGE_KEYS_APPROVALS:
        return rt->cfg.signing.approval_keys_file;
    case STAGE_KEYS_NONE:
        break;
    }
    return "";
}

static const char *rt_keys_setting(stage_keys_t k)
{
    return k == STAGE_KEYS_REQUESTS ? "signing.request_keys_file" : "signing.approval_keys_file";
}

/* Says what goes unsigned. Unsigned approvals let anyone who may publish
 * on ledgerline.events post money without risk: an error (it needs a
 * human) unless signing.allow_unsigned says it is on purpose. */
static void rt_say_unsigned(const rt_t *rt)
{
    const stage_t *st = rt->st;
    bool approvals = (st->verify == STAGE_KEYS_APPROVALS && !rt->verify) ||
                     (st->sign == STAGE_KEYS_APPROVALS && !rt->sign);
    if (approvals && !rt->cfg.signing.allow_unsigned)
        log_error("APPROVALS ARE UNSIGNED: signing.approval_keys_file is not set, so anyone "
                  "who may publish on ledgerline.events can post payments that skipped risk. "
                  "Fix: `ledgerctl keys generate --out FILE`, then set "
                  "signing.approval_keys_file=FILE on every risk and payment worker (or set "
                  "signing.allow_unsigned=true to run unsigned on purpose)");
    else if (approvals)
        log_info("approvals are unsigned on purpose (signing.allow_unsigned)");
    if (st->verify == STAGE_KEYS_REQUESTS && !rt->verify)
        log_info("%s is not set: producers' signatures are not checked",
                 rt_keys_setting(st->verify));
}

/* Loads the stage's keyrings, then runs its init(): at start and on
 * SIGHUP. All or nothing: if a keyring or init() fails, what was in use
 * stays (init() keeps its state on failure). */
static int rt_load(rt_t *rt)
{
    const stage_t *st = rt->st;
    sign_keyring_t *k[2] = {NULL, NULL};
    const stage_keys_t which[2] = {st->verify, st->sign};
    char err[512];
    for (int i = 0; i < 2; i++) {
        const char *file = rt_keys_file(rt, which[i]);
        if (file && *file && sign_load(file, &k[i], err, sizeof err) != LL_OK) {
            log_error("signing: %s", err);
            sign_free(k[0]);
            return LL_ECONFIG;
        }
    }
    if (st->init && st->init(&rt->cfg) != LL_OK) {
        sign_free(k[0]);
        sign_free(k[1]);
        return LL_ECONFIG;
    }
    sign_free(rt->verify);
    sign_free(rt->sign);
    rt->verify = k[0];
    rt->sign = k[1];
    rt_say_unsigned(rt);
    return LL_OK;
}

/* The endpoints' address must be a literal the worker can bind (the port
 * itself is only tried at start: a running worker holds it). */
static int rt_check_http(const rt_t *rt)
{
    unsigned char a[16];
    if (rt->cfg.http.port == 0 || inet_pton(AF_INET, rt->cfg.http.address, a) == 1 ||
        inet_pton(AF_INET6, rt->cfg.http.address, a) == 1)
        return LL_OK;
    log_error("http.address '%s' is not an IPv4 or IPv6 address: use 127.0.0.1, or 0.0.0.0 in "
              "a container (or set http.port to 0 to turn the endpoints off)",
              rt->cfg.http.address);
    return LL_ECONFIG;
}

/* --- the periodic tick ----------------------------------------------------- */

static void rt_sweep(rt_t *rt, int64_t age_ms)
{
    outbox_row_t *rows;
    size_t n;
    if (!db_is_up(rt->db) || !mq_is_up(rt->out))
        return;
    if (outbox_claim(rt->db, rt->st->name, rt->instance, age_ms, RT_SWEEP_LIMIT, &rows, &n) !=
        LL_OK) {
        log_warnx((&(log_ctx_t){.err = db_errstr(rt->db)}), "outbox sweep failed");
        return;
    }
    if (n == 0) {
        outbox_rows_free(rows, n);
        return;
    }
    int rc = LL_OK;
    for (size_t i = 0; i < n && rc == LL_OK; i++)
        rc = rt_publish_event(rt, rows[i].exchange, rows[i].routing_key, rows[i].event_id,
                              rows[i].body, 0);
    if (rc == LL_OK)
        rc = mq_confirm_wait(rt->out, (int)rt->cfg.amqp.confirm_timeout_ms, NULL);
    if (rc == LL_OK) {
        obs_published(rt->obs, n);
        int64_t *ids = ll_xcalloc(n, sizeof *ids);
        for (size_t i = 0; i < n; i++)
            ids[i] = rows[i].id;
        if (outbox_mark_sent(rt->db, ids, n) == LL_OK && age_ms > 0)
            log_infox((&(log_ctx_t){.count = (long long)n, .has_count = true}),
                      "outbox sweep republished %zu event(s) a crash left unsent", n);
        free(ids);
    } else {
        log_warnx((&(log_ctx_t){.err = mq_errstr(rt->out)}),
                  "outbox sweep could not publish: the rows stay claimed until their lease "
                  "expires");
        if (rc != LL_ENACK)
            mq_close(rt->out);
    }
    outbox_rows_free(rows, n);
}

/* The stage's tick job, then the events it committed: published with
 * confirms at once and marked sent. If they cannot be published now they
 * stay pending, and the sweep publishes them later. */
static void rt_tick_job(rt_t *rt)
{
    tick_env_t *env = &rt->tick;
    env->db = rt->db;
    env->kv = rt->kv;
    env->instance = rt->instance;
    env->scope = rt->scope;
    env->stage = rt->st->name;
    env->cfg = &rt->cfg;
    rt->st->tick(env);
    if (env->nevents == 0)
        return;
    int rc = mq_is_up(rt->out) ? LL_OK : LL_ECONN;
    for (size_t i = 0; i < env->nevents && rc == LL_OK; i++)
        rc = rt_publish_event(rt, OUTBOX_EXCHANGE, env->events[i].routing_key,
                              env->events[i].event_id, env->events[i].body, 0);
    if (rc == LL_OK)
        rc = mq_confirm_wait(rt->out, (int)rt->cfg.amqp.confirm_timeout_ms, NULL);
    if (rc == LL_OK) {
        obs_published(rt->obs, env->nevents);
        for (size_t i = 0; i < env->nevents; i++)
            rt_mark(rt, env->events[i].outbox_id);
    } else {
        log_warnx((&(log_ctx_t){.err = mq_errstr(rt->out)}),
                  "could not publish %zu event(s) of the tick job now: the outbox sweep will",
                  env->nevents);
        if (rc != LL_ENACK && rc != LL_ECONN)
            mq_close(rt->out);
    }
    tick_events_clear(env);
}

/* The retention job (retention.h): partitions ahead, expiry. Every worker
 * runs it; the one that gets its lock does the work. */
static void rt_retention(rt_t *rt)
{
    retention_report_t rep;
    if (retention_run(rt->db, &rt->cfg, &rep) != LL_OK) {
        log_warnx((&(log_ctx_t){.err = db_errstr(rt->db)}),
                  "retention job failed: it runs again in retention.tick_interval_s");
        return;
    }
    if (rep.created)
        log_info("retention: created %d partition(s) ahead in processed and outbox", rep.created);
}

/* The retention job when it is due: at start, before the first batch (a
 * worker that starts after every worker was stopped for longer than
 * retention.ahead_s finds no partition of now), then every
 * retention.tick_interval_s. */
static void rt_retention_tick(rt_t *rt, int64_t now)
{
    if (now < rt->next_retention || !db_is_up(rt->db))
        return;
    rt->next_retention = now + rt->cfg.retention.tick_interval_s * 1000;
    rt_retention(rt);
}

static void rt_tick(rt_t *rt)
{
    int64_t now = clock_mono_ms();
    if (rt->nmarks && now - rt->marks_at >= RT_MARKS_FLUSH_MS)
        rt_flush_marks(rt);
    if (rt_hup) {
        rt_hup = 0;
        int rc = rt_load(rt);
        if (rc == LL_OK)
            log_info("SIGHUP: reloaded");
        else
            log_error("SIGHUP: reload failed (%s): keeping the previous state", ll_errname(rc));
    }
    if (mq_is_up(rt->out) && mq_service(rt->out) != LL_OK)
        log_warnx((&(log_ctx_t){.err = mq_errstr(rt->out)}), "publisher connection lost");
    if (rt->st->tick && db_is_up(rt->db))
        rt_tick_job(rt);
    rt_retention_tick(rt, now);
    if (now >= rt->next_sweep) {
        rt->next_sweep = now + rt->cfg.worker.outbox_sweep_interval_ms;
        rt_flush_marks(rt);
        rt_sweep(rt, rt->cfg.worker.outbox_sweep_age_ms);
    }
    obs_tick(rt->obs, rt->db, rt->kv, rt->ledger);
    if (now >= rt->next_stats) {
        if (rt->next_stats && rt->done > rt->done_at_stats)
            log_infox((&(log_ctx_t){.queue = rt->st->queue,
                                    .count = rt->done - rt->done_at_stats,
                                    .has_count = true,
                                    .duration_ms = RT_STATS_PERIOD_MS,
                                    .has_duration = true}),
                      "processed %lld message(s) in the last %d s (%lld in all)",
                      rt->done - rt->done_at_stats, RT_STATS_PERIOD_MS / 1000, rt->done);
        rt->done_at_stats = rt->done;
        rt->next_stats = now + RT_STATS_PERIOD_MS;
    }
}

/* --- main ------------------------------------------------------------------ */

static int usage(const stage_t *st, FILE *out, int rc)
{
    fprintf(out,
            "usage: %s [--config FILE] [--check-config]\n"
            "  Consumes queue '%s'. Settings come from FILE (or LEDGERLINE_CONFIG) and\n"
            "  LEDGERLINE_* variables; `ledgerctl config reference` lists them.\n"
            "  --check-config  load and validate everything the worker loads at start (the\n"
            "                  settings, key files, the stage's rules and files, the\n"
            "                  endpoints' address), print the effective configuration\n"
            "                  (secrets masked) and exit 0; or name the problem, exit 1\n"
            "  Endpoints: /healthz, /readyz, /metrics on http.address:http.port (default\n"
            "  port %d for this kind; 0 turns them off). docs/operations.md has the rest.\n",
            st->worker, st->queue, st->http_port);
    return rc;
}

static int rt_run(rt_t *rt)
{
    backoff_init(&rt->bo, 100, 5000, (uint64_t)getpid() ^ (uint64_t)clock_now_ms());
    int rc = rt_ensure_up(rt, true);
    if (rc == LL_ECONFIG)
        return 1;
    while (!rt_stopping(rt)) {
        rt_observe(rt);
        rc = rt_ensure_up(rt, true);
        if (rc == LL_ECONFIG)
            return 1;
        if (rc != LL_OK)
            break;
        if (rt->next_retention == 0)
            rt_retention_tick(rt, clock_mono_ms());
        if (rt_gather(rt) == LL_OK && rt->batch.n > 0)
            rt_process(rt);
        else
            rt_release_all(rt); /* consumer lost: the broker redelivers */
        if (!rt_stopping(rt))   /* no new work (closing, sweeping) once stopping */
            rt_tick(rt);
    }
    rt_observe(rt); /* draining: /readyz says so while the last marks go */
    rt_flush_marks(rt);
    log_infox((&(log_ctx_t){.count = rt->done, .has_count = true}), "stopped after %lld message(s)",
              rt->done);
    return 0;
}

int rt_main(const stage_t *st, int argc, char **argv)
{
    const char *path = getenv("LEDGERLINE_CONFIG");
    bool check = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check-config") == 0)
            check = true;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--version") == 0)
            return printf("%s %s\n", st->worker, LEDGERLINE_VERSION) < 0;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return usage(st, stdout, 0);
        else {
            fprintf(stderr, "%s: unknown argument '%s'\n", st->worker, argv[i]);
            return usage(st, stderr, 2);
        }
    }
    rt_t rt;
    memset(&rt, 0, sizeof rt);
    rt.st = st;
    cfg_error_t err;
    memset(&err, 0, sizeof err);
    if (settings_load(&rt.cfg, path && *path ? path : NULL, &err) != LL_OK) {
        fprintf(stderr, "%s: %s\n", st->worker, err.msg);
        return 2;
    }
    if (rt.cfg.http.port < 0)
        rt.cfg.http.port = st->http_port;
    log_init(st->worker, (log_level_t)rt.cfg.log.level);
    if (check) /* what the worker would log goes to the operator's terminal */
        log_set_output(stderr);
    if (rt.cfg.worker.instance[0]) {
        snprintf(rt.instance, sizeof rt.instance, "%s", rt.cfg.worker.instance);
    } else {
        char host[64] = "";
        gethostname(host, sizeof host - 1);
        snprintf(rt.instance, sizeof rt.instance, "%s:%d", host, (int)getpid());
    }
    log_set_instance(rt.instance);
    /* the same loading as a start: --check-config fails exactly when a
     * start would, before any server is contacted */
    if (rt_load(&rt) != LL_OK || rt_check_http(&rt) != LL_OK) {
        if (check)
            fprintf(stderr, "%s: --check-config: the configuration is not usable (see above)\n",
                    st->worker);
        sign_free(rt.verify);
        sign_free(rt.sign);
        settings_free(&rt.cfg);
        return 1;
    }
    if (check) {
        settings_print(&rt.cfg, stdout);
        sign_free(rt.verify);
        sign_free(rt.sign);
        settings_free(&rt.cfg);
        return 0;
    }
    rt.obs = obs_new(st->name, st->worker, rt.instance, &rt.cfg);
    char herr[512];
    if (obs_listen(rt.obs, (int)rt.cfg.http.port, herr, sizeof herr) != LL_OK) {
        log_error("%s", herr);
        obs_free(rt.obs);
        sign_free(rt.verify);
        sign_free(rt.sign);
        settings_free(&rt.cfg);
        return 1;
    }
    if (obs_port(rt.obs))
        log_info("serving /healthz, /readyz and /metrics on %s:%d", rt.cfg.http.address,
                 obs_port(rt.obs));
    char terr[512];
    if (topo_load_builtin(&rt.topo, terr, sizeof terr) != LL_OK) {
        log_error("%s", terr);
        obs_free(rt.obs);
        settings_free(&rt.cfg);
        return 1;
    }

    rt_alarm_s = (unsigned)((rt.cfg.worker.shutdown_timeout_ms + 999) / 1000) + RT_HARD_STOP_S;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char app[192];
    snprintf(app, sizeof app, "%s %s", st->worker, rt.instance);
    db_opts_t dbo = conn_db_opts(&rt.cfg, app);
    rt.db = db_new(&dbo);
    rt.in = rt_mq_new(&rt, "consumer");
    rt.out = rt_mq_new(&rt, "publisher");
    if (kv_open(&rt.kv, rt.cfg.redis.host, (int)rt.cfg.redis.port, rt.cfg.redis.password,
                (int)rt.cfg.redis.db, (int)rt.cfg.redis.timeout_ms,
                rt.cfg.redis.key_prefix) != LL_OK)
        rt.kv = NULL; /* only the fast path is lost */
    if (rt.kv && !kv_is_up(rt.kv))
        log_warnx((&(log_ctx_t){.err = kv_errstr(rt.kv)}),
                  "Redis unavailable: PostgreSQL decides every duplicate until it is back");
    log_infox((&(log_ctx_t){.queue = st->queue}),
              "starting %s as %s (batches of up to %lld messages / %lld ms)", st->worker,
              rt.instance, rt.cfg.worker.batch_max_messages, rt.cfg.worker.batch_max_wait_ms);

    int rc = rt_run(&rt);

    batch_free(&rt.batch);
    free(rt.marks);
    tick_events_clear(&rt.tick);
    free(rt.tick.events);
    sign_free(rt.verify);
    sign_free(rt.sign);
    obs_free(rt.obs);
    mq_free(rt.in);
    mq_free(rt.out);
    db_free(rt.db);
    kv_free(rt.kv);
    topo_free(rt.topo);
    settings_free(&rt.cfg);
    return rc;
}
