/*
 * test_lookup.c - the lookup commands tell what the ledger holds.
 *
 * `ledgerctl payment show` tells the whole life of a payment exactly as
 * the ledger and the outbox hold it. The real pipeline
 * (one worker per stage, 2-second settlement windows, a max_amount rule so
 * that some payments are declined) takes `ledgerctl bench` payments; then,
 * for a completed payment whose batch has closed and for a declined one,
 * every field of `payment show --json` is compared with the rows it comes
 * from (processed, risk_decisions, transfers and entries, outbox and
 * outbox_pending, settlement_items and settlement_batches), and the text
 * view is checked to show the same ids. An unknown id exits 1 naming the
 * fix; a malformed one exits 2. `ledgerctl payment list` pages through the
 * same 40 payments once each, with the status the ledger gives each, and
 * filters by status.
 *
 * `ledgerctl account statement` over a ledger of known transfer times:
 * the opening balance at --from, the entries of [from, to) in order, the
 * closing balance, the same in CSV and JSON, and opening + entries =
 * closing = the account's balance over the whole history.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_amqp.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"

#define RISK       LL_BIN_DIR "/risk-worker"
#define PAYMENT    LL_BIN_DIR "/payment-worker"
#define SETTLEMENT LL_BIN_DIR "/settlement-worker"
#define WAIT_MS    60000

static const char *const queues[] = {"risk",       "risk.dead",       "payments", "payments.dead",
                                     "settlement", "settlement.dead", NULL};

LLW_FIXTURE(queues)

/* `payment show <id> --json`, parsed; fails the test unless it exits 0. */
static json_t *show_json(const char *id)
{
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "payment show %s --json", id);
    ck_assert_msg(rc == 0, "payment show %s exited %d: %s", id, rc, err);
    json_t *j = llt_json(out);
    free(out);
    free(err);
    return j;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    ck_assert_msg(s, "no string %s", k);
    return s;
}

static int64_t jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    ck_assert_msg(json_is_integer(v), "no integer %s", k);
    return json_integer_value(v);
}

/* The events of the document equal the outbox rows of the payment, in
 * order, all confirmed; returns how many. */
static size_t events_match_outbox(const json_t *doc, const char *id)
{
    const json_t *evs = json_object_get(doc, "events");
    size_t n = json_array_size(evs);
    ck_assert_int_eq((int64_t)n,
                     llw_count(db, "SELECT count(*) FROM outbox WHERE payment_id = '%s'", id));
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(evs, i);
        char *want = llw_text(db,
                              "SELECT event_id || ' ' || routing_key FROM outbox WHERE payment_id "
                              "= '%s' ORDER BY id OFFSET %zu LIMIT 1",
                              id, i);
        char got[160];
        snprintf(got, sizeof got, "%s %s", jstr(e, "event_id"), jstr(e, "type"));
        ck_assert_str_eq(got, want);
        free(want);
        ck_assert_msg(json_is_true(json_object_get(e, "confirmed")), "event %zu of %s unconfirmed",
                      i, id);
    }
    return n;
}

/* The text view names every id the JSON holds. */
static void text_names(const char *id, const char *const *needles)
{
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "payment show %s", id);
    ck_assert_msg(rc == 0, "payment show %s exited %d: %s", id, rc, err);
    for (size_t i = 0; needles[i]; i++)
        ck_assert_msg(strstr(out, needles[i]), "the text view of %s lacks '%s':\n%s", id,
                      needles[i], out);
    free(out);
    free(err);
}

START_TEST(payment_show_tells_the_life_of_a_payment_as_the_ledger_holds_it)
{
    const char *risk_env[] = {"LEDGERLINE_RISK_MAX_AMOUNT=EUR:5000", NULL};
    const char *settle_env[] = {"LEDGERLINE_SETTLEMENT_WINDOW_S=2",
                                "LEDGERLINE_SETTLEMENT_GRACE_MS=300", NULL};
    llw_start_instance(RISK, ledger, "show-risk", risk_env);
    llw_start_instance(PAYMENT, ledger, "show-payment", NULL);
    llw_start_instance(SETTLEMENT, ledger, "show-settlement", settle_env);
    llw_wait_consuming(m, "risk", 1, WAIT_MS);
    llw_wait_consuming(m, "payments", 1, WAIT_MS);
    llw_wait_consuming(m, "settlement", 1, WAIT_MS);
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger,
                     "bench --count 40 --payers 5 --payees 2 --run-id ps --min-amount 100 "
                     "--max-amount 10000 --timeout 120 --no-verify");
    ck_assert_msg(rc == 0, "bench exited %d: %s", rc, err);
    free(out);
    free(err);

    /* a completed payment whose batch has closed */
    char *id = NULL;
    for (int i = 0; i < 100 && !id; i++) {
        id = llw_text(db, "SELECT i.payment_id FROM settlement_items i JOIN settlement_batches b "
                          "ON b.id = i.batch_id WHERE b.status = 'closed' ORDER BY 1 LIMIT 1");
        if (!id)
            usleep(200000);
    }
    ck_assert_msg(id, "no settlement batch closed within 20 s");
    json_t *doc = show_json(id);
    ck_assert_str_eq(jstr(doc, "payment_id"), id);
    const json_t *req = json_object_get(doc, "request");
    char *payload = llw_text(db,
                             "SELECT payload FROM processed WHERE stage = 'risk' AND "
                             "payment_id = '%s'",
                             id);
    json_t *want_req = llt_json(payload);
    ck_assert_msg(json_equal(req, want_req), "request differs from the risk stage's record");
    json_decref(want_req);
    free(payload);
    const json_t *risk = json_object_get(doc, "risk");
    ck_assert_str_eq(jstr(risk, "decision"), "approved");
    ck_assert_int_eq(jint(risk, "score"),
                     llw_count(db, "SELECT score FROM risk_decisions WHERE payment_id = '%s'", id));
    /* the posting: its transfer and the balance after each entry */
    const json_t *t = json_object_get(doc, "transfer");
    char *tid = llw_text(db, "SELECT id FROM transfers WHERE kind = 'payment' AND ref = '%s'", id);
    ck_assert_str_eq(jstr(t, "id"), tid);
    ck_assert_int_eq(jint(t, "amount"), jint(req, "amount"));
    ck_assert_str_eq(jstr(t, "debit"), jstr(req, "payer"));
    ck_assert_str_eq(jstr(t, "credit"), jstr(req, "payee"));
    const json_t *entries = json_object_get(t, "entries");
    ck_assert_int_eq((int64_t)json_array_size(entries), 2);
    for (size_t i = 0; i < 2; i++) {
        const json_t *e = json_array_get(entries, i);
        ck_assert_int_eq(jint(e, "balance_after"),
                         llw_count(db,
                                   "SELECT balance_after FROM entries WHERE transfer_id = %s AND "
                                   "account_id = '%s'",
                                   tid, jstr(e, "account")));
    }
    ck_assert_int_eq(jint(json_array_get(entries, 0), "amount"), -jint(req, "amount"));
    /* the events: payment.approved and payment.completed, as stored */
    ck_assert_int_eq((int64_t)events_match_outbox(doc, id), 2);
    /* settlement: the batch, closed, with its payout */
    const json_t *st = json_object_get(doc, "settlement");
    char *bid = llw_text(db, "SELECT batch_id FROM settlement_items WHERE payment_id = '%s'", id);
    ck_assert_str_eq(jstr(st, "batch_id"), bid);
    ck_assert_str_eq(jstr(st, "status"), "closed");
    char *payout =
        llw_text(db, "SELECT payout_transfer FROM settlement_batches WHERE id = '%s'", bid);
    ck_assert_str_eq(jstr(st, "payout_transfer"), payout);
    ck_assert_int_eq(jint(st, "fee"),
                     llw_count(db, "SELECT fee FROM settlement_items WHERE payment_id = '%s'", id));
    const char *needles[] = {id,
                             "completed",
                             tid,
                             bid,
                             payout,
                             jstr(json_array_get(json_object_get(doc, "events"), 0), "event_id"),
                             jstr(json_array_get(json_object_get(doc, "events"), 1), "event_id"),
                             NULL};
    text_names(id, needles);
    json_decref(doc);
    free(payout);
    free(bid);
    free(tid);
    free(id);

    /* a declined payment: no transfer, no batch, its payment.declined */
    id = llw_text(db, "SELECT payment_id FROM risk_decisions WHERE decision = 'declined' ORDER BY "
                      "1 LIMIT 1");
    ck_assert_msg(id, "max_amount EUR:5000 and amounts up to 10000 declined nothing");
    doc = show_json(id);
    ck_assert_str_eq(jstr(json_object_get(doc, "risk"), "decision"), "declined");
    ck_assert(json_is_null(json_object_get(doc, "transfer")));
    ck_assert(json_is_null(json_object_get(doc, "settlement")));
    ck_assert_int_eq((int64_t)events_match_outbox(doc, id), 1);
    ck_assert_str_eq(jstr(json_array_get(json_object_get(doc, "events"), 0), "type"),
                     "payment.declined");
    const char *dneedles[] = {id, "declined", "max_amount", NULL};
    text_names(id, dneedles);
    json_decref(doc);
    free(id);

    /* payment list: pages of 7 cover the 40 payments once each, in order,
     * each with the status the ledger gives it */
    json_t *seen = json_object();
    char after[96] = "";
    int pages = 0;
    for (;;) {
        out = err = NULL;
        rc = llt_ctl(&out, &err, ledger, "payment list --limit 7 --json %s%s",
                     after[0] ? "--after " : "", after);
        ck_assert_msg(rc == 0, "payment list exited %d: %s", rc, err);
        json_t *page = llt_json(out);
        free(out);
        free(err);
        pages++;
        size_t k;
        json_t *p;
        json_array_foreach(json_object_get(page, "payments"), k, p)
        {
            const char *pid = jstr(p, "payment_id");
            ck_assert_msg(!json_object_get(seen, pid), "%s listed twice", pid);
            json_object_set_new(seen, pid, json_true());
            char *want = llw_text(db,
                                  "SELECT CASE WHEN d.decision = 'declined' THEN 'declined' "
                                  "WHEN p.outcome = 'completed' THEN 'completed' "
                                  "WHEN p.outcome IS NULL OR p.outcome = 'pending' THEN "
                                  "'pending' ELSE 'failed' END FROM risk_decisions d LEFT JOIN "
                                  "processed p ON p.payment_id = d.payment_id AND p.stage = "
                                  "'payment' WHERE d.payment_id = '%s'",
                                  pid);
            ck_assert_str_eq(jstr(p, "status"), want);
            free(want);
        }
        const char *next = json_string_value(json_object_get(page, "next_after"));
        if (!next) {
            json_decref(page);
            break;
        }
        snprintf(after, sizeof after, "%s", next);
        json_decref(page);
    }
    ck_assert_int_eq((int64_t)json_object_size(seen), 40);
    ck_assert_int_eq(pages, 6);
    json_decref(seen);
    out = err = NULL;
    rc = llt_ctl(&out, &err, ledger, "payment list --status declined --limit 100 --json");
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    json_t *dl = llt_json(out);
    ck_assert_int_eq(
        (int64_t)json_array_size(json_object_get(dl, "payments")),
        llw_count(db, "SELECT count(*) FROM risk_decisions WHERE decision = 'declined'"));
    json_decref(dl);
    free(out);
    free(err);

    /* an unknown id names the fix; a malformed one is a usage error */
    out = err = NULL;
    rc = llt_ctl(&out, &err, ledger, "payment show no-such-payment");
    ck_assert_msg(rc == 1 && strstr(err, "no payment 'no-such-payment'") && strstr(err, "fix:"),
                  "exit %d: %s", rc, err);
    free(out);
    free(err);
    out = err = NULL;
    rc = llt_ctl(&out, &err, ledger, "payment show 'bad id!'");
    ck_assert_msg(rc == 2, "a malformed id: exit %d: %s", rc, err);
    free(out);
    free(err);
}
END_TEST

/* `ledgerctl <args>` on the test's ledger must exit 0. */
static void ctl_ok(const char *args)
{
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "%s", args);
    ck_assert_msg(rc == 0, "ledgerctl %s exited %d: %s", args, rc, err);
    free(out);
    free(err);
}

/* `account statement <args>` on the test's ledger: its stdout (exit 0). */
static char *statement(const char *args)
{
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "account statement %s", args);
    ck_assert_msg(rc == 0, "account statement %s exited %d: %s", args, rc, err);
    free(err);
    return out;
}

START_TEST(account_statement_gives_opening_entries_and_closing_of_a_period)
{
    ctl_ok("account create sa --currency EUR");
    ctl_ok("account create sb --currency EUR --kind merchant");
    ctl_ok("account fund sa 10000 --ref f1");
    llt_exec(db, "SELECT ledger_post('p1', 'payment', 'sa', 'sb', 1000, 'EUR');"
                 "SELECT ledger_post('p2', 'payment', 'sa', 'sb', 2500, 'EUR');"
                 "SELECT ledger_post('p3', 'payment', 'sb', 'sa', 300, 'EUR');"
                 /* known times: one transfer a day */
                 "UPDATE transfers SET created_at = CASE ref WHEN 'f1' THEN "
                 "'2026-01-01T00:00:00Z'::timestamptz WHEN 'p1' THEN '2026-01-02T00:00:00Z' "
                 "WHEN 'p2' THEN '2026-01-03T12:00:00Z' ELSE '2026-01-04T00:00:00Z' END");
    char *out = statement("sa --from 2026-01-02 --to 2026-01-04 --json");
    json_t *j = llt_json(out);
    free(out);
    ck_assert_int_eq(jint(j, "opening"), 10000);
    ck_assert_int_eq(jint(j, "closing"), 6500);
    ck_assert_int_eq(jint(j, "debits"), -3500);
    ck_assert_int_eq(jint(j, "credits"), 0);
    const json_t *e = json_object_get(j, "entries");
    ck_assert_int_eq((int64_t)json_array_size(e), 2);
    ck_assert_str_eq(jstr(json_array_get(e, 0), "ref"), "p1");
    ck_assert_str_eq(jstr(json_array_get(e, 0), "counterparty"), "sb");
    ck_assert_int_eq(jint(json_array_get(e, 0), "balance"), 9000);
    ck_assert_str_eq(jstr(json_array_get(e, 1), "ref"), "p2");
    ck_assert_int_eq(jint(json_array_get(e, 1), "balance"), 6500);
    ck_assert_str_eq(jstr(j, "from"), "2026-01-02T00:00:00.000Z");
    json_decref(j);
    /* the same period in CSV: header, opening, two entries, closing */
    out = statement("sa --from 2026-01-02 --to 2026-01-04 --csv");
    ck_assert_str_eq(out, "at,kind,ref,counterparty,amount,balance,currency\n"
                          "2026-01-02T00:00:00.000Z,opening,,,,10000,EUR\n"
                          "2026-01-02T00:00:00.000Z,payment,p1,sb,-1000,9000,EUR\n"
                          "2026-01-03T12:00:00.000Z,payment,p2,sb,-2500,6500,EUR\n"
                          "2026-01-04T00:00:00.000Z,closing,,,,6500,EUR\n");
    free(out);
    /* the whole history ends at the account's balance */
    out = statement("sa --json");
    j = llt_json(out);
    free(out);
    ck_assert_int_eq(jint(j, "opening"), 0);
    ck_assert_int_eq(jint(j, "closing"), llw_balance(db, "sa"));
    ck_assert_int_eq(jint(j, "closing"), 6800);
    ck_assert_int_eq((int64_t)json_array_size(json_object_get(j, "entries")), 4);
    json_decref(j);
    /* the text view: the same figures in major units */
    out = statement("sa --from 2026-01-02 --to 2026-01-04");
    ck_assert_msg(strstr(out, "100.00") && strstr(out, "65.00") && strstr(out, "2 entries"), "%s",
                  out);
    free(out);
    /* errors: a bad time names the flag, an empty period, an unknown account */
    char *err = NULL;
    out = NULL;
    int rc = llt_ctl(&out, &err, ledger, "account statement sa --to someday");
    ck_assert_msg(rc == 2 && strstr(err, "--to 'someday' is not a time"), "exit %d: %s", rc, err);
    free(out);
    free(err);
    out = err = NULL;
    rc = llt_ctl(&out, &err, ledger, "account statement sa --from 2026-02-01 --to 2026-01-01");
    ck_assert_msg(rc == 2 && strstr(err, "is not before"), "exit %d: %s", rc, err);
    free(out);
    free(err);
    out = err = NULL;
    rc = llt_ctl(&out, &err, ledger, "account statement nobody");
    ck_assert_msg(rc == 1 && strstr(err, "no account 'nobody'"), "exit %d: %s", rc, err);
    free(out);
    free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lookup");
    TCase *tc = tcase_create("lookup");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, payment_show_tells_the_life_of_a_payment_as_the_ledger_holds_it);
    tcase_add_test(tc, account_statement_gives_opening_entries_and_closing_of_a_period);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
