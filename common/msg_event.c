/*
 * msg_event.c - the encoding half of the message codec: deterministic
 * event ids, RFC 3339 time stamps, SHA-256 helpers and the encoders of the
 * events Ledgerline publishes (payment.approved / declined / completed /
 * failed, settlement.batch.closed, message.rejected).
 *
 * Public API: see msg.h.
 */
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "money.h"

/* ---- hashing ------------------------------------------------------------ */

/* SHA-256 over up to 4 pieces. An EVP failure here can only be out of
 * memory (SHA-256 is always there), which a daemon treats as fatal. */
static void msg_sha256(const void *const *parts, const size_t *lens, size_t n, unsigned char md[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int mdlen = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(ctx, parts[i], lens[i]) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        fprintf(stderr, "msg: SHA-256 failed (out of memory)\n");
        abort();
    }
}

static void msg_hex(const unsigned char *md, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}

void msg_body_hash(const void *body, size_t len, char out[65])
{
    unsigned char md[32];
    const void *parts[1] = {body ? body : ""};
    size_t lens[1] = {body ? len : 0};
    msg_sha256(parts, lens, 1, md);
    msg_hex(md, 32, out);
}

void msg_event_id(const char *type, const char *key, char out[MSG_EVENT_ID_LEN + 1])
{
    static const char tag[] = "ledgerline.v1\n";
    unsigned char md[32];
    const void *parts[4] = {tag, type, "\n", key};
    size_t lens[4] = {sizeof tag - 1, strlen(type), 1, strlen(key)};
    msg_sha256(parts, lens, 4, md);
    msg_hex(md, MSG_EVENT_ID_LEN / 2, out);
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

/* ---- encoders ----------------------------------------------------------- */

static const char *const msg_failure_reasons[] = {
    "insufficient_funds",
    "unknown_account",
    "account_frozen",
    "currency_mismatch",
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

/* Builder that remembers the first failure, so encoders read straight. */
typedef struct {
    json_t *o;
    bool bad;
} msg_builder_t;

/* Steals v (NULL -> failure). */
static void msg_set(msg_builder_t *b, const char *key, json_t *v)
{
    if (json_object_set_new(b->o, key, v) != 0)
        b->bad = true;
}

static void msg_set_time(msg_builder_t *b, const char *key, int64_t ms)
{
    char t[MSG_TIME_LEN + 1];
    msg_format_time(ms, t);
    msg_set(b, key, json_string(t));
}

/* event_id, type, [payment_id], occurred_at */
static msg_builder_t msg_begin(const char *type, const char *key, const char *payment_id,
                               int64_t occurred_ms)
{
    msg_builder_t b = {json_object(), false};
    if (!b.o) {
        b.bad = true;
        return b;
    }
    char id[MSG_EVENT_ID_LEN + 1];
    msg_event_id(type, key, id);
    msg_set(&b, "event_id", json_string(id));
    msg_set(&b, "type", json_string(type));
    if (payment_id)
        msg_set(&b, "payment_id", json_string(payment_id));
    msg_set_time(&b, "occurred_at", occurred_ms);
    return b;
}

/* The envelope plus the request fields of p (payment_id comes with the
 * envelope). */
static msg_builder_t msg_begin_payment(const char *type, const msg_payment_t *p,
                                       int64_t occurred_ms)
{
    if (!p || !msg_id_valid(p->payment_id, strlen(p->payment_id)))
        return (msg_builder_t){NULL, true};
    msg_builder_t b = msg_begin(type, p->payment_id, p->payment_id, occurred_ms);
    if (b.bad)
        return b;
    msg_set(&b, "payer", json_string(p->payer));
    msg_set(&b, "payee", json_string(p->payee));
    msg_set(&b, "amount", json_integer(p->amount));
    msg_set(&b, "currency", json_string(p->currency));
    if (p->has_description)
        msg_set(&b, "description", json_string(p->description));
    if (p->metadata)
        msg_set(&b, "metadata", json_deep_copy(p->metadata));
    return b;
}

static json_t *msg_rules_array(const char *const *rules, size_t nrules)
{
    if (nrules > MSG_RULES_MAX || (nrules && !rules))
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; a && i < nrules; i++) {
        if (!rules[i] || !msg_id_valid(rules[i], strlen(rules[i])) ||
            json_array_append_new(a, json_string(rules[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Dumps and frees the builder; NULL if anything failed. */
static char *msg_finish(msg_builder_t *b)
{
    char *s = b->bad ? NULL : json_dumps(b->o, JSON_COMPACT);
    json_decref(b->o);
    b->o = NULL;
    return s;
}

char *msg_encode_approved(const msg_payment_t *p, int score, const char *const *rules,
                          size_t nrules, int64_t occurred_ms)
{
    if (score < 0 || score > MSG_SCORE_MAX)
        return NULL;
    msg_builder_t b = msg_begin_payment(MSG_TYPE_APPROVED, p, occurred_ms);
    json_t *risk = b.bad ? NULL : json_object();
    if (risk && (json_object_set_new(risk, "score", json_integer(score)) != 0 ||
                 json_object_set_new(risk, "rules", msg_rules_array(rules, nrules)) != 0)) {
        json_decref(risk);
        risk = NULL;
    }
    if (!b.bad)
        msg_set(&b, "risk", risk);
    return msg_finish(&b);
}

char *msg_encode_declined(const msg_payment_t *p, const char *const *rules, size_t nrules,
                          int64_t occurred_ms)
{
    msg_builder_t b = msg_begin_payment(MSG_TYPE_DECLINED, p, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "reason", json_string(MSG_DECLINE_REASON));
        msg_set(&b, "rules", msg_rules_array(rules, nrules));
    }
    return msg_finish(&b);
}

char *msg_encode_completed(const msg_payment_t *p, const char *transfer_id, int64_t posted_ms,
                           int64_t occurred_ms)
{
    if (!transfer_id || !msg_id_valid(transfer_id, strlen(transfer_id)))
        return NULL;
    msg_builder_t b = msg_begin_payment(MSG_TYPE_COMPLETED, p, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "transfer_id", json_string(transfer_id));
        msg_set_time(&b, "posted_at", posted_ms);
    }
    return msg_finish(&b);
}

char *msg_encode_failed(const msg_payment_t *p, const char *reason, int64_t occurred_ms)
{
    if (!msg_failure_reason_valid(reason))
        return NULL;
    msg_builder_t b = msg_begin_payment(MSG_TYPE_FAILED, p, occurred_ms);
    if (!b.bad)
        msg_set(&b, "reason", json_string(reason));
    return msg_finish(&b);
}

char *msg_encode_batch_closed(const msg_batch_closed_t *bc, int64_t occurred_ms)
{
    if (!bc || !msg_id_valid(bc->batch_id, strlen(bc->batch_id)))
        return NULL;
    msg_builder_t b = msg_begin(MSG_TYPE_BATCH_CLOSED, bc->batch_id, NULL, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "batch_id", json_string(bc->batch_id));
        msg_set(&b, "payee", json_string(bc->payee));
        msg_set(&b, "currency", json_string(bc->currency));
        msg_set_time(&b, "window_start", bc->window_start_ms);
        msg_set_time(&b, "window_end", bc->window_end_ms);
        msg_set(&b, "count", json_integer(bc->count));
        msg_set(&b, "gross", json_integer(bc->gross));
        msg_set(&b, "fees", json_integer(bc->fees));
        msg_set(&b, "net", json_integer(bc->net));
    }
    return msg_finish(&b);
}

char *msg_encode_rejected(const char *queue, const msg_reject_t *why,
                          const char *payment_id_or_null, const char *event_key,
                          int64_t occurred_ms)
{
    if (!queue || !msg_id_valid(queue, strlen(queue)) || !why || !event_key ||
        (unsigned)why->reason >= MSG_REASON_COUNT)
        return NULL;
    const char *pid = payment_id_or_null;
    if (pid && !msg_id_valid(pid, strlen(pid)))
        pid = NULL;
    /* whatever wrote the detail, the event must be valid UTF-8 */
    char detail[sizeof why->detail];
    msg_text_clean(detail, sizeof detail, why->detail);
    msg_builder_t b = msg_begin(MSG_TYPE_REJECTED, event_key, pid, occurred_ms);
    if (!b.bad) {
        msg_set(&b, "reason", json_string(msg_reason_str(why->reason)));
        msg_set(&b, "detail", json_string(detail));
        msg_set(&b, "queue", json_string(queue));
    }
    return msg_finish(&b);
}
