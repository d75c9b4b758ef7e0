/*
 * msg.h - the message core (docs/contract.md): what the decoding half
 * (msg_decode.h), the encoding half (msg_encode.h) and the stages share:
 * limits and routing keys, the rejection reasons and record, the request
 * fields of a payment and its identity (canonical form, hash, diff), ids,
 * text cleaning, event ids and the contract's time format.
 *
 * Public API: the MSG_* constants, msg_reason_t, msg_reason_str(),
 * msg_reject_t, msg_payment_t, msg_payment_clear(), msg_payment_canonical(),
 * msg_payment_hash(), msg_payment_diff(), msg_refund_t, msg_refund_canonical(),
 * msg_canonical_diff(), msg_refund_failure_reason_valid/_at(), msg_body_hash(), msg_event_id(),
 * msg_rejected_key(), msg_format_time(), msg_parse_time(), msg_field_t,
 * msg_fields(), msg_failure_reason_valid(), msg_failure_reason_at(),
 * msg_id_valid(), msg_text_clean().
 */
#ifndef LL_MSG_H
#define LL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

#define MSG_BODY_MAX        16384             /* bytes; exactly this many is allowed */
#define MSG_ID_MAX          64                /* payment_id, payer, payee, ids, rule names */
#define MSG_DESCRIPTION_MAX 200               /* bytes of UTF-8, not characters */
#define MSG_METADATA_MAX    16                /* keys */
#define MSG_AMOUNT_MAX      100000000000000LL /* 10^14 minor units */
#define MSG_AMOUNT_MIN      1
#define MSG_SCORE_MAX       100             /* risk.score is 0..MSG_SCORE_MAX */
#define MSG_RULES_MAX       32              /* entries of risk.rules / rules */
#define MSG_EVENT_ID_LEN    32              /* lower-case hex chars */
#define MSG_TIME_LEN        24              /* "2026-11-23T09:31:25.123Z" */
#define MSG_ID_CHARSET      "A-Za-z0-9_.:-" /* the id character class */

/* Routing keys (= `type` of the events, AMQP `type` of the request). */
#define MSG_TYPE_REQUESTED            "payment.requested"
#define MSG_TYPE_APPROVED             "payment.approved"
#define MSG_TYPE_DECLINED             "payment.declined"
#define MSG_TYPE_COMPLETED            "payment.completed"
#define MSG_TYPE_FAILED               "payment.failed"
#define MSG_TYPE_BATCH_CLOSED         "settlement.batch.closed"
#define MSG_TYPE_REJECTED             "message.rejected"
#define MSG_TYPE_REFUND_REQUESTED     "refund.requested"
#define MSG_TYPE_REFUND_COMPLETED     "refund.completed"
#define MSG_TYPE_REFUND_FAILED        "refund.failed"
#define MSG_TYPE_DEPOSIT_RECEIVED     "deposit.received"
#define MSG_TYPE_DEPOSIT_COMPLETED    "deposit.completed"
#define MSG_TYPE_DEPOSIT_FAILED       "deposit.failed"
#define MSG_TYPE_WITHDRAWAL_REQUESTED "withdrawal.requested"
#define MSG_TYPE_WITHDRAWAL_COMPLETED "withdrawal.completed"
#define MSG_TYPE_WITHDRAWAL_FAILED    "withdrawal.failed"
#define MSG_TYPE_WITHDRAWAL_RETURNED  "withdrawal.returned"
#define MSG_TYPE_WITHDRAWAL_REVERSED  "withdrawal.reversed"

/* The reason of payment.declined. */
#define MSG_DECLINE_REASON "risk_declined"

typedef enum {
    MSG_REASON_MALFORMED_JSON,
    MSG_REASON_SCHEMA_VIOLATION,
    MSG_REASON_OVERSIZED,
    MSG_REASON_BAD_SIGNATURE,
    MSG_REASON_IDEMPOTENCY_CONFLICT,
    MSG_REASON_PROCESSING_FAILED,
    MSG_REASON_DUPLICATE_EXPIRED
} msg_reason_t;
#define MSG_REASON_COUNT 7

/* The contract string ("malformed_json", ...); "unknown" out of range. Static. */
const char *msg_reason_str(msg_reason_t r);

/* Why a body was rejected. Both strings are NUL-terminated valid UTF-8 with
 * control characters replaced by '?', truncated on a character boundary. */
typedef struct {
    msg_reason_t reason;
    char field[64];   /* JSON path: "amount", "metadata.color", "risk.rules[2]"; "" if none */
    char detail[256]; /* "amount: must be a JSON integer, got a real number" */
} msg_reject_t;

/* The request fields of payment.requested (also carried by the events). */
typedef struct {
    char payment_id[MSG_ID_MAX + 1];
    char payer[MSG_ID_MAX + 1];
    char payee[MSG_ID_MAX + 1];
    int64_t amount; /* minor units, MSG_AMOUNT_MIN..MSG_AMOUNT_MAX */
    char currency[4];
    char description[MSG_DESCRIPTION_MAX + 1];
    bool has_description;
    json_t *metadata; /* owned; object of strings; NULL when absent */
} msg_payment_t;

/* The fields of refund.requested (docs/contract.md#refund-requested): the
 * refund_id is its idempotency key; amount is in the payment's currency. */
typedef struct {
    char refund_id[MSG_ID_MAX + 1];
    char payment_id[MSG_ID_MAX + 1];
    int64_t amount; /* minor units, MSG_AMOUNT_MIN..MSG_AMOUNT_MAX */
    char reason[MSG_DESCRIPTION_MAX + 1];
    bool has_reason;
} msg_refund_t;

/* The fields of r as canonical JSON (keys sorted, compact), a valid
 * refund.requested body; caller frees; NULL on OOM. */
char *msg_refund_canonical(const msg_refund_t *r);

/* deposit.received, from an external rail (docs/contract.md#deposits):
 * deposit_id is its idempotency key. */
typedef struct {
    char deposit_id[MSG_ID_MAX + 1];
    char account[MSG_ID_MAX + 1];
    int64_t amount;
    char currency[4];
    char rail[MSG_ID_MAX + 1];           /* which rail: "sepa", "card", ... */
    char rail_reference[MSG_ID_MAX + 1]; /* the rail's own id of the transfer */
} msg_deposit_t;

/* withdrawal.requested: withdrawal_id is its idempotency key. */
typedef struct {
    char withdrawal_id[MSG_ID_MAX + 1];
    char account[MSG_ID_MAX + 1];
    int64_t amount;
    char currency[4];
    char rail[MSG_ID_MAX + 1];
    char destination[MSG_DESCRIPTION_MAX + 1]; /* for people: where it goes */
    bool has_destination;
} msg_withdrawal_t;

/* withdrawal.returned: the rail reports a completed withdrawal failed; its
 * withdrawal_id is the key (a withdrawal comes back at most once). */
typedef struct {
    char withdrawal_id[MSG_ID_MAX + 1];
    char rail_reference[MSG_ID_MAX + 1];
    char reason[MSG_DESCRIPTION_MAX + 1];
    bool has_reason;
} msg_return_t;

/* Canonical JSON of each, as msg_refund_canonical(). */
char *msg_deposit_canonical(const msg_deposit_t *d);
char *msg_withdrawal_canonical(const msg_withdrawal_t *w);
char *msg_return_canonical(const msg_return_t *r);

/*
 * Names of the top-level members that differ between two JSON objects
 * (canonical request bodies), comma-separated in bytewise order; a member
 * present in one only differs. LL_OK, LL_EINVAL when either is not a JSON
 * object, LL_ERANGE when `out` (n > 0 bytes) is too small (truncated).
 */
LL_MUSTCHECK int msg_canonical_diff(const char *a, const char *b, char *out, size_t n);

/* Frees what `p` owns (metadata) and zeroes it. Safe on a zeroed struct,
 * twice, and on NULL. */
void msg_payment_clear(msg_payment_t *p);

/* The request fields of p as canonical JSON (keys sorted, compact): a valid
 * payment.requested body, the same for the same payment whatever the key
 * order or spacing of the message it came from. Stored by the stages so an
 * idempotency conflict can name the fields that differ. Caller frees; NULL
 * on OOM. */
char *msg_payment_canonical(const msg_payment_t *p);

/*
 * The idempotency payload hash: lower-case hex SHA-256 of the canonical
 * encoding of the request fields (compact JSON, keys sorted bytewise,
 * description and metadata included when present). Independent of the key
 * order and whitespace of the original body. LL_OK, or LL_ENOMEM (also
 * when a string of `p` is not valid UTF-8, which a decoded payment never
 * has).
 */
LL_MUSTCHECK int msg_payment_hash(const msg_payment_t *p, char out[65]);

/*
 * Names of the request fields that differ between a and b, comma-separated
 * in alphabetical order ("amount,payee"); "" if they are equal. An absent
 * description/metadata differs from a present one (even an empty one).
 * LL_OK, or LL_ERANGE if `out` (n bytes, n > 0) is too small (it then holds
 * a truncated list). 96 bytes always suffice.
 */
LL_MUSTCHECK int msg_payment_diff(const msg_payment_t *a, const msg_payment_t *b, char *out,
                                  size_t n);

/* Lower-case hex SHA-256 of `len` bytes (the raw-body hash used in
 * rejection keys). */
void msg_body_hash(const void *body, size_t len, char out[65]);

/*
 * The deterministic event_id: the first 32 hex chars of
 * SHA-256("ledgerline.v1\n" type "\n" key). `key` is what makes the outcome
 * unique:
 *   payment.approved/declined/completed/failed  the payment_id
 *   settlement.batch.closed                      the batch_id
 *   message.rejected                             "<queue>\n<payment_id>\n<reason>\n
 *       <hex SHA-256 of the raw body>", payment_id "-" when not readable
 *       (msg_rejected_key() builds it). The body hash is in the key so that
 *       two different bodies rejected for the same payment_id (an
 *       idempotency conflict, say) are two events, while a redelivery of
 *       the same body is the same event; the reason, so that one body
 *       rejected for two reasons (unsigned, then signed but invalid) is two
 *       events that consumers deduplicating by event_id both see.
 * The same outcome always gets the same id, whenever it is encoded.
 */
void msg_event_id(const char *type, const char *key, char out[MSG_EVENT_ID_LEN + 1]);

/* Builds the message.rejected event key described above into out (n bytes).
 * LL_OK or LL_ERANGE if it does not fit (MSG_REJECTED_KEY_MAX always does). */
#define MSG_REJECTED_KEY_MAX (MSG_ID_MAX * 2 + 96)
LL_MUSTCHECK int msg_rejected_key(const char *queue, const char *payment_id_or_null,
                                  msg_reason_t reason, const void *body, size_t len, char *out,
                                  size_t n);

/* RFC 3339 UTC with milliseconds: "2026-11-23T09:31:25.123Z". Clamped to
 * years 0000..9999. */
void msg_format_time(int64_t unix_ms, char out[MSG_TIME_LEN + 1]);

/* Parses exactly the format msg_format_time() writes (a real calendar date,
 * no leap second). LL_OK, or LL_EINVAL. */
LL_MUSTCHECK int msg_parse_time(const char *s, int64_t *out_ms);

/* One top-level field of a message body. */
typedef struct {
    const char *name;
    bool required;
} msg_field_t;

/* The top-level fields of the body of routing key `type` (the eighteen of
 * docs/contract.md), in the order the decoder checks them; *n gets the
 * count. NULL for an unknown type. Static. */
const msg_field_t *msg_fields(const char *type, size_t *n);

/* True iff `reason` is a payment.failed reason of the contract
 * (insufficient_funds, unknown_account, account_frozen, currency_mismatch,
 * balance_overflow). */
bool msg_failure_reason_valid(const char *reason);
/* The failed reasons, for iteration; NULL past the end. Static. */
const char *msg_failure_reason_at(size_t i);

/* True iff `reason` is a refund.failed reason of the contract
 * (payment_not_completed, refund_exceeds_payment, insufficient_funds,
 * account_frozen, balance_overflow); msg_refund_failure_reason_at()
 * iterates them (NULL past the end). */
bool msg_refund_failure_reason_valid(const char *reason);
const char *msg_refund_failure_reason_at(size_t i);

/* deposit.failed reasons (unknown_account, account_frozen,
 * currency_mismatch, balance_overflow) and withdrawal.failed reasons
 * (risk_declined, insufficient_funds, unknown_account, account_frozen,
 * currency_mismatch, balance_overflow), likewise. */
bool msg_deposit_failure_reason_valid(const char *reason);
const char *msg_deposit_failure_reason_at(size_t i);
bool msg_withdrawal_failure_reason_valid(const char *reason);
const char *msg_withdrawal_failure_reason_at(size_t i);

/* Is s (len bytes) an id: 1-64 chars of [A-Za-z0-9_.:-]? For payment ids,
 * account ids, rule names; ledgerctl validates its arguments with it. */
bool msg_id_valid(const char *s, size_t len);

/* Copies src into dst (n > 0 bytes) as valid UTF-8 for an event body:
 * invalid bytes and control characters become '?', and a cut never splits
 * a character. For any text that did not come from the codec (a signature
 * header, a server error) before it goes into a msg_reject_t. */
void msg_text_clean(char *dst, size_t n, const char *src);

#endif
