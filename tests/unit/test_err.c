/*
 * test_err.c - the error table: codes are negative, distinct, and each has
 * its own name and text; unknown codes do not crash.
 */
#include <string.h>

#include "err.h"
#include "ll_test.h"

static const struct {
    int code;
    const char *name, *text;
} table[] = {
    {LL_OK, "LL_OK", "success"},
    {LL_ENOMEM, "LL_ENOMEM", "out of memory"},
    {LL_ECONN, "LL_ECONN", "connection failed or lost"},
    {LL_ERETRY, "LL_ERETRY", "transient failure, retry"},
    {LL_EREJECT, "LL_EREJECT", "message rejected"},
    {LL_ESTATE, "LL_ESTATE", "invalid state"},
};

START_TEST(err_names_and_texts)
{
    ck_assert_str_eq(ll_errname(table[_i].code), table[_i].name);
    ck_assert_str_eq(ll_strerror(table[_i].code), table[_i].text);
}
END_TEST

START_TEST(err_codes_are_negative_and_distinct)
{
    int codes[] = {
#define C(name, msg) LL_E##name,
        LL_ERRNO_MAP(C)
#undef C
    };
    int n = (int)(sizeof codes / sizeof codes[0]);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(codes[i], -(i + 1));
        ck_assert_str_ne(ll_strerror(codes[i]), "unknown error");
    }
    ck_assert_str_eq(ll_strerror(-n - 1), "unknown error");
    ck_assert_str_eq(ll_strerror(5), "unknown error");
    ck_assert_str_eq(ll_errname(-1000), "LL_E?");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("table");
    tcase_add_loop_test(tc, err_names_and_texts, 0, (int)(sizeof table / sizeof table[0]));
    tcase_add_test(tc, err_codes_are_negative_and_distinct);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
