/*
 * obs.c - a worker's health, metrics and registry record: see obs.h and
 * docs/operations.md (the names there are the contract with dashboards
 * and alerts: change both together).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "obs.h"
#include "xmalloc.h"

#define OBS_SAMPLE_MS   5000  /* outbox backlog sampling and registry writes */
#define OBS_REGISTRY_MS 15000 /* a registry record expires this long after its write */
#define OBS_RATE_MS     10000 /* the registry's rate: acks over this window */
#define OBS_P99_MS      60000 /* the registry's p99: latencies of this window */
#define OBS_LAT_RING    2048

static const char *const dep_names[OBS_NDEPS] = {"postgres", "rabbitmq", "redis"};

static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

struct obs {
    const settings_t *cfg;
    char stage[32], worker[64], instance[128], host[64];
    int64_t started_ms;
    httpd_t *httpd;

    metric_t *consumed, *acked, *rejected, *parked, *retried, *dups, *published, *tx_retries,
        *reconnects, *up, *ready, *progress, *batch, *tx, *confirm, *e2e, *backlog, *oldest, *ahead,
        *overdue;

    /* health: written by the loop, read by the HTTP thread */
    pthread_mutex_t mx;
    int64_t progress_mono; /* clock_mono_ms of the last progress */
    bool is_ready, draining;
    char why[128];

    /* the loop's own */
    bool was_up[OBS_NDEPS], ever_up[OBS_NDEPS];
    int64_t next_sample, next_registry;
    double acked_at_rate; /* acks at the last registry write */
    int64_t rate_at;
    double rate;
    struct {
        int64_t at; /* clock_mono_ms */
        double ms;  /* latency */
    } lat[OBS_LAT_RING];
    size_t nlat; /* written so far (ring index = nlat % OBS_LAT_RING) */
};

obs_t *obs_new(const char *stage, const char *worker, const char *instance, const settings_t *cfg)
{
    obs_t *o = ll_xcalloc(1, sizeof *o);
    o->cfg = cfg;
    snprintf(o->stage, sizeof o->stage, "%s", stage);
    snprintf(o->worker, sizeof o->worker, "%s", worker);
    snprintf(o->instance, sizeof o->instance, "%s", instance);
    gethostname(o->host, sizeof o->host - 1);
    o->started_ms = clock_now_ms();
    o->progress_mono = clock_mono_ms();
    pthread_mutex_init(&o->mx, NULL);
    snprintf(o->why, sizeof o->why, "starting");

    metrics_const_label("stage", stage);
    const double *db = metrics_duration_buckets;
    size_t ndb = metrics_duration_nbuckets;
    metric_t *info =
        metric_new(METRIC_GAUGE, "ledgerline_build_info",
                   "The build: 1, with its version and worker kind.", "version", NULL, 0);
    metric_set(info, LEDGERLINE_VERSION, 1);
    o->consumed = metric_new(METRIC_COUNTER, "ledgerline_messages_consumed_total",
                             "Deliveries taken from the work queue (redeliveries count again).",
                             NULL, NULL, 0);
    o->acked =
        metric_new(METRIC_COUNTER, "ledgerline_messages_acked_total",
                   "Deliveries acked: outcome committed and events confirmed.", NULL, NULL, 0);
    o->rejected =
        metric_new(METRIC_COUNTER, "ledgerline_messages_rejected_total",
                   "Messages the stage could not use, by rejection reason.", "reason", NULL, 0);
    o->parked = metric_new(METRIC_COUNTER, "ledgerline_messages_parked_total",
                           "Copies parked in the stage's dead-letter queue.", NULL, NULL, 0);
    o->retried =
        metric_new(METRIC_COUNTER, "ledgerline_messages_retried_total",
                   "Failed processing attempts to be tried again, and deferrals.", NULL, NULL, 0);
    o->dups = metric_new(METRIC_COUNTER, "ledgerline_duplicates_replayed_total",
                         "Duplicates answered with the stored outcome, by who knew it.", "source",
                         NULL, 0);
    o->published = metric_new(METRIC_COUNTER, "ledgerline_events_published_total",
                              "Events confirmed by the broker.", NULL, NULL, 0);
    o->tx_retries = metric_new(METRIC_COUNTER, "ledgerline_transaction_retries_total",
                               "Batch transactions that failed transiently and were retried.",
                               "cause", NULL, 0);
    o->reconnects =
        metric_new(METRIC_COUNTER, "ledgerline_reconnects_total",
                   "Connections established again after being lost.", "dependency", NULL, 0);
    o->up = metric_new(METRIC_GAUGE, "ledgerline_up", "1 while connected to the dependency.",
                       "dependency", NULL, 0);
    o->ready = metric_new(METRIC_GAUGE, "ledgerline_ready", "What /readyz answers: 1 ready.", NULL,
                          NULL, 0);
    o->progress = metric_new(METRIC_GAUGE, "ledgerline_loop_last_progress_timestamp_seconds",
                             "When the worker loop last made progress.", NULL, NULL, 0);
    o->batch = metric_new(METRIC_HISTOGRAM, "ledgerline_batch_size", "Messages per batch.", NULL,
                          batch_buckets, sizeof batch_buckets / sizeof batch_buckets[0]);
    o->tx = metric_new(METRIC_HISTOGRAM, "ledgerline_transaction_duration_seconds",
                       "A batch's PostgreSQL transaction, BEGIN to COMMIT.", NULL, db, ndb);
    o->confirm = metric_new(METRIC_HISTOGRAM, "ledgerline_publish_confirm_duration_seconds",
                            "Publishing a batch's events until the last confirm.", NULL, db, ndb);
    o->e2e = metric_new(METRIC_HISTOGRAM, "ledgerline_end_to_end_latency_seconds",
                        "The producer's request time to this stage's commit.", NULL, db, ndb);
    o->backlog =
        metric_new(METRIC_GAUGE, "ledgerline_outbox_backlog",
                   "This stage's outbox events not yet confirmed by the broker.", NULL, NULL, 0);
    o->oldest = metric_new(METRIC_GAUGE, "ledgerline_outbox_oldest_age_seconds",
                           "Age of the oldest of them (0 when none).", NULL, NULL, 0);
    o->ahead = metric_new(METRIC_GAUGE, "ledgerline_partitions_ahead_seconds",
                          "Time until the newest partition of processed or outbox ends (inserts "
                          "fail after it).",
                          NULL, NULL, 0);
    o->overdue = metric_new(METRIC_GAUGE, "ledgerline_bookkeeping_overdue_seconds",
                            "How long the oldest partition of processed or outbox has been past "
                            "retention.window_s and still there (0: none; 0 too with "
                            "retention.expire off).",
                            NULL, NULL, 0);

    /* every series a dashboard or alert reads exists from the start, at 0 */
    metric_t *unlabelled[] = {o->consumed, o->acked,   o->parked, o->retried, o->published,
                              o->ready,    o->backlog, o->oldest, o->ahead,   o->overdue};
    for (size_t i = 0; i < sizeof unlabelled / sizeof unlabelled[0]; i++)
        metric_add(unlabelled[i], NULL, 0);
    /* histograms too (all buckets 0): rate() then sees their first sample */
    metric_t *hists[] = {o->batch, o->tx, o->confirm, o->e2e};
    for (size_t i = 0; i < sizeof hists / sizeof hists[0]; i++)
        metric_add(hists[i], NULL, 0);
    for (int r = 0; r < MSG_REASON_COUNT; r++)
        metric_add(o->rejected, msg_reason_str((msg_reason_t)r), 0);
    metric_add(o->dups, "redis", 0);
    metric_add(o->dups, "postgres", 0);
    static const char *const causes[] = {"deadlock", "serialization", "connection", "timeout"};
    for (size_t i = 0; i < 4; i++)
        metric_add(o->tx_retries, causes[i], 0);
    for (int d = 0; d < OBS_NDEPS; d++) {
        metric_add(o->reconnects, dep_names[d], 0);
        metric_set(o->up, dep_names[d], 0);
    }
    metric_set(o->progress, NULL, (double)o->started_ms / 1000.0);
    return o;
}

/* --- endpoints ------------------------------------------------------------ */

static void serve(void *ud, const char *path, httpd_reply_t *r)
{
    obs_t *o = ud;
    if (strcmp(path, "/metrics") == 0) {
        r->content_type = "text/plain; version=0.0.4; charset=utf-8";
        r->body = metrics_render();
        return;
    }
    r->content_type = "application/json";
    char buf[512];
    pthread_mutex_lock(&o->mx);
    int64_t age = clock_mono_ms() - o->progress_mono;
    bool ready = o->is_ready;
    char why[128];
    snprintf(why, sizeof why, "%s", o->why);
    pthread_mutex_unlock(&o->mx);
    if (strcmp(path, "/healthz") == 0) {
        bool ok = age <= o->cfg->http.liveness_timeout_ms;
        r->status = ok ? 200 : 503;
        snprintf(buf, sizeof buf, "{\"status\":\"%s\",\"loop_age_ms\":%lld}\n", ok ? "ok" : "stuck",
                 (long long)age);
    } else if (strcmp(path, "/readyz") == 0) {
        r->status = ready ? 200 : 503;
        if (ready)
            snprintf(buf, sizeof buf, "{\"ready\":true}\n");
        else
            snprintf(buf, sizeof buf, "{\"ready\":false,\"why\":\"%s\"}\n", why);
    } else {
        r->status = 404;
        r->content_type = "text/plain; charset=utf-8";
        snprintf(buf, sizeof buf, "not found: try /healthz, /readyz or /metrics\n");
    }
    r->body = ll_xstrdup(buf);
}

int obs_listen(obs_t *o, int port, char *err, size_t errlen)
{
    if (port <= 0)
        return LL_OK;
    return httpd_start(&o->httpd, o->cfg->http.address, port, serve, o, err, errlen);
}

int obs_port(const obs_t *o)
{
    return httpd_port(o->httpd);
}

void obs_free(obs_t *o)
{
    if (!o)
        return;
    httpd_stop(o->httpd);
    pthread_mutex_destroy(&o->mx);
    free(o);
    metrics_reset();
}

/* --- health --------------------------------------------------------------- */

void obs_deps(obs_t *o, const bool up[OBS_NDEPS], bool consuming, bool draining)
{
    char why[128] = "";
    for (int d = 0; d < OBS_NDEPS; d++) {
        if (up[d] && !o->was_up[d] && o->ever_up[d])
            metric_add(o->reconnects, dep_names[d], 1);
        if (up[d])
            o->ever_up[d] = true;
        o->was_up[d] = up[d];
        metric_set(o->up, dep_names[d], up[d]);
        if (!up[d] && !why[0])
            snprintf(why, sizeof why, "%s down", dep_names[d]);
    }
    if (!why[0] && draining)
        snprintf(why, sizeof why, "draining after a stop signal");
    if (!why[0] && !consuming)
        snprintf(why, sizeof why, "not consuming");
    pthread_mutex_lock(&o->mx);
    o->progress_mono = clock_mono_ms();
    o->is_ready = !why[0];
    o->draining = draining;
    snprintf(o->why, sizeof o->why, "%s", why);
    pthread_mutex_unlock(&o->mx);
    metric_set(o->ready, NULL, !why[0]);
}

/* --- what happened ---------------------------------------------------------- */

void obs_consumed(obs_t *o, size_t n)
{
    metric_add(o->consumed, NULL, (double)n);
}

void obs_batch(obs_t *o, size_t n)
{
    metric_observe(o->batch, NULL, (double)n);
}

void obs_batch_done(obs_t *o, const item_t *items, size_t n)
{
    metric_add(o->acked, NULL, (double)n);
    for (size_t i = 0; i < n; i++) {
        const item_t *it = &items[i];
        if (it->verdict == VERDICT_REJECT)
            metric_add(o->rejected, msg_reason_str(it->why.reason), 1);
        if (it->park)
            metric_add(o->parked, NULL, 1);
        if (it->defer)
            metric_add(o->retried, NULL, 1);
        if (it->verdict == VERDICT_DUPLICATE)
            metric_add(o->dups, it->from_redis ? "redis" : "postgres", 1);
    }
}

void obs_tx(obs_t *o, double seconds)
{
    metric_observe(o->tx, NULL, seconds);
}

void obs_tx_retry(obs_t *o, int rc, const char *sqlstate)
{
    const char *cause = "connection";
    if (rc == LL_ETIMEOUT)
        cause = "timeout";
    else if (rc == LL_ERETRY)
        cause = sqlstate && strcmp(sqlstate, "40P01") == 0 ? "deadlock" : "serialization";
    metric_add(o->tx_retries, cause, 1);
}

void obs_retried(obs_t *o)
{
    metric_add(o->retried, NULL, 1);
}

void obs_published(obs_t *o, size_t n)
{
    metric_add(o->published, NULL, (double)n);
}

void obs_confirm(obs_t *o, double seconds)
{
    metric_observe(o->confirm, NULL, seconds);
}

void obs_e2e(obs_t *o, int64_t requested_ms)
{
    if (requested_ms <= 0)
        return;
    double ms = (double)(clock_now_ms() - requested_ms);
    if (ms < 0)
        ms = 0; /* clocks of producer and worker disagree */
    metric_observe(o->e2e, NULL, ms / 1000.0);
    size_t k = o->nlat++ % OBS_LAT_RING;
    o->lat[k].at = clock_mono_ms();
    o->lat[k].ms = ms;
}

/* --- periodic --------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p99 of the latencies of the last OBS_P99_MS; -1 when there are none. */
static double recent_p99(const obs_t *o)
{
    size_t have = o->nlat < OBS_LAT_RING ? o->nlat : OBS_LAT_RING, n = 0;
    double *v = ll_xcalloc(have ? have : 1, sizeof *v);
    int64_t since = clock_mono_ms() - OBS_P99_MS;
    for (size_t i = 0; i < have; i++)
        if (o->lat[i].at >= since)
            v[n++] = o->lat[i].ms;
    double p = -1;
    if (n) {
        qsort(v, n, sizeof *v, cmp_double);
        size_t idx = (size_t)(0.99 * (double)(n - 1) + 0.5);
        p = v[idx];
    }
    free(v);
    return p;
}

/* The outbox backlog of this stage, and the partitions of the bookkeeping
 * (docs/ledger.md#retention): how far ahead they reach, and how long the
 * oldest has outlived retention.window_s. */
static void sample_outbox(obs_t *o, db_t *db)
{
    char window[24];
    snprintf(window, sizeof window, "%lld", o->cfg->retention.window_s);
    const char *params[] = {o->stage, window};
    PGresult *r;
    if (db_query(db, &r,
                 "SELECT o.n, o.age, s.ahead_s, s.overdue_s "
                 "FROM (SELECT count(*) AS n, coalesce(extract(epoch FROM now() - "
                 "min(created_at)), 0) AS age FROM outbox_pending WHERE stage = $1) o "
                 "CROSS JOIN retention_status($2::bigint) s",
                 2, params) != LL_OK)
        return; /* a fault shows at the next batch; the gauges keep their last value */
    metric_set(o->backlog, NULL, atof(PQgetvalue(r, 0, 0)));
    metric_set(o->oldest, NULL, atof(PQgetvalue(r, 0, 1)));
    metric_set(o->ahead, NULL, atof(PQgetvalue(r, 0, 2)));
    metric_set(o->overdue, NULL, o->cfg->retention.expire ? atof(PQgetvalue(r, 0, 3)) : 0);
    PQclear(r);
}

static void write_registry(obs_t *o, kv_t *kv, const char *ledger)
{
    int64_t now = clock_mono_ms();
    double acked = metric_value(o->acked, NULL);
    if (o->rate_at && now - o->rate_at >= OBS_RATE_MS / 2) {
        o->rate = (acked - o->acked_at_rate) * 1000.0 / (double)(now - o->rate_at);
        o->acked_at_rate = acked;
        o->rate_at = now;
    } else if (!o->rate_at) {
        o->acked_at_rate = acked;
        o->rate_at = now;
    }
    char started[MSG_TIME_LEN + 1], updated[MSG_TIME_LEN + 1], errat[MSG_TIME_LEN + 1] = "";
    msg_format_time(o->started_ms, started);
    msg_format_time(clock_now_ms(), updated);
    char lasterr[512] = "";
    long long at = 0;
    if (log_last_problem(lasterr, sizeof lasterr, &at))
        msg_format_time(at, errat);
    char http[160] = "";
    if (o->httpd)
        snprintf(http, sizeof http, "%s:%d", o->cfg->http.address, httpd_port(o->httpd));
    double rejected = 0;
    for (int r = 0; r < MSG_REASON_COUNT; r++)
        rejected += metric_value(o->rejected, msg_reason_str((msg_reason_t)r));
    pthread_mutex_lock(&o->mx);
    bool ready = o->is_ready, draining = o->draining;
    char why[128];
    snprintf(why, sizeof why, "%s", o->why);
    pthread_mutex_unlock(&o->mx);
    double p99 = recent_p99(o);
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:b, s:s, s:b, "
                  "s:{s:b, s:b, s:b}, s:I, s:I, s:I, s:f, s:o, s:s, s:s, s:s, s:s}",
                  "instance", o->instance, "worker", o->worker, "stage", o->stage, "version",
                  LEDGERLINE_VERSION, "pid", (json_int_t)getpid(), "host", o->host, "ledger",
                  ledger, "http", http, "ready", ready, "why", why, "draining", draining, "up",
                  "postgres", o->was_up[OBS_POSTGRES], "rabbitmq", o->was_up[OBS_RABBITMQ], "redis",
                  o->was_up[OBS_REDIS], "consumed", (json_int_t)metric_value(o->consumed, NULL),
                  "acked", (json_int_t)acked, "rejected", (json_int_t)rejected, "rate", o->rate,
                  "p99_ms", p99 < 0 ? json_null() : json_real(p99), "last_error", lasterr,
                  "last_error_at", errat, "started_at", started, "updated_at", updated);
    char *val = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!val)
        return;
    char key[192];
    snprintf(key, sizeof key, "workers:%s", o->instance);
    if (kv_set(kv, key, val, OBS_REGISTRY_MS) != LL_OK)
        log_debugx((&(log_ctx_t){.err = kv_errstr(kv)}), "worker registry write failed");
    free(val);
}

void obs_tick(obs_t *o, db_t *db, kv_t *kv, const char *ledger)
{
    int64_t now = clock_mono_ms();
    if (now >= o->next_sample) {
        o->next_sample = now + OBS_SAMPLE_MS;
        if (db && db_is_up(db))
            sample_outbox(o, db);
    }
    if (now >= o->next_registry) {
        o->next_registry = now + OBS_SAMPLE_MS;
        if (kv) /* also the probe that notices Redis going away while idle */
            write_registry(o, kv, ledger ? ledger : "");
    }
}
