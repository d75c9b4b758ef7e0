/*
 * test_metrics.c - the metric registry and its exposition (metrics.h):
 * counters only go up, histograms are cumulative with +Inf, _sum and
 * _count, label values are escaped, a metric's label values are bounded
 * (the rest counted under "other"), quantiles interpolate within a bucket,
 * constant labels reach every series, and process_* metrics are there.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test.h"
#include "metrics.h"

static void setup(void)
{
    metrics_reset();
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

#define ck_has(text, line) ck_assert_msg(has_line(text, line), "missing line: %s\n%s", line, text)

START_TEST(counters_render_with_help_type_and_const_labels)
{
    metrics_const_label("stage", "risk");
    metric_t *c = metric_new(METRIC_COUNTER, "t_total", "A test counter.", NULL, NULL, 0);
    metric_add(c, NULL, 2);
    metric_add(c, NULL, 3);
    metric_add(c, NULL, -10); /* a counter never goes down */
    char *t = metrics_render();
    ck_has(t, "# HELP t_total A test counter.");
    ck_has(t, "# TYPE t_total counter");
    ck_has(t, "t_total{stage=\"risk\"} 5");
    ck_assert_double_eq(metric_value(c, NULL), 5);
    free(t);
}
END_TEST

START_TEST(histograms_are_cumulative_with_sum_and_count)
{
    const double b[] = {0.1, 1};
    metric_t *h = metric_new(METRIC_HISTOGRAM, "t_seconds", "A test histogram.", NULL, b, 2);
    metric_observe(h, NULL, 0.05);
    metric_observe(h, NULL, 0.5);
    metric_observe(h, NULL, 0.5);
    metric_observe(h, NULL, 7);
    char *t = metrics_render();
    ck_has(t, "# TYPE t_seconds histogram");
    ck_has(t, "t_seconds_bucket{le=\"0.1\"} 1");
    ck_has(t, "t_seconds_bucket{le=\"1\"} 3");
    ck_has(t, "t_seconds_bucket{le=\"+Inf\"} 4");
    ck_has(t, "t_seconds_sum 8.05");
    ck_has(t, "t_seconds_count 4");
    free(t);
    ck_assert_uint_eq(metric_count(h, NULL), 4);
    /* the median (rank 2 of 4) lies in (0.1, 1], the second of its 2 */
    ck_assert_double_eq_tol(metric_quantile(h, NULL, 0.5), 0.1 + 0.9 * 0.5, 1e-9);
    /* the highest lies in +Inf: the highest finite bound */
    ck_assert_double_eq(metric_quantile(h, NULL, 1), 1);
}
END_TEST

START_TEST(label_values_are_escaped_and_bounded)
{
    metric_t *c = metric_new(METRIC_COUNTER, "t_by_total", "By reason.", "reason", NULL, 0);
    metric_add(c, "a\"b\\c\nd", 1);
    for (int i = 0; i < 100; i++) {
        char lv[16];
        snprintf(lv, sizeof lv, "v%d", i);
        metric_add(c, lv, 1);
    }
    char *t = metrics_render();
    ck_has(t, "t_by_total{reason=\"a\\\"b\\\\c\\nd\"} 1");
    ck_has(t, "t_by_total{reason=\"v0\"} 1");
    /* 32 series at most: 30 named values, the rest under "other" */
    ck_has(t, "t_by_total{reason=\"other\"} 70");
    size_t lines = 0;
    for (const char *p = t; (p = strstr(p, "t_by_total{")); p++)
        lines++;
    ck_assert_uint_eq(lines, METRICS_MAX_SERIES);
    free(t);
}
END_TEST

START_TEST(gauges_set_and_process_metrics_present)
{
    metric_t *g = metric_new(METRIC_GAUGE, "t_ready", "Ready.", NULL, NULL, 0);
    metric_set(g, NULL, 1);
    metric_set(g, NULL, 0);
    char *t = metrics_render();
    ck_has(t, "t_ready 0");
    ck_assert_ptr_nonnull(strstr(t, "\nprocess_resident_memory_bytes "));
    ck_assert_ptr_nonnull(strstr(t, "\nprocess_cpu_seconds_total "));
    ck_assert_ptr_nonnull(strstr(t, "\nprocess_open_fds "));
    ck_assert_ptr_nonnull(strstr(t, "\nprocess_start_time_seconds "));
    free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("registry");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, counters_render_with_help_type_and_const_labels);
    tcase_add_test(tc, histograms_are_cumulative_with_sum_and_count);
    tcase_add_test(tc, label_values_are_escaped_and_bounded);
    tcase_add_test(tc, gauges_set_and_process_metrics_present);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
