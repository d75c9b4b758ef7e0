/*
 * chaos_check.c - the chaos run's judge. It knows the contract
 * (docs/contract.md) and the ledger's tables (docs/ledger.md), and nothing
 * of the workers' code: its own SQL, its own AMQP (chaos_amqp.c), its own
 * event queue, its own fee arithmetic, and the producer's journal
 * (chaos_journal.h) as the only account of what was asked.
 *
 *   chaos_check prepare  --run ID
 *       declares the tap: quorum queue chaos.tap.ID bound to
 *       ledgerline.events with '#', before anything is published; empties
 *       the work, retry and dead-letter queues (run it on a stack of its
 *       own, or one whose queues hold nothing of value)
 *   chaos_check progress --run ID --journal F
 *       one line of progress; exit 0 once every request is decided, every
 *       posted payment is in a closed batch, the outbox is sent and the
 *       work queues are empty; exit 3 while not yet
 *   chaos_check verify   --run ID --journal F --fund N [--max-amount X]
 *       after the workers stopped: drains the tap and the dead-letter
 *       queues, reads the ledger, prints the counts below and exits 1 if
 *       any is not 0
 *
 * The counts:
 *   lost           a request with no terminal outcome (declined, failed or
 *                  completed) in events or ledger
 *   duplicated     an outcome with two event ids, two terminal outcomes,
 *                  a second payment transfer, a payment in two batches
 *   unbalanced     a balance, a batch total, a fee or a payout that differs
 *                  from what the requests alone give
 *   unsettled      a completed payment in no batch or in an open one
 *   missing_event  an outcome in the ledger whose event never came, a
 *                  closed batch without settlement.batch.closed
 *   wrong_outcome  an outcome the rules do not give: declined iff the
 *                  amount is above X, failed (unknown_account) iff the
 *                  payee is chaos-ghost, else completed; a forged or
 *                  malformed message that moved money
 *   unrejected     a malformed request, a forged approval or a changed
 *                  payload without its message.rejected and parked copy
 *   unexpected     a rejection or parked message nobody sent a reason for
 *   unacked        messages left in a work or retry queue, unsent events
 */
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos_amqp.h"
#include "chaos_journal.h"

#define MAXVAR 8

static const char *const work_queues[] = {"risk",
                                          "payments",
                                          "settlement",
                                          "risk.retry.1s",
                                          "payments.retry.1s",
                                          "settlement.retry.1s",
                                          "risk.retry.30s",
                                          "payments.retry.30s",
                                          "settlement.retry.30s",
                                          NULL};
static const char *const dead_queues[] = {"risk.dead", "payments.dead", "settlement.dead", NULL};

enum {
    LOST,
    DUPLICATED,
    UNBALANCED,
    UNSETTLED,
    MISSING_EVENT,
    WRONG,
    UNREJECTED,
    UNEXPECTED,
    UNACKED,
    NCOUNTS
};
static const char *const count_names[] = {"lost",       "duplicated",    "unbalanced",
                                          "unsettled",  "missing_event", "wrong_outcome",
                                          "unrejected", "unexpected",    "unacked"};
static long counts[NCOUNTS];
static int shown[NCOUNTS];

/* Counts a finding; the first few of each kind are printed. */
static void found(int kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void found(int kind, const char *fmt, ...)
{
    counts[kind]++;
    if (shown[kind]++ >= 10)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s: ", count_names[kind]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- PostgreSQL -------------------------------------------------------- */

static PGconn *pg;

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static void pg_connect(void)
{
    char pass[256] = "";
    const char *p = getenv("LEDGERLINE_POSTGRES_PASSWORD");
    const char *f = getenv("LEDGERLINE_POSTGRES_PASSWORD_FILE");
    if (p) {
        snprintf(pass, sizeof pass, "%s", p);
    } else if (f) {
        FILE *fp = fopen(f, "r");
        if (fp && fgets(pass, sizeof pass, fp))
            pass[strcspn(pass, "\r\n")] = '\0';
        if (fp)
            fclose(fp);
    }
    const char *keys[] = {"host", "port", "dbname", "user", "password", "connect_timeout", NULL};
    const char *vals[] = {env_or("LEDGERLINE_POSTGRES_HOST", "127.0.0.1"),
                          env_or("LEDGERLINE_POSTGRES_PORT", "5432"),
                          env_or("LEDGERLINE_POSTGRES_DBNAME", "ledgerline"),
                          env_or("LEDGERLINE_POSTGRES_USER", "ledgerline"),
                          pass,
                          "10",
                          NULL};
    pg = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "chaos_check: PostgreSQL: %s", PQerrorMessage(pg));
        exit(1);
    }
}

static PGresult *q(const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "chaos_check: %s: %s", sql, PQerrorMessage(pg));
        exit(1);
    }
    return r;
}

static int64_t q1(const char *sql)
{
    PGresult *r = q(sql);
    int64_t v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return v;
}

static camqp_t *mq(void)
{
    char err[200];
    camqp_t *c = camqp_connect(err, sizeof err);
    if (!c) {
        fprintf(stderr, "chaos_check: RabbitMQ: %s\n", err);
        exit(1);
    }
    return c;
}

/* ---- prepare and progress ---------------------------------------------- */

static int cmd_prepare(const char *run)
{
    camqp_t *c = mq();
    char tap[128];
    snprintf(tap, sizeof tap, "chaos.tap.%s", run);
    camqp_delete(c, tap); /* the events of an earlier run with this seed */
    if (camqp_tap(c, tap, "ledgerline.events") != 0) {
        fprintf(stderr, "chaos_check: cannot declare %s (run `ledgerctl topology apply` first)\n",
                tap);
        return 1;
    }
    const char *const *lists[] = {work_queues, dead_queues};
    for (int l = 0; l < 2; l++)
        for (int i = 0; lists[l][i]; i++)
            if (camqp_purge(c, lists[l][i]) != 0) {
                fprintf(stderr, "chaos_check: cannot purge %s\n", lists[l][i]);
                return 1;
            }
    camqp_free(c);
    return 0;
}

static int cmd_progress(const cj_t *j)
{
    long valid = 0;
    for (size_t i = 0; i < j->n; i++)
        valid += j->m[i].kind == CJ_REQ;
    pg_connect();
    int64_t declined = q1("SELECT count(*) FROM risk_decisions WHERE decision = 'declined'");
    int64_t paid = q1("SELECT count(*) FROM processed WHERE stage = 'payment' AND outcome <> "
                      "'pending' AND payment_id NOT LIKE '%-forged-%'");
    int64_t unsettled = q1("SELECT count(*) FROM transfers t WHERE t.kind = 'payment' AND NOT "
                           "EXISTS (SELECT 1 FROM settlement_items i JOIN settlement_batches b "
                           "ON b.id = i.batch_id WHERE i.payment_id = t.ref AND b.status = "
                           "'closed')");
    int64_t pending = q1("SELECT count(*) FROM outbox_pending");
    PQfinish(pg);
    int64_t queued = 0;
    char err[200];
    camqp_t *c = camqp_connect(err, sizeof err);
    for (int i = 0; c && work_queues[i]; i++) {
        int64_t d = camqp_depth(c, work_queues[i]);
        queued += d < 0 ? 1 : d;
    }
    camqp_free(c);
    printf("decided %" PRId64 "/%ld  unsettled %" PRId64 "  unsent events %" PRId64
           "  queued %" PRId64 "%s\n",
           declined + paid, valid, unsettled, pending, queued, c ? "" : " (broker unreachable)");
    return c && declined + paid >= valid && unsettled == 0 && pending == 0 && queued == 0 ? 0 : 3;
}

/* ---- verify ------------------------------------------------------------- */

typedef struct pay {
    const cj_msg_t *req;
    int64_t variants[MAXVAR]; /* amounts asked for this payment_id */
    int nvar;
    /* events */
    char risk_eid[40], pay_eid[40];
    int risk_ids, pay_ids;  /* distinct event ids seen */
    int approved, declined; /* which risk events */
    int completed, failed;  /* which payment events */
    int64_t risk_amount;    /* the amount the risk decision was about */
    char fail_reason[40];
    int conflicts, conflict_parked; /* idempotency_conflict rejections, parked copies */
    /* ledger */
    int transfers;
    int64_t t_amount;
    char t_payer[64], t_payee[64];
    int items;
    int64_t i_amount, i_fee;
    char batch[80];
    bool batch_closed;
} pay_t;

typedef struct batch {
    char id[80], payee[64];
    bool closed;
    int64_t count, gross, fees, net, fee_t, payout_t; /* the ledger's */
    int bps;
    int64_t fixed;
    int64_t want_count, want_gross, want_fees_raw; /* from the requests */
    char eid[40];
    int eids;
    int64_t e_count, e_gross, e_fees, e_net;
} batch_t;

static json_t *pay_index;   /* payment_id -> index into pays */
static json_t *batch_index; /* batch id -> index into batches */
static pay_t *pays;
static size_t npays;
static batch_t *batches;
static size_t nbatches;

static pay_t *pay_of(const char *id)
{
    json_t *v = id ? json_object_get(pay_index, id) : NULL;
    return v ? &pays[json_integer_value(v)] : NULL;
}

static batch_t *batch_of(const char *id)
{
    json_t *v = id ? json_object_get(batch_index, id) : NULL;
    return v ? &batches[json_integer_value(v)] : NULL;
}

static void seen_eid(char *slot, int *n, const char *eid)
{
    if (!eid)
        return;
    if (*n == 0) {
        snprintf(slot, 40, "%s", eid);
        *n = 1;
    } else if (strcmp(slot, eid) != 0) {
        (*n)++;
    }
}

static const char *js(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int64_t ji(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* malformed and forged messages of the journal, and what came of them */
typedef struct odd {
    const cj_msg_t *m;
    int rejected, parked;
} odd_t;
static odd_t *odds;
static size_t nodds;
static long anon_rejected; /* message.rejected without payment_id, queue risk */

static odd_t *odd_by_id(const char *id)
{
    for (size_t i = 0; id && i < nodds; i++)
        if (odds[i].m->has_id && strcmp(odds[i].m->id, id) == 0)
            return &odds[i];
    return NULL;
}

static odd_t *odd_by_body(const char *body, size_t len)
{
    for (size_t i = 0; i < nodds; i++)
        if (odds[i].m->len == len && memcmp(odds[i].m->body, body, len) == 0)
            return &odds[i];
    return NULL;
}

static void take_event(const char *body)
{
    json_t *e = json_loads(body, 0, NULL);
    if (!e) {
        found(UNEXPECTED, "an event that is not JSON: %.120s", body);
        return;
    }
    const char *type = js(e, "type"), *eid = js(e, "event_id"), *id = js(e, "payment_id");
    pay_t *p = pay_of(id);
    if (!type) {
        found(UNEXPECTED, "an event without type: %.120s", body);
    } else if (strcmp(type, "payment.approved") == 0 || strcmp(type, "payment.declined") == 0) {
        if (p) {
            seen_eid(p->risk_eid, &p->risk_ids, eid);
            p->approved |= type[8] == 'a';
            p->declined |= type[8] == 'd';
            p->risk_amount = ji(e, "amount");
        } else if (!odd_by_id(id)) { /* a forged approval itself is on the tap too */
            found(UNEXPECTED, "%s of unknown payment %s", type, id ? id : "(none)");
        }
    } else if (strcmp(type, "payment.completed") == 0 || strcmp(type, "payment.failed") == 0) {
        if (p) {
            seen_eid(p->pay_eid, &p->pay_ids, eid);
            p->completed |= type[8] == 'c';
            p->failed |= type[8] == 'f';
            if (type[8] == 'f')
                snprintf(p->fail_reason, sizeof p->fail_reason, "%s", js(e, "reason"));
        } else {
            found(WRONG, "%s of a payment nobody requested: %s", type, id ? id : "(none)");
        }
    } else if (strcmp(type, "settlement.batch.closed") == 0) {
        batch_t *b = batch_of(js(e, "batch_id"));
        if (b) {
            seen_eid(b->eid, &b->eids, eid);
            b->e_count = ji(e, "count");
            b->e_gross = ji(e, "gross");
            b->e_fees = ji(e, "fees");
            b->e_net = ji(e, "net");
        } else {
            found(UNEXPECTED, "settlement.batch.closed of batch %s not in the ledger",
                  js(e, "batch_id"));
        }
    } else if (strcmp(type, "message.rejected") == 0) {
        const char *reason = js(e, "reason"), *queue = js(e, "queue");
        odd_t *o = odd_by_id(id);
        if (p && reason && strcmp(reason, "idempotency_conflict") == 0) {
            p->conflicts++;
        } else if (o) {
            o->rejected++;
        } else if (!id && queue && strcmp(queue, "risk") == 0) {
            anon_rejected++;
        } else {
            found(UNEXPECTED, "message.rejected %s of %s: %s", reason, id ? id : "(no id)",
                  js(e, "detail"));
        }
    } else {
        found(UNEXPECTED, "an event of type %s", type);
    }
    json_decref(e);
}

/* A parked copy: a malformed or forged message, or the losing payload of
 * a payment_id asked twice with different amounts. */
static void take_parked(const char *queue, const char *body, size_t len)
{
    odd_t *o = odd_by_body(body, len);
    if (o) {
        o->parked++;
        return;
    }
    json_t *r = json_loads(body, 0, NULL);
    pay_t *p = r ? pay_of(js(r, "payment_id")) : NULL;
    if (p && strcmp(queue, "risk.dead") == 0) {
        p->conflict_parked++;
    } else {
        found(UNEXPECTED, "parked in %s: %.160s", queue, body);
    }
    json_decref(r);
}

static void load_ledger(void)
{
    PGresult *r = q("SELECT ref, count(*), min(amount), min(debit_account), min(credit_account) "
                    "FROM transfers WHERE kind = 'payment' GROUP BY ref");
    for (int i = 0; i < PQntuples(r); i++) {
        pay_t *p = pay_of(PQgetvalue(r, i, 0));
        if (!p) {
            const char *ref = PQgetvalue(r, i, 0);
            found(WRONG, "payment transfer %s: nobody asked for it%s", ref,
                  strstr(ref, "-forged-") ? " (a forged approval was posted)" : "");
            continue;
        }
        p->transfers = atoi(PQgetvalue(r, i, 1));
        p->t_amount = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        snprintf(p->t_payer, sizeof p->t_payer, "%s", PQgetvalue(r, i, 3));
        snprintf(p->t_payee, sizeof p->t_payee, "%s", PQgetvalue(r, i, 4));
    }
    PQclear(r);
    r = q("SELECT b.id, b.payee, b.status = 'closed', b.count, b.gross, coalesce(b.fees, 0), "
          "coalesce(b.net, 0), coalesce(ft.amount, 0), coalesce(pt.amount, 0), a.fee_bps, "
          "a.fee_fixed FROM settlement_batches b JOIN accounts a ON a.id = b.payee "
          "LEFT JOIN transfers ft ON ft.id = b.fee_transfer "
          "LEFT JOIN transfers pt ON pt.id = b.payout_transfer ORDER BY b.id");
    nbatches = (size_t)PQntuples(r);
    batches = calloc(nbatches + 1, sizeof *batches);
    for (size_t i = 0; i < nbatches; i++) {
        batch_t *b = &batches[i];
        snprintf(b->id, sizeof b->id, "%s", PQgetvalue(r, (int)i, 0));
        snprintf(b->payee, sizeof b->payee, "%s", PQgetvalue(r, (int)i, 1));
        b->closed = PQgetvalue(r, (int)i, 2)[0] == 't';
        b->count = strtoll(PQgetvalue(r, (int)i, 3), NULL, 10);
        b->gross = strtoll(PQgetvalue(r, (int)i, 4), NULL, 10);
        b->fees = strtoll(PQgetvalue(r, (int)i, 5), NULL, 10);
        b->net = strtoll(PQgetvalue(r, (int)i, 6), NULL, 10);
        b->fee_t = strtoll(PQgetvalue(r, (int)i, 7), NULL, 10);
        b->payout_t = strtoll(PQgetvalue(r, (int)i, 8), NULL, 10);
        b->bps = atoi(PQgetvalue(r, (int)i, 9));
        b->fixed = strtoll(PQgetvalue(r, (int)i, 10), NULL, 10);
        json_object_set_new(batch_index, b->id, json_integer((json_int_t)i));
    }
    PQclear(r);
    r = q("SELECT payment_id, count(*) OVER (PARTITION BY payment_id), batch_id, amount, fee "
          "FROM settlement_items");
    for (int i = 0; i < PQntuples(r); i++) {
        pay_t *p = pay_of(PQgetvalue(r, i, 0));
        if (!p) {
            found(WRONG, "settlement item %s: nobody asked for it", PQgetvalue(r, i, 0));
            continue;
        }
        p->items = atoi(PQgetvalue(r, i, 1));
        snprintf(p->batch, sizeof p->batch, "%s", PQgetvalue(r, i, 2));
        p->i_amount = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        p->i_fee = strtoll(PQgetvalue(r, i, 4), NULL, 10);
    }
    PQclear(r);
}

/* round_half_up(amount * bps / 10000) + fixed, as the contract says */
static int64_t fee_of(int64_t amount, int bps, int64_t fixed)
{
    return (amount * bps + 5000) / 10000 + fixed;
}

static void check_payment(pay_t *p, int64_t max_amount, json_t *want_bal)
{
    const char *id = p->req->id;
    bool any = p->approved || p->declined || p->completed || p->failed || p->transfers;
    if (!any) {
        found(LOST, "%s: no outcome at all", id);
        return;
    }
    if (p->risk_ids == 0)
        found(MISSING_EVENT, "%s: no payment.approved or payment.declined", id);
    if (p->risk_ids > 1 || p->pay_ids > 1)
        found(DUPLICATED, "%s: an outcome published with %d and %d event ids", id, p->risk_ids,
              p->pay_ids);
    if (p->approved + p->declined > 1 || p->completed + p->failed > 1 ||
        (p->declined && p->pay_ids))
        found(DUPLICATED, "%s: two terminal outcomes", id);
    /* which of the amounts asked for was decided */
    int64_t amount = p->risk_ids ? p->risk_amount : p->t_amount;
    bool asked = false;
    for (int v = 0; v < p->nvar; v++)
        asked |= p->variants[v] == amount;
    if (!asked) {
        found(WRONG, "%s: decided with amount %" PRId64 " nobody asked for", id, amount);
        return;
    }
    bool ghost = strcmp(p->req->payee, "chaos-ghost") == 0;
    const char *want = amount > max_amount ? "declined" : ghost ? "failed" : "completed";
    const char *got = p->declined    ? "declined"
                      : p->completed ? "completed"
                      : p->failed    ? "failed"
                      : p->transfers ? "completed"
                                     : "undecided";
    if (strcmp(got, "undecided") == 0) {
        found(LOST, "%s: approved, then nothing (no payment outcome, no transfer)", id);
        return;
    }
    if (strcmp(want, got) != 0 || (p->failed && strcmp(p->fail_reason, "unknown_account") != 0))
        found(WRONG, "%s: %s %s, the rules say %s", id, got, p->fail_reason, want);
    /* the losing payloads were rejected and parked */
    int losers = 0;
    for (int v = 0; v < p->nvar; v++) {
        bool dup = false;
        for (int w = 0; w < v; w++)
            dup |= p->variants[w] == p->variants[v];
        losers += !dup && p->variants[v] != amount;
    }
    if (p->conflicts < losers || p->conflict_parked < losers)
        found(UNREJECTED, "%s: %d other payloads, %d idempotency_conflict events, %d parked", id,
              losers, p->conflicts, p->conflict_parked);
    if (strcmp(got, "completed") != 0) {
        if (p->transfers)
            found(WRONG, "%s: %s but posted", id, got);
        return;
    }
    if (p->transfers == 0) {
        found(LOST, "%s: payment.completed but no transfer", id);
        return;
    }
    if (!p->completed)
        found(MISSING_EVENT, "%s: posted, but no payment.completed came", id);
    if (p->transfers > 1)
        found(DUPLICATED, "%s: %d payment transfers", id, p->transfers);
    if (p->t_amount != amount || strcmp(p->t_payer, p->req->payer) != 0 ||
        strcmp(p->t_payee, p->req->payee) != 0)
        found(UNBALANCED, "%s: transfer %s -> %s %" PRId64 ", asked %s -> %s %" PRId64, id,
              p->t_payer, p->t_payee, p->t_amount, p->req->payer, p->req->payee, amount);
    /* the balances the requests alone give (shops: see check_batches) */
    json_t *b = json_object_get(want_bal, p->req->payer);
    json_object_set_new(want_bal, p->req->payer, json_integer(json_integer_value(b) - amount));
    b = json_object_get(want_bal, p->req->payee);
    json_object_set_new(want_bal, p->req->payee, json_integer(json_integer_value(b) + amount));
    /* settled exactly once, in a closed batch */
    batch_t *bt = batch_of(p->batch);
    if (p->items == 0 || !bt) {
        found(UNSETTLED, "%s: in no settlement batch", id);
        return;
    }
    if (p->items > 1)
        found(DUPLICATED, "%s: in %d settlement batches", id, p->items);
    if (!bt->closed)
        found(UNSETTLED, "%s: its batch %s is still open", id, bt->id);
    if (p->i_amount != amount || p->i_fee != fee_of(amount, bt->bps, bt->fixed))
        found(UNBALANCED,
              "%s: settled as %" PRId64 " fee %" PRId64 ", want %" PRId64 " fee %" PRId64, id,
              p->i_amount, p->i_fee, amount, fee_of(amount, bt->bps, bt->fixed));
    bt->want_count++;
    bt->want_gross += amount;
    bt->want_fees_raw += fee_of(amount, bt->bps, bt->fixed);
}

static void check_batches(json_t *want_bal)
{
    int64_t fees = 0, payouts = 0;
    for (size_t i = 0; i < nbatches; i++) {
        batch_t *b = &batches[i];
        int64_t want_fees = b->want_fees_raw < b->want_gross ? b->want_fees_raw : b->want_gross;
        int64_t want_net = b->want_gross - want_fees;
        if (!b->closed) {
            if (b->want_count > 0)
                continue; /* its payments are counted unsettled */
            found(UNSETTLED, "batch %s: open, empty", b->id);
            continue;
        }
        if (b->count != b->want_count || b->gross != b->want_gross || b->fees != want_fees ||
            b->net != want_net || b->fee_t != want_fees || b->payout_t != want_net)
            found(UNBALANCED,
                  "batch %s: count %" PRId64 " gross %" PRId64 " fees %" PRId64 " net %" PRId64
                  " (transfers %" PRId64 "/%" PRId64 "), the requests give %" PRId64 "/%" PRId64
                  "/%" PRId64 "/%" PRId64,
                  b->id, b->count, b->gross, b->fees, b->net, b->fee_t, b->payout_t, b->want_count,
                  b->want_gross, want_fees, want_net);
        if (b->eids == 0)
            found(MISSING_EVENT, "batch %s: closed, no settlement.batch.closed", b->id);
        else if (b->eids > 1)
            found(DUPLICATED, "batch %s: closed event with %d event ids", b->id, b->eids);
        else if (b->e_count != b->want_count || b->e_gross != b->want_gross ||
                 b->e_fees != want_fees || b->e_net != want_net)
            found(UNBALANCED,
                  "batch %s: its event says %" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64, b->id,
                  b->e_count, b->e_gross, b->e_fees, b->e_net);
        fees += want_fees;
        payouts += want_net;
        json_t *v = json_object_get(want_bal, b->payee);
        json_object_set_new(want_bal, b->payee,
                            json_integer(json_integer_value(v) - b->want_gross));
    }
    json_object_set_new(want_bal, "sys:fees:EUR", json_integer(fees));
    json_object_set_new(want_bal, "sys:payout:EUR", json_integer(payouts));
}

static int cmd_verify(const char *run, const cj_t *j, int64_t fund, int64_t max_amount)
{
    pay_index = json_object();
    batch_index = json_object();
    pays = calloc(j->n + 1, sizeof *pays);
    odds = calloc(j->n + 1, sizeof *odds);
    for (size_t i = 0; i < j->n; i++) {
        const cj_msg_t *m = &j->m[i];
        if (m->kind == CJ_REQ) {
            pay_t *p = &pays[npays];
            p->req = m;
            p->variants[p->nvar++] = m->amount;
            json_object_set_new(pay_index, m->id, json_integer((json_int_t)npays++));
        } else if (m->kind == CJ_CHG) {
            pay_t *p = pay_of(m->id);
            if (p && p->nvar < MAXVAR)
                p->variants[p->nvar++] = m->amount;
        } else if (m->kind == CJ_BAD || m->kind == CJ_FORGED) {
            odds[nodds++].m = m;
        }
    }
    pg_connect();
    load_ledger();

    camqp_t *c = mq();
    char tap[128], *body, *rkey;
    size_t len;
    long nevents = 0, nparked = 0;
    snprintf(tap, sizeof tap, "chaos.tap.%s", run);
    int got;
    while ((got = camqp_get(c, tap, &body, &len, &rkey)) == 1) {
        take_event(body);
        nevents++;
        free(body);
        free(rkey);
    }
    if (got < 0) {
        fprintf(stderr, "chaos_check: reading %s failed (was `chaos_check prepare` run?)\n", tap);
        return 1;
    }
    for (int i = 0; dead_queues[i]; i++) {
        while ((got = camqp_get(c, dead_queues[i], &body, &len, &rkey)) == 1) {
            take_parked(dead_queues[i], body, len);
            nparked++;
            free(body);
            free(rkey);
        }
        if (got < 0) {
            fprintf(stderr, "chaos_check: reading %s failed\n", dead_queues[i]);
            return 1;
        }
    }
    for (int i = 0; work_queues[i]; i++) {
        int64_t d = camqp_depth(c, work_queues[i]);
        if (d != 0)
            found(UNACKED, "%s holds %" PRId64 " messages", work_queues[i], d);
    }
    int64_t unsent = q1("SELECT count(*) FROM outbox_pending");
    if (unsent)
        found(UNACKED, "%" PRId64 " events never confirmed by the broker", unsent);

    json_t *want_bal = json_object();
    for (size_t i = 0; i < npays; i++)
        check_payment(&pays[i], max_amount, want_bal);
    check_batches(want_bal);

    long bad_anon = 0;
    for (size_t i = 0; i < nodds; i++) {
        odd_t *o = &odds[i];
        bad_anon += o->m->kind == CJ_BAD && !o->m->has_id;
        if (o->parked == 0 || (o->m->has_id && o->rejected == 0))
            found(UNREJECTED, "%s %s: %d message.rejected, %d parked copies",
                  o->m->kind == CJ_BAD ? "malformed" : "forged", o->m->id, o->rejected, o->parked);
    }
    if (anon_rejected < bad_anon)
        found(UNREJECTED, "%ld malformed requests without a readable id, %ld rejections", bad_anon,
              anon_rejected);

    /* balances: payers funded with `fund` each, everything else from 0 */
    PGresult *r = q("SELECT id, balance FROM accounts ORDER BY id");
    int64_t funded = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        int64_t bal = strtoll(PQgetvalue(r, i, 1), NULL, 10), want = 0;
        if (strncmp(id, "chaos-payer-", 12) == 0) {
            want = fund + json_integer_value(json_object_get(want_bal, id));
            funded += fund;
        } else if (strcmp(id, "sys:funding:EUR") != 0) {
            want = json_integer_value(json_object_get(want_bal, id));
        } else {
            continue;
        }
        if (bal != want)
            found(UNBALANCED, "account %s: balance %" PRId64 ", the requests give %" PRId64, id,
                  bal, want);
    }
    PQclear(r);
    int64_t sysf = q1("SELECT balance FROM accounts WHERE id = 'sys:funding:EUR'");
    if (sysf != -funded)
        found(UNBALANCED, "sys:funding:EUR: %" PRId64 ", want %" PRId64, sysf, -funded);

    long completed = 0, declined = 0, failed = 0, conflicts = 0;
    for (size_t i = 0; i < npays; i++) {
        completed += pays[i].completed;
        declined += pays[i].declined;
        failed += pays[i].failed;
        conflicts += pays[i].nvar > 1;
    }
    long closed = 0;
    for (size_t i = 0; i < nbatches; i++)
        closed += batches[i].closed;
    printf("chaos check: %zu payments (%ld completed, %ld failed, %ld declined), %ld with "
           "changed payloads, %zu malformed or forged; %ld events read, %ld parked, %ld of %zu "
           "batches closed\n",
           npays, completed, failed, declined, conflicts, nodds, nevents, nparked, closed,
           nbatches);
    long total = 0;
    for (int k = 0; k < NCOUNTS; k++) {
        printf("%s%s %ld", k ? "  " : "", count_names[k], counts[k]);
        total += counts[k];
    }
    printf("\n");
    camqp_delete(c, tap);
    camqp_free(c);
    PQfinish(pg);
    json_decref(want_bal);
    return total == 0 ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: chaos_check prepare --run ID\n"
                    "       chaos_check progress --run ID --journal F\n"
                    "       chaos_check verify --run ID --journal F --fund N [--max-amount X]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1], *run = NULL, *journal = NULL;
    int64_t fund = -1, max_amount = 1000000;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--run") == 0)
            run = argv[i + 1];
        else if (strcmp(argv[i], "--journal") == 0)
            journal = argv[i + 1];
        else if (strcmp(argv[i], "--fund") == 0)
            fund = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--max-amount") == 0)
            max_amount = atoll(argv[i + 1]);
        else
            usage();
    }
    if (!run)
        usage();
    if (strcmp(mode, "prepare") == 0)
        return cmd_prepare(run);
    if (!journal)
        usage();
    cj_t j;
    char err[300];
    if (cj_load(journal, &j, err, sizeof err) != 0) {
        fprintf(stderr, "chaos_check: %s\n", err);
        return 1;
    }
    int rc;
    if (strcmp(mode, "progress") == 0) {
        rc = cmd_progress(&j);
    } else if (strcmp(mode, "verify") == 0) {
        if (fund < 0)
            usage();
        rc = cmd_verify(run, &j, fund, max_amount);
    } else {
        usage();
        rc = 2;
    }
    cj_free(&j);
    return rc;
}
