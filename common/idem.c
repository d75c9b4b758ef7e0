/*
 * idem.c - Redis fast path and in-flight guard: see idem.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idem.h"
#include "log.h"
#include "sbuf.h"
#include "xmalloc.h"

#define IDEM_VAL_MAX (MSG_BODY_MAX * 2 + 256)

/* Keys and values are built at whatever length they need: a cut key could
 * make two payments share one entry, a cut value would replay a cut event. */
static char *idem_key(const char *scope, const char *payment_id)
{
    sbuf_t b;
    sbuf_init(&b, 8 + strlen(scope) + strlen(payment_id));
    sbuf_add(&b, "idem:", 5);
    sbuf_adds(&b, scope);
    sbuf_addc(&b, ':');
    sbuf_adds(&b, payment_id);
    return sbuf_take(&b);
}

/* "<tag>|a|b|...": the fields joined with '|' (none of them may hold one
 * but the last) */
static char *idem_value(char tag, const char *const *f, size_t n)
{
    size_t len = 2;
    for (size_t i = 0; i < n; i++)
        len += strlen(f[i]) + 1;
    sbuf_t b;
    sbuf_init(&b, len);
    sbuf_addc(&b, tag);
    for (size_t i = 0; i < n; i++) {
        sbuf_addc(&b, '|');
        sbuf_adds(&b, f[i]);
    }
    return sbuf_take(&b);
}

/* Parses "D|hash|event_id|rk|body" in place; 1 if it is one. */
static int parse_done(char *v, char **hash, char **ev_id, char **rk, char **body)
{
    if (strncmp(v, "D|", 2) != 0)
        return 0;
    char *f[4];
    char *p = v + 2;
    for (int i = 0; i < 3; i++) {
        f[i] = p;
        p = strchr(p, '|');
        if (!p)
            return 0;
        *p++ = '\0';
    }
    f[3] = p;
    *hash = f[0], *ev_id = f[1], *rk = f[2], *body = f[3];
    return strlen(*ev_id) == MSG_EVENT_ID_LEN && **rk && **body;
}

size_t idem_claim(kv_t *kv, const char *scope, const char *instance, item_t *items, size_t n,
                  int64_t inflight_ttl_ms)
{
    if (!kv || n == 0)
        return 0;
    const char **keys = ll_xcalloc(n, sizeof *keys);
    const char **vals = ll_xcalloc(n, sizeof *vals);
    int *res = ll_xcalloc(n, sizeof *res);
    size_t *idx = ll_xcalloc(n, sizeof *idx);
    size_t m = 0, answered = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].state != ITEM_DECODED)
            continue;
        keys[m] = idem_key(scope, items[i].key);
        vals[m] = idem_value('P', (const char *const[]){items[i].hash, instance}, 2);
        idx[m++] = i;
    }
    if (m == 0 || kv_set_nx_many(kv, m, keys, vals, inflight_ttl_ms, res) != LL_OK)
        goto out; /* Redis down: PostgreSQL decides everything */

    char *v = ll_xmalloc(IDEM_VAL_MAX);
    for (size_t j = 0; j < m; j++) {
        if (res[j] != LL_EEXISTS)
            continue;
        item_t *it = &items[idx[j]];
        if (kv_get(kv, keys[j], v, IDEM_VAL_MAX) != LL_OK)
            continue;
        char *hash, *ev_id, *rk, *body;
        if (parse_done(v, &hash, &ev_id, &rk, &body)) {
            if (strcmp(hash, it->hash) != 0)
                continue; /* a conflict: PostgreSQL has the first payload */
            it->verdict = VERDICT_DUPLICATE;
            it->from_redis = true;
            item_set_event(it, ev_id, ll_xstrdup(rk), ll_xstrdup(body));
            item_set_state(it, ITEM_COMMITTED);
            answered++;
            log_debugx((&(log_ctx_t){.payment_id = it->key}),
                       "duplicate answered from Redis: replaying event %s", ev_id);
            continue;
        }
        if (strncmp(v, "P|", 2) == 0 && !it->d.redelivered) {
            const char *owner = strchr(v + 2, '|');
            if (owner && strcmp(owner + 1, instance) != 0) {
                it->defer = true;
                item_set_state(it, ITEM_COMMITTED);
                answered++;
                log_infox((&(log_ctx_t){.payment_id = it->key}),
                          "in flight in %s: deferred to the retry tier", owner + 1);
            }
        }
    }
    free(v);
out:
    for (size_t j = 0; j < m; j++) {
        free((void *)keys[j]);
        free((void *)vals[j]);
    }
    free(keys);
    free(vals);
    free(res);
    free(idx);
    return answered;
}

void idem_done(kv_t *kv, const char *scope, item_t *items, size_t n, int64_t done_ttl_ms)
{
    if (!kv || !kv_is_up(kv) || n == 0)
        return;
    const char **keys = ll_xcalloc(n, sizeof *keys);
    const char **vals = ll_xcalloc(n, sizeof *vals);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (it->state != ITEM_PUBLISHED || it->key[0] == '\0' || !it->ev_body ||
            it->verdict != VERDICT_NEW)
            continue;
        char *v =
            idem_value('D', (const char *const[]){it->hash, it->ev_id, it->ev_rk, it->ev_body}, 4);
        if (strlen(v) >= IDEM_VAL_MAX) { /* idem_claim could not read it back */
            free(v);
            continue;
        }
        keys[m] = idem_key(scope, it->key);
        vals[m++] = v;
    }
    /* one round trip for the batch; down: the next duplicates go to
     * PostgreSQL */
    if (m > 0 && kv_set_many(kv, m, keys, vals, done_ttl_ms) != LL_OK)
        log_debugx((&(log_ctx_t){.err = kv_errstr(kv)}), "Redis: outcomes not remembered");
    for (size_t j = 0; j < m; j++) {
        free((void *)keys[j]);
        free((void *)vals[j]);
    }
    free(keys);
    free(vals);
}
