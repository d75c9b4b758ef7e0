/*
 * dlq.c - dead letters: see dlq.h.
 *
 * One pass = consume the dead queue without acks and hold every letter
 * until the end: a consumer with prefetch 2,000 (a quorum queue gives no
 * consumer more, prefetch 0 included), and when all consumers are full
 * (no delivery for DLQ_STALL_MS) one more on the same channel, until the
 * depth counted at the start has been delivered. Only the current letter
 * is in memory: a queue of 100,000 letters costs the broker 100,000 unacked
 * messages and this process one bit each (measured: 9 MB whether 1,000 or
 * 20,000 letters, 20,000 listed in 3 s; basic.get, one Raft round trip per
 * letter on a quorum queue, took 30 s for 10,000). Then the consumers are
 * cancelled and every letter not taken is given back with one basic.nack
 * (requeue) each, in queue order. Every receive has a deadline (mq_recv():
 * the delivery and its content).
 *
 * Order and positions, as measured on RabbitMQ 3.10.8:
 *   - a classic queue puts a requeued message back at its original place;
 *   - a quorum queue appends returned messages to its tail, in the order
 *     the returns are applied. The channel's quorum client sends returns
 *     one by one while fewer than 32 are outstanding and gathers the rest
 *     into one command applied in no useful order: 100 letters nacked at
 *     once (one multiple nack, 100 single nacks, or closing the channel)
 *     came back with 34..100 shuffled. So a pass nacks at most
 *     DLQ_RETURN_BATCH at a time and waits until the queue shows them back.
 * Hence a pass always reads to the end of the queue, and afterwards the
 * queue reads the same on both types: a letter keeps its position from one
 * pass to the next as long as no letter in front of it is removed (new
 * letters are appended). tests/integration/test_dlq.c checks it with 40 and
 * 4,500 letters. Not kept: a pass stopped by `max` or by an error before
 * the end leaves, on a quorum queue, the letters it read behind the
 * others; a connection lost mid-pass gives them back in no order; a letter
 * parked while a pass gives letters back may land in front of them; two
 * passes at the same time (two ledgerctl processes, a status during a
 * replay) each see only the letters the other does not hold at that
 * moment.
 *
 * Replays are flushed in windows of at most DLQ_WINDOW republishes of one
 * route: the letters of a window are acked (removed) only when every
 * republish of it is confirmed. A window the broker returns (no queue bound
 * for the route), nacks, or refuses (no such exchange) leaves all its
 * letters in the dead queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "dlq.h"
#include "log.h"
#include "msg.h"
#include "msg_decode.h"
#include "topo.h"
#include "xmalloc.h"

#define DLQ_WINDOW         256
#define DLQ_RECV_MS        3000 /* a letter counted but not delivered: held elsewhere */
#define DLQ_STALL_MS       100  /* no delivery for that long: are the consumers full? */
#define DLQ_PREFETCH       2000 /* per consumer (what a quorum queue gives prefetch 0) */
#define DLQ_RETURN_WAIT_MS 2000 /* for letters given back to show in the queue */
#define DLQ_RETURN_BATCH   24   /* nacks outstanding at most (quorum: < 32) */
#define DLQ_DEAD_EX        "ledgerline.dead"
#define DLQ_DETAIL_MAX     1024

/* --- queues of the topology ---------------------------------------------- */

static topo_t *dlq_topo(char *err, size_t errlen)
{
    static topo_t *t; /* loaded once; ledgerctl is one thread */
    if (!t && topo_load_builtin(&t, err, errlen) != LL_OK)
        t = NULL;
    return t;
}

/* The work queue a dead queue collects for: its binding key on
 * ledgerline.dead (a work queue dead-letters with its own name). */
static const char *dead_work(const topo_queue_t *q)
{
    for (size_t i = 0; i < q->nbinds; i++)
        if (strcmp(q->binds[i].exchange, DLQ_DEAD_EX) == 0)
            return q->binds[i].key;
    return NULL;
}

const char *dlq_valid_queues(void)
{
    static char buf[512];
    if (buf[0])
        return buf;
    char err[256];
    const topo_t *t = dlq_topo(err, sizeof err);
    if (!t)
        return "risk, payments, settlement (or risk.dead, payments.dead, settlement.dead)";
    char work[240] = "", dead[240] = "";
    for (size_t i = 0; i < t->nq; i++) {
        const topo_queue_t *q = &t->q[i];
        const char *w = q->cls == TOPO_DEAD ? dead_work(q) : NULL;
        if (!w)
            continue;
        size_t wl = strlen(work), dl = strlen(dead);
        snprintf(work + wl, sizeof work - wl, "%s%s", wl ? ", " : "", w);
        snprintf(dead + dl, sizeof dead - dl, "%s%s", dl ? ", " : "", q->name);
    }
    snprintf(buf, sizeof buf, "%s (or %s)", work, dead);
    return buf;
}

int dlq_resolve(const char *name, char dead[DLQ_NAME_MAX], char work[DLQ_NAME_MAX], char *err,
                size_t errlen)
{
    const topo_t *t = dlq_topo(err, errlen);
    if (!t)
        return LL_ECONFIG;
    for (size_t i = 0; i < t->nq; i++) {
        const topo_queue_t *q = &t->q[i];
        const char *w = q->cls == TOPO_DEAD ? dead_work(q) : NULL;
        if (!w || (strcmp(name, q->name) != 0 && strcmp(name, w) != 0))
            continue;
        if (dead)
            snprintf(dead, DLQ_NAME_MAX, "%s", q->name);
        if (work)
            snprintf(work, DLQ_NAME_MAX, "%s", w);
        return LL_OK;
    }
    snprintf(err, errlen, "'%s' is not a queue with dead letters; valid: %s", name,
             dlq_valid_queues());
    return LL_ENOTFOUND;
}

/* The route a message for work queue `work` is published with: its first
 * binding (risk <- ledgerline.commands / payment.requested...). */
static bool topo_route(const char *work, const char **ex, const char **rk)
{
    char err[256];
    const topo_t *t = dlq_topo(err, sizeof err);
    const topo_queue_t *q = t ? topo_find_queue(t, work) : NULL;
    if (!q || q->cls != TOPO_WORK || q->nbinds == 0)
        return false;
    *ex = q->binds[0].exchange;
    *rk = q->binds[0].key;
    return true;
}

/* --- reading a letter ---------------------------------------------------- */

typedef struct letter_buf {
    char reason[DLQ_NAME_MAX], queue[DLQ_NAME_MAX], worker[DLQ_NAME_MAX];
    char parked_at[64], exchange[256], routing_key[256], message_id[256];
    char detail[DLQ_DETAIL_MAX];
    char payment_id[MSG_ID_MAX + 1];
} letter_buf_t;

static const amqp_field_value_t *table_get(const amqp_table_t *t, const char *key)
{
    size_t klen = strlen(key);
    for (int i = 0; t && i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len == klen && memcmp(e->key.bytes, key, klen) == 0)
            return &e->value;
    }
    return NULL;
}

/* A string value into buf (truncated to fit); false when absent or not a
 * string. */
static bool value_str(const amqp_field_value_t *v, char *buf, size_t n)
{
    if (!v || (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES))
        return false;
    size_t len = v->value.bytes.len < n - 1 ? v->value.bytes.len : n - 1;
    memcpy(buf, v->value.bytes.bytes, len);
    buf[len] = '\0';
    return true;
}

static bool table_str(const amqp_table_t *t, const char *key, char *buf, size_t n)
{
    return value_str(table_get(t, key), buf, n);
}

static bool value_int(const amqp_field_value_t *v, int64_t *out)
{
    if (!v)
        return false;
    switch (v->kind) {
    case AMQP_FIELD_KIND_TIMESTAMP:
    case AMQP_FIELD_KIND_U64:
        *out = (int64_t)v->value.u64;
        return true;
    case AMQP_FIELD_KIND_I64:
        *out = v->value.i64;
        return true;
    case AMQP_FIELD_KIND_I32:
        *out = v->value.i32;
        return true;
    case AMQP_FIELD_KIND_U32:
        *out = v->value.u32;
        return true;
    default:
        return false;
    }
}

/* The x-death entry that says why the letter left `work`: the first (most
 * recent) entry of that queue, else the first entry. NULL when none. */
static const amqp_table_t *xdeath_entry(const amqp_table_t *h, const char *work)
{
    const amqp_field_value_t *v = table_get(h, "x-death");
    if (!v || v->kind != AMQP_FIELD_KIND_ARRAY)
        return NULL;
    const amqp_table_t *first = NULL;
    char q[DLQ_NAME_MAX];
    for (int i = 0; i < v->value.array.num_entries; i++) {
        const amqp_field_value_t *e = &v->value.array.entries[i];
        if (e->kind != AMQP_FIELD_KIND_TABLE)
            continue;
        if (!first)
            first = &e->value.table;
        if (table_str(&e->value.table, "queue", q, sizeof q) && strcmp(q, work) == 0)
            return &e->value.table;
    }
    return first;
}

/* Fills l (pointing into b and d) from delivery d of the dead queue whose
 * work queue is `work`. */
static void letter_read(dlq_letter_t *l, letter_buf_t *b, const mq_delivery_t *d, const char *work)
{
    memset(l, 0, sizeof *l);
    memset(b, 0, sizeof *b);
    const amqp_table_t *h = mq_delivery_headers(d);
    const amqp_basic_properties_t *p = &d->env.message.properties;
    l->d = d;
    l->body = d->body;
    l->len = d->len;
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        snprintf(b->message_id, sizeof b->message_id, "%.*s", (int)p->message_id.len,
                 (const char *)p->message_id.bytes);
    if (msg_peek_payment_id(d->body, d->len, b->payment_id) != LL_OK)
        b->payment_id[0] = '\0';
    const char *route_from = "";
    if (table_str(h, "x-ledgerline-reason", b->reason, sizeof b->reason)) {
        l->kind = DLQ_PARKED;
        table_str(h, "x-ledgerline-detail", b->detail, sizeof b->detail);
        if (!table_str(h, "x-ledgerline-queue", b->queue, sizeof b->queue))
            snprintf(b->queue, sizeof b->queue, "%s", work);
        table_str(h, "x-ledgerline-worker", b->worker, sizeof b->worker);
        if (table_str(h, "x-ledgerline-parked-at", b->parked_at, sizeof b->parked_at) &&
            msg_parse_time(b->parked_at, &l->parked_ms) != LL_OK)
            l->parked_ms = 0;
        if (table_str(h, "x-ledgerline-exchange", b->exchange, sizeof b->exchange) &&
            table_str(h, "x-ledgerline-routing-key", b->routing_key, sizeof b->routing_key))
            route_from = "headers";
    } else {
        l->kind = DLQ_BROKER;
        const amqp_table_t *x = xdeath_entry(h, work);
        if (!x || !table_str(x, "reason", b->reason, sizeof b->reason))
            snprintf(b->reason, sizeof b->reason, "unknown");
        if (!x || !table_str(x, "queue", b->queue, sizeof b->queue))
            snprintf(b->queue, sizeof b->queue, "%s", work);
        int64_t s;
        if (x && value_int(table_get(x, "time"), &s) && s > 0) {
            l->parked_ms = s * 1000;
            msg_format_time(l->parked_ms, b->parked_at);
        }
        const amqp_field_value_t *keys = x ? table_get(x, "routing-keys") : NULL;
        if (x && table_str(x, "exchange", b->exchange, sizeof b->exchange) && keys &&
            keys->kind == AMQP_FIELD_KIND_ARRAY && keys->value.array.num_entries > 0 &&
            value_str(&keys->value.array.entries[0], b->routing_key, sizeof b->routing_key))
            route_from = "x-death";
    }
    if (!route_from[0]) {
        const char *ex, *rk;
        if (topo_route(b->queue, &ex, &rk) || topo_route(work, &ex, &rk)) {
            snprintf(b->exchange, sizeof b->exchange, "%s", ex);
            snprintf(b->routing_key, sizeof b->routing_key, "%s", rk);
            route_from = "topology";
        } else {
            b->exchange[0] = b->routing_key[0] = '\0';
        }
    }
    l->reason = b->reason;
    l->detail = b->detail;
    l->payment_id = b->payment_id;
    l->queue = b->queue;
    l->worker = b->worker;
    l->parked_at = b->parked_at;
    l->exchange = b->exchange;
    l->routing_key = b->routing_key;
    l->route_from = route_from;
    l->message_id = b->message_id;
}

bool dlq_replay_header_dropped(const char *key, size_t klen)
{
    static const char *const exact[] = {"x-death", "x-delivery-count", NULL};
    static const char *const prefix[] = {"x-ledgerline-", "x-first-death-", "x-last-death-", NULL};
    /* the producer's signature, and the message type a copy routed by its
     * queue's name needs (STAGE_TYPE_HEADER, a queue of several types) */
    static const char *const keep[] = {"x-ledgerline-signature", "x-ledgerline-type", NULL};
    for (size_t i = 0; keep[i]; i++)
        if (klen == strlen(keep[i]) && memcmp(key, keep[i], klen) == 0)
            return false;
    for (size_t i = 0; exact[i]; i++)
        if (klen == strlen(exact[i]) && memcmp(key, exact[i], klen) == 0)
            return true;
    for (size_t i = 0; prefix[i]; i++)
        if (klen >= strlen(prefix[i]) && memcmp(key, prefix[i], strlen(prefix[i])) == 0)
            return true;
    return false;
}

/* --- one pass ------------------------------------------------------------ */

/* Replays published but not confirmed yet: one route, their tags. */
typedef struct window {
    uint64_t tags[DLQ_WINDOW];
    size_t n;
    char exchange[256], routing_key[256];
} window_t;

typedef struct pass {
    mq_t *m;
    const char *queue;
    dlq_take_t *take; /* NULL: a scan */
    window_t *w;
    char *err;
    size_t errlen;
    uint64_t first;      /* delivery tag of the pass's first letter */
    uint64_t next;       /* the tag after its last one (0: none yet) */
    unsigned char *held; /* bit (tag - first): delivered and not acked */
    size_t held_cap;     /* bytes */
    size_t pos;          /* letters delivered so far */
    size_t nheld;        /* of them not acked */
    size_t ncons;        /* consumers started */
    bool visiting;       /* false once the visitor said stop */
    bool blind;          /* give letters back without waiting (wait_depth()) */
    struct letter_buf *buf;
} pass_t;

/* The problem into err (the caller says how to fix it, by the code). */
static int pass_fail(pass_t *ps, int rc, mq_t *which)
{
    snprintf(ps->err, ps->errlen, "dead queue '%s': %s", ps->queue, mq_errstr(which));
    return rc;
}

static void held_set(pass_t *ps, uint64_t tag, bool on)
{
    if (ps->next == 0)
        ps->first = ps->next = tag;
    if (tag < ps->first)
        log_panic("dlq: delivery tag %llu before the pass's first %llu", (unsigned long long)tag,
                  (unsigned long long)ps->first);
    size_t bit = (size_t)(tag - ps->first);
    if (bit / 8 >= ps->held_cap) {
        size_t cap = ps->held_cap ? ps->held_cap * 2 : 1024;
        while (bit / 8 >= cap)
            cap *= 2;
        ps->held = ll_xrealloc(ps->held, cap);
        memset(ps->held + ps->held_cap, 0, cap - ps->held_cap);
        ps->held_cap = cap;
    }
    bool was = (ps->held[bit / 8] >> (bit % 8)) & 1u;
    if (on)
        ps->held[bit / 8] |= (unsigned char)(1u << (bit % 8));
    else
        ps->held[bit / 8] &= (unsigned char)~(1u << (bit % 8));
    ps->nheld = ps->nheld + (on && !was) - (!on && was);
    if (tag >= ps->next)
        ps->next = tag + 1;
}

static bool held_get(const pass_t *ps, uint64_t tag)
{
    size_t bit = (size_t)(tag - ps->first);
    return bit / 8 < ps->held_cap && (ps->held[bit / 8] >> (bit % 8)) & 1u;
}

/* Until the queue holds at least n ready messages. A wait that sees no
 * progress for DLQ_RETURN_WAIT_MS (another reader takes the letters as
 * they come back) ends this and every later wait of the pass. */
static int wait_depth(pass_t *ps, uint32_t n)
{
    uint32_t last = 0;
    int64_t deadline = clock_mono_ms() + DLQ_RETURN_WAIT_MS;
    for (int i = 0; !ps->blind; i++) {
        uint32_t depth = 0;
        int rc = mq_queue_stats(ps->m, ps->queue, &depth, NULL);
        if (rc != LL_OK)
            return rc;
        if (depth >= n)
            return LL_OK;
        if (depth > last) { /* progress: the broker is applying them */
            last = depth;
            deadline = clock_mono_ms() + DLQ_RETURN_WAIT_MS;
        }
        if (clock_mono_ms() >= deadline)
            ps->blind = true;
        struct timespec ts = {0, (i < 20 ? 1 : 20) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return LL_OK;
}

/*
 * Gives back every letter still held, one nack each in queue order, at
 * most DLQ_RETURN_BATCH before the queue shows them back: a quorum queue's
 * client in the channel sends returns one by one while fewer than 32 are
 * outstanding and gathers the rest into one command that returns them in
 * no useful order (measured: letters 34..100 of 100 came back shuffled
 * when nacked all at once, and the same with one multiple nack or by
 * closing the channel). Letters still in the queue (a pass stopped by
 * max) count as a base.
 */
static int held_return(pass_t *ps)
{
    if (!mq_is_up(ps->m))
        return LL_OK; /* the broker has taken them back with the connection */
    uint32_t base = 0, n = 0;
    int rc = mq_queue_stats(ps->m, ps->queue, &base, NULL);
    if (rc != LL_OK)
        return rc;
    for (uint64_t tag = ps->first; tag < ps->next; tag++) {
        if (!held_get(ps, tag))
            continue;
        rc = mq_nack(ps->m, tag, false, true);
        if (rc != LL_OK)
            return rc;
        if (++n % DLQ_RETURN_BATCH == 0 && (rc = wait_depth(ps, base + n)) != LL_OK)
            return rc;
    }
    return n ? wait_depth(ps, base + n) : LL_OK;
}

/* Waits for the window's confirms; acks its letters when all are in. */
static int window_flush(pass_t *ps)
{
    window_t *w = ps->w;
    if (w->n == 0)
        return LL_OK;
    size_t failed = 0;
    int rc = mq_confirm_wait(ps->take->pub, ps->take->confirm_ms, &failed);
    /* nacked, returned (no queue bound), or the channel closed (no such
     * exchange: mq reopens it) */
    if (rc == LL_ENACK || rc == LL_ENOTFOUND || (rc == LL_EPROTO && mq_is_up(ps->take->pub))) {
        ps->take->unroutable += w->n; /* all stay: which ones failed is unknown */
        snprintf(ps->take->refused, sizeof ps->take->refused,
                 "%zu replay(s) to exchange '%s' with key '%s': %s", w->n, w->exchange,
                 w->routing_key, mq_errstr(ps->take->pub));
        w->n = 0;
        return LL_OK;
    }
    if (rc != LL_OK)
        return pass_fail(ps, rc, ps->take->pub);
    for (size_t i = 0; i < w->n; i++) {
        rc = mq_ack(ps->m, w->tags[i], false);
        if (rc != LL_OK)
            return pass_fail(ps, rc, ps->m);
        held_set(ps, w->tags[i], false);
        ps->take->taken++;
    }
    w->n = 0;
    return LL_OK;
}

/* Removes (after republishing, when asked) the letter l. */
static int pass_take(pass_t *ps, const dlq_letter_t *l)
{
    dlq_take_t *t = ps->take;
    if (!t->pub) {
        int rc = mq_ack(ps->m, l->d->tag, false);
        if (rc != LL_OK)
            return pass_fail(ps, rc, ps->m);
        held_set(ps, l->d->tag, false);
        t->taken++;
        return LL_OK;
    }
    if (!l->route_from[0]) {
        t->unroutable++;
        snprintf(t->refused, sizeof t->refused,
                 "letter %zu has no route (its queue '%s' is not a work queue of the topology)",
                 l->position, l->queue);
        return LL_OK;
    }
    window_t *w = ps->w;
    if (w->n > 0 && (w->n == DLQ_WINDOW || strcmp(w->exchange, l->exchange) != 0 ||
                     strcmp(w->routing_key, l->routing_key) != 0)) {
        int rc = window_flush(ps);
        if (rc != LL_OK)
            return rc;
    }
    const amqp_table_t *h = mq_delivery_headers(l->d);
    int n = h ? h->num_entries : 0;
    amqp_table_entry_t *keep = ll_xcalloc((size_t)n + 1, sizeof *keep);
    amqp_table_t kept = {.num_entries = 0, .entries = keep};
    for (int i = 0; i < n; i++)
        if (!dlq_replay_header_dropped(h->entries[i].key.bytes, h->entries[i].key.len))
            keep[kept.num_entries++] = h->entries[i];
    int rc = mq_publish_copy(t->pub, l->exchange, l->routing_key, l->d, &kept, true);
    free(keep);
    if (rc != LL_OK)
        return pass_fail(ps, rc, t->pub);
    if (w->n == 0) {
        snprintf(w->exchange, sizeof w->exchange, "%s", l->exchange);
        snprintf(w->routing_key, sizeof w->routing_key, "%s", l->routing_key);
    }
    w->tags[w->n++] = l->d->tag;
    return LL_OK;
}

/* One delivery of the pass: held until the end; visited (and taken when
 * the visitor says so) while the visitor wants more and within max. */
static int pass_letter(pass_t *ps, mq_delivery_t *d, const char *work, size_t max, dlq_visit_fn *fn,
                       void *ud)
{
    held_set(ps, d->tag, true);
    ps->pos++;
    if (!ps->visiting || (max && ps->pos > max))
        return LL_OK;
    dlq_letter_t l;
    letter_read(&l, ps->buf, d, work);
    l.position = ps->pos;
    if (ps->take)
        ps->take->looked++;
    int v = fn(ud, &l);
    if (v < 0)
        return v;
    if (v == 1 && !ps->take)
        ps->visiting = false;
    int rc = v == 1 && ps->take ? pass_take(ps, &l) : LL_OK;
    if (rc == LL_OK && ps->take && ps->take->pub && mq_keepalive(ps->take->pub) != LL_OK)
        rc = pass_fail(ps, LL_ECONN, ps->take->pub);
    return rc;
}

/* Starts consumer number ps->ncons on the dead queue. */
static int pass_consume(pass_t *ps)
{
    char tag[64];
    snprintf(tag, sizeof tag, "ledgerctl-dlq-%d-%zu", (int)getpid(), ps->ncons);
    int rc = mq_consume_tag(ps->m, ps->queue, DLQ_PREFETCH, tag);
    if (rc == LL_OK)
        ps->ncons++;
    return rc;
}

/* Cancels every consumer of the pass, then takes what they were sent
 * before (held like the rest; visited when rc is still LL_OK). */
static int pass_stop(pass_t *ps, int rc, const char *work, size_t max, dlq_visit_fn *fn, void *ud)
{
    for (size_t i = 0; i < ps->ncons && mq_is_up(ps->m); i++) {
        char tag[64];
        snprintf(tag, sizeof tag, "ledgerctl-dlq-%d-%zu", (int)getpid(), i);
        if (mq_cancel(ps->m, tag) != LL_OK && rc == LL_OK)
            rc = pass_fail(ps, LL_ECONN, ps->m);
    }
    mq_delivery_t d;
    while (mq_is_up(ps->m) && mq_recv(ps->m, &d, 0) == LL_OK) {
        if (rc == LL_OK)
            rc = pass_letter(ps, &d, work, max, fn, ud);
        else
            held_set(ps, d.tag, true);
        mq_delivery_clear(&d);
    }
    return rc;
}

static int pass_run(pass_t *ps, size_t max, dlq_visit_fn *fn, void *ud)
{
    char work[DLQ_NAME_MAX];
    if (dlq_resolve(ps->queue, NULL, work, ps->err, ps->errlen) != LL_OK)
        snprintf(work, sizeof work, "%s", ps->queue); /* a queue outside the topology */
    uint32_t depth = 0;
    int rc = mq_queue_stats(ps->m, ps->queue, &depth, NULL);
    if (rc != LL_OK)
        return pass_fail(ps, rc, ps->m);
    if (depth == 0)
        return LL_OK;
    ps->buf = ll_xmalloc(sizeof *ps->buf);
    ps->visiting = true;
    rc = pass_consume(ps);
    if (rc != LL_OK)
        rc = pass_fail(ps, rc, ps->m);
    int64_t last = clock_mono_ms(); /* of the last delivery */
    while (rc == LL_OK && ps->pos < depth && (!max || ps->pos < max)) {
        mq_delivery_t d;
        rc = mq_recv(ps->m, &d, DLQ_STALL_MS);
        if (rc == LL_ETIMEOUT) {
            rc = LL_OK;
            if (ps->nheld >= ps->ncons * DLQ_PREFETCH) { /* all full: one more */
                if ((rc = pass_consume(ps)) != LL_OK)
                    rc = pass_fail(ps, rc, ps->m);
            } else if (clock_mono_ms() - last > DLQ_RECV_MS) {
                break; /* fewer than counted: someone else holds the rest */
            }
            continue;
        }
        if (rc != LL_OK) {
            rc = pass_fail(ps, rc, ps->m);
            break;
        }
        last = clock_mono_ms();
        rc = pass_letter(ps, &d, work, max, fn, ud);
        mq_delivery_clear(&d);
    }
    rc = pass_stop(ps, rc, work, max, fn, ud);
    free(ps->buf);
    ps->buf = NULL;
    if (rc == LL_OK && ps->take && ps->take->pub)
        rc = window_flush(ps);
    if (held_return(ps) != LL_OK && rc == LL_OK)
        rc = pass_fail(ps, LL_ECONN, ps->m);
    free(ps->held);
    ps->held = NULL;
    return rc;
}

int dlq_scan(mq_t *m, const char *dead_queue, size_t max, dlq_visit_fn *fn, void *ud, char *err,
             size_t errlen)
{
    pass_t ps = {.m = m, .queue = dead_queue, .err = err, .errlen = errlen};
    return pass_run(&ps, max, fn, ud);
}

int dlq_take(mq_t *m, const char *dead_queue, dlq_take_t *t, dlq_visit_fn *pick, void *ud,
             char *err, size_t errlen)
{
    t->taken = t->looked = t->unroutable = 0;
    t->refused[0] = '\0';
    if (t->confirm_ms <= 0)
        t->confirm_ms = 10000;
    window_t *w = ll_xcalloc(1, sizeof *w);
    pass_t ps = {.m = m, .queue = dead_queue, .take = t, .w = w, .err = err, .errlen = errlen};
    int rc = pass_run(&ps, t->max, pick, ud);
    free(w);
    return rc;
}
