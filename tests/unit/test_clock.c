/*
 * test_clock.c - wall clock in Unix milliseconds agrees with time(2); the
 * monotonic clock never goes back and advances across a sleep.
 */
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ll_test.h"

START_TEST(clock_now_is_unix_milliseconds)
{
    int64_t before = (int64_t)time(NULL) * 1000;
    int64_t now = clock_now_ms();
    int64_t after = ((int64_t)time(NULL) + 1) * 1000;
    ck_assert_int_ge(now, before);
    ck_assert_int_le(now, after);
}
END_TEST

START_TEST(clock_mono_is_monotonic_and_advances)
{
    int64_t prev = clock_mono_ms();
    for (int i = 0; i < 100000; i++) {
        int64_t t = clock_mono_ms();
        ck_assert_int_ge(t, prev);
        prev = t;
    }
    int64_t t0 = clock_mono_ms();
    usleep(50 * 1000);
    int64_t waited = clock_mono_ms() - t0;
    ck_assert_int_ge(waited, 49);
    ck_assert_int_lt(waited, 5000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("clock");
    TCase *tc = tcase_create("clock");
    tcase_add_test(tc, clock_now_is_unix_milliseconds);
    tcase_add_test(tc, clock_mono_is_monotonic_and_advances);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
