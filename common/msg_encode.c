/*
 * msg_encode.c - the encoding half of the message codec: the bodies of the
 * events Ledgerline publishes, compact JSON with the envelope first. Event
 * ids and times come from msg.c.
 *
 * Public API: see msg_encode.h.
 */
#include "msg_encode.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoders ----------------------------------------------------------- */

/* Builder that remembers the first failure, so encoders read straight. */
typedef struct {
    json_t *o;
    bool bad;
} msg_builder_t;

/* Steals v (NULL -> failure). */
static void msg_set(msg_builder_t *b, const char *key, json_t *v)
{
    if (json_object_set_new(b->o, key, v) != 0)
        b->bad = true;
}

static void msg_set_time(msg_builder_t *b, const char *key, int64_t ms)
{
    char t[MSG_TIME_LEN + 1];
    msg_format_time(ms, t);
    msg_set(b, key, json_string(t));
}

/* event_id, type, [payment_id], occurred_at */
static msg_builder_t msg_begin(const char *type, const char *key, const char *payment_id,
                               int64_t occurred_ms)
{
    msg_builder_t b = {json_object(), false};
    if (!b.o) {
        b.bad = true;
        return b;
    }
    char id[MSG_EVENT_ID_LEN + 1];
    msg_event_id(type, key, id);
    msg_set(&b, "event_id", json_string(id));
    msg_set(&b, "type", json_string(type));
    if (payment_id)
        msg_set(&b, "payment_id", json_string(payment_id));
    msg_set_time(&b, "occurred_at", occurred_ms);
    return b;
}

/* The envelope plus the request fields of p (payment_id comes with the
 * envelope). */
static msg_builder_t msg_begin_payment(const char *type, const msg_payment_t *p,
                                       int64_t occurred_ms)
{
    if (!p || !msg_id_valid(p->payment_id, strlen(p->payment_id)))
        return (msg_builder_t){NULL, true};
    msg_builder_t b = msg_begin(type, p->payment_id, p->payment_id, occurred_ms);
    if (b.bad)
        return b;
    msg_set(&b, "payer", json_string(p->payer));
    msg_set(&b, "payee", json_string(p->payee));
    msg_set(&b, "amount", json_integer(p->amount));
    msg_set(&b, "currency", json_string(p->currency));
    if (p->has_description)
        msg_set(&b, "description", json_string(p->description));
    if (p->metadata)
        msg_set(&b, "metadata", json_deep_copy(p->metadata));
    return b;
}

static json_t *msg_rules_array(const char *const *rules, size_t nrules)
{
    if (nrules > MSG_RULES_MAX || (nrules && !rules))
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; a && i < nrules; i++) {
        if (!rules[i] || !msg_id_valid(rules[i], strlen(rules[i])) ||
            json_array_append_new(a, json_string(rules[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Dumps and frees the builder; NULL if anything failed. */
static char *msg_finish(msg_builder_t *b)
{
    char *s = b->bad ? NULL : json_dumps(b->o, JSON_COMPACT);
    json_decref(b->o);
    b->o = NULL;
    return s;
}

char *msg_encode_approved(const msg_payment_t *p, int score, const char *const *rules,
                          size_t nrules, int64_t occurred_ms)
{
    if (score < 0 || score > MSG_SCORE_MAX)
        return NULL;
    msg_builder_t b = msg_begin_payment(MSG_TYPE_APPROVED, p, occurred_ms);
    json_t *risk = b.bad ? NULL : json_object();
    if (risk && (json_object_set_new(risk, "score", json_integer(score)) != 0 ||
                 json_object_set_new(risk, "rules", msg_rules_array(rules, nrules)) != 0)) {
        json_decref(risk);
        risk = NULL;
    }
    if (!b.bad)
        msg_set(&b, "risk", risk);
    return msg_finish(&b);
}

char *msg_encode_declined(const msg_payment_t *p, const char *const *rules, size_t nrules,
                          int64_t occurred_ms)
{
    msg_builder_t b = msg_begin_payment(MSG_TYPE_DECLINED, p, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "reason", json_string(MSG_DECLINE_REASON));
        msg_set(&b, "rules", msg_rules_array(rules, nrules));
    }
    return msg_finish(&b);
}

char *msg_encode_completed(const msg_payment_t *p, const char *transfer_id, int64_t posted_ms,
                           int64_t occurred_ms)
{
    if (!transfer_id || !msg_id_valid(transfer_id, strlen(transfer_id)))
        return NULL;
    msg_builder_t b = msg_begin_payment(MSG_TYPE_COMPLETED, p, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "transfer_id", json_string(transfer_id));
        msg_set_time(&b, "posted_at", posted_ms);
    }
    return msg_finish(&b);
}

char *msg_encode_failed(const msg_payment_t *p, const char *reason, int64_t occurred_ms)
{
    if (!msg_failure_reason_valid(reason))
        return NULL;
    msg_builder_t b = msg_begin_payment(MSG_TYPE_FAILED, p, occurred_ms);
    if (!b.bad)
        msg_set(&b, "reason", json_string(reason));
    return msg_finish(&b);
}

char *msg_encode_batch_closed(const msg_batch_closed_t *bc, int64_t occurred_ms)
{
    if (!bc || !msg_id_valid(bc->batch_id, strlen(bc->batch_id)))
        return NULL;
    msg_builder_t b = msg_begin(MSG_TYPE_BATCH_CLOSED, bc->batch_id, NULL, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "batch_id", json_string(bc->batch_id));
        msg_set(&b, "payee", json_string(bc->payee));
        msg_set(&b, "currency", json_string(bc->currency));
        msg_set_time(&b, "window_start", bc->window_start_ms);
        msg_set_time(&b, "window_end", bc->window_end_ms);
        msg_set(&b, "count", json_integer(bc->count));
        msg_set(&b, "gross", json_integer(bc->gross));
        msg_set(&b, "fees", json_integer(bc->fees));
        msg_set(&b, "refunds", json_integer(bc->refunds));
        msg_set(&b, "refund_count", json_integer(bc->refund_count));
        msg_set(&b, "carried_in", json_integer(bc->carried_in));
        msg_set(&b, "carried_out", json_integer(bc->carried_out));
        msg_set(&b, "net", json_integer(bc->net));
    }
    return msg_finish(&b);
}

/* The envelope and the refund's request fields (reason stays with the
 * request: the events' `reason` is refund.failed's). */
static msg_builder_t msg_begin_refund(const char *type, const msg_refund_t *r, int64_t occurred_ms)
{
    if (!r || !msg_id_valid(r->refund_id, strlen(r->refund_id)) ||
        !msg_id_valid(r->payment_id, strlen(r->payment_id)))
        return (msg_builder_t){NULL, true};
    msg_builder_t b = msg_begin(type, r->refund_id, NULL, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "refund_id", json_string(r->refund_id));
        msg_set(&b, "payment_id", json_string(r->payment_id));
        msg_set(&b, "amount", json_integer(r->amount));
    }
    return b;
}

char *msg_encode_refund_completed(const msg_refund_t *r, const msg_refund_done_t *d,
                                  int64_t occurred_ms)
{
    if (!d || !msg_id_valid(d->transfer_id, strlen(d->transfer_id)) ||
        !msg_id_valid(d->batch_id, strlen(d->batch_id)) || d->refunded_total < 1 ||
        d->remaining < 0)
        return NULL;
    msg_builder_t b = msg_begin_refund(MSG_TYPE_REFUND_COMPLETED, r, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "payer", json_string(d->payer));
        msg_set(&b, "payee", json_string(d->payee));
        msg_set(&b, "currency", json_string(d->currency));
        msg_set(&b, "transfer_id", json_string(d->transfer_id));
        msg_set(&b, "refunded_total", json_integer(d->refunded_total));
        msg_set(&b, "remaining", json_integer(d->remaining));
        msg_set(&b, "batch_id", json_string(d->batch_id));
    }
    return msg_finish(&b);
}

char *msg_encode_refund_failed(const msg_refund_t *r, const char *reason, int64_t occurred_ms)
{
    if (!msg_refund_failure_reason_valid(reason))
        return NULL;
    msg_builder_t b = msg_begin_refund(MSG_TYPE_REFUND_FAILED, r, occurred_ms);
    if (!b.bad)
        msg_set(&b, "reason", json_string(reason));
    return msg_finish(&b);
}

/* The envelope and the fields of a deposit. */
static msg_builder_t msg_begin_deposit(const char *type, const msg_deposit_t *d,
                                       int64_t occurred_ms)
{
    if (!d || !msg_id_valid(d->deposit_id, strlen(d->deposit_id)))
        return (msg_builder_t){NULL, true};
    msg_builder_t b = msg_begin(type, d->deposit_id, NULL, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "deposit_id", json_string(d->deposit_id));
        msg_set(&b, "account", json_string(d->account));
        msg_set(&b, "amount", json_integer(d->amount));
        msg_set(&b, "currency", json_string(d->currency));
        msg_set(&b, "rail", json_string(d->rail));
        msg_set(&b, "rail_reference", json_string(d->rail_reference));
    }
    return b;
}

char *msg_encode_deposit_completed(const msg_deposit_t *d, const char *transfer_id,
                                   int64_t occurred_ms)
{
    if (!transfer_id || !msg_id_valid(transfer_id, strlen(transfer_id)))
        return NULL;
    msg_builder_t b = msg_begin_deposit(MSG_TYPE_DEPOSIT_COMPLETED, d, occurred_ms);
    if (!b.bad)
        msg_set(&b, "transfer_id", json_string(transfer_id));
    return msg_finish(&b);
}

char *msg_encode_deposit_failed(const msg_deposit_t *d, const char *reason, int64_t occurred_ms)
{
    if (!msg_deposit_failure_reason_valid(reason))
        return NULL;
    msg_builder_t b = msg_begin_deposit(MSG_TYPE_DEPOSIT_FAILED, d, occurred_ms);
    if (!b.bad)
        msg_set(&b, "reason", json_string(reason));
    return msg_finish(&b);
}

/* The envelope and the fields of a withdrawal (destination stays with the
 * request). */
static msg_builder_t msg_begin_withdrawal(const char *type, const msg_withdrawal_t *w,
                                          int64_t occurred_ms)
{
    if (!w || !msg_id_valid(w->withdrawal_id, strlen(w->withdrawal_id)))
        return (msg_builder_t){NULL, true};
    msg_builder_t b = msg_begin(type, w->withdrawal_id, NULL, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "withdrawal_id", json_string(w->withdrawal_id));
        msg_set(&b, "account", json_string(w->account));
        msg_set(&b, "amount", json_integer(w->amount));
        msg_set(&b, "currency", json_string(w->currency));
        msg_set(&b, "rail", json_string(w->rail));
    }
    return b;
}

char *msg_encode_withdrawal_completed(const msg_withdrawal_t *w, const char *transfer_id,
                                      int64_t occurred_ms)
{
    if (!transfer_id || !msg_id_valid(transfer_id, strlen(transfer_id)))
        return NULL;
    msg_builder_t b = msg_begin_withdrawal(MSG_TYPE_WITHDRAWAL_COMPLETED, w, occurred_ms);
    if (!b.bad)
        msg_set(&b, "transfer_id", json_string(transfer_id));
    return msg_finish(&b);
}

char *msg_encode_withdrawal_failed(const msg_withdrawal_t *w, const char *reason,
                                   const char *const *rules, size_t nrules, int64_t occurred_ms)
{
    if (!msg_withdrawal_failure_reason_valid(reason))
        return NULL;
    msg_builder_t b = msg_begin_withdrawal(MSG_TYPE_WITHDRAWAL_FAILED, w, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "reason", json_string(reason));
        msg_set(&b, "rules", msg_rules_array(rules, nrules));
    }
    return msg_finish(&b);
}

char *msg_encode_withdrawal_reversed(const msg_return_t *r, const char *account, int64_t amount,
                                     const char *currency, const char *transfer_id,
                                     int64_t occurred_ms)
{
    if (!r || !msg_id_valid(r->withdrawal_id, strlen(r->withdrawal_id)) || !account ||
        !msg_id_valid(account, strlen(account)) || !transfer_id ||
        !msg_id_valid(transfer_id, strlen(transfer_id)) || !currency || amount < 1)
        return NULL;
    msg_builder_t b = msg_begin(MSG_TYPE_WITHDRAWAL_REVERSED, r->withdrawal_id, NULL, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "withdrawal_id", json_string(r->withdrawal_id));
        msg_set(&b, "account", json_string(account));
        msg_set(&b, "amount", json_integer(amount));
        msg_set(&b, "currency", json_string(currency));
        msg_set(&b, "rail_reference", json_string(r->rail_reference));
        msg_set(&b, "transfer_id", json_string(transfer_id));
    }
    return msg_finish(&b);
}

char *msg_encode_rejected(const char *queue, const msg_reject_t *why,
                          const char *payment_id_or_null, const char *key_field, const char *key,
                          const char *event_key, int64_t occurred_ms)
{
    if (!queue || !msg_id_valid(queue, strlen(queue)) || !why || !event_key ||
        (unsigned)why->reason >= MSG_REASON_COUNT)
        return NULL;
    const char *pid = payment_id_or_null;
    if (pid && !msg_id_valid(pid, strlen(pid)))
        pid = NULL;
    /* whatever wrote the detail, the event must be valid UTF-8 */
    char detail[sizeof why->detail];
    msg_text_clean(detail, sizeof detail, why->detail);
    msg_builder_t b = msg_begin(MSG_TYPE_REJECTED, event_key, pid, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "reason", json_string(msg_reason_str(why->reason)));
        msg_set(&b, "detail", json_string(detail));
        msg_set(&b, "queue", json_string(queue));
        if (key_field && key && strcmp(key_field, "payment_id") != 0 &&
            msg_id_valid(key, strlen(key)) &&
            (strcmp(key_field, "refund_id") == 0 || strcmp(key_field, "deposit_id") == 0 ||
             strcmp(key_field, "withdrawal_id") == 0))
            msg_set(&b, key_field, json_string(key));
    }
    return msg_finish(&b);
}
