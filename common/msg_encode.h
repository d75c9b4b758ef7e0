/*
 * msg_encode.h - the encoding half of the message codec: the bodies of the
 * events Ledgerline publishes (docs/contract.md#event-envelope).
 *
 * Event bodies are compact JSON with the envelope first:
 * event_id, type, payment_id (payment events), occurred_at, then the rest.
 * The event_id depends on the outcome, never on time; occurred_at is part of
 * the body, so a stage stores the encoded bytes in its outbox and
 * re-publishes exactly those bytes.
 *
 * Public API: msg_encode_approved(), msg_encode_declined(),
 * msg_encode_completed(), msg_encode_failed(), msg_batch_closed_t,
 * msg_encode_batch_closed(), msg_refund_done_t, msg_encode_refund_completed(),
 * msg_encode_refund_failed(), msg_encode_deposit_completed/_failed(),
 * msg_encode_withdrawal_completed/_failed/_reversed(), msg_encode_rejected().
 */
#ifndef LL_MSG_ENCODE_H
#define LL_MSG_ENCODE_H

#include "msg.h"

/*
 * Encoders. Each returns a malloc'd NUL-terminated compact JSON body that
 * the caller frees with free(), or NULL on out of memory or on invalid
 * arguments (a string that is not valid UTF-8, a rule name that is not an
 * id, more than MSG_RULES_MAX rules, an unknown failure reason). Payment
 * events carry the request fields of `p` (description and metadata when
 * present); their event_id key is p->payment_id. Times are unix ms.
 */
char *msg_encode_approved(const msg_payment_t *p, int score, const char *const *rules,
                          size_t nrules, int64_t occurred_ms);
/* reason "risk_declined", `rules` top level, plus the request fields. */
char *msg_encode_declined(const msg_payment_t *p, const char *const *rules, size_t nrules,
                          int64_t occurred_ms);
/* transfer_id: an id (1-64 chars of MSG_ID_CHARSET). */
char *msg_encode_completed(const msg_payment_t *p, const char *transfer_id, int64_t posted_ms,
                           int64_t occurred_ms);
/* reason: one of msg_failure_reason_at(). */
char *msg_encode_failed(const msg_payment_t *p, const char *reason, int64_t occurred_ms);

/* settlement.batch.closed; event_id key is batch_id. */
typedef struct {
    char batch_id[MSG_ID_MAX + 1];
    char payee[MSG_ID_MAX + 1];
    char currency[4];
    int64_t window_start_ms;
    int64_t window_end_ms;
    int64_t count; /* payments in the batch */
    int64_t gross; /* minor units */
    int64_t fees;
    int64_t refunds;      /* the refunds netted by the batch */
    int64_t refund_count; /* how many */
    int64_t carried_in;   /* a shortfall carried from the payee's previous batch */
    int64_t carried_out;  /* this batch's shortfall, carried into the next */
    int64_t net;          /* paid out: gross - fees - refunds - carried_in, or 0 */
} msg_batch_closed_t;

char *msg_encode_batch_closed(const msg_batch_closed_t *b, int64_t occurred_ms);

/* refund.completed: the request `r` and what the refund stage did; event_id
 * key is r->refund_id. */
typedef struct {
    char payer[MSG_ID_MAX + 1]; /* of the payment: the refund's credit side */
    char payee[MSG_ID_MAX + 1]; /* of the payment: the refund's debit side */
    char currency[4];
    char transfer_id[MSG_ID_MAX + 1];
    int64_t refunded_total;        /* of the payment, this refund included */
    int64_t remaining;             /* what may still be refunded */
    char batch_id[MSG_ID_MAX + 1]; /* the settlement batch that nets it */
} msg_refund_done_t;

char *msg_encode_refund_completed(const msg_refund_t *r, const msg_refund_done_t *d,
                                  int64_t occurred_ms);
/* refund.failed; reason: one of msg_refund_failure_reason_at(). */
char *msg_encode_refund_failed(const msg_refund_t *r, const char *reason, int64_t occurred_ms);

/* deposit.completed / deposit.failed (reason: msg_deposit_failure_reason_at());
 * event_id key is the deposit_id. */
char *msg_encode_deposit_completed(const msg_deposit_t *d, const char *transfer_id,
                                   int64_t occurred_ms);
char *msg_encode_deposit_failed(const msg_deposit_t *d, const char *reason, int64_t occurred_ms);
/* withdrawal.completed / withdrawal.failed (reason:
 * msg_withdrawal_failure_reason_at(); `rules` the risk rules that declined
 * it, none for a ledger refusal); event_id key is the withdrawal_id. */
char *msg_encode_withdrawal_completed(const msg_withdrawal_t *w, const char *transfer_id,
                                      int64_t occurred_ms);
char *msg_encode_withdrawal_failed(const msg_withdrawal_t *w, const char *reason,
                                   const char *const *rules, size_t nrules, int64_t occurred_ms);
/* withdrawal.reversed: the withdrawal's money is back on its account;
 * event_id key is the withdrawal_id. */
char *msg_encode_withdrawal_reversed(const msg_return_t *r, const char *account, int64_t amount,
                                     const char *currency, const char *transfer_id,
                                     int64_t occurred_ms);

/* message.rejected: reason and detail from `why`; `queue` the consuming
 * queue (must be an id, NULL otherwise); payment_id only when
 * payment_id_or_null is a valid id; key_field ("refund_id", "deposit_id",
 * "withdrawal_id"; NULL or "payment_id": none) = key when key is a valid
 * id (the rejected message's own key); event_key as built by
 * msg_rejected_key(). */
char *msg_encode_rejected(const char *queue, const msg_reject_t *why,
                          const char *payment_id_or_null, const char *key_field, const char *key,
                          const char *event_key, int64_t occurred_ms);

#endif
