/*
 * test_sbuf.c - the string buffer: appends of any length never cut, the
 * decimal form of every int64 edge, and JSON string literals that a JSON
 * parser reads back as exactly the input and that are byte for byte what
 * jansson itself writes for the same text (a table of the characters that
 * need escaping, UTF-8 kept as it is).
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test.h"
#include "sbuf.h"

START_TEST(sbuf_appends_grow_and_take_leaves_it_empty)
{
    sbuf_t b;
    sbuf_init(&b, 1);
    for (int i = 0; i < 1000; i++)
        sbuf_add(&b, "0123456789", 10);
    sbuf_addc(&b, '!');
    sbuf_adds(&b, "end");
    ck_assert_uint_eq(b.len, 10004);
    ck_assert_uint_eq(strlen(b.p), 10004);
    char *s = sbuf_take(&b);
    ck_assert_int_eq(s[9999], '9');
    ck_assert_str_eq(s + 10000, "!end");
    free(s);
    ck_assert_ptr_null(b.p);
    ck_assert_uint_eq(b.len, 0);
    /* take of an untouched buffer: "" */
    s = sbuf_take(&b);
    ck_assert_str_eq(s, "");
    free(s);
    sbuf_free(&b);
    sbuf_free(&b); /* twice is harmless */
}
END_TEST

static const struct {
    int64_t v;
    const char *want;
} ints[] = {
    {0, "0"},
    {7, "7"},
    {-7, "-7"},
    {100000000000000, "100000000000000"},
    {INT64_MAX, "9223372036854775807"},
    {INT64_MIN, "-9223372036854775808"},
};

START_TEST(sbuf_i64_writes_every_edge)
{
    sbuf_t b;
    sbuf_init(&b, 0);
    sbuf_i64(&b, ints[_i].v);
    ck_assert_str_eq(b.p, ints[_i].want);
    sbuf_free(&b);
}
END_TEST

static const struct {
    const char *label;
    const char *in;
    const char *want;
} strs[] = {
    {"empty", "", "\"\""},
    {"plain", "pay-1:a_b.c", "\"pay-1:a_b.c\""},
    {"quote and backslash", "a\"b\\c", "\"a\\\"b\\\\c\""},
    {"named controls", "\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""},
    {"other controls", "\x01\x1e\x1f", "\"\\u0001\\u001E\\u001F\""},
    {"DEL is not escaped", "\x7f", "\"\x7f\""},
    {"UTF-8 kept", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
    {"slash kept", "a/b", "\"a/b\""},
    {"escape at both ends", "\"x\"", "\"\\\"x\\\"\""},
    {"canonical JSON inside", "{\"a\":\"q\\\"\"}", "\"{\\\"a\\\":\\\"q\\\\\\\"\\\"}\""},
};

START_TEST(sbuf_json_str_escapes_like_jansson_and_parses_back)
{
    sbuf_t b;
    sbuf_init(&b, 0);
    sbuf_adds(&b, "[");
    sbuf_json_str(&b, strs[_i].in);
    sbuf_adds(&b, "]");
    char want[256];
    snprintf(want, sizeof want, "[%s]", strs[_i].want);
    ck_assert_msg(strcmp(b.p, want) == 0, "%s: wrote %s, want %s", strs[_i].label, b.p, want);
    /* jansson writes the same bytes... */
    json_t *a = json_pack("[s]", strs[_i].in);
    char *j = json_dumps(a, JSON_COMPACT);
    ck_assert_msg(strcmp(j, b.p) == 0, "%s: jansson writes %s, sbuf %s", strs[_i].label, j, b.p);
    free(j);
    json_decref(a);
    /* ...and reads them back as the input */
    json_error_t e;
    json_t *back = json_loads(b.p, 0, &e);
    ck_assert_msg(back != NULL, "%s: %s does not parse: %s", strs[_i].label, b.p, e.text);
    ck_assert_str_eq(json_string_value(json_array_get(back, 0)), strs[_i].in);
    json_decref(back);
    sbuf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sbuf");
    TCase *tc = tcase_create("sbuf");
    tcase_add_test(tc, sbuf_appends_grow_and_take_leaves_it_empty);
    tcase_add_loop_test(tc, sbuf_i64_writes_every_edge, 0, (int)(sizeof ints / sizeof ints[0]));
    tcase_add_loop_test(tc, sbuf_json_str_escapes_like_jansson_and_parses_back, 0,
                        (int)(sizeof strs / sizeof strs[0]));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
