/*
 * test_payment.c - the real payment-worker against the test stack: every
 * outcome of the ledger rules (completed, insufficient_funds,
 * unknown_account, account_frozen, currency_mismatch, balance_overflow at
 * the int64 limit) with its transfer,
 * entries, event and outbox row; bad input rejected and parked; duplicates
 * (same payload: the original event again; other payload: an
 * idempotency_conflict); a duplicate that arrives while the first copy is
 * inside another worker's open transaction; and SIGTERM.
 *
 * How the in-flight overlap is forced: worker A runs with prefetch 1 and
 * batches of 1, and the test holds a PostgreSQL lock that A's batch
 * transaction needs (the payee's account row, or the (kind, ref) key of the
 * payment's transfer through an uncommitted INSERT of its own). Once
 * pg_stat_activity shows A waiting on that lock, worker B is started and
 * the duplicate published: the broker must give it to B (A's prefetch is
 * full). The test checks that nothing was posted while A was held, then
 * releases the lock.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_redis.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg_decode.h"
#include "msg_encode.h"

#define WORKER    LL_BIN_DIR "/payment-worker"
#define WAIT_MS   30000
#define STOP_MS   20000
#define T0_MS     1767225600000LL /* occurred_at of the approved messages */
#define NACCOUNTS (sizeof base_accounts / sizeof base_accounts[0])

LLW_FIXTURE(llw_payment_queues)

static const llw_account_t base_accounts[] = {
    {"alice", "EUR", 1000, 0, false},
    {"bob", "EUR", 0, 500, false},
    {"carol", "EUR", 100, 0, false},
    {"ice", "EUR", 1000, 0, true},
    {"yank", "USD", 1000, 0, false},
    {"merch", "EUR", 0, 0, false},
    {"x1", "EUR", 0, 1000, false},
    {"x2", "EUR", 0, 0, false},
    /* a merchant 1000 minor units short of the int64 limit, paid by a
     * customer living on overdraft (no more GBP may be funded after rich:
     * sys:funding:GBP is 1000 short of the limit too) */
    {"rich", "GBP", INT64_MAX - 1000, 0, false},
    {"gbpa", "GBP", 0, 2000, false},
};

static pid_t start(const char *instance, const char *const *extra)
{
    return llw_start_instance(WORKER, ledger, instance, extra);
}

/* ---- waiting for the worker --------------------------------------------- */

/* Until the worker has `processed` rows of stage payment, `outcomes`
 * distinct payment.completed + payment.failed events, `rejected` distinct
 * message.rejected events and no unsent outbox row. */
static void wait_done(int64_t processed, size_t outcomes, size_t rejected)
{
    llw_done_t w = {.counts = {"SELECT count(*) FROM processed WHERE stage = 'payment'"},
                    .rows = processed,
                    .events = {MSG_TYPE_COMPLETED, MSG_TYPE_FAILED},
                    .distinct = (int64_t)outcomes,
                    .rejected = (int64_t)rejected};
    llw_wait_done(&fx, &w, WAIT_MS, "the worker to decide every payment");
}

/* ---- checking an outcome ------------------------------------------------ */

/*
 * Checks everything about payment p decided as `want` ("completed" or a
 * reason): one processed row, the transfer and its entries (balance_after
 * from the model: payer_after / payee_after), its outcome event with the
 * request fields, `copies` times (once per delivered copy) and of no other
 * outcome, and its outbox row holding the same bytes.
 */
static void check_outcome(const msg_payment_t *p, const char *want, int64_t payer_after,
                          int64_t payee_after, size_t copies)
{
    const char *id = p->payment_id;
    bool completed = strcmp(want, "completed") == 0;
    const char *rk = completed ? MSG_TYPE_COMPLETED : MSG_TYPE_FAILED;
    char *outcome = llw_text(db,
                             "SELECT outcome FROM processed WHERE stage = 'payment' AND "
                             "payment_id = '%s'",
                             id);
    LLW_ASSERT(outcome && strcmp(outcome, want) == 0, "payment %s: processed outcome %s, want %s",
               id, outcome ? outcome : "(no row)", want);
    free(outcome);
    int64_t transfers =
        llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment' AND ref = '%s'", id);
    LLW_ASSERT(transfers == (completed ? 1 : 0), "payment %s (%s): %" PRId64 " transfers", id, want,
               transfers);
    char *transfer_id = NULL;
    if (completed) {
        transfer_id =
            llw_text(db,
                     "SELECT id FROM transfers WHERE kind = 'payment' AND ref = '%s' AND "
                     "debit_account = '%s' AND credit_account = '%s' AND amount = %" PRId64
                     " AND currency = '%s'",
                     id, p->payer, p->payee, p->amount, p->currency);
        LLW_ASSERT(transfer_id, "payment %s: the transfer is not %s -> %s %" PRId64 " %s", id,
                   p->payer, p->payee, p->amount, p->currency);
        int64_t ok = llw_count(
            db,
            "SELECT count(*) FROM entries WHERE transfer_id = %s AND ("
            "(account_id = '%s' AND amount = -%" PRId64 " AND balance_after = %" PRId64 ") OR "
            "(account_id = '%s' AND amount = %" PRId64 " AND balance_after = %" PRId64 "))",
            transfer_id, p->payer, p->amount, payer_after, p->payee, p->amount, payee_after);
        int64_t all =
            llw_count(db, "SELECT count(*) FROM entries WHERE transfer_id = %s", transfer_id);
        LLW_ASSERT(ok == 2 && all == 2,
                   "payment %s: want 2 entries (%s -%" PRId64 " -> %" PRId64 ", %s +%" PRId64
                   " -> %" PRId64 "), %" PRId64 " match of %" PRId64,
                   id, p->payer, p->amount, payer_after, p->payee, p->amount, payee_after, ok, all);
    }
    size_t nc = llw_events_count(ev, MSG_TYPE_COMPLETED, id);
    size_t nf = llw_events_count(ev, MSG_TYPE_FAILED, id);
    LLW_ASSERT(nc + nf == copies && llw_events_count(ev, rk, id) == copies,
               "payment %s (%s): %zu completed and %zu failed events, want %zu %s", id, want, nc,
               nf, copies, rk);
    json_t *e = llw_events_find(ev, rk, id, 0);
    llc_check_envelope(e, rk, id);
    const char *body = llc_jstr(e, "body");
    if (completed) {
        msg_completed_t c;
        memset(&c, 0, sizeof c);
        msg_reject_t why;
        int rc = msg_completed_decode(body, strlen(body), &c, &why);
        LLW_ASSERT(rc == LL_OK, "payment %s: payment.completed does not decode: %s: %s", id,
                   why.detail, body);
        char diff[128];
        LLW_ASSERT(msg_payment_diff(&c.payment, p, diff, sizeof diff) == LL_OK && !diff[0],
                   "payment %s: payment.completed differs from the request in: %s", id, diff);
        LLW_ASSERT(strcmp(c.transfer_id, transfer_id) == 0,
                   "payment %s: transfer_id %s, the transfer is %s", id, c.transfer_id,
                   transfer_id);
        LLW_ASSERT(c.posted_ms > 0, "payment %s: no posted_at", id);
        msg_completed_clear(&c);
    } else {
        const json_t *j = json_object_get(e, "json");
        LLW_ASSERT(strcmp(llc_jstr(j, "reason"), want) == 0, "payment %s: reason %s, want %s", id,
                   llc_jstr(j, "reason"), want);
        LLW_ASSERT(strcmp(llc_jstr(j, "payment_id"), id) == 0 &&
                       strcmp(llc_jstr(j, "payer"), p->payer) == 0 &&
                       strcmp(llc_jstr(j, "payee"), p->payee) == 0 &&
                       json_integer_value(json_object_get(j, "amount")) == p->amount &&
                       strcmp(llc_jstr(j, "currency"), p->currency) == 0,
                   "payment %s: payment.failed lacks the request fields: %s", id, body);
        LLW_ASSERT(!json_object_get(j, "transfer_id"), "payment %s: failed with a transfer_id: %s",
                   id, body);
    }
    llc_check_outbox(db, id, rk, body);
    free(transfer_id);
}

/* The stage's own queues: settlement's consumer does not run here. */
static void check_queues_empty(void)
{
    static const char *const queues[] = {"payments", "payments.dead", "payments.retry.1s",
                                         "payments.retry.30s", NULL};
    llw_assert_queues_empty(m, queues);
}

/* ---- the ledger rules ---------------------------------------------------- */

static const struct {
    const char *payer, *payee;
    int64_t amount;
    const char *currency;
    const char *want; /* "completed" or the payment.failed reason */
    bool extras;      /* with description and metadata */
} rules[] = {
    {"alice", "merch", 300, "EUR", "completed", true},
    {"alice", "merch", 700, "EUR", "completed", false}, /* to exactly 0 */
    {"alice", "merch", 1, "EUR", "insufficient_funds", false},
    {"bob", "merch", 500, "EUR", "completed", false}, /* to exactly -overdraft */
    {"bob", "merch", 1, "EUR", "insufficient_funds", true},
    {"ghost", "merch", 10, "EUR", "unknown_account", false},
    {"carol", "ghost", 10, "EUR", "unknown_account", false},
    {"ghost", "ice", 10, "EUR", "unknown_account", false}, /* unknown before frozen */
    {"ice", "merch", 10, "EUR", "account_frozen", false},
    {"carol", "ice", 10, "EUR", "account_frozen", false},
    {"ice", "merch", 5000, "EUR", "account_frozen", false}, /* frozen before funds */
    {"yank", "merch", 10, "USD", "currency_mismatch", false},
    {"carol", "merch", 10, "USD", "currency_mismatch", false},
    {"carol", "yank", 10, "EUR", "currency_mismatch", false},
    {"yank", "carol", 5000, "EUR", "currency_mismatch", false}, /* currency before funds */
    {"carol", "merch", 100, "EUR", "completed", false},
    {"carol", "alice", 1, "EUR", "insufficient_funds", false},
    {"merch", "carol", 1600, "EUR", "completed", true},
    /* system accounts are not counterparties: the funding account has no
     * funds check, so as a payer it would create money */
    {"sys:funding:EUR", "merch", 10, "EUR", "unknown_account", false},
    {"carol", "sys:funding:EUR", 10, "EUR", "unknown_account", false},
    /* the payee's balance may not pass INT64_MAX: refused, not an error */
    {"gbpa", "rich", 600, "GBP", "completed", false},
    {"gbpa", "rich", 401, "GBP", "balance_overflow", false}, /* one past the limit */
    {"gbpa", "rich", 400, "GBP", "completed", true},         /* to exactly INT64_MAX */
};
#define NRULES (sizeof rules / sizeof rules[0])

START_TEST(each_ledger_rule_gives_its_outcome)
{
    llw_account_t acc[NACCOUNTS];
    memcpy(acc, base_accounts, sizeof acc);
    llw_accounts_create(ledger, acc, NACCOUNTS);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM accounts WHERE id = 'sys:funding:EUR' AND "
                             "kind = 'system'") == 1,
               "the funding account must exist for the system-account rows to mean anything");
    msg_payment_t pays[NRULES];
    int64_t payer_after[NRULES], payee_after[NRULES];
    size_t ncompleted = 0;
    for (size_t i = 0; i < NRULES; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "r%zu", i);
        pays[i] = llw_payment(ledger, tag, rules[i].payer, rules[i].payee, rules[i].amount,
                              rules[i].currency);
        if (rules[i].extras) {
            snprintf(pays[i].description, sizeof pays[i].description, "caf\xc3\xa9 #%zu", i);
            pays[i].has_description = true;
            pays[i].metadata = json_pack("{s:s, s:s}", "order", "42", "channel", "web");
        }
        const char *got = llw_model_apply(acc, NACCOUNTS, &pays[i]);
        ck_assert_msg(strcmp(got, rules[i].want) == 0, "test table row %zu: the model says %s", i,
                      got);
        ncompleted += strcmp(got, "completed") == 0;
        llw_account_t *d = llw_model_find(acc, NACCOUNTS, pays[i].payer);
        llw_account_t *c = llw_model_find(acc, NACCOUNTS, pays[i].payee);
        payer_after[i] = d ? d->balance : 0;
        payee_after[i] = c ? c->balance : 0;
        free(llw_publish_approved(m, &pays[i], T0_MS + (int64_t)i));
    }
    llw_confirm(m);
    pid_t w = start("rules", NULL);
    wait_done(NRULES, NRULES, 0);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);

    for (size_t i = 0; i < NRULES; i++)
        check_outcome(&pays[i], rules[i].want, payer_after[i], payee_after[i], 1);
    for (size_t i = 0; i < NACCOUNTS; i++) {
        int64_t b = llw_balance(db, acc[i].id);
        LLW_ASSERT(b == acc[i].balance, "account %s: balance %" PRId64 ", one-at-a-time %" PRId64,
                   acc[i].id, b, acc[i].balance);
    }
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0, "unexpected message.rejected");
    /* the settlement queue got exactly the completed events */
    json_t *settle = llw_queue_drain(m, "settlement");
    LLW_ASSERT(json_array_size(settle) == ncompleted, "settlement queue: %zu messages, want %zu",
               json_array_size(settle), ncompleted);
    size_t k;
    json_t *s;
    json_array_foreach(settle, k, s)
    {
        json_t *j = llt_json(llc_jstr(s, "body"));
        LLW_ASSERT(strcmp(llc_jstr(j, "type"), MSG_TYPE_COMPLETED) == 0, "settlement got %s",
                   llc_jstr(s, "body"));
        json_decref(j);
    }
    json_decref(settle);
    check_queues_empty();
    llw_assert_verify(ledger);
    for (size_t i = 0; i < NRULES; i++)
        msg_payment_clear(&pays[i]);
}
END_TEST

/* ---- bad input ----------------------------------------------------------- */

/* A valid payment.approved body for tag, as JSON to edit. */
static json_t *approved_json(const char *tag)
{
    msg_payment_t p = llw_payment(ledger, tag, "alice", "merch", 10, "EUR");
    char *body = msg_encode_approved(&p, 0, NULL, 0, T0_MS);
    json_t *j = llt_json(body);
    free(body);
    return j;
}

static char *edit(const char *tag, const char *field, json_t *value /* stolen; NULL: remove */)
{
    return llc_edit(approved_json(tag), field, value);
}

/* Builds the body of bad[i] (malloc'd; *len set). */
static char *bad_body(size_t i, size_t *len);

static const struct {
    const char *label;
    const char *reason;
    const char *field; /* must appear in the detail; NULL: any detail */
} bad[] = {
    {"truncated JSON", "malformed_json", NULL},
    {"empty body", "malformed_json", NULL},
    {"duplicate key", "malformed_json", NULL},
    {"invalid UTF-8", "malformed_json", NULL},
    {"amount is a string", "schema_violation", "amount"},
    {"amount is a real", "schema_violation", "amount"},
    {"amount is zero", "schema_violation", "amount"},
    {"amount over 10^14", "schema_violation", "amount"},
    {"unknown field", "schema_violation", "colour"},
    {"payer equals payee", "schema_violation", "payee"},
    {"payment_id missing", "schema_violation", "payment_id"},
    {"payment_id bad charset", "schema_violation", "payment_id"},
    {"currency lower case", "schema_violation", "currency"},
    {"type is payment.requested", "schema_violation", "type"},
    {"risk missing", "schema_violation", "risk"},
    {"root is an array", "schema_violation", NULL},
    {"over 16 KiB", "oversized", NULL},
};
#define NBAD (sizeof bad / sizeof bad[0])

static char *bad_body(size_t i, size_t *len)
{
    char tag[16];
    snprintf(tag, sizeof tag, "bad%zu", i);
    char *s = NULL;
    switch (i) {
    case 0: {
        s = llc_dump(approved_json(tag));
        s[strlen(s) - 7] = '\0';
        break;
    }
    case 1:
        s = strdup("");
        break;
    case 2: {
        char *v = llc_dump(approved_json(tag));
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
        s = edit(tag, "amount", json_string("10"));
        break;
    case 5:
        s = edit(tag, "amount", json_real(10.5));
        break;
    case 6:
        s = edit(tag, "amount", json_integer(0));
        break;
    case 7:
        s = edit(tag, "amount", json_integer(MSG_AMOUNT_MAX + 1));
        break;
    case 8:
        s = edit(tag, "colour", json_string("red"));
        break;
    case 9:
        s = edit(tag, "payee", json_string("alice"));
        break;
    case 10:
        s = edit(tag, "payment_id", NULL);
        break;
    case 11: {
        char id[96];
        snprintf(id, sizeof id, "%s bad 11", ledger);
        s = edit(tag, "payment_id", json_string(id));
        break;
    }
    case 12:
        s = edit(tag, "currency", json_string("eur"));
        break;
    case 13:
        s = edit(tag, "type", json_string(MSG_TYPE_REQUESTED));
        break;
    case 14:
        s = edit(tag, "risk", NULL);
        break;
    case 15: {
        json_t *a = json_array();
        json_array_append_new(a, approved_json(tag));
        s = llc_dump(a);
        break;
    }
    case 16: {
        char *big = malloc(MSG_BODY_MAX + 1);
        memset(big, 'a', MSG_BODY_MAX);
        big[MSG_BODY_MAX] = '\0';
        s = edit(tag, "description", json_string(big));
        free(big);
        break;
    }
    default:
        ck_abort_msg("no body for row %zu", i);
    }
    *len = strlen(s);
    return s;
}

START_TEST(bad_input_is_rejected_parked_and_acked)
{
    llw_account_t acc[NACCOUNTS];
    memcpy(acc, base_accounts, sizeof acc);
    llw_accounts_create(ledger, acc, NACCOUNTS);
    char *bodies[NBAD];
    size_t lens[NBAD];
    char pids[NBAD][MSG_ID_MAX + 1];
    for (size_t i = 0; i < NBAD; i++) {
        bodies[i] = bad_body(i, &lens[i]);
        /* the test data must be what the row says, by the codec's own rules */
        msg_approved_t a;
        memset(&a, 0, sizeof a);
        msg_reject_t why;
        int rc = msg_approved_decode(bodies[i], lens[i], &a, &why);
        ck_assert_msg(rc == LL_EREJECT && strcmp(msg_reason_str(why.reason), bad[i].reason) == 0,
                      "test row '%s': the codec says %s %s", bad[i].label, ll_errname(rc),
                      rc == LL_EREJECT ? msg_reason_str(why.reason) : "");
        if (msg_peek_payment_id(bodies[i], lens[i], pids[i]) != LL_OK)
            pids[i][0] = '\0';
        llw_publish_raw(m, "ledgerline.events", MSG_TYPE_APPROVED, pids[i][0] ? pids[i] : NULL,
                        MSG_TYPE_APPROVED, bodies[i], lens[i]);
    }
    /* the worker goes on: a good payment after the bad ones */
    msg_payment_t good = llw_payment(ledger, "good", "alice", "merch", 25, "EUR");
    free(llw_publish_approved(m, &good, T0_MS));
    llw_confirm(m);
    pid_t w = start("bad", NULL);
    wait_done(1, 1, NBAD);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    check_outcome(&good, "completed", 975, 25, 1);

    json_t *dead = llw_queue_drain(m, "payments.dead");
    LLW_ASSERT(json_array_size(dead) == NBAD, "payments.dead holds %zu messages, want %zu",
               json_array_size(dead), NBAD);
    for (size_t i = 0; i < NBAD; i++) {
        const char *label = bad[i].label;
        /* the event */
        llc_check_rejected(ev, "payments", label, pids[i][0] ? pids[i] : NULL, bodies[i], lens[i],
                           bad[i].reason, bad[i].field);
        /* the parked original: same bytes, reason and detail in headers */
        const json_t *parked =
            llc_find_parked(dead, "payments.dead", label, bodies[i], lens[i], bad[i].reason);
        const char *hd = llw_header(parked, "x-ledgerline-detail");
        LLW_ASSERT(hd && *hd, "%s: parked without x-ledgerline-detail", label);
        free(bodies[i]);
    }
    json_decref(dead);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'") == 1,
               "a rejected message was posted");
    check_queues_empty();
    llw_assert_verify(ledger);
}
END_TEST

/* ---- duplicates ---------------------------------------------------------- */

START_TEST(a_duplicate_replays_the_original_event)
{
    bool forget_redis = _i == 1; /* 0: Redis answers; 1: only PostgreSQL remembers */
    llw_account_t acc[NACCOUNTS];
    memcpy(acc, base_accounts, sizeof acc);
    llw_accounts_create(ledger, acc, NACCOUNTS);
    msg_payment_t ok = llw_payment(ledger, "dup-ok", "alice", "merch", 100, "EUR");
    msg_payment_t no = llw_payment(ledger, "dup-no", "alice", "merch", 5000, "EUR");
    char *ok_body = llw_publish_approved(m, &ok, T0_MS);
    free(llw_publish_approved(m, &no, T0_MS));
    llw_confirm(m);
    pid_t w = start("dup1", NULL);
    wait_done(2, 2, 0);
    if (forget_redis) {
        llw_stop_ok(w, STOP_MS, NULL);
        const char *ids[] = {ok.payment_id, no.payment_id};
        for (size_t i = 0; i < 2; i++)
            llr_idem_forget(db, "payment", ids[i], "after processing (the outcome belongs there)");
        w = start("dup2", NULL);
    }
    /* the same payload again: byte for byte, and re-encoded later (another
     * occurred_at and risk score: not part of the payload) */
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_APPROVED, ok.payment_id, MSG_TYPE_APPROVED,
                    ok_body, strlen(ok_body));
    char *again = msg_encode_approved(&ok, 7, NULL, 0, T0_MS + 60000);
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_APPROVED, ok.payment_id, MSG_TYPE_APPROVED,
                    again, strlen(again));
    free(again);
    free(llw_publish_approved(m, &no, T0_MS + 5));
    llw_confirm(m);
    llw_wait_events(ev, MSG_TYPE_COMPLETED, ok.payment_id, 3, WAIT_MS);
    llw_wait_events(ev, MSG_TYPE_FAILED, no.payment_id, 2, WAIT_MS);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    LLW_ASSERT(llc_same_event(ev, MSG_TYPE_COMPLETED, ok.payment_id) == 3,
               "completed payment: want the event 3 times (original + 2 duplicates)");
    LLW_ASSERT(llc_same_event(ev, MSG_TYPE_FAILED, no.payment_id) == 2,
               "failed payment: want the event twice (original + 1 duplicate)");
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0,
               "a same-payload duplicate was rejected");
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_COMPLETED, no.payment_id) == 0,
               "the failed payment completed on its duplicate");
    check_outcome(&ok, "completed", 900, 100, 3);
    LLW_ASSERT(llw_balance(db, "alice") == 900 && llw_balance(db, "merch") == 100,
               "balances moved by a duplicate: alice %" PRId64 ", merch %" PRId64,
               llw_balance(db, "alice"), llw_balance(db, "merch"));
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM processed") == 2, "processed rows");
    check_queues_empty();
    llw_assert_verify(ledger);
    free(ok_body);
}
END_TEST

START_TEST(a_different_payload_is_an_idempotency_conflict)
{
    llw_account_t acc[NACCOUNTS];
    memcpy(acc, base_accounts, sizeof acc);
    llw_accounts_create(ledger, acc, NACCOUNTS);
    msg_payment_t ok = llw_payment(ledger, "cf-ok", "alice", "merch", 100, "EUR");
    msg_payment_t no = llw_payment(ledger, "cf-no", "alice", "merch", 5000, "EUR");
    free(llw_publish_approved(m, &ok, T0_MS));
    free(llw_publish_approved(m, &no, T0_MS));
    llw_confirm(m);
    pid_t w = start("conflict", NULL);
    wait_done(2, 2, 0);
    char hash_before[65];
    ck_assert(msg_payment_hash(&ok, hash_before) == LL_OK);

    /* same payment_ids, other values */
    static const struct {
        int which; /* 0: ok, 1: no */
        const char *changes;
        const char *names[3]; /* the detail must name each */
    } conflicts[] = {
        {0, "amount", {"amount"}},
        {0, "payee+description", {"payee", "description"}},
        {1, "amount", {"amount"}},
    };
    char *bodies[3];
    for (size_t i = 0; i < 3; i++) {
        msg_payment_t c = conflicts[i].which ? no : ok;
        if (strcmp(conflicts[i].changes, "amount") == 0) {
            c.amount += 50;
        } else {
            snprintf(c.payee, sizeof c.payee, "carol");
            snprintf(c.description, sizeof c.description, "changed");
            c.has_description = true;
        }
        bodies[i] = llw_publish_approved(m, &c, T0_MS + 1);
    }
    llw_confirm(m);
    wait_done(2, 2, 3);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    json_t *dead = llw_queue_drain(m, "payments.dead");
    LLW_ASSERT(json_array_size(dead) == 3, "payments.dead holds %zu messages, want 3",
               json_array_size(dead));
    for (size_t i = 0; i < 3; i++) {
        const char *id = conflicts[i].which ? no.payment_id : ok.payment_id;
        llc_check_conflict(ev, dead, "payments", "payments.dead", i, conflicts[i].changes,
                           conflicts[i].names, id, bodies[i]);
        free(bodies[i]);
    }
    json_decref(dead);
    /* no effect: the original outcome stands */
    check_outcome(&ok, "completed", 900, 100, 1);
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_FAILED, no.payment_id) == 1, "failed event count");
    char *hash =
        llw_text(db, "SELECT payload_hash FROM processed WHERE payment_id = '%s'", ok.payment_id);
    LLW_ASSERT(hash && strcmp(hash, hash_before) == 0, "payload_hash changed to %s",
               hash ? hash : "(none)");
    free(hash);
    LLW_ASSERT(llw_balance(db, "alice") == 900 && llw_balance(db, "merch") == 100 &&
                   llw_balance(db, "carol") == 100,
               "a conflicting duplicate moved money");
    check_queues_empty();
    llw_assert_verify(ledger);
}
END_TEST

/* ---- a duplicate while the first copy is in another worker's transaction -- */

static const struct {
    const char *label;
    bool hold_ref;     /* hold the transfer's (kind, ref) key, else the payee's row */
    bool forget_redis; /* drop A's Redis in-flight key: B must meet A in PostgreSQL */
} overlaps[] = {
    {"A waits for the payee's account lock", false, false},
    {"A waits inside ledger_post (processed row inserted)", true, false},
    {"as above, and Redis forgot A's claim", true, true},
};

START_TEST(a_duplicate_in_flight_elsewhere_is_processed_once)
{
    llw_account_t acc[NACCOUNTS];
    memcpy(acc, base_accounts, sizeof acc);
    llw_accounts_create(ledger, acc, NACCOUNTS);
    msg_payment_t p = llw_payment(ledger, "inflight", "alice", "merch", 100, "EUR");
    char sql[512];
    if (overlaps[_i].hold_ref)
        snprintf(sql, sizeof sql,
                 "INSERT INTO transfers (ref, kind, debit_account, credit_account, amount, "
                 "currency) VALUES ('%s', 'payment', 'x1', 'x2', 1, 'EUR')",
                 p.payment_id);
    else
        snprintf(sql, sizeof sql, "SELECT 1 FROM accounts WHERE id = 'merch' FOR UPDATE");
    db_t *hold = llt_db(ledger);
    llt_exec(hold, "BEGIN");
    llt_exec(hold, sql);

    static const char *const a_env[] = {"LEDGERLINE_AMQP_PREFETCH=1",
                                        "LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=1", NULL};
    pid_t a = start("A", a_env);
    llw_wait_consuming(m, "payments", 1, WAIT_MS);
    char *body = llw_publish_approved(m, &p, T0_MS);
    llw_confirm(m);
    llw_wait_lock_waiters(db, 1, WAIT_MS, "worker A to block on the test's lock");
    if (overlaps[_i].forget_redis) {
        llr_idem_forget(db, "payment", p.payment_id, "(in flight) while A processes it");
    }
    pid_t b = start("B", NULL);
    llw_wait_consuming(m, "payments", 2, WAIT_MS);
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_APPROVED, p.payment_id, MSG_TYPE_APPROVED,
                    body, strlen(body));
    llw_confirm(m);
    /* B has the duplicate (A's prefetch is full): wait until it acted on it,
     * so the checks below see its decision, not its slowness. With A's
     * claim in Redis, B defers the copy; without it, B goes to PostgreSQL
     * and waits on A's uncommitted processed row. */
    if (overlaps[_i].forget_redis)
        llw_wait_lock_waiters(db, 2, WAIT_MS, "worker B to block behind A's processed row");
    else
        llw_wait_logged(b, "deferred to the retry tier", WAIT_MS,
                        "worker B to defer the copy in flight in A");
    llw_check_alive();
    llw_events_collect(ev);
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_COMPLETED, p.payment_id) == 0 &&
                   llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0,
               "%s: an outcome was published while A still held the first copy: the duplicate "
               "was processed on its own",
               overlaps[_i].label);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM processed") == 0,
               "%s: a processed row committed while A was held", overlaps[_i].label);
    llt_exec(hold, "ROLLBACK");
    db_free(hold);
    llw_wait_events(ev, MSG_TYPE_COMPLETED, p.payment_id, 2, WAIT_MS);
    llw_wait_drained(m, "payments.retry.1s", WAIT_MS);
    llw_wait_drained(m, "payments", WAIT_MS);
    llw_stop_ok(b, STOP_MS, NULL);
    llw_stop_ok(a, STOP_MS, NULL);
    llw_events_collect(ev);
    LLW_ASSERT(llc_same_event(ev, MSG_TYPE_COMPLETED, p.payment_id) == 2,
               "%s: want the completed event exactly twice (once per copy)", overlaps[_i].label);
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0, "%s: the duplicate was rejected",
               overlaps[_i].label);
    check_outcome(&p, "completed", 900, 100, 2);
    check_queues_empty();
    llw_assert_verify(ledger);
    free(body);
}
END_TEST

START_TEST(duplicates_in_one_batch_post_once)
{
    llw_account_t acc[NACCOUNTS];
    memcpy(acc, base_accounts, sizeof acc);
    llw_accounts_create(ledger, acc, NACCOUNTS);
    msg_payment_t p = llw_payment(ledger, "twins", "alice", "merch", 100, "EUR");
    msg_payment_t q = llw_payment(ledger, "twins-no", "alice", "merch", 5000, "EUR");
    for (int i = 0; i < 3; i++) {
        free(llw_publish_approved(m, &p, T0_MS));
        free(llw_publish_approved(m, &q, T0_MS + i));
    }
    llw_confirm(m);
    static const char *const env[] = {"LEDGERLINE_WORKER_BATCH_MAX_WAIT_MS=500", NULL};
    pid_t w = start("twins", env);
    llw_wait_events(ev, MSG_TYPE_COMPLETED, p.payment_id, 3, WAIT_MS);
    llw_wait_events(ev, MSG_TYPE_FAILED, q.payment_id, 3, WAIT_MS);
    wait_done(2, 2, 0);
    llw_stop_ok(w, STOP_MS, NULL);
    llw_events_collect(ev);
    LLW_ASSERT(llc_same_event(ev, MSG_TYPE_COMPLETED, p.payment_id) == 3,
               "completed: one event per copy");
    LLW_ASSERT(llc_same_event(ev, MSG_TYPE_FAILED, q.payment_id) == 3,
               "failed: one event per copy");
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0, "a copy was rejected");
    check_outcome(&p, "completed", 900, 100, 3);
    check_queues_empty();
    llw_assert_verify(ledger);
}
END_TEST

/* ---- SIGTERM ------------------------------------------------------------- */

START_TEST(sigterm_finishes_the_batch_in_hand)
{
    llw_account_t acc[NACCOUNTS];
    memcpy(acc, base_accounts, sizeof acc);
    llw_accounts_create(ledger, acc, NACCOUNTS);
    /* a long batch window: the batch is still open when SIGTERM comes */
    static const char *const env[] = {"LEDGERLINE_WORKER_BATCH_MAX_WAIT_MS=8000",
                                      "LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT_MS=15000", NULL};
    pid_t w = start("term", env);
    llw_wait_consuming(m, "payments", 1, WAIT_MS);
    msg_payment_t p[3];
    for (int i = 0; i < 3; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "term%d", i);
        p[i] = llw_payment(ledger, tag, "alice", "merch", 10 * (i + 1), "EUR");
        free(llw_publish_approved(m, &p[i], T0_MS));
    }
    llw_confirm(m);
    llw_wait_drained(m, "payments", WAIT_MS); /* all three delivered to the worker */
    int64_t t = llw_now_ms();
    llw_signal(w, SIGTERM);
    int st = llw_wait_exit(w, 15000);
    int64_t took = llw_now_ms() - t;
    LLW_ASSERT(st == 0, "SIGTERM with a batch in hand: %s", llw_status_str(st));
    /* it stopped gathering at the signal: it did not wait out the 8 s window */
    LLW_ASSERT(took < 6000,
               "exiting took %" PRId64 " ms: the signal did not end the 8 s batch wait", took);
    llw_events_collect(ev);
    for (int i = 0; i < 3; i++)
        LLW_ASSERT(llw_events_count(ev, MSG_TYPE_COMPLETED, p[i].payment_id) == 1,
                   "%s not completed before exit (took %" PRId64 " ms)", p[i].payment_id, took);
    check_outcome(&p[0], "completed", 990, 10, 1);
    check_queues_empty(); /* acked before exiting: nothing came back */
    llw_assert_verify(ledger);
}
END_TEST

START_TEST(a_second_sigterm_exits_at_once)
{
    llw_account_t acc[NACCOUNTS];
    memcpy(acc, base_accounts, sizeof acc);
    llw_accounts_create(ledger, acc, NACCOUNTS);
    db_t *hold = llt_db(ledger);
    llt_exec(hold, "BEGIN");
    llt_exec(hold, "SELECT 1 FROM accounts WHERE id = 'merch' FOR UPDATE");
    static const char *const env[] = {"LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT_MS=60000", NULL};
    pid_t w = start("term2", env);
    msg_payment_t p = llw_payment(ledger, "term2", "alice", "merch", 100, "EUR");
    free(llw_publish_approved(m, &p, T0_MS));
    llw_confirm(m);
    llw_wait_lock_waiters(db, 1, WAIT_MS, "the worker to block on the test's lock");
    llw_signal(w, SIGTERM);
    int st = llw_wait_exit(w, 1000);
    LLW_ASSERT(st == LLW_TIMEDOUT, "the first SIGTERM must let the blocked batch finish: %s",
               llw_status_str(st));
    int64_t t = llw_now_ms();
    llw_signal(w, SIGTERM);
    st = llw_wait_exit(w, 3000);
    LLW_ASSERT(st != LLW_TIMEDOUT, "still running 3 s after the second SIGTERM");
    LLW_ASSERT(st != -SIGKILL && st != -SIGABRT && st != -SIGSEGV,
               "second SIGTERM: %s after %" PRId64 " ms", llw_status_str(st), llw_now_ms() - t);
    llt_exec(hold, "ROLLBACK");
    db_free(hold);
    /* nothing acked, nothing committed: a new worker posts it once */
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM processed") == 0, "committed after exit");
    pid_t w2 = start("term2b", NULL);
    wait_done(1, 1, 0);
    llw_stop_ok(w2, STOP_MS, NULL);
    llw_events_collect(ev);
    check_outcome(&p, "completed", 900, 100, 1);
    check_queues_empty();
    llw_assert_verify(ledger);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("payment");
    TCase *tc = tcase_create("payment-worker");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, each_ledger_rule_gives_its_outcome);
    tcase_add_test(tc, bad_input_is_rejected_parked_and_acked);
    tcase_add_loop_test(tc, a_duplicate_replays_the_original_event, 0, 2);
    tcase_add_test(tc, a_different_payload_is_an_idempotency_conflict);
    tcase_add_loop_test(tc, a_duplicate_in_flight_elsewhere_is_processed_once, 0,
                        (int)(sizeof overlaps / sizeof overlaps[0]));
    tcase_add_test(tc, duplicates_in_one_batch_post_once);
    tcase_add_test(tc, sigterm_finishes_the_batch_in_hand);
    tcase_add_test(tc, a_second_sigterm_exits_at_once);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
