/*
 * outbox.c - the transactional outbox: see outbox.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"
#include "xmalloc.h"

int outbox_write(db_t *db, const char *stage, item_t *items, size_t n)
{
    PGconn *c = db_conn(db);
    if (!c)
        return LL_ECONN;
    int rc = db_pipeline_enter(db);
    if (rc)
        return rc;
    size_t nsent = 0;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (it->state != ITEM_BATCHED)
            continue;
        int ok = 1;
        if (it->verdict == VERDICT_NEW) {
            const char *p[] = {stage,           it->payment_id, it->ev_id,
                               OUTBOX_EXCHANGE, it->ev_rk,      it->ev_body};
            ok = PQsendQueryParams(c,
                                   "INSERT INTO outbox (stage, payment_id, event_id, exchange, "
                                   "routing_key, body) VALUES ($1, $2, $3, $4, $5, $6) "
                                   "RETURNING id, event_id, routing_key, body",
                                   6, NULL, p, NULL, NULL, 0);
        } else if (it->verdict == VERDICT_DUPLICATE) {
            const char *p[] = {stage, it->payment_id};
            ok = PQsendQueryParams(c,
                                   "SELECT id, event_id, routing_key, body FROM outbox "
                                   "WHERE stage = $1 AND payment_id = $2 ORDER BY id LIMIT 1",
                                   2, NULL, p, NULL, NULL, 0);
        } else {
            continue;
        }
        if (!ok) {
            int e = db_check(db, NULL); /* sets errstr; the connection is gone */
            return e ? e : LL_ECONN;
        }
        nsent++;
    }
    PGresult **res = ll_xcalloc(nsent ? nsent : 1, sizeof *res);
    int got = 0;
    rc = db_pipeline_sync_read(db, res, (int)nsent, &got);
    size_t k = 0;
    for (size_t i = 0; rc == LL_OK && i < n; i++) {
        item_t *it = &items[i];
        if (it->state != ITEM_BATCHED ||
            (it->verdict != VERDICT_NEW && it->verdict != VERDICT_DUPLICATE))
            continue;
        PGresult *r = res[k++];
        if (PQntuples(r) != 1) {
            /* processed before but its event is not stored: cannot replay */
            rc = LL_EDB;
            break;
        }
        it->outbox_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        if (it->verdict == VERDICT_DUPLICATE)
            item_set_event(it, PQgetvalue(r, 0, 1), ll_xstrdup(PQgetvalue(r, 0, 2)),
                           ll_xstrdup(PQgetvalue(r, 0, 3)));
    }
    for (int i = 0; i < got; i++)
        PQclear(res[i]);
    free(res);
    int rc2 = db_pipeline_exit(db);
    return rc ? rc : rc2;
}

int outbox_mark_sent(db_t *db, const int64_t *ids, size_t n)
{
    if (n == 0)
        return LL_OK;
    size_t cap = n * 21 + 3;
    char *arr = ll_xmalloc(cap);
    size_t w = 0;
    arr[w++] = '{';
    for (size_t i = 0; i < n; i++)
        w += (size_t)snprintf(arr + w, cap - w, "%s%" PRId64, i ? "," : "", ids[i]);
    snprintf(arr + w, cap - w, "}");
    const char *p[] = {arr};
    PGresult *r;
    int rc = db_query(db, &r,
                      "UPDATE outbox SET sent_at = now(), claimed_by = NULL, claimed_until = NULL "
                      "WHERE id = ANY($1::bigint[]) AND sent_at IS NULL",
                      1, p);
    PQclear(r);
    free(arr);
    return rc;
}

int outbox_claim(db_t *db, const char *instance, int64_t age_ms, int limit, outbox_row_t **rows,
                 size_t *n)
{
    *rows = NULL;
    *n = 0;
    char age[32], lim[16];
    snprintf(age, sizeof age, "%" PRId64 " milliseconds", age_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {instance, age, lim};
    PGresult *r;
    int rc =
        db_query(db, &r,
                 "WITH c AS (SELECT id FROM outbox WHERE sent_at IS NULL "
                 "  AND created_at < now() - $2::interval "
                 "  AND (claimed_until IS NULL OR claimed_until < now()) "
                 "  ORDER BY id LIMIT $3::int FOR UPDATE SKIP LOCKED) "
                 "UPDATE outbox o SET claimed_by = $1, claimed_until = now() + interval '60 s' "
                 "FROM c WHERE o.id = c.id "
                 "RETURNING o.id, o.exchange, o.routing_key, o.event_id, o.body",
                 3, p);
    if (rc != LL_OK)
        return rc;
    int m = PQntuples(r);
    outbox_row_t *out = ll_xcalloc(m ? (size_t)m : 1, sizeof *out);
    for (int i = 0; i < m; i++) {
        out[i].id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        out[i].exchange = ll_xstrdup(PQgetvalue(r, i, 1));
        out[i].routing_key = ll_xstrdup(PQgetvalue(r, i, 2));
        out[i].event_id = ll_xstrdup(PQgetvalue(r, i, 3));
        out[i].body = ll_xstrdup(PQgetvalue(r, i, 4));
    }
    PQclear(r);
    *rows = out;
    *n = (size_t)m;
    return LL_OK;
}

void outbox_rows_free(outbox_row_t *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++) {
        free(rows[i].exchange);
        free(rows[i].routing_key);
        free(rows[i].event_id);
        free(rows[i].body);
    }
    free(rows);
}
