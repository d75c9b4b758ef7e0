/*
 * payment.c - the payment stage's callbacks: see payment.h.
 *
 * apply() sends, in one pipeline: a lock of every account the batch
 * touches, in sorted-id order (so concurrent workers never deadlock on
 * each other's accounts), then one payment_apply() per payment in queue
 * order, so the outcome equals one-at-a-time processing. Then it reads all
 * results and encodes each outcome event.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "payment.h"
#include "xmalloc.h"

static int payment_decode(item_t *it)
{
    msg_approved_t *a = ll_xcalloc(1, sizeof *a);
    int rc = msg_approved_decode(it->d.body, it->d.len, a, &it->why);
    if (rc != LL_OK) {
        free(a);
        if (msg_peek_payment_id(it->d.body, it->d.len, it->payment_id) != LL_OK)
            it->payment_id[0] = '\0';
        if (rc == LL_ENOMEM)
            log_panic("out of memory decoding a message");
        return LL_EREJECT;
    }
    it->msg = a;
    snprintf(it->payment_id, sizeof it->payment_id, "%s", a->payment.payment_id);
    it->canonical = msg_payment_canonical(&a->payment);
    if (!it->canonical || msg_payment_hash(&a->payment, it->hash) != LL_OK)
        log_panic("out of memory hashing payment %s", it->payment_id);
    return LL_OK;
}

static void payment_release(item_t *it)
{
    if (it->msg) {
        msg_approved_clear(it->msg);
        free(it->msg);
        it->msg = NULL;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "{a,b,c}": the sorted, distinct accounts of the batch (ids need no quoting:
 * their charset has no comma, brace, quote or backslash). */
static char *account_array(item_t *items, size_t n)
{
    const char **ids = ll_xcalloc(2 * n + 1, sizeof *ids);
    size_t k = 0, len = 3;
    for (size_t i = 0; i < n; i++) {
        if (items[i].state != ITEM_BATCHED)
            continue;
        const msg_approved_t *a = items[i].msg;
        ids[k++] = a->payment.payer;
        ids[k++] = a->payment.payee;
    }
    qsort(ids, k, sizeof *ids, cmp_str);
    for (size_t i = 0; i < k; i++)
        len += strlen(ids[i]) + 1;
    char *arr = ll_xmalloc(len);
    size_t w = 0;
    arr[w++] = '{';
    for (size_t i = 0; i < k; i++) {
        if (i > 0 && strcmp(ids[i], ids[i - 1]) == 0)
            continue;
        w += (size_t)snprintf(arr + w, len - w, "%s%s", w > 1 ? "," : "", ids[i]);
    }
    snprintf(arr + w, len - w, "}");
    free(ids);
    return arr;
}

/* Sets the item's outcome event from payment_apply()'s row. */
static void decide(item_t *it, PGresult *r)
{
    const msg_approved_t *a = it->msg;
    const char *verdict = PQgetvalue(r, 0, 0);
    const char *outcome = PQgetvalue(r, 0, 1);
    if (strcmp(verdict, "duplicate") == 0) {
        it->verdict = VERDICT_DUPLICATE;
        return;
    }
    if (strcmp(verdict, "conflict") == 0) {
        msg_payment_t prior;
        msg_reject_t ignore, why = {.reason = MSG_REASON_IDEMPOTENCY_CONFLICT};
        memset(&prior, 0, sizeof prior);
        const char *pp = PQgetvalue(r, 0, 3);
        char fields[160] = "?";
        if (msg_payment_decode(pp, strlen(pp), &prior, &ignore) == LL_OK) {
            if (msg_payment_diff(&prior, &a->payment, fields, sizeof fields) != LL_OK)
                snprintf(fields, sizeof fields, "?");
            msg_payment_clear(&prior);
        }
        snprintf(why.detail, sizeof why.detail,
                 "payment_id %s was already processed with different values of: %s", it->payment_id,
                 fields);
        snprintf(why.field, sizeof why.field, "payment_id");
        item_reject(it, "payments", &why);
        return;
    }
    int64_t now = clock_now_ms();
    char ev_id[MSG_EVENT_ID_LEN + 1];
    char *body;
    const char *type;
    if (strcmp(outcome, "completed") == 0) {
        type = MSG_TYPE_COMPLETED;
        body = msg_encode_completed(&a->payment, PQgetvalue(r, 0, 2), now, now);
    } else {
        type = MSG_TYPE_FAILED;
        body = msg_encode_failed(&a->payment, outcome, now);
    }
    if (!body)
        log_panic("cannot encode %s for %s (outcome %s)", type, it->payment_id, outcome);
    msg_event_id(type, it->payment_id, ev_id);
    it->verdict = VERDICT_NEW;
    item_set_event(it, ev_id, ll_xstrdup(type), body);
}

static int payment_apply(db_t *db, item_t *items, size_t n)
{
    PGconn *c = db_conn(db);
    if (!c)
        return LL_ECONN;
    int rc = db_pipeline_enter(db);
    if (rc)
        return rc;
    char *accounts = account_array(items, n);
    const char *lp[] = {accounts};
    int ok = PQsendQueryParams(c,
                               "SELECT id FROM accounts WHERE id = ANY($1::text[]) "
                               "ORDER BY id FOR UPDATE",
                               1, NULL, lp, NULL, NULL, 0);
    size_t nq = 1;
    for (size_t i = 0; ok && i < n; i++) {
        item_t *it = &items[i];
        if (it->state != ITEM_BATCHED)
            continue;
        const msg_payment_t *p = &((const msg_approved_t *)it->msg)->payment;
        char amount[24];
        snprintf(amount, sizeof amount, "%" PRId64, p->amount);
        const char *params[] = {p->payment_id, it->hash, it->canonical, p->payer,
                                p->payee,      amount,   p->currency};
        ok = PQsendQueryParams(c,
                               "SELECT verdict, outcome, transfer_id, prior_payload "
                               "FROM payment_apply($1, $2, $3, $4, $5, $6::bigint, $7)",
                               7, NULL, params, NULL, NULL, 0);
        nq++;
    }
    free(accounts);
    if (!ok) {
        int e = db_check(db, NULL);
        return e ? e : LL_ECONN;
    }
    PGresult **res = ll_xcalloc(nq, sizeof *res);
    int got = 0;
    rc = db_pipeline_sync_read(db, res, (int)nq, &got);
    if (rc == LL_OK && (size_t)got != nq)
        rc = LL_EDB;
    size_t k = 1;
    for (size_t i = 0; rc == LL_OK && i < n; i++)
        if (items[i].state == ITEM_BATCHED)
            decide(&items[i], res[k++]);
    for (int i = 0; i < got; i++)
        PQclear(res[i]);
    free(res);
    int rc2 = db_pipeline_exit(db);
    return rc ? rc : rc2;
}

const rt_stage_t payment_stage = {
    .name = "payment",
    .worker = "payment-worker",
    .queue = "payments",
    .decode = payment_decode,
    .release = payment_release,
    .apply = payment_apply,
};
