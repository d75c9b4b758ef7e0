/*
 * test_money.c - Check suite for common/money.c: checked arithmetic at the
 * int64 boundaries, the fee formula's rounding, the ISO 4217 table, the
 * strict amount parser and the formatter. Every group is a table.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

/* ---- add / sub / mul ---------------------------------------------------- */

enum { OP_ADD, OP_SUB, OP_MUL };

static const struct {
    const char *label;
    int op;
    int64_t a, b;
    int want_rc;
    int64_t want;
} arith[] = {
    {"add small", OP_ADD, 2, 3, LL_OK, 5},
    {"add to max", OP_ADD, INT64_MAX - 1, 1, LL_OK, INT64_MAX},
    {"add past max", OP_ADD, INT64_MAX, 1, LL_ERANGE, 0},
    {"add max+max", OP_ADD, INT64_MAX, INT64_MAX, LL_ERANGE, 0},
    {"add to min", OP_ADD, INT64_MIN + 1, -1, LL_OK, INT64_MIN},
    {"add past min", OP_ADD, INT64_MIN, -1, LL_ERANGE, 0},
    {"add min+max", OP_ADD, INT64_MIN, INT64_MAX, LL_OK, -1},
    {"sub small", OP_SUB, 2, 3, LL_OK, -1},
    {"sub to min", OP_SUB, INT64_MIN + 1, 1, LL_OK, INT64_MIN},
    {"sub past min", OP_SUB, INT64_MIN, 1, LL_ERANGE, 0},
    {"sub 0-min", OP_SUB, 0, INT64_MIN, LL_ERANGE, 0},
    {"sub -1-min", OP_SUB, -1, INT64_MIN, LL_OK, INT64_MAX},
    {"sub max-(-1)", OP_SUB, INT64_MAX, -1, LL_ERANGE, 0},
    {"mul small", OP_MUL, -7, 6, LL_OK, -42},
    {"mul max*1", OP_MUL, INT64_MAX, 1, LL_OK, INT64_MAX},
    {"mul max*2", OP_MUL, INT64_MAX, 2, LL_ERANGE, 0},
    {"mul min*-1", OP_MUL, INT64_MIN, -1, LL_ERANGE, 0},
    {"mul min*1", OP_MUL, INT64_MIN, 1, LL_OK, INT64_MIN},
    {"mul 2^32*2^31", OP_MUL, 4294967296LL, 2147483648LL, LL_ERANGE, 0},
    {"mul 2^32*(2^31-1)", OP_MUL, 4294967296LL, 2147483647LL, LL_OK, 9223372032559808512LL},
    {"mul by 0", OP_MUL, INT64_MIN, 0, LL_OK, 0},
};

START_TEST(test_arith)
{
    int64_t out = 12345;
    int rc = arith[_i].op == OP_ADD   ? money_add(arith[_i].a, arith[_i].b, &out)
             : arith[_i].op == OP_SUB ? money_sub(arith[_i].a, arith[_i].b, &out)
                                      : money_mul(arith[_i].a, arith[_i].b, &out);
    ck_assert_msg(rc == arith[_i].want_rc, "%s: rc %d, want %d", arith[_i].label, rc,
                  arith[_i].want_rc);
    if (rc == LL_OK)
        ck_assert_msg(out == arith[_i].want, "%s: got %lld", arith[_i].label, (long long)out);
    else
        ck_assert_msg(out == 12345, "%s: out written on error", arith[_i].label);
}
END_TEST

/* ---- fee ---------------------------------------------------------------- */

static const struct {
    const char *label;
    int64_t amount;
    int bps;
    int64_t fixed;
    int want_rc;
    int64_t want;
} fees[] = {
    {"exact", 10000, 250, 0, LL_OK, 250},
    {"half rounds up", 50, 100, 0, LL_OK, 1},  /* 0.5 -> 1 */
    {"below half down", 49, 100, 0, LL_OK, 0}, /* 0.49 -> 0 */
    {"above half up", 51, 100, 0, LL_OK, 1},   /* 0.51 -> 1 */
    {"1.5 -> 2", 150, 100, 0, LL_OK, 2},       /* 1.5 -> 2 */
    {"2.5 -> 3 (not even)", 250, 100, 0, LL_OK, 3},
    {"14.999 -> 15", 14999, 10, 0, LL_OK, 15},
    {"0.4999 -> 0", 4999, 1, 0, LL_OK, 0}, /* 0.4999 -> 0 */
    {"0.5 exactly via 1 bps", 5000, 1, 0, LL_OK, 1},
    {"bps 0", 123456789, 0, 0, LL_OK, 0},
    {"bps 0 with fixed", 123456789, 0, 30, LL_OK, 30},
    {"bps 10000", 123456789, 10000, 0, LL_OK, 123456789},
    {"fixed fee", 10000, 290, 30, LL_OK, 320},
    {"negative fixed", 10000, 290, -30, LL_OK, 260},
    {"amount 0", 0, 290, 30, LL_OK, 30},
    {"huge amount full", INT64_MAX, 10000, 0, LL_OK, INT64_MAX},
    {"huge amount half", INT64_MAX, 5000, 0, LL_OK, 4611686018427387904LL}, /* x.5 up */
    {"huge amount 1 bps", INT64_MAX, 1, 0, LL_OK, 922337203685478LL},       /* .5807 up */
    {"huge overflow via fixed", INT64_MAX, 10000, 1, LL_ERANGE, 0},
    {"fixed min ok", 0, 0, INT64_MIN, LL_OK, INT64_MIN},
    {"negative amount", -1, 100, 0, LL_EINVAL, 0},
    {"negative bps", 100, -1, 0, LL_EINVAL, 0},
    {"bps too big", 100, 10001, 0, LL_EINVAL, 0},
};

START_TEST(test_fee)
{
    int64_t out = 777;
    int rc = money_fee(fees[_i].amount, fees[_i].bps, fees[_i].fixed, &out);
    ck_assert_msg(rc == fees[_i].want_rc, "%s: rc %d, want %d", fees[_i].label, rc,
                  fees[_i].want_rc);
    if (rc == LL_OK)
        ck_assert_msg(out == fees[_i].want, "%s: got %lld, want %lld", fees[_i].label,
                      (long long)out, (long long)fees[_i].want);
    else
        ck_assert_msg(out == 777, "%s: out written on error", fees[_i].label);
}
END_TEST

/* ---- currencies --------------------------------------------------------- */

static const struct {
    const char *code;
    bool valid;
    int exponent;
} currencies[] = {
    {"EUR", true, 2},   {"USD", true, 2},    {"JPY", true, 0},   {"KWD", true, 3},
    {"BHD", true, 3},   {"CLF", true, 4},    {"UYW", true, 4},   {"XAF", true, 0},
    {"XOF", true, 0},   {"XPF", true, 0},    {"XCD", true, 2},   {"AED", true, 2},
    {"ZWG", true, 2},   {"KRW", true, 0},    {"eur", false, -1}, {"Eur", false, -1},
    {"EU", false, -1},  {"EURO", false, -1}, {"XYZ", false, -1}, {"", false, -1},
    {"E1R", false, -1}, {"XXX", false, -1},  {"XTS", false, -1}, {"XAU", false, -1},
    {"HRK", false, -1}, {NULL, false, -1},
};

START_TEST(test_currency)
{
    const char *c = currencies[_i].code;
    ck_assert_msg(money_currency_valid(c) == currencies[_i].valid, "%s: valid", c ? c : "NULL");
    ck_assert_msg(money_currency_exponent(c) == currencies[_i].exponent, "%s: exponent %d",
                  c ? c : "NULL", money_currency_exponent(c));
}
END_TEST

START_TEST(test_currency_table)
{
    size_t n = money_currency_count();
    ck_assert_uint_ge(n, 150);
    ck_assert_uint_le(n, 170);
    ck_assert_ptr_null(money_currency_at(n));
    for (size_t i = 0; i < n; i++) {
        const char *c = money_currency_at(i);
        ck_assert_ptr_nonnull(c);
        ck_assert_msg(money_currency_valid(c), "%s in table but not valid", c);
        int e = money_currency_exponent(c);
        ck_assert_msg(e >= 0 && e <= 4, "%s exponent %d", c, e);
        if (i > 0)
            ck_assert_msg(strcmp(money_currency_at(i - 1), c) < 0, "table not sorted at %s", c);
    }
}
END_TEST

/* ---- parse -------------------------------------------------------------- */

static const struct {
    const char *s;
    int want_rc;
    int64_t want;
} parses[] = {
    {"0", LL_OK, 0},
    {"1", LL_OK, 1},
    {"-1", LL_OK, -1},
    {"1234", LL_OK, 1234},
    {"9223372036854775807", LL_OK, INT64_MAX},
    {"-9223372036854775808", LL_OK, INT64_MIN},
    {"9223372036854775808", LL_ERANGE, 0},
    {"-9223372036854775809", LL_ERANGE, 0},
    {"99999999999999999999999", LL_ERANGE, 0},
    {"", LL_EINVAL, 0},
    {"-", LL_EINVAL, 0},
    {"+1", LL_EINVAL, 0},
    {" 1", LL_EINVAL, 0},
    {"1 ", LL_EINVAL, 0},
    {"01", LL_EINVAL, 0},
    {"00", LL_EINVAL, 0},
    {"-0", LL_EINVAL, 0},
    {"-01", LL_EINVAL, 0},
    {"1.5", LL_EINVAL, 0},
    {"1e3", LL_EINVAL, 0},
    {"0x10", LL_EINVAL, 0},
    {"12a", LL_EINVAL, 0},
    {"99999999999999999999x", LL_EINVAL, 0},
    {NULL, LL_EINVAL, 0},
};

START_TEST(test_parse)
{
    int64_t out = 555;
    int rc = money_parse_minor(parses[_i].s, &out);
    const char *s = parses[_i].s ? parses[_i].s : "NULL";
    ck_assert_msg(rc == parses[_i].want_rc, "\"%s\": rc %d, want %d", s, rc, parses[_i].want_rc);
    if (rc == LL_OK)
        ck_assert_msg(out == parses[_i].want, "\"%s\": got %lld", s, (long long)out);
    else
        ck_assert_msg(out == 555, "\"%s\": out written on error", s);
}
END_TEST

/* ---- format ------------------------------------------------------------- */

static const struct {
    int64_t amount;
    const char *cur;
    size_t n;
    int want_rc;
    const char *want;
} formats[] = {
    {1234, "EUR", 32, LL_OK, "12.34"},
    {-5, "EUR", 32, LL_OK, "-0.05"},
    {0, "EUR", 32, LL_OK, "0.00"},
    {5, "EUR", 32, LL_OK, "0.05"},
    {100, "USD", 32, LL_OK, "1.00"},
    {1234, "JPY", 32, LL_OK, "1234"},
    {-1234, "JPY", 32, LL_OK, "-1234"},
    {0, "JPY", 32, LL_OK, "0"},
    {1, "KWD", 32, LL_OK, "0.001"},
    {123456, "CLF", 32, LL_OK, "12.3456"},
    {INT64_MAX, "EUR", 32, LL_OK, "92233720368547758.07"},
    {INT64_MIN, "EUR", 32, LL_OK, "-92233720368547758.08"},
    {INT64_MIN, "JPY", 32, LL_OK, "-9223372036854775808"},
    {INT64_MIN, "CLF", 32, LL_OK, "-922337203685477.5808"},
    {1234, "EUR", 6, LL_OK, "12.34"},
    {1234, "EUR", 5, LL_ERANGE, ""},
    {1234, "XYZ", 32, LL_EINVAL, ""},
    {1234, "eur", 32, LL_EINVAL, ""},
};

START_TEST(test_format)
{
    char buf[64];
    memset(buf, 'x', sizeof buf);
    int rc = money_format(formats[_i].amount, formats[_i].cur, buf, formats[_i].n);
    ck_assert_msg(rc == formats[_i].want_rc, "%lld %s: rc %d", (long long)formats[_i].amount,
                  formats[_i].cur, rc);
    ck_assert_str_eq(buf, formats[_i].want);
    ck_assert_uint_lt(strlen(buf), formats[_i].n);
}
END_TEST

/* format then parse of the digits gives the amount back (EUR, every sign). */
START_TEST(test_format_roundtrip)
{
    static const int64_t amounts[] = {0, 1, -1, 99, -100, 123456789, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof amounts / sizeof *amounts; i++) {
        char buf[MONEY_FORMAT_MAX], digits[MONEY_FORMAT_MAX];
        ck_assert_int_eq(money_format(amounts[i], "EUR", buf, sizeof buf), LL_OK);
        size_t k = 0;
        for (const char *p = buf; *p; p++)
            if (*p != '.')
                digits[k++] = *p;
        digits[k] = '\0';
        /* strip leading zeros left by "0.05" */
        char *d = digits;
        bool neg = *d == '-';
        char norm[MONEY_FORMAT_MAX];
        if (neg)
            d++;
        while (d[0] == '0' && d[1])
            d++;
        snprintf(norm, sizeof norm, "%s%s", neg ? "-" : "", d);
        int64_t back;
        ck_assert_int_eq(money_parse_minor(norm, &back), LL_OK);
        ck_assert_msg(back == amounts[i], "%s -> %lld", buf, (long long)back);
    }
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *money_suite(void)
{
    Suite *s = suite_create("money");
    TCase *tc = tcase_create("money");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_arith, 0, N(arith));
    tcase_add_loop_test(tc, test_fee, 0, N(fees));
    tcase_add_loop_test(tc, test_currency, 0, N(currencies));
    tcase_add_test(tc, test_currency_table);
    tcase_add_loop_test(tc, test_parse, 0, N(parses));
    tcase_add_loop_test(tc, test_format, 0, N(formats));
    tcase_add_test(tc, test_format_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(money_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
