/*
 * ll_check.c - assertions on what a real worker published: see ll_check.h.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "msg.h"

const char *llc_jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

char *llc_dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

char *llc_edit(json_t *j, const char *field, json_t *value)
{
    if (value)
        json_object_set_new(j, field, value);
    else
        json_object_del(j, field);
    return llc_dump(j);
}

void llc_check_envelope(const json_t *e, const char *rk, const char *key)
{
    const json_t *body = json_object_get(e, "json");
    LLW_ASSERT(json_is_object(body), "event %s is not a JSON object: %s", rk, llc_jstr(e, "body"));
    char want_id[MSG_EVENT_ID_LEN + 1];
    msg_event_id(rk, key, want_id);
    LLW_ASSERT(strcmp(llc_jstr(body, "event_id"), want_id) == 0, "%s event_id %s, want %s", rk,
               llc_jstr(body, "event_id"), want_id);
    LLW_ASSERT(strcmp(llc_jstr(e, "message_id"), want_id) == 0,
               "%s AMQP message_id '%s' != event_id", rk, llc_jstr(e, "message_id"));
    LLW_ASSERT(strcmp(llc_jstr(e, "type"), rk) == 0, "%s AMQP type '%s'", rk, llc_jstr(e, "type"));
    LLW_ASSERT(strcmp(llc_jstr(body, "type"), rk) == 0, "%s body type '%s'", rk,
               llc_jstr(body, "type"));
    int64_t t;
    LLW_ASSERT(msg_parse_time(llc_jstr(body, "occurred_at"), &t) == LL_OK, "%s occurred_at '%s'",
               rk, llc_jstr(body, "occurred_at"));
}

size_t llc_same_event(llw_events_t *ev, const char *rk, const char *payment_id)
{
    json_t *first = llw_events_find(ev, rk, payment_id, 0);
    LLW_ASSERT(first, "no %s event for %s", rk, payment_id);
    size_t n = llw_events_count(ev, rk, payment_id);
    for (size_t i = 1; i < n; i++) {
        json_t *e = llw_events_find(ev, rk, payment_id, i);
        LLW_ASSERT(strcmp(llc_jstr(e, "message_id"), llc_jstr(first, "message_id")) == 0 &&
                       strcmp(llc_jstr(e, "body"), llc_jstr(first, "body")) == 0,
                   "%s for %s published again with other bytes:\n  %s\n  %s", rk, payment_id,
                   llc_jstr(first, "body"), llc_jstr(e, "body"));
    }
    llc_check_envelope(first, rk, payment_id);
    return n;
}

void llc_check_outbox(db_t *db, const char *payment_id, const char *rk, const char *body)
{
    char *stored = llw_text(db,
                            "SELECT body FROM outbox WHERE payment_id = '%s' AND "
                            "routing_key = '%s'",
                            payment_id, rk);
    int64_t rows = llw_count(db, "SELECT count(*) FROM outbox WHERE payment_id = '%s'", payment_id);
    LLW_ASSERT(rows == 1 && stored && strcmp(stored, body) == 0,
               "payment %s: %" PRId64 " outbox rows; stored body %s, published %s", payment_id,
               rows, stored ? stored : "(none)", body);
    free(stored);
}

/* The msg_reason_t named `name` (fails the test for an unknown name). */
static msg_reason_t reason_of(const char *name)
{
    for (int r = 0; r < MSG_REASON_COUNT; r++)
        if (strcmp(msg_reason_str((msg_reason_t)r), name) == 0)
            return (msg_reason_t)r;
    ck_abort_msg("no rejection reason '%s'", name);
    return MSG_REASON_PROCESSING_FAILED;
}

const json_t *llc_check_rejected(llw_events_t *ev, const char *queue, const char *label,
                                 const char *payment_id, const char *body, size_t len,
                                 const char *reason, const char *field)
{
    char key[MSG_REJECTED_KEY_MAX], want_id[MSG_EVENT_ID_LEN + 1];
    ck_assert(msg_rejected_key(queue, payment_id, reason_of(reason), body, len, key, sizeof key) ==
              LL_OK);
    msg_event_id(MSG_TYPE_REJECTED, key, want_id);
    json_t *e = NULL, *o;
    size_t k, seen = 0;
    json_array_foreach(llw_events_all(ev), k, o)
    {
        if (strcmp(llc_jstr(json_object_get(o, "json"), "event_id"), want_id) == 0) {
            e = o;
            seen++;
        }
    }
    LLW_ASSERT(seen == 1, "%s: %zu message.rejected events with event_id %s, want 1", label, seen,
               want_id);
    llc_check_envelope(e, MSG_TYPE_REJECTED, key);
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(strcmp(llc_jstr(j, "reason"), reason) == 0, "%s: reason %s, want %s", label,
               llc_jstr(j, "reason"), reason);
    LLW_ASSERT(strcmp(llc_jstr(j, "queue"), queue) == 0, "%s: queue '%s'", label,
               llc_jstr(j, "queue"));
    LLW_ASSERT(llc_jstr(j, "detail")[0] != '\0', "%s: empty detail", label);
    LLW_ASSERT(!field || strstr(llc_jstr(j, "detail"), field), "%s: detail '%s' does not name %s",
               label, llc_jstr(j, "detail"), field);
    if (payment_id)
        LLW_ASSERT(strcmp(llc_jstr(j, "payment_id"), payment_id) == 0,
                   "%s: payment_id '%s', the body's is readable: %s", label,
                   llc_jstr(j, "payment_id"), payment_id);
    else
        LLW_ASSERT(!json_object_get(j, "payment_id"), "%s: payment_id '%s' from nowhere", label,
                   llc_jstr(j, "payment_id"));
    return j;
}

const json_t *llc_find_parked(const json_t *dead, const char *dead_queue, const char *label,
                              const char *body, size_t len, const char *reason)
{
    const json_t *parked = NULL;
    json_t *o;
    size_t k, seen = 0;
    json_array_foreach(dead, k, o)
    {
        const json_t *b = json_object_get(o, "body");
        if (json_string_length(b) == len && memcmp(json_string_value(b), body, len) == 0) {
            parked = o;
            seen++;
        }
    }
    LLW_ASSERT(seen == 1, "%s: the original is parked %zu times in %s", label, seen, dead_queue);
    const char *hr = llw_header(parked, "x-ledgerline-reason");
    LLW_ASSERT(hr && strcmp(hr, reason) == 0, "%s: parked with x-ledgerline-reason %s", label,
               hr ? hr : "(none)");
    return parked;
}

void llc_check_conflict(llw_events_t *ev, const json_t *dead, const char *queue,
                        const char *dead_queue, size_t i, const char *changes,
                        const char *const names[3], const char *payment_id, const char *body)
{
    char key[MSG_REJECTED_KEY_MAX];
    ck_assert(msg_rejected_key(queue, payment_id, MSG_REASON_IDEMPOTENCY_CONFLICT, body,
                               strlen(body), key, sizeof key) == LL_OK);
    char want_id[MSG_EVENT_ID_LEN + 1];
    msg_event_id(MSG_TYPE_REJECTED, key, want_id);
    json_t *e = NULL, *o;
    size_t k;
    json_array_foreach(llw_events_all(ev), k, o)
    {
        if (strcmp(llc_jstr(json_object_get(o, "json"), "event_id"), want_id) == 0)
            e = o;
    }
    LLW_ASSERT(e, "conflict %zu (%s): no message.rejected with event_id %s", i, changes, want_id);
    llc_check_envelope(e, MSG_TYPE_REJECTED, key);
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(strcmp(llc_jstr(j, "reason"), "idempotency_conflict") == 0 &&
                   strcmp(llc_jstr(j, "payment_id"), payment_id) == 0 &&
                   strcmp(llc_jstr(j, "queue"), queue) == 0,
               "conflict %zu: %s", i, llc_jstr(e, "body"));
    for (size_t f = 0; f < 3 && names[f]; f++)
        LLW_ASSERT(strstr(llc_jstr(j, "detail"), names[f]),
                   "conflict %zu: detail '%s' does not name %s", i, llc_jstr(j, "detail"),
                   names[f]);
    bool parked = false;
    json_array_foreach(dead, k, o)
    {
        if (strcmp(llc_jstr(o, "body"), body) == 0) {
            const char *hr = llw_header(o, "x-ledgerline-reason");
            parked = hr && strcmp(hr, "idempotency_conflict") == 0 &&
                     llw_header(o, "x-ledgerline-detail");
        }
    }
    LLW_ASSERT(parked, "conflict %zu: not parked in %s with its reason", i, dead_queue);
}
