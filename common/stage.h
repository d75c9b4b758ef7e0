/*
 * stage.h - a stage as the runtime runs it (workers/<kind>/ fills in a
 * stage_t), and the skeleton every stage shares, so that a stage keeps
 * only what differs: which message it consumes, which keyrings it uses,
 * which SQL function decides its batch and what a new decision publishes.
 *
 * The skeleton, per batch (the runtime calls it; docs/contract.md has the
 * messages, docs/ledger.md the SQL):
 *   decode   signature check with the stage's verify keyring (when it has
 *            one), then the stage's decoder; sets the item's msg, key
 *            (payment_id, refund_id), payment_id, canonical request and
 *            payload hash, or rejects;
 *   apply    one call of the stage's batch function: $1 is the JSON array
 *            of the BATCHED items (stage_batch_json), $2.. the stage's own
 *            parameters; it returns one row per element in their order,
 *            read by column name: verdict 'conflict' (prior_payload) is an
 *            idempotency_conflict rejection, 'duplicate' a replay of the
 *            stored event (for a stage that publishes per payment), any
 *            other row goes to the stage's decide();
 *   release  frees what the decoder allocated.
 *
 * Public API: stage_keys_t, stage_row_t, stage_col, stage_col_is, stage_t,
 * stage_decode, stage_release, stage_payment, stage_batch_json,
 * stage_apply, stage_new_event, stage_split_rules.
 */
#ifndef LL_STAGE_H
#define LL_STAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "batch.h"
#include "db.h"
#include "msg_decode.h"
#include "sbuf.h"
#include "settings.h"
#include "sign.h"
#include "tick.h"

/* The header a deferred or parked copy carries its message type in (a
 * copy that comes back through a retry tier or a replay has the queue's
 * name as its routing key). */
#define STAGE_TYPE_HEADER "x-ledgerline-type"

/* A keyring of the signing settings (sign.h: who signs what). */
typedef enum {
    STAGE_KEYS_NONE,
    STAGE_KEYS_REQUESTS,  /* signing.request_keys_file: producers sign requests */
    STAGE_KEYS_APPROVALS, /* signing.approval_keys_file: risk signs approvals */
} stage_keys_t;

/* One row of a stage's batch function. */
typedef struct stage_row {
    PGresult *res;
    int row;
} stage_row_t;

/* The value of column `name` (text form, "" for NULL). A column the
 * result does not have is a programming error: it panics. */
const char *stage_col(const stage_row_t *r, const char *name);
/* stage_col(r, name) equals `value`. */
bool stage_col_is(const stage_row_t *r, const char *name, const char *value);

typedef struct stage {
    const char *name;   /* processed.stage, outbox.stage, Redis keys: "payment" */
    const char *worker; /* program name for logs and usage: "payment-worker" */
    const char *queue;  /* the work queue it consumes: "payments" */
    int http_port;      /* default port of its endpoints (http.port -1) */

    const msg_decoder_t *consumes; /* the message type of its queue */
    /* Or, for a queue of several types (NULL `consumes`): the decoders,
     * NULL-terminated, each delivery decoded by the one whose type is its
     * routing key (any other routing key is a schema_violation). */
    const msg_decoder_t *const *consumes_any;
    stage_keys_t verify; /* checks the signature of what it consumes */
    stage_keys_t sign;   /* signs the events it publishes */

    /* Its batch function, "SELECT ... FROM f($1::jsonb, ...) ORDER BY ord":
     * columns verdict and prior_payload at least. `nparams` parameters
     * follow the batch; params() gives them (strings valid until the next
     * init/reload). */
    const char *apply_sql;
    int nparams;
    void (*params)(const char **out);
    /* Optional: appends the stage's own fields to an element of the batch
     * JSON (the common ones are written: see stage_batch_json). */
    void (*element)(sbuf_t *b, const item_t *it);
    /* A duplicate replays the event stored for the payment (false: the
     * stage publishes nothing per payment, a duplicate needs nothing). */
    bool replays;
    /* Decides a row that is not a conflict nor a replayed duplicate:
     * VERDICT_NEW with the outcome event set (item_set_event), or
     * item_reject(). */
    void (*decide)(item_t *it, const stage_row_t *r);

    /* Optional: called once after the settings are loaded (LL_OK or the
     * process exits 1 with the error logged), and on SIGHUP between two
     * batches (a failed reload keeps the old state, keyrings included). */
    int (*init)(const settings_t *cfg);
    /* Optional periodic job (closing settlement batches), run between
     * batches when PostgreSQL is up; it writes in tick_transact()
     * transactions and returns how many it committed (tick.h). */
    int (*tick)(tick_env_t *env);
} stage_t;

/* Decodes it->d as st consumes it (signature first, with `verify` when
 * not NULL). LL_OK: it->msg, payment_id, canonical and hash are set.
 * LL_EREJECT: it->why is set, and payment_id when it is readable. Out of
 * memory is fatal. */
int stage_decode(const stage_t *st, const sign_keyring_t *verify, item_t *it);
/* Frees it->msg (NULL-safe). */
void stage_release(const stage_t *st, item_t *it);
/* The request fields of a decoded item (a stage consuming payment
 * messages; panics for one that does not). */
const msg_payment_t *stage_payment(const stage_t *st, const item_t *it);

/* The JSON array of the BATCHED items of items[0..n): per element
 * {key, hash, payload (the canonical request)}, for payment messages
 * {payment_id, payer, payee, amount, currency}, and the stage's element()
 * fields. *count: how many. Caller frees. */
char *stage_batch_json(const stage_t *st, item_t *items, size_t n, size_t *count);

/* A new decision of `it`: verdict NEW and its outcome event `type` with
 * `body` (taken; NULL, an encoder's failure, panics naming the outcome),
 * whose event_id is of the item's own id (its key without a type prefix). */
void stage_new_event(item_t *it, const char *type, char *body, const char *outcome);

/* Splits a PostgreSQL text[] in text form ("{a,b}", rule names need no
 * quoting) in place into out[]; returns how many (at most MSG_RULES_MAX). */
size_t stage_split_rules(char *text, const char *out[MSG_RULES_MAX]);

/* Inside the batch transaction: runs the stage's batch function once over
 * the BATCHED items of items[0..n) and decides each from its row. LL_OK
 * or the db error (a row count that does not match is LL_EDB). */
int stage_apply(const stage_t *st, db_t *db, item_t *items, size_t n) LL_MUSTCHECK;

#endif
