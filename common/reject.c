/*
 * reject.c - the rejection of a message: see reject.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "msg_decode.h"
#include "msg_encode.h"
#include "reject.h"
#include "xmalloc.h"

void item_reject(item_t *it, const char *queue, const msg_reject_t *why)
{
    const char *k = it->key[0] ? it->key : NULL;
    bool by_payment = !it->key_field || strcmp(it->key_field, "payment_id") == 0;
    const char *pid = by_payment ? k : (it->payment_id[0] ? it->payment_id : NULL);
    /* the message's own id: its key without the stage's type prefix */
    const char *own = k && strlen(k) >= it->key_skip ? k + it->key_skip : NULL;
    char key[MSG_REJECTED_KEY_MAX], ev_id[MSG_EVENT_ID_LEN + 1];
    if (msg_rejected_key(queue, k, why->reason, it->d.body, it->d.len, key, sizeof key) != LL_OK)
        log_panic("rejection key does not fit (queue %s)", queue);
    msg_event_id(MSG_TYPE_REJECTED, key, ev_id);
    /* the detail may hold untrusted text (a signature header, a server
     * error): the event, the parked copy's headers and the log get it clean */
    msg_reject_t clean = *why;
    msg_text_clean(clean.field, sizeof clean.field, why->field);
    msg_text_clean(clean.detail, sizeof clean.detail, why->detail);
    why = &clean;
    char *body = msg_encode_rejected(queue, why, pid, by_payment ? NULL : it->key_field, own, key,
                                     clock_now_ms());
    if (!body)
        log_panic("cannot encode message.rejected for queue %s", queue);
    it->why = *why;
    it->verdict = VERDICT_REJECT;
    it->park = true;
    item_set_event(it, ev_id, ll_xstrdup(MSG_TYPE_REJECTED), body);
    log_warnx((&(log_ctx_t){.queue = queue, .payment_id = k}), "rejected (%s): %s",
              msg_reason_str(why->reason), why->detail);
}

void item_reject_conflict(item_t *it, const char *queue, const char *prior)
{
    msg_reject_t why = {.reason = MSG_REASON_IDEMPOTENCY_CONFLICT};
    const char *field = it->key_field ? it->key_field : "payment_id";
    char fields[160];
    if (msg_canonical_diff(prior, it->canonical, fields, sizeof fields) != LL_OK)
        snprintf(fields, sizeof fields, "?");
    snprintf(why.detail, sizeof why.detail,
             "%s %s was already processed with different values of: %s", field,
             it->key + (strlen(it->key) >= it->key_skip ? it->key_skip : 0), fields);
    snprintf(why.field, sizeof why.field, "%s", field);
    item_reject(it, queue, &why);
}
