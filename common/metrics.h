/*
 * metrics.h - the process's Prometheus metrics: a small registry of
 * counters, gauges and histograms, and its text exposition (format 0.0.4)
 * with the process_* metrics every client library exports.
 *
 * A metric has at most one variable label (reason, source, dependency...),
 * whose values are few: past METRICS_MAX_SERIES values of one metric, new
 * ones are counted under "other", so a bug never turns into unbounded
 * memory or cardinality. Constant labels (metrics_const_label: stage) are
 * added to every series of the registry.
 *
 * Thread-safe: the worker loop updates, the HTTP thread renders; one mutex
 * guards the registry (an update is a few comparisons and an add). The
 * names and meanings are the reference of docs/operations.md#metrics.
 *
 * Public API: metric_t, metric_type_t, METRICS_MAX_SERIES,
 * metrics_duration_buckets, metrics_duration_nbuckets, metric_new,
 * metric_add, metric_set, metric_observe, metric_value, metric_count,
 * metric_quantile, metrics_const_label, metrics_render, metrics_reset.
 */
#ifndef LL_METRICS_H
#define LL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_SERIES 32

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

typedef struct metric metric_t;

/* Seconds: 1 ms .. 60 s. */
extern const double metrics_duration_buckets[];
extern const size_t metrics_duration_nbuckets;

/* Registers a metric (name, help and label are borrowed: string literals).
 * `label` names its variable label, NULL for none; a histogram's upper
 * bounds are `buckets[0..nbuckets)`, ascending (+Inf is implied). Lives
 * until metrics_reset(). Registering a name twice is a programming error
 * (panics). */
metric_t *metric_new(metric_type_t type, const char *name, const char *help, const char *label,
                     const double *buckets, size_t nbuckets);

/* `lv` is the value of the metric's label (NULL or ignored when it has
 * none). Counters only go up: metric_add with v < 0 is ignored. On a
 * histogram, metric_add(m, lv, 0) creates the series with every bucket 0
 * (so it is exported before its first observation). */
void metric_add(metric_t *m, const char *lv, double v);
void metric_set(metric_t *m, const char *lv, double v);     /* gauges */
void metric_observe(metric_t *m, const char *lv, double v); /* histograms */

/* For tests and summaries: a counter's or gauge's value, a histogram's
 * count; 0 for a label value never seen. */
double metric_value(metric_t *m, const char *lv);
uint64_t metric_count(metric_t *m, const char *lv);
/* The q-quantile (0..1) of a histogram's series, interpolated within its
 * bucket as Prometheus's histogram_quantile does; -1 when it is empty. */
double metric_quantile(metric_t *m, const char *lv, double q);

/* Adds name="value" to every series (copied). At most 4. */
void metrics_const_label(const char *name, const char *value);

/* The exposition of every metric, then the process_* ones. Caller frees. */
char *metrics_render(void);

/* Forgets every metric and constant label (tests). */
void metrics_reset(void);

#endif
