/*
 * test_bench.c - `ledgerctl bench` against real workers on the test stack:
 * what it reports is what the ledger shows.
 *
 *   - a run through the three stages accounts for every payment it
 *     published: decided, posted or failed, settled, with the counts, the
 *     rates and the latency samples its report gives checked against the
 *     rows PostgreSQL holds for the run's payment ids, and verify green;
 *   - a stage with no worker is named when the run times out (exit 1);
 *   - --prefill publishes everything before a worker runs (the risk queue
 *     holds the whole run), says so, then follows the drain;
 *   - --stage payment publishes payment.approved as the risk-worker would;
 *   - --broker measures its own quorum queue and deletes it;
 *   - usage errors exit 2 and name the option.
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

/* `ledgerctl bench <args> --json` on the test's ledger: its exit status;
 * the report parsed into *report (NULL unless it printed one; decref it),
 * stderr into *err (may be NULL; free it). */
static int bench(json_t **report, char **err, const char *args)
{
    char *out = NULL;
    int rc = llt_ctl(&out, err, ledger, "bench --json %s", args);
    *report = NULL;
    if (out && out[0] == '{')
        *report = llt_json(out);
    free(out);
    return rc;
}

/* The value at a dotted path ("latency_ms.completed.p50") of a report. */
static const json_t *jget(const json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *v = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return v;
}

static int64_t jint(const json_t *o, const char *path)
{
    const json_t *v = jget(o, path);
    ck_assert_msg(json_is_integer(v), "report has no integer %s", path);
    return json_integer_value(v);
}

static double jnum(const json_t *o, const char *path)
{
    const json_t *v = jget(o, path);
    ck_assert_msg(json_is_number(v), "report has no number %s", path);
    return json_number_value(v);
}

/* Rows of stage `stage` in processed for the run's payment ids. */
static int64_t processed(const char *run, const char *stage, const char *outcome_like)
{
    return llw_count(db,
                     "SELECT count(*) FROM processed WHERE stage = '%s' AND payment_id LIKE "
                     "'bench-%s-%%' AND outcome LIKE '%s'",
                     stage, run, outcome_like);
}

static void start_pipeline(void)
{
    llw_start_instance(RISK, ledger, "bench-risk", NULL);
    llw_start_instance(PAYMENT, ledger, "bench-payment", NULL);
    llw_start_instance(SETTLEMENT, ledger, "bench-settlement", NULL);
    llw_wait_consuming(m, "risk", 1, WAIT_MS);
    llw_wait_consuming(m, "payments", 1, WAIT_MS);
    llw_wait_consuming(m, "settlement", 1, WAIT_MS);
}

START_TEST(bench_accounts_for_every_payment_through_the_three_stages)
{
    start_pipeline();
    json_t *r;
    char *err = NULL;
    int rc = bench(&r, &err, "--count 300 --payers 40 --payees 6 --run-id t1 --timeout 120");
    LLW_ASSERT(rc == 0 && r, "bench exited %d: %s", rc, err);
    free(err);
    const char *run = json_string_value(json_object_get(r, "run_id"));
    ck_assert_str_eq(run, "t1");
    ck_assert_int_eq(jint(r, "published"), 300);
    int64_t approved = jint(r, "outcomes.approved"), declined = jint(r, "outcomes.declined");
    int64_t completed = jint(r, "outcomes.completed"), failed = jint(r, "outcomes.failed");
    int64_t settled = jint(r, "outcomes.settled");
    /* the report and the ledger agree on every count */
    ck_assert_int_eq(approved + declined, 300);
    ck_assert_int_eq(approved, processed(run, "risk", "approved"));
    ck_assert_int_eq(declined, processed(run, "risk", "declined"));
    ck_assert_int_eq(completed, processed(run, "payment", "completed"));
    ck_assert_int_eq(completed + failed, approved);
    ck_assert_int_eq(settled, processed(run, "settlement", "batched:%"));
    ck_assert_int_eq(settled, completed);
    ck_assert_int_eq(jint(r, "outcomes.rejected"), 0);
    ck_assert_msg(completed > 250, "funded payers and default rules: only %" PRId64 " completed",
                  completed);
    /* one latency sample per completed and per settled payment, ordered */
    ck_assert_int_eq(jint(r, "latency_ms.completed.n"), completed);
    ck_assert_int_eq(jint(r, "latency_ms.settled.n"), settled);
    ck_assert_int_eq(jint(r, "latency_ms.decided.n"), 300);
    double p50 = jnum(r, "latency_ms.completed.p50"), p99 = jnum(r, "latency_ms.completed.p99");
    double max = jnum(r, "latency_ms.completed.max");
    ck_assert_msg(p50 > 0 && p50 <= p99 && p99 <= max, "p50 %.1f p99 %.1f max %.1f", p50, p99, max);
    ck_assert(jnum(r, "latency_ms.settled.p50") >= jnum(r, "latency_ms.decided.p50"));
    ck_assert(jnum(r, "payments_per_s") > 0 && jnum(r, "stage_per_s.risk") > 0 &&
              jnum(r, "stage_per_s.payment") > 0 && jnum(r, "stage_per_s.settlement") > 0);
    ck_assert(json_is_true(json_object_get(json_object_get(r, "verify"), "ok")));
    /* the accounts it prepared, funded once however often it runs */
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM accounts WHERE id LIKE 'bench-payer-%%'"),
                     40);
    json_decref(r);
    rc = bench(&r, &err, "--count 20 --payers 40 --payees 6 --timeout 120");
    LLW_ASSERT(rc == 0, "second run: %s", err);
    free(err);
    json_decref(r);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'funding'"), 40);
}
END_TEST

START_TEST(bench_names_the_stage_that_fell_short)
{
    /* risk decides, nobody posts */
    llw_start_instance(RISK, ledger, "bench-risk", NULL);
    llw_wait_consuming(m, "risk", 1, WAIT_MS);
    json_t *r;
    char *err = NULL;
    int rc = bench(&r, &err, "--count 10 --payers 5 --payees 2 --timeout 3 --no-verify");
    ck_assert_msg(rc == 1, "want exit 1 when a stage runs no worker, got %d", rc);
    ck_assert_msg(strstr(err, "payment stage fell short") && strstr(err, "fix:"),
                  "stderr does not name the stage and the fix: %s", err);
    ck_assert_ptr_null(r);
    free(err);
}
END_TEST

static bool prefilled(void *arg, char *status, size_t n)
{
    char *e = llw_slurp(arg);
    bool yes = strstr(e, "prefilled 40 payment(s)") != NULL;
    snprintf(status, n, "stderr so far: %.200s", e);
    free(e);
    return yes;
}

START_TEST(bench_prefill_publishes_everything_before_the_workers_start)
{
    char out[] = "/tmp/llt_bench_out_XXXXXX", errf[] = "/tmp/llt_bench_err_XXXXXX";
    close(mkstemp(out));
    close(mkstemp(errf));
    /* in the background: it publishes, then follows */
    int rc = llt_run(NULL,
                     "LEDGERLINE_POSTGRES_DBNAME=%s %s bench --json --prefill --stage risk "
                     "--count 40 --payers 5 --payees 2 --run-id pf --timeout 60 >%s 2>%s &",
                     ledger, LEDGERCTL_BIN, out, errf);
    ck_assert_int_eq(rc, 0);
    llw_wait_until(prefilled, errf, WAIT_MS, "bench to say it prefilled the run");
    /* nothing consumed: the whole run waits in the risk queue */
    ck_assert_uint_eq(llw_queue_depth(m, "risk"), 40);
    llw_start_instance(RISK, ledger, "bench-risk", NULL);
    /* the report comes once the drain is over */
    char *text = NULL;
    for (int64_t end = llw_now_ms() + WAIT_MS; llw_now_ms() < end; llw_sleep_ms(100)) {
        free(text);
        text = llw_slurp(out);
        if (text[0] == '{' && strchr(text, '\n'))
            break;
    }
    ck_assert_msg(text[0] == '{', "no report: %s", text);
    json_t *r = llt_json(text);
    free(text);
    ck_assert(json_is_true(json_object_get(r, "prefill")));
    ck_assert_int_eq(jint(r, "outcomes.approved") + jint(r, "outcomes.declined"), 40);
    ck_assert_int_eq(processed("pf", "risk", "%"), 40);
    ck_assert(jnum(r, "payments_per_s") > 0);
    json_decref(r);
    unlink(out);
    unlink(errf);
}
END_TEST

START_TEST(bench_stage_payment_publishes_approvals_like_risk)
{
    llw_start_instance(PAYMENT, ledger, "bench-payment", NULL);
    llw_wait_consuming(m, "payments", 1, WAIT_MS);
    json_t *r;
    char *err = NULL;
    int rc = bench(&r, &err,
                   "--stage payment --count 30 --payers 5 --payees 2 --run-id sp --timeout 60 "
                   "--no-verify");
    LLW_ASSERT(rc == 0 && r, "bench exited %d: %s", rc, err);
    free(err);
    ck_assert_int_eq(jint(r, "outcomes.completed") + jint(r, "outcomes.failed"), 30);
    ck_assert_int_eq(processed("sp", "payment", "%"), 30);
    ck_assert_int_eq(processed("sp", "risk", "%"), 0); /* risk never saw them */
    json_decref(r);
}
END_TEST

START_TEST(bench_broker_measures_its_own_quorum_queue)
{
    json_t *r;
    char *err = NULL;
    int rc = bench(&r, &err, "--broker --count 500 --size 300");
    LLW_ASSERT(rc == 0 && r, "bench --broker exited %d: %s", rc, err);
    free(err);
    ck_assert_int_eq(jint(r, "count"), 500);
    ck_assert_str_eq(json_string_value(json_object_get(r, "queue_type")), "quorum");
    ck_assert(jnum(r, "published_per_s") > 0 && jnum(r, "consumed_per_s") > 0 &&
              jnum(r, "through_per_s") > 0);
    /* its queue is gone */
    const char *q = json_string_value(json_object_get(r, "queue"));
    ck_assert_msg(q && strncmp(q, "ledgerline.bench.broker.", 24) == 0, "queue %s", q);
    uint32_t msgs, consumers;
    rc = mq_queue_stats(m, q, &msgs, &consumers);
    ck_assert_msg(rc == LL_ENOTFOUND, "%s still exists (%s)", q, ll_errname(rc));
    json_decref(r);
}
END_TEST

static const struct {
    const char *args;
    const char *says;
} usage_errors[] = {
    {"--stage bogus", "--stage must be"},
    {"--stage settlement --count 5", "--run-id"},
    {"--prefill --rate 10", "drop --rate"},
    {"--count 0", "--count"},
    {"--currency eur", "ISO 4217"},
    {"--payer-list a,b --payees 3 --count 1", "--payee-list"},
    {"--min-amount 10 --max-amount 5", "--min-amount"},
};

START_TEST(bench_usage_errors_exit_2_naming_the_option)
{
    json_t *r;
    char *err = NULL;
    int rc = bench(&r, &err, usage_errors[_i].args);
    int want = strstr(usage_errors[_i].args, "--payer-list") ? 1 : 2;
    ck_assert_msg(rc == want, "%s: exit %d, want %d (%s)", usage_errors[_i].args, rc, want, err);
    ck_assert_msg(strstr(err, usage_errors[_i].says), "%s: stderr lacks '%s': %s",
                  usage_errors[_i].args, usage_errors[_i].says, err);
    free(err);
    json_decref(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench");
    TCase *tc = tcase_create("bench");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, bench_accounts_for_every_payment_through_the_three_stages);
    tcase_add_test(tc, bench_names_the_stage_that_fell_short);
    tcase_add_test(tc, bench_prefill_publishes_everything_before_the_workers_start);
    tcase_add_test(tc, bench_stage_payment_publishes_approvals_like_risk);
    tcase_add_test(tc, bench_broker_measures_its_own_quorum_queue);
    tcase_add_loop_test(tc, bench_usage_errors_exit_2_naming_the_option, 0,
                        (int)(sizeof usage_errors / sizeof usage_errors[0]));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
