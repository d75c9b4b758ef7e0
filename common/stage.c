/*
 * stage.c - the skeleton every stage shares: see stage.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reject.h"
#include "sbuf.h"
#include "stage.h"
#include "xmalloc.h"

const char *stage_col(const stage_row_t *r, const char *name)
{
    int c = PQfnumber(r->res, name);
    if (c < 0)
        log_panic("the stage's batch function returns no column \"%s\"", name);
    return PQgetvalue(r->res, r->row, c);
}

bool stage_col_is(const stage_row_t *r, const char *name, const char *value)
{
    return strcmp(stage_col(r, name), value) == 0;
}

/* The decoder of a decoded item. */
static const msg_decoder_t *item_decoder(const stage_t *st, const item_t *it)
{
    return it->dec ? it->dec : st->consumes;
}

const msg_payment_t *stage_payment(const stage_t *st, const item_t *it)
{
    const msg_decoder_t *dec = item_decoder(st, it);
    if (dec->payment_offset == MSG_NO_PAYMENT)
        log_panic("stage %s: %s carries no payment", st->name, dec->type);
    return (const msg_payment_t *)((const char *)it->msg + dec->payment_offset);
}

/* The decoder for it's delivery: the stage's one, or the one of its
 * routing key; NULL (it->why set) for a routing key it does not take. */
static const msg_decoder_t *pick_decoder(const stage_t *st, item_t *it)
{
    if (st->consumes)
        return st->consumes;
    /* its routing key; or, for a copy that came back through a retry tier
     * or a replay (routing key = the queue's name), the type the runtime
     * recorded when it deferred or parked it, else its AMQP type */
    const amqp_bytes_t rk = it->d.env.routing_key;
    char hdr[64];
    const char *recorded = mq_delivery_header(&it->d, STAGE_TYPE_HEADER, hdr, sizeof hdr);
    const amqp_basic_properties_t *pr = &it->d.env.message.properties;
    amqp_bytes_t prop = (pr->_flags & AMQP_BASIC_TYPE_FLAG) ? pr->type : (amqp_bytes_t){0, NULL};
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; st->consumes_any[i]; i++) {
            const char *t = st->consumes_any[i]->type;
            size_t tl = strlen(t);
            if ((pass == 0 && rk.len == tl && memcmp(rk.bytes, t, tl) == 0) ||
                (pass == 1 && recorded && strcmp(recorded, t) == 0) ||
                (pass == 2 && prop.len == tl && memcmp(prop.bytes, t, tl) == 0))
                return st->consumes_any[i];
        }
    }
    memset(&it->why, 0, sizeof it->why);
    it->why.reason = MSG_REASON_SCHEMA_VIOLATION;
    char rks[80];
    snprintf(rks, sizeof rks, "%.*s", (int)(rk.len < 64 ? rk.len : 64), (const char *)rk.bytes);
    snprintf(it->why.detail, sizeof it->why.detail,
             "routing key '%s' (and type) is not a message type queue %s takes", rks, st->queue);
    return NULL;
}

/* The key of an item: the decoder's prefix, then id (an id of the
 * checked charset, or "" when unreadable). */
static void set_key(const msg_decoder_t *dec, item_t *it, const char *id)
{
    it->key_skip = strlen(dec->key_prefix);
    if (id[0])
        snprintf(it->key, sizeof it->key, "%s%s", dec->key_prefix, id);
    else
        it->key[0] = '\0';
}

/* An item whose signature or body the stage refused: its key and payment
 * when the body shows them. */
static int undecodable(const msg_decoder_t *dec, item_t *it, int rc)
{
    if (rc == LL_ENOMEM)
        log_panic("out of memory decoding a message");
    char id[MSG_ID_MAX + 1];
    if (msg_peek_id(it->d.body, it->d.len, dec->key_field, id) != LL_OK)
        id[0] = '\0';
    set_key(dec, it, id);
    if (msg_peek_payment_id(it->d.body, it->d.len, it->payment_id) != LL_OK)
        it->payment_id[0] = '\0';
    return LL_EREJECT;
}

static int check_signature(const msg_decoder_t *dec, const sign_keyring_t *keys, item_t *it)
{
    char sig[SIGN_MAX + 16];
    const char *h = mq_delivery_header(&it->d, SIGN_HEADER, sig, sizeof sig);
    memset(&it->why, 0, sizeof it->why);
    if (sign_verify(keys, h, it->d.body, it->d.len, it->why.detail, sizeof it->why.detail) == LL_OK)
        return LL_OK;
    it->why.reason = MSG_REASON_BAD_SIGNATURE;
    return undecodable(dec, it, LL_EREJECT);
}

int stage_decode(const stage_t *st, const sign_keyring_t *verify, item_t *it)
{
    const msg_decoder_t *dec = pick_decoder(st, it);
    if (!dec) {
        if (msg_peek_payment_id(it->d.body, it->d.len, it->payment_id) != LL_OK)
            it->payment_id[0] = '\0';
        return LL_EREJECT;
    }
    it->dec = dec;
    it->key_field = dec->key_field;
    if (verify && check_signature(dec, verify, it) != LL_OK)
        return LL_EREJECT;
    void *msg = ll_xcalloc(1, dec->size);
    int rc = dec->decode(it->d.body, it->d.len, msg, &it->why);
    if (rc != LL_OK) {
        free(msg);
        return undecodable(dec, it, rc);
    }
    it->msg = msg;
    set_key(dec, it, (const char *)msg + dec->key_offset);
    if (dec->payment_id_offset != MSG_NO_PAYMENT)
        snprintf(it->payment_id, sizeof it->payment_id, "%s",
                 (const char *)msg + dec->payment_id_offset);
    else
        it->payment_id[0] = '\0';
    /* for a payment, the hash is msg_payment_hash()'s: of this canonical text */
    it->canonical = dec->canonical(msg);
    if (!it->canonical)
        log_panic("out of memory hashing %s %s", dec->key_field, it->key);
    msg_body_hash(it->canonical, strlen(it->canonical), it->hash);
    return LL_OK;
}

void stage_release(const stage_t *st, item_t *it)
{
    if (it->msg) {
        item_decoder(st, it)->clear(it->msg);
        free(it->msg);
        it->msg = NULL;
    }
}

/* An item the batch function decides: batched, and not rejected before. */
static bool in_batch(const item_t *it)
{
    return it->state == ITEM_BATCHED && it->verdict == VERDICT_NONE;
}

/* Ids, hash and currency are of checked charsets; the payload is JSON
 * text, escaped as a string. */
char *stage_batch_json(const stage_t *st, item_t *items, size_t n, size_t *count)
{
    sbuf_t b;
    sbuf_init(&b, 64 + n * 512);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (!in_batch(it))
            continue;
        sbuf_addc(&b, *count ? ',' : '[');
        sbuf_adds(&b, "{\"key\":");
        sbuf_json_str(&b, it->key);
        sbuf_adds(&b, ",\"hash\":\"");
        sbuf_adds(&b, it->hash);
        sbuf_adds(&b, "\",\"payload\":");
        sbuf_json_str(&b, it->canonical);
        if (item_decoder(st, it)->payment_offset != MSG_NO_PAYMENT) {
            const msg_payment_t *p = stage_payment(st, it);
            sbuf_adds(&b, ",\"payment_id\":");
            sbuf_json_str(&b, p->payment_id);
            sbuf_adds(&b, ",\"payer\":");
            sbuf_json_str(&b, p->payer);
            sbuf_adds(&b, ",\"payee\":");
            sbuf_json_str(&b, p->payee);
            sbuf_adds(&b, ",\"amount\":");
            sbuf_i64(&b, p->amount);
            sbuf_adds(&b, ",\"currency\":");
            sbuf_json_str(&b, p->currency);
        }
        if (st->element)
            st->element(&b, it);
        sbuf_addc(&b, '}');
        (*count)++;
    }
    sbuf_adds(&b, *count ? "]" : "[]");
    return sbuf_take(&b);
}

void stage_new_event(item_t *it, const char *type, char *body, const char *outcome)
{
    if (!body)
        log_panic("cannot encode %s for %s (outcome %s)", type, it->key, outcome);
    char ev_id[MSG_EVENT_ID_LEN + 1];
    msg_event_id(type, it->key + (strlen(it->key) >= it->key_skip ? it->key_skip : 0), ev_id);
    it->verdict = VERDICT_NEW;
    item_set_event(it, ev_id, ll_xstrdup(type), body);
}

size_t stage_split_rules(char *text, const char *out[MSG_RULES_MAX])
{
    size_t n = 0;
    char *p = text, *save = NULL;
    if (*p == '{')
        p++;
    p[strcspn(p, "}")] = '\0';
    for (char *tok = strtok_r(p, ",", &save); tok && n < MSG_RULES_MAX;
         tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

/* The verdicts every stage reads the same way; the rest is the stage's. */
static void decide(const stage_t *st, item_t *it, const stage_row_t *r)
{
    if (stage_col_is(r, "verdict", "conflict")) {
        item_reject_conflict(it, st->queue, stage_col(r, "prior_payload"));
        return;
    }
    if (st->replays && stage_col_is(r, "verdict", "duplicate")) {
        it->verdict = VERDICT_DUPLICATE;
        return;
    }
    st->decide(it, r);
}

#define STAGE_PARAMS_MAX 4

/* Rejects, as duplicate_expired, the batched items whose key was processed
 * before the retention horizon (processed_expired: their record for
 * duplicates is gone, their outcome is in the books): they are never
 * processed again (docs/ledger.md#retention). One query per batch; keys
 * are of checked charsets (no quote, no backslash). */
static int reject_expired(const stage_t *st, db_t *db, item_t *items, size_t n)
{
    sbuf_t b;
    sbuf_init(&b, 3 + n * 40);
    sbuf_addc(&b, '{');
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (in_batch(&items[i]) && items[i].key[0]) {
            sbuf_adds(&b, k++ ? ",\"" : "\"");
            sbuf_adds(&b, items[i].key);
            sbuf_addc(&b, '"');
        }
    sbuf_addc(&b, '}');
    char *keys = sbuf_take(&b);
    if (k == 0) {
        free(keys);
        return LL_OK;
    }
    const char *p[] = {st->name, keys};
    PGresult *r;
    int rc = db_query_prepared(db, &r, "SELECT k FROM processed_expired($1, $2::text[]) k", 2, p);
    free(keys);
    if (rc != LL_OK)
        return rc;
    for (int row = 0; row < PQntuples(r); row++)
        for (size_t i = 0; i < n; i++) {
            item_t *it = &items[i];
            if (!in_batch(it) || strcmp(it->key, PQgetvalue(r, row, 0)) != 0)
                continue;
            const char *field = it->key_field ? it->key_field : "payment_id";
            msg_reject_t why = {.reason = MSG_REASON_DUPLICATE_EXPIRED};
            snprintf(why.field, sizeof why.field, "%s", field);
            snprintf(why.detail, sizeof why.detail,
                     "%s %s was processed before the retention window: its outcome is in the "
                     "books, its event is no longer kept to replay; not processed again",
                     field, it->key + (strlen(it->key) >= it->key_skip ? it->key_skip : 0));
            item_reject(it, st->queue, &why);
        }
    PQclear(r);
    return LL_OK;
}

int stage_apply(const stage_t *st, db_t *db, item_t *items, size_t n)
{
    int rc = reject_expired(st, db, items, n);
    if (rc != LL_OK)
        return rc;
    size_t count;
    char *batch = stage_batch_json(st, items, n, &count);
    if (count == 0) {
        free(batch);
        return LL_OK;
    }
    const char *params[1 + STAGE_PARAMS_MAX] = {batch};
    if (st->nparams > STAGE_PARAMS_MAX)
        log_panic("stage %s: more than %d parameters", st->name, STAGE_PARAMS_MAX);
    if (st->nparams)
        st->params(params + 1);
    PGresult *res;
    rc = db_query_prepared(db, &res, st->apply_sql, 1 + st->nparams, params);
    free(batch);
    if (rc != LL_OK)
        return rc;
    if ((size_t)PQntuples(res) != count) {
        PQclear(res);
        return LL_EDB;
    }
    stage_row_t r = {res, 0};
    for (size_t i = 0; i < n; i++)
        if (in_batch(&items[i])) {
            decide(st, &items[i], &r);
            r.row++;
        }
    PQclear(res);
    return LL_OK;
}
