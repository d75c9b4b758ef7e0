/*
 * stage.c - shared pieces of the stage implementations: see stage.h.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "stage.h"

int stage_decoded(item_t *it, void *msg, const msg_payment_t *p)
{
    it->msg = msg;
    snprintf(it->payment_id, sizeof it->payment_id, "%s", p->payment_id);
    /* the hash is msg_payment_hash()'s: of this canonical text */
    it->canonical = msg_payment_canonical(p);
    if (!it->canonical)
        log_panic("out of memory hashing payment %s", it->payment_id);
    msg_body_hash(it->canonical, strlen(it->canonical), it->hash);
    return LL_OK;
}

int stage_undecodable(item_t *it, int rc)
{
    if (rc == LL_ENOMEM)
        log_panic("out of memory decoding a message");
    if (msg_peek_payment_id(it->d.body, it->d.len, it->payment_id) != LL_OK)
        it->payment_id[0] = '\0';
    return LL_EREJECT;
}

int stage_apply_rows(db_t *db, const char *sql, int nparams, const char *const *params,
                     item_t *items, size_t n, size_t count,
                     void (*decide)(item_t *it, PGresult *r, int row))
{
    if (count == 0)
        return LL_OK;
    PGresult *r;
    int rc = db_query_prepared(db, &r, sql, nparams, params);
    if (rc != LL_OK)
        return rc;
    if ((size_t)PQntuples(r) != count) {
        PQclear(r);
        return LL_EDB;
    }
    int row = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].state == ITEM_BATCHED)
            decide(&items[i], r, row++);
    PQclear(r);
    return LL_OK;
}
