/*
 * msg_decode.c - the decoding half of the message codec: strict validation
 * of payment.requested, payment.approved, payment.completed and
 * refund.requested bodies into their structs, and id peeking. What it shares with the encoders
 * (reasons, field tables, ids, time) is in msg.c.
 *
 * Public API: see msg_decode.h.
 */
#include "msg_decode.h"

#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "money.h"

/* ---- the rejection record ----------------------------------------------- */

/* Fills *why (text cleaned: msg_text_clean) and returns LL_EREJECT. */
static int msg_reject(msg_reject_t *why, msg_reason_t reason, const char *field, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

static int msg_reject(msg_reject_t *why, msg_reason_t reason, const char *field, const char *fmt,
                      ...)
{
    if (!why)
        return LL_EREJECT;
    char text[512], full[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (field && field[0])
        snprintf(full, sizeof full, "%.120s: %s", field, text);
    else
        snprintf(full, sizeof full, "%s", text);
    why->reason = reason;
    msg_text_clean(why->field, sizeof why->field, field ? field : "");
    msg_text_clean(why->detail, sizeof why->detail, full);
    return LL_EREJECT;
}

static const char *msg_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "an unknown value";
}

/* ---- field validators --------------------------------------------------- */

/* "prefix.name", or "name" when prefix is empty. */
static void msg_path(char *dst, size_t n, const char *prefix, const char *name)
{
    if (prefix && prefix[0])
        snprintf(dst, n, "%s.%s", prefix, name);
    else
        snprintf(dst, n, "%s", name);
}

/* *v = obj[name]; missing and required -> reject; missing and optional ->
 * LL_OK with *v == NULL. */
static int msg_get(json_t *obj, const char *path, const char *name, bool required, json_t **v,
                   msg_reject_t *why)
{
    *v = json_object_get(obj, name);
    if (!*v && required)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path, "required field missing");
    return LL_OK;
}

static int msg_want_string(json_t *v, const char *path, msg_reject_t *why)
{
    if (!json_is_string(v))
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path, "must be a string, got %s",
                          msg_type_name(v));
    return LL_OK;
}

/* A required id: 1..MSG_ID_MAX chars of MSG_ID_CHARSET. */
static int msg_check_id(json_t *obj, const char *path, const char *name, char out[MSG_ID_MAX + 1],
                        msg_reject_t *why)
{
    json_t *v;
    int rc = msg_get(obj, path, name, true, &v, why);
    if (rc == LL_OK)
        rc = msg_want_string(v, path, why);
    if (rc != LL_OK)
        return rc;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path, "must not be empty");
    if (len > MSG_ID_MAX)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path,
                          "must be at most %d characters, got %zu", MSG_ID_MAX, len);
    if (!msg_id_valid(s, len))
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path,
                          "must contain only the characters [" MSG_ID_CHARSET "]");
    memcpy(out, s, len + 1);
    return LL_OK;
}

/* A required JSON integer in [lo, hi]; reals and strings are refused. */
static int msg_check_int(json_t *obj, const char *path, const char *name, int64_t lo, int64_t hi,
                         int64_t *out, msg_reject_t *why)
{
    json_t *v;
    int rc = msg_get(obj, path, name, true, &v, why);
    if (rc != LL_OK)
        return rc;
    if (!json_is_integer(v))
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path, "must be a JSON integer, got %s",
                          msg_type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path,
                          "must be between %lld and %lld, got %lld", (long long)lo, (long long)hi,
                          (long long)x);
    *out = x;
    return LL_OK;
}

/* A required time stamp in msg_format_time() form. */
static int msg_check_time(json_t *obj, const char *path, const char *name, int64_t *out,
                          msg_reject_t *why)
{
    json_t *v;
    int rc = msg_get(obj, path, name, true, &v, why);
    if (rc == LL_OK)
        rc = msg_want_string(v, path, why);
    if (rc != LL_OK)
        return rc;
    if (msg_parse_time(json_string_value(v), out) != LL_OK)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path,
                          "must be an RFC 3339 UTC time with milliseconds "
                          "(YYYY-MM-DDTHH:MM:SS.mmmZ)");
    return LL_OK;
}

/* The first top-level key of obj that is not in the table, in document
 * order (jansson keeps insertion order). */
static int msg_check_unknown(json_t *obj, const char *prefix, const msg_field_t *f, size_t nf,
                             msg_reject_t *why)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < nf && !known; i++)
            known = strcmp(f[i].name, key) == 0;
        if (!known) {
            char path[160];
            msg_path(path, sizeof path, prefix, key);
            return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path, "unknown field");
        }
    }
    return LL_OK;
}

static int msg_check_metadata(json_t *root, msg_payment_t *out, msg_reject_t *why)
{
    json_t *md;
    int rc = msg_get(root, "metadata", "metadata", false, &md, why);
    if (rc != LL_OK || !md)
        return rc;
    if (!json_is_object(md))
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "metadata", "must be an object, got %s",
                          msg_type_name(md));
    if (json_object_size(md) > MSG_METADATA_MAX)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "metadata",
                          "must have at most %d keys, got %zu", MSG_METADATA_MAX,
                          json_object_size(md));
    const char *key;
    json_t *v;
    json_object_foreach(md, key, v)
    {
        if (!json_is_string(v)) {
            char path[160];
            msg_path(path, sizeof path, "metadata", key);
            return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path, "must be a string, got %s",
                              msg_type_name(v));
        }
    }
    out->metadata = json_incref(md);
    return LL_OK;
}

/* A required ISO 4217 currency code. */
static int msg_check_currency(json_t *root, char out[4], msg_reject_t *why)
{
    json_t *v;
    int rc;
    if ((rc = msg_get(root, "currency", "currency", true, &v, why)) != LL_OK ||
        (rc = msg_want_string(v, "currency", why)) != LL_OK)
        return rc;
    const char *cur = json_string_value(v);
    size_t clen = json_string_length(v);
    bool shape = clen == 3;
    for (size_t i = 0; shape && i < 3; i++)
        shape = cur[i] >= 'A' && cur[i] <= 'Z';
    if (!shape)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "currency",
                          "must be 3 upper-case letters (ISO 4217)");
    if (!money_currency_valid(cur))
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "currency",
                          "\"%s\" is not an active ISO 4217 currency code", cur);
    memcpy(out, cur, 4);
    return LL_OK;
}

/* An optional text of at most MSG_DESCRIPTION_MAX bytes (description,
 * reason, destination): *has says whether it was there. */
static int msg_check_text(json_t *root, const char *name, char out[MSG_DESCRIPTION_MAX + 1],
                          bool *has, msg_reject_t *why)
{
    json_t *v;
    int rc = msg_get(root, name, name, false, &v, why);
    if (rc != LL_OK || !v)
        return rc;
    if ((rc = msg_want_string(v, name, why)) != LL_OK)
        return rc;
    size_t len = json_string_length(v);
    if (len > MSG_DESCRIPTION_MAX)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, name,
                          "must be at most %d bytes of UTF-8, got %zu", MSG_DESCRIPTION_MAX, len);
    memcpy(out, json_string_value(v), len + 1);
    *has = true;
    return LL_OK;
}

/* The request fields, in msg_fields(MSG_TYPE_REQUESTED) order, then payer
 * != payee. */
static int msg_check_request(json_t *root, msg_payment_t *out, msg_reject_t *why)
{
    int rc;
    if ((rc = msg_check_id(root, "payment_id", "payment_id", out->payment_id, why)) != LL_OK ||
        (rc = msg_check_id(root, "payer", "payer", out->payer, why)) != LL_OK ||
        (rc = msg_check_id(root, "payee", "payee", out->payee, why)) != LL_OK)
        return rc;
    if (strcmp(out->payer, out->payee) == 0)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "payee", "must differ from payer");
    rc = msg_check_int(root, "amount", "amount", MSG_AMOUNT_MIN, MSG_AMOUNT_MAX, &out->amount, why);
    if (rc != LL_OK)
        return rc;

    if ((rc = msg_check_currency(root, out->currency, why)) != LL_OK ||
        (rc = msg_check_text(root, "description", out->description, &out->has_description, why)) !=
            LL_OK)
        return rc;
    return msg_check_metadata(root, out, why);
}

/* ---- parsing ------------------------------------------------------------ */

/* Finds the first number (document order) that does not fit int64 in a
 * tree parsed with JSON_DECODE_INT_AS_REAL; writes its path. */
static bool msg_find_bignum(json_t *v, char *path, size_t n, int depth)
{
    if (depth > 64)
        return false;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return !(d > -9223372036854775808.0 && d < 9223372036854775808.0);
    }
    size_t used = strlen(path);
    if (json_is_object(v)) {
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x)
        {
            snprintf(path + used, n - used, "%s%s", used ? "." : "", key);
            if (msg_find_bignum(x, path, n, depth + 1))
                return true;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            snprintf(path + used, n - used, "[%zu]", i);
            if (msg_find_bignum(x, path, n, depth + 1))
                return true;
        }
    }
    path[used] = '\0';
    return false;
}

/*
 * Steps 1-4 of the decoding order in msg.h: size, JSON, numbers, root
 * object. On LL_OK *root is a new reference the caller releases.
 */
static int msg_parse(const void *body, size_t len, json_t **root, msg_reject_t *why)
{
    *root = NULL;
    if (len > MSG_BODY_MAX)
        return msg_reject(why, MSG_REASON_OVERSIZED, "", "body is %zu bytes, at most %d allowed",
                          len, MSG_BODY_MAX);
    if (!body)
        body = "";
    const size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY;
    json_error_t err;
    json_t *j = json_loadb(body, len, flags, &err);
    if (!j) {
        switch (json_error_code(&err)) {
        case json_error_out_of_memory:
            return LL_ENOMEM;
        case json_error_stack_overflow:
            return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "",
                              "nesting deeper than the schema allows");
        case json_error_numeric_overflow: {
            char path[160] = "";
            json_t *r = json_loadb(body, len, flags | JSON_DECODE_INT_AS_REAL, NULL);
            bool found = r && msg_find_bignum(r, path, sizeof path, 0);
            json_decref(r);
            return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, found ? path : "",
                              "number out of range (%s at byte %d)", err.text, err.position);
        }
        default:
            return msg_reject(why, MSG_REASON_MALFORMED_JSON, "",
                              "invalid JSON at line %d column %d: %s", err.line, err.column,
                              err.text);
        }
    }
    if (!json_is_object(j)) {
        int rc = msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "",
                            "body must be a JSON object, got %s", msg_type_name(j));
        json_decref(j);
        return rc;
    }
    *root = j;
    return LL_OK;
}

/* Step 5 (events): `type` must be present and equal `type`. */
static int msg_check_type(json_t *root, const char *type, msg_reject_t *why)
{
    json_t *v;
    int rc = msg_get(root, "type", "type", true, &v, why);
    if (rc != LL_OK)
        return rc;
    if (!json_is_string(v) || strcmp(json_string_value(v), type) != 0)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "type", "must be \"%s\"", type);
    return LL_OK;
}

/* Envelope (type, unknown fields, event_id, occurred_at) of an event. */
static int msg_check_envelope(json_t *root, const char *type, char event_id[MSG_EVENT_ID_LEN + 1],
                              int64_t *occurred_ms, msg_reject_t *why)
{
    size_t nf;
    const msg_field_t *f = msg_fields(type, &nf);
    int rc;
    if ((rc = msg_check_type(root, type, why)) != LL_OK ||
        (rc = msg_check_unknown(root, "", f, nf, why)) != LL_OK)
        return rc;
    json_t *v;
    if ((rc = msg_get(root, "event_id", "event_id", true, &v, why)) != LL_OK ||
        (rc = msg_want_string(v, "event_id", why)) != LL_OK)
        return rc;
    const char *s = json_string_value(v);
    bool ok = json_string_length(v) == MSG_EVENT_ID_LEN;
    for (size_t i = 0; ok && i < MSG_EVENT_ID_LEN; i++)
        ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
    if (!ok)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "event_id",
                          "must be %d lower-case hex characters", MSG_EVENT_ID_LEN);
    memcpy(event_id, s, MSG_EVENT_ID_LEN + 1);
    return msg_check_time(root, "occurred_at", "occurred_at", occurred_ms, why);
}

int msg_payment_decode(const void *body, size_t len, msg_payment_t *out, msg_reject_t *why)
{
    memset(out, 0, sizeof *out);
    json_t *root;
    int rc = msg_parse(body, len, &root, why);
    if (rc != LL_OK)
        return rc;
    size_t nf;
    const msg_field_t *f = msg_fields(MSG_TYPE_REQUESTED, &nf);
    rc = msg_check_unknown(root, "", f, nf, why);
    if (rc == LL_OK)
        rc = msg_check_request(root, out, why);
    json_decref(root);
    if (rc != LL_OK)
        msg_payment_clear(out);
    return rc;
}

static int msg_check_rules(json_t *arr, const char *path, char rules[][MSG_ID_MAX + 1],
                           size_t *nrules, msg_reject_t *why)
{
    if (!json_is_array(arr))
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path, "must be an array, got %s",
                          msg_type_name(arr));
    if (json_array_size(arr) > MSG_RULES_MAX)
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, path,
                          "must have at most %d entries, got %zu", MSG_RULES_MAX,
                          json_array_size(arr));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        char ipath[64];
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        int rc = msg_want_string(v, ipath, why);
        if (rc != LL_OK)
            return rc;
        if (!msg_id_valid(json_string_value(v), json_string_length(v)))
            return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, ipath,
                              "must be 1-%d characters of [" MSG_ID_CHARSET "]", MSG_ID_MAX);
        memcpy(rules[i], json_string_value(v), json_string_length(v) + 1);
    }
    *nrules = json_array_size(arr);
    return LL_OK;
}

static int msg_check_risk(json_t *root, msg_approved_t *out, msg_reject_t *why)
{
    static const msg_field_t risk_fields[] = {{"score", true}, {"rules", true}};
    json_t *risk;
    int rc = msg_get(root, "risk", "risk", true, &risk, why);
    if (rc != LL_OK)
        return rc;
    if (!json_is_object(risk))
        return msg_reject(why, MSG_REASON_SCHEMA_VIOLATION, "risk", "must be an object, got %s",
                          msg_type_name(risk));
    if ((rc = msg_check_unknown(risk, "risk", risk_fields, sizeof risk_fields / sizeof *risk_fields,
                                why)) != LL_OK)
        return rc;
    int64_t score;
    rc = msg_check_int(risk, "risk.score", "score", 0, MSG_SCORE_MAX, &score, why);
    if (rc != LL_OK)
        return rc;
    out->score = (int)score;
    json_t *rules;
    if ((rc = msg_get(risk, "risk.rules", "rules", true, &rules, why)) != LL_OK)
        return rc;
    return msg_check_rules(rules, "risk.rules", out->rules, &out->nrules, why);
}

void msg_approved_clear(msg_approved_t *a)
{
    if (!a)
        return;
    msg_payment_clear(&a->payment);
    memset(a, 0, sizeof *a);
}

int msg_approved_decode(const void *body, size_t len, msg_approved_t *out, msg_reject_t *why)
{
    memset(out, 0, sizeof *out);
    json_t *root;
    int rc = msg_parse(body, len, &root, why);
    if (rc != LL_OK)
        return rc;
    rc = msg_check_envelope(root, MSG_TYPE_APPROVED, out->event_id, &out->occurred_ms, why);
    if (rc == LL_OK)
        rc = msg_check_request(root, &out->payment, why);
    if (rc == LL_OK)
        rc = msg_check_risk(root, out, why);
    json_decref(root);
    if (rc != LL_OK)
        msg_approved_clear(out);
    return rc;
}

void msg_completed_clear(msg_completed_t *c)
{
    if (!c)
        return;
    msg_payment_clear(&c->payment);
    memset(c, 0, sizeof *c);
}

int msg_completed_decode(const void *body, size_t len, msg_completed_t *out, msg_reject_t *why)
{
    memset(out, 0, sizeof *out);
    json_t *root;
    int rc = msg_parse(body, len, &root, why);
    if (rc != LL_OK)
        return rc;
    rc = msg_check_envelope(root, MSG_TYPE_COMPLETED, out->event_id, &out->occurred_ms, why);
    if (rc == LL_OK)
        rc = msg_check_request(root, &out->payment, why);
    if (rc == LL_OK)
        rc = msg_check_id(root, "transfer_id", "transfer_id", out->transfer_id, why);
    if (rc == LL_OK)
        rc = msg_check_time(root, "posted_at", "posted_at", &out->posted_ms, why);
    json_decref(root);
    if (rc != LL_OK)
        msg_completed_clear(out);
    return rc;
}

void msg_refund_clear(msg_refund_t *r)
{
    if (r)
        memset(r, 0, sizeof *r);
}

int msg_refund_decode(const void *body, size_t len, msg_refund_t *out, msg_reject_t *why)
{
    memset(out, 0, sizeof *out);
    json_t *root;
    int rc = msg_parse(body, len, &root, why);
    if (rc != LL_OK)
        return rc;
    size_t nf;
    const msg_field_t *f = msg_fields(MSG_TYPE_REFUND_REQUESTED, &nf);
    if ((rc = msg_check_unknown(root, "", f, nf, why)) == LL_OK &&
        (rc = msg_check_id(root, "refund_id", "refund_id", out->refund_id, why)) == LL_OK &&
        (rc = msg_check_id(root, "payment_id", "payment_id", out->payment_id, why)) == LL_OK &&
        (rc = msg_check_int(root, "amount", "amount", MSG_AMOUNT_MIN, MSG_AMOUNT_MAX, &out->amount,
                            why)) == LL_OK)
        rc = msg_check_text(root, "reason", out->reason, &out->has_reason, why);
    json_decref(root);
    if (rc != LL_OK)
        msg_refund_clear(out);
    return rc;
}

/* ---- deposits and withdrawals --------------------------------------------- */

/* The top-level fields of `type` only (step 6 of the order). */
static int msg_parse_command(const void *body, size_t len, const char *type, json_t **root,
                             msg_reject_t *why)
{
    int rc = msg_parse(body, len, root, why);
    if (rc != LL_OK)
        return rc;
    size_t nf;
    const msg_field_t *f = msg_fields(type, &nf);
    rc = msg_check_unknown(*root, "", f, nf, why);
    if (rc != LL_OK) {
        json_decref(*root);
        *root = NULL;
    }
    return rc;
}

void msg_deposit_clear(msg_deposit_t *d)
{
    if (d)
        memset(d, 0, sizeof *d);
}

int msg_deposit_decode(const void *body, size_t len, msg_deposit_t *out, msg_reject_t *why)
{
    memset(out, 0, sizeof *out);
    json_t *root;
    int rc = msg_parse_command(body, len, MSG_TYPE_DEPOSIT_RECEIVED, &root, why);
    if (rc != LL_OK)
        return rc;
    if ((rc = msg_check_id(root, "deposit_id", "deposit_id", out->deposit_id, why)) == LL_OK &&
        (rc = msg_check_id(root, "account", "account", out->account, why)) == LL_OK &&
        (rc = msg_check_int(root, "amount", "amount", MSG_AMOUNT_MIN, MSG_AMOUNT_MAX, &out->amount,
                            why)) == LL_OK &&
        (rc = msg_check_currency(root, out->currency, why)) == LL_OK &&
        (rc = msg_check_id(root, "rail", "rail", out->rail, why)) == LL_OK)
        rc = msg_check_id(root, "rail_reference", "rail_reference", out->rail_reference, why);
    json_decref(root);
    if (rc != LL_OK)
        msg_deposit_clear(out);
    return rc;
}

void msg_withdrawal_clear(msg_withdrawal_t *w)
{
    if (w)
        memset(w, 0, sizeof *w);
}

int msg_withdrawal_decode(const void *body, size_t len, msg_withdrawal_t *out, msg_reject_t *why)
{
    memset(out, 0, sizeof *out);
    json_t *root;
    int rc = msg_parse_command(body, len, MSG_TYPE_WITHDRAWAL_REQUESTED, &root, why);
    if (rc != LL_OK)
        return rc;
    if ((rc = msg_check_id(root, "withdrawal_id", "withdrawal_id", out->withdrawal_id, why)) ==
            LL_OK &&
        (rc = msg_check_id(root, "account", "account", out->account, why)) == LL_OK &&
        (rc = msg_check_int(root, "amount", "amount", MSG_AMOUNT_MIN, MSG_AMOUNT_MAX, &out->amount,
                            why)) == LL_OK &&
        (rc = msg_check_currency(root, out->currency, why)) == LL_OK &&
        (rc = msg_check_id(root, "rail", "rail", out->rail, why)) == LL_OK)
        rc = msg_check_text(root, "destination", out->destination, &out->has_destination, why);
    json_decref(root);
    if (rc != LL_OK)
        msg_withdrawal_clear(out);
    return rc;
}

void msg_return_clear(msg_return_t *r)
{
    if (r)
        memset(r, 0, sizeof *r);
}

int msg_return_decode(const void *body, size_t len, msg_return_t *out, msg_reject_t *why)
{
    memset(out, 0, sizeof *out);
    json_t *root;
    int rc = msg_parse_command(body, len, MSG_TYPE_WITHDRAWAL_RETURNED, &root, why);
    if (rc != LL_OK)
        return rc;
    if ((rc = msg_check_id(root, "withdrawal_id", "withdrawal_id", out->withdrawal_id, why)) ==
            LL_OK &&
        (rc = msg_check_id(root, "rail_reference", "rail_reference", out->rail_reference, why)) ==
            LL_OK)
        rc = msg_check_text(root, "reason", out->reason, &out->has_reason, why);
    json_decref(root);
    if (rc != LL_OK)
        msg_return_clear(out);
    return rc;
}

/* ---- id peeking --------------------------------------------------------- */

static bool msg_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Lexical scan for "<field>" : "<id>"; every occurrence must agree. */
static int msg_peek_scan(const char *s, size_t len, const char *field, char out[MSG_ID_MAX + 1])
{
    char key[MSG_ID_MAX + 3];
    int kw = snprintf(key, sizeof key, "\"%s\"", field);
    if (kw < 0 || (size_t)kw >= sizeof key)
        return LL_ENOTFOUND;
    const size_t klen = (size_t)kw;
    bool found = false;
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *k = memmem(p, (size_t)(end - p), key, klen);
        if (!k)
            break;
        p = k + klen;
        const char *q = p;
        while (q < end && msg_is_ws(*q))
            q++;
        if (q >= end || *q != ':')
            continue; /* a value, not a key */
        q++;
        while (q < end && msg_is_ws(*q))
            q++;
        if (q >= end || *q != '"')
            return LL_ENOTFOUND;
        const char *v = ++q;
        while (q < end && *q != '"' && q - v <= MSG_ID_MAX)
            q++;
        if (q >= end || *q != '"' || !msg_id_valid(v, (size_t)(q - v)))
            return LL_ENOTFOUND;
        size_t vlen = (size_t)(q - v);
        if (found && (strlen(out) != vlen || memcmp(out, v, vlen) != 0))
            return LL_ENOTFOUND;
        memcpy(out, v, vlen);
        out[vlen] = '\0';
        found = true;
        p = q + 1;
    }
    return found ? LL_OK : LL_ENOTFOUND;
}

int msg_peek_payment_id(const void *body, size_t len, char out[MSG_ID_MAX + 1])
{
    return msg_peek_id(body, len, "payment_id", out);
}

int msg_peek_id(const void *body, size_t len, const char *field, char out[MSG_ID_MAX + 1])
{
    out[0] = '\0';
    if (!body)
        return LL_ENOTFOUND;
    if (len <= MSG_BODY_MAX) {
        json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
        if (root) {
            json_t *v = json_object_get(root, field); /* NULL if not an object */
            int rc = LL_ENOTFOUND;
            if (json_is_string(v) && msg_id_valid(json_string_value(v), json_string_length(v))) {
                memcpy(out, json_string_value(v), json_string_length(v) + 1);
                rc = LL_OK;
            }
            json_decref(root);
            return rc;
        }
    }
    char tmp[MSG_ID_MAX + 1];
    int rc = msg_peek_scan(body, len < MSG_BODY_MAX ? len : MSG_BODY_MAX, field, tmp);
    if (rc == LL_OK)
        memcpy(out, tmp, sizeof tmp);
    return rc;
}

/* ---- the decoders as values --------------------------------------------- */

static char *requested_canonical(const void *msg)
{
    return msg_payment_canonical(msg);
}
static char *approved_canonical(const void *msg)
{
    return msg_payment_canonical(&((const msg_approved_t *)msg)->payment);
}
static char *completed_canonical(const void *msg)
{
    return msg_payment_canonical(&((const msg_completed_t *)msg)->payment);
}
static char *refund_requested_canonical(const void *msg)
{
    return msg_refund_canonical(msg);
}
static char *deposit_received_canonical(const void *msg)
{
    return msg_deposit_canonical(msg);
}
static char *withdrawal_requested_canonical(const void *msg)
{
    return msg_withdrawal_canonical(msg);
}
static char *withdrawal_returned_canonical(const void *msg)
{
    return msg_return_canonical(msg);
}

/* The typed decode and clear functions of struct T behind the untyped
 * signatures of msg_decoder_t (a call through a cast function pointer
 * would be undefined). */
#define MSG_DECODER(name, rk, keyf, prefix, T, key_off, pid_off, pay_off, decode_fn, clear_fn)     \
    static int name##_decode(const void *body, size_t len, void *out, msg_reject_t *why)           \
    {                                                                                              \
        return decode_fn(body, len, (T *)out, why);                                                \
    }                                                                                              \
    static void name##_clear(void *msg)                                                            \
    {                                                                                              \
        clear_fn((T *)msg);                                                                        \
    }                                                                                              \
    const msg_decoder_t msg_decoder_##name = {                                                     \
        rk,      keyf,    prefix,        sizeof(T),    key_off,                                    \
        pid_off, pay_off, name##_decode, name##_clear, name##_canonical}

MSG_DECODER(requested, MSG_TYPE_REQUESTED, "payment_id", "", msg_payment_t,
            offsetof(msg_payment_t, payment_id), offsetof(msg_payment_t, payment_id), 0,
            msg_payment_decode, msg_payment_clear);
MSG_DECODER(approved, MSG_TYPE_APPROVED, "payment_id", "", msg_approved_t,
            offsetof(msg_approved_t, payment.payment_id),
            offsetof(msg_approved_t, payment.payment_id), offsetof(msg_approved_t, payment),
            msg_approved_decode, msg_approved_clear);
MSG_DECODER(completed, MSG_TYPE_COMPLETED, "payment_id", "", msg_completed_t,
            offsetof(msg_completed_t, payment.payment_id),
            offsetof(msg_completed_t, payment.payment_id), offsetof(msg_completed_t, payment),
            msg_completed_decode, msg_completed_clear);
MSG_DECODER(refund_requested, MSG_TYPE_REFUND_REQUESTED, "refund_id", "", msg_refund_t,
            offsetof(msg_refund_t, refund_id), offsetof(msg_refund_t, payment_id), MSG_NO_PAYMENT,
            msg_refund_decode, msg_refund_clear);
MSG_DECODER(deposit_received, MSG_TYPE_DEPOSIT_RECEIVED, "deposit_id", "deposit:", msg_deposit_t,
            offsetof(msg_deposit_t, deposit_id), MSG_NO_PAYMENT, MSG_NO_PAYMENT, msg_deposit_decode,
            msg_deposit_clear);
MSG_DECODER(withdrawal_requested, MSG_TYPE_WITHDRAWAL_REQUESTED, "withdrawal_id",
            "withdrawal:", msg_withdrawal_t, offsetof(msg_withdrawal_t, withdrawal_id),
            MSG_NO_PAYMENT, MSG_NO_PAYMENT, msg_withdrawal_decode, msg_withdrawal_clear);
MSG_DECODER(withdrawal_returned, MSG_TYPE_WITHDRAWAL_RETURNED, "withdrawal_id",
            "return:", msg_return_t, offsetof(msg_return_t, withdrawal_id), MSG_NO_PAYMENT,
            MSG_NO_PAYMENT, msg_return_decode, msg_return_clear);
