/*
 * batch.c - items of a batch and their one state-changing function: see
 * batch.h for the state diagram.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "clock.h"
#include "log.h"
#include "sbuf.h"
#include "sign.h"
#include "xmalloc.h"

static const char *const state_names[] = {
    [ITEM_RECEIVED] = "received",   [ITEM_DECODED] = "decoded",     [ITEM_BATCHED] = "batched",
    [ITEM_COMMITTED] = "committed", [ITEM_PUBLISHED] = "published", [ITEM_ACKED] = "acked",
};

const char *item_state_name(item_state_t s)
{
    return (unsigned)s <= ITEM_ACKED ? state_names[s] : "?";
}

void item_set_state(item_t *it, item_state_t to)
{
    bool ok;
    switch (it->state) {
    case ITEM_RECEIVED:
        ok = to == ITEM_DECODED || to == ITEM_COMMITTED;
        break;
    case ITEM_DECODED:
        ok = to == ITEM_BATCHED || to == ITEM_COMMITTED;
        break;
    case ITEM_BATCHED:
        ok = to == ITEM_COMMITTED || to == ITEM_DECODED;
        break;
    case ITEM_COMMITTED:
        ok = to == ITEM_PUBLISHED;
        break;
    case ITEM_PUBLISHED:
        ok = to == ITEM_ACKED;
        break;
    case ITEM_ACKED:
        ok = false;
        break;
    default:
        log_panic("item %s: unknown state %d", it->payment_id, (int)it->state);
    }
    if (!ok)
        log_panic("item %s: illegal state change %s -> %s", it->payment_id,
                  item_state_name(it->state), item_state_name(to));
    it->state = to;
}

void item_set_event(item_t *it, const char *event_id, char *rk, char *body)
{
    free(it->ev_rk);
    free(it->ev_body);
    snprintf(it->ev_id, sizeof it->ev_id, "%s", event_id);
    it->ev_rk = rk;
    it->ev_body = body;
}

void item_reject(item_t *it, const char *queue, const msg_reject_t *why)
{
    const char *pid = it->payment_id[0] ? it->payment_id : NULL;
    char key[MSG_REJECTED_KEY_MAX], ev_id[MSG_EVENT_ID_LEN + 1];
    if (msg_rejected_key(queue, pid, why->reason, it->d.body, it->d.len, key, sizeof key) != LL_OK)
        log_panic("rejection key does not fit (queue %s)", queue);
    msg_event_id(MSG_TYPE_REJECTED, key, ev_id);
    /* the detail may hold untrusted text (a signature header, a server
     * error): the event, the parked copy's headers and the log get it clean */
    msg_reject_t clean = *why;
    msg_text_clean(clean.field, sizeof clean.field, why->field);
    msg_text_clean(clean.detail, sizeof clean.detail, why->detail);
    why = &clean;
    char *body = msg_encode_rejected(queue, why, pid, key, clock_now_ms());
    if (!body)
        log_panic("cannot encode message.rejected for queue %s", queue);
    it->why = *why;
    it->verdict = VERDICT_REJECT;
    it->park = true;
    item_set_event(it, ev_id, ll_xstrdup(MSG_TYPE_REJECTED), body);
    log_warnx((&(log_ctx_t){.queue = queue, .payment_id = pid}), "rejected (%s): %s",
              msg_reason_str(why->reason), why->detail);
}

void item_reject_conflict(item_t *it, const char *queue, const char *prior,
                          const msg_payment_t *now)
{
    msg_payment_t first;
    msg_reject_t ignore, why = {.reason = MSG_REASON_IDEMPOTENCY_CONFLICT};
    memset(&first, 0, sizeof first);
    char fields[160] = "?";
    if (prior && msg_payment_decode(prior, strlen(prior), &first, &ignore) == LL_OK) {
        if (msg_payment_diff(&first, now, fields, sizeof fields) != LL_OK)
            snprintf(fields, sizeof fields, "?");
        msg_payment_clear(&first);
    }
    snprintf(why.detail, sizeof why.detail,
             "payment_id %s was already processed with different values of: %s", it->payment_id,
             fields);
    snprintf(why.field, sizeof why.field, "payment_id");
    item_reject(it, queue, &why);
}

/* One element of a batch's JSON, opened: {"payment_id":..,"hash":..,
 * "payload":..,"payee":..,"amount":..,"currency":.. (the caller adds its
 * stage's fields and the closing brace). Ids, hash and currency are of
 * checked charsets; the payload is JSON text, escaped as a string. */
void batch_json_open(sbuf_t *b, const item_t *it, const msg_payment_t *p)
{
    sbuf_addc(b, b->len ? ',' : '[');
    sbuf_adds(b, "{\"payment_id\":");
    sbuf_json_str(b, p->payment_id);
    sbuf_adds(b, ",\"hash\":\"");
    sbuf_adds(b, it->hash);
    sbuf_adds(b, "\",\"payload\":");
    sbuf_json_str(b, it->canonical);
    sbuf_adds(b, ",\"payee\":");
    sbuf_json_str(b, p->payee);
    sbuf_adds(b, ",\"amount\":");
    sbuf_i64(b, p->amount);
    sbuf_adds(b, ",\"currency\":");
    sbuf_json_str(b, p->currency);
}

char *batch_requests_json(item_t *items, size_t n, const msg_payment_t *(*pay)(const item_t *),
                          size_t *count)
{
    sbuf_t b;
    sbuf_init(&b, 64 + n * 512);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (it->state != ITEM_BATCHED)
            continue;
        const msg_payment_t *p = pay(it);
        batch_json_open(&b, it, p);
        sbuf_adds(&b, ",\"payer\":");
        sbuf_json_str(&b, p->payer);
        sbuf_addc(&b, '}');
        (*count)++;
    }
    sbuf_adds(&b, *count ? "]" : "[]");
    return sbuf_take(&b);
}

int item_check_signature(item_t *it, const sign_keyring_t *keys)
{
    if (!keys)
        return LL_OK;
    char sig[SIGN_MAX + 16];
    const char *h = mq_delivery_header(&it->d, SIGN_HEADER, sig, sizeof sig);
    msg_reject_t *why = &it->why;
    memset(why, 0, sizeof *why);
    if (sign_verify(keys, h, it->d.body, it->d.len, why->detail, sizeof why->detail) == LL_OK)
        return LL_OK;
    why->reason = MSG_REASON_BAD_SIGNATURE;
    if (msg_peek_payment_id(it->d.body, it->d.len, it->payment_id) != LL_OK)
        it->payment_id[0] = '\0';
    return LL_EREJECT;
}

void item_clear(item_t *it)
{
    mq_delivery_clear(&it->d);
    free(it->canonical);
    free(it->ev_rk);
    free(it->ev_body);
    memset(it, 0, sizeof *it);
}

item_t *batch_add(batch_t *b, mq_delivery_t *d)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->items = ll_xrealloc(b->items, b->cap * sizeof *b->items);
    }
    item_t *it = &b->items[b->n++];
    memset(it, 0, sizeof *it);
    it->d = *d;
    memset(d, 0, sizeof *d);
    it->state = ITEM_RECEIVED;
    return it;
}

void batch_clear(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        item_clear(&b->items[i]);
    b->n = 0;
}

void batch_free(batch_t *b)
{
    batch_clear(b);
    free(b->items);
    b->items = NULL;
    b->cap = 0;
}
