/*
 * outbox.c - the transactional outbox: see outbox.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "outbox.h"
#include "sbuf.h"
#include "xmalloc.h"

/* The BATCHED items with verdict v. */
static bool wanted(const item_t *it, item_verdict_t v)
{
    /* a new item may have no event (a settlement stage effect) */
    return it->state == ITEM_BATCHED && it->verdict == v && (v != VERDICT_NEW || it->ev_body);
}

/* The fields of the new events as four texts, one per column, the events'
 * values separated by OUTBOX_SEP: no escaping on either side (a body is
 * JSON, which writes that control character only as \u001e, and ids and
 * routing keys have checked charsets). false when there are none. */
#define OUTBOX_SEP '\x1e'
static bool new_events(item_t *items, size_t n, char *cols[4])
{
    sbuf_t b[4];
    for (int c = 0; c < 4; c++)
        sbuf_init(&b[c], c == 3 ? n * 600 : n * 40);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!wanted(&items[i], VERDICT_NEW))
            continue;
        const char *v[4] = {items[i].key, items[i].ev_id, items[i].ev_rk, items[i].ev_body};
        for (int c = 0; c < 4; c++) {
            if (k)
                sbuf_addc(&b[c], OUTBOX_SEP);
            sbuf_adds(&b[c], v[c]);
        }
        k++;
    }
    for (int c = 0; c < 4; c++)
        cols[c] = sbuf_take(&b[c]);
    if (k == 0)
        for (int c = 0; c < 4; c++) {
            free(cols[c]);
            cols[c] = NULL;
        }
    return k > 0;
}

/* "{"p1","p2"}": the payment ids of the duplicates. Every element is
 * quoted: an unquoted NULL (any case) is SQL NULL in an array literal, and
 * NULL is a valid payment id. Ids never hold a quote or a backslash
 * (docs/contract.md#field-rules), so quoting needs no escapes. */
static char *duplicate_ids(item_t *items, size_t n)
{
    size_t len = 3, k = 0;
    for (size_t i = 0; i < n; i++)
        if (wanted(&items[i], VERDICT_DUPLICATE))
            len += strlen(items[i].key) + 3, k++;
    if (k == 0)
        return NULL;
    char *arr = ll_xmalloc(len);
    size_t w = 0;
    arr[w++] = '{';
    for (size_t i = 0; i < n; i++)
        if (wanted(&items[i], VERDICT_DUPLICATE))
            w += (size_t)snprintf(arr + w, len - w, "%s\"%s\"", w > 1 ? "," : "", items[i].key);
    snprintf(arr + w, len - w, "}");
    return arr;
}

int outbox_write(db_t *db, const char *stage, item_t *items, size_t n)
{
    int rc = LL_OK;
    char *cols[4];
    if (new_events(items, n, cols)) {
        const char *p[] = {stage, OUTBOX_EXCHANGE, cols[0], cols[1], cols[2], cols[3]};
        PGresult *r;
        rc = db_query_prepared(
            db, &r,
            "WITH o AS (INSERT INTO outbox (stage, payment_id, event_id, exchange, "
            "routing_key, body) SELECT $1, x.p, x.e, $2, x.r, x.b FROM unnest("
            "string_to_array($3, E'\\x1e'), string_to_array($4, E'\\x1e'), "
            "string_to_array($5, E'\\x1e'), string_to_array($6, E'\\x1e')) "
            "WITH ORDINALITY x(p, e, r, b, n) ORDER BY x.n "
            "RETURNING id, event_id, stage, created_at), "
            "p AS (INSERT INTO outbox_pending (id, stage, created_at) "
            "SELECT id, stage, created_at FROM o) "
            "SELECT id, event_id FROM o",
            6, p);
        for (int c = 0; c < 4; c++)
            free(cols[c]);
        if (rc != LL_OK)
            return rc;
        /* new events have distinct event_ids: match rows by it */
        for (int row = 0; row < PQntuples(r); row++)
            for (size_t i = 0; i < n; i++)
                if (wanted(&items[i], VERDICT_NEW) &&
                    strcmp(items[i].ev_id, PQgetvalue(r, row, 1)) == 0)
                    items[i].outbox_id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
        PQclear(r);
    }
    char *ids = duplicate_ids(items, n);
    if (ids) {
        const char *p[] = {stage, ids};
        PGresult *r;
        rc = db_query_prepared(
            db, &r,
            "SELECT DISTINCT ON (payment_id) payment_id, id, event_id, routing_key, "
            "body FROM outbox WHERE stage = $1 AND payment_id = ANY($2::text[]) "
            "ORDER BY payment_id, id",
            2, p);
        free(ids);
        if (rc != LL_OK)
            return rc;
        for (size_t i = 0; i < n; i++) {
            if (!wanted(&items[i], VERDICT_DUPLICATE))
                continue;
            int row = 0;
            while (row < PQntuples(r) && strcmp(PQgetvalue(r, row, 0), items[i].key))
                row++;
            if (row == PQntuples(r)) {
                /* processed before but its event is not stored: cannot replay */
                PQclear(r);
                return LL_EDB;
            }
            items[i].outbox_id = strtoll(PQgetvalue(r, row, 1), NULL, 10);
            item_set_event(&items[i], PQgetvalue(r, row, 2), ll_xstrdup(PQgetvalue(r, row, 3)),
                           ll_xstrdup(PQgetvalue(r, row, 4)));
        }
        PQclear(r);
    }
    return rc;
}

int outbox_add(db_t *db, const char *stage, const char *payment_id, const char *event_id,
               const char *routing_key, const char *body, int64_t *id)
{
    const char *p[] = {stage, payment_id, event_id, OUTBOX_EXCHANGE, routing_key, body};
    PGresult *r;
    int rc = db_query(db, &r,
                      "WITH o AS (INSERT INTO outbox (stage, payment_id, event_id, exchange, "
                      "routing_key, body) VALUES ($1, $2, $3, $4, $5, $6) "
                      "RETURNING id, stage, created_at), "
                      "p AS (INSERT INTO outbox_pending (id, stage, created_at) "
                      "SELECT id, stage, created_at FROM o) "
                      "SELECT id FROM o",
                      6, p);
    if (rc != LL_OK)
        return rc;
    if (id)
        *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return LL_OK;
}

/* "{1,2,3}" */
static char *id_array(const int64_t *ids, size_t n)
{
    sbuf_t b;
    sbuf_init(&b, n * 21 + 3);
    sbuf_addc(&b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            sbuf_addc(&b, ',');
        sbuf_i64(&b, ids[i]);
    }
    sbuf_addc(&b, '}');
    return sbuf_take(&b);
}

int outbox_unpend(db_t *db, const int64_t *ids, size_t n)
{
    if (n == 0)
        return LL_OK;
    char *arr = id_array(ids, n);
    const char *p[] = {arr};
    PGresult *r;
    int rc =
        db_query_prepared(db, &r, "DELETE FROM outbox_pending WHERE id = ANY($1::bigint[])", 1, p);
    PQclear(r);
    free(arr);
    return rc;
}

int outbox_mark_sent(db_t *db, const int64_t *ids, size_t n)
{
    if (n == 0)
        return LL_OK;
    /* sent marks need no durability of their own: one lost in a crash only
     * makes the sweep publish its event again (consumers dedupe by
     * event_id), so the commit does not wait for the WAL flush */
    int rc = db_exec(db, "BEGIN; SET LOCAL synchronous_commit TO off");
    if (rc == LL_OK)
        rc = outbox_unpend(db, ids, n);
    if (rc == LL_OK)
        rc = db_exec(db, "COMMIT");
    if (rc != LL_OK)
        db_try(db, "ROLLBACK");
    return rc;
}

int outbox_claim(db_t *db, const char *stage, const char *instance, int64_t age_ms, int limit,
                 outbox_row_t **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    char age[32], lim[16];
    snprintf(age, sizeof age, "%" PRId64 " milliseconds", age_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {instance, age, lim, stage};
    PGresult *r;
    int rc = db_query(db, &r,
                      "WITH c AS (SELECT id FROM outbox_pending WHERE stage = $4 "
                      "  AND created_at < now() - $2::interval "
                      "  AND (claimed_until IS NULL OR claimed_until < now()) "
                      "  ORDER BY id LIMIT $3::int FOR UPDATE SKIP LOCKED), "
                      "u AS (UPDATE outbox_pending p SET claimed_by = $1, "
                      "  claimed_until = now() + interval '60 s' FROM c WHERE p.id = c.id "
                      "  RETURNING p.id) "
                      "SELECT o.id, o.exchange, o.routing_key, o.event_id, o.body "
                      "FROM u JOIN outbox o ON o.id = u.id ORDER BY o.id",
                      4, p);
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
