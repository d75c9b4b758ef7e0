/*
 * test_log.c - JSON-lines logging: every line parses as JSON (jansson),
 * strings are escaped (quotes, newlines, control characters, invalid
 * UTF-8), context fields appear only when given, disabled levels do not
 * evaluate their arguments, and over-long lines stay valid and bounded.
 */
#include <stdlib.h>
#include <string.h>

#include "ll_test.h"
#include "log.h"

static FILE *cap;

static void setup(void)
{
    cap = tmpfile();
    ck_assert_ptr_nonnull(cap);
    log_init("test-worker", LOG_DEBUG);
    log_set_output(cap);
}

static void teardown(void)
{
    log_set_output(NULL);
    fclose(cap);
}

/* Everything written since setup; caller frees. */
static char *captured(void)
{
    long len = ftell(cap);
    char *buf = calloc(1, (size_t)len + 1);
    rewind(cap);
    ck_assert_int_eq(fread(buf, 1, (size_t)len, cap), (size_t)len);
    return buf;
}

/* Parses the one line logged since setup, checking it is a single
 * newline-terminated JSON object with the four mandatory keys. */
static json_t *one_line(void)
{
    char *text = captured();
    size_t len = strlen(text);
    ck_assert_msg(len > 0 && text[len - 1] == '\n', "line not newline-terminated: %s", text);
    ck_assert_msg(strchr(text, '\n') == text + len - 1, "more than one line: %s", text);
    ck_assert_uint_le(len, LOG_LINE_MAX);
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, text);
    ck_assert(json_is_object(j));
    const char *keys[] = {"ts", "level", "worker", "msg"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(json_is_string(json_object_get(j, keys[i])), "no %s in %s", keys[i], text);
    free(text);
    return j;
}

/* {label, input, what the msg field must decode to} */
static const struct {
    const char *label, *in, *want;
} escapes[] = {
    {"plain", "hello", "hello"},
    {"quotes", "say \"hi\"", "say \"hi\""},
    {"backslash", "a\\b", "a\\b"},
    {"newline", "line1\nline2", "line1\nline2"},
    {"cr tab", "a\r\tb", "a\r\tb"},
    {"control", "x\x01y\x1fz", "x\x01y\x1fz"},
    {"del", "x\x7fy", "x\x7fy"},
    {"utf8 2-byte", "caf\xc3\xa9", "caf\xc3\xa9"},
    {"utf8 3-byte", "\xe2\x82\xac 5", "\xe2\x82\xac 5"},
    {"utf8 4-byte", "\xf0\x9f\x92\xb8", "\xf0\x9f\x92\xb8"},
    {"invalid byte", "a\xffz", "a\xef\xbf\xbdz"},
    {"lone continuation", "a\x80z", "a\xef\xbf\xbdz"},
    {"truncated sequence", "a\xe2\x82", "a\xef\xbf\xbd\xef\xbf\xbd"},
    {"overlong", "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
    {"surrogate", "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"above U+10FFFF", "\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"empty", "", ""},
};

START_TEST(log_escaping)
{
    log_info("%s", escapes[_i].in);
    json_t *j = one_line();
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), escapes[_i].want);
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "info");
    ck_assert_str_eq(json_string_value(json_object_get(j, "worker")), "test-worker");
    json_decref(j);
}
END_TEST

/* the same escaping applies to the context fields */
START_TEST(log_escaping_ctx)
{
    log_ctx_t ctx = {.queue = escapes[_i].in, .payment_id = escapes[_i].in, .err = escapes[_i].in};
    log_warnx(&ctx, "m");
    json_t *j = one_line();
    ck_assert_str_eq(json_string_value(json_object_get(j, "queue")), escapes[_i].want);
    ck_assert_str_eq(json_string_value(json_object_get(j, "payment_id")), escapes[_i].want);
    ck_assert_str_eq(json_string_value(json_object_get(j, "err")), escapes[_i].want);
    json_decref(j);
}
END_TEST

/* {queue, payment_id, err}: exactly the non-NULL ones appear */
static const struct {
    const char *queue, *pid, *err;
    size_t nkeys;
} ctxs[] = {
    {NULL, NULL, NULL, 4},   {"payments", NULL, NULL, 5}, {NULL, "p-1", NULL, 5},
    {NULL, NULL, "boom", 5}, {"risk", "p-2", NULL, 6},    {"risk", "p-3", "conn lost", 7},
};

START_TEST(log_ctx_fields)
{
    log_ctx_t ctx = {.queue = ctxs[_i].queue, .payment_id = ctxs[_i].pid, .err = ctxs[_i].err};
    log_infox(&ctx, "processed %d", 3);
    json_t *j = one_line();
    ck_assert_uint_eq(json_object_size(j), ctxs[_i].nkeys);
    const char *keys[] = {"queue", "payment_id", "err"};
    const char *want[] = {ctxs[_i].queue, ctxs[_i].pid, ctxs[_i].err};
    for (size_t k = 0; k < 3; k++) {
        json_t *v = json_object_get(j, keys[k]);
        if (want[k])
            ck_assert_str_eq(json_string_value(v), want[k]);
        else
            ck_assert_ptr_null(v);
    }
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "processed 3");
    json_decref(j);
}
END_TEST

START_TEST(log_null_ctx)
{
    log_errorx(NULL, "x");
    json_t *j = one_line();
    ck_assert_uint_eq(json_object_size(j), 4);
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "error");
    json_decref(j);
}
END_TEST

static int evaluated;

static int side_effect(void)
{
    return ++evaluated;
}

/* {level set, level used, must be written} */
static const struct {
    log_level_t set, use;
    bool written;
} guards[] = {
    {LOG_ERROR, LOG_ERROR, true}, {LOG_ERROR, LOG_WARN, false}, {LOG_ERROR, LOG_DEBUG, false},
    {LOG_WARN, LOG_WARN, true},   {LOG_WARN, LOG_INFO, false},  {LOG_INFO, LOG_INFO, true},
    {LOG_INFO, LOG_DEBUG, false}, {LOG_DEBUG, LOG_DEBUG, true}, {LOG_DEBUG, LOG_ERROR, true},
};

START_TEST(log_level_guard)
{
    log_set_level(guards[_i].set);
    evaluated = 0;
    log_ctx_t ctx = {.payment_id = "p"};
    switch (guards[_i].use) {
    case LOG_ERROR:
        log_error("%d", side_effect());
        log_errorx(&ctx, "%d", side_effect());
        break;
    case LOG_WARN:
        log_warn("%d", side_effect());
        log_warnx(&ctx, "%d", side_effect());
        break;
    case LOG_INFO:
        log_info("%d", side_effect());
        log_infox(&ctx, "%d", side_effect());
        break;
    case LOG_DEBUG:
        log_debug("%d", side_effect());
        log_debugx(&ctx, "%d", side_effect());
        break;
    }
    ck_assert_int_eq(evaluated, guards[_i].written ? 2 : 0);
    ck_assert_int_eq(ftell(cap) > 0, guards[_i].written);
    if (guards[_i].written) {
        char *text = captured();
        char want[64];
        snprintf(want, sizeof want, "\"level\":\"%s\"", log_level_name(guards[_i].use));
        ck_assert_msg(strstr(text, want) != NULL, "%s not in %s", want, text);
        free(text);
    }
}
END_TEST

static const struct {
    const char *in;
    int rc;
    log_level_t want;
} parses[] = {
    {"error", LL_OK, LOG_ERROR}, {"warn", LL_OK, LOG_WARN},      {"info", LL_OK, LOG_INFO},
    {"debug", LL_OK, LOG_DEBUG}, {"DEBUG", LL_OK, LOG_DEBUG},    {"warning", LL_EINVAL, LOG_INFO},
    {"", LL_EINVAL, LOG_INFO},   {"trace", LL_EINVAL, LOG_INFO},
};

START_TEST(log_level_parsing)
{
    log_level_t got = LOG_INFO;
    ck_assert_int_eq(log_level_parse(parses[_i].in, &got), parses[_i].rc);
    ck_assert_int_eq(got, parses[_i].want);
    if (parses[_i].rc == LL_OK)
        ck_assert_str_eq(log_level_name(got), parses[_i].want == LOG_WARN    ? "warn"
                                              : parses[_i].want == LOG_ERROR ? "error"
                                              : parses[_i].want == LOG_INFO  ? "info"
                                                                             : "debug");
}
END_TEST

START_TEST(log_timestamp_format)
{
    log_info("t");
    json_t *j = one_line();
    const char *ts = json_string_value(json_object_get(j, "ts"));
    /* 2026-11-23T09:31:25.123Z */
    ck_assert_uint_eq(strlen(ts), 24);
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < 24; i++) {
        if (shape[i] == 'd')
            ck_assert_msg(ts[i] >= '0' && ts[i] <= '9', "bad ts %s", ts);
        else
            ck_assert_msg(ts[i] == shape[i], "bad ts %s", ts);
    }
    json_decref(j);
}
END_TEST

/* {byte repeated, count}: the worst case is a control char (6x expansion) */
static const struct {
    char c;
    size_t n;
} longs[] = {{'x', 10000}, {'"', 5000}, {'\x01', 5000}, {'\xff', 3000}};

START_TEST(log_long_lines_stay_valid)
{
    char *big = malloc(longs[_i].n + 1);
    memset(big, longs[_i].c, longs[_i].n);
    big[longs[_i].n] = '\0';
    log_ctx_t ctx = {.queue = big, .payment_id = "p-9", .err = big};
    log_infox(&ctx, "%s", big);
    json_t *j = one_line(); /* asserts <= LOG_LINE_MAX and valid JSON */
    const char *msg = json_string_value(json_object_get(j, "msg"));
    size_t ml = strlen(msg);
    ck_assert_uint_gt(ml, 100);
    ck_assert_str_eq(msg + ml - 3, "...");
    ck_assert_str_eq(json_string_value(json_object_get(j, "payment_id")), "p-9");
    ck_assert_ptr_nonnull(json_object_get(j, "queue"));
    ck_assert_ptr_nonnull(json_object_get(j, "err"));
    json_decref(j);
    free(big);
}
END_TEST

START_TEST(log_lines_are_separate)
{
    for (int i = 0; i < 50; i++)
        log_info("line %d\nwith newline", i);
    char *text = captured();
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        ck_assert_msg(j != NULL, "not JSON: %s", line);
        char want[64];
        snprintf(want, sizeof want, "line %d\nwith newline", n);
        ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), want);
        json_decref(j);
        n++;
    }
    ck_assert_int_eq(n, 50);
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_checked_fixture(tc, setup, teardown);
    int ne = (int)(sizeof escapes / sizeof escapes[0]);
    tcase_add_loop_test(tc, log_escaping, 0, ne);
    tcase_add_loop_test(tc, log_escaping_ctx, 0, ne);
    tcase_add_loop_test(tc, log_ctx_fields, 0, (int)(sizeof ctxs / sizeof ctxs[0]));
    tcase_add_test(tc, log_null_ctx);
    tcase_add_loop_test(tc, log_level_guard, 0, (int)(sizeof guards / sizeof guards[0]));
    tcase_add_loop_test(tc, log_level_parsing, 0, (int)(sizeof parses / sizeof parses[0]));
    tcase_add_test(tc, log_timestamp_format);
    tcase_add_loop_test(tc, log_long_lines_stay_valid, 0, (int)(sizeof longs / sizeof longs[0]));
    tcase_add_test(tc, log_lines_are_separate);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
