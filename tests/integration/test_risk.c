/*
 * test_risk.c - the real risk-worker against the test stack: each rule of
 * risk_apply_batch (schemas/sql/functions/) at its boundaries (max_amount,
 * blocklisted, velocity_count, velocity_sum with a sliding window, the
 * score of the soft signals new_payee and above_median), with its
 * risk_decisions row,
 * processed row, event, outbox row and the copy of each approval in the
 * `payments` queue; velocity counted exactly once (a redelivered payment,
 * two workers on one payer); the blocklist reloaded on SIGHUP while
 * consuming, and kept when the new file is unusable; every bad input
 * rejected and parked in risk.dead; duplicates replayed and idempotency
 * conflicts rejected; the rule-set version recorded and shown by
 * `ledgerctl risk show`; and bad risk settings refused at start.
 *
 * Hard-rule tests set the soft-signal weights to 0 so that an approval is
 * exactly {score 0, rules []}: any extra rule in an event is a failure.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_redis.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg_decode.h"

#define WORKER  LL_BIN_DIR "/risk-worker"
#define WAIT_MS 30000
#define STOP_MS 20000
#define MAXPAY  96

static char *ledger;
static db_t *db;
static mq_t *m;
static llw_events_t *ev;
static char blockfile[128]; /* this test's blocklist file, removed by the teardown */
static char blockdir[140];  /* a directory where a file is expected, likewise */
static const char *want_version = "1";

static const char *const work_queues[] = {"risk",           "risk.dead", "risk.retry.1s",
                                          "risk.retry.30s", "payments",  NULL};

/* no soft signals: approvals are exactly score 0, rules [] */
#define NO_SOFT "LEDGERLINE_RISK_WEIGHT_NEW_PAYEE=0", "LEDGERLINE_RISK_WEIGHT_ABOVE_MEDIAN=0"

static llw_fixture_t fx;

static void setup(void)
{
    llw_fixture_up(&fx, work_queues);
    ledger = fx.ledger, db = fx.db, m = fx.m, ev = fx.ev;
    snprintf(blockfile, sizeof blockfile, "/tmp/llt-risk-%d-blocklist", (int)getpid());
    snprintf(blockdir, sizeof blockdir, "%s.d", blockfile);
    want_version = "1";
}

static void teardown(void)
{
    llw_fixture_down(&fx);
    struct stat st;
    if (stat(blockfile, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            rmdir(blockfile);
        else
            unlink(blockfile);
    }
    rmdir(blockdir);
}

/* The payment.requested body of p (caller frees). */
static char *request_body(const msg_payment_t *p)
{
    char *b = msg_payment_canonical(p);
    ck_assert_msg(b, "cannot encode payment %s", p->payment_id);
    return b;
}

/* Publishes `len` bytes as a producer does: ledgerline.commands, routing key
 * and type payment.requested, message_id the payment_id (NULL: none). */
static void publish_body(const char *payment_id, const char *body, size_t len)
{
    llw_publish_raw(m, "ledgerline.commands", MSG_TYPE_REQUESTED, payment_id, MSG_TYPE_REQUESTED,
                    body, len);
}

/* Publishes p; returns its body (caller frees). Not confirmed. */
static char *publish(const msg_payment_t *p)
{
    char *b = request_body(p);
    publish_body(p->payment_id, b, strlen(b));
    return b;
}

static pid_t start(const char *instance, const char *const *extra)
{
    return llw_start_instance(WORKER, ledger, instance, extra);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f, "cannot write %s", path);
    fputs(text, f);
    ck_assert_msg(fclose(f) == 0, "cannot write %s", path);
}

/* ---- waiting for the worker --------------------------------------------- */

/* Until `decided` payments each have a risk_decisions row, a processed row
 * of stage risk and one payment.approved or payment.declined event id,
 * with `rejected` distinct message.rejected events and no unsent outbox
 * row. */
static void wait_done(int64_t decided, size_t rejected)
{
    llw_done_t w = {.counts = {"SELECT count(*) FROM risk_decisions",
                               "SELECT count(*) FROM processed WHERE stage = 'risk'"},
                    .rows = decided,
                    .events = {MSG_TYPE_APPROVED, MSG_TYPE_DECLINED},
                    .distinct = decided,
                    .rejected = (int64_t)rejected};
    llw_wait_done(&fx, &w, WAIT_MS, "the risk-worker to decide every payment");
}

static void wait_logged(pid_t pid, const char *needle)
{
    char what[160];
    snprintf(what, sizeof what, "the worker to log '%s'", needle);
    llw_wait_logged(pid, needle, 10000, what);
}

/* ---- checking a decision ------------------------------------------------- */

/* The strings of a JSON array joined with ','; "<not an array>" otherwise. */
static void join_rules(const json_t *a, char *out, size_t n)
{
    out[0] = '\0';
    if (!json_is_array(a)) {
        snprintf(out, n, "<not an array>");
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%s", i ? "," : "",
                 json_is_string(v) ? json_string_value(v) : "<not a string>");
    }
}

/*
 * Checks everything about payment p decided as `decision` with `rules`
 * (comma-separated, in rule order) and `score`: its risk_decisions row
 * (request fields, decision, score, rules, want_version), its processed row,
 * its event `copies` times with the same bytes and no event of the other
 * kind, the event's body (the request fields plus risk {score, rules}, or
 * reason risk_declined plus rules, nothing else), and its one outbox row
 * holding those bytes.
 */
static void check_decision(const msg_payment_t *p, const char *decision, const char *rules,
                           int score, size_t copies)
{
    const char *id = p->payment_id;
    bool approved = strcmp(decision, "approved") == 0;
    const char *rk = approved ? MSG_TYPE_APPROVED : MSG_TYPE_DECLINED;
    char want_row[512];
    snprintf(want_row, sizeof want_row, "%s|%d|%s|%s|%s|%s|%" PRId64 "|%s", decision, score, rules,
             want_version, p->payer, p->payee, p->amount, p->currency);
    char *row = llw_text(db,
                         "SELECT decision || '|' || score || '|' || array_to_string(rules, ',') || "
                         "'|' || ruleset_version || '|' || payer || '|' || payee || '|' || amount "
                         "|| '|' || currency FROM risk_decisions WHERE payment_id = '%s'",
                         id);
    LLW_ASSERT(row && strcmp(row, want_row) == 0,
               "payment %s: risk_decisions row\n   is %s\n want %s\n (decision|score|rules|"
               "ruleset_version|payer|payee|amount|currency)",
               id, row ? row : "(no row)", want_row);
    free(row);
    char *outcome = llw_text(
        db, "SELECT outcome FROM processed WHERE stage = 'risk' AND payment_id = '%s'", id);
    LLW_ASSERT(outcome && strcmp(outcome, decision) == 0,
               "payment %s: processed outcome %s, want %s", id, outcome ? outcome : "(no row)",
               decision);
    free(outcome);

    size_t na = llw_events_count(ev, MSG_TYPE_APPROVED, id);
    size_t nd = llw_events_count(ev, MSG_TYPE_DECLINED, id);
    LLW_ASSERT(na + nd == copies && llw_events_count(ev, rk, id) == copies,
               "payment %s (%s): %zu approved and %zu declined events, want %zu %s", id, decision,
               na, nd, copies, rk);
    llc_same_event(ev, rk, id);
    json_t *e = llw_events_find(ev, rk, id, 0);
    const char *body = llc_jstr(e, "body");
    char got_rules[512];
    char diff[128];
    if (approved) {
        msg_approved_t a;
        memset(&a, 0, sizeof a);
        msg_reject_t why;
        int rc = msg_approved_decode(body, strlen(body), &a, &why);
        LLW_ASSERT(rc == LL_OK, "payment %s: payment.approved does not decode: %s: %s", id,
                   why.detail, body);
        LLW_ASSERT(msg_payment_diff(&a.payment, p, diff, sizeof diff) == LL_OK && !diff[0],
                   "payment %s: payment.approved differs from the request in: %s", id, diff);
        got_rules[0] = '\0';
        for (size_t i = 0; i < a.nrules; i++) {
            size_t len = strlen(got_rules);
            snprintf(got_rules + len, sizeof got_rules - len, "%s%s", i ? "," : "", a.rules[i]);
        }
        LLW_ASSERT(a.score == score && strcmp(got_rules, rules) == 0,
                   "payment %s: payment.approved risk {score %d, rules [%s]}, want {%d, [%s]}", id,
                   a.score, got_rules, score, rules);
        msg_approved_clear(&a);
    } else {
        const json_t *j = json_object_get(e, "json");
        LLW_ASSERT(strcmp(llc_jstr(j, "reason"), MSG_DECLINE_REASON) == 0,
                   "payment %s: payment.declined reason '%s': %s", id, llc_jstr(j, "reason"), body);
        join_rules(json_object_get(j, "rules"), got_rules, sizeof got_rules);
        LLW_ASSERT(strcmp(got_rules, rules) == 0,
                   "payment %s: payment.declined rules [%s], want [%s]", id, got_rules, rules);
        /* what is left after the envelope, reason and rules is the request */
        json_t *req = json_deep_copy(j);
        static const char *const extra[] = {"event_id", "type", "occurred_at", "reason", "rules"};
        for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
            json_object_del(req, extra[i]);
        char *rb = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        msg_payment_t got;
        memset(&got, 0, sizeof got);
        msg_reject_t why;
        int rc = msg_payment_decode(rb, strlen(rb), &got, &why);
        LLW_ASSERT(rc == LL_OK,
                   "payment %s: payment.declined holds more or less than the request "
                   "fields plus reason and rules: %s: %s",
                   id, why.detail, body);
        LLW_ASSERT(msg_payment_diff(&got, p, diff, sizeof diff) == LL_OK && !diff[0],
                   "payment %s: payment.declined differs from the request in: %s", id, diff);
        msg_payment_clear(&got);
        free(rb);
    }
    llc_check_outbox(db, id, rk, body);
}

/* The `payments` queue holds exactly the payment.approved events published
 * (one message per published copy), with the same bytes. */
static void check_payments_queue(void)
{
    llw_events_collect(ev);
    size_t want = llw_events_count(ev, MSG_TYPE_APPROVED, NULL);
    json_t *q = llw_queue_drain(m, "payments");
    LLW_ASSERT(json_array_size(q) == want, "payments queue: %zu messages, %zu approvals published",
               json_array_size(q), want);
    size_t k;
    json_t *o;
    json_array_foreach(q, k, o)
    {
        json_t *j = llt_json(llc_jstr(o, "body"));
        const char *id = llc_jstr(j, "payment_id");
        json_t *e = llw_events_find(ev, MSG_TYPE_APPROVED, id, 0);
        LLW_ASSERT(strcmp(llc_jstr(j, "type"), MSG_TYPE_APPROVED) == 0 && e &&
                       strcmp(llc_jstr(e, "body"), llc_jstr(o, "body")) == 0,
                   "payments queue got something that is not an approval: %s", llc_jstr(o, "body"));
        json_decref(j);
    }
    json_decref(q);
}

static void check_risk_queues_empty(void)
{
    static const char *const qs[] = {"risk", "risk.retry.1s", "risk.retry.30s", NULL};
    llw_assert_queues_empty(m, qs);
}

/* ---- table-driven rule sequences ----------------------------------------- */

/* One payment of a sequence and what risk must decide for it. */
typedef struct {
    const char *payer, *payee;
    int64_t amount;
    const char *currency;
    const char *decision;
    const char *rules; /* comma-separated, in rule order */
    int score;
} step_t;

/* Publishes steps[0..n) with tags "<prefix><first + i>" into pays[]. */
static void publish_steps(const char *prefix, const step_t *s, size_t n, size_t first,
                          msg_payment_t *pays)
{
    ck_assert(first + n <= MAXPAY);
    for (size_t i = 0; i < n; i++) {
        char tag[24];
        snprintf(tag, sizeof tag, "%s%zu", prefix, first + i);
        pays[first + i] =
            llw_payment(ledger, tag, s[i].payer, s[i].payee, s[i].amount, s[i].currency);
        free(publish(&pays[first + i]));
    }
    llw_confirm(m);
}

static void check_steps(const step_t *s, size_t n, const msg_payment_t *pays)
{
    for (size_t i = 0; i < n; i++)
        check_decision(&pays[i], s[i].decision, s[i].rules, s[i].score, 1);
}

/* Publishes the whole table, runs one worker with env over it, checks. */
static void run_table(const char *prefix, const step_t *s, size_t n, const char *const *env)
{
    msg_payment_t pays[MAXPAY];
    publish_steps(prefix, s, n, 0, pays);
    pid_t w = start(prefix, env);
    wait_done((int64_t)n, 0);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    check_steps(s, n, pays);
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0, "unexpected message.rejected");
    check_payments_queue();
    check_risk_queues_empty();
}

/* ---- 1. max_amount -------------------------------------------------------- */

static const step_t max_amount_steps[] = {
    {"ma1", "shop", 999, "EUR", "approved", "", 0},
    {"ma2", "shop", 1000, "EUR", "approved", "", 0},
    {"ma3", "shop", 1001, "EUR", "declined", "max_amount", 0},
    {"ma4", "shop", 4, "USD", "approved", "", 0},
    {"ma5", "shop", 5, "USD", "approved", "", 0},
    {"ma6", "shop", 6, "USD", "declined", "max_amount", 0},
    {"ma7", "shop", MSG_AMOUNT_MAX, "GBP", "approved", "", 0}, /* not listed: no limit */
    {"ma8", "shop", 1000000, "EUR", "declined", "max_amount", 0},
};

START_TEST(max_amount_declines_above_the_limit_of_its_currency)
{
    static const char *const env[] = {"LEDGERLINE_RISK_MAX_AMOUNT=EUR:1000,USD:5", NO_SOFT, NULL};
    run_table("ma", max_amount_steps, sizeof max_amount_steps / sizeof max_amount_steps[0], env);
}
END_TEST

/* ---- 2. velocity ---------------------------------------------------------- */

/* count N = 3, sum S = 1000, max_amount EUR:5000; in queue order */
static const step_t velocity_steps[] = {
    /* A: a payment declined by another rule does not count */
    {"vA", "shop", 10, "EUR", "approved", "", 0},
    {"vA", "shop", 6000, "EUR", "declined", "max_amount", 0},
    {"vA", "shop", 10, "EUR", "approved", "", 0},
    {"vB", "shop", 10, "EUR", "approved", "", 0},                /* another payer */
    {"vA", "shop", 10, "EUR", "approved", "", 0},                /* N-1 before: the Nth */
    {"vA", "shop", 10, "EUR", "declined", "velocity_count", 0},  /* N before */
    {"vA", "shop", 10, "EUR", "declined", "velocity_count", 0},  /* declines do not count up */
    {"vB", "shop", 10, "EUR", "approved", "", 0},                /* B unaffected by A */
    {"vB", "shop", 10, "EUR", "approved", "", 0},                /* B's Nth */
    {"vB", "other", 10, "EUR", "declined", "velocity_count", 0}, /* per payer, any payee */
    /* C: the approved total at S-1, S+1, S, S+1 */
    {"vC", "shop", 999, "EUR", "approved", "", 0},
    {"vC", "shop", 2, "EUR", "declined", "velocity_sum", 0},
    {"vC", "shop", 1, "EUR", "approved", "", 0}, /* exactly S: the 2 did not count */
    {"vC", "shop", 1, "EUR", "declined", "velocity_sum", 0},
    /* D: both velocity rules would fire: count comes first, alone */
    {"vD", "shop", 400, "EUR", "approved", "", 0},
    {"vD", "shop", 400, "EUR", "approved", "", 0},
    {"vD", "shop", 100, "EUR", "approved", "", 0},
    {"vD", "shop", 500, "EUR", "declined", "velocity_count", 0},
    /* E: a first payment above S; max_amount comes before velocity */
    {"vE", "shop", 1001, "EUR", "declined", "velocity_sum", 0},
    {"vE", "shop", 5001, "EUR", "declined", "max_amount", 0},
    {"vE", "shop", 1000, "EUR", "approved", "", 0},
};

START_TEST(velocity_count_and_sum_at_their_boundaries)
{
    static const char *const env[] = {"LEDGERLINE_RISK_VELOCITY_COUNT=3",
                                      "LEDGERLINE_RISK_VELOCITY_SUM=1000",
                                      "LEDGERLINE_RISK_MAX_AMOUNT=EUR:5000", NO_SOFT, NULL};
    run_table("v", velocity_steps, sizeof velocity_steps / sizeof velocity_steps[0], env);
}
END_TEST

/* window 2 s, count 2, sum 100 */
static const step_t window_before[] = {
    {"wA", "shop", 10, "EUR", "approved", "", 0},
    {"wA", "shop", 10, "EUR", "approved", "", 0},
    {"wA", "shop", 10, "EUR", "declined", "velocity_count", 0},
    {"wS", "shop", 60, "EUR", "approved", "", 0},
    {"wS", "shop", 50, "EUR", "declined", "velocity_sum", 0},
};
static const step_t window_after[] = {
    {"wA", "shop", 10, "EUR", "approved", "", 0},
    {"wA", "shop", 10, "EUR", "approved", "", 0},
    {"wA", "shop", 10, "EUR", "declined", "velocity_count", 0},
    {"wS", "shop", 50, "EUR", "approved", "", 0},
    {"wS", "shop", 51, "EUR", "declined", "velocity_sum", 0},
};
#define NBEFORE (sizeof window_before / sizeof window_before[0])
#define NAFTER  (sizeof window_after / sizeof window_after[0])

START_TEST(approvals_older_than_the_velocity_window_stop_counting)
{
    static const char *const env[] = {"LEDGERLINE_RISK_VELOCITY_COUNT=2",
                                      "LEDGERLINE_RISK_VELOCITY_SUM=100",
                                      "LEDGERLINE_RISK_VELOCITY_WINDOW_S=2", NO_SOFT, NULL};
    msg_payment_t pays[NBEFORE + NAFTER];
    pid_t w = start("window", env);
    llw_wait_consuming(m, "risk", 1, WAIT_MS);
    publish_steps("w", window_before, NBEFORE, 0, pays);
    wait_done(NBEFORE, 0);
    /* every approval of the first round is now more than 2 s old */
    llw_sleep_ms(2500);
    publish_steps("w", window_after, NAFTER, NBEFORE, pays);
    wait_done(NBEFORE + NAFTER, 0);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    check_steps(window_before, NBEFORE, pays);
    check_steps(window_after, NAFTER, pays + NBEFORE);
    check_payments_queue();
    check_risk_queues_empty();
}
END_TEST

/* Sliding, not tumbling: with a 6 s window and a limit of 2, A1 at 0 s and
 * A2 at ~3 s are both approved; at ~6.5 s A1 has left the window but A2
 * has not, so A3 is approved (one in the window) and A4, right after, is
 * declined (A2 and A3 in the window). A window of fixed buckets would count
 * A2 and A3 in different buckets for most alignments and approve A4. */
static const step_t slide_steps[] = {
    {"sl", "shop", 10, "EUR", "approved", "", 0},
    {"sl", "shop", 10, "EUR", "approved", "", 0},
    {"sl", "shop", 10, "EUR", "approved", "", 0},
    {"sl", "shop", 10, "EUR", "declined", "velocity_count", 0},
};

/* Milliseconds between the decisions of two payments. */
static int64_t decided_gap_ms(const msg_payment_t *a, const msg_payment_t *b)
{
    return llw_count(db,
                     "SELECT (extract(epoch FROM (SELECT decided_at FROM risk_decisions WHERE "
                     "payment_id = '%s') - (SELECT decided_at FROM risk_decisions WHERE "
                     "payment_id = '%s')) * 1000)::bigint",
                     b->payment_id, a->payment_id);
}

START_TEST(the_velocity_window_drops_only_what_left_it)
{
    static const char *const env[] = {"LEDGERLINE_RISK_VELOCITY_COUNT=2",
                                      "LEDGERLINE_RISK_VELOCITY_WINDOW_S=6", NO_SOFT, NULL};
    msg_payment_t pays[4];
    pid_t w = start("slide", env);
    llw_wait_consuming(m, "risk", 1, WAIT_MS);
    publish_steps("sl", slide_steps, 1, 0, pays);
    wait_done(1, 0);
    llw_sleep_ms(3000); /* time passing is the point here */
    publish_steps("sl", slide_steps + 1, 1, 1, pays);
    wait_done(2, 0);
    llw_sleep_ms(3500);
    publish_steps("sl", slide_steps + 2, 2, 2, pays);
    wait_done(4, 0);
    llw_stop_ok(w, STOP_MS, NULL);
    /* the premise: A1 had left the 6 s window when A3 was decided, A2 had
     * not when A4 was */
    int64_t a1_a3 = decided_gap_ms(&pays[0], &pays[2]), a2_a4 = decided_gap_ms(&pays[1], &pays[3]);
    LLW_ASSERT(a1_a3 > 6000 && a2_a4 < 6000,
               "timing premise broken (A1->A3 %" PRId64 " ms, want > 6000; A2->A4 %" PRId64
               " ms, want < 6000): the machine was too slow to say anything",
               a1_a3, a2_a4);
    llw_events_collect(ev);
    check_steps(slide_steps, 4, pays);
    check_risk_queues_empty();
}
END_TEST

/* ---- 3. velocity counted exactly once ------------------------------------ */

START_TEST(a_redelivered_payment_counts_once)
{
    static const char *const env[] = {"LEDGERLINE_RISK_VELOCITY_COUNT=2", NO_SOFT, NULL};
    msg_payment_t p1 = llw_payment(ledger, "twice", "payer", "shop", 10, "EUR");
    msg_payment_t p2 = llw_payment(ledger, "second", "payer", "shop", 10, "EUR");
    msg_payment_t p3 = llw_payment(ledger, "third", "payer", "shop", 10, "EUR");
    char *b1 = publish(&p1);
    publish_body(p1.payment_id, b1, strlen(b1)); /* the same delivery again */
    free(publish(&p2));
    free(publish(&p3));
    llw_confirm(m);
    pid_t w = start("twice", env);
    llw_wait_events(ev, MSG_TYPE_APPROVED, p1.payment_id, 2, WAIT_MS);
    wait_done(3, 0);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    /* counted once: p2 is the payer's second approval, p3 the third */
    check_decision(&p1, "approved", "", 0, 2);
    check_decision(&p2, "approved", "", 0, 1);
    check_decision(&p3, "declined", "velocity_count", 0, 1);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM risk_decisions") == 3,
               "want 3 decision rows (one per payment)");
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0,
               "a same-payload copy was rejected");
    check_payments_queue();
    check_risk_queues_empty();
    free(b1);
}
END_TEST

#define BURST_N 10

START_TEST(two_workers_count_one_payer_once)
{
    static const char *const env[] = {"LEDGERLINE_RISK_VELOCITY_COUNT=10",
                                      "LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=3",
                                      "LEDGERLINE_AMQP_PREFETCH=6",
                                      "LEDGERLINE_LOG_LEVEL=debug",
                                      NO_SOFT,
                                      NULL};
    pid_t a = start("burstA", env);
    pid_t b = start("burstB", env);
    llw_wait_consuming(m, "risk", 2, WAIT_MS);
    msg_payment_t pays[3 * BURST_N];
    for (size_t i = 0; i < 3 * BURST_N; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "burst%zu", i);
        pays[i] = llw_payment(ledger, tag, "hot", "shop", 1, "EUR");
        free(publish(&pays[i]));
    }
    llw_confirm(m);
    wait_done(3 * BURST_N, 0);
    llw_stop_ok(a, STOP_MS, NULL);
    llw_stop_ok(b, STOP_MS, NULL);
    llw_events_collect(ev);
    /* both workers decided some of the burst, else this proves nothing */
    size_t da = llw_log_count(a, "(score "), dbk = llw_log_count(b, "(score ");
    LLW_ASSERT(da > 0 && dbk > 0,
               "the burst was not shared: worker A decided %zu, worker B %zu (debug log lines)", da,
               dbk);
    int64_t approved =
        llw_count(db, "SELECT count(*) FROM risk_decisions WHERE decision = 'approved'");
    int64_t declined = llw_count(db, "SELECT count(*) FROM risk_decisions WHERE decision = "
                                     "'declined' AND rules = '{velocity_count}'");
    int64_t rows = llw_count(db, "SELECT count(*) FROM risk_decisions");
    LLW_ASSERT(approved == BURST_N && declined == 2 * BURST_N && rows == 3 * BURST_N,
               "two workers, velocity_count %d, %d payments of one payer: %" PRId64
               " approved, %" PRId64 " declined by velocity_count, %" PRId64
               " rows; want %d, %d, %d",
               BURST_N, 3 * BURST_N, approved, declined, rows, BURST_N, 2 * BURST_N, 3 * BURST_N);
    for (size_t i = 0; i < 3 * BURST_N; i++) {
        const char *id = pays[i].payment_id;
        int64_t n =
            llw_count(db, "SELECT count(*) FROM risk_decisions WHERE payment_id = '%s'", id);
        size_t ne = llw_events_count(ev, MSG_TYPE_APPROVED, id) +
                    llw_events_count(ev, MSG_TYPE_DECLINED, id);
        LLW_ASSERT(n == 1 && ne == 1, "payment %s: %" PRId64 " decisions, %zu outcome events", id,
                   n, ne);
    }
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_APPROVED, NULL) == BURST_N,
               "%zu payment.approved events, want %d",
               llw_events_count(ev, MSG_TYPE_APPROVED, NULL), BURST_N);
    check_payments_queue();
    check_risk_queues_empty();
}
END_TEST

/* ---- 4. blocklist ----------------------------------------------------------- */

static const step_t block_steps[] = {
    {"badguy", "shop", 10, "EUR", "declined", "blocklisted", 0},
    {"alice", "evil", 10, "EUR", "declined", "blocklisted", 0},
    {"evil", "badguy", 10, "EUR", "declined", "blocklisted", 0},
    {"alice", "shop", 10, "EUR", "approved", "", 0},
    {"badguy2", "shop", 10, "EUR", "approved", "", 0},            /* whole ids only */
    {"comment", "shop", 10, "EUR", "approved", "", 0},            /* text after # is a comment */
    {"badguy", "shop", 5000, "EUR", "declined", "max_amount", 0}, /* max_amount first, alone */
};

START_TEST(the_blocklist_declines_payer_and_payee)
{
    write_file(blockfile, "# blocked accounts\nbadguy\n  evil\t # fraud ring\n\n#comment\n");
    char benv[200];
    snprintf(benv, sizeof benv, "LEDGERLINE_RISK_BLOCKLIST_FILE=%s", blockfile);
    const char *const env[] = {benv, "LEDGERLINE_RISK_MAX_AMOUNT=EUR:1000", NO_SOFT, NULL};
    run_table("bl", block_steps, sizeof block_steps / sizeof block_steps[0], env);
}
END_TEST

START_TEST(sighup_reloads_the_blocklist_while_consuming)
{
    write_file(blockfile, "badguy\n");
    char benv[200];
    snprintf(benv, sizeof benv, "LEDGERLINE_RISK_BLOCKLIST_FILE=%s", blockfile);
    const char *const env[] = {benv, NO_SOFT, NULL};
    pid_t w = start("hup", env);
    llw_wait_consuming(m, "risk", 1, WAIT_MS);
    static const step_t before[] = {
        {"badguy", "shop", 10, "EUR", "declined", "blocklisted", 0},
        {"later", "shop", 10, "EUR", "approved", "", 0},
        {"shop2", "later", 10, "EUR", "approved", "", 0},
    };
    static const step_t after[] = {
        {"later", "shop", 10, "EUR", "declined", "blocklisted", 0},
        {"shop2", "later", 10, "EUR", "declined", "blocklisted", 0},
        {"badguy", "shop", 10, "EUR", "declined", "blocklisted", 0},
        {"steady", "shop", 10, "EUR", "approved", "", 0},
    };
    enum { NB = 3, NS = 40, NA = 4 };
    msg_payment_t pays[NB + NS + NA];
    publish_steps("h", before, NB, 0, pays);
    wait_done(NB, 0);
    /* a stream in flight while the file changes and the signal arrives */
    static const step_t stream = {"steady", "shop", 1, "EUR", "approved", "", 0};
    for (size_t i = 0; i < NS; i++)
        publish_steps("h", &stream, 1, NB + i, pays);
    write_file(blockfile, "badguy\nlater\n");
    llw_signal(w, SIGHUP);
    wait_logged(w, "SIGHUP: reloaded");
    publish_steps("h", after, NA, NB + NS, pays);
    wait_done(NB + NS + NA, 0);
    LLW_ASSERT(llw_wait_exit(w, 0) == LLW_TIMEDOUT, "the worker is not running after SIGHUP");
    LLW_ASSERT(llw_log_count(w, "SIGHUP: reload failed") == 0, "the reload of a good file failed");
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    check_steps(before, NB, pays);
    for (size_t i = 0; i < NS; i++)
        check_decision(&pays[NB + i], "approved", "", 0, 1);
    check_steps(after, NA, pays + NB + NS);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM risk_decisions") == NB + NS + NA,
               "every payment must have exactly one decision");
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0, "unexpected message.rejected");
    check_payments_queue();
    check_risk_queues_empty();
}
END_TEST

/* What makes the blocklist file unusable at the reload. */
static const struct {
    const char *label;
    int how; /* 0: removed, 1: replaced by a directory, 2: a line that is not an id */
} bad_reloads[] = {
    {"file removed", 0},
    {"file replaced by a directory (open works, read fails)", 1},
    {"a line that is not an account id", 2},
};

START_TEST(an_unusable_blocklist_on_reload_keeps_the_old_one)
{
    write_file(blockfile, "badguy\n");
    char benv[200];
    snprintf(benv, sizeof benv, "LEDGERLINE_RISK_BLOCKLIST_FILE=%s", blockfile);
    const char *const env[] = {benv, NO_SOFT, NULL};
    pid_t w = start("badhup", env);
    llw_wait_consuming(m, "risk", 1, WAIT_MS);
    static const step_t before[] = {{"badguy", "shop", 10, "EUR", "declined", "blocklisted", 0}};
    static const step_t after[] = {
        {"badguy", "shop", 10, "EUR", "declined", "blocklisted", 0},
        {"newbad", "shop", 10, "EUR", "approved", "", 0},
        {"alice", "shop", 10, "EUR", "approved", "", 0},
    };
    msg_payment_t pays[4];
    publish_steps("u", before, 1, 0, pays);
    wait_done(1, 0);
    switch (bad_reloads[_i].how) {
    case 0:
        ck_assert(unlink(blockfile) == 0);
        break;
    case 1:
        ck_assert(unlink(blockfile) == 0 && mkdir(blockfile, 0755) == 0);
        break;
    default:
        write_file(blockfile, "newbad\nnot an id!\n");
        break;
    }
    llw_signal(w, SIGHUP);
    wait_logged(w, "SIGHUP: reload");
    LLW_ASSERT(llw_log_count(w, "SIGHUP: reload failed") == 1 &&
                   llw_log_count(w, "SIGHUP: reloaded") == 0,
               "%s: the reload must fail with an error (logged %zu 'reload failed', %zu "
               "'reloaded')",
               bad_reloads[_i].label, llw_log_count(w, "SIGHUP: reload failed"),
               llw_log_count(w, "SIGHUP: reloaded"));
    publish_steps("u", after, 3, 1, pays);
    wait_done(4, 0);
    LLW_ASSERT(llw_wait_exit(w, 0) == LLW_TIMEDOUT, "%s: the worker stopped",
               bad_reloads[_i].label);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    check_steps(before, 1, pays);
    check_steps(after, 3, pays + 1);
    check_risk_queues_empty();
}
END_TEST

/* ---- 5. the score of the soft signals ------------------------------------ */

/* defaults: threshold 80, new_payee 20, above_median 60, factor 10 */
static const step_t score_steps[] = {
    {"sp", "X", 100, "EUR", "approved", "new_payee", 20},
    {"sp", "X", 100, "EUR", "approved", "", 0},
    {"sp", "X", 100, "EUR", "approved", "", 0}, /* 3 approvals, median 100 */
    {"sp", "Y", 1001, "EUR", "declined", "new_payee,above_median,score", 80},
    {"sp", "X", 1001, "EUR", "approved", "above_median", 60},
    {"sp", "Z", 1000, "EUR", "approved", "new_payee", 20}, /* exactly factor x median */
    {"sp", "Y", 1001, "EUR", "declined", "new_payee,above_median,score", 80}, /* still new */
    {"sq", "X", 100, "EUR", "approved", "new_payee", 20},                     /* per payer */
    {"sq", "Y", 5000, "EUR", "approved", "new_payee", 20}, /* one approval: no median */
};

START_TEST(the_score_adds_the_soft_signals)
{
    run_table("sc", score_steps, sizeof score_steps / sizeof score_steps[0], NULL);
}
END_TEST

/* ---- 6. bad input ------------------------------------------------------------ */

/* A valid payment.requested body for tag, as JSON to edit. */
static json_t *request_json(const char *tag)
{
    msg_payment_t p = llw_payment(ledger, tag, "alice", "bob", 10, "EUR");
    char *body = request_body(&p);
    json_t *j = llt_json(body);
    free(body);
    return j;
}

static char *edit(const char *tag, const char *field, json_t *value /* stolen; NULL: remove */)
{
    return llc_edit(request_json(tag), field, value);
}

/* body padded with spaces after its '{' to exactly len bytes (malloc'd) */
static char *pad_to(char *body, size_t len)
{
    size_t n = strlen(body);
    ck_assert(n <= len);
    char *s = malloc(len + 1);
    s[0] = '{';
    memset(s + 1, ' ', len - n);
    memcpy(s + 1 + (len - n), body + 1, n - 1);
    s[len] = '\0';
    free(body);
    return s;
}

static const struct {
    const char *label;
    const char *reason;
    const char *field; /* must appear in the detail; NULL: any detail */
} bad[] = {
    {"truncated JSON", "malformed_json", NULL},
    {"empty body", "malformed_json", NULL},
    {"duplicate key", "malformed_json", "amount"},
    {"invalid UTF-8", "malformed_json", NULL},
    {"payer missing", "schema_violation", "payer"},
    {"unknown field", "schema_violation", "colour"},
    {"amount is a real", "schema_violation", "amount"},
    {"amount is a string", "schema_violation", "amount"},
    {"amount is zero", "schema_violation", "amount"},
    {"amount is 10^14 + 1", "schema_violation", "amount"},
    {"currency lower case", "schema_violation", "currency"},
    {"currency of 4 letters", "schema_violation", "currency"},
    {"payer equals payee", "schema_violation", "payee"},
    {"payment_id of 65 chars", "schema_violation", "payment_id"},
    {"payer bad charset", "schema_violation", "payer"},
    {"metadata with 17 keys", "schema_violation", "metadata"},
    {"metadata value not a string", "schema_violation", "metadata"},
    {"metadata value an object", "schema_violation", "metadata"},
    {"description of 201 bytes", "schema_violation", "description"},
    {"description of 101 chars, 202 bytes", "schema_violation", "description"},
    {"root is an array", "schema_violation", NULL},
    {"16385 bytes", "oversized", NULL},
};
#define NBAD (sizeof bad / sizeof bad[0])

static char *bad_body(size_t i)
{
    char tag[16];
    snprintf(tag, sizeof tag, "bad%zu", i);
    char *s = NULL;
    switch (i) {
    case 0:
        s = llc_dump(request_json(tag));
        s[strlen(s) - 7] = '\0';
        break;
    case 1:
        s = strdup("");
        break;
    case 2: {
        char *v = llc_dump(request_json(tag));
        s = malloc(strlen(v) + 16);
        sprintf(s, "{\"amount\":5,%s", v + 1);
        free(v);
        break;
    }
    case 3:
        s = edit(tag, "description", json_string("PLACEHOLDER"));
        memcpy(strstr(s, "PLACEHOLDER"), "\xff\xfe", 2);
        break;
    case 4:
        s = edit(tag, "payer", NULL);
        break;
    case 5:
        s = edit(tag, "colour", json_string("red"));
        break;
    case 6:
        s = edit(tag, "amount", json_real(10.5));
        break;
    case 7:
        s = edit(tag, "amount", json_string("10"));
        break;
    case 8:
        s = edit(tag, "amount", json_integer(0));
        break;
    case 9:
        s = edit(tag, "amount", json_integer(MSG_AMOUNT_MAX + 1));
        break;
    case 10:
        s = edit(tag, "currency", json_string("eur"));
        break;
    case 11:
        s = edit(tag, "currency", json_string("EURO"));
        break;
    case 12:
        s = edit(tag, "payee", json_string("alice"));
        break;
    case 13: {
        char id[80];
        snprintf(id, sizeof id, "%s-", ledger);
        size_t n = strlen(id);
        memset(id + n, 'x', 65 - n);
        id[65] = '\0';
        s = edit(tag, "payment_id", json_string(id));
        break;
    }
    case 14:
        s = edit(tag, "payer", json_string("al ice"));
        break;
    case 15:
    case 16:
    case 17: {
        json_t *md = json_object();
        size_t keys = i == 15 ? MSG_METADATA_MAX + 1 : 2;
        for (size_t k = 0; k < keys; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%zu", k);
            json_object_set_new(md, key, json_string("v"));
        }
        if (i == 16)
            json_object_set_new(md, "n", json_integer(1));
        if (i == 17)
            json_object_set_new(md, "o", json_pack("{s:s}", "a", "b"));
        s = edit(tag, "metadata", md);
        break;
    }
    case 18: {
        char d[MSG_DESCRIPTION_MAX + 2];
        memset(d, 'd', MSG_DESCRIPTION_MAX + 1);
        d[MSG_DESCRIPTION_MAX + 1] = '\0';
        s = edit(tag, "description", json_string(d));
        break;
    }
    case 19: {
        char d[2 * 101 + 1] = "";
        for (int k = 0; k < 101; k++)
            strcat(d, "\xc3\xa9");
        s = edit(tag, "description", json_string(d));
        break;
    }
    case 20: {
        json_t *a = json_array();
        json_array_append_new(a, request_json(tag));
        s = llc_dump(a);
        break;
    }
    case 21:
        s = pad_to(llc_dump(request_json(tag)), MSG_BODY_MAX + 1);
        break;
    default:
        ck_abort_msg("no body for row %zu", i);
    }
    return s;
}

/* Valid requests at the edges of the same rules: each must be approved. */
#define NGOOD 5
static char *good_body(size_t i, msg_payment_t *p)
{
    char tag[16], payer[16];
    snprintf(tag, sizeof tag, "good%zu", i);
    snprintf(payer, sizeof payer, "g%zu", i);
    *p = llw_payment(ledger, tag, payer, "shop", 25, "EUR");
    switch (i) {
    case 0:
        break;
    case 1:
        p->amount = MSG_AMOUNT_MAX;
        break;
    case 2: {
        size_t n = strlen(p->payment_id);
        memset(p->payment_id + n, 'x', MSG_ID_MAX - n);
        p->payment_id[MSG_ID_MAX] = '\0';
        break;
    }
    case 3: {
        p->description[0] = '\0';
        for (int k = 0; k < 100; k++)
            strcat(p->description, "\xc3\xa9"); /* 200 bytes */
        p->has_description = true;
        p->metadata = json_object();
        for (int k = 0; k < MSG_METADATA_MAX; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", k);
            json_object_set_new(p->metadata, key, json_string("v"));
        }
        break;
    }
    default:
        return pad_to(request_body(p), MSG_BODY_MAX); /* exactly the limit */
    }
    return request_body(p);
}

START_TEST(bad_input_is_rejected_parked_and_acked)
{
    char *bodies[NBAD];
    char pids[NBAD][MSG_ID_MAX + 1];
    for (size_t i = 0; i < NBAD; i++) {
        bodies[i] = bad_body(i);
        size_t len = strlen(bodies[i]);
        /* the test data must be what the row says, by the codec's own rules */
        msg_payment_t p;
        memset(&p, 0, sizeof p);
        msg_reject_t why;
        int rc = msg_payment_decode(bodies[i], len, &p, &why);
        ck_assert_msg(rc == LL_EREJECT && strcmp(msg_reason_str(why.reason), bad[i].reason) == 0,
                      "test row '%s': the codec says %s %s", bad[i].label, ll_errname(rc),
                      rc == LL_EREJECT ? msg_reason_str(why.reason) : "");
        if (msg_peek_payment_id(bodies[i], len, pids[i]) != LL_OK)
            pids[i][0] = '\0';
        publish_body(pids[i][0] ? pids[i] : NULL, bodies[i], len);
    }
    ck_assert(strlen(bodies[21]) == MSG_BODY_MAX + 1);
    /* the worker goes on: valid requests at the edges after the bad ones */
    msg_payment_t good[NGOOD];
    for (size_t i = 0; i < NGOOD; i++) {
        char *b = good_body(i, &good[i]);
        if (i == NGOOD - 1)
            ck_assert(strlen(b) == MSG_BODY_MAX);
        publish_body(good[i].payment_id, b, strlen(b));
        free(b);
    }
    llw_confirm(m);
    pid_t w = start("bad", NULL);
    wait_done(NGOOD, NBAD);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    for (size_t i = 0; i < NGOOD; i++)
        check_decision(&good[i], "approved", "new_payee", 20, 1);

    json_t *dead = llw_queue_drain(m, "risk.dead");
    LLW_ASSERT(json_array_size(dead) == NBAD, "risk.dead holds %zu messages, want %zu",
               json_array_size(dead), NBAD);
    for (size_t i = 0; i < NBAD; i++) {
        const char *label = bad[i].label;
        size_t len = strlen(bodies[i]);
        const json_t *j = llc_check_rejected(ev, "risk", label, pids[i][0] ? pids[i] : NULL,
                                             bodies[i], len, bad[i].reason, bad[i].field);
        /* the parked original: same bytes, reason and detail in headers */
        const json_t *parked =
            llc_find_parked(dead, "risk.dead", label, bodies[i], len, bad[i].reason);
        const char *hd = llw_header(parked, "x-ledgerline-detail");
        LLW_ASSERT(hd && strcmp(hd, llc_jstr(j, "detail")) == 0,
                   "%s: parked with x-ledgerline-detail '%s', the event says '%s'", label,
                   hd ? hd : "(none)", llc_jstr(j, "detail"));
        free(bodies[i]);
    }
    json_decref(dead);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM risk_decisions") == NGOOD,
               "a rejected message has a decision");
    check_payments_queue();
    check_risk_queues_empty();
    for (size_t i = 0; i < NGOOD; i++)
        msg_payment_clear(&good[i]);
}
END_TEST

/* ---- 7. duplicates ------------------------------------------------------------ */

/* p's request with the keys in another order and spaces: the same payload
 * in other bytes. Caller frees. */
static char *reordered_body(const msg_payment_t *p)
{
    char *s = malloc(1024);
    snprintf(s, 1024,
             "{ \"currency\" : \"%s\", \"amount\" : %" PRId64
             ", \"payee\" : \"%s\", \"payer\" : \"%s\", \"payment_id\" : \"%s\" }",
             p->currency, p->amount, p->payee, p->payer, p->payment_id);
    return s;
}

START_TEST(a_duplicate_replays_the_original_event)
{
    bool forget_redis = _i == 1; /* 0: Redis answers; 1: only PostgreSQL remembers */
    static const char *const env[] = {"LEDGERLINE_RISK_MAX_AMOUNT=EUR:1000", NO_SOFT, NULL};
    msg_payment_t ok = llw_payment(ledger, "dup-ok", "alice", "shop", 100, "EUR");
    msg_payment_t no = llw_payment(ledger, "dup-no", "alice", "shop", 5000, "EUR");
    char *ok_body = publish(&ok);
    char *no_body = publish(&no);
    llw_confirm(m);
    pid_t w = start("dup1", env);
    wait_done(2, 0);
    if (forget_redis) {
        llw_stop_ok(w, STOP_MS, NULL);
        const char *ids[] = {ok.payment_id, no.payment_id};
        for (size_t i = 0; i < 2; i++)
            llr_idem_forget(db, "risk", ids[i], "after deciding (the outcome belongs there)");
        w = start("dup2", env);
    }
    /* the same payloads again: byte for byte, and in other bytes */
    publish_body(ok.payment_id, ok_body, strlen(ok_body));
    char *again = reordered_body(&ok);
    publish_body(ok.payment_id, again, strlen(again));
    publish_body(no.payment_id, no_body, strlen(no_body));
    llw_confirm(m);
    llw_wait_events(ev, MSG_TYPE_APPROVED, ok.payment_id, 3, WAIT_MS);
    llw_wait_events(ev, MSG_TYPE_DECLINED, no.payment_id, 2, WAIT_MS);
    wait_done(2, 0);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0,
               "a same-payload duplicate was rejected");
    check_decision(&ok, "approved", "", 0, 3);
    check_decision(&no, "declined", "max_amount", 0, 2);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM risk_decisions") == 2 &&
                   llw_count(db, "SELECT count(*) FROM processed") == 2,
               "a duplicate made a second decision or processed row");
    check_payments_queue();
    check_risk_queues_empty();
    free(ok_body);
    free(no_body);
    free(again);
}
END_TEST

START_TEST(a_different_payload_is_an_idempotency_conflict)
{
    static const char *const env[] = {"LEDGERLINE_RISK_MAX_AMOUNT=EUR:1000", NO_SOFT, NULL};
    msg_payment_t ok = llw_payment(ledger, "cf-ok", "alice", "shop", 100, "EUR");
    msg_payment_t no = llw_payment(ledger, "cf-no", "alice", "shop", 5000, "EUR");
    free(publish(&ok));
    free(publish(&no));
    llw_confirm(m);
    pid_t w = start("conflict", env);
    wait_done(2, 0);
    char hash_before[65];
    ck_assert(msg_payment_hash(&ok, hash_before) == LL_OK);

    static const struct {
        int which; /* 0: ok, 1: no */
        const char *changes;
        const char *names[3]; /* the detail must name each */
    } conflicts[] = {
        {0, "amount", {"amount"}},
        {0, "payee+description", {"payee", "description"}},
        {1, "currency", {"currency"}},
    };
    enum { NC = sizeof conflicts / sizeof conflicts[0] };
    char *bodies[NC];
    for (size_t i = 0; i < NC; i++) {
        msg_payment_t c = conflicts[i].which ? no : ok;
        if (strcmp(conflicts[i].changes, "amount") == 0) {
            c.amount += 50;
        } else if (strcmp(conflicts[i].changes, "currency") == 0) {
            snprintf(c.currency, sizeof c.currency, "USD");
        } else {
            snprintf(c.payee, sizeof c.payee, "carol");
            snprintf(c.description, sizeof c.description, "changed");
            c.has_description = true;
        }
        bodies[i] = publish(&c);
    }
    llw_confirm(m);
    wait_done(2, NC);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    json_t *dead = llw_queue_drain(m, "risk.dead");
    LLW_ASSERT(json_array_size(dead) == NC, "risk.dead holds %zu messages, want %d",
               json_array_size(dead), (int)NC);
    for (size_t i = 0; i < NC; i++) {
        const char *id = conflicts[i].which ? no.payment_id : ok.payment_id;
        llc_check_conflict(ev, dead, "risk", "risk.dead", i, conflicts[i].changes,
                           conflicts[i].names, id, bodies[i]);
        free(bodies[i]);
    }
    json_decref(dead);
    /* no effect: the original decisions stand */
    check_decision(&ok, "approved", "", 0, 1);
    check_decision(&no, "declined", "max_amount", 0, 1);
    char *hash = llw_text(db,
                          "SELECT payload_hash FROM processed WHERE stage = 'risk' AND "
                          "payment_id = '%s'",
                          ok.payment_id);
    LLW_ASSERT(hash && strcmp(hash, hash_before) == 0, "payload_hash changed to %s",
               hash ? hash : "(none)");
    free(hash);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM risk_decisions") == 2,
               "a conflicting duplicate made a decision");
    check_payments_queue();
    check_risk_queues_empty();
}
END_TEST

/* ---- 8. rule-set version and `ledgerctl risk show` ----------------------- */

START_TEST(the_ruleset_version_is_recorded_and_shown)
{
    static const char *const env[] = {"LEDGERLINE_RISK_RULESET_VERSION=v7",
                                      "LEDGERLINE_RISK_MAX_AMOUNT=EUR:100", NULL};
    want_version = "v7";
    static const step_t steps[] = {
        {"rv", "shop", 50, "EUR", "approved", "new_payee", 20},
        {"rv", "shop", 500, "EUR", "declined", "max_amount", 0},
    };
    msg_payment_t pays[2];
    publish_steps("rv", steps, 2, 0, pays);
    pid_t w = start("version", env);
    wait_done(2, 0);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    check_steps(steps, 2, pays); /* rows say v7 */
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM risk_decisions WHERE ruleset_version <> 'v7'") ==
                   0,
               "a decision without the configured rule-set version");

    for (size_t i = 0; i < 2; i++) {
        const char *id = pays[i].payment_id;
        char *out = NULL, *err = NULL;
        int rc = llt_ctl(&out, &err, ledger, "risk show %s --json", id);
        LLW_ASSERT(rc == 0, "ledgerctl risk show %s --json: exit %d: %s%s", id, rc, out, err);
        json_error_t jerr;
        json_t *j = json_loads(out, 0, &jerr);
        LLW_ASSERT(json_is_object(j), "risk show --json printed no JSON object: %s", out);
        char rules[256];
        join_rules(json_object_get(j, "rules"), rules, sizeof rules);
        char *decided = llw_text(db,
                                 "SELECT to_char(decided_at AT TIME ZONE 'UTC', "
                                 "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM risk_decisions WHERE "
                                 "payment_id = '%s'",
                                 id);
        LLW_ASSERT(strcmp(llc_jstr(j, "payment_id"), id) == 0 &&
                       strcmp(llc_jstr(j, "decision"), steps[i].decision) == 0 &&
                       json_is_integer(json_object_get(j, "score")) &&
                       json_integer_value(json_object_get(j, "score")) == steps[i].score &&
                       strcmp(rules, steps[i].rules) == 0 &&
                       strcmp(llc_jstr(j, "ruleset_version"), "v7") == 0 && decided &&
                       strcmp(llc_jstr(j, "decided_at"), decided) == 0,
                   "risk show %s --json: %s; want decision %s, score %d, rules [%s], "
                   "ruleset_version v7, decided_at %s",
                   id, out, steps[i].decision, steps[i].score, steps[i].rules,
                   decided ? decided : "?");
        free(decided);
        json_decref(j);
        free(out);
        free(err);
        /* and for people */
        rc = llt_ctl(&out, &err, ledger, "risk show %s", id);
        LLW_ASSERT(rc == 0 && strstr(out, steps[i].decision) && strstr(out, "v7") &&
                       strstr(out, id),
                   "ledgerctl risk show %s: exit %d: %s%s", id, rc, out, err);
        free(out);
        free(err);
    }
    char unknown[MSG_ID_MAX + 1];
    snprintf(unknown, sizeof unknown, "%s-nosuch", ledger);
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "risk show %s --json", unknown);
    LLW_ASSERT(rc == 1 && strstr(err, unknown) && strstr(err, "fix"),
               "risk show of an unknown payment: exit %d (want 1), stderr '%s' (want the id and "
               "a fix)",
               rc, err);
    free(out);
    free(err);
}
END_TEST

/* ---- 9. bad configuration ------------------------------------------------- */

/* A setting the worker must refuse at start, and what the error must name.
 * path: 0 none; 1 a file that does not exist; 2 a file with a line that is
 * not an id; 3 a directory (opens, cannot be read). With a path, the path
 * is appended to env and the error must name it. */
static const struct {
    const char *env;
    int path;
    const char *names;
} bad_settings[] = {
    {"LEDGERLINE_RISK_MAX_AMOUNT=EUR:abc", 0, "risk.max_amount"},
    {"LEDGERLINE_RISK_MAX_AMOUNT=EUR:0", 0, "risk.max_amount"},
    {"LEDGERLINE_RISK_MAX_AMOUNT=eur:100", 0, "risk.max_amount"},
    {"LEDGERLINE_RISK_MAX_AMOUNT=EUR1000", 0, "risk.max_amount"},
    {"LEDGERLINE_RISK_BLOCKLIST_FILE=", 1, NULL},
    {"LEDGERLINE_RISK_BLOCKLIST_FILE=", 2, NULL},
    {"LEDGERLINE_RISK_SCORE_THRESHOLD=101", 0, "score_threshold"},
    {"LEDGERLINE_RISK_VELOCITY_COUNT=-1", 0, "velocity_count"},
    {"LEDGERLINE_RISK_BLOCKLIST_FILE=", 3, NULL},
};

START_TEST(bad_risk_settings_stop_the_worker_at_start)
{
    char path[200] = "", env[300], names[200];
    switch (bad_settings[_i].path) {
    case 1:
        snprintf(path, sizeof path, "%s-missing", blockfile);
        break;
    case 2:
        snprintf(path, sizeof path, "%s", blockfile);
        write_file(path, "okid\nnot an id\n");
        break;
    case 3:
        snprintf(path, sizeof path, "%s", blockdir);
        ck_assert(mkdir(blockdir, 0755) == 0);
        break;
    default:
        break;
    }
    snprintf(env, sizeof env, "%s%s", bad_settings[_i].env, path);
    snprintf(names, sizeof names, "%s", bad_settings[_i].names ? bad_settings[_i].names : path);
    /* a request waiting: a worker that refuses its settings consumes nothing */
    msg_payment_t p = llw_payment(ledger, "waiting", "alice", "shop", 10, "EUR");
    free(publish(&p));
    llw_confirm(m);
    const char *const extra[] = {env, NULL};
    pid_t w = start("badcfg", extra);
    llw_expect_exit(w);
    int st = llw_wait_exit(w, 10000);
    char *log = llw_slurp(llw_log(w));
    LLW_ASSERT(st > 0, "%s: the worker must exit non-zero at start: %s; log:\n%s", env,
               llw_status_str(st), log);
    LLW_ASSERT(strstr(log, names), "%s: the error does not name %s; log:\n%s", env, names, log);
    free(log);
    LLW_ASSERT(llw_queue_depth(m, "risk") == 1 &&
                   llw_count(db, "SELECT count(*) FROM risk_decisions") == 0,
               "%s: a worker with bad settings consumed or decided something", env);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("risk");
    TCase *tc = tcase_create("risk-worker");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, max_amount_declines_above_the_limit_of_its_currency);
    tcase_add_test(tc, velocity_count_and_sum_at_their_boundaries);
    tcase_add_test(tc, approvals_older_than_the_velocity_window_stop_counting);
    tcase_add_test(tc, the_velocity_window_drops_only_what_left_it);
    tcase_add_test(tc, a_redelivered_payment_counts_once);
    tcase_add_test(tc, two_workers_count_one_payer_once);
    tcase_add_test(tc, the_blocklist_declines_payer_and_payee);
    tcase_add_test(tc, sighup_reloads_the_blocklist_while_consuming);
    tcase_add_loop_test(tc, an_unusable_blocklist_on_reload_keeps_the_old_one, 0,
                        (int)(sizeof bad_reloads / sizeof bad_reloads[0]));
    tcase_add_test(tc, the_score_adds_the_soft_signals);
    tcase_add_test(tc, bad_input_is_rejected_parked_and_acked);
    tcase_add_loop_test(tc, a_duplicate_replays_the_original_event, 0, 2);
    tcase_add_test(tc, a_different_payload_is_an_idempotency_conflict);
    tcase_add_test(tc, the_ruleset_version_is_recorded_and_shown);
    tcase_add_loop_test(tc, bad_risk_settings_stop_the_worker_at_start, 0,
                        (int)(sizeof bad_settings / sizeof bad_settings[0]));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
