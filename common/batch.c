/*
 * batch.c - items of a batch and their one state-changing function: see
 * batch.h for the state diagram.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "log.h"
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
        log_panic("item %s: unknown state %d", it->key, (int)it->state);
    }
    if (!ok)
        log_panic("item %s: illegal state change %s -> %s", it->key, item_state_name(it->state),
                  item_state_name(to));
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
