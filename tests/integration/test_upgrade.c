/*
 * test_upgrade.c - a ledger that an older build created and used is
 * upgraded by `ledgerctl migrate` and keeps working.
 *
 * The databases are pg_dumps made with the older builds themselves
 * (tests/fixtures/upgrade/make.sh, README.md there): one at migration 009
 * (before the lock contract, the set-based stages, the outbox_pending table
 * and the function files) and one at 014 (the last build whose migrations
 * held the SQL functions). Each holds accounts, 200 payments through all
 * three stages, closed and open settlement batches, and 3 outbox events a
 * crash left unpublished. For each:
 *   - migrate applies the missing migrations, accepts the rewritten texts
 *     of the applied ones (their records now carry the current checksums),
 *     and installs the function set: exactly the functions of
 *     schemas/sql/functions/ exist afterwards (payment_apply() is gone);
 *   - nothing the ledger holds changed (transfers, processed rows, balances),
 *     `ledgerctl verify` holds, and the unpublished events are pending;
 *     processed and outbox are partitioned, their old rows in the legacy
 *     partitions, and the refused payments in payment_failures (017);
 *   - the three workers run on it: the old payments published again are
 *     duplicates (no new transfer), new payments are decided, posted and
 *     batched, the old open batches close, the pending events go out (new
 *     events numbered after the old ones), and `ledgerctl verify` holds
 *     again.
 * The suite's upgrade pass (label upgrade) runs every ledger suite on a
 * third dump, an empty ledger of the 014 build.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "embed.h"
#include "ll_amqp.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "migrate.h"

#define RISK       LL_BIN_DIR "/risk-worker"
#define PAYMENT    LL_BIN_DIR "/payment-worker"
#define SETTLEMENT LL_BIN_DIR "/settlement-worker"
#define FIXTURES   LL_SOURCE_DIR "/tests/fixtures/upgrade/"
#define OLD_PAYS   200 /* what make.sh published */
#define NEW_PAYS   40
#define WAIT_MS    120000

static const char *const queues[] = {"risk",
                                     "risk.dead",
                                     "payments",
                                     "payments.dead",
                                     "settlement",
                                     "settlement.dead",
                                     "risk.retry.1s",
                                     "payments.retry.1s",
                                     "settlement.retry.1s",
                                     NULL};

static int compiled(const char *dir)
{
    int n = 0;
    for (const embed_file_t *f = embed_files; f->name; f++)
        n += strncmp(f->name, dir, strlen(dir)) == 0;
    return n;
}

/* The database's schema_migrations rows whose checksum is the one of the
 * compiled-in file of that version. */
static int64_t current_records(db_t *db)
{
    int64_t n = 0;
    for (const embed_file_t *f = embed_files; f->name; f++) {
        if (strncmp(f->name, "sql/migrations/", 15) != 0)
            continue;
        char sum[DIGEST_HEX_LEN + 1];
        digest_sha256_hex(f->data, f->len, sum);
        n += llw_count(db,
                       "SELECT count(*) FROM schema_migrations WHERE version = %d AND "
                       "checksum = '%s'",
                       atoi(f->name + 15), sum);
    }
    return n;
}

/* What the ledger holds, to compare before and after the upgrade. */
typedef struct {
    int64_t transfers, payments, entries, processed, batches, balance_sum, balance_hash;
} holdings_t;

static holdings_t holdings(db_t *db)
{
    return (holdings_t){
        .transfers = llw_count(db, "SELECT count(*) FROM transfers"),
        .payments = llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'"),
        .entries = llw_count(db, "SELECT count(*) FROM entries"),
        .processed = llw_count(db, "SELECT count(*) FROM processed"),
        .batches = llw_count(db, "SELECT count(*) FROM settlement_batches"),
        .balance_sum = llw_count(db, "SELECT coalesce(sum(balance), 0) FROM accounts"),
        .balance_hash = llw_count(db, "SELECT ('x' || substr(md5(string_agg(id || ':' || "
                                      "balance, ',' ORDER BY id)), 1, 15))::bit(60)::bigint "
                                      "FROM accounts"),
    };
}

static bool pipeline_done(void *arg, char *status, size_t n)
{
    db_t *db = arg;
    int64_t risk = -1, decided = -1, completed = -1, items = -1, open = -1, pending = -1;
    llw_try_scalar(db, "SELECT count(*) FROM processed WHERE stage = 'risk'", &risk);
    llw_try_scalar(db,
                   "SELECT count(*) FROM processed p JOIN risk_decisions d USING (payment_id) "
                   "WHERE p.stage = 'payment' OR d.decision = 'declined'",
                   &decided);
    llw_try_scalar(db,
                   "SELECT count(*) FROM processed WHERE stage = 'payment' "
                   "AND outcome = 'completed'",
                   &completed);
    llw_try_scalar(db, "SELECT count(*) FROM settlement_items", &items);
    llw_try_scalar(db, "SELECT count(*) FROM settlement_batches WHERE status = 'open'", &open);
    llw_try_scalar(db, "SELECT count(*) FROM outbox_pending", &pending);
    snprintf(status, n,
             "risk decisions %" PRId64 "/%d, decided by payment or declined %" PRId64
             ", completed %" PRId64 ", batched %" PRId64 ", open batches %" PRId64
             ", pending events %" PRId64,
             risk, OLD_PAYS + NEW_PAYS, decided, completed, items, open, pending);
    return risk == OLD_PAYS + NEW_PAYS && decided == risk && items == completed && open == 0 &&
           pending == 0;
}

static void upgrade_and_run(const char *dump, int fixture_version)
{
    char *name = llt_tmpdb();
    llt_restore(name, dump);
    db_t *db = llt_db(name);
    mq_t *m = llt_mq();
    llw_ctl(NULL, "topology apply");
    llw_purge(m, queues);
    ck_assert_int_eq(llw_count(db, "SELECT max(version) FROM schema_migrations"), fixture_version);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM processed WHERE stage = 'risk'"),
                     OLD_PAYS);
    holdings_t before = holdings(db);
    char e[512];
    ck_assert_int_eq(migrate_check(db, NULL, e, sizeof e), LL_ECONFIG);

    /* the upgrade */
    char *out, *err;
    int rc = llt_ctl(&out, &err, name, "--json migrate");
    ck_assert_msg(rc == 0, "migrate: %s%s", out, err);
    json_t *j = llt_json(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "applied")),
                     compiled("sql/migrations/") - fixture_version);
    size_t i, rewritten = 0;
    json_t *step;
    json_array_foreach(json_object_get(j, "migrations"), i, step)
    {
        int v = (int)json_integer_value(json_object_get(step, "version"));
        bool applied = json_is_true(json_object_get(step, "applied"));
        ck_assert_msg(applied == (v > fixture_version), "migration %d applied=%d", v, applied);
        rewritten += json_is_true(json_object_get(step, "rewritten"));
    }
    ck_assert_msg(rewritten >= 5, "only %zu rewritten migrations accepted", rewritten);
    ck_assert(json_is_true(json_object_get(json_object_get(j, "functions"), "applied")));
    json_decref(j);
    free(out);
    free(err);
    ck_assert_msg(migrate_check(db, NULL, e, sizeof e) == LL_OK, "%s", e);
    ck_assert_int_eq(current_records(db), compiled("sql/migrations/"));
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n "
                                   "ON n.oid = p.pronamespace WHERE n.nspname = 'public'"),
                     compiled("sql/functions/"));
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM pg_proc WHERE proname = 'payment_apply'"),
                     0);

    /* nothing the ledger holds changed */
    holdings_t after = holdings(db);
    ck_assert_int_eq(after.transfers, before.transfers);
    ck_assert_int_eq(after.entries, before.entries);
    ck_assert_int_eq(after.processed, before.processed);
    ck_assert_int_eq(after.batches, before.batches);
    ck_assert_int_eq(after.balance_sum, 0);
    ck_assert_int_eq(after.balance_hash, before.balance_hash);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM outbox_pending"), 3);
    ck_assert_int_ge(llw_count(db, "SELECT count(*) FROM settlement_batches WHERE status = 'open'"),
                     1);
    /* migration 017: the bookkeeping partitioned, its old rows the legacy
     * partitions', nothing expired yet, refused payments in the books */
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM pg_class WHERE relname IN ('processed', "
                                   "'outbox') AND relkind = 'p'"),
                     2);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM processed_legacy"), before.processed);
    int64_t old_events = llw_count(db, "SELECT count(*) FROM outbox_legacy");
    ck_assert_int_eq(old_events, llw_count(db, "SELECT count(*) FROM outbox"));
    ck_assert_int_ge(old_events, before.payments);
    char *horizon = llw_text(db, "SELECT retention_horizon()::text");
    ck_assert_str_eq(horizon, "-infinity");
    free(horizon);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM payment_failures"),
                     llw_count(db, "SELECT count(*) FROM processed WHERE stage = 'payment' AND "
                                   "outcome NOT IN ('completed', 'pending')"));
    ck_assert_int_ge(llw_count(db, "SELECT count(*) FROM payment_failures"), 1);
    /* every invariant holds but outbox_sent, which names exactly the three
     * events the crash left unpublished (no worker has run yet) */
    rc = llt_ctl(&out, &err, name, "verify --unsent-within 315360000");
    ck_assert_msg(rc == 0, "verify of the upgraded ledger (exit %d):\n%s%s", rc, out, err);
    free(out);
    free(err);
    rc = llt_ctl(&out, &err, name, "verify --json");
    j = llt_json(out);
    size_t broken = 0, stuck = 0;
    json_t *inv;
    json_array_foreach(json_object_get(j, "invariants"), i, inv)
    {
        if (json_is_true(json_object_get(inv, "ok")))
            continue;
        broken++;
        if (strcmp(json_string_value(json_object_get(inv, "name")), "outbox_sent") == 0)
            stuck = json_array_size(json_object_get(inv, "rows"));
    }
    ck_assert_msg(rc == 1 && broken == 1 && stuck == 3,
                  "before any worker ran, verify should report the 3 unpublished events as "
                  "outbox_sent and nothing else (exit %d, %zu broken, %zu stuck):\n%s",
                  rc, broken, stuck, out);
    json_decref(j);
    free(out);
    free(err);

    /* and it works: the old payments again (duplicates) and new ones */
    const char *const env[] = {"LEDGERLINE_SETTLEMENT_WINDOW_S=2",
                               "LEDGERLINE_SETTLEMENT_GRACE_MS=0",
                               "LEDGERLINE_SETTLEMENT_CLOSE_INTERVAL_MS=200",
                               "LEDGERLINE_SETTLEMENT_CLOSE_RETRY_MS=500",
                               "LEDGERLINE_WORKER_OUTBOX_SWEEP_AGE_MS=1000",
                               NULL};
    pid_t w[3] = {llw_start_instance(RISK, name, "upgrade-risk", env),
                  llw_start_instance(PAYMENT, name, "upgrade-payment", env),
                  llw_start_instance(SETTLEMENT, name, "upgrade-settlement", env)};
    static const char payers[] = "cust-1,cust-2,cust-3,cust-4,cust-5,cust-6,cust-7,cust-8,poor";
    static const char payees[] = "shop-1,shop-2,shop-3,shop-4";
    llw_ctl(name,
            "publish --count 150 --seed 1 --currency EUR --min-amount 100 "
            "--max-amount 90000 --payers %s --payees %s",
            payers, payees);
    llw_ctl(name,
            "publish --count 50 --seed 2 --currency EUR --min-amount 100 "
            "--max-amount 90000 --payers %s --payees %s",
            payers, payees);
    llw_ctl(name, "account unfreeze shop-4");
    llw_ctl(name,
            "publish --count %d --seed 77 --currency EUR --min-amount 100 "
            "--max-amount 900 --payers %s --payees %s",
            NEW_PAYS, payers, payees);
    llw_wait_until(pipeline_done, db, WAIT_MS, "the upgraded ledger to decide and settle all");
    for (int k = 0; k < 3; k++)
        llw_stop_ok(w[k], 30000, NULL);
    /* the old payments were duplicates: the only new payment transfers are
     * the new payments' */
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment' "
                                   "AND ref NOT LIKE 'gen-77-%%'"),
                     before.payments);
    int64_t fresh = llw_count(db, "SELECT count(*) FROM processed WHERE stage = 'payment' "
                                  "AND outcome = 'completed' AND payment_id LIKE 'gen-77-%%'");
    ck_assert_int_ge(fresh, 1);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM transfers WHERE kind = 'payment'"),
                     before.payments + fresh);
    /* new events numbered after the old ones, in the new partitions */
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM outbox_legacy"), old_events);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM outbox o WHERE o.tableoid <> "
                                   "'outbox_legacy'::regclass AND o.id <= (SELECT max(id) FROM "
                                   "outbox_legacy)"),
                     0);
    ck_assert_int_ge(llw_count(db, "SELECT count(*) FROM outbox o WHERE o.tableoid <> "
                                   "'outbox_legacy'::regclass"),
                     fresh);
    llw_assert_verify(name);
    mq_free(m);
    db_free(db);
    llt_dropdb(name);
    free(name);
}

START_TEST(a_ledger_of_migration_009_upgrades_and_works)
{
    upgrade_and_run(FIXTURES "ledger-009.pgdump", 9);
}
END_TEST

START_TEST(a_ledger_of_migration_014_upgrades_and_works)
{
    upgrade_and_run(FIXTURES "ledger-014.pgdump", 14);
}
END_TEST

static void teardown(void)
{
    llw_kill_all();
}

int main(void)
{
    Suite *s = suite_create("upgrade");
    TCase *tc = tcase_create("upgrade");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, a_ledger_of_migration_009_upgrades_and_works);
    tcase_add_test(tc, a_ledger_of_migration_014_upgrades_and_works);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
