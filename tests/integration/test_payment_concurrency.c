/*
 * test_payment_concurrency.c - 2 and 3 payment-worker processes on the
 * `payments` queue at once, 600 payments among 6 accounts whose payers
 * and payees overlap (every batch of every worker locks accounts the
 * others lock too), in batches of 16 so the workers interleave.
 *
 * Small balances, overdraft 0: some payments fail with
 * insufficient_funds, which ones depends on the order across workers, so
 * instead of a fixed order the test checks: no deadlock (PostgreSQL counted
 * none and no worker logged one; all decided within the deadline, every
 * worker exits 0), one processed row and one outcome
 * event per payment matching it, one transfer per completed payment and
 * none for a failed one, each account's balance change = credits - debits
 * of its posted transfers, no balance below -overdraft, each balance equal
 * to the sum of its entries, verify green.
 * Generous balances: every payment completes, so the final balances must
 * equal the one-at-a-time computation exactly.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ll_amqp.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"

#define WORKER  LL_BIN_DIR "/payment-worker"
#define NPAY    600
#define NACC    6
#define WAIT_MS 60000
#define T0_MS   1767225600000LL

LLW_FIXTURE(llw_payment_queues)

static const struct {
    int workers;
    int64_t funds; /* each account's opening balance */
    bool all_complete;
} variants[] = {
    {2, 3000, false},
    {3, 3000, false},
    {3, 100000000, true},
};

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

START_TEST(concurrent_workers_post_each_payment_once)
{
    const int nworkers = variants[_i].workers;
    static const char *const ids[NACC] = {"k0", "k1", "k2", "k3", "k4", "k5"};
    llw_account_t acc[NACC], start_acc[NACC];
    for (int i = 0; i < NACC; i++)
        acc[i] = (llw_account_t){ids[i], "EUR", variants[_i].funds, 0, false};
    memcpy(start_acc, acc, sizeof acc);
    llw_accounts_create(ledger, acc, NACC);

    int64_t deadlocks_before = llw_deadlocks(db);
    pid_t w[3];
    for (int k = 0; k < nworkers; k++) {
        char inst[16];
        snprintf(inst, sizeof inst, "c%d", k);
        const char *env[] = {"LEDGERLINE_WORKER_BATCH_MAX_MESSAGES=16",
                             "LEDGERLINE_AMQP_PREFETCH=16", NULL};
        w[k] = llw_start_instance(WORKER, ledger, inst, env);
    }
    llw_wait_consuming(m, "payments", (uint32_t)nworkers, WAIT_MS);

    static msg_payment_t pays[NPAY];
    static const char *model_outcome[NPAY];
    uint64_t seed = 42 + (uint64_t)_i;
    for (int i = 0; i < NPAY; i++) {
        msg_payment_t *p = &pays[i];
        memset(p, 0, sizeof *p);
        snprintf(p->payment_id, sizeof p->payment_id, "%s-k%d", ledger, i);
        int payer = (int)(lcg(&seed) % NACC);
        int payee = (payer + 1 + (int)(lcg(&seed) % (NACC - 1))) % NACC;
        snprintf(p->payer, sizeof p->payer, "%s", ids[payer]);
        snprintf(p->payee, sizeof p->payee, "%s", ids[payee]);
        p->amount = 1 + (int64_t)(lcg(&seed) % 1000);
        snprintf(p->currency, sizeof p->currency, "EUR");
        model_outcome[i] = llw_model_apply(acc, NACC, p);
        free(llw_publish_approved(m, p, T0_MS + i));
    }
    llw_confirm(m);
    llw_done_t want = {.counts = {"SELECT count(*) FROM processed WHERE stage = 'payment'"},
                       .rows = NPAY,
                       .events = {MSG_TYPE_COMPLETED, MSG_TYPE_FAILED},
                       .distinct = NPAY,
                       .rejected = LLW_ANY};
    llw_wait_done(&fx, &want, WAIT_MS, "every payment decided by the workers");
    for (int k = 0; k < nworkers; k++) {
        char inst[16];
        snprintf(inst, sizeof inst, "worker c%d", k);
        llw_stop_ok(w[k], 20000, inst);
    }
    llw_events_collect(ev);

    /* lock rule 5: the workers lock shared accounts in one order, so no
     * two batches ever waited in a cycle */
    size_t logged = 0;
    for (int k = 0; k < nworkers; k++)
        logged += llw_log_count(w[k], "deadlock detected");
    int64_t deadlocks = llw_deadlocks(db) - deadlocks_before;
    LLW_ASSERT(deadlocks == 0 && logged == 0,
               "every writer locks accounts in id order, so batches never wait in a cycle: "
               "PostgreSQL counted %" PRId64 " deadlock(s) among %d payment-workers (they logged "
               "%zu)",
               deadlocks, nworkers, logged);

    /* every payment: one processed row, its outcome event, its transfer */
    int64_t delta[NACC] = {0};
    int completed = 0, failed = 0;
    for (int i = 0; i < NPAY; i++) {
        const msg_payment_t *p = &pays[i];
        PGresult *r = NULL;
        const char *params[] = {p->payment_id};
        int rc = db_query(db, &r,
                          "SELECT outcome FROM processed WHERE stage = 'payment' AND "
                          "payment_id = $1",
                          1, params);
        ck_assert_msg(rc == LL_OK, "%s", db_errstr(db));
        LLW_ASSERT(PQntuples(r) == 1, "payment %s: %d processed rows", p->payment_id, PQntuples(r));
        char outcome[64];
        snprintf(outcome, sizeof outcome, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        bool ok = strcmp(outcome, "completed") == 0;
        LLW_ASSERT(ok || strcmp(outcome, "insufficient_funds") == 0,
                   "payment %s: outcome %s (only completed or insufficient_funds are possible)",
                   p->payment_id, outcome);
        if (variants[_i].all_complete)
            LLW_ASSERT(ok, "payment %s: %s, though every account has plenty (model: %s)",
                       p->payment_id, outcome, model_outcome[i]);
        int64_t t = llw_count(db,
                              "SELECT count(*) FROM transfers WHERE kind = 'payment' AND ref = "
                              "'%s' AND debit_account = '%s' AND credit_account = '%s' AND "
                              "amount = %" PRId64,
                              p->payment_id, p->payer, p->payee, p->amount);
        LLW_ASSERT(t == (ok ? 1 : 0), "payment %s (%s): %" PRId64 " matching transfers",
                   p->payment_id, outcome, t);
        const char *rk = ok ? MSG_TYPE_COMPLETED : MSG_TYPE_FAILED;
        const char *other = ok ? MSG_TYPE_FAILED : MSG_TYPE_COMPLETED;
        LLW_ASSERT(llw_events_count(ev, rk, p->payment_id) >= 1 &&
                       llw_events_count(ev, other, p->payment_id) == 0,
                   "payment %s (%s): %zu %s and %zu %s events", p->payment_id, outcome,
                   llw_events_count(ev, rk, p->payment_id), rk,
                   llw_events_count(ev, other, p->payment_id), other);
        if (!ok) {
            json_t *e = llw_events_find(ev, rk, p->payment_id, 0);
            const char *reason =
                json_string_value(json_object_get(json_object_get(e, "json"), "reason"));
            LLW_ASSERT(reason && strcmp(reason, outcome) == 0, "payment %s: event reason %s",
                       p->payment_id, reason ? reason : "(none)");
            failed++;
            continue;
        }
        completed++;
        for (int a = 0; a < NACC; a++) {
            if (strcmp(ids[a], p->payer) == 0)
                delta[a] -= p->amount;
            if (strcmp(ids[a], p->payee) == 0)
                delta[a] += p->amount;
        }
    }
    int64_t transfers = llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'");
    LLW_ASSERT(transfers == completed, "%" PRId64 " payment transfers for %d completed payments",
               transfers, completed);
    if (!variants[_i].all_complete)
        ck_assert_msg(completed > 0 && failed > 0,
                      "test data: want both outcomes, got %d completed and %d failed", completed,
                      failed);
    for (int a = 0; a < NACC; a++) {
        int64_t b = llw_balance(db, ids[a]);
        LLW_ASSERT(b - start_acc[a].balance == delta[a],
                   "account %s: balance moved by %" PRId64 ", its posted payments by %" PRId64,
                   ids[a], b - start_acc[a].balance, delta[a]);
        LLW_ASSERT(b >= -start_acc[a].overdraft, "account %s: balance %" PRId64 " below -%" PRId64,
                   ids[a], b, start_acc[a].overdraft);
        int64_t sum = llw_count(db,
                                "SELECT coalesce(sum(amount), 0) FROM entries WHERE account_id "
                                "= '%s'",
                                ids[a]);
        LLW_ASSERT(sum == b, "account %s: balance %" PRId64 ", entries sum to %" PRId64, ids[a], b,
                   sum);
        if (variants[_i].all_complete)
            LLW_ASSERT(b == acc[a].balance,
                       "account %s: balance %" PRId64 ", one-at-a-time %" PRId64, ids[a], b,
                       acc[a].balance);
    }
    LLW_ASSERT(llw_events_count(ev, MSG_TYPE_REJECTED, NULL) == 0, "unexpected message.rejected");
    LLW_ASSERT(llw_queue_depth(m, "payments") == 0, "messages left in payments");
    LLW_ASSERT(llw_queue_depth(m, "payments.dead") == 0, "messages parked");
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM outbox_pending") == 0, "unsent outbox rows");
    llw_assert_verify(ledger);
    for (int i = 0; i < NPAY; i++)
        msg_payment_clear(&pays[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("payment_concurrency");
    TCase *tc = tcase_create("workers");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, concurrent_workers_post_each_payment_once, 0,
                        (int)(sizeof variants / sizeof variants[0]));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
