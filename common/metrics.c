/*
 * metrics.c - the metric registry and its Prometheus text exposition: see
 * metrics.h. A linked list of metrics, each with up to METRICS_MAX_SERIES
 * series (one per label value) in a fixed array; one mutex for all.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "sbuf.h"
#include "xmalloc.h"

const double metrics_duration_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                           0.5,   1,      2.5,   5,    10,    30,   60};
const size_t metrics_duration_nbuckets =
    sizeof metrics_duration_buckets / sizeof metrics_duration_buckets[0];

#define LV_MAX     64
#define CONST_MAX  4
#define OTHER_NAME "other"

typedef struct series {
    char lv[LV_MAX];
    double value;      /* counter, gauge */
    double sum;        /* histogram */
    uint64_t count;    /* histogram */
    uint64_t *buckets; /* histogram: per-bucket (not cumulative) counts, +Inf last */
} series_t;

struct metric {
    metric_type_t type;
    const char *name, *help, *label;
    double *bounds;
    size_t nbounds;
    series_t series[METRICS_MAX_SERIES];
    size_t nseries;
    metric_t *next;
};

static pthread_mutex_t mx = PTHREAD_MUTEX_INITIALIZER;
static metric_t *head, *tail;
static char const_names[CONST_MAX][32], const_values[CONST_MAX][128];
static size_t nconst;

metric_t *metric_new(metric_type_t type, const char *name, const char *help, const char *label,
                     const double *buckets, size_t nbuckets)
{
    pthread_mutex_lock(&mx);
    for (metric_t *m = head; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            log_panic("metric %s registered twice", name);
    metric_t *m = ll_xcalloc(1, sizeof *m);
    m->type = type;
    m->name = name;
    m->help = help;
    m->label = label;
    if (type == METRIC_HISTOGRAM) {
        m->nbounds = nbuckets;
        m->bounds = ll_xcalloc(nbuckets ? nbuckets : 1, sizeof *m->bounds);
        memcpy(m->bounds, buckets, nbuckets * sizeof *buckets);
    }
    if (tail)
        tail->next = m;
    else
        head = m;
    tail = m;
    pthread_mutex_unlock(&mx);
    return m;
}

/* The series of label value lv (created on first use); under mx. */
static series_t *series_of(metric_t *m, const char *lv)
{
    if (!m->label || !lv)
        lv = "";
    for (size_t i = 0; i < m->nseries; i++)
        if (strcmp(m->series[i].lv, lv) == 0)
            return &m->series[i];
    if (m->nseries >= METRICS_MAX_SERIES - 1 && strcmp(lv, OTHER_NAME) != 0)
        return series_of(m, OTHER_NAME); /* the last slot collects the rest */
    series_t *s = &m->series[m->nseries++];
    snprintf(s->lv, sizeof s->lv, "%s", lv);
    if (m->type == METRIC_HISTOGRAM)
        s->buckets = ll_xcalloc(m->nbounds + 1, sizeof *s->buckets);
    return s;
}

void metric_add(metric_t *m, const char *lv, double v)
{
    if (m->type == METRIC_COUNTER && !(v >= 0))
        return;
    pthread_mutex_lock(&mx);
    series_of(m, lv)->value += v;
    pthread_mutex_unlock(&mx);
}

void metric_set(metric_t *m, const char *lv, double v)
{
    pthread_mutex_lock(&mx);
    series_of(m, lv)->value = v;
    pthread_mutex_unlock(&mx);
}

void metric_observe(metric_t *m, const char *lv, double v)
{
    pthread_mutex_lock(&mx);
    series_t *s = series_of(m, lv);
    size_t b = 0;
    while (b < m->nbounds && v > m->bounds[b])
        b++;
    s->buckets[b]++;
    s->count++;
    s->sum += v;
    pthread_mutex_unlock(&mx);
}

static const series_t *series_find(const metric_t *m, const char *lv)
{
    if (!m->label || !lv)
        lv = "";
    for (size_t i = 0; i < m->nseries; i++)
        if (strcmp(m->series[i].lv, lv) == 0)
            return &m->series[i];
    return NULL;
}

double metric_value(metric_t *m, const char *lv)
{
    pthread_mutex_lock(&mx);
    const series_t *s = series_find(m, lv);
    double v = s ? (m->type == METRIC_HISTOGRAM ? (double)s->count : s->value) : 0;
    pthread_mutex_unlock(&mx);
    return v;
}

uint64_t metric_count(metric_t *m, const char *lv)
{
    pthread_mutex_lock(&mx);
    const series_t *s = series_find(m, lv);
    uint64_t n = s ? (m->type == METRIC_HISTOGRAM ? s->count : (uint64_t)s->value) : 0;
    pthread_mutex_unlock(&mx);
    return n;
}

double metric_quantile(metric_t *m, const char *lv, double q)
{
    double r = -1;
    pthread_mutex_lock(&mx);
    const series_t *s = series_find(m, lv);
    if (s && m->type == METRIC_HISTOGRAM && s->count > 0) {
        double rank = q * (double)s->count, seen = 0;
        for (size_t b = 0; b <= m->nbounds; b++) {
            double in = (double)s->buckets[b];
            if (seen + in >= rank && in > 0) {
                if (b == m->nbounds) { /* +Inf: the highest finite bound */
                    r = m->nbounds ? m->bounds[m->nbounds - 1] : 0;
                } else {
                    double lo = b ? m->bounds[b - 1] : 0, hi = m->bounds[b];
                    r = lo + (hi - lo) * ((rank - seen) / in);
                }
                break;
            }
            seen += in;
        }
    }
    pthread_mutex_unlock(&mx);
    return r;
}

void metrics_const_label(const char *name, const char *value)
{
    pthread_mutex_lock(&mx);
    if (nconst < CONST_MAX) {
        snprintf(const_names[nconst], sizeof const_names[0], "%s", name);
        snprintf(const_values[nconst], sizeof const_values[0], "%s", value);
        nconst++;
    }
    pthread_mutex_unlock(&mx);
}

void metrics_reset(void)
{
    pthread_mutex_lock(&mx);
    for (metric_t *m = head, *next; m; m = next) {
        next = m->next;
        for (size_t i = 0; i < m->nseries; i++)
            free(m->series[i].buckets);
        free(m->bounds);
        free(m);
    }
    head = tail = NULL;
    nconst = 0;
    pthread_mutex_unlock(&mx);
}

/* --- exposition ---------------------------------------------------------- */

/* A label value escaped as the text format wants (\\, \", \n). */
static void add_escaped(sbuf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            sbuf_adds(b, "\\\\");
        else if (*s == '"')
            sbuf_adds(b, "\\\"");
        else if (*s == '\n')
            sbuf_adds(b, "\\n");
        else
            sbuf_addc(b, *s);
    }
}

static void add_num(sbuf_t *b, double v)
{
    char n[64];
    if (isinf(v))
        snprintf(n, sizeof n, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(n, sizeof n, "%.0f", v);
    else if (fabs(v) >= 1e6) /* timestamps: milliseconds, not 9 digits */
        snprintf(n, sizeof n, "%.3f", v);
    else
        snprintf(n, sizeof n, "%.9g", v);
    sbuf_adds(b, n);
}

/* {const labels, label="lv", extra} (nothing when there are no labels). */
static void add_labels(sbuf_t *b, const metric_t *m, const series_t *s, const char *extra_name,
                       const char *extra_value)
{
    bool any = false;
    for (size_t i = 0; i < nconst; i++) {
        sbuf_adds(b, any ? "," : "{");
        sbuf_adds(b, const_names[i]);
        sbuf_adds(b, "=\"");
        add_escaped(b, const_values[i]);
        sbuf_addc(b, '"');
        any = true;
    }
    if (m->label) {
        sbuf_adds(b, any ? "," : "{");
        sbuf_adds(b, m->label);
        sbuf_adds(b, "=\"");
        add_escaped(b, s->lv);
        sbuf_addc(b, '"');
        any = true;
    }
    if (extra_name) {
        sbuf_adds(b, any ? "," : "{");
        sbuf_adds(b, extra_name);
        sbuf_adds(b, "=\"");
        sbuf_adds(b, extra_value);
        sbuf_addc(b, '"');
        any = true;
    }
    if (any)
        sbuf_addc(b, '}');
}

static void add_header(sbuf_t *b, const char *name, const char *help, const char *type)
{
    sbuf_adds(b, "# HELP ");
    sbuf_adds(b, name);
    sbuf_addc(b, ' ');
    sbuf_adds(b, help);
    sbuf_adds(b, "\n# TYPE ");
    sbuf_adds(b, name);
    sbuf_addc(b, ' ');
    sbuf_adds(b, type);
    sbuf_addc(b, '\n');
}

static void render_metric(sbuf_t *b, const metric_t *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    add_header(b, m->name, m->help, types[m->type]);
    for (size_t i = 0; i < m->nseries; i++) {
        const series_t *s = &m->series[i];
        if (m->type != METRIC_HISTOGRAM) {
            sbuf_adds(b, m->name);
            add_labels(b, m, s, NULL, NULL);
            sbuf_addc(b, ' ');
            add_num(b, s->value);
            sbuf_addc(b, '\n');
            continue;
        }
        uint64_t cum = 0;
        for (size_t k = 0; k <= m->nbounds; k++) {
            char le[64];
            if (k == m->nbounds)
                snprintf(le, sizeof le, "+Inf");
            else
                snprintf(le, sizeof le, "%.9g", m->bounds[k]);
            cum += s->buckets[k];
            sbuf_adds(b, m->name);
            sbuf_adds(b, "_bucket");
            add_labels(b, m, s, "le", le);
            sbuf_addc(b, ' ');
            add_num(b, (double)cum);
            sbuf_addc(b, '\n');
        }
        sbuf_adds(b, m->name);
        sbuf_adds(b, "_sum");
        add_labels(b, m, s, NULL, NULL);
        sbuf_addc(b, ' ');
        add_num(b, s->sum);
        sbuf_addc(b, '\n');
        sbuf_adds(b, m->name);
        sbuf_adds(b, "_count");
        add_labels(b, m, s, NULL, NULL);
        sbuf_addc(b, ' ');
        add_num(b, (double)s->count);
        sbuf_addc(b, '\n');
    }
}

static void add_process_metric(sbuf_t *b, const char *name, const char *help, const char *type,
                               double v)
{
    add_header(b, name, help, type);
    sbuf_adds(b, name);
    sbuf_addc(b, ' ');
    add_num(b, v);
    sbuf_addc(b, '\n');
}

/* process_* from /proc/self (Linux), as the Prometheus client libraries
 * name them. A value that cannot be read is left out. */
static void render_process(sbuf_t *b)
{
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long utime = 0, stime = 0, vsize = 0;
    unsigned long long start = 0;
    long rss = 0;
    bool stat_ok =
        p && sscanf(p + 2,
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                    "%*d %llu %lu %ld",
                    &utime, &stime, &start, &vsize, &rss) == 5;
    double btime = 0;
    if ((f = fopen("/proc/stat", "r"))) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "btime %lf", &btime) == 1)
                break;
        fclose(f);
    }
    if (stat_ok && tck > 0) {
        add_process_metric(b, "process_cpu_seconds_total",
                           "Total user and system CPU time spent in seconds.", "counter",
                           (double)(utime + stime) / (double)tck);
        add_process_metric(b, "process_resident_memory_bytes", "Resident memory size in bytes.",
                           "gauge", (double)rss * (double)page);
        add_process_metric(b, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                           "gauge", (double)vsize);
        if (btime > 0)
            add_process_metric(b, "process_start_time_seconds",
                               "Start time of the process since unix epoch in seconds.", "gauge",
                               btime + (double)start / (double)tck);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long fds = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            fds += e->d_name[0] != '.';
        closedir(d);
        add_process_metric(b, "process_open_fds", "Number of open file descriptors.", "gauge",
                           (double)(fds - 1)); /* less the one reading the directory */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        add_process_metric(b, "process_max_fds", "Maximum number of open file descriptors.",
                           "gauge", (double)rl.rlim_cur);
}

char *metrics_render(void)
{
    sbuf_t b;
    sbuf_init(&b, 8192);
    pthread_mutex_lock(&mx);
    for (const metric_t *m = head; m; m = m->next)
        render_metric(&b, m);
    pthread_mutex_unlock(&mx);
    render_process(&b);
    return sbuf_take(&b);
}
