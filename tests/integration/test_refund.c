/*
 * test_refund.c - the real refund-worker (and settlement-worker) against
 * the test stack: full and partial refunds move money back from the payee
 * to the payer and never add up past the payment; a refund of a payment
 * that did not complete fails with its own reason; a duplicate replays
 * the same event, a changed payload is an idempotency_conflict naming the
 * fields; bodies the stage cannot use are rejected and parked while the
 * worker goes on; two workers racing two refunds for a payment's last
 * cent let exactly one through; settlement nets refunds before and after
 * the payout and carries a batch's shortfall forward instead of paying a
 * negative net; kill -9 at each crash point refunds once; `ledgerctl
 * verify` (with its refund invariants) is green after each test.
 *
 * Payments are posted straight with ledger_post(), as the payment stage
 * posts them, from a payer with a large overdraft, and, where settlement
 * matters, published as payment.completed to a settlement-worker whose
 * grace keeps every window open ("adder"); closers with grace 0 close
 * what is due. Windows are W_TEST seconds, the refund-worker's too.
 *
 * Ids start with the ledger's (unique) database name, so Redis keys and
 * batch ids never repeat across tests.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg_encode.h"

#define REFUND_WORKER     LL_BIN_DIR "/refund-worker"
#define SETTLEMENT_WORKER LL_BIN_DIR "/settlement-worker"
#define WAIT_MS           40000
#define STOP_MS           20000
#define W_TEST            600        /* settlement window of every test, seconds */
#define GRACE_OPEN        86400000LL /* the adder's grace: no window it sees closes */

static const char *const queues[] = {
    "refunds",    "refunds.dead",    "refunds.retry.1s",    "refunds.retry.30s",
    "settlement", "settlement.dead", "settlement.retry.1s", NULL};

LLW_FIXTURE(queues)

static char payer[MSG_ID_MAX + 1];

static void setup_refunds(void)
{
    setup();
    snprintf(payer, sizeof payer, "%s-payer", ledger);
    llw_ctl(ledger, "account create %s --currency EUR --overdraft 1000000000000000", payer);
}

/* ---- accounts, payments, refunds ------------------------------------------ */

/* Merchant "<ledger>-<tag>" (into id) with fee bps and an overdraft. */
static void merchant(char *id, size_t n, const char *tag, int bps, int64_t overdraft)
{
    snprintf(id, n, "%s-%s", ledger, tag);
    llw_ctl(ledger,
            "account create %s --currency EUR --kind merchant --fee-bps %d --overdraft %" PRId64,
            id, bps, overdraft);
}

/* Posts payment "<ledger>-<tag>" of `amount` from the payer to `payee` as
 * the payment stage does. */
static msg_payment_t pay(const char *tag, const char *payee, int64_t amount)
{
    msg_payment_t p = llw_payment(ledger, tag, payer, payee, amount, "EUR");
    char *r = llw_text(
        db, "SELECT status FROM ledger_post('%s', 'payment', '%s', '%s', %" PRId64 ", 'EUR')",
        p.payment_id, p.payer, p.payee, p.amount);
    LLW_ASSERT(r && strcmp(r, "posted") == 0, "posting payment %s: %s", p.payment_id,
               r ? r : "(no row)");
    free(r);
    return p;
}

/* Publishes p's payment.completed (posted at posted_ms) for settlement. */
static void publish_completed(const msg_payment_t *p, int64_t posted_ms)
{
    char *tid = llw_text(db, "SELECT id FROM transfers WHERE kind = 'payment' AND ref = '%s'",
                         p->payment_id);
    char *body = msg_encode_completed(p, tid, posted_ms, posted_ms + 1);
    ck_assert_ptr_nonnull(body);
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_COMPLETED, p->payment_id, MSG_TYPE_COMPLETED,
                    body, strlen(body));
    free(body);
    free(tid);
}

/* "<ledger>-<tag>" into id. */
static void rid(char *id, size_t n, const char *tag)
{
    snprintf(id, n, "%s-%s", ledger, tag);
}

/* Publishes refund.requested {refund_id, payment_id, amount[, reason]} as
 * a producer does (not confirmed). */
static void publish_refund(const char *refund_id, const char *payment_id, int64_t amount,
                           const char *reason)
{
    char body[512];
    int w = snprintf(body, sizeof body,
                     "{\"refund_id\":\"%s\",\"payment_id\":\"%s\",\"amount\":%" PRId64 "%s%s%s}",
                     refund_id, payment_id, amount, reason ? ",\"reason\":\"" : "",
                     reason ? reason : "", reason ? "\"" : "");
    ck_assert(w > 0 && (size_t)w < sizeof body);
    llw_publish_raw(m, "ledgerline.commands", MSG_TYPE_REFUND_REQUESTED, refund_id,
                    MSG_TYPE_REFUND_REQUESTED, body, (size_t)w);
}

static pid_t start_refund(const char *instance, const char *const *extra)
{
    const char *env[8] = {"LEDGERLINE_SETTLEMENT_WINDOW_S=600"};
    size_t k = 1;
    for (size_t i = 0; extra && extra[i] && k < 7; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    return llw_start_instance(REFUND_WORKER, ledger, instance, env);
}

static pid_t start_settlement(const char *instance, int64_t grace_ms)
{
    char grace[96];
    snprintf(grace, sizeof grace, "LEDGERLINE_SETTLEMENT_GRACE_MS=%" PRId64, grace_ms);
    const char *env[] = {"LEDGERLINE_SETTLEMENT_WINDOW_S=600", grace,
                         "LEDGERLINE_SETTLEMENT_CLOSE_INTERVAL_MS=200", NULL};
    return llw_start_instance(SETTLEMENT_WORKER, ledger, instance, env);
}

/* Until `n` refunds are decided, each one's event published, the queue
 * drained and the outbox empty. */
static void wait_refunds(int64_t n, int64_t rejected, const char *what)
{
    llw_done_t w = {.counts = {"SELECT count(*) FROM refunds"},
                    .rows = n,
                    .events = {MSG_TYPE_REFUND_COMPLETED, MSG_TYPE_REFUND_FAILED},
                    .distinct = n,
                    .rejected = rejected,
                    .drained = "refunds"};
    llw_wait_done(&fx, &w, WAIT_MS, what);
}

/* The settlement adder: every published payment.completed in its batch
 * (`items` in all), no batch closed; then stopped. */
static void add_all(int64_t items)
{
    pid_t a = start_settlement("adder", GRACE_OPEN);
    llw_wait_sql(db, items, WAIT_MS, "the adder to put every payment in its batch",
                 "SELECT count(*) FROM settlement_items");
    llw_wait_drained(m, "settlement", WAIT_MS);
    llw_stop_ok(a, STOP_MS, "settlement adder");
}

/* A closer (grace 0) until `n` batches are closed in all. */
static void close_due(int64_t n)
{
    pid_t c = start_settlement("closer", 0);
    llw_wait_sql(db, n, WAIT_MS, "the closer to close the batches that are due",
                 "SELECT count(*) FROM settlement_batches WHERE status = 'closed'");
    llw_wait_sql(db, 0, WAIT_MS, "the closer to publish its events",
                 "SELECT count(*) FROM outbox_pending");
    llw_stop_ok(c, STOP_MS, "settlement closer");
}

/* The start (epoch s) of the window `back` windows before the current. */
static int64_t past_window(int back)
{
    int64_t now_s = clock_now_ms() / 1000;
    return now_s / W_TEST * W_TEST - back * W_TEST;
}

/* refunds.outcome of refund_id ("(none)" if it has no row); caller frees. */
static char *outcome(const char *refund_id)
{
    char *o = llw_text(db, "SELECT outcome FROM refunds WHERE refund_id = '%s'", refund_id);
    return o ? o : strdup("(none)");
}

static void assert_outcome(const char *refund_id, const char *want)
{
    char *o = outcome(refund_id);
    LLW_ASSERT(strcmp(o, want) == 0, "refund %s: outcome %s, want %s", refund_id, o, want);
    free(o);
}

static int64_t jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : INT64_MIN;
}

/* The refund.completed of refund_id: amount, totals, batch. */
static void check_completed(const char *refund_id, int64_t amount, int64_t total, int64_t left,
                            const char *batch_id)
{
    json_t *e;
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REFUND_COMPLETED, "refund_id", refund_id, &e) >= 1,
               "no refund.completed for %s", refund_id);
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(jint(j, "amount") == amount && jint(j, "refunded_total") == total &&
                   jint(j, "remaining") == left &&
                   (!batch_id || strcmp(llc_jstr(j, "batch_id"), batch_id) == 0) &&
                   strcmp(llc_jstr(j, "payer"), payer) == 0,
               "refund.completed of %s: %s\n want amount %" PRId64 " refunded_total %" PRId64
               " remaining %" PRId64 " batch %s",
               refund_id, llc_jstr(e, "body"), amount, total, left, batch_id ? batch_id : "(any)");
}

static void check_failed(const char *refund_id, const char *reason)
{
    json_t *e;
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REFUND_FAILED, "refund_id", refund_id, &e) >= 1,
               "no refund.failed for %s", refund_id);
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(strcmp(llc_jstr(j, "reason"), reason) == 0, "refund.failed of %s: %s, want %s",
               refund_id, llc_jstr(e, "body"), reason);
    assert_outcome(refund_id, reason);
}

/* ---- refunds ---------------------------------------------------------------- */

START_TEST(refunds_move_money_back_and_never_exceed_the_payment)
{
    char shop[96], r[4][96];
    merchant(shop, sizeof shop, "shop", 0, 0);
    msg_payment_t p = pay("p1", shop, 10000);
    rid(r[0], sizeof r[0], "r-part"), rid(r[1], sizeof r[1], "r-rest");
    rid(r[2], sizeof r[2], "r-cent"), rid(r[3], sizeof r[3], "r-ghost");
    pid_t w = start_refund("w1", NULL);
    publish_refund(r[0], p.payment_id, 3000, "damaged in transit");
    llw_confirm(m);
    wait_refunds(1, 0, "the partial refund");
    publish_refund(r[1], p.payment_id, 7000, NULL);
    publish_refund(r[2], p.payment_id, 1, NULL);        /* nothing left */
    publish_refund(r[3], "no-such-payment", 100, NULL); /* never completed */
    llw_confirm(m);
    wait_refunds(4, 0, "the other three refunds");
    llw_stop_ok(w, STOP_MS, "refund-worker");

    assert_outcome(r[0], "completed");
    assert_outcome(r[1], "completed");
    check_completed(r[0], 3000, 3000, 7000, NULL);
    check_completed(r[1], 7000, 10000, 0, NULL);
    check_failed(r[2], "refund_exceeds_payment");
    check_failed(r[3], "payment_not_completed");
    LLW_ASSERT(llw_balance(db, shop) == 0 && llw_balance(db, payer) == 0,
               "a payment refunded in full leaves payee and payer where they were: %" PRId64
               ", %" PRId64,
               llw_balance(db, shop), llw_balance(db, payer));
    /* exactly two refund transfers, payee -> payer, with the reason kept */
    LLW_ASSERT(llw_count(db,
                         "SELECT count(*) FROM transfers WHERE kind = 'refund' AND "
                         "debit_account = '%s' AND credit_account = '%s'",
                         shop, payer) == 2,
               "want two refund transfers from the payee to the payer");
    char *why = llw_text(db, "SELECT reason FROM refunds WHERE refund_id = '%s'", r[0]);
    LLW_ASSERT(why && strcmp(why, "damaged in transit") == 0, "reason kept: %s",
               why ? why : "(null)");
    free(why);
    /* no payment was in a batch yet: each refund joined the payee's next
     * batch (the current window's, created), which nets them */
    LLW_ASSERT(llw_count(db,
                         "SELECT count(*) FROM settlement_batches WHERE payee = '%s' AND "
                         "refunds = 10000 AND refund_count = 2 AND status = 'open'",
                         shop) == 1,
               "the payee's open batch should net both refunds");
    llw_assert_verify(ledger);
}
END_TEST

START_TEST(a_duplicate_replays_its_event_and_a_changed_payload_is_a_conflict)
{
    char shop[96], r1[96];
    merchant(shop, sizeof shop, "shop", 0, 0);
    msg_payment_t p = pay("p1", shop, 5000);
    rid(r1, sizeof r1, "r1");
    pid_t w = start_refund("w1", NULL);
    publish_refund(r1, p.payment_id, 1000, NULL);
    llw_confirm(m);
    wait_refunds(1, 0, "the refund");
    publish_refund(r1, p.payment_id, 1000, NULL); /* redelivered by its producer */
    publish_refund(r1, p.payment_id, 2000, NULL); /* same refund_id, other amount */
    llw_confirm(m);
    llw_done_t d = {.counts = {"SELECT count(*) FROM refunds"},
                    .rows = 1,
                    .events = {MSG_TYPE_REFUND_COMPLETED},
                    .distinct = 1,
                    .rejected = 1,
                    .drained = "refunds"};
    llw_wait_done(&fx, &d, WAIT_MS, "the duplicate replayed and the conflict rejected");
    llw_wait_events(ev, MSG_TYPE_REFUND_COMPLETED, NULL, 2, WAIT_MS); /* replayed copy */
    llw_stop_ok(w, STOP_MS, "refund-worker");

    json_t *e;
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REFUND_COMPLETED, "refund_id", r1, &e) == 2,
               "the duplicate should replay the same refund.completed (same bytes)");
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'refund'") == 1,
               "one refund transfer whatever the deliveries");
    LLW_ASSERT(llw_balance(db, shop) == 4000, "payee after one refund of 1000: %" PRId64,
               llw_balance(db, shop));
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REJECTED, "refund_id", r1, &e) == 1,
               "the conflict's message.rejected");
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(strcmp(llc_jstr(j, "reason"), "idempotency_conflict") == 0 &&
                   strstr(llc_jstr(j, "detail"), "refund_id") &&
                   strstr(llc_jstr(j, "detail"), "different values of: amount") &&
                   strcmp(llc_jstr(j, "queue"), "refunds") == 0 &&
                   strcmp(llc_jstr(j, "payment_id"), p.payment_id) == 0,
               "message.rejected of the conflict: %s", llc_jstr(e, "body"));
    json_t *parked = llw_queue_drain(m, "refunds.dead");
    LLW_ASSERT(json_array_size(parked) == 1 &&
                   strstr(llc_jstr(json_array_get(parked, 0), "body"), "\"amount\":2000"),
               "the conflicting request should be parked in refunds.dead (%zu parked)",
               json_array_size(parked));
    json_decref(parked);
    llw_assert_verify(ledger);
}
END_TEST

START_TEST(a_body_the_stage_cannot_use_is_rejected_and_parked_and_the_worker_goes_on)
{
    char shop[96], ok[96];
    merchant(shop, sizeof shop, "shop", 0, 0);
    msg_payment_t p = pay("p1", shop, 5000);
    rid(ok, sizeof ok, "r-ok");
    pid_t w = start_refund("w1", NULL);
    static const char junk[] = "{\"refund_id\": \"x";
    llw_publish_raw(m, "ledgerline.commands", MSG_TYPE_REFUND_REQUESTED, NULL,
                    MSG_TYPE_REFUND_REQUESTED, junk, sizeof junk - 1);
    char bad[256];
    snprintf(bad, sizeof bad, "{\"refund_id\":\"%s-r-zero\",\"payment_id\":\"%s\",\"amount\":0}",
             ledger, p.payment_id);
    llw_publish_raw(m, "ledgerline.commands", MSG_TYPE_REFUND_REQUESTED, NULL,
                    MSG_TYPE_REFUND_REQUESTED, bad, strlen(bad));
    publish_refund(ok, p.payment_id, 500, NULL);
    llw_confirm(m);
    wait_refunds(1, 2, "the valid refund decided and the two bad bodies rejected");
    llw_stop_ok(w, STOP_MS, "refund-worker");
    assert_outcome(ok, "completed");
    char zero[96];
    rid(zero, sizeof zero, "r-zero");
    json_t *e;
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REJECTED, "refund_id", zero, &e) == 1,
               "the schema violation's message.rejected should carry its refund_id");
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(strcmp(llc_jstr(j, "reason"), "schema_violation") == 0 &&
                   strstr(llc_jstr(j, "detail"), "amount"),
               "rejection of amount 0: %s", llc_jstr(e, "body"));
    json_t *parked = llw_queue_drain(m, "refunds.dead");
    LLW_ASSERT(json_array_size(parked) == 2, "both bad bodies parked, %zu were",
               json_array_size(parked));
    json_decref(parked);
    llw_assert_verify(ledger);
}
END_TEST

/* Two refund-workers, batches of one message: for each of NRACE payments
 * of 100, a refund of 99 first, then two refunds of 1 published back to
 * back: exactly one of the two may complete. */
#define NRACE 40

START_TEST(two_refunds_racing_for_the_last_cent_exactly_one_wins)
{
    char shop[96];
    merchant(shop, sizeof shop, "shop", 0, 0);
    static msg_payment_t p[NRACE];
    for (int i = 0; i < NRACE; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "p%d", i);
        p[i] = pay(tag, shop, 100);
    }
    static const char *const one[] = {"LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=1", NULL};
    pid_t a = start_refund("w1", one), b = start_refund("w2", one);
    llw_wait_consuming(m, "refunds", 2, WAIT_MS);
    for (int i = 0; i < NRACE; i++) {
        char r[96];
        snprintf(r, sizeof r, "%s-big%d", ledger, i);
        publish_refund(r, p[i].payment_id, 99, NULL);
    }
    llw_confirm(m);
    wait_refunds(NRACE, 0, "the refunds of 99");
    for (int i = 0; i < NRACE; i++) {
        char r[96];
        snprintf(r, sizeof r, "%s-a%d", ledger, i);
        publish_refund(r, p[i].payment_id, 1, NULL);
        snprintf(r, sizeof r, "%s-b%d", ledger, i);
        publish_refund(r, p[i].payment_id, 1, NULL);
    }
    llw_confirm(m);
    wait_refunds(3 * NRACE, 0, "the racing refunds of the last cent");
    llw_stop_ok(a, STOP_MS, "refund-worker w1");
    llw_stop_ok(b, STOP_MS, "refund-worker w2");
    int64_t bad =
        llw_count(db, "SELECT count(*) FROM (SELECT payment_id FROM refunds "
                      "WHERE refund_id NOT LIKE '%%-big%%' GROUP BY payment_id "
                      "HAVING count(*) FILTER (WHERE outcome = 'completed') <> 1 "
                      "OR count(*) FILTER (WHERE outcome = 'refund_exceeds_payment') <> 1) x");
    LLW_ASSERT(bad == 0,
               "%" PRId64 " payment(s) did not have exactly one of two last-cent refunds win", bad);
    LLW_ASSERT(llw_balance(db, shop) == 0,
               "every payment refunded exactly in full: payee at %" PRId64, llw_balance(db, shop));
    llw_assert_verify(ledger);
}
END_TEST

/* ---- settlement nets refunds ---------------------------------------------- */

static char *batch_row(const char *batch_id)
{
    char *s = llw_text(db,
                       "SELECT status || '|' || gross || '|' || coalesce(fees, -1) || '|' || "
                       "refunds || '|' || carried_in || '|' || coalesce(net, -1) || '|' || "
                       "coalesce(carried_out, -1) FROM settlement_batches WHERE id = '%s'",
                       batch_id);
    return s ? s : strdup("(no batch)");
}

/* status|gross|fees|refunds|carried_in|net|carried_out of a batch. */
static void check_batch(const char *batch_id, const char *want)
{
    char *s = batch_row(batch_id);
    LLW_ASSERT(strcmp(s, want) == 0,
               "batch %s\n   is %s\n want %s\n (status|gross|fees|refunds|carried_in|net|"
               "carried_out)",
               batch_id, s, want);
    free(s);
}

static void batch_id(char *out, size_t n, const char *payee, int64_t ws)
{
    snprintf(out, n, "sb-%s-EUR-%" PRId64, payee, ws);
}

START_TEST(a_refund_while_the_batch_is_open_reduces_its_payout)
{
    char shop[96], b1[160], r1[96];
    merchant(shop, sizeof shop, "shop", 100, 0); /* 1 % */
    int64_t ws = past_window(2);
    msg_payment_t p = pay("p1", shop, 10000);
    publish_completed(&p, ws * 1000 + 5);
    llw_confirm(m);
    add_all(1);
    batch_id(b1, sizeof b1, shop, ws);
    rid(r1, sizeof r1, "r1");
    pid_t w = start_refund("w1", NULL);
    publish_refund(r1, p.payment_id, 2500, NULL);
    llw_confirm(m);
    wait_refunds(1, 0, "the refund");
    llw_stop_ok(w, STOP_MS, "refund-worker");
    check_completed(r1, 2500, 2500, 7500, b1);
    check_batch(b1, "open|10000|-1|2500|0|-1|-1");
    close_due(1);
    /* fees kept on the refunded amount: 1 % of 10000 */
    check_batch(b1, "closed|10000|100|2500|0|7400|0");
    LLW_ASSERT(llw_count(db, "SELECT amount FROM transfers WHERE kind = 'payout' AND ref = '%s'",
                         b1) == 7400,
               "the payout transfer should be gross - fees - refunds");
    LLW_ASSERT(llw_balance(db, shop) == 0, "payee after the close: %" PRId64,
               llw_balance(db, shop));
    llw_events_collect(ev);
    json_t *e = llw_events_find(ev, MSG_TYPE_BATCH_CLOSED, NULL, 0);
    LLW_ASSERT(e, "no settlement.batch.closed");
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(jint(j, "refunds") == 2500 && jint(j, "refund_count") == 1 &&
                   jint(j, "net") == 7400 && jint(j, "carried_out") == 0,
               "settlement.batch.closed: %s", llc_jstr(e, "body"));
    llw_assert_verify(ledger);
}
END_TEST

START_TEST(a_refund_after_the_payout_is_deducted_from_the_next_batch)
{
    char shop[96], b1[160], b2[160], r1[96];
    merchant(shop, sizeof shop, "shop", 100, 0);
    int64_t w1 = past_window(3), w2 = past_window(2);
    msg_payment_t p1 = pay("p1", shop, 10000);
    publish_completed(&p1, w1 * 1000);
    llw_confirm(m);
    add_all(1);
    close_due(1); /* p1 paid out */
    msg_payment_t p2 = pay("p2", shop, 20000);
    publish_completed(&p2, w2 * 1000);
    llw_confirm(m);
    add_all(2);
    batch_id(b1, sizeof b1, shop, w1);
    batch_id(b2, sizeof b2, shop, w2);
    rid(r1, sizeof r1, "r1");
    pid_t w = start_refund("w1", NULL);
    publish_refund(r1, p1.payment_id, 4000, NULL);
    llw_confirm(m);
    wait_refunds(1, 0, "the refund of the paid-out payment");
    llw_stop_ok(w, STOP_MS, "refund-worker");
    check_completed(r1, 4000, 4000, 6000, b2);
    check_batch(b1, "closed|10000|100|0|0|9900|0");
    close_due(2);
    check_batch(b2, "closed|20000|200|4000|0|15800|0");
    LLW_ASSERT(llw_balance(db, shop) == 0, "payee after both closes: %" PRId64,
               llw_balance(db, shop));
    llw_assert_verify(ledger);
}
END_TEST

START_TEST(refunds_beyond_a_batch_gross_carry_the_shortfall_forward)
{
    char shop[96], tight[96], b0[160], b1[160], next[160], r[3][96];
    merchant(shop, sizeof shop, "shop", 100, 50000); /* may owe up to 500.00 */
    merchant(tight, sizeof tight, "tight", 0, 0);    /* may owe nothing */
    int64_t w0 = past_window(3), w1 = past_window(2);
    msg_payment_t p0 = pay("p0", shop, 10000), t0 = pay("t0", tight, 3000);
    publish_completed(&p0, w0 * 1000);
    publish_completed(&t0, w0 * 1000);
    llw_confirm(m);
    add_all(2);
    close_due(2); /* both paid out: both payees at 0 */
    msg_payment_t p1 = pay("p1", shop, 1000);
    publish_completed(&p1, w1 * 1000);
    llw_confirm(m);
    add_all(3);
    batch_id(b0, sizeof b0, shop, w0);
    batch_id(b1, sizeof b1, shop, w1);
    rid(r[0], sizeof r[0], "r-p0"), rid(r[1], sizeof r[1], "r-t0"), rid(r[2], sizeof r[2], "r-p1");
    pid_t w = start_refund("w1", NULL);
    publish_refund(r[0], p0.payment_id, 5000, NULL); /* more than b1's gross */
    publish_refund(r[1], t0.payment_id, 3000, NULL); /* tight has nothing left */
    publish_refund(r[2], p1.payment_id, 1000, NULL); /* b1's own payment, in full */
    llw_confirm(m);
    wait_refunds(3, 0, "the refunds");
    llw_stop_ok(w, STOP_MS, "refund-worker");
    check_completed(r[0], 5000, 5000, 5000, b1);
    check_failed(r[1], "insufficient_funds");
    check_completed(r[2], 1000, 1000, 0, b1);
    LLW_ASSERT(llw_balance(db, tight) == 0, "a failed refund moves nothing: %" PRId64,
               llw_balance(db, tight));
    check_batch(b1, "open|1000|-1|6000|0|-1|-1");
    close_due(3);
    /* net = 1000 - 10 - 6000 = -5010: nothing paid, 5010 carried */
    check_batch(b1, "closed|1000|10|6000|0|0|5010");
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payout' AND ref = '%s'",
                         b1) == 0,
               "a batch with a negative net must pay nothing out");
    LLW_ASSERT(llw_count(db,
                         "SELECT amount FROM settlement_carry WHERE payee = '%s' AND "
                         "currency = 'EUR'",
                         shop) == 5010,
               "the shortfall 5010 should be owed to the payee's next close (settlement_carry)");
    LLW_ASSERT(llw_count(db,
                         "SELECT count(*) FROM settlement_batches WHERE payee = '%s' AND "
                         "status = 'open'",
                         shop) == 0,
               "a carry alone must not open a batch");
    LLW_ASSERT(llw_balance(db, shop) == -5010,
               "the payee owes exactly the carried shortfall: balance %" PRId64,
               llw_balance(db, shop));
    llw_assert_verify(ledger);
    /* the next sale pays the debt back first: 20000 - 200 (fee) - 5010 */
    int64_t w2 = past_window(1);
    msg_payment_t p2 = pay("p2", shop, 20000);
    publish_completed(&p2, w2 * 1000);
    llw_confirm(m);
    add_all(4);
    close_due(4);
    batch_id(next, sizeof next, shop, w2);
    check_batch(next, "closed|20000|200|0|5010|14790|0");
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM settlement_carry WHERE payee = '%s'", shop) == 0,
               "the carry is taken whole by the next close");
    LLW_ASSERT(llw_balance(db, shop) == 0, "payee back at 0: %" PRId64, llw_balance(db, shop));
    (void)b0;
    llw_assert_verify(ledger);
}
END_TEST

/* The fee may take a payee below its floor by what it carries, no more: a
 * payee that spent what its batch owes is held, and closes once it has the
 * money again. */
START_TEST(a_close_that_would_overdraw_the_payee_beyond_its_carry_is_held)
{
    char shop[96], b1[160], r1[96];
    merchant(shop, sizeof shop, "shop", 300, 0); /* 3 %: fee 3 on 100 */
    int64_t ws = past_window(2);
    msg_payment_t p = pay("p1", shop, 100);
    publish_completed(&p, ws * 1000);
    llw_confirm(m);
    add_all(1);
    batch_id(b1, sizeof b1, shop, ws);
    rid(r1, sizeof r1, "r1");
    pid_t w = start_refund("w1", NULL);
    publish_refund(r1, p.payment_id, 98, NULL);
    llw_confirm(m);
    wait_refunds(1, 0, "the refund");
    llw_stop_ok(w, STOP_MS, "refund-worker");
    /* the shop spends the 2 it has left (as a payer) */
    char *st = llw_text(db,
                        "SELECT status FROM ledger_post('%s-spend', 'payment', '%s', '%s', 2, "
                        "'EUR')",
                        ledger, shop, payer);
    LLW_ASSERT(st && strcmp(st, "posted") == 0, "the shop's payment: %s", st ? st : "(none)");
    free(st);
    /* net = 100 - 3 - 98 = -1: carry 1, but the fee would leave it at -3 */
    pid_t c = start_settlement("closer", 0);
    llw_wait_sql(db, 1, WAIT_MS, "the close to be refused and the batch held",
                 "SELECT count(*) FROM settlement_batches WHERE id = '%s' AND close_error LIKE "
                 "'%%by more than the 1 it carries%%'",
                 b1);
    llw_stop_ok(c, STOP_MS, "settlement closer");
    check_batch(b1, "open|100|-1|98|0|-1|-1");
    LLW_ASSERT(llw_balance(db, shop) == 0, "a held close moves nothing: %" PRId64,
               llw_balance(db, shop));
    /* the shop gets 2 again; the close retries and carries 1 */
    llw_ctl(ledger, "account fund %s 2 --ref back-%s", shop, shop);
    llt_exec(db, "UPDATE settlement_batches SET close_retry_at = now()");
    close_due(1);
    check_batch(b1, "closed|100|3|98|0|0|1");
    LLW_ASSERT(llw_balance(db, shop) == -1, "the shop owes exactly its carry: %" PRId64,
               llw_balance(db, shop));
    llw_assert_verify(ledger);
}
END_TEST

/* ---- kill -9 ------------------------------------------------------------------- */

#define NCRASH 60

static const char *const crash_points[] = {"mid_batch",    "after_decode",  "before_commit",
                                           "after_commit", "after_publish", "after_ack"};

START_TEST(a_kill_at_each_crash_point_refunds_once)
{
    const char *point = crash_points[_i];
    char shop[96];
    merchant(shop, sizeof shop, "shop", 0, 0);
    static msg_payment_t p[NCRASH];
    for (int i = 0; i < NCRASH; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "p%d", i);
        p[i] = pay(tag, shop, 1000);
    }
    for (int i = 0; i < NCRASH; i++) {
        char r[96];
        snprintf(r, sizeof r, "%s-r%d", ledger, i);
        publish_refund(r, p[i].payment_id, 400 + i, NULL);
    }
    llw_confirm(m);
    char at[96];
    snprintf(at, sizeof at, "LEDGERLINE_CRASH_AT=%s", point);
    const char *env[] = {at, "LEDGERLINE_CRASH_AFTER=3", "LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=8",
                         NULL};
    pid_t c = start_refund("crasher", env);
    int st = llw_wait_exit(c, WAIT_MS);
    LLW_ASSERT(st == -SIGKILL, "the worker should kill itself at %s: %s", point,
               llw_status_str(st));
    pid_t w = start_refund("after", NULL);
    wait_refunds(NCRASH, 0, "every refund decided after the crash");
    llw_stop_ok(w, STOP_MS, "refund-worker");
    int64_t want_total = 0;
    for (int i = 0; i < NCRASH; i++)
        want_total += 400 + i;
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'refund'") == NCRASH,
               "one refund transfer per refund after a kill at %s", point);
    LLW_ASSERT(llw_balance(db, shop) == NCRASH * 1000 - want_total,
               "payee balance after a kill at %s: %" PRId64 ", want %" PRId64, point,
               llw_balance(db, shop), NCRASH * 1000 - want_total);
    for (int i = 0; i < NCRASH; i++) {
        char r[96];
        snprintf(r, sizeof r, "%s-r%d", ledger, i);
        json_t *e;
        LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REFUND_COMPLETED, "refund_id", r, &e) >= 1,
                   "refund.completed of %s lost after a kill at %s", r, point);
    }
    LLW_ASSERT(llw_events_distinct(ev, MSG_TYPE_REFUND_COMPLETED) == NCRASH,
               "one event id per refund");
    llw_assert_verify(ledger);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("refund");
    TCase *tc = tcase_create("refund");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup_refunds, teardown);
    tcase_add_test(tc, refunds_move_money_back_and_never_exceed_the_payment);
    tcase_add_test(tc, a_duplicate_replays_its_event_and_a_changed_payload_is_a_conflict);
    tcase_add_test(tc, a_body_the_stage_cannot_use_is_rejected_and_parked_and_the_worker_goes_on);
    tcase_add_test(tc, two_refunds_racing_for_the_last_cent_exactly_one_wins);
    tcase_add_test(tc, a_refund_while_the_batch_is_open_reduces_its_payout);
    tcase_add_test(tc, a_refund_after_the_payout_is_deducted_from_the_next_batch);
    tcase_add_test(tc, refunds_beyond_a_batch_gross_carry_the_shortfall_forward);
    tcase_add_test(tc, a_close_that_would_overdraw_the_payee_beyond_its_carry_is_held);
    tcase_add_loop_test(tc, a_kill_at_each_crash_point_refunds_once, 0,
                        (int)(sizeof crash_points / sizeof *crash_points));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
