/*
 * test_backoff.c - exponential backoff with full jitter: the ceiling per
 * attempt, growth, saturation without overflow, reset, and that the jitter
 * really covers [0, ceiling].
 */
#include <limits.h>
#include <string.h>

#include "backoff.h"
#include "ll_test.h"

/* {base, max, attempt} -> ceiling of the next delay */
static const struct {
    int base, max, attempt, want;
} bounds[] = {
    {100, 5000, 0, 100},
    {100, 5000, 1, 200},
    {100, 5000, 2, 400},
    {100, 5000, 5, 3200},
    {100, 5000, 6, 5000},
    {100, 5000, 30, 5000},
    {1, 1000, 9, 512},
    {1, 1000, 10, 1000},
    {7, 7, 0, 7},
    {7, 7, 3, 7},
    {INT_MAX, INT_MAX, 30, INT_MAX},
    {0, 0, 0, 1},    /* normalised to 1,1 */
    {50, 10, 4, 50}, /* max < base: max becomes base */
};

START_TEST(backoff_bounds)
{
    backoff_t b;
    backoff_init(&b, bounds[_i].base, bounds[_i].max, 42);
    b.attempt = bounds[_i].attempt;
    ck_assert_int_eq(backoff_ceiling_ms(&b), bounds[_i].want);
    for (int k = 0; k < 200; k++) {
        backoff_t c = b;
        int d = backoff_next_ms(&c);
        ck_assert_int_ge(d, 0);
        ck_assert_int_le(d, bounds[_i].want);
        b.rng = c.rng; /* new draw, same attempt */
    }
}
END_TEST

START_TEST(backoff_growth_doubles_until_max)
{
    backoff_t b;
    backoff_init(&b, 100, 5000, 1);
    int want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_int_eq(b.attempt, (int)i);
        ck_assert_int_eq(backoff_ceiling_ms(&b), want[i]);
        int d = backoff_next_ms(&b);
        ck_assert_int_le(d, want[i]);
    }
}
END_TEST

START_TEST(backoff_saturates_without_overflow)
{
    backoff_t b;
    backoff_init(&b, INT_MAX / 2, INT_MAX, 7);
    for (int i = 0; i < 100000; i++) {
        int d = backoff_next_ms(&b);
        ck_assert_int_ge(d, 0);
    }
    ck_assert_int_eq(b.attempt, BACKOFF_MAX_ATTEMPT);
    ck_assert_int_eq(backoff_ceiling_ms(&b), INT_MAX);
}
END_TEST

START_TEST(backoff_reset_starts_over)
{
    backoff_t b;
    backoff_init(&b, 100, 5000, 3);
    for (int i = 0; i < 10; i++)
        (void)backoff_next_ms(&b);
    ck_assert_int_eq(backoff_ceiling_ms(&b), 5000);
    backoff_reset(&b);
    ck_assert_int_eq(b.attempt, 0);
    ck_assert_int_eq(backoff_ceiling_ms(&b), 100);
    for (int i = 0; i < 100; i++) {
        backoff_reset(&b);
        ck_assert_int_le(backoff_next_ms(&b), 100);
    }
}
END_TEST

START_TEST(backoff_jitter_covers_range)
{
    backoff_t b;
    backoff_init(&b, 20, 20, 12345);
    int seen[21];
    memset(seen, 0, sizeof seen);
    long long sum = 0;
    const int draws = 21000;
    for (int i = 0; i < draws; i++) {
        int d = backoff_next_ms(&b);
        ck_assert_int_ge(d, 0);
        ck_assert_int_le(d, 20);
        seen[d]++;
        sum += d;
    }
    /* uniform: every value appears, none wildly over-represented */
    for (int v = 0; v <= 20; v++) {
        ck_assert_msg(seen[v] > 500 && seen[v] < 1500, "value %d drawn %d times", v, seen[v]);
    }
    double mean = (double)sum / draws;
    ck_assert_msg(mean > 9.0 && mean < 11.0, "mean %f", mean);
}
END_TEST

START_TEST(backoff_seeds)
{
    backoff_t a, b, c;
    backoff_init(&a, 1000, 1000, 99);
    backoff_init(&b, 1000, 1000, 99);
    backoff_init(&c, 1000, 1000, 100);
    int same = 0, differ = 0;
    for (int i = 0; i < 100; i++) {
        int x = backoff_next_ms(&a), y = backoff_next_ms(&b), z = backoff_next_ms(&c);
        same += x == y;
        differ += x != z;
    }
    ck_assert_int_eq(same, 100);
    ck_assert_int_gt(differ, 90);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("backoff");
    tcase_add_loop_test(tc, backoff_bounds, 0, (int)(sizeof bounds / sizeof bounds[0]));
    tcase_add_test(tc, backoff_growth_doubles_until_max);
    tcase_add_test(tc, backoff_saturates_without_overflow);
    tcase_add_test(tc, backoff_reset_starts_over);
    tcase_add_test(tc, backoff_jitter_covers_range);
    tcase_add_test(tc, backoff_seeds);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
