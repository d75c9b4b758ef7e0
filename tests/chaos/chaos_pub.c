/*
 * chaos_pub.c - the chaos run's producer: publishes payment requests at a
 * steady rate, mixed with the abuse a real broker sees (the same request
 * again, the same payment_id with another amount, malformed bodies,
 * unsigned approvals published straight to ledgerline.events), and keeps
 * publishing through broker restarts: every message is confirmed, and what
 * was not confirmed when the connection broke is published again.
 *
 *   chaos_pub run    --journal F --run ID --count N --rate R --seed S
 *                    [--payers P] [--payees M] [--max-amount X]
 *   chaos_pub inject --journal F --run ID --seed S
 *                    [--dup K] [--chg K] [--bad K] [--forged K]
 *
 * `run` publishes N requests (ids chaos-ID-<i>) and, at random, about 3%
 * duplicates, 1% changed amounts, 1% malformed and 0.5% forged approvals
 * among them; `inject` publishes K of each kind at once, drawn from the
 * journal's requests (ops/chaos calls it while the backlog drains).
 * Everything goes to the journal (chaos_journal.h) before it is published.
 * Requests: payers chaos-payer-1..P, payees chaos-shop-1..M; 4% are to
 * chaos-ghost (no such account: payment.failed unknown_account) and 8%
 * above X (default 1000000: payment.declined max_amount). Seeded: the same
 * seed gives the same messages. Exit 0 when everything was confirmed.
 *
 * Independent of the code it tests: librabbitmq only (chaos_amqp.c).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chaos_amqp.h"
#include "chaos_journal.h"

#define BATCH      32
#define FLUSH_MS   200
#define CONFIRM_MS 15000
#define GIVE_UP_MS 300000
#define GHOST      "chaos-ghost"
#define COMMANDS   "ledgerline.commands"
#define EVENTS     "ledgerline.events"
#define BODY_MAX   1024

static uint64_t rng;
static uint64_t rnd(uint64_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng % n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a sender that survives broker restarts ---------------------------- */

typedef struct pending {
    const char *exchange, *rkey;
    char body[BODY_MAX];
    size_t len;
    char id[80];
} pending_t;

typedef struct sender {
    camqp_t *c;
    pending_t p[BATCH];
    size_t n;
    uint64_t last_tag; /* the delivery tag of the last pending message */
    bool broken;       /* a publish failed: the connection is unusable */
    int64_t first_ms;
    long reconnects, sent;
} sender_t;

static bool publish_all(sender_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        uint64_t t = camqp_publish(s->c, s->p[i].exchange, s->p[i].rkey, s->p[i].body, s->p[i].len,
                                   s->p[i].id[0] ? s->p[i].id : NULL);
        if (!t)
            return false;
        s->last_tag = t;
    }
    return true;
}

/* Until every pending message is confirmed; reconnects and publishes them
 * all again as often as needed. Exits the program after GIVE_UP_MS. */
static void flush(sender_t *s)
{
    int64_t give_up = now_ms() + GIVE_UP_MS;
    while (s->n > 0) {
        if (s->c && !s->broken && camqp_confirm(s->c, s->last_tag, CONFIRM_MS) == 0) {
            s->sent += (long)s->n;
            s->n = 0;
            return;
        }
        camqp_free(s->c);
        s->c = NULL;
        s->broken = false;
        char err[200] = "";
        while (!s->c) {
            if (now_ms() > give_up) {
                fprintf(stderr, "chaos_pub: broker unreachable for %d s: %s\n", GIVE_UP_MS / 1000,
                        err);
                exit(1);
            }
            usleep(500000);
            s->c = camqp_connect(err, sizeof err);
        }
        s->reconnects++;
        if (!publish_all(s))
            s->broken = true;
    }
}

static void send_msg(sender_t *s, const char *exchange, const char *rkey, const char *body,
                     size_t len, const char *id)
{
    if (s->n == BATCH)
        flush(s);
    pending_t *p = &s->p[s->n++];
    p->exchange = exchange;
    p->rkey = rkey;
    memcpy(p->body, body, len);
    p->len = len;
    snprintf(p->id, sizeof p->id, "%s", id ? id : "");
    if (s->n == 1)
        s->first_ms = now_ms();
    if (s->c && !s->broken) {
        uint64_t t = camqp_publish(s->c, exchange, rkey, body, len, id);
        if (t) {
            s->last_tag = t;
        } else {
            s->broken = true;
            flush(s); /* reconnects and publishes the pending ones again */
        }
    }
}

/* ---- what is published -------------------------------------------------- */

typedef struct ctx {
    FILE *journal;
    sender_t s;
    const char *run;
    int payers, payees;
    int64_t max_amount;
    cj_msg_t *reqs; /* the requests so far (run) or of the journal (inject) */
    size_t nreqs, capreqs;
    long nbad, nforged, ndup, nchg;
    char tag[24]; /* in the ids of malformed and forged messages: "" (run) or
                   * "j<journal lines>-" (inject), so ids never repeat */
} ctx_t;

static void keep_req(ctx_t *x, const cj_msg_t *m)
{
    if (x->nreqs == x->capreqs) {
        x->capreqs = x->capreqs ? 2 * x->capreqs : 1024;
        x->reqs = realloc(x->reqs, x->capreqs * sizeof *x->reqs);
        if (!x->reqs)
            abort();
    }
    x->reqs[x->nreqs++] = *m;
}

static void pub_request(ctx_t *x, const cj_msg_t *req, int64_t amount)
{
    char body[BODY_MAX];
    size_t len = cj_req_body(body, sizeof body, req, amount);
    send_msg(&x->s, COMMANDS, "payment.requested", body, len, req->id);
}

static void new_request(ctx_t *x, long i)
{
    cj_msg_t m;
    memset(&m, 0, sizeof m);
    m.kind = CJ_REQ;
    snprintf(m.id, sizeof m.id, "chaos-%s-%ld", x->run, i);
    snprintf(m.payer, sizeof m.payer, "chaos-payer-%d", 1 + (int)rnd((uint64_t)x->payers));
    uint64_t r = rnd(100);
    if (r < 4)
        snprintf(m.payee, sizeof m.payee, "%s", GHOST);
    else
        snprintf(m.payee, sizeof m.payee, "chaos-shop-%d", 1 + (int)rnd((uint64_t)x->payees));
    if (r >= 4 && r < 12)
        m.amount = x->max_amount + 1 + (int64_t)rnd(1000000);
    else
        m.amount = 100 + (int64_t)rnd(50000);
    cj_append(x->journal, &m);
    keep_req(x, &m);
    pub_request(x, &m, m.amount);
}

static void dup_request(ctx_t *x)
{
    const cj_msg_t *req = &x->reqs[rnd(x->nreqs)];
    cj_msg_t m = {.kind = CJ_DUP};
    snprintf(m.id, sizeof m.id, "%s", req->id);
    cj_append(x->journal, &m);
    pub_request(x, req, req->amount);
    x->ndup++;
}

static void chg_request(ctx_t *x)
{
    const cj_msg_t *req = &x->reqs[rnd(x->nreqs)];
    cj_msg_t m = {.kind = CJ_CHG};
    snprintf(m.id, sizeof m.id, "%s", req->id);
    m.amount = req->amount + 1 + (int64_t)rnd(99);
    cj_append(x->journal, &m);
    pub_request(x, req, m.amount);
    x->nchg++;
}

/* Malformed requests, each with a nonce id so its parked copy can be told
 * apart; which of them have a readable payment_id follows the contract. */
static void bad_request(ctx_t *x)
{
    cj_msg_t m = {.kind = CJ_BAD};
    char id[80], body[BODY_MAX];
    snprintf(id, sizeof id, "chaos-%s-bad-%s%ld", x->run, x->tag, x->nbad++);
    int readable = 1;
    switch (rnd(7)) {
    case 0: /* cut short: not JSON, but the id can be scanned for */
        snprintf(body, sizeof body, "{\"payment_id\":\"%s\",\"payer\":\"chaos-payer-1\",\"amou",
                 id);
        break;
    case 1:
        snprintf(body, sizeof body,
                 "{\"payment_id\":\"%s\",\"payer\":\"chaos-payer-1\",\"payee\":\"chaos-shop-1\","
                 "\"amount\":\"1200\",\"currency\":\"EUR\"}",
                 id);
        break;
    case 2:
        snprintf(body, sizeof body,
                 "{\"payment_id\":\"%s\",\"payer\":\"chaos-payer-1\",\"payee\":\"chaos-payer-1\","
                 "\"amount\":1200,\"currency\":\"EUR\"}",
                 id);
        break;
    case 3:
        snprintf(body, sizeof body,
                 "{\"payment_id\":\"%s\",\"payer\":\"chaos-payer-1\",\"payee\":\"chaos-shop-1\","
                 "\"amount\":1200,\"currency\":\"EUR\",\"discount\":5}",
                 id);
        break;
    case 4:
        snprintf(body, sizeof body,
                 "{\"payment_id\":\"%s\",\"payer\":\"chaos-payer-1\",\"payee\":\"chaos-shop-1\","
                 "\"amount\":12.5,\"currency\":\"EUR\"}",
                 id);
        break;
    case 5:
        snprintf(body, sizeof body,
                 "{\"payment_id\":\"%s\",\"payer\":\"chaos-payer-1\",\"payee\":\"chaos-shop-1\","
                 "\"amount\":1200,\"currency\":\"EURO\"}",
                 id);
        break;
    default: /* not UTF-8, no payment_id field at all */
        snprintf(body, sizeof body, "\xff\xfe not a request %s", id);
        readable = 0;
        break;
    }
    m.body = body;
    m.len = strlen(body);
    m.has_id = readable;
    snprintf(m.id, sizeof m.id, "%s", id);
    cj_append(x->journal, &m);
    send_msg(&x->s, COMMANDS, "payment.requested", body, m.len, NULL);
}

/* A well-formed payment.approved nobody signed: what a client allowed to
 * publish on ledgerline.events could forge to skip risk. */
static void forged_approval(ctx_t *x)
{
    cj_msg_t m = {.kind = CJ_FORGED, .has_id = 1};
    char body[BODY_MAX];
    snprintf(m.id, sizeof m.id, "chaos-%s-forged-%s%ld", x->run, x->tag, x->nforged++);
    snprintf(body, sizeof body,
             "{\"event_id\":\"%032" PRIx64 "\",\"type\":\"payment.approved\",\"payment_id\":\"%s\","
             "\"occurred_at\":\"2026-01-01T00:00:00.000Z\",\"payer\":\"chaos-payer-1\","
             "\"payee\":\"chaos-shop-1\",\"amount\":%d,\"currency\":\"EUR\","
             "\"risk\":{\"score\":0,\"rules\":[]}}",
             rnd(UINT64_MAX), m.id, 100 + (int)rnd(1000));
    m.body = body;
    m.len = strlen(body);
    cj_append(x->journal, &m);
    send_msg(&x->s, EVENTS, "payment.approved", body, m.len, m.id);
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: chaos_pub run --journal F --run ID --count N --rate R --seed S\n"
                    "                     [--payers P] [--payees M] [--max-amount X]\n"
                    "       chaos_pub inject --journal F --run ID --seed S [--dup K] [--chg K]\n"
                    "                     [--bad K] [--forged K]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1], *journal = NULL;
    ctx_t x = {.payers = 50, .payees = 10, .max_amount = 1000000};
    long count = 0, rate = 50, ndup = 0, nchg = 0, nbad = 0, nforged = 0;
    uint64_t seed = 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--journal") == 0)
            journal = v;
        else if (strcmp(a, "--run") == 0)
            x.run = v;
        else if (strcmp(a, "--count") == 0)
            count = atol(v);
        else if (strcmp(a, "--rate") == 0)
            rate = atol(v);
        else if (strcmp(a, "--seed") == 0)
            seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--payers") == 0)
            x.payers = atoi(v);
        else if (strcmp(a, "--payees") == 0)
            x.payees = atoi(v);
        else if (strcmp(a, "--max-amount") == 0)
            x.max_amount = atoll(v);
        else if (strcmp(a, "--dup") == 0)
            ndup = atol(v);
        else if (strcmp(a, "--chg") == 0)
            nchg = atol(v);
        else if (strcmp(a, "--bad") == 0)
            nbad = atol(v);
        else if (strcmp(a, "--forged") == 0)
            nforged = atol(v);
        else
            usage();
    }
    if (!journal || !x.run || x.payers < 1 || x.payees < 1 || rate < 1)
        usage();
    rng = seed * 0x9e3779b97f4a7c15ULL + 1;
    char err[300];
    cj_t j;
    if (cj_load(journal, &j, err, sizeof err) != 0) {
        fprintf(stderr, "chaos_pub: %s\n", err);
        return 1;
    }
    for (size_t i = 0; i < j.n; i++)
        if (j.m[i].kind == CJ_REQ)
            keep_req(&x, &j.m[i]);
    /* `run` and `inject` append to one journal at the same time: injected
     * ids are told apart by the journal's length when the inject began
     * (injects run one after another, each appends) */
    if (strcmp(mode, "inject") == 0)
        snprintf(x.tag, sizeof x.tag, "j%zu-", j.n);
    x.journal = fopen(journal, "a");
    if (!x.journal) {
        perror(journal);
        return 1;
    }
    x.s.c = camqp_connect(err, sizeof err); /* NULL: flush() keeps trying */

    if (strcmp(mode, "run") == 0) {
        int64_t t0 = now_ms();
        for (long i = (long)x.nreqs; i < count; i++) {
            new_request(&x, i);
            uint64_t r = rnd(1000);
            if (r < 30)
                dup_request(&x);
            else if (r < 40)
                chg_request(&x);
            else if (r < 50)
                bad_request(&x);
            else if (r < 55)
                forged_approval(&x);
            if (x.s.n > 0 && now_ms() - x.s.first_ms >= FLUSH_MS)
                flush(&x.s);
            int64_t due = t0 + (i + 1) * 1000 / rate, left = due - now_ms();
            if (left > 0)
                usleep((useconds_t)left * 1000);
        }
    } else if (strcmp(mode, "inject") == 0) {
        if (x.nreqs == 0 && (ndup || nchg)) {
            fprintf(stderr, "chaos_pub: no request in %s to repeat\n", journal);
            return 1;
        }
        for (long i = 0; i < ndup; i++)
            dup_request(&x);
        for (long i = 0; i < nchg; i++)
            chg_request(&x);
        for (long i = 0; i < nbad; i++)
            bad_request(&x);
        for (long i = 0; i < nforged; i++)
            forged_approval(&x);
    } else {
        usage();
    }
    flush(&x.s);
    fprintf(stderr,
            "chaos_pub %s: %ld messages confirmed (%ld dup, %ld changed, %ld malformed, %ld "
            "forged), %ld reconnects\n",
            mode, x.s.sent, x.ndup, x.nchg, x.nbad, x.nforged, x.s.reconnects);
    camqp_free(x.s.c);
    fclose(x.journal);
    free(x.reqs);
    cj_free(&j);
    return 0;
}
