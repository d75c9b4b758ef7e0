/*
 * msg.h - the message codec: strict decoding of the JSON bodies Ledgerline
 * consumes, and encoding of the events it publishes (DESIGN.md section 2).
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
 * Event bodies (encoders below) are compact JSON with the envelope first:
 * event_id, type, payment_id (payment events), occurred_at, then the rest.
 * The event_id depends on the outcome, never on time; occurred_at is part of
 * the body, so a stage stores the encoded bytes in its outbox and
 * re-publishes exactly those bytes.
 *
 * Public API: msg_reason_t, msg_reason_str(), msg_reject_t, msg_payment_t,
 * msg_payment_clear(), msg_payment_decode(), msg_approved_t,
 * msg_approved_decode(), msg_approved_clear(), msg_completed_t,
 * msg_completed_decode(), msg_completed_clear(), msg_peek_payment_id(),
 * msg_payment_canonical(), msg_payment_hash(), msg_payment_diff(), msg_body_hash(), msg_event_id(),
 * msg_rejected_key(), msg_id_valid(), msg_format_time(), msg_parse_time(), msg_fields(),
 * msg_encode_approved(), msg_encode_declined(), msg_encode_completed(),
 * msg_encode_failed(), msg_batch_closed_t, msg_encode_batch_closed(),
 * msg_encode_rejected(), msg_failure_reason_valid(), msg_text_clean(), the MSG_*
 * constants.
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
#define MSG_TYPE_REQUESTED    "payment.requested"
#define MSG_TYPE_APPROVED     "payment.approved"
#define MSG_TYPE_DECLINED     "payment.declined"
#define MSG_TYPE_COMPLETED    "payment.completed"
#define MSG_TYPE_FAILED       "payment.failed"
#define MSG_TYPE_BATCH_CLOSED "settlement.batch.closed"
#define MSG_TYPE_REJECTED     "message.rejected"

/* The reason of payment.declined. */
#define MSG_DECLINE_REASON "risk_declined"

typedef enum {
    MSG_REASON_MALFORMED_JSON,
    MSG_REASON_SCHEMA_VIOLATION,
    MSG_REASON_OVERSIZED,
    MSG_REASON_BAD_SIGNATURE,
    MSG_REASON_IDEMPOTENCY_CONFLICT,
    MSG_REASON_PROCESSING_FAILED
} msg_reason_t;
#define MSG_REASON_COUNT 6

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

/* Frees what `p` owns (metadata) and zeroes it. Safe on a zeroed struct,
 * twice, and on NULL. */
void msg_payment_clear(msg_payment_t *p);

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

/*
 * Best effort: the payment_id of a body that failed validation, for
 * message.rejected's "payment_id when readable". Tries a JSON parse of the
 * body (top-level string "payment_id"); if the body is not JSON, scans its
 * first MSG_BODY_MAX bytes for `"payment_id" : "<id>"` and accepts the value
 * only if every occurrence agrees. The value must be a valid id (1-64 chars
 * of MSG_ID_CHARSET). LL_OK with `out` filled, else LL_ENOTFOUND.
 */
LL_MUSTCHECK int msg_peek_payment_id(const void *body, size_t len, char out[MSG_ID_MAX + 1]);

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

/* The top-level fields of the body of routing key `type` (the seven of
 * DESIGN.md section 2), in the order the decoder checks them; *n gets the
 * count. NULL for an unknown type. Static. */
const msg_field_t *msg_fields(const char *type, size_t *n);

/* True iff `reason` is a payment.failed reason of the contract
 * (insufficient_funds, unknown_account, account_frozen, currency_mismatch). */
bool msg_failure_reason_valid(const char *reason);
/* The failed reasons, for iteration; NULL past the end. Static. */
const char *msg_failure_reason_at(size_t i);

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
    int64_t net; /* gross - fees */
} msg_batch_closed_t;

char *msg_encode_batch_closed(const msg_batch_closed_t *b, int64_t occurred_ms);

/* message.rejected: reason and detail from `why`; `queue` the consuming
 * queue (must be an id, NULL otherwise); payment_id only when
 * payment_id_or_null is a valid id; event_key as built by
 * msg_rejected_key(). */
char *msg_encode_rejected(const char *queue, const msg_reject_t *why,
                          const char *payment_id_or_null, const char *event_key,
                          int64_t occurred_ms);

/* Is s (len bytes) an id: 1-64 chars of [A-Za-z0-9_.:-]? For payment ids,
 * account ids, rule names; ledgerctl validates its arguments with it. */
bool msg_id_valid(const char *s, size_t len);

/* Copies src into dst (n > 0 bytes) as valid UTF-8 for an event body:
 * invalid bytes and control characters become '?', and a cut never splits
 * a character. For any text that did not come from the codec (a signature
 * header, a server error) before it goes into a msg_reject_t. */
void msg_text_clean(char *dst, size_t n, const char *src);

/* ---- internal, shared by msg.c and msg_event.c; not for other modules -- */
LL_MUSTCHECK int msg__reject(msg_reject_t *why, msg_reason_t reason, const char *field,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
