/*
 * cmd_dlq.c - `ledgerctl dlq list|show|replay|purge QUEUE`: the dead
 * letters of a work queue (its `<queue>.dead`), read and taken through
 * dlq.h (one pass over the queue, one letter in memory at a time; output
 * is streamed, --json included, so a queue of any depth costs the same).
 *
 * Selection, shared by list, replay and purge: --reason, --payment-id,
 * --position, --older-than / --newer-than DUR (the letter's age: now minus
 * its parked time; a letter whose time is unknown matches neither), and
 * --limit N (the first N letters that match). replay and purge act on
 * nothing without a filter unless --all says "every letter".
 *
 * replay republishes each selected letter to its original route with
 * publisher confirms and only then removes it, so a crash in between
 * leaves it in the dead queue too: replayed twice, which is harmless
 * because every stage deduplicates by payment_id.
 *
 * Public API: cmd_dlq_list, cmd_dlq_show, cmd_dlq_replay, cmd_dlq_purge.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "dlq.h"

/* --- selection ----------------------------------------------------------- */

typedef struct filter {
    const char *reason;
    const char *payment_id;
    size_t position;            /* 0: any */
    int64_t older_ms, newer_ms; /* ages; -1: no bound */
    size_t limit;               /* 0: no limit */
    bool all;
    int64_t now_ms;
    size_t matched; /* letters selected so far */
} filter_t;

enum {
    OPT_REASON = 0x200,
    OPT_PAYMENT_ID,
    OPT_POSITION,
    OPT_OLDER,
    OPT_NEWER,
    OPT_LIMIT,
    OPT_ALL,
    OPT_DRY_RUN,
    OPT_YES,
};

#define FILTER_OPTS                                                                                \
    {"reason", required_argument, NULL, OPT_REASON},                                               \
        {"payment-id", required_argument, NULL, OPT_PAYMENT_ID},                                   \
        {"position", required_argument, NULL, OPT_POSITION},                                       \
        {"older-than", required_argument, NULL, OPT_OLDER},                                        \
        {"newer-than", required_argument, NULL, OPT_NEWER},                                        \
    {                                                                                              \
        "limit", required_argument, NULL, OPT_LIMIT                                                \
    }

/* A usage error that says how to fix it: exit 2. */
static int usage_fail(const char *fix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_fail(const char *fix, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctl_fail(fix, "%s", buf);
    return 2;
}

/* "30s", "5m", "2h", "1d" as ms; -1 when not a duration. */
static int64_t parse_dur(const char *s)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || n < 0 || !*end || end[1] || n > 100LL * 365 * 86400)
        return -1;
    switch (*end) {
    case 's':
        return n * 1000;
    case 'm':
        return n * 60 * 1000;
    case 'h':
        return n * 3600 * 1000;
    case 'd':
        return n * 86400 * 1000;
    default:
        return -1;
    }
}

static bool parse_count(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || end == s || *end || n == 0 || !isdigit((unsigned char)s[0]))
        return false;
    *out = (size_t)n;
    return true;
}

/* Handles a filter option; 0 when ch is not one, 2 after a usage error,
 * 1 when handled. */
static int filter_opt(filter_t *f, int ch, const char *arg)
{
    switch (ch) {
    case OPT_REASON:
        f->reason = arg;
        return 1;
    case OPT_PAYMENT_ID:
        if (!ctl_valid_id(arg))
            return usage_fail("give an id of 1-64 chars of [A-Za-z0-9_.:-]",
                              "--payment-id '%s' is not a valid id", arg);
        f->payment_id = arg;
        return 1;
    case OPT_POSITION:
        if (!parse_count(arg, &f->position))
            return usage_fail("give a position >= 1, as `ledgerctl dlq list` shows it",
                              "--position '%s' is not a position", arg);
        return 1;
    case OPT_OLDER:
    case OPT_NEWER: {
        int64_t ms = parse_dur(arg);
        if (ms < 0)
            return usage_fail("give a number with s, m, h or d: 30s, 5m, 2h, 1d",
                              "--%s '%s' is not a duration",
                              ch == OPT_OLDER ? "older-than" : "newer-than", arg);
        if (ch == OPT_OLDER)
            f->older_ms = ms;
        else
            f->newer_ms = ms;
        return 1;
    }
    case OPT_LIMIT:
        if (!parse_count(arg, &f->limit))
            return usage_fail("give a whole number >= 1", "--limit '%s' is not a count", arg);
        return 1;
    default:
        return 0;
    }
}

static bool filter_any(const filter_t *f)
{
    return f->reason || f->payment_id || f->position || f->older_ms >= 0 || f->newer_ms >= 0 ||
           f->limit;
}

static void filter_init(filter_t *f)
{
    memset(f, 0, sizeof *f);
    f->older_ms = f->newer_ms = -1;
    f->now_ms = clock_now_ms();
}

/* Parses the options of a command that takes only filters (opts): -1 to
 * go on, or the exit status (0 after --help, 2 after a usage error). */
static int read_filters(ctl_t *c, const ctl_cmd_t *cmd, int argc, char **argv,
                        const struct option *opts, filter_t *f)
{
    filter_init(f);
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        int r = filter_opt(f, ch, optarg);
        if (r == 2)
            return 2;
        if (r == 0)
            return ch == 'h' ? 0 : 2;
    }
    return -1;
}

/* Whether l is selected (counts it). Limit reached: false. */
static bool filter_match(filter_t *f, const dlq_letter_t *l)
{
    if (f->limit && f->matched >= f->limit)
        return false;
    if (f->position && l->position != f->position)
        return false;
    if (f->reason && strcmp(f->reason, l->reason) != 0)
        return false;
    if (f->payment_id && strcmp(f->payment_id, l->payment_id) != 0)
        return false;
    if (f->older_ms >= 0 && (!l->parked_ms || f->now_ms - l->parked_ms < f->older_ms))
        return false;
    if (f->newer_ms >= 0 && (!l->parked_ms || f->now_ms - l->parked_ms >= f->newer_ms))
        return false;
    f->matched++;
    return true;
}

/* No letter after this one can match: the pass may stop. */
static bool filter_done(const filter_t *f, size_t position)
{
    return (f->limit && f->matched >= f->limit) || (f->position && position >= f->position);
}

/* --- the QUEUE argument and the connection -------------------------------- */

typedef struct target {
    char dead[DLQ_NAME_MAX];
    char work[DLQ_NAME_MAX];
} target_t;

/* Reads QUEUE (the one positional argument left at optind, or two for
 * show: *extra gets the second). 0 or the exit code of an error. */
static int target_parse(const ctl_cmd_t *cmd, int argc, char **argv, target_t *t,
                        const char **extra)
{
    if (optind >= argc)
        return ctl_usage_error(cmd, "QUEUE is missing (one of %s)", dlq_valid_queues());
    const char *name = argv[optind++];
    if (extra)
        *extra = optind < argc ? argv[optind++] : NULL;
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    char err[512];
    int rc = dlq_resolve(name, t->dead, t->work, err, sizeof err);
    if (rc == LL_ENOTFOUND)
        return usage_fail("name a work queue or its dead queue", "%s", err);
    if (rc != LL_OK)
        return ctl_fail("rebuild from a valid schemas/topology.yaml", "%s", err);
    return 0;
}

/* Prints the failure of a pass with the fix its code calls for. */
static int pass_error(int rc, const char *err)
{
    if (rc == LL_ENOTFOUND)
        return ctl_fail("declare the topology: ledgerctl topology apply", "%s", err);
    return ctl_fail("check that RabbitMQ answers (ledgerctl status) and run the command again; "
                    "letters not yet removed are back in the dead queue",
                    "%s", err);
}

/* --- output -------------------------------------------------------------- */

/* A header's text for JSON: "" as null when `null_empty`. */
static json_t *jtext(const char *s, bool null_empty)
{
    return null_empty && !s[0] ? json_null() : mq_bytes_json(s, strlen(s));
}

static json_t *letter_json(const dlq_letter_t *l)
{
    json_t *o = json_object();
    json_object_set_new(o, "position", json_integer((json_int_t)l->position));
    json_object_set_new(o, "kind", json_string(l->kind == DLQ_PARKED ? "parked" : "broker"));
    json_object_set_new(o, "reason", jtext(l->reason, false));
    json_object_set_new(o, "payment_id", jtext(l->payment_id, true));
    json_object_set_new(o, "detail", jtext(l->detail, false));
    json_object_set_new(o, "queue", jtext(l->queue, false));
    json_object_set_new(o, "worker", jtext(l->worker, true));
    json_object_set_new(o, "parked_at", jtext(l->parked_at, true));
    json_object_set_new(o, "message_id", jtext(l->message_id, true));
    json_object_set_new(o, "exchange", jtext(l->exchange, false));
    json_object_set_new(o, "routing_key", jtext(l->routing_key, false));
    json_object_set_new(o, "route_from", json_string(l->route_from));
    json_object_set_new(o, "route_known", json_boolean(l->route_from[0] != '\0'));
    json_object_set_new(o, "bytes", json_integer((json_int_t)l->len));
    return o;
}

/* Streams a JSON document: {"queue":..,"letters":[ ...letters... ], ...}. */
static void json_open(const target_t *t)
{
    json_t *head = json_pack("{s:s, s:s}", "queue", t->dead, "work_queue", t->work);
    char *q = json_dumps(head, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(head);
    /* q is {"queue":"..","work_queue":".."}: reopen it for the array */
    if (q) {
        q[strlen(q) - 1] = '\0';
        printf("%s,\"letters\":[", q);
        free(q);
    }
}

static void json_item(json_t *j, bool *first)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s)
        return;
    printf("%s%s", *first ? "" : ",", s);
    *first = false;
    free(s);
}

static void json_close(json_t *tail)
{
    char *s = json_dumps(tail, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(tail);
    /* tail is {"k":v,...}: its members follow the array */
    printf("]%s%s\n", s && strlen(s) > 2 ? "," : "}", s && strlen(s) > 2 ? s + 1 : "");
    free(s);
}

static void print_header_row(void)
{
    printf("%-5s %-20s %-24s %-20s %-24s %s\n", "POS", "REASON", "PAYMENT_ID", "WORKER",
           "FIRST_SEEN", "DETAIL");
}

/* s for a terminal: control characters as '?' (headers come from outside).
 * Returns buf. */
static const char *clean(const char *s, char *buf, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

static void print_row(const dlq_letter_t *l)
{
    char r[DLQ_NAME_MAX], w[DLQ_NAME_MAX], at[64], d[1024];
    const char *worker = l->worker[0]            ? clean(l->worker, w, sizeof w)
                         : l->kind == DLQ_BROKER ? "(broker)"
                                                 : "-";
    printf("%-5zu %-20s %-24s %-20s %-24s %s\n", l->position, clean(l->reason, r, sizeof r),
           l->payment_id[0] ? l->payment_id : "-", worker,
           l->parked_at[0] ? clean(l->parked_at, at, sizeof at) : "-",
           l->detail[0] ? clean(l->detail, d, sizeof d) : "-");
}

/* --- list ---------------------------------------------------------------- */

typedef struct list_ctx {
    filter_t *f;
    bool json, first;
} list_ctx_t;

static int list_visit(void *ud, const dlq_letter_t *l)
{
    list_ctx_t *x = ud;
    if (filter_match(x->f, l)) {
        if (x->json)
            json_item(letter_json(l), &x->first);
        else
            print_row(l);
    }
    return filter_done(x->f, l->position) ? 1 : 0;
}

int cmd_dlq_list(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("dlq list");
    static const struct option opts[] = {FILTER_OPTS, {NULL, 0, NULL, 0}};
    filter_t f;
    int rf = read_filters(c, cmd, argc, argv, opts, &f);
    if (rf >= 0)
        return rf;
    target_t t;
    int rc = target_parse(cmd, argc, argv, &t, NULL);
    if (rc)
        return rc;
    mq_t *m = ctl_mq(c);
    if (!m)
        return 1;
    list_ctx_t x = {.f = &f, .json = c->json, .first = true};
    if (c->json)
        json_open(&t);
    else
        print_header_row();
    char err[512];
    rc = dlq_scan(m, t.dead, 0, list_visit, &x, err, sizeof err);
    if (c->json)
        json_close(
            json_pack("{s:I, s:b}", "shown", (json_int_t)f.matched, "complete", rc == LL_OK));
    else if (rc == LL_OK && !c->json)
        fprintf(stderr, "%zu dead letter(s) of %s shown\n", f.matched, t.dead);
    fflush(stdout);
    return rc == LL_OK ? 0 : pass_error(rc, err);
}

/* --- show ---------------------------------------------------------------- */

static json_t *props_json(const mq_delivery_t *d)
{
    const amqp_basic_properties_t *p = &d->env.message.properties;
    json_t *o = json_object();
    struct {
        amqp_flags_t flag;
        const char *name;
        const amqp_bytes_t *b;
    } s[] = {{AMQP_BASIC_MESSAGE_ID_FLAG, "message_id", &p->message_id},
             {AMQP_BASIC_TYPE_FLAG, "type", &p->type},
             {AMQP_BASIC_CONTENT_TYPE_FLAG, "content_type", &p->content_type},
             {AMQP_BASIC_CORRELATION_ID_FLAG, "correlation_id", &p->correlation_id},
             {AMQP_BASIC_APP_ID_FLAG, "app_id", &p->app_id}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (p->_flags & s[i].flag)
            json_object_set_new(o, s[i].name, mq_bytes_json(s[i].b->bytes, s[i].b->len));
    if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)
        json_object_set_new(o, "timestamp", json_integer((json_int_t)p->timestamp));
    if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
        json_object_set_new(o, "delivery_mode", json_integer(p->delivery_mode));
    return o;
}

typedef struct show_ctx {
    filter_t *f;
    bool json, shown;
    size_t others;  /* more letters of the same payment_id */
    char also[256]; /* their positions */
    int rc;         /* 0 */
} show_ctx_t;

static void show_letter(const dlq_letter_t *l, bool json)
{
    json_t *props = props_json(l->d);
    json_t *headers = mq_table_json(mq_delivery_headers(l->d));
    if (json) {
        json_t *j = letter_json(l);
        json_object_set_new(j, "properties", props);
        json_object_set_new(j, "headers", headers);
        json_object_set_new(j, "body", mq_bytes_json(l->body, l->len));
        ctl_json_print(j);
        return;
    }
    printf("position     %zu\n", l->position);
    printf("kind         %s\n",
           l->kind == DLQ_PARKED ? "parked by a worker" : "dead-lettered by the broker");
    printf("reason       %s\n", l->reason);
    printf("payment_id   %s\n", l->payment_id[0] ? l->payment_id : "-");
    printf("detail       %s\n", l->detail[0] ? l->detail : "-");
    printf("queue        %s\n", l->queue);
    printf("worker       %s\n", l->worker[0] ? l->worker : "-");
    printf("first seen   %s\n", l->parked_at[0] ? l->parked_at : "-");
    if (l->route_from[0])
        printf("route        exchange '%s', routing key '%s' (from the %s)\n", l->exchange,
               l->routing_key,
               strcmp(l->route_from, "headers") == 0 ? "x-ledgerline-* headers" : l->route_from);
    else
        printf("route        unknown\n");
    printf("properties:\n");
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v)
    {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char kb[256], vb[2048];
        printf("  %s: %s\n", clean(k, kb, sizeof kb),
               clean(json_is_string(v) ? json_string_value(v)
                     : s               ? s
                                       : "?",
                     vb, sizeof vb));
        free(s);
    }
    printf("headers:\n");
    json_object_foreach(headers, k, v)
    {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char kb[256], vb[2048];
        printf("  %s: %s\n", clean(k, kb, sizeof kb),
               clean(json_is_string(v) ? json_string_value(v)
                     : s               ? s
                                       : "?",
                     vb, sizeof vb));
        free(s);
    }
    printf("body (%zu bytes):\n", l->len);
    fwrite(l->body, 1, l->len, stdout);
    if (l->len == 0 || l->body[l->len - 1] != '\n')
        putchar('\n');
    json_decref(props);
    json_decref(headers);
}

static int show_visit(void *ud, const dlq_letter_t *l)
{
    show_ctx_t *x = ud;
    if (!filter_match(x->f, l))
        return x->f->position && l->position >= x->f->position ? 1 : 0;
    if (!x->shown) {
        show_letter(l, x->json);
        x->shown = true;
        return x->f->position ? 1 : 0; /* by payment_id: look for more */
    }
    size_t n = strlen(x->also);
    if (n + 24 < sizeof x->also)
        snprintf(x->also + n, sizeof x->also - n, "%s%zu", n ? ", " : "", l->position);
    x->others++;
    return 0;
}

int cmd_dlq_show(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("dlq show");
    static const struct option opts[] = {{"payment-id", required_argument, NULL, OPT_PAYMENT_ID},
                                         {NULL, 0, NULL, 0}};
    filter_t f;
    int rf = read_filters(c, cmd, argc, argv, opts, &f);
    if (rf >= 0)
        return rf;
    target_t t;
    const char *pos = NULL;
    int rc = target_parse(cmd, argc, argv, &t, &pos);
    if (rc)
        return rc;
    if (pos && f.payment_id)
        return ctl_usage_error(cmd, "give POSITION or --payment-id, not both");
    if (!pos && !f.payment_id)
        return ctl_usage_error(cmd,
                               "which letter? give its POSITION (ledgerctl dlq list %s) "
                               "or --payment-id ID",
                               t.work);
    if (pos && filter_opt(&f, OPT_POSITION, pos) == 2)
        return 2;
    mq_t *m = ctl_mq(c);
    if (!m)
        return 1;
    show_ctx_t x = {.f = &f, .json = c->json};
    char err[512];
    rc = dlq_scan(m, t.dead, 0, show_visit, &x, err, sizeof err);
    fflush(stdout);
    if (rc != LL_OK)
        return pass_error(rc, err);
    if (!x.shown) {
        if (f.position)
            return ctl_fail("list the letters and their positions: ledgerctl dlq list QUEUE",
                            "%s has no letter at position %zu", t.dead, f.position);
        return ctl_fail("list the letters: ledgerctl dlq list QUEUE",
                        "%s has no letter of payment_id '%s'", t.dead, f.payment_id);
    }
    if (x.others)
        fprintf(stderr, "%zu more letter(s) of payment_id '%s' at position(s) %s\n", x.others,
                f.payment_id, x.also);
    return 0;
}

/* --- replay and purge ---------------------------------------------------- */

typedef struct take_ctx {
    filter_t *f;
    bool json, first, dry_run, replay;
    size_t no_route; /* dry run: selected letters without a route */
} take_ctx_t;

static void take_report(take_ctx_t *x, const dlq_letter_t *l)
{
    if (x->json) {
        json_item(letter_json(l), &x->first);
        return;
    }
    const char *verb = x->replay ? (x->dry_run ? "would replay" : "replaying")
                                 : (x->dry_run ? "would delete" : "deleting");
    if (x->replay && !l->route_from[0]) {
        printf("cannot replay %zu (%s, payment_id %s): no route known\n", l->position, l->reason,
               l->payment_id[0] ? l->payment_id : "-");
        return;
    }
    printf("%s %zu (%s, payment_id %s)", verb, l->position, l->reason,
           l->payment_id[0] ? l->payment_id : "-");
    if (x->replay)
        printf(" to exchange '%s' key '%s'", l->exchange, l->routing_key);
    putchar('\n');
}

static int take_visit(void *ud, const dlq_letter_t *l)
{
    take_ctx_t *x = ud;
    if (!filter_match(x->f, l))
        return 0;
    take_report(x, l);
    if (x->replay && !l->route_from[0])
        x->no_route++;
    return x->dry_run ? 0 : 1;
}

/* The options of replay and purge: filters plus --all, --dry-run, --yes. */
static int take_opts(ctl_t *c, const ctl_cmd_t *cmd, int argc, char **argv, filter_t *f,
                     bool *dry_run, bool *yes, target_t *t)
{
    static const struct option opts[] = {FILTER_OPTS,
                                         {"all", no_argument, NULL, OPT_ALL},
                                         {"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                         {"yes", no_argument, NULL, OPT_YES},
                                         {NULL, 0, NULL, 0}};
    filter_init(f);
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        int r = filter_opt(f, ch, optarg);
        if (r == 2)
            return 2;
        if (r == 1)
            continue;
        if (ch == OPT_ALL)
            f->all = true;
        else if (ch == OPT_DRY_RUN && dry_run)
            *dry_run = true;
        else if (ch == OPT_YES && yes)
            *yes = true;
        else if (ch == 'h')
            return -1;
        else if (ch == OPT_DRY_RUN || ch == OPT_YES)
            return ctl_usage_error(cmd, "option '%s' does not apply here", argv[optind - 1]);
        else
            return 2;
    }
    int rc = target_parse(cmd, argc, argv, t, NULL);
    if (rc)
        return rc;
    if (!filter_any(f) && !f->all)
        return usage_fail("select letters with --reason, --payment-id, --position, --older-than, "
                          "--newer-than or --limit, or add --all to take every letter",
                          "no letters selected: without a filter, --all is required");
    return 0;
}

/* Runs the take (or the dry run) and prints the summary. */
static int take_run(ctl_t *c, const target_t *t, filter_t *f, bool replay, bool dry_run)
{
    mq_t *m = ctl_mq(c);
    if (!m)
        return 1;
    mq_t *pub = NULL;
    if (replay && !dry_run && !(pub = ctl_mq_new(c, "replay")))
        return 1;
    take_ctx_t x = {.f = f, .json = c->json, .first = true, .dry_run = dry_run, .replay = replay};
    if (c->json)
        json_open(t);
    char err[512];
    dlq_take_t tk = {.pub = pub, .confirm_ms = 10000};
    int rc;
    if (dry_run) {
        rc = dlq_scan(m, t->dead, 0, take_visit, &x, err, sizeof err);
        tk.taken = f->matched;
    } else {
        rc = dlq_take(m, t->dead, &tk, take_visit, &x, err, sizeof err);
    }
    mq_free(pub);
    const char *done =
        replay ? (dry_run ? "would_replay" : "replayed") : (dry_run ? "would_delete" : "deleted");
    size_t not_taken = dry_run ? x.no_route : tk.unroutable;
    if (dry_run && replay)
        tk.taken -= x.no_route;
    if (c->json) {
        json_t *tail =
            json_pack("{s:I, s:I, s:b, s:b}", done, (json_int_t)tk.taken, "not_taken",
                      (json_int_t)not_taken, "dry_run", dry_run, "complete", rc == LL_OK);
        if (tk.refused[0])
            json_object_set_new(tail, "refused", json_string(tk.refused));
        json_close(tail);
    } else if (rc == LL_OK) {
        if (dry_run)
            printf("dry run: %zu letter(s) of %s would be %s%s; nothing changed\n", tk.taken,
                   t->dead, replay ? "replayed and removed" : "deleted",
                   x.no_route ? " (the others have no route)" : "");
        else
            printf("%zu letter(s) %s %s\n", tk.taken,
                   replay ? "replayed to their original route and removed from" : "deleted from",
                   t->dead);
    }
    fflush(stdout);
    if (rc != LL_OK)
        return pass_error(rc, err);
    if (not_taken && !dry_run)
        return ctl_fail("check that the route exists (ledgerctl topology apply); the letters "
                        "stay in the dead queue, replay them again once it does",
                        "%zu letter(s) not replayed: %s", not_taken, tk.refused);
    return 0;
}

int cmd_dlq_replay(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("dlq replay");
    filter_t f;
    target_t t;
    bool dry_run = false;
    int rc = take_opts(c, cmd, argc, argv, &f, &dry_run, NULL, &t);
    if (rc)
        return rc < 0 ? 0 : rc;
    return take_run(c, &t, &f, true, dry_run);
}

static int count_visit(void *ud, const dlq_letter_t *l)
{
    filter_t *f = ud;
    (void)filter_match(f, l);
    return filter_done(f, l->position) ? 1 : 0;
}

/* Counts what purge would delete and asks on the terminal: 0 when the
 * answer is yes, else the exit code. */
static int purge_confirm(ctl_t *c, const target_t *t, const filter_t *f)
{
    mq_t *m = ctl_mq(c);
    if (!m)
        return 1;
    filter_t count = *f;
    char err[512];
    int rc = dlq_scan(m, t->dead, 0, count_visit, &count, err, sizeof err);
    if (rc != LL_OK)
        return pass_error(rc, err);
    if (count.matched == 0) {
        fprintf(stderr, "no letter of %s is selected: nothing to delete\n", t->dead);
        return 0;
    }
    fprintf(stderr, "delete %zu dead letter(s) of %s for good? [y/N] ", count.matched, t->dead);
    fflush(stderr);
    char line[32] = "";
    if (!fgets(line, sizeof line, stdin) || (line[0] != 'y' && line[0] != 'Y'))
        return ctl_fail("answer y to delete, or narrow the selection (ledgerctl dlq list)",
                        "nothing deleted");
    return 0;
}

int cmd_dlq_purge(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("dlq purge");
    filter_t f;
    target_t t;
    bool yes = false, dry_run = false;
    int rc = take_opts(c, cmd, argc, argv, &f, &dry_run, &yes, &t);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!yes && !dry_run) {
        if (!isatty(STDIN_FILENO))
            return usage_fail("add --yes to delete without being asked",
                              "purge deletes dead letters for good and stdin is not a terminal "
                              "to ask on: --yes is required");
        rc = purge_confirm(c, &t, &f);
        if (rc)
            return rc;
    }
    return take_run(c, &t, &f, false, dry_run);
}
