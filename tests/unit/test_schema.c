/*
 * test_schema.c - "code and schema agree": the JSON Schemas of
 * schemas/json/ (read from LL_SOURCE_DIR) against the codec in common/msg.*
 * and the ISO 4217 table in common/money.c.
 *
 * No real JSON Schema validator is packaged for this machine, so the
 * agreement is checked two ways:
 *   1. structurally: each schema's properties/required equal msg_fields()
 *      for its routing key; its limits (minLength, maxLength, pattern,
 *      minimum, maximum, maxProperties, maxItems, x-maxBytes, x-maxBodyBytes)
 *      equal the MSG_* constants; the currency enum equals money.c's table;
 *      the reason enums equal the codec's strings; the request fields are
 *      spelled identically in every schema that carries them;
 *   2. with a small validator for exactly the keywords our schemas use
 *      (the test first asserts that no other keyword appears): every event
 *      encoder's output validates against its schema, and sample request
 *      bodies, and edited payment.approved / payment.completed events (the
 *      inputs of the payment and settlement stages), get the same verdict
 *      from the schema and from the decoder, except for the rules JSON
 *      Schema cannot express (payer != payee, the 200-BYTE description
 *      limit, "never a float": JSON Schema's integer type accepts 100.0, and
 *      a calendar check of times), which are listed as such.
 */
#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "money.h"
#include "msg.h"
#include "msg_decode.h"
#include "msg_encode.h"

#ifndef LL_SOURCE_DIR
#error "LL_SOURCE_DIR must be defined (the CMake test definitions do)"
#endif

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const types[] = {
    MSG_TYPE_REQUESTED,
    MSG_TYPE_APPROVED,
    MSG_TYPE_DECLINED,
    MSG_TYPE_COMPLETED,
    MSG_TYPE_FAILED,
    MSG_TYPE_BATCH_CLOSED,
    MSG_TYPE_REJECTED,
    MSG_TYPE_REFUND_REQUESTED,
    MSG_TYPE_REFUND_COMPLETED,
    MSG_TYPE_REFUND_FAILED,
    MSG_TYPE_DEPOSIT_RECEIVED,
    MSG_TYPE_DEPOSIT_COMPLETED,
    MSG_TYPE_DEPOSIT_FAILED,
    MSG_TYPE_WITHDRAWAL_REQUESTED,
    MSG_TYPE_WITHDRAWAL_COMPLETED,
    MSG_TYPE_WITHDRAWAL_FAILED,
    MSG_TYPE_WITHDRAWAL_RETURNED,
    MSG_TYPE_WITHDRAWAL_REVERSED,
};

/* The commands producers and rails publish: no envelope, no `type`. */
static bool is_command(const char *type)
{
    return strcmp(type, MSG_TYPE_REQUESTED) == 0 || strcmp(type, MSG_TYPE_REFUND_REQUESTED) == 0 ||
           strcmp(type, MSG_TYPE_DEPOSIT_RECEIVED) == 0 ||
           strcmp(type, MSG_TYPE_WITHDRAWAL_REQUESTED) == 0 ||
           strcmp(type, MSG_TYPE_WITHDRAWAL_RETURNED) == 0;
}

static json_t *load_schema(const char *type)
{
    char path[512];
    snprintf(path, sizeof path, "%s/schemas/json/%s.json", LL_SOURCE_DIR, type);
    json_error_t err;
    json_t *s = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    ck_assert_msg(s != NULL, "%s: %s (line %d)", path, err.text, err.line);
    ck_assert(json_is_object(s));
    return s;
}

static json_t *prop(json_t *schema, const char *name)
{
    json_t *p = json_object_get(json_object_get(schema, "properties"), name);
    ck_assert_msg(p != NULL, "schema has no property %s", name);
    return p;
}

static json_int_t int_kw(json_t *o, const char *kw)
{
    json_t *v = json_object_get(o, kw);
    ck_assert_msg(json_is_integer(v), "keyword %s missing or not an integer", kw);
    return json_integer_value(v);
}

/* ---- a validator for the keywords our schemas use ----------------------- */

static const char *const known_keywords[] = {
    "$schema",        "$id",           "$comment",
    "title",          "description",   "type",
    "properties",     "required",      "additionalProperties",
    "minLength",      "maxLength",     "pattern",
    "enum",           "const",         "minimum",
    "maximum",        "maxProperties", "items",
    "maxItems",       "format",        "x-maxBytes",
    "x-maxBodyBytes",
};

/* Every keyword of every (sub)schema is one the validator understands. */
static void check_keywords(json_t *s, const char *where)
{
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v)
    {
        bool ok = false;
        for (int i = 0; i < N(known_keywords) && !ok; i++)
            ok = strcmp(k, known_keywords[i]) == 0;
        ck_assert_msg(ok, "%s: keyword %s is not understood by this test's validator", where, k);
    }
    json_t *props = json_object_get(s, "properties");
    json_object_foreach(props, k, v) check_keywords(v, k);
    json_t *ap = json_object_get(s, "additionalProperties");
    if (json_is_object(ap))
        check_keywords(ap, "additionalProperties");
    json_t *items = json_object_get(s, "items");
    if (items)
        check_keywords(items, "items");
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool pattern_matches(const char *pattern, const char *s)
{
    regex_t re;
    ck_assert_msg(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) == 0, "bad pattern %s", pattern);
    bool m = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return m;
}

static bool type_ok(const char *t, json_t *v)
{
    if (strcmp(t, "object") == 0)
        return json_is_object(v);
    if (strcmp(t, "array") == 0)
        return json_is_array(v);
    if (strcmp(t, "string") == 0)
        return json_is_string(v);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v) ||
               (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v));
    ck_assert_msg(0, "type %s not handled", t);
    return false;
}

/* true iff v is valid against s; `why` gets the first failure. */
static bool validate(json_t *s, json_t *v, char *why, size_t n)
{
    json_t *kw;
    if ((kw = json_object_get(s, "type")) && !type_ok(json_string_value(kw), v))
        return snprintf(why, n, "type"), false;
    if ((kw = json_object_get(s, "const")) && !json_equal(kw, v))
        return snprintf(why, n, "const"), false;
    if ((kw = json_object_get(s, "enum"))) {
        bool in = false;
        size_t i;
        json_t *e;
        json_array_foreach(kw, i, e) in = in || json_equal(e, v);
        if (!in)
            return snprintf(why, n, "enum"), false;
    }
    if (json_is_string(v)) {
        size_t chars = utf8_chars(json_string_value(v));
        if ((kw = json_object_get(s, "minLength")) && chars < (size_t)json_integer_value(kw))
            return snprintf(why, n, "minLength"), false;
        if ((kw = json_object_get(s, "maxLength")) && chars > (size_t)json_integer_value(kw))
            return snprintf(why, n, "maxLength"), false;
        if ((kw = json_object_get(s, "pattern")) &&
            !pattern_matches(json_string_value(kw), json_string_value(v)))
            return snprintf(why, n, "pattern"), false;
    }
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if ((kw = json_object_get(s, "minimum")) && d < json_number_value(kw))
            return snprintf(why, n, "minimum"), false;
        if ((kw = json_object_get(s, "maximum")) && d > json_number_value(kw))
            return snprintf(why, n, "maximum"), false;
    }
    if (json_is_array(v)) {
        if ((kw = json_object_get(s, "maxItems")) &&
            json_array_size(v) > (size_t)json_integer_value(kw))
            return snprintf(why, n, "maxItems"), false;
        size_t i;
        json_t *e;
        json_t *items = json_object_get(s, "items");
        json_array_foreach(v, i, e) if (items && !validate(items, e, why, n)) return false;
    }
    if (json_is_object(v)) {
        if ((kw = json_object_get(s, "maxProperties")) &&
            json_object_size(v) > (size_t)json_integer_value(kw))
            return snprintf(why, n, "maxProperties"), false;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(s, "required"), i, r)
        {
            if (!json_object_get(v, json_string_value(r)))
                return snprintf(why, n, "required %s", json_string_value(r)), false;
        }
        json_t *props = json_object_get(s, "properties");
        json_t *ap = json_object_get(s, "additionalProperties");
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            json_t *ps = json_object_get(props, k);
            if (ps) {
                if (!validate(ps, x, why, n))
                    return false;
            } else if (json_is_false(ap)) {
                return snprintf(why, n, "additionalProperties %s", k), false;
            } else if (json_is_object(ap) && !validate(ap, x, why, n)) {
                return false;
            }
        }
    }
    return true;
}

/* ---- structural agreement ----------------------------------------------- */

START_TEST(test_fields_match)
{
    const char *type = types[_i];
    json_t *s = load_schema(type);
    check_keywords(s, type);
    ck_assert_str_eq(json_string_value(json_object_get(s, "$schema")),
                     "https://json-schema.org/draft/2020-12/schema");
    ck_assert_str_eq(json_string_value(json_object_get(s, "type")), "object");
    ck_assert(json_is_false(json_object_get(s, "additionalProperties")));
    ck_assert_str_eq(json_string_value(json_object_get(s, "title")), type);

    size_t nf;
    const msg_field_t *f = msg_fields(type, &nf);
    ck_assert_ptr_nonnull(f);
    json_t *props = json_object_get(s, "properties");
    json_t *req = json_object_get(s, "required");
    ck_assert_uint_eq(json_object_size(props), nf);
    size_t nreq = 0;
    for (size_t i = 0; i < nf; i++) {
        ck_assert_msg(json_object_get(props, f[i].name), "%s: schema lacks property %s", type,
                      f[i].name);
        bool in_req = false;
        size_t j;
        json_t *r;
        json_array_foreach(req, j, r) in_req =
            in_req || strcmp(json_string_value(r), f[i].name) == 0;
        ck_assert_msg(in_req == f[i].required, "%s: %s required in code %d, in schema %d", type,
                      f[i].name, f[i].required, in_req);
        nreq += f[i].required;
    }
    ck_assert_uint_eq(json_array_size(req), nreq);
    /* events: `type` is the routing key */
    if (!is_command(type))
        ck_assert_str_eq(json_string_value(json_object_get(prop(s, "type"), "const")), type);
    json_decref(s);
}
END_TEST

START_TEST(test_requested_limits)
{
    json_t *s = load_schema(MSG_TYPE_REQUESTED);
    char idpat[64];
    snprintf(idpat, sizeof idpat, "^[%s]{1,%d}$", MSG_ID_CHARSET, MSG_ID_MAX);
    static const char *const ids[] = {"payment_id", "payer", "payee"};
    for (int i = 0; i < N(ids); i++) {
        json_t *p = prop(s, ids[i]);
        ck_assert_int_eq(int_kw(p, "minLength"), 1);
        ck_assert_int_eq(int_kw(p, "maxLength"), MSG_ID_MAX);
        ck_assert_str_eq(json_string_value(json_object_get(p, "pattern")), idpat);
    }
    json_t *amount = prop(s, "amount");
    ck_assert_str_eq(json_string_value(json_object_get(amount, "type")), "integer");
    ck_assert(int_kw(amount, "minimum") == MSG_AMOUNT_MIN);
    ck_assert(int_kw(amount, "maximum") == MSG_AMOUNT_MAX);
    json_t *desc = prop(s, "description");
    ck_assert_int_eq(int_kw(desc, "maxLength"), MSG_DESCRIPTION_MAX);
    ck_assert_int_eq(int_kw(desc, "x-maxBytes"), MSG_DESCRIPTION_MAX);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(desc, "$comment")), "BYTES"));
    json_t *md = prop(s, "metadata");
    ck_assert_int_eq(int_kw(md, "maxProperties"), MSG_METADATA_MAX);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(md, "additionalProperties"), "type")),
        "string");
    ck_assert_int_eq(int_kw(s, "x-maxBodyBytes"), MSG_BODY_MAX);
    ck_assert_str_eq(json_string_value(json_object_get(prop(s, "currency"), "pattern")),
                     "^[A-Z]{3}$");
    json_decref(s);
}
END_TEST

/* Every schema spells the request fields (and ids, times) like
 * payment.requested does, and carries money.c's currency table. */
START_TEST(test_shared_definitions)
{
    json_t *req = load_schema(MSG_TYPE_REQUESTED);
    json_t *s = load_schema(types[_i]);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(s, "properties"), k, v)
    {
        json_t *rp = json_object_get(json_object_get(req, "properties"), k);
        if (rp) {
            /* same rule; descriptions may differ */
            json_t *a = json_deep_copy(rp), *b = json_deep_copy(v);
            json_object_del(a, "description");
            json_object_del(b, "description");
            ck_assert_msg(json_equal(a, b), "%s.%s differs from payment.requested's", types[_i], k);
            json_decref(a);
            json_decref(b);
        }
        if (strcmp(k, "currency") == 0) {
            json_t *en = json_object_get(v, "enum");
            ck_assert_uint_eq(json_array_size(en), money_currency_count());
            for (size_t i = 0; i < money_currency_count(); i++)
                ck_assert_str_eq(json_string_value(json_array_get(en, i)), money_currency_at(i));
        }
        if (strcmp(k, "occurred_at") == 0 || strcmp(k, "posted_at") == 0 ||
            strcmp(k, "window_start") == 0 || strcmp(k, "window_end") == 0) {
            char t[MSG_TIME_LEN + 1];
            msg_format_time(1795426285123LL, t);
            char why[128];
            json_t *good = json_string(t), *bad = json_string("2026-11-23T09:31:25Z");
            ck_assert_msg(validate(v, good, why, sizeof why), "%s: %s", k, why);
            ck_assert(!validate(v, bad, why, sizeof why));
            json_decref(good);
            json_decref(bad);
        }
    }
    json_decref(s);
    json_decref(req);
}
END_TEST

START_TEST(test_currency_enum_exact)
{
    /* the enum is exactly the table: every listed code valid, in order */
    json_t *s = load_schema(MSG_TYPE_REQUESTED);
    json_t *en = json_object_get(prop(s, "currency"), "enum");
    size_t i;
    json_t *c;
    json_array_foreach(en, i, c)
    {
        ck_assert_msg(money_currency_valid(json_string_value(c)), "%s", json_string_value(c));
        ck_assert(money_currency_exponent(json_string_value(c)) >= 0);
    }
    ck_assert_uint_eq(json_array_size(en), money_currency_count());
    json_decref(s);
}
END_TEST

START_TEST(test_reason_enums)
{
    json_t *s = load_schema(MSG_TYPE_REJECTED);
    json_t *en = json_object_get(prop(s, "reason"), "enum");
    ck_assert_uint_eq(json_array_size(en), MSG_REASON_COUNT);
    for (int i = 0; i < MSG_REASON_COUNT; i++)
        ck_assert_str_eq(json_string_value(json_array_get(en, (size_t)i)),
                         msg_reason_str((msg_reason_t)i));
    ck_assert_int_eq(int_kw(prop(s, "detail"), "maxLength"),
                     (int)sizeof(((msg_reject_t *)0)->detail) - 1);
    json_decref(s);

    s = load_schema(MSG_TYPE_FAILED);
    en = json_object_get(prop(s, "reason"), "enum");
    size_t n = 0;
    while (msg_failure_reason_at(n))
        n++;
    ck_assert_uint_eq(json_array_size(en), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(json_string_value(json_array_get(en, i)), msg_failure_reason_at(i));
    json_decref(s);

    s = load_schema(MSG_TYPE_REFUND_FAILED);
    en = json_object_get(prop(s, "reason"), "enum");
    n = 0;
    while (msg_refund_failure_reason_at(n))
        n++;
    ck_assert_uint_eq(json_array_size(en), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(json_string_value(json_array_get(en, i)), msg_refund_failure_reason_at(i));
    json_decref(s);

    static const struct {
        const char *type;
        const char *(*at)(size_t);
    } failed[] = {{MSG_TYPE_DEPOSIT_FAILED, msg_deposit_failure_reason_at},
                  {MSG_TYPE_WITHDRAWAL_FAILED, msg_withdrawal_failure_reason_at}};
    for (int k = 0; k < N(failed); k++) {
        s = load_schema(failed[k].type);
        en = json_object_get(prop(s, "reason"), "enum");
        for (n = 0; failed[k].at(n); n++)
            ck_assert_str_eq(json_string_value(json_array_get(en, n)), failed[k].at(n));
        ck_assert_uint_eq(json_array_size(en), n);
        json_decref(s);
    }
    s = load_schema(MSG_TYPE_WITHDRAWAL_REQUESTED);
    ck_assert_int_eq(int_kw(prop(s, "destination"), "x-maxBytes"), MSG_DESCRIPTION_MAX);
    ck_assert_int_eq(int_kw(s, "x-maxBodyBytes"), MSG_BODY_MAX);
    json_decref(s);
    s = load_schema(MSG_TYPE_WITHDRAWAL_RETURNED);
    ck_assert_int_eq(int_kw(prop(s, "reason"), "x-maxBytes"), MSG_DESCRIPTION_MAX);
    json_decref(s);

    s = load_schema(MSG_TYPE_REFUND_REQUESTED);
    ck_assert_int_eq(int_kw(prop(s, "reason"), "maxLength"), MSG_DESCRIPTION_MAX);
    ck_assert_int_eq(int_kw(prop(s, "reason"), "x-maxBytes"), MSG_DESCRIPTION_MAX);
    ck_assert_int_eq(int_kw(s, "x-maxBodyBytes"), MSG_BODY_MAX);
    json_decref(s);

    s = load_schema(MSG_TYPE_DECLINED);
    en = json_object_get(prop(s, "reason"), "enum");
    ck_assert_uint_eq(json_array_size(en), 1);
    ck_assert_str_eq(json_string_value(json_array_get(en, 0)), MSG_DECLINE_REASON);
    ck_assert_int_eq(int_kw(prop(s, "rules"), "maxItems"), MSG_RULES_MAX);
    json_decref(s);

    s = load_schema(MSG_TYPE_APPROVED);
    json_t *risk = prop(s, "risk");
    json_t *rp = json_object_get(risk, "properties");
    ck_assert(json_is_false(json_object_get(risk, "additionalProperties")));
    ck_assert_uint_eq(json_object_size(rp), 2);
    ck_assert_int_eq(int_kw(json_object_get(rp, "score"), "minimum"), 0);
    ck_assert_int_eq(int_kw(json_object_get(rp, "score"), "maximum"), MSG_SCORE_MAX);
    ck_assert_int_eq(int_kw(json_object_get(rp, "rules"), "maxItems"), MSG_RULES_MAX);
    ck_assert_uint_eq(json_array_size(json_object_get(risk, "required")), 2);
    json_decref(s);
}
END_TEST

/* ---- encoder output against the schemas --------------------------------- */

/* Output keys == schema properties when every optional field is present;
 * the output validates. */
static void check_event(const char *type, char *body, bool all_optionals)
{
    ck_assert_msg(body != NULL, "%s: encoder returned NULL", type);
    json_t *s = load_schema(type);
    json_t *o = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(o);
    char why[256] = "";
    ck_assert_msg(validate(s, o, why, sizeof why), "%s: encoder output fails its schema: %s\n%s",
                  type, why, body);
    json_t *props = json_object_get(s, "properties");
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) ck_assert_msg(json_object_get(props, k), "%s: extra %s", type, k);
    if (all_optionals)
        ck_assert_uint_eq(json_object_size(o), json_object_size(props));
    json_decref(o);
    json_decref(s);
    free(body);
}

START_TEST(test_encoders_match_schemas)
{
    const char *body =
        "{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\","
        "\"amount\":100000000000000,\"currency\":\"CLF\",\"description\":\"\xc3\xa9t\xc3\xa9\","
        "\"metadata\":{\"a\":\"1\"}}";
    msg_payment_t p;
    msg_reject_t why;
    ck_assert_int_eq(msg_payment_decode(body, strlen(body), &p, &why), LL_OK);
    const char *rules[] = {"r1", "r2"};
    const int64_t t = 1795426285123LL;
    check_event(MSG_TYPE_APPROVED, msg_encode_approved(&p, 7, rules, 2, t), true);
    check_event(MSG_TYPE_DECLINED, msg_encode_declined(&p, rules, 2, t), true);
    check_event(MSG_TYPE_COMPLETED, msg_encode_completed(&p, "t-1", t, t), true);
    for (size_t i = 0; msg_failure_reason_at(i); i++)
        check_event(MSG_TYPE_FAILED, msg_encode_failed(&p, msg_failure_reason_at(i), t), true);
    msg_batch_closed_t b = {"b-1", "acc_B", "EUR", t, t + 1000, 2, 500, 20, 100, 1, 30, 0, 350};
    check_event(MSG_TYPE_BATCH_CLOSED, msg_encode_batch_closed(&b, t), true);
    msg_refund_t rf = {"r-1", "p-1", 40, "customer asked", true};
    msg_refund_done_t done = {"acc_A", "acc_B", "EUR", "t-2", 40, 60, "b-1"};
    check_event(MSG_TYPE_REFUND_COMPLETED, msg_encode_refund_completed(&rf, &done, t), true);
    for (size_t i = 0; msg_refund_failure_reason_at(i); i++)
        check_event(MSG_TYPE_REFUND_FAILED,
                    msg_encode_refund_failed(&rf, msg_refund_failure_reason_at(i), t), true);
    ck_assert_ptr_null(msg_encode_refund_failed(&rf, "payment_declined", t));
    msg_deposit_t dp = {"d-1", "acc_A", 500, "EUR", "sepa", "sepa-ref-9"};
    check_event(MSG_TYPE_DEPOSIT_COMPLETED, msg_encode_deposit_completed(&dp, "t-3", t), true);
    for (size_t i = 0; msg_deposit_failure_reason_at(i); i++)
        check_event(MSG_TYPE_DEPOSIT_FAILED,
                    msg_encode_deposit_failed(&dp, msg_deposit_failure_reason_at(i), t), true);
    msg_withdrawal_t wd = {"w-1", "acc_A", 300, "EUR", "sepa", "DE00 1234", true};
    check_event(MSG_TYPE_WITHDRAWAL_COMPLETED, msg_encode_withdrawal_completed(&wd, "t-4", t),
                true);
    const char *wrules[] = {"velocity_sum"};
    for (size_t i = 0; msg_withdrawal_failure_reason_at(i); i++)
        check_event(MSG_TYPE_WITHDRAWAL_FAILED,
                    msg_encode_withdrawal_failed(&wd, msg_withdrawal_failure_reason_at(i), wrules,
                                                 i == 0, t),
                    true);
    msg_return_t rt = {"w-1", "ret-7", "account closed", true};
    check_event(MSG_TYPE_WITHDRAWAL_REVERSED,
                msg_encode_withdrawal_reversed(&rt, "acc_A", 300, "EUR", "t-5", t), true);
    msg_reject_t fr = {MSG_REASON_PROCESSING_FAILED, "withdrawal_id", "no withdrawal"};
    check_event(MSG_TYPE_REJECTED,
                msg_encode_rejected("funds", &fr, NULL, "withdrawal_id", "w-1", "funds\nk", t),
                false);
    check_event(MSG_TYPE_REJECTED,
                msg_encode_rejected("funds", &fr, NULL, "deposit_id", "d-1", "funds\nk", t), false);
    for (int r = 0; r < MSG_REASON_COUNT; r++) {
        msg_reject_t rj = {(msg_reason_t)r, "amount", ""};
        memset(rj.detail, 'x', sizeof rj.detail - 1); /* longest detail */
        check_event(
            MSG_TYPE_REJECTED,
            msg_encode_rejected("refunds", &rj, "p-1", "refund_id", "r-1", "refunds\nr-1", t),
            false);
        check_event(MSG_TYPE_REJECTED,
                    msg_encode_rejected("risk", &rj, NULL, NULL, NULL, "risk\nh", t), false);
    }
    msg_payment_clear(&p);
    /* without the optional fields */
    body = "{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1,"
           "\"currency\":\"EUR\"}";
    ck_assert_int_eq(msg_payment_decode(body, strlen(body), &p, &why), LL_OK);
    check_event(MSG_TYPE_APPROVED, msg_encode_approved(&p, 0, NULL, 0, t), false);
    check_event(MSG_TYPE_COMPLETED, msg_encode_completed(&p, "t-1", t, t), false);
    msg_payment_clear(&p);
}
END_TEST

/* ---- decoder and schema verdicts on request bodies ----------------------- */

#define RQ(amount, cur, extra)                                                                     \
    "{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":" amount           \
    ",\"currency\":\"" cur "\"" extra "}"

static const struct {
    const char *label;
    const char *body;
    bool decoder_ok;
    bool schema_ok; /* differs from decoder_ok only where JSON Schema cannot say it */
} verdicts[] = {
    {"valid", RQ("1", "EUR", ""), true, true},
    {"valid full",
     RQ("100000000000000", "JPY", ",\"description\":\"x\",\"metadata\":{\"k\":\"v\"}"), true, true},
    {"amount 0", RQ("0", "EUR", ""), false, false},
    {"amount 10^14+1", RQ("100000000000001", "EUR", ""), false, false},
    {"amount real", RQ("1.5", "EUR", ""), false, false},
    {"amount string", RQ("\"1\"", "EUR", ""), false, false},
    {"currency lower", RQ("1", "eur", ""), false, false},
    {"currency unknown", RQ("1", "XYZ", ""), false, false},
    {"unknown field", RQ("1", "EUR", ",\"x\":\"y\""), false, false},
    {"metadata value object", RQ("1", "EUR", ",\"metadata\":{\"k\":{}}"), false, false},
    {"metadata 17 keys",
     RQ("1", "EUR",
        ",\"metadata\":{\"a\":\"\",\"b\":\"\",\"c\":\"\",\"d\":\"\",\"e\":\"\",\"f\":\"\",\"g\":"
        "\"\",\"h\":\"\",\"i\":\"\",\"j\":\"\",\"k\":\"\",\"l\":\"\",\"m\":\"\",\"n\":\"\",\"o\":"
        "\"\",\"p\":\"\",\"q\":\"\"}"),
     false, false},
    {"id bad charset",
     "{\"payment_id\":\"p 1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1,\"currency\":"
     "\"EUR\"}",
     false, false},
    {"missing currency",
     "{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1}", false, false},
    /* the rules only the code can check */
    {"amount 100.0 (code only: JSON Schema's integer includes 100.0)", RQ("100.0", "EUR", ""),
     false, true},
    {"payer == payee (code only)",
     "{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_A\",\"amount\":1,\"currency\":"
     "\"EUR\"}",
     false, true},
    {"description 101 chars / 202 bytes (code only)",
     RQ("1", "EUR",
        ",\"description\":"
        "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\""),
     false, true},
};

START_TEST(test_verdicts)
{
    json_t *s = load_schema(MSG_TYPE_REQUESTED);
    const char *b = verdicts[_i].body;
    msg_payment_t p;
    msg_reject_t why;
    int rc = msg_payment_decode(b, strlen(b), &p, &why);
    ck_assert_msg((rc == LL_OK) == verdicts[_i].decoder_ok, "%s: decoder %s (%s)",
                  verdicts[_i].label, ll_errname(rc), rc ? why.detail : "");
    if (rc != LL_OK)
        ck_assert_int_eq(why.reason, MSG_REASON_SCHEMA_VIOLATION);
    msg_payment_clear(&p);
    json_t *o = json_loads(b, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(o);
    char w[256] = "";
    bool ok = validate(s, o, w, sizeof w);
    ck_assert_msg(ok == verdicts[_i].schema_ok, "%s: schema says %d (%s)", verdicts[_i].label, ok,
                  w);
    json_decref(o);
    json_decref(s);
}
END_TEST

/* refund.requested, the refund stage's input: decoder and schema agree. */
#define RF(extra) "{\"refund_id\":\"r-1\",\"payment_id\":\"p-1\"" extra "}"

static const struct {
    const char *label;
    const char *body;
    bool decoder_ok;
    bool schema_ok;
} refund_verdicts[] = {
    {"valid", RF(",\"amount\":1"), true, true},
    {"valid with reason", RF(",\"amount\":100000000000000,\"reason\":\"damaged\""), true, true},
    {"amount missing", RF(""), false, false},
    {"amount 0", RF(",\"amount\":0"), false, false},
    {"amount 10^14+1", RF(",\"amount\":100000000000001"), false, false},
    {"amount string", RF(",\"amount\":\"5\""), false, false},
    {"reason a number", RF(",\"amount\":1,\"reason\":5"), false, false},
    {"currency (not a refund field)", RF(",\"amount\":1,\"currency\":\"EUR\""), false, false},
    {"refund_id missing", "{\"payment_id\":\"p-1\",\"amount\":1}", false, false},
    {"refund_id bad charset", "{\"refund_id\":\"r 1\",\"payment_id\":\"p-1\",\"amount\":1}", false,
     false},
    {"amount 1.0 (code only: JSON Schema's integer includes 1.0)", RF(",\"amount\":1.0"), false,
     true},
};

START_TEST(test_refund_verdicts)
{
    json_t *s = load_schema(MSG_TYPE_REFUND_REQUESTED);
    const char *b = refund_verdicts[_i].body;
    msg_refund_t r;
    msg_reject_t why;
    int rc = msg_refund_decode(b, strlen(b), &r, &why);
    ck_assert_msg((rc == LL_OK) == refund_verdicts[_i].decoder_ok, "%s: decoder %s (%s)",
                  refund_verdicts[_i].label, ll_errname(rc), rc ? why.detail : "");
    if (rc != LL_OK)
        ck_assert_int_eq(why.reason, MSG_REASON_SCHEMA_VIOLATION);
    json_t *o = json_loads(b, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(o);
    char w[256] = "";
    bool ok = validate(s, o, w, sizeof w);
    ck_assert_msg(ok == refund_verdicts[_i].schema_ok, "%s: schema says %d (%s)",
                  refund_verdicts[_i].label, ok, w);
    json_decref(o);
    json_decref(s);
}
END_TEST

/* ---- decoder and schema verdicts on the events the stages consume ------- */

/* payment.approved (the payment stage's input) and payment.completed (the
 * settlement stage's input): a valid body from the encoder, then one edit
 * each; the decoder and the schema must agree, except where marked. */
static const struct {
    const char *type;
    const char *label;
    const char *field; /* top-level member to set ("risk.score": inside risk) */
    const char *json;  /* its new value as JSON; NULL: remove the member */
    bool decoder_ok;
    bool schema_ok;
} event_verdicts[] = {
    {MSG_TYPE_APPROVED, "valid", NULL, NULL, true, true},
    {MSG_TYPE_APPROVED, "score 101", "risk.score", "101", false, false},
    {MSG_TYPE_APPROVED, "score -1", "risk.score", "-1", false, false},
    {MSG_TYPE_APPROVED, "score real", "risk.score", "1.5", false, false},
    {MSG_TYPE_APPROVED, "rule with a space", "risk.rules", "[\"a b\"]", false, false},
    {MSG_TYPE_APPROVED, "33 rules", "risk.rules",
     "[\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\","
     "\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\",\"r\","
     "\"r\",\"r\",\"r\",\"r\",\"r\"]",
     false, false},
    {MSG_TYPE_APPROVED, "risk missing", "risk", NULL, false, false},
    {MSG_TYPE_APPROVED, "event_id upper case", "event_id", "\"ABCDEF0123456789ABCDEF0123456789\"",
     false, false},
    {MSG_TYPE_APPROVED, "event_id 31 chars", "event_id", "\"abcdef0123456789abcdef012345678\"",
     false, false},
    {MSG_TYPE_APPROVED, "occurred_at missing", "occurred_at", NULL, false, false},
    {MSG_TYPE_APPROVED, "occurred_at not a time", "occurred_at", "\"yesterday\"", false, false},
    {MSG_TYPE_APPROVED, "unknown field", "x", "\"y\"", false, false},
    {MSG_TYPE_APPROVED, "amount 0", "amount", "0", false, false},
    {MSG_TYPE_COMPLETED, "valid", NULL, NULL, true, true},
    {MSG_TYPE_COMPLETED, "transfer_id missing", "transfer_id", NULL, false, false},
    {MSG_TYPE_COMPLETED, "transfer_id with a space", "transfer_id", "\"t 1\"", false, false},
    {MSG_TYPE_COMPLETED, "posted_at missing", "posted_at", NULL, false, false},
    {MSG_TYPE_COMPLETED, "posted_at not a time", "posted_at", "\"2026-11-23\"", false, false},
    {MSG_TYPE_COMPLETED, "unknown field", "x", "1", false, false},
    {MSG_TYPE_COMPLETED, "amount 10^14+1", "amount", "100000000000001", false, false},
    {MSG_TYPE_COMPLETED, "currency lower", "currency", "\"eur\"", false, false},
    /* only the code can say it: the schema's time pattern has no calendar */
    {MSG_TYPE_COMPLETED, "posted_at in month 13 (code only)", "posted_at",
     "\"2026-13-01T00:00:00.000Z\"", false, true},
};

START_TEST(test_event_verdicts)
{
    const char *type = event_verdicts[_i].type;
    const char *pb = "{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\","
                     "\"amount\":100,\"currency\":\"EUR\"}";
    msg_payment_t p;
    msg_reject_t why;
    ck_assert_int_eq(msg_payment_decode(pb, strlen(pb), &p, &why), LL_OK);
    const char *rules[] = {"max_amount"};
    const int64_t t = 1795426285123LL;
    char *base = strcmp(type, MSG_TYPE_APPROVED) == 0 ? msg_encode_approved(&p, 20, rules, 1, t)
                                                      : msg_encode_completed(&p, "42", t, t);
    msg_payment_clear(&p);
    ck_assert_ptr_nonnull(base);
    json_t *o = json_loads(base, JSON_REJECT_DUPLICATES, NULL);
    free(base);
    ck_assert_ptr_nonnull(o);
    const char *field = event_verdicts[_i].field;
    if (field) {
        json_t *target = o;
        const char *key = field;
        if (strncmp(field, "risk.", 5) == 0) {
            target = json_object_get(o, "risk");
            key = field + 5;
        }
        if (event_verdicts[_i].json) {
            json_t *v = json_loads(event_verdicts[_i].json, JSON_DECODE_ANY, NULL);
            ck_assert_ptr_nonnull(v);
            json_object_set_new(target, key, v);
        } else {
            json_object_del(target, key);
        }
    }
    char *body = json_dumps(o, JSON_COMPACT);
    int rc;
    if (strcmp(type, MSG_TYPE_APPROVED) == 0) {
        msg_approved_t a;
        memset(&a, 0, sizeof a);
        rc = msg_approved_decode(body, strlen(body), &a, &why);
        msg_approved_clear(&a);
    } else {
        msg_completed_t c;
        memset(&c, 0, sizeof c);
        rc = msg_completed_decode(body, strlen(body), &c, &why);
        msg_completed_clear(&c);
    }
    ck_assert_msg((rc == LL_OK) == event_verdicts[_i].decoder_ok, "%s %s: decoder %s (%s)\n%s",
                  type, event_verdicts[_i].label, ll_errname(rc), rc ? why.detail : "", body);
    json_t *s = load_schema(type);
    char w[256] = "";
    bool ok = validate(s, o, w, sizeof w);
    ck_assert_msg(ok == event_verdicts[_i].schema_ok, "%s %s: schema says %d (%s)\n%s", type,
                  event_verdicts[_i].label, ok, w, body);
    json_decref(s);
    json_decref(o);
    free(body);
}
END_TEST

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tc = tcase_create("agreement");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_fields_match, 0, N(types));
    tcase_add_test(tc, test_requested_limits);
    tcase_add_loop_test(tc, test_shared_definitions, 0, N(types));
    tcase_add_test(tc, test_currency_enum_exact);
    tcase_add_test(tc, test_reason_enums);
    tcase_add_test(tc, test_encoders_match_schemas);
    tcase_add_loop_test(tc, test_verdicts, 0, N(verdicts));
    tcase_add_loop_test(tc, test_refund_verdicts, 0, N(refund_verdicts));
    tcase_add_loop_test(tc, test_event_verdicts, 0, N(event_verdicts));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(schema_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
