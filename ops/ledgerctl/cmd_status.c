/*
 * cmd_status.c - `ledgerctl status`: one screen an operator reads at 3 a.m.
 *
 * Each round asks PostgreSQL, Redis, RabbitMQ over AMQP and its management
 * API what the ledger needs to run, and what needs a human (status.h says
 * what a round gathers; status_gather.c how). The round is drawn as text,
 * or printed as one JSON document with --json; --watch repeats it every
 * --interval seconds until SIGINT or SIGTERM. The problems go to stderr
 * ("ledgerctl: ..." and "  fix: ..."), and the exit status is 1 when there
 * is one (under --watch: in the last round).
 *
 * --queue NAME keeps the original behaviour for scripts: the queue's ready
 * count from a passive declare, nothing else (no management API needed).
 *
 * Public API: cmd_status.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "status.h"
#include "topo.h"

static volatile sig_atomic_t stop_watch;

static void on_sigint(int sig)
{
    (void)sig;
    stop_watch = 1;
}

/* --queue NAME: that queue's ready count from a passive declare (scripts). */
static int one_queue(ctl_t *c, const ctl_cmd_t *cmd, const char *only)
{
    char err[512];
    topo_t *t;
    if (topo_load_builtin(&t, err, sizeof err) != LL_OK)
        return ctl_fail("rebuild from a valid schemas/topology.yaml", "%s", err);
    const topo_queue_t *q = topo_find_queue(t, only);
    if (!q) {
        topo_free(t);
        return ctl_usage_error(cmd, "'%s' is not a queue of the topology", only);
    }
    mq_t *m = ctl_mq(c);
    int rc = 0;
    uint32_t msgs = 0, consumers = 0;
    if (!m)
        rc = 1;
    else if (mq_queue_stats(m, q->name, &msgs, &consumers) != LL_OK)
        rc = ctl_fail("declare the topology: ledgerctl topology apply", "queue '%s': %s", q->name,
                      mq_errstr(m));
    else if (c->json)
        ctl_json_print(json_pack("{s:[{s:s, s:s, s:I, s:I}]}", "queues", "name", q->name, "class",
                                 topo_class_name(q->cls), "messages", (json_int_t)msgs, "consumers",
                                 (json_int_t)consumers));
    else
        printf("%u\n", msgs);
    topo_free(t);
    return rc;
}

/* Sleeps `seconds`, in short steps so SIGINT ends it at once. */
static void nap(double seconds)
{
    int64_t end = clock_mono_ms() + (int64_t)(seconds * 1000);
    while (!stop_watch && clock_mono_ms() < end) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int cmd_status(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("status");
    static const struct option opts[] = {{"queue", required_argument, NULL, 'q'},
                                         {"watch", no_argument, NULL, 'w'},
                                         {"interval", required_argument, NULL, 'i'},
                                         {"outbox-age", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    const char *only = NULL;
    bool watch = false;
    double interval = 2, outbox_age = 60;
    int ch;
    char *end;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        switch (ch) {
        case 'q':
            only = optarg;
            break;
        case 'w':
            watch = true;
            break;
        case 'i':
            interval = strtod(optarg, &end);
            if (*end || end == optarg || !(interval >= 0.5 && interval <= 3600))
                return ctl_usage_error(cmd, "--interval takes seconds, 0.5 to 3600: '%s'", optarg);
            break;
        case 'o':
            outbox_age = strtod(optarg, &end);
            if (*end || end == optarg || !(outbox_age >= 0 && outbox_age <= 86400 * 30))
                return ctl_usage_error(cmd, "--outbox-age takes seconds (0 to 2592000): '%s'",
                                       optarg);
            break;
        default:
            return ch == 'h' ? 0 : 2;
        }
    }
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (only) {
        if (watch)
            return ctl_usage_error(cmd, "--queue prints one number: it does not --watch");
        return one_queue(c, cmd, only);
    }

    status_t s;
    if (status_init(&s, c, outbox_age) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN); /* a dead server's socket is an error, not a signal */
    if (watch) {
        struct sigaction sa = {.sa_handler = on_sigint};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    bool tty = isatty(STDOUT_FILENO);
    int rc = 0;
    do {
        rc = status_round(&s);
        if (c->json) {
            status_draw_json(&s, stdout);
        } else {
            char *screen = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&screen, &len);
            if (!f)
                abort();
            status_draw(&s, f);
            fclose(f);
            if (watch && tty)
                fputs("\033[H\033[2J", stdout);
            else if (watch)
                fputc('\n', stdout);
            fwrite(screen, 1, len, stdout);
            free(screen);
        }
        fflush(stdout);
        status_print_problems(&s);
        fflush(stderr);
        json_decref(s.doc);
        s.doc = NULL;
        if (watch)
            nap(interval);
    } while (watch && !stop_watch);
    status_free(&s);
    return rc;
}
