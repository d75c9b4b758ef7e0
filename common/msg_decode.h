/*
 * msg_decode.h - the decoding half of the message codec: strict decoding of
 * the JSON bodies Ledgerline consumes (docs/contract.md#messages).
 *
 * Decoding never trusts the input: every failure is a LL_EREJECT with a
 * msg_reject_t saying which of the contract's reasons applies, which field
 * (a JSON path) and why, so the worker can publish `message.rejected` and go
 * on. The JSON Schemas in schemas/json/ describe the same rules;
 * tests/unit/test_schema.c checks that code and schemas agree.
 *
 * Decoding order (so the reported violation is deterministic):
 *   1. body longer than MSG_BODY_MAX bytes                  -> oversized
 *   2. not JSON: syntax, invalid UTF-8, trailing garbage, duplicate keys,
 *      "\u0000" in a string, empty body                      -> malformed_json
 *   3. a number literal jansson cannot hold (integer beyond int64, real
 *      beyond double)                                         -> schema_violation,
 *      field = the path of the first such number in document order when it
 *      can be found (e.g. "amount"), else "" (jansson only reports a
 *      position, so the body is re-parsed with integers as reals to find it);
 *      nesting deeper than jansson's parser allows           -> schema_violation, ""
 *   4. root not an object                                     -> schema_violation, ""
 *   5. events only: `type` missing / not the expected routing key
 *   6. unknown top-level field (first in document order)      -> schema_violation
 *   7. the fields in the order of msg_fields() for that type, each: missing,
 *      wrong type, out of range, bad charset; then payer != payee (reported
 *      on "payee"); nested objects (metadata, risk) likewise.
 *
 * Public API: msg_payment_decode(), msg_approved_t, msg_approved_decode(),
 * msg_approved_clear(), msg_completed_t, msg_completed_decode(),
 * msg_completed_clear(), msg_refund_decode(), msg_refund_clear(),
 * msg_deposit_decode/_clear(), msg_withdrawal_decode/_clear(),
 * msg_return_decode/_clear(),
 * msg_peek_payment_id(), msg_peek_id(), msg_decoder_t, MSG_NO_PAYMENT,
 * msg_decoder_requested, msg_decoder_approved, msg_decoder_completed,
 * msg_decoder_refund_requested, msg_decoder_deposit_received,
 * msg_decoder_withdrawal_requested, msg_decoder_withdrawal_returned.
 */
#ifndef LL_MSG_DECODE_H
#define LL_MSG_DECODE_H

#include "msg.h"

/*
 * Decodes a payment.requested body (`len` bytes, need not be
 * NUL-terminated). LL_OK: *out filled, the caller owns it and releases it
 * with msg_payment_clear(). LL_EREJECT: *why filled, *out cleared.
 * LL_ENOMEM if jansson runs out of memory. *out is overwritten without being
 * cleared first: clear it before reusing it.
 */
LL_MUSTCHECK int msg_payment_decode(const void *body, size_t len, msg_payment_t *out,
                                    msg_reject_t *why);

/* payment.approved, as the payment stage consumes it. */
typedef struct {
    char event_id[MSG_EVENT_ID_LEN + 1];
    int64_t occurred_ms;                       /* occurred_at, unix milliseconds */
    msg_payment_t payment;                     /* owned: release with msg_approved_clear() */
    int score;                                 /* risk.score */
    char rules[MSG_RULES_MAX][MSG_ID_MAX + 1]; /* risk.rules */
    size_t nrules;
} msg_approved_t;

/* Like msg_payment_decode() for a payment.approved body; `type` must be
 * "payment.approved". Release with msg_approved_clear(). */
LL_MUSTCHECK int msg_approved_decode(const void *body, size_t len, msg_approved_t *out,
                                     msg_reject_t *why);
void msg_approved_clear(msg_approved_t *a);

/* payment.completed, as the settlement stage consumes it. */
typedef struct {
    char event_id[MSG_EVENT_ID_LEN + 1];
    int64_t occurred_ms;
    msg_payment_t payment; /* owned: release with msg_completed_clear() */
    char transfer_id[MSG_ID_MAX + 1];
    int64_t posted_ms; /* posted_at, unix milliseconds */
} msg_completed_t;

/* Like msg_payment_decode() for a payment.completed body; `type` must be
 * "payment.completed". Release with msg_completed_clear(). */
LL_MUSTCHECK int msg_completed_decode(const void *body, size_t len, msg_completed_t *out,
                                      msg_reject_t *why);
void msg_completed_clear(msg_completed_t *c);

/* refund.requested (as the refund stage consumes it): LL_OK with *out
 * filled (nothing to release: msg_refund_clear() only zeroes it), or
 * LL_EREJECT with *why. */
LL_MUSTCHECK int msg_refund_decode(const void *body, size_t len, msg_refund_t *out,
                                   msg_reject_t *why);
void msg_refund_clear(msg_refund_t *r);

/* deposit.received, withdrawal.requested and withdrawal.returned (as the
 * funds stage consumes them), like msg_refund_decode(). */
LL_MUSTCHECK int msg_deposit_decode(const void *body, size_t len, msg_deposit_t *out,
                                    msg_reject_t *why);
void msg_deposit_clear(msg_deposit_t *d);
LL_MUSTCHECK int msg_withdrawal_decode(const void *body, size_t len, msg_withdrawal_t *out,
                                       msg_reject_t *why);
void msg_withdrawal_clear(msg_withdrawal_t *w);
LL_MUSTCHECK int msg_return_decode(const void *body, size_t len, msg_return_t *out,
                                   msg_reject_t *why);
void msg_return_clear(msg_return_t *r);

/* Like msg_peek_payment_id() for the top-level string `field` (an id
 * field: "refund_id", ...). */
LL_MUSTCHECK int msg_peek_id(const void *body, size_t len, const char *field,
                             char out[MSG_ID_MAX + 1]);

/*
 * Best effort: the payment_id of a body that failed validation, for
 * message.rejected's "payment_id when readable". Tries a JSON parse of the
 * body (top-level string "payment_id"); if the body is not JSON, scans its
 * first MSG_BODY_MAX bytes for `"payment_id" : "<id>"` and accepts the value
 * only if every occurrence agrees. The value must be a valid id (1-64 chars
 * of MSG_ID_CHARSET). LL_OK with `out` filled, else LL_ENOTFOUND.
 */
LL_MUSTCHECK int msg_peek_payment_id(const void *body, size_t len, char out[MSG_ID_MAX + 1]);

/* One consumed message type, for code that handles them alike (the stage
 * skeleton, stage.h): the decoded struct's size, its idempotency key and
 * the payment it is about, where its request fields are (payment
 * messages), its decode (as msg_*_decode) and clear functions, and its
 * canonical form (what the idempotency hash is of). */
#define MSG_NO_PAYMENT ((size_t)-1)
typedef struct msg_decoder {
    const char *type;      /* its routing key */
    const char *key_field; /* its idempotency key: "payment_id", "refund_id" */
    /* prepended to the key where a stage consumes several types whose ids
     * could meet ("deposit:", "withdrawal:", "return:"); "" otherwise */
    const char *key_prefix;
    size_t size;
    size_t key_offset;        /* of the key, a char[MSG_ID_MAX + 1] */
    size_t payment_id_offset; /* of the payment_id it is about, likewise; MSG_NO_PAYMENT */
    size_t payment_offset;    /* of its msg_payment_t; MSG_NO_PAYMENT when none */
    int (*decode)(const void *body, size_t len, void *out, msg_reject_t *why);
    void (*clear)(void *msg);
    char *(*canonical)(const void *msg); /* caller frees; NULL on OOM */
} msg_decoder_t;

extern const msg_decoder_t msg_decoder_requested;            /* msg_payment_t */
extern const msg_decoder_t msg_decoder_approved;             /* msg_approved_t */
extern const msg_decoder_t msg_decoder_completed;            /* msg_completed_t */
extern const msg_decoder_t msg_decoder_refund_requested;     /* msg_refund_t */
extern const msg_decoder_t msg_decoder_deposit_received;     /* msg_deposit_t */
extern const msg_decoder_t msg_decoder_withdrawal_requested; /* msg_withdrawal_t */
extern const msg_decoder_t msg_decoder_withdrawal_returned;  /* msg_return_t */

#endif
