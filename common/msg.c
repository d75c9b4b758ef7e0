/*
 * msg.c - the message core: what both codec halves (msg_decode.c,
 * msg_encode.c) and the stages share: reasons, field tables, ids, text
 * cleaning, hashing and event ids, a payment's canonical form, hash and
 * diff, and the contract's time format.
 *
 * Public API: see msg.h.
 */
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"

static const char *const msg_reasons[MSG_REASON_COUNT] = {
    [MSG_REASON_MALFORMED_JSON] = "malformed_json",
    [MSG_REASON_SCHEMA_VIOLATION] = "schema_violation",
    [MSG_REASON_OVERSIZED] = "oversized",
    [MSG_REASON_BAD_SIGNATURE] = "bad_signature",
    [MSG_REASON_IDEMPOTENCY_CONFLICT] = "idempotency_conflict",
    [MSG_REASON_PROCESSING_FAILED] = "processing_failed",
    [MSG_REASON_DUPLICATE_EXPIRED] = "duplicate_expired",
};

const char *msg_reason_str(msg_reason_t r)
{
    if ((unsigned)r >= MSG_REASON_COUNT)
        return "unknown";
    return msg_reasons[r];
}

/* ---- field tables (the decoders check in this order) -------------------- */

#define MSG_REQUEST_FIELDS                                                                         \
    {"payment_id", true}, {"payer", true}, {"payee", true}, {"amount", true}, {"currency", true},  \
        {"description", false},                                                                    \
    {                                                                                              \
        "metadata", false                                                                          \
    }

static const msg_field_t msg_f_requested[] = {MSG_REQUEST_FIELDS};
static const msg_field_t msg_f_approved[] = {
    {"type", true}, {"event_id", true}, {"occurred_at", true}, MSG_REQUEST_FIELDS, {"risk", true}};
static const msg_field_t msg_f_declined[] = {{"type", true},        {"event_id", true},
                                             {"occurred_at", true}, MSG_REQUEST_FIELDS,
                                             {"reason", true},      {"rules", true}};
static const msg_field_t msg_f_completed[] = {{"type", true},        {"event_id", true},
                                              {"occurred_at", true}, MSG_REQUEST_FIELDS,
                                              {"transfer_id", true}, {"posted_at", true}};
static const msg_field_t msg_f_failed[] = {{"type", true},
                                           {"event_id", true},
                                           {"occurred_at", true},
                                           MSG_REQUEST_FIELDS,
                                           {"reason", true}};
static const msg_field_t msg_f_batch_closed[] = {
    {"type", true},         {"event_id", true},   {"occurred_at", true},  {"batch_id", true},
    {"payee", true},        {"currency", true},   {"window_start", true}, {"window_end", true},
    {"count", true},        {"gross", true},      {"fees", true},         {"refunds", true},
    {"refund_count", true}, {"carried_in", true}, {"carried_out", true},  {"net", true}};
static const msg_field_t msg_f_rejected[] = {
    {"type", true},        {"event_id", true},      {"occurred_at", true}, {"reason", true},
    {"detail", true},      {"queue", true},         {"payment_id", false}, {"refund_id", false},
    {"deposit_id", false}, {"withdrawal_id", false}};
static const msg_field_t msg_f_refund_requested[] = {
    {"refund_id", true}, {"payment_id", true}, {"amount", true}, {"reason", false}};
static const msg_field_t msg_f_refund_completed[] = {
    {"type", true},       {"event_id", true},    {"occurred_at", true},    {"refund_id", true},
    {"payment_id", true}, {"payer", true},       {"payee", true},          {"amount", true},
    {"currency", true},   {"transfer_id", true}, {"refunded_total", true}, {"remaining", true},
    {"batch_id", true}};
static const msg_field_t msg_f_deposit_received[] = {
    {"deposit_id", true}, {"account", true}, {"amount", true},
    {"currency", true},   {"rail", true},    {"rail_reference", true}};
static const msg_field_t msg_f_deposit_completed[] = {
    {"type", true},           {"event_id", true},   {"occurred_at", true}, {"deposit_id", true},
    {"account", true},        {"amount", true},     {"currency", true},    {"rail", true},
    {"rail_reference", true}, {"transfer_id", true}};
static const msg_field_t msg_f_deposit_failed[] = {
    {"type", true},           {"event_id", true}, {"occurred_at", true}, {"deposit_id", true},
    {"account", true},        {"amount", true},   {"currency", true},    {"rail", true},
    {"rail_reference", true}, {"reason", true}};
static const msg_field_t msg_f_withdrawal_requested[] = {
    {"withdrawal_id", true}, {"account", true}, {"amount", true},
    {"currency", true},      {"rail", true},    {"destination", false}};
static const msg_field_t msg_f_withdrawal_completed[] = {
    {"type", true},          {"event_id", true}, {"occurred_at", true},
    {"withdrawal_id", true}, {"account", true},  {"amount", true},
    {"currency", true},      {"rail", true},     {"transfer_id", true}};
static const msg_field_t msg_f_withdrawal_failed[] = {
    {"type", true},    {"event_id", true}, {"occurred_at", true}, {"withdrawal_id", true},
    {"account", true}, {"amount", true},   {"currency", true},    {"rail", true},
    {"reason", true},  {"rules", true}};
static const msg_field_t msg_f_withdrawal_returned[] = {
    {"withdrawal_id", true}, {"rail_reference", true}, {"reason", false}};
static const msg_field_t msg_f_withdrawal_reversed[] = {
    {"type", true},          {"event_id", true},       {"occurred_at", true},
    {"withdrawal_id", true}, {"account", true},        {"amount", true},
    {"currency", true},      {"rail_reference", true}, {"transfer_id", true}};
static const msg_field_t msg_f_refund_failed[] = {
    {"type", true},       {"event_id", true}, {"occurred_at", true}, {"refund_id", true},
    {"payment_id", true}, {"amount", true},   {"reason", true}};

#define MSG_N(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
    const char *type;
    const msg_field_t *fields;
    size_t n;
} msg_tables[] = {
    {MSG_TYPE_REQUESTED, msg_f_requested, MSG_N(msg_f_requested)},
    {MSG_TYPE_APPROVED, msg_f_approved, MSG_N(msg_f_approved)},
    {MSG_TYPE_DECLINED, msg_f_declined, MSG_N(msg_f_declined)},
    {MSG_TYPE_COMPLETED, msg_f_completed, MSG_N(msg_f_completed)},
    {MSG_TYPE_FAILED, msg_f_failed, MSG_N(msg_f_failed)},
    {MSG_TYPE_BATCH_CLOSED, msg_f_batch_closed, MSG_N(msg_f_batch_closed)},
    {MSG_TYPE_REJECTED, msg_f_rejected, MSG_N(msg_f_rejected)},
    {MSG_TYPE_REFUND_REQUESTED, msg_f_refund_requested, MSG_N(msg_f_refund_requested)},
    {MSG_TYPE_REFUND_COMPLETED, msg_f_refund_completed, MSG_N(msg_f_refund_completed)},
    {MSG_TYPE_REFUND_FAILED, msg_f_refund_failed, MSG_N(msg_f_refund_failed)},
    {MSG_TYPE_DEPOSIT_RECEIVED, msg_f_deposit_received, MSG_N(msg_f_deposit_received)},
    {MSG_TYPE_DEPOSIT_COMPLETED, msg_f_deposit_completed, MSG_N(msg_f_deposit_completed)},
    {MSG_TYPE_DEPOSIT_FAILED, msg_f_deposit_failed, MSG_N(msg_f_deposit_failed)},
    {MSG_TYPE_WITHDRAWAL_REQUESTED, msg_f_withdrawal_requested, MSG_N(msg_f_withdrawal_requested)},
    {MSG_TYPE_WITHDRAWAL_COMPLETED, msg_f_withdrawal_completed, MSG_N(msg_f_withdrawal_completed)},
    {MSG_TYPE_WITHDRAWAL_FAILED, msg_f_withdrawal_failed, MSG_N(msg_f_withdrawal_failed)},
    {MSG_TYPE_WITHDRAWAL_RETURNED, msg_f_withdrawal_returned, MSG_N(msg_f_withdrawal_returned)},
    {MSG_TYPE_WITHDRAWAL_REVERSED, msg_f_withdrawal_reversed, MSG_N(msg_f_withdrawal_reversed)},
};

const msg_field_t *msg_fields(const char *type, size_t *n)
{
    for (size_t i = 0; type && i < MSG_N(msg_tables); i++) {
        if (strcmp(msg_tables[i].type, type) == 0) {
            if (n)
                *n = msg_tables[i].n;
            return msg_tables[i].fields;
        }
    }
    if (n)
        *n = 0;
    return NULL;
}

/* ---- text and ids ------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, 0 if s does not start one. */
static size_t msg_utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* Copies src into dst (n > 0 bytes) as valid UTF-8: invalid bytes and
 * control characters become '?', truncation happens on a character
 * boundary. The result goes into JSON event bodies, so it must never be
 * invalid UTF-8 whatever the input was. */
void msg_text_clean(char *dst, size_t n, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;
    while (*s) {
        size_t k = msg_utf8_seq(s);
        if (k == 0 || (k == 1 && (*s < 0x20 || *s == 0x7f))) {
            if (o + 1 >= n)
                break;
            dst[o++] = '?';
            s++;
            continue;
        }
        if (o + k >= n)
            break;
        memcpy(dst + o, s, k);
        o += k;
        s += k;
    }
    dst[o] = '\0';
}

bool msg_id_valid(const char *s, size_t len)
{
    if (!s || len < 1 || len > MSG_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

void msg_payment_clear(msg_payment_t *p)
{
    if (!p)
        return;
    json_decref(p->metadata);
    memset(p, 0, sizeof *p);
}

/* ---- hashing ------------------------------------------------------------ */

void msg_body_hash(const void *body, size_t len, char out[65])
{
    digest_sha256_hex(body, len, out);
}

void msg_event_id(const char *type, const char *key, char out[MSG_EVENT_ID_LEN + 1])
{
    static const char tag[] = "ledgerline.v1\n";
    unsigned char md[32];
    const void *parts[4] = {tag, type, "\n", key};
    size_t lens[4] = {sizeof tag - 1, strlen(type), 1, strlen(key)};
    digest_sha256(parts, lens, 4, md);
    digest_hex(md, MSG_EVENT_ID_LEN / 2, out);
}

int msg_rejected_key(const char *queue, const char *payment_id_or_null, msg_reason_t reason,
                     const void *body, size_t len, char *out, size_t n)
{
    char hash[65];
    const char *id = payment_id_or_null;
    if (!id || !msg_id_valid(id, strlen(id)))
        id = "-";
    msg_body_hash(body, len, hash);
    int w = snprintf(out, n, "%s\n%s\n%s\n%s", queue, id, msg_reason_str(reason), hash);
    return (w < 0 || (size_t)w >= n) ? LL_ERANGE : LL_OK;
}

/* ---- a payment's identity: canonical form, hash, diff -------------------- */

char *msg_payment_canonical(const msg_payment_t *p)
{
    char *text = NULL;
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *s[5] = {json_string(p->payment_id), json_string(p->payer), json_string(p->payee),
                    json_string(p->currency),
                    p->has_description ? json_string(p->description) : NULL};
    /* set_new steals the references even on failure, and NULL fails */
    int bad = json_object_set_new(o, "payment_id", s[0]) | json_object_set_new(o, "payer", s[1]) |
              json_object_set_new(o, "payee", s[2]) | json_object_set_new(o, "currency", s[3]) |
              json_object_set_new(o, "amount", json_integer(p->amount));
    if (p->has_description)
        bad |= json_object_set_new(o, "description", s[4]);
    if (p->metadata)
        bad |= json_object_set(o, "metadata", p->metadata);
    if (!bad)
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

char *msg_refund_canonical(const msg_refund_t *r)
{
    char *text = NULL;
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "refund_id", json_string(r->refund_id)) |
              json_object_set_new(o, "payment_id", json_string(r->payment_id)) |
              json_object_set_new(o, "amount", json_integer(r->amount));
    if (r->has_reason)
        bad |= json_object_set_new(o, "reason", json_string(r->reason));
    if (!bad)
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

/* Dumps o sorted and compact, then frees it; NULL if `bad` or on OOM. */
static char *msg_canonical_finish(json_t *o, int bad)
{
    char *text = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

char *msg_deposit_canonical(const msg_deposit_t *d)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "deposit_id", json_string(d->deposit_id)) |
              json_object_set_new(o, "account", json_string(d->account)) |
              json_object_set_new(o, "amount", json_integer(d->amount)) |
              json_object_set_new(o, "currency", json_string(d->currency)) |
              json_object_set_new(o, "rail", json_string(d->rail)) |
              json_object_set_new(o, "rail_reference", json_string(d->rail_reference));
    return msg_canonical_finish(o, bad);
}

char *msg_withdrawal_canonical(const msg_withdrawal_t *w)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "withdrawal_id", json_string(w->withdrawal_id)) |
              json_object_set_new(o, "account", json_string(w->account)) |
              json_object_set_new(o, "amount", json_integer(w->amount)) |
              json_object_set_new(o, "currency", json_string(w->currency)) |
              json_object_set_new(o, "rail", json_string(w->rail));
    if (w->has_destination)
        bad |= json_object_set_new(o, "destination", json_string(w->destination));
    return msg_canonical_finish(o, bad);
}

char *msg_return_canonical(const msg_return_t *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "withdrawal_id", json_string(r->withdrawal_id)) |
              json_object_set_new(o, "rail_reference", json_string(r->rail_reference));
    if (r->has_reason)
        bad |= json_object_set_new(o, "reason", json_string(r->reason));
    return msg_canonical_finish(o, bad);
}

static int msg_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int msg_canonical_diff(const char *a, const char *b, char *out, size_t n)
{
    out[0] = '\0';
    json_t *x = a ? json_loads(a, 0, NULL) : NULL, *y = b ? json_loads(b, 0, NULL) : NULL;
    int rc = LL_EINVAL;
    if (!json_is_object(x) || !json_is_object(y))
        goto out;
    size_t cap = json_object_size(x) + json_object_size(y), k = 0;
    const char **names = calloc(cap ? cap : 1, sizeof *names);
    if (!names) {
        rc = LL_ENOMEM;
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(x, key, v)
    {
        if (!json_equal(v, json_object_get(y, key)))
            names[k++] = key;
    }
    json_object_foreach(y, key, v)
    {
        if (!json_object_get(x, key))
            names[k++] = key;
    }
    qsort(names, k, sizeof *names, msg_cmp_str);
    rc = LL_OK;
    size_t used = 0;
    for (size_t i = 0; i < k && rc == LL_OK; i++) {
        int w = snprintf(out + used, n - used, "%s%s", i ? "," : "", names[i]);
        if (w < 0 || (size_t)w >= n - used)
            rc = LL_ERANGE;
        else
            used += (size_t)w;
    }
    free(names);
out:
    json_decref(x);
    json_decref(y);
    return rc;
}

int msg_payment_hash(const msg_payment_t *p, char out[65])
{
    out[0] = '\0';
    char *text = msg_payment_canonical(p);
    if (!text)
        return LL_ENOMEM;
    msg_body_hash(text, strlen(text), out);
    free(text);
    return LL_OK;
}

int msg_payment_diff(const msg_payment_t *a, const msg_payment_t *b, char *out, size_t n)
{
    bool desc_diff = a->has_description != b->has_description ||
                     (a->has_description && strcmp(a->description, b->description) != 0);
    bool md_diff = (a->metadata == NULL) != (b->metadata == NULL) ||
                   (a->metadata && !json_equal(a->metadata, b->metadata));
    const struct {
        const char *name;
        bool differs;
    } f[] = {
        /* alphabetical */
        {"amount", a->amount != b->amount},
        {"currency", strcmp(a->currency, b->currency) != 0},
        {"description", desc_diff},
        {"metadata", md_diff},
        {"payee", strcmp(a->payee, b->payee) != 0},
        {"payer", strcmp(a->payer, b->payer) != 0},
        {"payment_id", strcmp(a->payment_id, b->payment_id) != 0},
    };
    if (n == 0)
        return LL_ERANGE;
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < MSG_N(f); i++) {
        if (!f[i].differs)
            continue;
        int w = snprintf(out + used, n - used, "%s%s", used ? "," : "", f[i].name);
        if (w < 0 || (size_t)w >= n - used)
            return LL_ERANGE;
        used += (size_t)w;
    }
    return LL_OK;
}

/* ---- time --------------------------------------------------------------- */

/* Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian). */
static int64_t msg_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void msg_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

#define MSG_MS_MIN (-62167219200000LL) /* 0000-01-01T00:00:00.000Z */
#define MSG_MS_MAX 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

static void msg_put(char *p, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void msg_format_time(int64_t unix_ms, char out[MSG_TIME_LEN + 1])
{
    if (unix_ms < MSG_MS_MIN)
        unix_ms = MSG_MS_MIN;
    if (unix_ms > MSG_MS_MAX)
        unix_ms = MSG_MS_MAX;
    int64_t t = unix_ms - MSG_MS_MIN; /* >= 0: plain division is floor */
    int64_t ms = t % 1000, secs = t / 1000;
    int64_t days = secs / 86400 + msg_days_from_civil(0, 1, 1), sod = secs % 86400;
    int64_t y;
    int m, d;
    msg_civil_from_days(days, &y, &m, &d);
    memcpy(out, "0000-00-00T00:00:00.000Z", MSG_TIME_LEN + 1);
    msg_put(out, y, 4);
    msg_put(out + 5, m, 2);
    msg_put(out + 8, d, 2);
    msg_put(out + 11, sod / 3600, 2);
    msg_put(out + 14, sod / 60 % 60, 2);
    msg_put(out + 17, sod % 60, 2);
    msg_put(out + 20, ms, 3);
}

static bool msg_digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

int msg_parse_time(const char *s, int64_t *out_ms)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (!s || strlen(s) != MSG_TIME_LEN)
        return LL_EINVAL;
    for (int i = 0; i < MSG_TIME_LEN; i++)
        if (shape[i] != 'd' && s[i] != shape[i])
            return LL_EINVAL;
    int y, mo, d, h, mi, sec, ms;
    if (!msg_digits(s, 4, &y) || !msg_digits(s + 5, 2, &mo) || !msg_digits(s + 8, 2, &d) ||
        !msg_digits(s + 11, 2, &h) || !msg_digits(s + 14, 2, &mi) || !msg_digits(s + 17, 2, &sec) ||
        !msg_digits(s + 20, 3, &ms))
        return LL_EINVAL;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 ||
        sec > 59)
        return LL_EINVAL;
    int64_t days = msg_days_from_civil(y, mo, d);
    *out_ms = ((days * 86400 + h * 3600 + mi * 60 + sec) * 1000) + ms;
    return LL_OK;
}

/* ---- failure reasons ---------------------------------------------------- */

static const char *const msg_failure_reasons[] = {
    "insufficient_funds", "unknown_account",  "account_frozen",
    "currency_mismatch",  "balance_overflow",
};

bool msg_failure_reason_valid(const char *reason)
{
    for (size_t i = 0; reason && i < sizeof msg_failure_reasons / sizeof *msg_failure_reasons; i++)
        if (strcmp(reason, msg_failure_reasons[i]) == 0)
            return true;
    return false;
}

const char *msg_failure_reason_at(size_t i)
{
    return i < sizeof msg_failure_reasons / sizeof *msg_failure_reasons ? msg_failure_reasons[i]
                                                                        : NULL;
}

static const char *const msg_refund_failure_reasons[] = {
    "payment_not_completed", "refund_exceeds_payment", "insufficient_funds",
    "account_frozen",        "balance_overflow",
};

bool msg_refund_failure_reason_valid(const char *reason)
{
    for (size_t i = 0; reason && i < MSG_N(msg_refund_failure_reasons); i++)
        if (strcmp(reason, msg_refund_failure_reasons[i]) == 0)
            return true;
    return false;
}

const char *msg_refund_failure_reason_at(size_t i)
{
    return i < MSG_N(msg_refund_failure_reasons) ? msg_refund_failure_reasons[i] : NULL;
}

static const char *const msg_deposit_failure_reasons[] = {
    "unknown_account",
    "account_frozen",
    "currency_mismatch",
    "balance_overflow",
};

bool msg_deposit_failure_reason_valid(const char *reason)
{
    for (size_t i = 0; reason && i < MSG_N(msg_deposit_failure_reasons); i++)
        if (strcmp(reason, msg_deposit_failure_reasons[i]) == 0)
            return true;
    return false;
}

const char *msg_deposit_failure_reason_at(size_t i)
{
    return i < MSG_N(msg_deposit_failure_reasons) ? msg_deposit_failure_reasons[i] : NULL;
}

static const char *const msg_withdrawal_failure_reasons[] = {
    "risk_declined",  "insufficient_funds", "unknown_account",
    "account_frozen", "currency_mismatch",  "balance_overflow",
};

bool msg_withdrawal_failure_reason_valid(const char *reason)
{
    for (size_t i = 0; reason && i < MSG_N(msg_withdrawal_failure_reasons); i++)
        if (strcmp(reason, msg_withdrawal_failure_reasons[i]) == 0)
            return true;
    return false;
}

const char *msg_withdrawal_failure_reason_at(size_t i)
{
    return i < MSG_N(msg_withdrawal_failure_reasons) ? msg_withdrawal_failure_reasons[i] : NULL;
}
