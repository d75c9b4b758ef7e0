/*
 * test_funds.c - the real funds-worker against the test stack: a deposit
 * credits its account from sys:funding once per deposit_id (a duplicate
 * replays the same event, a changed one is an idempotency_conflict naming
 * the fields, an unknown or system account fails it); a withdrawal is
 * screened by the risk rules (max amount, blocklist, velocity) and then
 * debited to sys:withdrawals, or fails with the ledger's reason; a
 * returned withdrawal puts its money back exactly once (even to a frozen
 * account), and a return of a withdrawal that never completed is
 * rejected and parked, not recorded; a message of another type on the
 * queue is rejected; two workers racing withdrawals of one account never
 * take it below zero; kill -9 at each crash point applies each message
 * once; `ledgerctl verify` (with its deposit and withdrawal invariants)
 * is green after each test.
 *
 * Ids start with the ledger's (unique) database name, so Redis keys never
 * repeat across tests.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"

#define WORKER  LL_BIN_DIR "/funds-worker"
#define WAIT_MS 40000
#define STOP_MS 20000

static const char *const queues[] = {"funds", "funds.dead", "funds.retry.1s", "funds.retry.30s",
                                     NULL};

LLW_FIXTURE(queues)

static char alice[MSG_ID_MAX + 1], bob[MSG_ID_MAX + 1];

/* alice with 100000.00, bob with 10.00 (EUR, minor units) */
static void setup_funds(void)
{
    setup();
    snprintf(alice, sizeof alice, "%s-alice", ledger);
    snprintf(bob, sizeof bob, "%s-bob", ledger);
    llw_account_t a[] = {{alice, "EUR", 10000000, 0, false}, {bob, "EUR", 1000, 0, false}};
    llw_accounts_create(ledger, a, 2);
}

/* "<ledger>-<tag>" into out. */
static const char *id_of(char *out, size_t n, const char *tag)
{
    snprintf(out, n, "%s-%s", ledger, tag);
    return out;
}

static void publish(const char *type, const char *body)
{
    llw_publish_raw(m, "ledgerline.commands", type, NULL, type, body, strlen(body));
}

static void deposit(const char *id, const char *account, int64_t amount, const char *ref)
{
    char b[512];
    snprintf(b, sizeof b,
             "{\"deposit_id\":\"%s\",\"account\":\"%s\",\"amount\":%" PRId64
             ",\"currency\":\"EUR\",\"rail\":\"sepa\",\"rail_reference\":\"%s\"}",
             id, account, amount, ref);
    publish(MSG_TYPE_DEPOSIT_RECEIVED, b);
}

static void withdraw(const char *id, const char *account, int64_t amount)
{
    char b[512];
    snprintf(b, sizeof b,
             "{\"withdrawal_id\":\"%s\",\"account\":\"%s\",\"amount\":%" PRId64
             ",\"currency\":\"EUR\",\"rail\":\"sepa\",\"destination\":\"DE89 3704\"}",
             id, account, amount);
    publish(MSG_TYPE_WITHDRAWAL_REQUESTED, b);
}

static void return_of(const char *withdrawal_id, const char *ref)
{
    char b[512];
    snprintf(b, sizeof b,
             "{\"withdrawal_id\":\"%s\",\"rail_reference\":\"%s\",\"reason\":\"account closed\"}",
             withdrawal_id, ref);
    publish(MSG_TYPE_WITHDRAWAL_RETURNED, b);
}

static pid_t start(const char *instance, const char *const *extra)
{
    return llw_start_instance(WORKER, ledger, instance, extra);
}

static const char *const outcome_types[] = {
    MSG_TYPE_DEPOSIT_COMPLETED, MSG_TYPE_DEPOSIT_FAILED,      MSG_TYPE_WITHDRAWAL_COMPLETED,
    MSG_TYPE_WITHDRAWAL_FAILED, MSG_TYPE_WITHDRAWAL_REVERSED,
};

/* Distinct outcome event ids collected so far >= *(int64_t *)arg. */
static bool outcomes_seen(void *arg, char *status, size_t n)
{
    llw_events_collect(ev);
    int64_t have = 0;
    for (size_t i = 0; i < sizeof outcome_types / sizeof *outcome_types; i++)
        have += (int64_t)llw_events_distinct(ev, outcome_types[i]);
    snprintf(status, n, "%" PRId64 " of %" PRId64 " distinct outcome events", have,
             *(int64_t *)arg);
    return have == *(int64_t *)arg;
}

/* Until `n` decisions are recorded (deposits + withdrawals + returns),
 * each one's outcome event published (distinct ids), `rejected`
 * rejections, the queue drained and the outbox empty. */
static void wait_decided(int64_t n, int64_t rejected, const char *what)
{
    llw_done_t w = {.counts = {"SELECT (SELECT count(*) FROM deposits) + (SELECT count(*) FROM "
                               "withdrawals) + (SELECT count(*) FROM withdrawals WHERE "
                               "return_transfer_id IS NOT NULL)"},
                    .rows = n,
                    .distinct = 0,
                    .rejected = rejected,
                    .drained = "funds"};
    llw_wait_done(&fx, &w, WAIT_MS, what);
    llw_wait_until(outcomes_seen, &n, WAIT_MS, what);
}

/* The one outcome event of `id`: routing key rk, reason (NULL: none). */
static void check_event(const char *rk, const char *field, const char *id, const char *reason)
{
    json_t *e;
    LLW_ASSERT(llw_events_with(ev, rk, field, id, &e) >= 1, "no %s for %s", rk, id);
    if (reason)
        LLW_ASSERT(strcmp(llc_jstr(json_object_get(e, "json"), "reason"), reason) == 0,
                   "%s of %s: %s, want reason %s", rk, id, llc_jstr(e, "body"), reason);
}

/* ---- deposits --------------------------------------------------------------- */

START_TEST(a_deposit_credits_once_and_a_changed_one_is_a_conflict)
{
    char d1[96], d2[96], d3[96], ghost[96];
    id_of(d1, sizeof d1, "d1"), id_of(d2, sizeof d2, "d2"), id_of(d3, sizeof d3, "d3");
    id_of(ghost, sizeof ghost, "ghost");
    pid_t w = start("w1", NULL);
    deposit(d1, alice, 2500, "sepa-1");
    deposit(d2, ghost, 100, "sepa-2");             /* no such account */
    deposit(d3, "sys:funding:EUR", 100, "sepa-3"); /* a system account */
    llw_confirm(m);
    wait_decided(3, 0, "three deposits");
    deposit(d1, alice, 2500, "sepa-1"); /* the rail delivers it again */
    deposit(d1, alice, 9999, "sepa-1"); /* the same deposit_id, another amount */
    llw_confirm(m);
    llw_wait_events(ev, MSG_TYPE_DEPOSIT_COMPLETED, NULL, 2, WAIT_MS);
    wait_decided(3, 1, "the duplicate replayed and the conflict rejected");
    llw_stop_ok(w, STOP_MS, "funds-worker");

    json_t *e;
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_DEPOSIT_COMPLETED, "deposit_id", d1, &e) == 2,
               "the redelivered deposit should replay the same deposit.completed");
    check_event(MSG_TYPE_DEPOSIT_FAILED, "deposit_id", d2, "unknown_account");
    check_event(MSG_TYPE_DEPOSIT_FAILED, "deposit_id", d3, "unknown_account");
    LLW_ASSERT(llw_balance(db, alice) == 10000000 + 2500, "alice credited once: %" PRId64,
               llw_balance(db, alice));
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'deposit'") == 1,
               "one deposit transfer");
    LLW_ASSERT(llw_count(db,
                         "SELECT count(*) FROM transfers WHERE kind = 'deposit' AND "
                         "debit_account = 'sys:funding:EUR' AND ref = '%s'",
                         d1) == 1,
               "the deposit comes from sys:funding:EUR with the deposit_id as its ref");
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REJECTED, "deposit_id", d1, &e) == 1,
               "the conflict's message.rejected carries the deposit_id");
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(strcmp(llc_jstr(j, "reason"), "idempotency_conflict") == 0 &&
                   strstr(llc_jstr(j, "detail"), "deposit_id ") &&
                   strstr(llc_jstr(j, "detail"), "different values of: amount") &&
                   strcmp(llc_jstr(j, "queue"), "funds") == 0,
               "rejection of the changed deposit: %s", llc_jstr(e, "body"));
    json_t *parked = llw_queue_drain(m, "funds.dead");
    LLW_ASSERT(
        json_array_size(parked) == 1 && strstr(llc_jstr(json_array_get(parked, 0), "body"), "9999"),
        "the conflicting deposit parked in funds.dead (%zu parked)", json_array_size(parked));
    json_decref(parked);
    llw_assert_verify(ledger);
}
END_TEST

/* ---- withdrawals -------------------------------------------------------------- */

START_TEST(a_withdrawal_is_screened_by_the_risk_rules_then_debited)
{
    char blk[64], blocked[96], path[128];
    id_of(blocked, sizeof blocked, "mallory");
    llw_ctl(ledger, "account create %s --currency EUR", blocked);
    llw_ctl(ledger, "account fund %s 100000 --ref fund-%s", blocked, blocked);
    snprintf(path, sizeof path, "/tmp/llt-blocklist-%d", (int)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "# blocked\n%s\n", blocked);
    fclose(f);
    snprintf(blk, sizeof blk, "LEDGERLINE_RISK_BLOCKLIST_FILE=%s", path);
    const char *env[] = {"LEDGERLINE_RISK_MAX_AMOUNT=EUR:5000", "LEDGERLINE_RISK_VELOCITY_COUNT=2",
                         blk, NULL};
    char w[8][96];
    static const char *const tags[] = {"w-ok1",     "w-big",  "w-ok2",   "w-third",
                                       "w-blocked", "w-poor", "w-ghost", "w-sys"};
    for (int i = 0; i < 8; i++)
        id_of(w[i], sizeof w[i], tags[i]);
    char ghost[96];
    id_of(ghost, sizeof ghost, "ghost");
    pid_t p = start("w1", env);
    withdraw(w[0], alice, 1000);
    withdraw(w[1], alice, 6000); /* above EUR:5000 */
    withdraw(w[2], alice, 1000);
    withdraw(w[3], alice, 1000); /* alice's third: velocity_count 2 */
    withdraw(w[4], blocked, 100);
    withdraw(w[5], bob, 1001); /* bob has 1000 */
    withdraw(w[6], ghost, 100);
    withdraw(w[7], "sys:funding:EUR", 100); /* would create money */
    llw_confirm(m);
    wait_decided(8, 0, "eight withdrawals");
    llw_stop_ok(p, STOP_MS, "funds-worker");
    unlink(path);

    check_event(MSG_TYPE_WITHDRAWAL_COMPLETED, "withdrawal_id", w[0], NULL);
    check_event(MSG_TYPE_WITHDRAWAL_FAILED, "withdrawal_id", w[1], "risk_declined");
    check_event(MSG_TYPE_WITHDRAWAL_COMPLETED, "withdrawal_id", w[2], NULL);
    check_event(MSG_TYPE_WITHDRAWAL_FAILED, "withdrawal_id", w[3], "risk_declined");
    check_event(MSG_TYPE_WITHDRAWAL_FAILED, "withdrawal_id", w[4], "risk_declined");
    check_event(MSG_TYPE_WITHDRAWAL_FAILED, "withdrawal_id", w[5], "insufficient_funds");
    check_event(MSG_TYPE_WITHDRAWAL_FAILED, "withdrawal_id", w[6], "unknown_account");
    check_event(MSG_TYPE_WITHDRAWAL_FAILED, "withdrawal_id", w[7], "unknown_account");
    static const struct {
        int i;
        const char *rule;
    } declined[] = {{1, "max_amount"}, {3, "velocity_count"}, {4, "blocklisted"}};
    for (int k = 0; k < 3; k++) {
        json_t *e;
        llw_events_with(ev, MSG_TYPE_WITHDRAWAL_FAILED, "withdrawal_id", w[declined[k].i], &e);
        json_t *rules = json_object_get(json_object_get(e, "json"), "rules");
        LLW_ASSERT(json_array_size(rules) == 1 &&
                       strcmp(json_string_value(json_array_get(rules, 0)), declined[k].rule) == 0,
                   "%s should be declined by %s: %s", w[declined[k].i], declined[k].rule,
                   llc_jstr(e, "body"));
    }
    LLW_ASSERT(llw_balance(db, alice) == 10000000 - 2000, "alice after two withdrawals: %" PRId64,
               llw_balance(db, alice));
    LLW_ASSERT(llw_balance(db, bob) == 1000 && llw_balance(db, blocked) == 100000,
               "refused withdrawals move nothing");
    LLW_ASSERT(llw_balance(db, "sys:withdrawals:EUR") == 2000,
               "sys:withdrawals:EUR holds the money on its way out: %" PRId64,
               llw_balance(db, "sys:withdrawals:EUR"));
    llw_assert_verify(ledger);
}
END_TEST

START_TEST(a_returned_withdrawal_puts_the_money_back_once)
{
    char w1[96], w2[96], never[96];
    id_of(w1, sizeof w1, "w1"), id_of(w2, sizeof w2, "w2"), id_of(never, sizeof never, "never");
    pid_t p = start("w1", NULL);
    withdraw(w1, alice, 3000);
    withdraw(w2, alice, 4000);
    llw_confirm(m);
    wait_decided(2, 0, "two withdrawals");
    llw_ctl(ledger, "account freeze %s", alice); /* the money comes back all the same */
    return_of(w1, "ret-1");
    return_of(never, "ret-x"); /* no such withdrawal: rejected, parked, not recorded */
    llw_confirm(m);
    wait_decided(3, 1, "the return and the rejection");
    return_of(w1, "ret-1"); /* the rail reports it again */
    return_of(w1, "ret-2"); /* ... or with another reference */
    llw_confirm(m);
    llw_wait_events(ev, MSG_TYPE_WITHDRAWAL_REVERSED, NULL, 2, WAIT_MS);
    wait_decided(3, 2, "the duplicate return replayed and the changed one rejected");
    llw_stop_ok(p, STOP_MS, "funds-worker");

    json_t *e;
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_WITHDRAWAL_REVERSED, "withdrawal_id", w1, &e) == 2,
               "the repeated return should replay the same withdrawal.reversed");
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(json_integer_value(json_object_get(j, "amount")) == 3000 &&
                   strcmp(llc_jstr(j, "account"), alice) == 0,
               "withdrawal.reversed: %s", llc_jstr(e, "body"));
    LLW_ASSERT(llw_balance(db, alice) == 10000000 - 4000,
               "alice gets w1 back once (frozen or not): %" PRId64, llw_balance(db, alice));
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'withdrawal_return'") ==
                   1,
               "one return transfer");
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REJECTED, "withdrawal_id", never, &e) == 1 &&
                   strcmp(llc_jstr(json_object_get(e, "json"), "reason"), "processing_failed") ==
                       0 &&
                   strstr(llc_jstr(json_object_get(e, "json"), "detail"), "no withdrawal"),
               "the return of an unknown withdrawal: processing_failed naming it");
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REJECTED, "withdrawal_id", w1, &e) == 1 &&
                   strstr(llc_jstr(json_object_get(e, "json"), "detail"), "rail_reference"),
               "the changed return: an idempotency_conflict naming rail_reference");
    LLW_ASSERT(llw_count(db,
                         "SELECT count(*) FROM processed WHERE stage = 'funds' AND "
                         "payment_id = 'return:%s'",
                         never) == 0,
               "an unusable return leaves no processed row (a replay is judged again)");
    json_t *parked = llw_queue_drain(m, "funds.dead");
    LLW_ASSERT(json_array_size(parked) == 2, "two returns parked, %zu were",
               json_array_size(parked));
    json_decref(parked);
    llw_assert_verify(ledger);
}
END_TEST

/* A return the worker parked (its withdrawal unknown then) is replayed from
 * funds.dead once the withdrawal exists: the replayed copy still names its
 * type, and the money comes back once. */
START_TEST(a_parked_return_replayed_after_its_withdrawal_puts_the_money_back)
{
    char late[96];
    id_of(late, sizeof late, "late");
    pid_t p = start("w1", NULL);
    return_of(late, "ret-early");
    llw_confirm(m);
    wait_decided(0, 1, "the early return rejected");
    withdraw(late, alice, 2500);
    llw_confirm(m);
    wait_decided(1, 1, "the withdrawal");
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "dlq replay funds.dead --all");
    LLW_ASSERT(rc == 0, "dlq replay funds.dead (exit %d): %s%s", rc, out, err);
    free(out);
    free(err);
    wait_decided(2, 1, "the replayed return");
    llw_stop_ok(p, STOP_MS, "funds-worker");
    check_event(MSG_TYPE_WITHDRAWAL_REVERSED, "withdrawal_id", late, NULL);
    LLW_ASSERT(llw_balance(db, alice) == 10000000, "alice whole again: %" PRId64,
               llw_balance(db, alice));
    LLW_ASSERT(llw_queue_depth(m, "funds.dead") == 0, "nothing left parked");
    llw_assert_verify(ledger);
}
END_TEST

START_TEST(a_message_of_another_type_or_shape_is_rejected_and_the_worker_goes_on)
{
    char d1[96];
    id_of(d1, sizeof d1, "d1");
    pid_t p = start("w1", NULL);
    static const char junk[] = "{\"deposit_id\":";
    publish(MSG_TYPE_DEPOSIT_RECEIVED, junk);
    /* straight to the queue with a routing key that is no type of it */
    static const char stray[] = "{\"payment_id\":\"x\"}";
    llw_publish_raw(m, "", "funds", NULL, NULL, stray, sizeof stray - 1);
    char neg[256];
    snprintf(neg, sizeof neg,
             "{\"withdrawal_id\":\"%s-neg\",\"account\":\"%s\",\"amount\":-5,\"currency\":\"EUR\","
             "\"rail\":\"sepa\"}",
             ledger, alice);
    publish(MSG_TYPE_WITHDRAWAL_REQUESTED, neg);
    deposit(d1, alice, 1, "ok");
    llw_confirm(m);
    wait_decided(1, 3, "the good deposit and three rejections");
    llw_stop_ok(p, STOP_MS, "funds-worker");
    json_t *e;
    char negid[96];
    id_of(negid, sizeof negid, "neg");
    LLW_ASSERT(llw_events_with(ev, MSG_TYPE_REJECTED, "withdrawal_id", negid, &e) == 1 &&
                   strstr(llc_jstr(json_object_get(e, "json"), "detail"), "amount"),
               "amount -5 rejected naming amount, with its withdrawal_id");
    json_t *parked = llw_queue_drain(m, "funds.dead");
    LLW_ASSERT(json_array_size(parked) == 3, "three parked, %zu were", json_array_size(parked));
    json_decref(parked);
    LLW_ASSERT(llw_balance(db, alice) == 10000001, "the good deposit went through");
    llw_assert_verify(ledger);
}
END_TEST

/* Two workers, batches of one: NW withdrawals of 1000 from an account
 * holding 10 of them. */
#define NW 40

START_TEST(racing_withdrawals_never_overdraw_an_account)
{
    char carol[96];
    id_of(carol, sizeof carol, "carol");
    llw_ctl(ledger, "account create %s --currency EUR", carol);
    llw_ctl(ledger, "account fund %s 10000 --ref fund-%s", carol, carol);
    static const char *const one[] = {"LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=1", NULL};
    pid_t a = start("w1", one), b = start("w2", one);
    llw_wait_consuming(m, "funds", 2, WAIT_MS);
    for (int i = 0; i < NW; i++) {
        char id[96];
        snprintf(id, sizeof id, "%s-r%d", ledger, i);
        withdraw(id, carol, 1000);
    }
    llw_confirm(m);
    wait_decided(NW, 0, "the racing withdrawals");
    llw_stop_ok(a, STOP_MS, "funds-worker w1");
    llw_stop_ok(b, STOP_MS, "funds-worker w2");
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM withdrawals WHERE outcome = 'completed'") ==
                       10 &&
                   llw_count(db, "SELECT count(*) FROM withdrawals WHERE outcome = "
                                 "'insufficient_funds'") == NW - 10,
               "exactly 10 of %d withdrawals of 1000 from 10000 may complete", NW);
    LLW_ASSERT(llw_balance(db, carol) == 0, "carol at 0, never below: %" PRId64,
               llw_balance(db, carol));
    llw_assert_verify(ledger);
}
END_TEST

/* ---- kill -9 ------------------------------------------------------------------- */

#define NCRASH 48

static const char *const crash_points[] = {"mid_batch",    "after_decode",  "before_commit",
                                           "after_commit", "after_publish", "after_ack"};

START_TEST(a_kill_at_each_crash_point_applies_each_message_once)
{
    const char *point = crash_points[_i];
    for (int i = 0; i < NCRASH; i++) {
        char id[96];
        snprintf(id, sizeof id, "%s-c%d", ledger, i);
        if (i % 2)
            withdraw(id, alice, 100 + i);
        else
            deposit(id, bob, 100 + i, id);
    }
    llw_confirm(m);
    char at[96];
    snprintf(at, sizeof at, "LEDGERLINE_CRASH_AT=%s", point);
    const char *env[] = {at, "LEDGERLINE_CRASH_AFTER=3", "LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=8",
                         NULL};
    pid_t c = start("crasher", env);
    int st = llw_wait_exit(c, WAIT_MS);
    LLW_ASSERT(st == -SIGKILL, "the worker should kill itself at %s: %s", point,
               llw_status_str(st));
    pid_t w = start("after", NULL);
    wait_decided(NCRASH, 0, "every message decided after the crash");
    llw_stop_ok(w, STOP_MS, "funds-worker");
    int64_t in = 0, out = 0;
    for (int i = 0; i < NCRASH; i++)
        *(i % 2 ? &out : &in) += 100 + i;
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind IN ('deposit', "
                             "'withdrawal')") == NCRASH,
               "one transfer per message after a kill at %s", point);
    LLW_ASSERT(llw_balance(db, bob) == 1000 + in && llw_balance(db, alice) == 10000000 - out,
               "balances after a kill at %s: bob %" PRId64 " alice %" PRId64, point,
               llw_balance(db, bob), llw_balance(db, alice));
    llw_assert_verify(ledger);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("funds");
    TCase *tc = tcase_create("funds");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup_funds, teardown);
    tcase_add_test(tc, a_deposit_credits_once_and_a_changed_one_is_a_conflict);
    tcase_add_test(tc, a_withdrawal_is_screened_by_the_risk_rules_then_debited);
    tcase_add_test(tc, a_returned_withdrawal_puts_the_money_back_once);
    tcase_add_test(tc, a_parked_return_replayed_after_its_withdrawal_puts_the_money_back);
    tcase_add_test(tc, a_message_of_another_type_or_shape_is_rejected_and_the_worker_goes_on);
    tcase_add_test(tc, racing_withdrawals_never_overdraw_an_account);
    tcase_add_loop_test(tc, a_kill_at_each_crash_point_applies_each_message_once, 0,
                        (int)(sizeof crash_points / sizeof *crash_points));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
