/*
 * status_gather.c - one round of `ledgerctl status`: the servers
 * (status_servers.c), then what they hold, into the round's document
 * (status.h), each finding that needs a human with its fix:
 *   queues        every queue of the topology: ready and consumers from a
 *                 passive declare (exact and immediate), unacked, rates,
 *                 policy and the oldest message's age from
 *                 /api/queues/<vhost>/<name>;
 *   dead_letters  each dead queue's depth and its letters by reason, from a
 *                 read-only dlq_scan() when it holds at most STATUS_SCAN_MAX;
 *   outbox        unsent events (outbox_pending) per stage, and the oldest;
 *   settlement    held batches and overdue open ones;
 *   workers       the Redis worker registry (docs/operations.md#worker-registry);
 *   consumers     RabbitMQ's consumers of the topology's queues (/api/consumers),
 *                 so workers that cannot reach Redis still show.
 *
 * The oldest message's age: classic queues report head_message_timestamp,
 * the timestamp property of the message at the head, which Ledgerline
 * publishes in seconds. Quorum queues (RabbitMQ 3.10) report no such thing,
 * and reading one (basic.get, or the management UI's "get messages" with
 * requeue) raises its x-delivery-count: done on a work queue, that moves
 * it toward its x-delivery-limit. So a quorum work queue's age is "n/a";
 * a dead queue's comes from the scan (when each letter was parked).
 *
 * Public API: status_round.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "dlq.h"
#include "status.h"
#include "xmalloc.h"

#define STATUS_RESCAN_MS 60000 /* --watch: rescan a dead queue at least this often */

static const char *stage_of_queue(const char *q)
{
    if (strncmp(q, "risk", 4) == 0)
        return "risk";
    if (strncmp(q, "payments", 8) == 0)
        return "payment";
    return "settlement";
}

/* --- queues and dead letters -------------------------------------------------- */

typedef struct scan_acc {
    json_t *reasons;
    size_t n;
    int64_t oldest_ms;
} scan_acc_t;

static int on_letter(void *ud, const dlq_letter_t *l)
{
    scan_acc_t *a = ud;
    json_t *v = json_object_get(a->reasons, l->reason);
    json_object_set_new(a->reasons, l->reason, json_integer(v ? json_integer_value(v) + 1 : 1));
    int64_t at = l->parked_ms;
    const amqp_basic_properties_t *p = &l->d->env.message.properties;
    if (at <= 0 && (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)) /* when it was published */
        at = (int64_t)p->timestamp * 1000;
    if (at > 0 && (a->oldest_ms == 0 || at < a->oldest_ms))
        a->oldest_ms = at;
    a->n++;
    return 0;
}

/* The reasons of dead queue i (depth letters ready), rescanned when the
 * depth changed, or every STATUS_RESCAN_MS under --watch. */
static dead_scan_t *scan_dead(status_t *s, size_t i, long long depth, bool *failed, char *err,
                              size_t errlen)
{
    dead_scan_t *d = &s->dead[i];
    *failed = false;
    int64_t now = clock_mono_ms();
    if (d->depth == depth && now - d->at_ms < STATUS_RESCAN_MS)
        return d;
    scan_acc_t a = {.reasons = json_object()};
    /* a deeper queue is not read at all: a pass that stops early leaves a
     * quorum queue rotated (ops/ledgerctl/dlq.h), which would change the
     * positions `ledgerctl dlq` shows */
    if (depth > 0 && depth <= STATUS_SCAN_MAX) {
        int rc = dlq_scan(s->mq, s->t->q[i].name, STATUS_SCAN_MAX, on_letter, &a, err, errlen);
        if (rc != LL_OK) {
            json_decref(a.reasons);
            *failed = true;
            if (rc == LL_ECONN)
                s->amqp_up = false;
            return NULL;
        }
    }
    json_decref(d->reasons);
    d->reasons = a.reasons;
    d->scanned = a.n;
    d->oldest_ms = a.oldest_ms;
    d->depth = depth;
    d->at_ms = now;
    return d;
}

/* A problem for dead queue q holding depth letters. */
static void need_dead(status_t *s, const char *q, long long depth, const dead_scan_t *d)
{
    char why[512] = "";
    if (d) {
        size_t k = 0;
        const char *reason;
        json_t *v;
        json_object_foreach(d->reasons, reason, v)
        {
            k += (size_t)snprintf(why + k, k < sizeof why ? sizeof why - k : 0, "%s%s %lld",
                                  k ? ", " : "", reason, (long long)json_integer_value(v));
            if (k >= sizeof why)
                break;
        }
    }
    char fix[400];
    snprintf(fix, sizeof fix,
             "see them: ledgerctl dlq list %s; fix what the reasons say, then replay them "
             "(ledgerctl dlq replay %s ...) or purge them (ledgerctl dlq purge %s ...)",
             q, q, q);
    status__need(s, "dead_letters", fix, "%lld dead letter%s in %s%s%s%s", depth,
                 depth == 1 ? "" : "s", q, why[0] ? " (" : "", why, why[0] ? ")" : "");
}

static void queue_age(const topo_queue_t *q, const json_t *mq, long long ready,
                      const dead_scan_t *d, json_t *j)
{
    const char *note = NULL;
    double age = NAN, ts;
    if (ready == 0) {
        note = "empty";
    } else if (q->cls == TOPO_DEAD) {
        if (d && d->oldest_ms > 0)
            age = (double)(clock_now_ms() - d->oldest_ms) / 1000.0;
        else
            note = "no letter says when it was parked";
    } else if (!mq) {
        note = "management API unreachable";
    } else if (status__jnum(mq, "head_message_timestamp", &ts)) {
        age = (double)clock_now_ms() / 1000.0 - ts;
    } else if (strcmp(status__jstr(mq, "type"), "quorum") == 0) {
        note = "quorum queues report no head-message timestamp (RabbitMQ 3.10), and reading one "
               "would raise its delivery count";
    } else {
        note = "the head message has no timestamp property, or is paged out";
    }
    if (!isnan(age))
        json_object_set_new(j, "oldest_age_s", json_real(age < 0 ? 0 : age));
    else
        json_object_set_new(j, "oldest_age_s", json_null());
    if (note)
        json_object_set_new(j, "oldest_age_note", json_string(note));
}

static void check_queues(status_t *s)
{
    json_t *queues = json_array(), *dead = json_array();
    for (size_t i = 0; i < s->t->nq; i++) {
        const topo_queue_t *q = &s->t->q[i];
        json_t *j = json_pack("{s:s, s:s}", "name", q->name, "class", topo_class_name(q->cls));
        long long ready = -1, consumers = -1;
        bool missing = false;
        if (s->amqp_up) {
            uint32_t msgs = 0, cons = 0;
            int rc = mq_queue_stats(s->mq, q->name, &msgs, &cons);
            if (rc == LL_OK) {
                ready = msgs;
                consumers = cons;
            } else if (rc == LL_ENOTFOUND) {
                missing = true;
            } else if (rc == LL_ECONN || rc == LL_ETIMEOUT) {
                s->amqp_up = false;
                status__need(s, "rabbitmq_down", "check the broker (its log) and the network",
                             "RabbitMQ AMQP connection lost during status: %s", mq_errstr(s->mq));
            }
        }
        json_t *mq = NULL;
        if (s->mgmt_up && !missing) {
            char name[256], path[600];
            if (mgmt_escape(q->name, name, sizeof name) == LL_OK) {
                snprintf(path, sizeof path, "/api/queues/%s/%s", s->vhost, name);
                if (mgmt_get(s->mg, path, &mq) == LL_ENOTFOUND)
                    missing = true;
            }
        }
        if (missing) {
            json_object_set_new(j, "missing", json_true());
            status__need(
                s, "queue_missing",
                "declare the topology: ledgerctl topology apply (workers also declare it when "
                "they connect)",
                "queue %s does not exist on vhost %s", q->name, s->c->cfg.amqp.vhost);
            json_array_append_new(queues, j);
            continue;
        }
        double v;
        if (ready < 0 && status__jnum(mq, "messages_ready", &v))
            ready = (long long)v;
        if (consumers < 0 && status__jnum(mq, "consumers", &v))
            consumers = (long long)v;
        json_object_set_new(j, "type", json_string(mq ? status__jstr(mq, "type") : ""));
        json_object_set_new(j, "ready", ready >= 0 ? json_integer(ready) : json_null());
        json_object_set_new(j, "unacked",
                            status__jnum(mq, "messages_unacknowledged", &v)
                                ? json_integer((long long)v)
                                : json_null());
        json_object_set_new(j, "consumers", consumers >= 0 ? json_integer(consumers) : json_null());
        static const char *const rates[][2] = {
            {"publish_rate", "message_stats.publish_details.rate"},
            {"deliver_rate", "message_stats.deliver_get_details.rate"},
            {"ack_rate", "message_stats.ack_details.rate"}};
        for (size_t k = 0; k < 3; k++)
            json_object_set_new(j, rates[k][0],
                                status__jnum(mq, rates[k][1], &v) ? json_real(v)
                                : mq                              ? json_real(0)
                                                                  : json_null());
        const char *pol = mq ? json_string_value(json_object_get(mq, "policy")) : NULL;
        json_object_set_new(j, "policy", pol ? json_string(pol) : json_null());

        dead_scan_t *d = NULL;
        if (q->cls == TOPO_DEAD && ready >= 0) {
            json_t *dj = json_pack("{s:s, s:I}", "queue", q->name, "depth", (json_int_t)ready);
            char err[512] = "";
            bool failed = false;
            if (s->amqp_up)
                d = scan_dead(s, i, ready, &failed, err, sizeof err);
            if (d) {
                json_object_set_new(dj, "scanned", json_integer((json_int_t)d->scanned));
                json_object_set_new(dj, "truncated", json_boolean((long long)d->scanned < ready));
                json_object_set(dj, "reasons", d->reasons);
            } else {
                json_object_set_new(dj, "reasons", json_null());
                json_object_set_new(dj, "error",
                                    json_string(failed ? err : "AMQP down: letters not read"));
            }
            json_array_append_new(dead, dj);
            if (ready > 0)
                need_dead(s, q->name, ready, d);
        }
        queue_age(q, mq, ready, d, j);
        json_decref(mq);
        if (q->cls == TOPO_WORK && ready > 0 && consumers == 0) {
            char fix[300];
            snprintf(fix, sizeof fix,
                     "start %s-workers (ops/workers); if they run, their log or /readyz says "
                     "why they do not consume",
                     stage_of_queue(q->name));
            status__need(s, "no_consumers", fix,
                         "work queue %s holds %lld messages and has no consumer", q->name, ready);
        }
        json_array_append_new(queues, j);
    }
    json_object_set_new(s->doc, "queues", queues);
    json_object_set_new(s->doc, "dead_letters", dead);
}

/* --- PostgreSQL: outbox and settlement batches ------------------------------------ */

static void need_schema(status_t *s)
{
    status__need(s, "schema", "apply the migrations: ledgerctl migrate",
                 "the ledger's tables cannot be read: %s", db_errstr(s->db));
}

static void check_outbox(status_t *s)
{
    if (!s->pg_up) {
        json_object_set_new(s->doc, "outbox", json_null());
        return;
    }
    PGresult *r;
    if (db_query(s->db, &r,
                 "SELECT p.stage, count(*), "
                 "  extract(epoch FROM now() - min(coalesce(o.created_at, p.created_at))) "
                 "FROM outbox_pending p LEFT JOIN outbox o ON o.id = p.id "
                 "GROUP BY p.stage ORDER BY p.stage",
                 0, NULL) != LL_OK) {
        need_schema(s);
        json_object_set_new(s->doc, "outbox", json_null());
        return;
    }
    json_t *stages = json_array();
    long long total = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *stage = PQgetvalue(r, i, 0);
        long long n = atoll(PQgetvalue(r, i, 1));
        double age = atof(PQgetvalue(r, i, 2));
        total += n;
        json_array_append_new(stages, json_pack("{s:s, s:I, s:f}", "stage", stage, "pending",
                                                (json_int_t)n, "oldest_age_s", age));
        if (age > s->outbox_age_s) {
            char fix[400];
            snprintf(fix, sizeof fix,
                     "the %s-workers publish these events after commit, or their sweep within "
                     "worker.outbox_sweep_age_ms: are they running, and is RabbitMQ reachable? "
                     "see their logs",
                     stage);
            status__need(s, "outbox_backlog", fix,
                         "outbox backlog: %lld event%s of stage %s unsent, the oldest for %.0f s "
                         "(threshold %.0f s)",
                         n, n == 1 ? "" : "s", stage, age, s->outbox_age_s);
        }
    }
    PQclear(r);
    json_object_set_new(s->doc, "outbox",
                        json_pack("{s:I, s:f, s:o}", "pending", (json_int_t)total, "threshold_s",
                                  s->outbox_age_s, "stages", stages));
}

/* The bookkeeping's partitions (docs/ledger.md#retention): how far ahead
 * they reach, since when it is kept, and how long its oldest partition has
 * outlived retention.window_s. */
static void check_retention(status_t *s)
{
    if (!s->pg_up) {
        json_object_set_new(s->doc, "retention", json_null());
        return;
    }
    char window[24];
    snprintf(window, sizeof window, "%lld", s->c->cfg.retention.window_s);
    const char *p[] = {window};
    PGresult *r;
    if (db_query(s->db, &r,
                 "SELECT ahead_s, horizon::text, partitions, overdue_s "
                 "FROM retention_status($1::bigint)",
                 1, p) != LL_OK) {
        need_schema(s);
        json_object_set_new(s->doc, "retention", json_null());
        return;
    }
    double ahead = atof(PQgetvalue(r, 0, 0)), overdue = atof(PQgetvalue(r, 0, 3));
    if (!s->c->cfg.retention.expire)
        overdue = 0;
    json_object_set_new(s->doc, "retention",
                        json_pack("{s:f, s:s, s:i, s:f, s:I}", "partitions_ahead_s", ahead,
                                  "kept_since", PQgetvalue(r, 0, 1), "partitions",
                                  atoi(PQgetvalue(r, 0, 2)), "overdue_s", overdue, "window_s",
                                  (json_int_t)s->c->cfg.retention.window_s));
    PQclear(r);
    if (ahead < 3600)
        status__need(s, "partitions_running_out",
                     "start any worker (its retention job creates them) or run `ledgerctl "
                     "migrate`",
                     "the newest partition of processed and outbox ends in %.0f s: after it every "
                     "batch's insert fails",
                     ahead);
    if (overdue > 3600)
        status__need(s, "bookkeeping_not_expiring",
                     "the workers' log says why (\"retention: partition ... kept\"): unsent "
                     "events, retention.archive_first waiting for `ledgerctl archive`, or a "
                     "failing job",
                     "a partition of processed or outbox is %.0f s past retention.window_s",
                     overdue);
}

static void check_batches(status_t *s)
{
    if (!s->pg_up) {
        json_object_set_new(s->doc, "settlement", json_null());
        return;
    }
    char grace[32];
    snprintf(grace, sizeof grace, "%lld", (long long)s->c->cfg.settlement.grace_ms);
    const char *params[] = {grace};
    PGresult *r;
    /* held: a refused close (007_settlement_hold.sql); overdue: open, not
     * held, window ended more than grace + 60 s ago */
    if (db_query(s->db, &r,
                 "SELECT CASE WHEN close_error IS NOT NULL THEN 'held' ELSE 'overdue' END, id, "
                 "  payee, currency, window_end, coalesce(close_error, ''), "
                 "  coalesce(close_retry_at::text, ''), "
                 "  extract(epoch FROM now() - window_end) "
                 "FROM settlement_batches WHERE status = 'open' AND (close_error IS NOT NULL "
                 "  OR window_end < now() - make_interval(secs => $1::bigint / 1000.0 + 60)) "
                 "ORDER BY 1, window_end, id",
                 1, params) != LL_OK) {
        need_schema(s);
        json_object_set_new(s->doc, "settlement", json_null());
        return;
    }
    json_t *held = json_array(), *overdue = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        bool is_held = strcmp(PQgetvalue(r, i, 0), "held") == 0;
        json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:f}", "id", PQgetvalue(r, i, 1), "payee",
                              PQgetvalue(r, i, 2), "currency", PQgetvalue(r, i, 3), "window_end",
                              PQgetvalue(r, i, 4), "window_ended_s_ago", atof(PQgetvalue(r, i, 7)));
        if (is_held) {
            json_object_set_new(b, "close_error", json_string(PQgetvalue(r, i, 5)));
            json_object_set_new(b, "close_retry_at", json_string(PQgetvalue(r, i, 6)));
        }
        json_array_append_new(is_held ? held : overdue, b);
    }
    PQclear(r);
    size_t nh = json_array_size(held), no = json_array_size(overdue);
    if (nh) {
        json_t *b = json_array_get(held, 0);
        status__need(
            s, "batch_held",
            "fix the cause (ledgerctl account unfreeze / fund the payee); the next retry "
            "(close_retry_at) closes it with no further step: ledgerctl settlement show ID",
            "%zu settlement batch%s held: %s (%s %s) close refused: %s", nh, nh == 1 ? "" : "es",
            status__jstr(b, "id"), status__jstr(b, "payee"), status__jstr(b, "currency"),
            status__jstr(b, "close_error"));
    }
    if (no) {
        json_t *b = json_array_get(overdue, 0);
        status__need(
            s, "batch_overdue",
            "settlement-workers close batches: are they running, and do they reach Redis (the "
            "closing lock) and PostgreSQL? see their logs",
            "%zu open settlement batch%s overdue: %s (%s %s) window ended %.0f s ago "
            "(settlement.grace_ms %lld + 60 s)",
            no, no == 1 ? "" : "es", status__jstr(b, "id"), status__jstr(b, "payee"),
            status__jstr(b, "currency"),
            json_number_value(json_object_get(b, "window_ended_s_ago")),
            (long long)s->c->cfg.settlement.grace_ms);
    }
    json_object_set_new(s->doc, "settlement",
                        json_pack("{s:I, s:I, s:o, s:o}", "held_count", (json_int_t)nh,
                                  "overdue_count", (json_int_t)no, "held", held, "overdue",
                                  overdue));
}

/* --- workers: the Redis registry and RabbitMQ's consumers -------------------------- */

/* `<prefix>workers:*` with the prefix's glob characters escaped. */
#define STATUS_WORKERS_MAX 10000 /* registry records read per round */

/* The registry records of this ledger, as kv_each() finds them. */
typedef struct {
    status_t *s;
    json_t **recs;
    size_t n, cap;
    size_t others; /* records of workers of other ledgers sharing this Redis */
} registry_acc_t;

static int on_record(void *ud, const char *key, const char *val)
{
    (void)key;
    registry_acc_t *a = ud;
    json_t *rec = json_loads(val, 0, NULL);
    if (!json_is_object(rec)) {
        json_decref(rec);
        return 0;
    }
    const char *ledger = status__jstr(rec, "ledger");
    if (a->s->ledger[0] && ledger[0] && strcmp(ledger, a->s->ledger) != 0) {
        a->others++;
        json_decref(rec);
        return 0;
    }
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->recs = ll_xrealloc(a->recs, a->cap * sizeof *a->recs);
    }
    a->recs[a->n++] = rec;
    return 0;
}

static int by_instance(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(status__jstr(x, "worker"), status__jstr(y, "worker"));
    return c ? c : strcmp(status__jstr(x, "instance"), status__jstr(y, "instance"));
}

static void check_workers(status_t *s)
{
    if (!s->redis_up) {
        json_object_set_new(s->doc, "workers", json_null());
        return;
    }
    json_t *workers = json_array();
    registry_acc_t a = {.s = s};
    if (kv_each(s->kv, "workers:*", STATUS_WORKERS_MAX, on_record, &a) != LL_OK) {
        status__need(s, "redis_down", "check Redis (its log) and the network",
                     "Redis failed while reading the worker registry: %s", kv_errstr(s->kv));
        s->redis_up = false;
    }
    json_t **recs = a.recs;
    size_t nrec = a.n, others = a.others;
    if (nrec > 1)
        qsort(recs, nrec, sizeof *recs, by_instance);
    for (size_t i = 0; i < nrec; i++) {
        json_t *w = recs[i];
        bool ready = json_is_true(json_object_get(w, "ready"));
        bool draining = json_is_true(json_object_get(w, "draining"));
        if (!ready && !draining) {
            char fix[400];
            const char *http = status__jstr(w, "http");
            snprintf(fix, sizeof fix,
                     "it recovers by itself once what it waits for is back; see its log%s%s%s",
                     http[0] ? " and http://" : "", http, http[0] ? "/readyz" : "");
            status__need(
                s, "worker_not_ready", fix, "worker %s (%s on %s, pid %lld) is not ready: %s",
                status__jstr(w, "instance"), status__jstr(w, "worker"), status__jstr(w, "host"),
                (long long)json_integer_value(json_object_get(w, "pid")),
                status__jstr(w, "why")[0] ? status__jstr(w, "why") : "no reason given");
        }
        json_array_append_new(workers, w);
    }
    free(recs);
    json_object_set_new(s->doc, "workers", workers);
    if (others)
        json_object_set_new(s->doc, "workers_of_other_ledgers", json_integer((json_int_t)others));
}

static void check_consumers(status_t *s)
{
    if (!s->mgmt_up) {
        json_object_set_new(s->doc, "consumers", json_null());
        return;
    }
    char path[300];
    snprintf(path, sizeof path, "/api/consumers/%s", s->vhost);
    json_t *all = NULL;
    if (mgmt_get(s->mg, path, &all) != LL_OK) {
        json_object_set_new(s->doc, "consumers", json_null());
        return;
    }
    /* the consumer list names connections "ip:port -> ip:port"; the name the
     * client gave ("<worker> <instance> <role>") is on the connection */
    json_t *conns = NULL, *names = json_object();
    snprintf(path, sizeof path, "/api/vhosts/%s/connections?columns=name,user_provided_name",
             s->vhost);
    if (mgmt_get(s->mg, path, &conns) == LL_OK) {
        size_t i;
        json_t *c;
        json_array_foreach(conns, i, c)
        {
            const char *given = status__jstr(c, "user_provided_name");
            if (given[0])
                json_object_set_new(names, status__jstr(c, "name"), json_string(given));
        }
    }
    json_decref(conns);
    json_t *list = json_array(), *workers = json_object_get(s->doc, "workers");
    size_t i;
    json_t *c;
    json_array_foreach(all, i, c)
    {
        const char *queue = status__jstr(json_object_get(c, "queue"), "name");
        if (!topo_find_queue(s->t, queue))
            continue;
        json_t *ch = json_object_get(c, "channel_details");
        const char *conn = status__jstr(names, status__jstr(ch, "connection_name"));
        if (!conn[0])
            conn = status__jstr(ch, "connection_name");
        /* a worker's connections are named "<worker> <instance> <role>" */
        const char *instance = "";
        size_t k;
        json_t *w;
        json_array_foreach(workers, k, w)
        {
            const char *inst = status__jstr(w, "instance");
            if (inst[0] && strstr(conn, inst)) {
                instance = inst;
                break;
            }
        }
        char peer[128];
        snprintf(peer, sizeof peer, "%s:%lld", status__jstr(ch, "peer_host"),
                 (long long)json_integer_value(json_object_get(ch, "peer_port")));
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "queue", queue, "connection", conn,
                            "peer", peer, "consumer_tag", status__jstr(c, "consumer_tag"),
                            "prefetch", json_integer_value(json_object_get(c, "prefetch_count")),
                            "registered_as", instance));
    }
    json_decref(all);
    json_decref(names);
    json_object_set_new(s->doc, "consumers", list);
}

/* --- one round ------------------------------------------------------------------------- */

int status_round(status_t *s)
{
    s->doc = json_object();
    s->problems = json_array();
    char now[40];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(s->doc, "at", json_string(now));
    status__servers(s);
    check_queues(s);
    check_outbox(s);
    check_retention(s);
    check_batches(s);
    check_workers(s);
    check_consumers(s);
    json_object_set_new(s->doc, "ok", json_boolean(json_array_size(s->problems) == 0));
    json_object_set(s->doc, "problems", s->problems);
    json_decref(s->problems);
    return json_array_size(s->problems) ? 1 : 0;
}
