/*
 * test_msg.c - Check suite for the message codec (common/msg.c,
 * msg_decode.c, msg_encode.c): every rejection reason and boundary of
 * docs/contract.md#field-rules as one table, then the payload hash, the diff, the event
 * encoders (decoded back with jansson), the approved/completed decoders
 * (round trip and their own rejections), time stamps and payment_id peeking.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "msg.h"
#include "msg_decode.h"
#include "msg_encode.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- the decode table --------------------------------------------------- */

enum fill {
    F_NONE,
    F_ID64,    /* 64 x 'a' */
    F_ID65,    /* 65 x 'a' */
    F_DESC200, /* 100 x U+00E9: 200 bytes, 100 chars */
    F_DESC201, /* 100 x U+00E9 + 'x': 201 bytes, 101 chars */
    F_META16,  /* "k0":"v",... 16 keys */
    F_META17,  /* 17 keys */
    F_DEEP,    /* 3000 nested arrays as the metadata value */
};

/* body with one "%s" replaced by the fill; pad_to: spaces appended up to that
 * many bytes; len: explicit length (for embedded NUL bytes), 0 = strlen. */
typedef struct {
    const char *label;
    const char *body;
    enum fill fill;
    size_t pad_to;
    size_t len;
    int want_rc;
    msg_reason_t want_reason;
    const char *want_field;
} decode_case_t;

#define P_ID           "\"payment_id\":\"p-1\""
#define P_PY           "\"payer\":\"acc_A\""
#define P_PE           "\"payee\":\"acc_B\""
#define P_AM           "\"amount\":1234"
#define P_CU           "\"currency\":\"EUR\""
#define VALID          "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU "}"
#define WITHOUT_AMOUNT "{" P_ID "," P_PY "," P_PE "," P_CU
#define OK             LL_OK, 0, ""
#define SV(f)          LL_EREJECT, MSG_REASON_SCHEMA_VIOLATION, f
#define MJ             LL_EREJECT, MSG_REASON_MALFORMED_JSON, ""

static const decode_case_t decode_cases[] = {
    {"valid minimal", VALID, F_NONE, 0, 0, OK},
    {"valid full",
     "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU
     ",\"description\":\"tea\",\"metadata\":{\"color\":\"red\"}}",
     F_NONE, 0, 0, OK},
    {"valid other order + whitespace",
     " {\n\t" P_CU " , " P_AM ",\r\n" P_PE "," P_PY "," P_ID "}\n ", F_NONE, 0, 0, OK},
    /* oversized */
    {"exactly 16384 bytes", VALID, F_NONE, 16384, 0, OK},
    {"16385 bytes", VALID, F_NONE, 16385, 0, LL_EREJECT, MSG_REASON_OVERSIZED, ""},
    /* malformed */
    {"empty body", "", F_NONE, 0, 0, MJ},
    {"whitespace only", "   ", F_NONE, 0, 0, MJ},
    {"syntax error", "{\"payment_id\":}", F_NONE, 0, 0, MJ},
    {"truncated", "{\"payment_id\":\"p-1\"", F_NONE, 0, 0, MJ},
    {"trailing garbage", VALID "x", F_NONE, 0, 0, MJ},
    {"two objects", VALID VALID, F_NONE, 0, 0, MJ},
    {"invalid utf-8 in value",
     "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"description\":\"\xff\xfe\"}", F_NONE, 0, 0,
     MJ},
    {"overlong utf-8",
     "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"description\":\"\xc0\xaf\"}", F_NONE, 0, 0,
     MJ},
    {"invalid utf-8 in key", "{\"\xe9\":1}", F_NONE, 0, 0, MJ},
    {"duplicate key", "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU "," P_AM "}", F_NONE, 0, 0, MJ},
    {"duplicate key in metadata",
     "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"metadata\":{\"a\":\"1\",\"a\":\"2\"}}",
     F_NONE, 0, 0, MJ},
    {"escaped NUL in string",
     "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"description\":\"a\\u0000b\"}", F_NONE, 0, 0,
     MJ},
    {"raw NUL byte in string", "{\"payment_id\":\"p\0-1\"}", F_NONE, 0, 20, MJ},
    {"single quotes", "{'payment_id':'p-1'}", F_NONE, 0, 0, MJ},
    {"NaN", WITHOUT_AMOUNT ",\"amount\":NaN}", F_NONE, 0, 0, MJ},
    {"leading zero number", WITHOUT_AMOUNT ",\"amount\":01}", F_NONE, 0, 0, MJ},
    /* schema: root */
    {"root array", "[" VALID "]", F_NONE, 0, 0, SV("")},
    {"root string", "\"hello\"", F_NONE, 0, 0, SV("")},
    {"root number", "42", F_NONE, 0, 0, SV("")},
    {"root null", "null", F_NONE, 0, 0, SV("")},
    {"empty object", "{}", F_NONE, 0, 0, SV("payment_id")},
    /* missing each required field */
    {"missing payment_id", "{" P_PY "," P_PE "," P_AM "," P_CU "}", F_NONE, 0, 0, SV("payment_id")},
    {"missing payer", "{" P_ID "," P_PE "," P_AM "," P_CU "}", F_NONE, 0, 0, SV("payer")},
    {"missing payee", "{" P_ID "," P_PY "," P_AM "," P_CU "}", F_NONE, 0, 0, SV("payee")},
    {"missing amount", WITHOUT_AMOUNT "}", F_NONE, 0, 0, SV("amount")},
    {"missing currency", "{" P_ID "," P_PY "," P_PE "," P_AM "}", F_NONE, 0, 0, SV("currency")},
    /* unknown field */
    {"unknown field", "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"amt\":5}", F_NONE, 0, 0,
     SV("amt")},
    {"unknown field first in document order", "{\"zz\":1,\"aa\":2," P_ID "}", F_NONE, 0, 0,
     SV("zz")},
    {"envelope field in request",
     "{\"type\":\"payment.requested\"," P_ID "," P_PY "," P_PE "," P_AM "," P_CU "}", F_NONE, 0, 0,
     SV("type")},
    /* ids */
    {"payment_id 64 chars", "{\"payment_id\":\"%s\"," P_PY "," P_PE "," P_AM "," P_CU "}", F_ID64,
     0, 0, OK},
    {"payment_id 65 chars", "{\"payment_id\":\"%s\"," P_PY "," P_PE "," P_AM "," P_CU "}", F_ID65,
     0, 0, SV("payment_id")},
    {"payer 64 chars", "{" P_ID ",\"payer\":\"%s\"," P_PE "," P_AM "," P_CU "}", F_ID64, 0, 0, OK},
    {"payer 65 chars", "{" P_ID ",\"payer\":\"%s\"," P_PE "," P_AM "," P_CU "}", F_ID65, 0, 0,
     SV("payer")},
    {"payee 64 chars", "{" P_ID "," P_PY ",\"payee\":\"%s\"," P_AM "," P_CU "}", F_ID64, 0, 0, OK},
    {"payee 65 chars", "{" P_ID "," P_PY ",\"payee\":\"%s\"," P_AM "," P_CU "}", F_ID65, 0, 0,
     SV("payee")},
    {"id full charset", "{\"payment_id\":\"AZaz09_.:-\"," P_PY "," P_PE "," P_AM "," P_CU "}",
     F_NONE, 0, 0, OK},
    {"empty payment_id", "{\"payment_id\":\"\"," P_PY "," P_PE "," P_AM "," P_CU "}", F_NONE, 0, 0,
     SV("payment_id")},
    {"payment_id with space", "{\"payment_id\":\"p 1\"," P_PY "," P_PE "," P_AM "," P_CU "}",
     F_NONE, 0, 0, SV("payment_id")},
    {"payment_id with slash", "{\"payment_id\":\"p/1\"," P_PY "," P_PE "," P_AM "," P_CU "}",
     F_NONE, 0, 0, SV("payment_id")},
    {"payment_id non-ascii", "{\"payment_id\":\"p\xc3\xa9\"," P_PY "," P_PE "," P_AM "," P_CU "}",
     F_NONE, 0, 0, SV("payment_id")},
    {"payer bad charset", "{" P_ID ",\"payer\":\"a+b\"," P_PE "," P_AM "," P_CU "}", F_NONE, 0, 0,
     SV("payer")},
    {"payee empty", "{" P_ID "," P_PY ",\"payee\":\"\"," P_AM "," P_CU "}", F_NONE, 0, 0,
     SV("payee")},
    {"payment_id number", "{\"payment_id\":17," P_PY "," P_PE "," P_AM "," P_CU "}", F_NONE, 0, 0,
     SV("payment_id")},
    {"payer null", "{" P_ID ",\"payer\":null," P_PE "," P_AM "," P_CU "}", F_NONE, 0, 0,
     SV("payer")},
    {"payer == payee", "{" P_ID ",\"payer\":\"acc_A\",\"payee\":\"acc_A\"," P_AM "," P_CU "}",
     F_NONE, 0, 0, SV("payee")},
    /* amount */
    {"amount 0 (an amount is at least one minor unit)", WITHOUT_AMOUNT ",\"amount\":0}", F_NONE, 0,
     0, SV("amount")},
    {"amount 1", WITHOUT_AMOUNT ",\"amount\":1}", F_NONE, 0, 0, OK},
    {"amount 10^14", WITHOUT_AMOUNT ",\"amount\":100000000000000}", F_NONE, 0, 0, OK},
    {"amount 10^14+1", WITHOUT_AMOUNT ",\"amount\":100000000000001}", F_NONE, 0, 0, SV("amount")},
    {"amount -1", WITHOUT_AMOUNT ",\"amount\":-1}", F_NONE, 0, 0, SV("amount")},
    {"amount int64 max", WITHOUT_AMOUNT ",\"amount\":9223372036854775807}", F_NONE, 0, 0,
     SV("amount")},
    {"amount 100.0", WITHOUT_AMOUNT ",\"amount\":100.0}", F_NONE, 0, 0, SV("amount")},
    {"amount 1e2", WITHOUT_AMOUNT ",\"amount\":1e2}", F_NONE, 0, 0, SV("amount")},
    {"amount 12.5", WITHOUT_AMOUNT ",\"amount\":12.5}", F_NONE, 0, 0, SV("amount")},
    {"amount string", WITHOUT_AMOUNT ",\"amount\":\"1234\"}", F_NONE, 0, 0, SV("amount")},
    {"amount bool", WITHOUT_AMOUNT ",\"amount\":true}", F_NONE, 0, 0, SV("amount")},
    {"amount huge literal", WITHOUT_AMOUNT ",\"amount\":99999999999999999999999}", F_NONE, 0, 0,
     SV("amount")},
    {"amount huge negative literal", WITHOUT_AMOUNT ",\"amount\":-99999999999999999999999}", F_NONE,
     0, 0, SV("amount")},
    {"amount real overflow", WITHOUT_AMOUNT ",\"amount\":1e999}", F_NONE, 0, 0, SV("")},
    {"huge literal in metadata", "{" P_ID ",\"metadata\":{\"n\":123456789012345678901234}}", F_NONE,
     0, 0, SV("metadata.n")},
    /* currency */
    {"currency JPY", "{" P_ID "," P_PY "," P_PE "," P_AM ",\"currency\":\"JPY\"}", F_NONE, 0, 0,
     OK},
    {"currency lower-case", "{" P_ID "," P_PY "," P_PE "," P_AM ",\"currency\":\"eur\"}", F_NONE, 0,
     0, SV("currency")},
    {"currency non-ISO", "{" P_ID "," P_PY "," P_PE "," P_AM ",\"currency\":\"XYZ\"}", F_NONE, 0, 0,
     SV("currency")},
    {"currency 2 letters", "{" P_ID "," P_PY "," P_PE "," P_AM ",\"currency\":\"EU\"}", F_NONE, 0,
     0, SV("currency")},
    {"currency 4 letters", "{" P_ID "," P_PY "," P_PE "," P_AM ",\"currency\":\"EURO\"}", F_NONE, 0,
     0, SV("currency")},
    {"currency number", "{" P_ID "," P_PY "," P_PE "," P_AM ",\"currency\":978}", F_NONE, 0, 0,
     SV("currency")},
    /* description */
    {"description 200 bytes (100 chars)", VALID, F_DESC200, 0, 0, OK},
    {"description 201 bytes (101 chars)", VALID, F_DESC201, 0, 0, SV("description")},
    {"description empty", "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"description\":\"\"}",
     F_NONE, 0, 0, OK},
    {"description number", "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"description\":5}",
     F_NONE, 0, 0, SV("description")},
    /* metadata */
    {"metadata 16 keys", VALID, F_META16, 0, 0, OK},
    {"metadata 17 keys", VALID, F_META17, 0, 0, SV("metadata")},
    {"metadata empty", "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"metadata\":{}}", F_NONE, 0,
     0, OK},
    {"metadata number value",
     "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"metadata\":{\"a\":\"x\",\"n\":5}}", F_NONE, 0,
     0, SV("metadata.n")},
    {"metadata nested object",
     "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"metadata\":{\"color\":{\"r\":\"1\"}}}",
     F_NONE, 0, 0, SV("metadata.color")},
    {"metadata nested array",
     "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"metadata\":{\"tags\":[\"a\"]}}", F_NONE, 0, 0,
     SV("metadata.tags")},
    {"metadata null value",
     "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"metadata\":{\"a\":null}}", F_NONE, 0, 0,
     SV("metadata.a")},
    {"metadata array", "{" P_ID "," P_PY "," P_PE "," P_AM "," P_CU ",\"metadata\":[]}", F_NONE, 0,
     0, SV("metadata")},
    {"deep nesting",
     "{\"metadata\":"
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
     F_NONE, 0, 0, SV("payment_id")},
    {"nesting deeper than the parser allows", "{\"metadata\":%s}", F_DEEP, 0, 0, SV("")},
    /* fixed order: the first violation in the order payment_id, payer, payee, amount, ... */
    {"order: payer before amount", "{" P_ID ",\"payer\":\"\"," P_PE ",\"amount\":0," P_CU "}",
     F_NONE, 0, 0, SV("payer")},
    {"order: amount before currency", WITHOUT_AMOUNT ",\"amount\":1.5}", F_NONE, 0, 0,
     SV("amount")},
    {"order: unknown before missing", "{\"x\":1}", F_NONE, 0, 0, SV("x")},
};

/* Builds the body of case c into a malloc'd buffer; *len its length. */
static char *build_body(const decode_case_t *c, size_t *len)
{
    static char fill[8192];
    fill[0] = '\0';
    switch (c->fill) {
    case F_NONE:
        break;
    case F_ID64:
    case F_ID65:
        memset(fill, 'a', c->fill == F_ID64 ? 64 : 65);
        fill[c->fill == F_ID64 ? 64 : 65] = '\0';
        break;
    case F_DESC200:
    case F_DESC201: {
        strcpy(fill, ",\"description\":\"");
        for (int i = 0; i < 100; i++)
            strcat(fill, "\xc3\xa9");
        if (c->fill == F_DESC201)
            strcat(fill, "x");
        strcat(fill, "\"");
        break;
    }
    case F_META16:
    case F_META17: {
        strcpy(fill, ",\"metadata\":{");
        int n = c->fill == F_META16 ? 16 : 17;
        for (int i = 0; i < n; i++)
            sprintf(fill + strlen(fill), "%s\"k%d\":\"v\"", i ? "," : "", i);
        strcat(fill, "}");
        break;
    }
    case F_DEEP:
        memset(fill, '[', 3000);
        memset(fill + 3000, ']', 3000);
        fill[6000] = '\0';
        break;
    }
    size_t cap = strlen(c->body) + strlen(fill) + c->pad_to + 64;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    if (c->len) {
        memcpy(buf, c->body, c->len);
        *len = c->len;
        return buf;
    }
    if (c->fill == F_DESC200 || c->fill == F_DESC201 || c->fill == F_META16 ||
        c->fill == F_META17) {
        /* insert before the closing brace of VALID */
        size_t bl = strlen(c->body) - 1;
        snprintf(buf, cap, "%.*s%s}", (int)bl, c->body, fill);
    } else if (c->fill != F_NONE) {
        const char *at = strstr(c->body, "%s"); /* splice the fill in place of "%s" */
        ck_assert_ptr_nonnull(at);
        snprintf(buf, cap, "%.*s%s%s", (int)(at - c->body), c->body, fill, at + 2);
    } else {
        snprintf(buf, cap, "%s", c->body);
    }
    size_t l = strlen(buf);
    while (l < c->pad_to)
        buf[l++] = ' ';
    buf[l] = '\0';
    *len = l;
    return buf;
}

START_TEST(test_decode_table)
{
    const decode_case_t *c = &decode_cases[_i];
    size_t len;
    char *body = build_body(c, &len);
    if (c->pad_to)
        ck_assert_uint_eq(len, c->pad_to);
    msg_payment_t p;
    msg_reject_t why;
    memset(&why, 0x5a, sizeof why);
    int rc = msg_payment_decode(body, len, &p, &why);
    ck_assert_msg(rc == c->want_rc, "%s: rc %s, want %s (%s)", c->label, ll_errname(rc),
                  ll_errname(c->want_rc), rc == LL_EREJECT ? why.detail : "");
    if (rc == LL_EREJECT) {
        ck_assert_msg(why.reason == c->want_reason, "%s: reason %s, want %s (%s)", c->label,
                      msg_reason_str(why.reason), msg_reason_str(c->want_reason), why.detail);
        ck_assert_msg(strcmp(why.field, c->want_field) == 0, "%s: field \"%s\", want \"%s\" (%s)",
                      c->label, why.field, c->want_field, why.detail);
        ck_assert_msg(memchr(why.detail, '\0', sizeof why.detail) && why.detail[0],
                      "%s: empty detail", c->label);
        /* the detail names the field, and is valid UTF-8 for the event body */
        if (c->want_field[0])
            ck_assert_msg(strncmp(why.detail, c->want_field, strlen(c->want_field)) == 0,
                          "%s: detail \"%s\" does not name the field", c->label, why.detail);
        json_t *js = json_string(why.detail);
        ck_assert_msg(js != NULL, "%s: detail not valid UTF-8", c->label);
        json_decref(js);
        /* out is cleared on reject */
        ck_assert_ptr_null(p.metadata);
        ck_assert_str_eq(p.payment_id, "");
    } else {
        ck_assert_str_eq(p.currency[0] ? "set" : "", "set");
    }
    msg_payment_clear(&p);
    msg_payment_clear(&p); /* twice is fine */
    free(body);
}
END_TEST

/* The fields of a decoded payment, checked once in detail. */
START_TEST(test_decode_values)
{
    const char *body = "{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\","
                       "\"amount\":100000000000000,\"currency\":\"KWD\","
                       "\"description\":\"caf\\u00e9\",\"metadata\":{\"color\":\"red\"}}";
    msg_payment_t p;
    msg_reject_t why;
    ck_assert_int_eq(msg_payment_decode(body, strlen(body), &p, &why), LL_OK);
    ck_assert_str_eq(p.payment_id, "p-1");
    ck_assert_str_eq(p.payer, "acc_A");
    ck_assert_str_eq(p.payee, "acc_B");
    ck_assert(p.amount == 100000000000000LL);
    ck_assert_str_eq(p.currency, "KWD");
    ck_assert(p.has_description);
    ck_assert_str_eq(p.description, "caf\xc3\xa9");
    ck_assert_ptr_nonnull(p.metadata);
    ck_assert_str_eq(json_string_value(json_object_get(p.metadata, "color")), "red");
    msg_payment_clear(&p);
    ck_assert_ptr_null(p.metadata);
    ck_assert(!p.has_description);

    msg_payment_t z;
    memset(&z, 0, sizeof z);
    msg_payment_clear(&z);
    msg_payment_clear(NULL);
}
END_TEST

/* Error text from jansson quoting invalid bytes still gives UTF-8 details. */
START_TEST(test_reject_detail_sanitized)
{
    static const char *bodies[] = {"\xff\xfe{", "{\"a\":\xc3}", "{\"a\x01\":1}", "\x80"};
    for (int i = 0; i < N(bodies); i++) {
        msg_payment_t p;
        msg_reject_t why;
        ck_assert_int_eq(msg_payment_decode(bodies[i], strlen(bodies[i]), &p, &why), LL_EREJECT);
        json_t *js = json_string(why.detail);
        ck_assert_msg(js != NULL, "body %d: detail not UTF-8", i);
        json_decref(js);
        js = json_string(why.field);
        ck_assert_ptr_nonnull(js);
        json_decref(js);
        for (const char *q = why.detail; *q; q++)
            ck_assert_msg((unsigned char)*q >= 0x20, "control char in detail");
    }
}
END_TEST

START_TEST(test_reason_strings)
{
    static const char *const want[MSG_REASON_COUNT] = {
        "malformed_json",       "schema_violation",  "oversized",         "bad_signature",
        "idempotency_conflict", "processing_failed", "duplicate_expired",
    };
    for (int i = 0; i < MSG_REASON_COUNT; i++)
        ck_assert_str_eq(msg_reason_str((msg_reason_t)i), want[i]);
    ck_assert_str_eq(msg_reason_str((msg_reason_t)MSG_REASON_COUNT), "unknown");
}
END_TEST

/* ---- hash and diff ------------------------------------------------------ */

#define BASE_FULL                                                                                  \
    "{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"             \
    "\"currency\":\"EUR\",\"description\":\"tea\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}"

static void decode_ok(const char *body, msg_payment_t *p)
{
    msg_reject_t why;
    int rc = msg_payment_decode(body, strlen(body), p, &why);
    ck_assert_msg(rc == LL_OK, "decode failed: %s", rc == LL_EREJECT ? why.detail : "");
}

static void hash_of(const char *body, char out[65])
{
    msg_payment_t p;
    decode_ok(body, &p);
    ck_assert_int_eq(msg_payment_hash(&p, out), LL_OK);
    msg_payment_clear(&p);
}

static const char *const same_payment[] = {
    BASE_FULL,
    " { \"metadata\" : { \"b\" : \"2\" , \"a\" : \"1\" } , \"description\":\"tea\",\n"
    "\"currency\":\"EUR\",\"amount\":1234,\"payee\":\"acc_B\",\"payer\":\"acc_A\","
    "\"payment_id\":\"p-1\"}\n",
    "{\"payment_id\":\"p\\u002d1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
    "\"currency\":\"EUR\",\"description\":\"t\\u0065a\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}",
};

START_TEST(test_hash_stable)
{
    char h0[65], h[65];
    hash_of(same_payment[0], h0);
    ck_assert_uint_eq(strlen(h0), 64);
    for (size_t i = 0; i < 64; i++)
        ck_assert(strchr("0123456789abcdef", h0[i]) != NULL);
    hash_of(same_payment[_i], h);
    ck_assert_str_eq(h, h0);
}
END_TEST

/* Each body differs from BASE_FULL in the named fields. */
static const struct {
    const char *body;
    const char *diff;
} changed[] = {
    {"{\"payment_id\":\"p-2\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"EUR\",\"description\":\"tea\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}",
     "payment_id"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_C\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"EUR\",\"description\":\"tea\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}",
     "payer"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_C\",\"amount\":1235,"
     "\"currency\":\"EUR\",\"description\":\"tea\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}",
     "amount,payee"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"USD\",\"description\":\"tea\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}",
     "currency"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"EUR\",\"description\":\"Tea\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}",
     "description"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"EUR\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}",
     "description"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"EUR\",\"description\":\"\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}",
     "description"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"EUR\",\"description\":\"tea\",\"metadata\":{\"a\":\"1\",\"b\":\"3\"}}",
     "metadata"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"EUR\",\"description\":\"tea\",\"metadata\":{\"a\":\"1\"}}",
     "metadata"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"EUR\",\"description\":\"tea\"}",
     "metadata"},
    {"{\"payment_id\":\"p-1\",\"payer\":\"acc_A\",\"payee\":\"acc_B\",\"amount\":1234,"
     "\"currency\":\"EUR\",\"description\":\"tea\",\"metadata\":{}}",
     "metadata"},
    {"{\"payment_id\":\"p-9\",\"payer\":\"acc_B\",\"payee\":\"acc_A\",\"amount\":1,"
     "\"currency\":\"JPY\"}",
     "amount,currency,description,metadata,payee,payer,payment_id"},
};

START_TEST(test_hash_changes)
{
    char h0[65], h[65];
    hash_of(BASE_FULL, h0);
    hash_of(changed[_i].body, h);
    ck_assert_msg(strcmp(h, h0) != 0, "hash unchanged for a change of %s", changed[_i].diff);
}
END_TEST

START_TEST(test_diff)
{
    msg_payment_t a, b;
    decode_ok(BASE_FULL, &a);
    decode_ok(changed[_i].body, &b);
    char out[128];
    ck_assert_int_eq(msg_payment_diff(&a, &b, out, sizeof out), LL_OK);
    ck_assert_str_eq(out, changed[_i].diff);
    ck_assert_int_eq(msg_payment_diff(&b, &a, out, sizeof out), LL_OK);
    ck_assert_str_eq(out, changed[_i].diff);
    ck_assert_int_eq(msg_payment_diff(&a, &a, out, sizeof out), LL_OK);
    ck_assert_str_eq(out, "");
    msg_payment_clear(&a);
    msg_payment_clear(&b);
}
END_TEST

START_TEST(test_diff_equal_and_small_buffer)
{
    msg_payment_t a, b;
    decode_ok(same_payment[0], &a);
    decode_ok(same_payment[1], &b);
    char out[128];
    ck_assert_int_eq(msg_payment_diff(&a, &b, out, sizeof out), LL_OK);
    ck_assert_str_eq(out, "");
    msg_payment_clear(&b);
    decode_ok(changed[N(changed) - 1].body, &b);
    char small[10];
    ck_assert_int_eq(msg_payment_diff(&a, &b, small, sizeof small), LL_ERANGE);
    ck_assert(memchr(small, '\0', sizeof small) != NULL);
    msg_payment_clear(&a);
    msg_payment_clear(&b);
}
END_TEST

/* ---- events ------------------------------------------------------------- */

static const int64_t T1 = 1795426285123LL; /* 2026-11-23T09:31:25.123Z */
static const int64_t T2 = T1 + 60000;

static json_t *load(const char *s)
{
    ck_assert_ptr_nonnull(s);
    json_error_t err;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &err);
    ck_assert_msg(j != NULL, "encoder output is not JSON: %s", err.text);
    ck_assert(json_is_object(j));
    return j;
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    ck_assert_msg(json_is_string(v), "%s missing or not a string", k);
    return json_string_value(v);
}

static void check_envelope(json_t *o, const char *type, const char *key, int64_t occurred)
{
    char id[MSG_EVENT_ID_LEN + 1], t[MSG_TIME_LEN + 1];
    msg_event_id(type, key, id);
    msg_format_time(occurred, t);
    ck_assert_str_eq(str(o, "event_id"), id);
    ck_assert_str_eq(str(o, "type"), type);
    ck_assert_str_eq(str(o, "occurred_at"), t);
}

static void check_request_fields(json_t *o, const msg_payment_t *p)
{
    ck_assert_str_eq(str(o, "payment_id"), p->payment_id);
    ck_assert_str_eq(str(o, "payer"), p->payer);
    ck_assert_str_eq(str(o, "payee"), p->payee);
    ck_assert(json_integer_value(json_object_get(o, "amount")) == p->amount);
    ck_assert_str_eq(str(o, "currency"), p->currency);
    ck_assert_str_eq(str(o, "description"), p->description);
    ck_assert(json_equal(json_object_get(o, "metadata"), p->metadata));
}

START_TEST(test_event_id)
{
    char a[33], b[33], c[33], d[33];
    msg_event_id("payment.approved", "p-1", a);
    msg_event_id("payment.approved", "p-1", b);
    msg_event_id("payment.declined", "p-1", c);
    msg_event_id("payment.approved", "p-2", d);
    ck_assert_uint_eq(strlen(a), 32);
    ck_assert_str_eq(a, b);
    ck_assert_str_ne(a, c);
    ck_assert_str_ne(a, d);
    /* the definition: first 32 hex of SHA-256("ledgerline.v1\npayment.approved\np-1") */
    char full[65];
    const char pre[] = "ledgerline.v1\npayment.approved\np-1";
    msg_body_hash(pre, strlen(pre), full);
    ck_assert_int_eq(strncmp(full, a, 32), 0);
    /* known vector: SHA-256("abc") */
    msg_body_hash("abc", 3, full);
    ck_assert_str_eq(full, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(test_encode_payment_events)
{
    msg_payment_t p;
    decode_ok(BASE_FULL, &p);
    const char *rules[] = {"amount_over_limit", "new_payee"};

    char *s1 = msg_encode_approved(&p, 42, rules, 2, T1);
    char *s2 = msg_encode_approved(&p, 42, rules, 2, T2);
    json_t *o = load(s1), *o2 = load(s2);
    check_envelope(o, "payment.approved", "p-1", T1);
    check_request_fields(o, &p);
    ck_assert_str_eq(str(o, "event_id"), str(o2, "event_id")); /* time-independent */
    ck_assert_str_ne(str(o, "occurred_at"), str(o2, "occurred_at"));
    json_t *risk = json_object_get(o, "risk");
    ck_assert_int_eq(json_integer_value(json_object_get(risk, "score")), 42);
    ck_assert_uint_eq(json_array_size(json_object_get(risk, "rules")), 2);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(risk, "rules"), 1)),
                     "new_payee");
    /* the envelope comes first */
    ck_assert_int_eq(strncmp(s1, "{\"event_id\":", 12), 0);
    json_decref(o);
    json_decref(o2);
    free(s1);
    free(s2);

    s1 = msg_encode_declined(&p, rules, 1, T1);
    o = load(s1);
    check_envelope(o, "payment.declined", "p-1", T1);
    check_request_fields(o, &p);
    ck_assert_str_eq(str(o, "reason"), "risk_declined");
    ck_assert_uint_eq(json_array_size(json_object_get(o, "rules")), 1);
    json_decref(o);
    free(s1);

    s1 = msg_encode_completed(&p, "t-77", T1 - 5, T1);
    o = load(s1);
    check_envelope(o, "payment.completed", "p-1", T1);
    check_request_fields(o, &p);
    ck_assert_str_eq(str(o, "transfer_id"), "t-77");
    char t[MSG_TIME_LEN + 1];
    msg_format_time(T1 - 5, t);
    ck_assert_str_eq(str(o, "posted_at"), t);
    json_decref(o);
    free(s1);

    for (size_t i = 0; msg_failure_reason_at(i); i++) {
        s1 = msg_encode_failed(&p, msg_failure_reason_at(i), T1);
        o = load(s1);
        check_envelope(o, "payment.failed", "p-1", T1);
        check_request_fields(o, &p);
        ck_assert_str_eq(str(o, "reason"), msg_failure_reason_at(i));
        json_decref(o);
        free(s1);
    }
    /* bad arguments give NULL */
    ck_assert_ptr_null(msg_encode_failed(&p, "no_reason", T1));
    ck_assert_ptr_null(msg_encode_approved(&p, 101, rules, 2, T1));
    const char *bad_rules[] = {"has space"};
    ck_assert_ptr_null(msg_encode_approved(&p, 1, bad_rules, 1, T1));
    ck_assert_ptr_null(msg_encode_completed(&p, "", T1, T1));
    msg_payment_clear(&p);
}
END_TEST

START_TEST(test_encode_batch_and_rejected)
{
    msg_batch_closed_t b = {.batch_id = "b-2026-11-23-acc_B",
                            .payee = "acc_B",
                            .currency = "EUR",
                            .window_start_ms = T1,
                            .window_end_ms = T2,
                            .count = 3,
                            .gross = 10000,
                            .fees = 290,
                            .net = 9710};
    char *s = msg_encode_batch_closed(&b, T2 + 1);
    json_t *o = load(s);
    check_envelope(o, "settlement.batch.closed", "b-2026-11-23-acc_B", T2 + 1);
    ck_assert_ptr_null(json_object_get(o, "payment_id"));
    ck_assert_str_eq(str(o, "batch_id"), b.batch_id);
    ck_assert_str_eq(str(o, "payee"), "acc_B");
    ck_assert_str_eq(str(o, "currency"), "EUR");
    ck_assert_str_eq(str(o, "window_start"), "2026-11-23T09:31:25.123Z");
    ck_assert_str_eq(str(o, "window_end"), "2026-11-23T09:32:25.123Z");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "count")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "gross")), 10000);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "fees")), 290);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "net")), 9710);
    json_decref(o);
    free(s);

    /* a rejection of an unreadable body: keyed by the body hash */
    const char *body = "{\"amount\":1.5";
    msg_payment_t p;
    msg_reject_t why;
    ck_assert_int_eq(msg_payment_decode(body, strlen(body), &p, &why), LL_EREJECT);
    char pid[MSG_ID_MAX + 1], key[200], hash[65], want_key[200];
    ck_assert_int_eq(msg_peek_payment_id(body, strlen(body), pid), LL_ENOTFOUND);
    ck_assert_int_eq(
        msg_rejected_key("risk", NULL, why.reason, body, strlen(body), key, sizeof key), LL_OK);
    msg_body_hash(body, strlen(body), hash);
    snprintf(want_key, sizeof want_key, "risk\n-\nmalformed_json\n%s", hash);
    ck_assert_str_eq(key, want_key);
    s = msg_encode_rejected("risk", &why, NULL, NULL, NULL, key, T1);
    o = load(s);
    check_envelope(o, "message.rejected", key, T1);
    ck_assert_str_eq(str(o, "reason"), "malformed_json");
    ck_assert_str_eq(str(o, "detail"), why.detail);
    ck_assert_str_eq(str(o, "queue"), "risk");
    ck_assert_ptr_null(json_object_get(o, "payment_id"));
    json_decref(o);
    free(s);

    /* readable payment_id: keyed by it, and carried */
    body = "{\"payment_id\":\"p-7\",\"amount\":\"12\"}";
    ck_assert_int_eq(msg_payment_decode(body, strlen(body), &p, &why), LL_EREJECT);
    ck_assert_int_eq(msg_peek_payment_id(body, strlen(body), pid), LL_OK);
    ck_assert_str_eq(pid, "p-7");
    ck_assert_int_eq(
        msg_rejected_key("payments", pid, why.reason, body, strlen(body), key, sizeof key), LL_OK);
    msg_body_hash(body, strlen(body), hash);
    snprintf(want_key, sizeof want_key, "payments\np-7\nschema_violation\n%s", hash);
    ck_assert_str_eq(key, want_key);
    s = msg_encode_rejected("payments", &why, pid, NULL, NULL, key, T1);
    o = load(s);
    check_envelope(o, "message.rejected", want_key, T1);
    ck_assert_str_eq(str(o, "payment_id"), "p-7");
    ck_assert_str_eq(str(o, "reason"), "schema_violation");
    json_decref(o);
    free(s);

    /* another body for the same payment_id is another rejection; the same
     * body again (a redelivery) is the same one */
    const char *other = "{\"payment_id\":\"p-7\",\"amount\":\"13\"}";
    char key2[200];
    ck_assert_int_eq(
        msg_rejected_key("payments", pid, why.reason, other, strlen(other), key2, sizeof key2),
        LL_OK);
    ck_assert_str_ne(key, key2);
    ck_assert_int_eq(
        msg_rejected_key("payments", pid, why.reason, body, strlen(body), key2, sizeof key2),
        LL_OK);
    ck_assert_str_eq(key, key2);
    /* the same body rejected for another reason (unsigned, say) is another event */
    ck_assert_int_eq(msg_rejected_key("payments", pid, MSG_REASON_BAD_SIGNATURE, body, strlen(body),
                                      key2, sizeof key2),
                     LL_OK);
    ck_assert_str_ne(key, key2);

    char tiny[8];
    ck_assert_int_eq(
        msg_rejected_key("payments", pid, why.reason, body, strlen(body), tiny, sizeof tiny),
        LL_ERANGE);

    /* a detail written from untrusted text (a signature header's key id:
     * invalid UTF-8, a control character, a 3-byte character cut in half)
     * still encodes, cleaned */
    msg_reject_t raw = {.reason = MSG_REASON_BAD_SIGNATURE};
    snprintf(raw.detail, sizeof raw.detail, "unknown key id '\xff\xfe\x01ok\xe2\x82'");
    s = msg_encode_rejected("payments", &raw, pid, NULL, NULL, key, T1);
    ck_assert_ptr_nonnull(s);
    o = load(s);
    ck_assert_str_eq(str(o, "detail"), "unknown key id '\?\?\?ok\?\?'");
    ck_assert_str_eq(str(o, "reason"), "bad_signature");
    json_decref(o);
    free(s);
}
END_TEST

START_TEST(test_approved_roundtrip)
{
    msg_payment_t p;
    decode_ok(BASE_FULL, &p);
    const char *rules[] = {"r1", "r.2"};
    char *s = msg_encode_approved(&p, 100, rules, 2, T1);
    msg_approved_t a;
    msg_reject_t why;
    int rc = msg_approved_decode(s, strlen(s), &a, &why);
    ck_assert_msg(rc == LL_OK, "approved round trip: %s", why.detail);
    char id[33];
    msg_event_id("payment.approved", "p-1", id);
    ck_assert_str_eq(a.event_id, id);
    ck_assert(a.occurred_ms == T1);
    ck_assert_int_eq(a.score, 100);
    ck_assert_uint_eq(a.nrules, 2);
    ck_assert_str_eq(a.rules[1], "r.2");
    char diff[128];
    ck_assert_int_eq(msg_payment_diff(&p, &a.payment, diff, sizeof diff), LL_OK);
    ck_assert_str_eq(diff, "");
    msg_approved_clear(&a);
    msg_approved_clear(&a);

    /* an approved body is not a completed body */
    msg_completed_t c;
    ck_assert_int_eq(msg_completed_decode(s, strlen(s), &c, &why), LL_EREJECT);
    ck_assert_str_eq(why.field, "type");
    free(s);

    s = msg_encode_completed(&p, "t-1", T1 - 1, T1);
    ck_assert_int_eq(msg_completed_decode(s, strlen(s), &c, &why), LL_OK);
    ck_assert_str_eq(c.transfer_id, "t-1");
    ck_assert(c.posted_ms == T1 - 1);
    ck_assert(c.occurred_ms == T1);
    ck_assert_int_eq(msg_payment_diff(&p, &c.payment, diff, sizeof diff), LL_OK);
    ck_assert_str_eq(diff, "");
    msg_completed_clear(&c);
    ck_assert_int_eq(msg_approved_decode(s, strlen(s), &a, &why), LL_EREJECT);
    ck_assert_str_eq(why.field, "type");
    ck_assert_int_eq(why.reason, MSG_REASON_SCHEMA_VIOLATION);
    free(s);
    msg_payment_clear(&p);
}
END_TEST

#define ENV_A                                                                                      \
    "\"event_id\":\"0123456789abcdef0123456789abcdef\",\"occurred_at\":\"2026-11-23T09:31:25."     \
    "123Z\""
#define REQ_A                                                                                      \
    "\"payment_id\":\"p-1\",\"payer\":\"a\",\"payee\":\"b\",\"amount\":5,\"currency\":\"EUR\""

static const struct {
    const char *label;
    const char *body;
    int want_rc;
    const char *want_field;
} approved_cases[] = {
    {"ok",
     "{\"type\":\"payment.approved\"," ENV_A "," REQ_A ",\"risk\":{\"score\":0,\"rules\":[]}}",
     LL_OK, ""},
    {"type missing", "{" ENV_A "," REQ_A ",\"risk\":{\"score\":0,\"rules\":[]}}", LL_EREJECT,
     "type"},
    {"type wrong",
     "{\"type\":\"payment.declined\"," ENV_A "," REQ_A ",\"risk\":{\"score\":0,\"rules\":[]}}",
     LL_EREJECT, "type"},
    {"type not string", "{\"type\":1," ENV_A "," REQ_A ",\"risk\":{\"score\":0,\"rules\":[]}}",
     LL_EREJECT, "type"},
    {"unknown field",
     "{\"type\":\"payment.approved\"," ENV_A "," REQ_A
     ",\"risk\":{\"score\":0,\"rules\":[]},\"x\":1}",
     LL_EREJECT, "x"},
    {"event_id upper-case",
     "{\"type\":\"payment.approved\",\"event_id\":"
     "\"0123456789ABCDEF0123456789abcdef\",\"occurred_at\":"
     "\"2026-11-23T09:31:25.123Z\"," REQ_A ",\"risk\":{\"score\":0,\"rules\":[]}}",
     LL_EREJECT, "event_id"},
    {"occurred_at without ms",
     "{\"type\":\"payment.approved\",\"event_id\":"
     "\"0123456789abcdef0123456789abcdef\",\"occurred_at\":"
     "\"2026-11-23T09:31:25Z\"," REQ_A ",\"risk\":{\"score\":0,\"rules\":[]}}",
     LL_EREJECT, "occurred_at"},
    {"request field bad",
     "{\"type\":\"payment.approved\"," ENV_A
     ",\"payment_id\":\"p-1\",\"payer\":\"a\",\"payee\":\"b\",\"amount\":5.0,"
     "\"currency\":\"EUR\",\"risk\":{\"score\":0,\"rules\":[]}}",
     LL_EREJECT, "amount"},
    {"risk missing", "{\"type\":\"payment.approved\"," ENV_A "," REQ_A "}", LL_EREJECT, "risk"},
    {"risk not object", "{\"type\":\"payment.approved\"," ENV_A "," REQ_A ",\"risk\":5}",
     LL_EREJECT, "risk"},
    {"score 101",
     "{\"type\":\"payment.approved\"," ENV_A "," REQ_A ",\"risk\":{\"score\":101,\"rules\":[]}}",
     LL_EREJECT, "risk.score"},
    {"score 100",
     "{\"type\":\"payment.approved\"," ENV_A "," REQ_A ",\"risk\":{\"score\":100,\"rules\":[]}}",
     LL_OK, ""},
    {"score real",
     "{\"type\":\"payment.approved\"," ENV_A "," REQ_A ",\"risk\":{\"score\":1.0,\"rules\":[]}}",
     LL_EREJECT, "risk.score"},
    {"score -1",
     "{\"type\":\"payment.approved\"," ENV_A "," REQ_A ",\"risk\":{\"score\":-1,\"rules\":[]}}",
     LL_EREJECT, "risk.score"},
    {"rules not array",
     "{\"type\":\"payment.approved\"," ENV_A "," REQ_A ",\"risk\":{\"score\":1,\"rules\":\"r\"}}",
     LL_EREJECT, "risk.rules"},
    {"rule not string",
     "{\"type\":\"payment.approved\"," ENV_A "," REQ_A
     ",\"risk\":{\"score\":1,\"rules\":[\"a\",{}]}}",
     LL_EREJECT, "risk.rules[1]"},
    {"risk unknown field",
     "{\"type\":\"payment.approved\"," ENV_A "," REQ_A
     ",\"risk\":{\"score\":1,\"rules\":[],\"why\":\"x\"}}",
     LL_EREJECT, "risk.why"},
};

START_TEST(test_approved_table)
{
    msg_approved_t a;
    msg_reject_t why;
    const char *b = approved_cases[_i].body;
    int rc = msg_approved_decode(b, strlen(b), &a, &why);
    ck_assert_msg(rc == approved_cases[_i].want_rc, "%s: rc %s (%s)", approved_cases[_i].label,
                  ll_errname(rc), rc == LL_EREJECT ? why.detail : "");
    if (rc == LL_EREJECT) {
        ck_assert_int_eq(why.reason, MSG_REASON_SCHEMA_VIOLATION);
        ck_assert_msg(strcmp(why.field, approved_cases[_i].want_field) == 0, "%s: field %s (%s)",
                      approved_cases[_i].label, why.field, why.detail);
    }
    msg_approved_clear(&a);
}
END_TEST

/* ---- time --------------------------------------------------------------- */

static const struct {
    int64_t ms;
    const char *s;
} times[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {1, "1970-01-01T00:00:00.001Z"},
    {-1, "1969-12-31T23:59:59.999Z"},
    {951782400000LL, "2000-02-29T00:00:00.000Z"},
    {1795426285123LL, "2026-11-23T09:31:25.123Z"},
    {4102444799999LL, "2099-12-31T23:59:59.999Z"},
    {253402300799999LL, "9999-12-31T23:59:59.999Z"},
};

START_TEST(test_time)
{
    char out[MSG_TIME_LEN + 1];
    msg_format_time(times[_i].ms, out);
    ck_assert_str_eq(out, times[_i].s);
    int64_t back;
    ck_assert_int_eq(msg_parse_time(times[_i].s, &back), LL_OK);
    ck_assert(back == times[_i].ms);
}
END_TEST

START_TEST(test_time_bad)
{
    static const char *bad[] = {
        "",
        "2026-11-23T09:31:25Z",
        "2026-11-23T09:31:25.123",
        "2026-11-23T09:31:25.123+00:00",
        "2026-11-23 09:31:25.123Z",
        "2026-13-23T09:31:25.123Z",
        "2026-00-23T09:31:25.123Z",
        "2026-02-29T09:31:25.123Z",
        "1900-02-29T09:31:25.123Z",
        "2026-04-31T09:31:25.123Z",
        "2026-11-23T24:00:00.000Z",
        "2026-11-23T09:60:25.123Z",
        "2026-11-23T09:31:60.123Z",
        "2026-11-23t09:31:25.123z",
        "2026-11-2a3T09:31:25.123Z",
        "+026-11-23T09:31:25.123Z",
    };
    int64_t v;
    for (int i = 0; i < N(bad); i++)
        ck_assert_msg(msg_parse_time(bad[i], &v) == LL_EINVAL, "accepted \"%s\"", bad[i]);
    ck_assert_int_eq(msg_parse_time("2024-02-29T00:00:00.000Z", &v), LL_OK);
    char out[MSG_TIME_LEN + 1];
    msg_format_time(INT64_MAX, out);
    ck_assert_str_eq(out, "9999-12-31T23:59:59.999Z");
    msg_format_time(INT64_MIN, out);
    ck_assert_str_eq(out, "0000-01-01T00:00:00.000Z");
}
END_TEST

/* ---- peek --------------------------------------------------------------- */

static const struct {
    const char *body;
    int want_rc;
    const char *want;
} peeks[] = {
    {"{\"payment_id\":\"p-1\",\"amount\":1.5}", LL_OK, "p-1"},
    {"{\"amount\":1,\"payment_id\" : \"p-2\"", LL_OK, "p-2"},              /* truncated JSON */
    {"{\"payment_id\":\"p-3\",\"x\":,}", LL_OK, "p-3"},                    /* syntax error */
    {"{\"payment_id\":\"p-4\",\"payment_id\":\"p-4\"}", LL_OK, "p-4"},     /* dup, agreeing */
    {"{\"payment_id\":\"p-4\",\"payment_id\":\"p-5\"}", LL_ENOTFOUND, ""}, /* dup, differing */
    {"{\"payment_id\":\"bad id\"}", LL_ENOTFOUND, ""},
    {"{\"payment_id\":17}", LL_ENOTFOUND, ""},
    {"{\"payer\":\"a\"}", LL_ENOTFOUND, ""},
    {"[\"payment_id\",\"p-1\"]", LL_ENOTFOUND, ""},
    {"{\"metadata\":{\"payment_id\":\"p-6\"}}", LL_ENOTFOUND, ""}, /* not top level */
    {"", LL_ENOTFOUND, ""},
    {"\xff\"payment_id\":\"p-7\"", LL_OK, "p-7"},
};

START_TEST(test_peek)
{
    char out[MSG_ID_MAX + 1];
    int rc = msg_peek_payment_id(peeks[_i].body, strlen(peeks[_i].body), out);
    ck_assert_msg(rc == peeks[_i].want_rc, "%s: rc %s", peeks[_i].body, ll_errname(rc));
    ck_assert_str_eq(rc == LL_OK ? out : "", peeks[_i].want);
}
END_TEST

static Suite *msg_suite(void)
{
    Suite *s = suite_create("msg");
    TCase *tc = tcase_create("decode");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_decode_table, 0, N(decode_cases));
    tcase_add_test(tc, test_decode_values);
    tcase_add_test(tc, test_reject_detail_sanitized);
    tcase_add_test(tc, test_reason_strings);
    suite_add_tcase(s, tc);

    tc = tcase_create("hash");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_hash_stable, 0, N(same_payment));
    tcase_add_loop_test(tc, test_hash_changes, 0, N(changed));
    tcase_add_loop_test(tc, test_diff, 0, N(changed));
    tcase_add_test(tc, test_diff_equal_and_small_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_event_id);
    tcase_add_test(tc, test_encode_payment_events);
    tcase_add_test(tc, test_encode_batch_and_rejected);
    tcase_add_test(tc, test_approved_roundtrip);
    tcase_add_loop_test(tc, test_approved_table, 0, N(approved_cases));
    tcase_add_loop_test(tc, test_time, 0, N(times));
    tcase_add_test(tc, test_time_bad);
    tcase_add_loop_test(tc, test_peek, 0, N(peeks));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(msg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
