/*
 * status_draw.c - what `ledgerctl status` shows of a round's document
 * (status.h): the text screen an operator reads at 3 a.m., the document
 * itself for --json, and the problems on stderr.
 *
 * Public API: status_draw, status_draw_json, status_print_problems.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

#define STATUS_SHOW_BATCHES 5 /* held / overdue batches listed by name */

static void fmt_age(double s, char *buf, size_t n)
{
    long long v = s < 0 ? 0 : (long long)s;
    if (v < 60)
        snprintf(buf, n, "%llds", v);
    else if (v < 3600)
        snprintf(buf, n, "%lldm%02llds", v / 60, v % 60);
    else if (v < 86400)
        snprintf(buf, n, "%lldh%02lldm", v / 3600, v % 3600 / 60);
    else
        snprintf(buf, n, "%lldd%02lldh", v / 86400, v % 86400 / 3600);
}

static void put_server(FILE *f, const char *label, const json_t *j, const char *where)
{
    bool up = json_is_true(json_object_get(j, "up"));
    fprintf(f, "  %-11s %-5s %s", label, up ? "up" : "DOWN", where);
    double ms;
    if (up && status__jnum(j, "latency_ms", &ms))
        fprintf(f, "  %.0f ms", ms);
    if (!up)
        fprintf(f, "  %.100s", status__jstr(j, "error"));
    fputc('\n', f);
}

static void cell_num(FILE *f, const json_t *j, const char *k, int width, bool real)
{
    double v;
    if (!status__jnum(j, k, &v))
        fprintf(f, " %*s", width, "?");
    else if (real)
        fprintf(f, " %*.1f", width, v);
    else
        fprintf(f, " %*.0f", width, v);
}

void status_draw(const status_t *s, FILE *f)
{
    const json_t *d = s->doc, *sv = json_object_get(d, "servers");
    size_t np = json_array_size(json_object_get(d, "problems"));
    char head[64];
    snprintf(head, sizeof head, np ? "NEEDS A HUMAN: %zu (below)" : "all clear", np);
    fprintf(f, "ledgerline status  %s  %s\n", status__jstr(d, "at"), head);

    fprintf(f, "SERVERS\n");
    const json_t *mg = json_object_get(sv, "management");
    char where[400];
    put_server(f, "postgres", json_object_get(sv, "postgres"),
               status__jstr(json_object_get(sv, "postgres"), "address"));
    put_server(f, "redis", json_object_get(sv, "redis"),
               status__jstr(json_object_get(sv, "redis"), "address"));
    snprintf(where, sizeof where, "amqp %s",
             status__jstr(json_object_get(sv, "rabbitmq"), "address"));
    put_server(f, "rabbitmq", json_object_get(sv, "rabbitmq"), where);
    snprintf(where, sizeof where, "%s%s%s", status__jstr(mg, "url"),
             status__jstr(mg, "version")[0] ? "  RabbitMQ " : "", status__jstr(mg, "version"));
    put_server(f, "management", mg, where);

    fprintf(f, "QUEUES                  TYPE     CLASS   READY UNACKED CONS   PUB/s DELIV/s     "
               "AGE\n");
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(d, "queues"), i, q)
    {
        fprintf(f, "  %-21s %-8s %-5s", status__jstr(q, "name"), status__jstr(q, "type"),
                status__jstr(q, "class"));
        if (json_is_true(json_object_get(q, "missing"))) {
            fprintf(f, "  MISSING (ledgerctl topology apply)\n");
            continue;
        }
        cell_num(f, q, "ready", 7, false);
        cell_num(f, q, "unacked", 7, false);
        cell_num(f, q, "consumers", 4, false);
        cell_num(f, q, "publish_rate", 7, true);
        cell_num(f, q, "deliver_rate", 7, true);
        double age;
        char a[24] = "n/a";
        if (status__jnum(q, "oldest_age_s", &age))
            fmt_age(age, a, sizeof a);
        else if (strcmp(status__jstr(q, "oldest_age_note"), "empty") == 0)
            snprintf(a, sizeof a, "-");
        fprintf(f, " %7s\n", a);
    }

    fprintf(f, "DEAD LETTERS (by reason; a queue of over %d is not read)\n", STATUS_SCAN_MAX);
    json_array_foreach(json_object_get(d, "dead_letters"), i, q)
    {
        long long depth = (long long)json_integer_value(json_object_get(q, "depth"));
        fprintf(f, "  %-21s %7lld", status__jstr(q, "queue"), depth);
        const json_t *r = json_object_get(q, "reasons");
        if (depth && !r)
            fprintf(f, "  reasons unknown: %.60s", status__jstr(q, "error"));
        const char *reason;
        json_t *v;
        int k = 0;
        json_object_foreach((json_t *)r, reason, v)
        {
            fprintf(f, "%s%s %lld", k++ ? ", " : "  ", reason, (long long)json_integer_value(v));
        }
        if (json_is_true(json_object_get(q, "truncated")))
            fprintf(f, "  (reasons not read: `ledgerctl dlq list %s --limit N`)",
                    status__jstr(q, "queue"));
        fputc('\n', f);
    }

    const json_t *ob = json_object_get(d, "outbox");
    if (!ob) {
        fprintf(f, "OUTBOX  unknown: PostgreSQL down or not migrated\n");
    } else {
        fprintf(f, "OUTBOX (events committed, not yet confirmed by the broker)  %lld",
                (long long)json_integer_value(json_object_get(ob, "pending")));
        json_array_foreach(json_object_get(ob, "stages"), i, q)
        {
            char a[24];
            fmt_age(json_number_value(json_object_get(q, "oldest_age_s")), a, sizeof a);
            fprintf(f, "%s%s %lld (oldest %s)", i ? ", " : ": ", status__jstr(q, "stage"),
                    (long long)json_integer_value(json_object_get(q, "pending")), a);
        }
        fputc('\n', f);
    }

    const json_t *rt = json_object_get(d, "retention");
    if (rt && !json_is_null(rt)) {
        char a[24], w[24];
        fmt_age(json_number_value(json_object_get(rt, "partitions_ahead_s")), a, sizeof a);
        fmt_age((double)json_integer_value(json_object_get(rt, "window_s")), w, sizeof w);
        const char *since = status__jstr(rt, "kept_since");
        fprintf(f, "BOOKKEEPING  window %s, kept since %s, %lld partitions, ahead %s", w,
                strcmp(since, "-infinity") == 0 ? "the beginning" : since,
                (long long)json_integer_value(json_object_get(rt, "partitions")), a);
        double od = json_number_value(json_object_get(rt, "overdue_s"));
        if (od > 0) {
            char o[24];
            fmt_age(od, o, sizeof o);
            fprintf(f, ", oldest %s past the window", o);
        }
        fputc('\n', f);
    }

    const json_t *st = json_object_get(d, "settlement");
    if (!st) {
        fprintf(f, "SETTLEMENT  unknown: PostgreSQL down or not migrated\n");
    } else {
        fprintf(f, "SETTLEMENT  held %lld, overdue %lld\n",
                (long long)json_integer_value(json_object_get(st, "held_count")),
                (long long)json_integer_value(json_object_get(st, "overdue_count")));
        json_array_foreach(json_object_get(st, "held"), i, q)
        {
            if (i >= STATUS_SHOW_BATCHES)
                break;
            fprintf(f, "  held     %s  %s %s  %.60s\n", status__jstr(q, "id"),
                    status__jstr(q, "payee"), status__jstr(q, "currency"),
                    status__jstr(q, "close_error"));
        }
        json_array_foreach(json_object_get(st, "overdue"), i, q)
        {
            if (i >= STATUS_SHOW_BATCHES)
                break;
            char a[24];
            fmt_age(json_number_value(json_object_get(q, "window_ended_s_ago")), a, sizeof a);
            fprintf(f, "  overdue  %s  %s %s  window ended %s ago\n", status__jstr(q, "id"),
                    status__jstr(q, "payee"), status__jstr(q, "currency"), a);
        }
    }

    const json_t *ws = json_object_get(d, "workers");
    if (!ws) {
        fprintf(f, "WORKERS  unknown: Redis down (consumers below come from RabbitMQ)\n");
    } else {
        fprintf(f, "WORKERS (Redis registry)  %zu\n", json_array_size(ws));
        if (json_array_size(ws))
            fprintf(f, "  %-24s %-18s %-5s %7s %7s  %s\n", "INSTANCE", "WORKER", "READY", "RATE/s",
                    "P99 ms", "LAST ERROR");
        json_array_foreach(ws, i, q)
        {
            bool ready = json_is_true(json_object_get(q, "ready"));
            bool draining = json_is_true(json_object_get(q, "draining"));
            char p99[16] = "-";
            double v;
            if (status__jnum(q, "p99_ms", &v))
                snprintf(p99, sizeof p99, "%.0f", v);
            const char *e = status__jstr(q, "last_error");
            fprintf(f, "  %-24.24s %-18.18s %-5s", status__jstr(q, "instance"),
                    status__jstr(q, "worker"),
                    draining ? "drain"
                    : ready  ? "yes"
                             : "NO");
            cell_num(f, q, "rate", 7, true);
            fprintf(f, " %7s  %.40s%s%s\n", p99, e[0] ? e : "-",
                    !ready && !draining ? "  why: " : "",
                    !ready && !draining ? status__jstr(q, "why") : "");
        }
    }
    const json_t *cs = json_object_get(d, "consumers");
    if (cs) {
        fprintf(f, "CONSUMERS (RabbitMQ)  %zu\n", json_array_size(cs));
        json_array_foreach(cs, i, q)
        {
            const char *reg = status__jstr(q, "registered_as");
            fprintf(f, "  %-21s %-40.40s %-21s %s\n", status__jstr(q, "queue"),
                    status__jstr(q, "connection"), status__jstr(q, "peer"),
                    reg[0] ? "registered"
                    : ws   ? "NOT in the registry"
                           : "");
        }
    }
}

void status_print_problems(const status_t *s)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(s->doc, "problems"), i, p)
        ctl_fail(status__jstr(p, "fix"), "%s", status__jstr(p, "problem"));
}

void status_draw_json(const status_t *s, FILE *f)
{
    char *txt = json_dumps(s->doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (txt) {
        fputs(txt, f);
        fputc('\n', f);
    }
    free(txt);
}
