/*
 * bench_broker.c - `ledgerctl bench --broker`: the broker alone, the
 * baseline a run of the workers is compared to (see bench.h).
 *
 * The same kind of traffic the pipeline puts on RabbitMQ per stage:
 * persistent messages, published with confirms (a window of unconfirmed
 * ones, like the workers' batches) to a quorum queue, consumed with manual
 * acks on another connection at the same time. The queue is the bench's
 * own ("ledgerline.bench.broker.<pid>"), deleted at the end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "xmalloc.h"

typedef struct consumer {
    mq_t *m;
    const char *queue;
    int64_t want;
    _Atomic int64_t got;
    _Atomic int64_t first_us, last_us;
    atomic_bool stop;
    atomic_int failed;
    char errstr[256];
} consumer_t;

static void *consume_main(void *arg)
{
    consumer_t *c = arg;
    uint64_t last = 0;
    int unacked = 0;
    while (!atomic_load(&c->stop) && atomic_load(&c->got) < c->want) {
        mq_delivery_t d;
        int rc = mq_next(c->m, &d, 100);
        if (rc == LL_OK) {
            int64_t now = bench_now_us();
            if (atomic_load(&c->got) == 0)
                atomic_store(&c->first_us, now);
            atomic_store(&c->last_us, now);
            atomic_fetch_add(&c->got, 1);
            last = d.tag;
            mq_delivery_clear(&d);
            if (++unacked < 256 && atomic_load(&c->got) < c->want)
                continue;
        } else if (rc != LL_ETIMEOUT) {
            snprintf(c->errstr, sizeof c->errstr, "%s", mq_errstr(c->m));
            atomic_store(&c->failed, 1);
            return NULL;
        }
        if (unacked > 0 && mq_ack(c->m, last, true) != LL_OK) {
            snprintf(c->errstr, sizeof c->errstr, "%s", mq_errstr(c->m));
            atomic_store(&c->failed, 1);
            return NULL;
        }
        unacked = 0;
    }
    return NULL;
}

int bench_broker(ctl_t *c, int64_t count, int64_t size, int window)
{
    mq_t *p = ctl_mq(c);
    if (!p)
        return 1;
    consumer_t con = {.want = count};
    char queue[96];
    snprintf(queue, sizeof queue, "ledgerline.bench.broker.%d", (int)getpid());
    con.queue = queue;
    amqp_table_entry_t qt = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}};
    amqp_table_t args = {.num_entries = 1, .entries = &qt};
    if (mq_declare_queue(p, queue, &args) != LL_OK)
        return ctl_fail("check the broker's permissions (configure on ledgerline.bench.*)",
                        "cannot declare the baseline queue %s: %s", queue, mq_errstr(p));
    con.m = ctl_mq_new(c, "bench broker consumer");
    pthread_t th;
    int rc = 1;
    if (!con.m)
        goto out;
    if (mq_consume(con.m, queue, 1000) != LL_OK) {
        ctl_fail(NULL, "cannot consume %s: %s", queue, mq_errstr(con.m));
        goto out;
    }
    if (pthread_create(&th, NULL, consume_main, &con) != 0) {
        ctl_fail(NULL, "cannot start the consumer thread");
        goto out;
    }
    char *body = ll_xmalloc((size_t)size);
    memset(body, 'x', (size_t)size);
    mq_props_t props = {.type = "bench"};
    int64_t t0 = bench_now_us(), sent = 0, confirmed = 0;
    while (confirmed < count) {
        int prc = LL_OK;
        while (prc == LL_OK && sent < count && sent - confirmed < window) {
            prc = mq_publish(p, "", queue, body, (size_t)size, &props, false);
            sent += prc == LL_OK;
        }
        if (prc == LL_OK)
            prc = mq_confirm_wait(p, (int)c->cfg.amqp.confirm_timeout_ms, NULL);
        if (prc != LL_OK) {
            ctl_fail("look at the broker's log and alarms", "publishing failed: %s", mq_errstr(p));
            break;
        }
        confirmed = sent;
    }
    int64_t t_pub = bench_now_us();
    free(body);
    /* the consumer has a deadline too: a broker that lost messages must
     * not hang the baseline */
    int64_t deadline = bench_now_us() + 60 * 1000000LL;
    while (confirmed == count && atomic_load(&con.got) < count && !atomic_load(&con.failed) &&
           bench_now_us() < deadline)
        usleep(10000);
    atomic_store(&con.stop, true);
    pthread_join(th, NULL);
    int64_t got = atomic_load(&con.got);
    if (confirmed == count && got < count)
        ctl_fail("look at the broker's log", "only %" PRId64 " of %" PRId64 " consumed: %s", got,
                 count, atomic_load(&con.failed) ? con.errstr : "timed out after 60 s");
    if (confirmed == count && got == count) {
        double pub_s = (double)(t_pub - t0) / 1e6;
        double all_s = (double)(atomic_load(&con.last_us) - t0) / 1e6;
        double con_s = (double)(atomic_load(&con.last_us) - atomic_load(&con.first_us)) / 1e6;
        double pub_rate = pub_s > 0 ? (double)count / pub_s : 0;
        double con_rate = con_s > 0 ? (double)count / con_s : 0;
        double all_rate = all_s > 0 ? (double)count / all_s : 0;
        if (c->json)
            ctl_json_print(json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:f, s:f, s:f}", "mode",
                                     "broker", "queue", queue, "queue_type", "quorum", "count",
                                     (json_int_t)count, "size", (json_int_t)size, "window", window,
                                     "published_per_s", pub_rate, "consumed_per_s", con_rate,
                                     "through_per_s", all_rate));
        else
            printf("broker baseline: %" PRId64 " persistent messages of %" PRId64
                   " bytes through one quorum queue (confirm window %d)\n"
                   "  published with confirms  %8.0f msgs/s\n"
                   "  consumed with acks       %8.0f msgs/s\n"
                   "  through (publish to ack) %8.0f msgs/s\n",
                   count, size, window, pub_rate, con_rate, all_rate);
        rc = 0;
    }
out:
    if (mq_delete_queue(p, queue) != LL_OK)
        fprintf(stderr, "ledgerctl: warning: could not delete %s: %s\n", queue, mq_errstr(p));
    mq_free(con.m);
    return rc;
}
