/*
 * ll_amqp.c - the broker side of a worker test: see ll_amqp.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "ll_amqp.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg_encode.h"

/* ---- queues --------------------------------------------------------------- */

uint32_t llw_queue_depth(mq_t *m, const char *queue)
{
    uint32_t msgs = 0, consumers = 0;
    int rc = mq_queue_stats(m, queue, &msgs, &consumers);
    LLW_ASSERT(rc == LL_OK, "queue %s: %s", queue, mq_errstr(m));
    return msgs;
}

void llw_purge(mq_t *m, const char *const *queues)
{
    for (size_t i = 0; queues[i]; i++) {
        uint32_t n;
        int rc = mq_purge(m, queues[i], &n);
        ck_assert_msg(rc == LL_OK, "purge %s: %s", queues[i], mq_errstr(m));
    }
}

void llw_assert_queues_empty(mq_t *m, const char *const *queues)
{
    for (size_t i = 0; queues[i]; i++) {
        uint32_t n = llw_queue_depth(m, queues[i]);
        LLW_ASSERT(n == 0, "queue %s holds %u message(s) after the workers stopped", queues[i], n);
    }
}

typedef struct {
    mq_t *m;
    const char *queue;
    uint32_t want;
    int64_t zero_since; /* llw_wait_drained: 0 = not at zero */
} queue_wait_t;

static bool consuming_cond(void *arg, char *status, size_t n)
{
    queue_wait_t *w = arg;
    uint32_t msgs = 0, consumers = 0;
    int rc = mq_queue_stats(w->m, w->queue, &msgs, &consumers);
    snprintf(status, n, "%s: %s, %u consumer(s), %u ready", w->queue, ll_errname(rc), consumers,
             msgs);
    return rc == LL_OK && consumers >= w->want;
}

void llw_wait_consuming(mq_t *m, const char *queue, uint32_t consumers, int timeout_ms)
{
    queue_wait_t w = {m, queue, consumers, 0};
    char what[160];
    snprintf(what, sizeof what, "%u consumer(s) on queue %s", consumers, queue);
    llw_wait_until(consuming_cond, &w, timeout_ms, what);
}

static bool drained_cond(void *arg, char *status, size_t n)
{
    queue_wait_t *w = arg;
    uint32_t msgs = 0, consumers = 0;
    int rc = mq_queue_stats(w->m, w->queue, &msgs, &consumers);
    snprintf(status, n, "%s: %s, %u ready, %u consumer(s)", w->queue, ll_errname(rc), msgs,
             consumers);
    if (rc != LL_OK || msgs != 0) {
        w->zero_since = 0;
        return false;
    }
    int64_t now = llw_now_ms();
    if (w->zero_since == 0)
        w->zero_since = now;
    return now - w->zero_since >= 300;
}

void llw_wait_drained(mq_t *m, const char *queue, int timeout_ms)
{
    queue_wait_t w = {m, queue, 0, 0};
    char what[160];
    snprintf(what, sizeof what, "queue %s to stay empty for 300 ms", queue);
    llw_wait_until(drained_cond, &w, timeout_ms, what);
}

/* ---- publishing and reading messages -------------------------------------- */

void llw_publish_raw(mq_t *m, const char *exchange, const char *rk, const char *message_id,
                     const char *type, const void *body, size_t len)
{
    mq_props_t props = {
        .message_id = message_id,
        .type = type,
        .content_type = "application/json",
    };
    int rc = mq_publish(m, exchange, rk, body, len, &props, true);
    ck_assert_msg(rc == LL_OK, "publish to %s/%s: %s", exchange, rk, mq_errstr(m));
    /* keep the confirm window bounded */
    if (mq_pending(m) >= 256)
        llw_confirm(m);
}

char *llw_publish_approved(mq_t *m, const msg_payment_t *p, int64_t occurred_ms)
{
    char *body = msg_encode_approved(p, 0, NULL, 0, occurred_ms);
    ck_assert_msg(body != NULL, "cannot encode payment.approved for %s", p->payment_id);
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_APPROVED, p->payment_id, MSG_TYPE_APPROVED,
                    body, strlen(body));
    return body;
}

void llw_confirm(mq_t *m)
{
    size_t failed = 0;
    int rc = mq_confirm_wait(m, 30000, &failed);
    ck_assert_msg(rc == LL_OK, "publisher confirms: %s (%zu failed): %s", ll_errname(rc), failed,
                  mq_errstr(m));
}

static json_t *bytes_json(amqp_bytes_t b)
{
    return json_stringn_nocheck(b.bytes ? (const char *)b.bytes : "", b.len);
}

/* The message of d as {"routing_key", "message_id", "type", "body",
 * "headers"}. */
static json_t *delivery_json(const mq_delivery_t *d)
{
    const amqp_basic_properties_t *p = &d->env.message.properties;
    json_t *o = json_object();
    json_object_set_new(o, "routing_key", bytes_json(d->env.routing_key));
    json_object_set_new(o, "message_id",
                        (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? bytes_json(p->message_id)
                                                                 : json_null());
    json_object_set_new(o, "type",
                        (p->_flags & AMQP_BASIC_TYPE_FLAG) ? bytes_json(p->type) : json_null());
    json_object_set_new(o, "body", json_stringn_nocheck(d->body ? d->body : "", d->len));
    json_t *h = mq_table_json((p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL);
    json_object_set_new(o, "headers", h);
    /* bodies are kept byte for byte, valid UTF-8 or not: compare them, never
     * dump them as JSON (header strings are mq_table_json's: valid UTF-8) */
    return o;
}

json_t *llw_queue_drain(mq_t *m, const char *queue)
{
    json_t *all = json_array();
    for (;;) {
        mq_delivery_t d;
        bool empty = false;
        int rc = mq_get(m, queue, &d, &empty);
        ck_assert_msg(rc == LL_OK, "basic.get on %s: %s", queue, mq_errstr(m));
        if (empty)
            return all;
        json_array_append_new(all, delivery_json(&d));
        rc = mq_ack(m, d.tag, false);
        mq_delivery_clear(&d);
        ck_assert_msg(rc == LL_OK, "ack on %s: %s", queue, mq_errstr(m));
    }
}

const char *llw_header(const json_t *msg, const char *name)
{
    return json_string_value(json_object_get(json_object_get(msg, "headers"), name));
}

/* ---- event taps ------------------------------------------------------------ */

struct llw_events {
    mq_t *m;
    char queue[96];
    char key[128];
    json_t *all;
};

static int events_declare(llw_events_t *ev)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-expires"),
                            .value = {.kind = AMQP_FIELD_KIND_I32, .value = {.i32 = 600000}}};
    amqp_table_t args = {.num_entries = 1, .entries = &e};
    int rc = mq_declare_queue(ev->m, ev->queue, &args);
    if (rc == LL_OK)
        rc = mq_bind(ev->m, ev->queue, "ledgerline.events", ev->key);
    return rc;
}

llw_events_t *llw_events_open(const char *binding_key)
{
    static int seq;
    llw_events_t *ev = calloc(1, sizeof *ev);
    ck_assert(ev != NULL);
    snprintf(ev->queue, sizeof ev->queue, "llt.events.%d.%d", (int)getpid(), ++seq);
    snprintf(ev->key, sizeof ev->key, "%s", binding_key ? binding_key : "#");
    ev->all = json_array();
    ev->m = llt_mq();
    int rc = mq_declare_exchange(ev->m, "ledgerline.events", "topic");
    ck_assert_msg(rc == LL_OK, "declare ledgerline.events: %s", mq_errstr(ev->m));
    rc = events_declare(ev);
    ck_assert_msg(rc == LL_OK, "event queue %s: %s", ev->queue, mq_errstr(ev->m));
    uint32_t n;
    rc = mq_purge(ev->m, ev->queue, &n);
    ck_assert_msg(rc == LL_OK, "purge %s: %s", ev->queue, mq_errstr(ev->m));
    return ev;
}

size_t llw_events_collect(llw_events_t *ev)
{
    size_t got = 0;
    for (;;) {
        mq_delivery_t d;
        bool empty = false;
        int rc = mq_get(ev->m, ev->queue, &d, &empty);
        if (rc != LL_OK) {
            /* the broker went away (a restart test): come back next time */
            if (mq_connect(ev->m) == LL_OK && events_declare(ev) != LL_OK)
                mq_close(ev->m);
            return got;
        }
        if (empty)
            return got;
        json_t *o = delivery_json(&d);
        json_error_t err;
        json_t *body = json_loadb(d.body ? d.body : "", d.len, 0, &err);
        json_object_set_new(o, "json", body ? body : json_null());
        json_array_append_new(ev->all, o);
        got++;
        rc = mq_ack(ev->m, d.tag, false);
        mq_delivery_clear(&d);
        if (rc != LL_OK)
            return got;
    }
}

json_t *llw_events_all(llw_events_t *ev)
{
    return ev->all;
}

static bool event_matches(json_t *o, const char *rk, const char *payment_id)
{
    if (rk && strcmp(json_string_value(json_object_get(o, "routing_key")), rk) != 0)
        return false;
    if (payment_id) {
        const char *p =
            json_string_value(json_object_get(json_object_get(o, "json"), "payment_id"));
        if (!p || strcmp(p, payment_id) != 0)
            return false;
    }
    return true;
}

size_t llw_events_count(llw_events_t *ev, const char *rk, const char *payment_id)
{
    size_t i, n = 0;
    json_t *o;
    json_array_foreach(ev->all, i, o)
    {
        if (event_matches(o, rk, payment_id))
            n++;
    }
    return n;
}

size_t llw_events_distinct(llw_events_t *ev, const char *rk)
{
    json_t *seen = json_object();
    size_t i;
    json_t *o;
    json_array_foreach(ev->all, i, o)
    {
        if (!event_matches(o, rk, NULL))
            continue;
        const char *id = json_string_value(json_object_get(json_object_get(o, "json"), "event_id"));
        if (id)
            json_object_set_new(seen, id, json_true());
    }
    size_t n = json_object_size(seen);
    json_decref(seen);
    return n;
}

json_t *llw_events_find(llw_events_t *ev, const char *rk, const char *payment_id, size_t nth)
{
    size_t i;
    json_t *o;
    json_array_foreach(ev->all, i, o)
    {
        if (event_matches(o, rk, payment_id) && nth-- == 0)
            return o;
    }
    return NULL;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

size_t llw_events_with(llw_events_t *ev, const char *rk, const char *field, const char *id,
                       json_t **first)
{
    llw_events_collect(ev);
    size_t i, n = 0;
    json_t *e;
    *first = NULL;
    json_array_foreach(llw_events_all(ev), i, e)
    {
        const json_t *j = json_object_get(e, "json");
        if (strcmp(jstr(e, "routing_key"), rk) != 0 || !j || strcmp(jstr(j, field), id) != 0)
            continue;
        if (!*first)
            *first = e;
        else
            LLW_ASSERT(strcmp(jstr(e, "body"), jstr(*first, "body")) == 0,
                       "%s of %s published twice with other bytes:\n  %s\n  %s", rk, id,
                       jstr(*first, "body"), jstr(e, "body"));
        n++;
    }
    return n;
}

void llw_events_close(llw_events_t *ev)
{
    if (!ev)
        return;
    if (mq_is_up(ev->m) || mq_connect(ev->m) == LL_OK) {
        if (mq_delete_queue(ev->m, ev->queue) != LL_OK)
            fprintf(stderr, "cannot delete %s: %s\n", ev->queue, mq_errstr(ev->m));
    }
    mq_free(ev->m);
    json_decref(ev->all);
    free(ev);
}

typedef struct {
    llw_events_t *ev;
    const char *rk, *payment_id;
    size_t n;
} count_wait_t;

/* The other outcome of the same message: what a wait for `rk` of one
 * payment fails at once on. NULL: none. */
static const char *other_outcome(const char *rk)
{
    static const char *const pairs[][2] = {
        {MSG_TYPE_APPROVED, MSG_TYPE_DECLINED},
        {MSG_TYPE_COMPLETED, MSG_TYPE_FAILED},
        {MSG_TYPE_REFUND_COMPLETED, MSG_TYPE_REFUND_FAILED},
        {MSG_TYPE_DEPOSIT_COMPLETED, MSG_TYPE_DEPOSIT_FAILED},
        {MSG_TYPE_WITHDRAWAL_COMPLETED, MSG_TYPE_WITHDRAWAL_FAILED},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        for (int k = 0; k < 2; k++)
            if (strcmp(rk, pairs[i][k]) == 0)
                return pairs[i][1 - k];
    return NULL;
}

static bool count_cond(void *arg, char *status, size_t n)
{
    const count_wait_t *w = arg;
    llw_events_collect(w->ev);
    const char *other = w->payment_id ? other_outcome(w->rk) : NULL;
    json_t *wrong = other ? llw_events_find(w->ev, other, w->payment_id, 0) : NULL;
    if (wrong) {
        llw_dump_logs();
        ck_abort_msg("waiting for %s of %s, %s came instead (an outcome is final): %s", w->rk,
                     w->payment_id, other, json_string_value(json_object_get(wrong, "body")));
    }
    size_t have = llw_events_count(w->ev, w->rk, w->payment_id);
    snprintf(status, n, "%zu of %zu %s event(s) for %s", have, w->n, w->rk,
             w->payment_id ? w->payment_id : "any payment");
    return have >= w->n;
}

void llw_wait_events(llw_events_t *ev, const char *rk, const char *payment_id, size_t n,
                     int timeout_ms)
{
    count_wait_t w = {ev, rk, payment_id, n};
    char what[256];
    snprintf(what, sizeof what, "%zu %s event(s) for %s", n, rk,
             payment_id ? payment_id : "any payment");
    llw_wait_until(count_cond, &w, timeout_ms, what);
}
