/*
 * test_archive.c - `ledgerctl archive` and `ledgerctl archive verify`
 * (docs/operations.md#archive) on ledgers the real payment-worker and
 * settlement-worker filled: the archive holds exactly the bookkeeping
 * older than --before, and with --books the closed batches with their
 * items, transfers and entries; verify names a changed or missing file
 * and a table left out of the manifest; with
 * retention.archive_first the retention job drops a partition only once an
 * archive holds it; a kill -9 in the middle of writing leaves no archive
 * and no record, and the next run writes it whole; every bad argument is
 * named with its fix.
 *
 * Time is played as in test_retention.c: rows are moved into older
 * partitions.
 */
#include <inttypes.h>
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
#include "ll_test.h"
#include "ll_wait.h"
#include "msg.h"

#define PAYMENT_WORKER    LL_BIN_DIR "/payment-worker"
#define SETTLEMENT_WORKER LL_BIN_DIR "/settlement-worker"
#define WAIT_MS           40000
#define STOP_MS           20000
#define N_PAY             6

static const char *const queues[] = {"payments",   "payments.dead",   "payments.retry.1s",
                                     "settlement", "settlement.dead", "settlement.retry.1s",
                                     NULL};

LLW_FIXTURE(queues)

static char payer[MSG_ID_MAX + 1], payee[MSG_ID_MAX + 1], dir[512];

static void setup_archive(void)
{
    setup();
    snprintf(payer, sizeof payer, "%s-payer", ledger);
    snprintf(payee, sizeof payee, "%s-shop", ledger);
    llw_ctl(ledger, "account create %s --currency EUR", payer);
    llw_ctl(ledger, "account create %s --currency EUR --kind merchant --fee-bps 100", payee);
    llw_ctl(ledger, "account fund %s 100000 --ref %s-f", payer, ledger);
    snprintf(dir, sizeof dir, "/tmp/llt-archive-%d-%s", (int)getpid(), ledger);
}

static void teardown_archive(void)
{
    char *out = NULL;
    if (llt_run(&out, "rm -rf %s %s.partial-*", dir, dir) != 0)
        fprintf(stderr, "cleaning %s: %s\n", dir, out ? out : "");
    free(out);
    teardown();
}

/* N_PAY payments posted and batched, their 2-second windows closed. */
static void run_payments(const char *const *extra)
{
    const char *env[6] = {"LEDGERLINE_SETTLEMENT_WINDOW_S=2", "LEDGERLINE_SETTLEMENT_GRACE_MS=0",
                          "LEDGERLINE_RETENTION_TICK_INTERVAL_S=1"};
    size_t k = 3;
    for (size_t i = 0; extra && extra[i] && k < 5; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    pid_t pay = llw_start_instance(PAYMENT_WORKER, ledger, "payment-1", env);
    pid_t settle = llw_start_instance(SETTLEMENT_WORKER, ledger, "settlement-1", env);
    for (int i = 0; i < N_PAY; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "a-%d", i);
        msg_payment_t p = llw_payment(ledger, tag, payer, payee, 1000 + i, "EUR");
        free(llw_publish_approved(m, &p, 0));
    }
    llw_confirm(m);
    llw_wait_sql(db, N_PAY, WAIT_MS, "every payment in a closed batch",
                 "SELECT count(*) FROM settlement_items i JOIN settlement_batches b "
                 "ON b.id = i.batch_id WHERE b.status = 'closed'");
    llw_wait_sql(db, 0, WAIT_MS, "every event confirmed", "SELECT count(*) FROM outbox_pending");
    llw_stop_ok(pay, STOP_MS, "payment-worker");
    llw_stop_ok(settle, STOP_MS, "settlement-worker");
}

/* Every bookkeeping row, and the batches' close times, `days` back. */
static void age_all(int days)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "UPDATE processed SET created_at = created_at - interval '%d days';"
             "UPDATE outbox SET created_at = created_at - interval '%d days';"
             "UPDATE settlement_batches SET closed_at = closed_at - interval '%d days'",
             days, days, days);
    llt_exec(db, sql);
}

/* now() - `ago` as the time --before takes (UTC, seconds). */
static char *time_ago(const char *ago)
{
    return llw_text(db,
                    "SELECT to_char((now() - interval '%s') AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                    ago);
}

static json_int_t file_rows(json_t *manifest, const char *table)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(manifest, "files"), i, f)
    {
        if (strcmp(json_string_value(json_object_get(f, "table")), table) == 0)
            return json_integer_value(json_object_get(f, "rows"));
    }
    ck_abort_msg("no file of table %s in the manifest", table);
    return -1;
}

/* ---- what an archive holds ----------------------------------------------------- */

START_TEST(archive_holds_the_old_bookkeeping_and_closed_batches_and_verify_checks_it)
{
    run_payments(NULL);
    age_all(2);
    /* one payment processed now: newer than --before, not archived */
    llt_exec(db, "UPDATE processed SET created_at = now() WHERE payment_id = (SELECT min("
                 "payment_id) FROM processed WHERE stage = 'payment') AND stage = 'payment'");
    char *before = time_ago("1 day");
    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "--json archive --before %s --to %s --books", before, dir);
    ck_assert_msg(rc == 0, "archive: %s%s", out, err);
    json_t *man = llt_json(out);
    int64_t want_processed = llw_count(
        db, "SELECT count(*) FROM processed WHERE created_at < '%s'::timestamptz", before);
    ck_assert_int_eq(want_processed, 2 * N_PAY - 1);
    ck_assert_int_eq(file_rows(man, "processed"), want_processed);
    ck_assert_int_eq(file_rows(man, "outbox"),
                     llw_count(db, "SELECT count(*) FROM outbox WHERE created_at < '%s'", before));
    ck_assert_int_eq(file_rows(man, "settlement_batches"),
                     llw_count(db, "SELECT count(*) FROM settlement_batches WHERE status = "
                                   "'closed'"));
    ck_assert_int_eq(file_rows(man, "settlement_items"), N_PAY);
    /* the payment transfers, and each batch's fee and payout */
    ck_assert_int_eq(file_rows(man, "transfers"),
                     N_PAY + llw_count(db, "SELECT count(fee_transfer) + count(payout_transfer) "
                                           "FROM settlement_batches"));
    ck_assert_int_eq(file_rows(man, "entries"), 2 * file_rows(man, "transfers"));
    ck_assert_int_eq(llw_count(db,
                               "SELECT count(*) FROM retention_archives WHERE location = "
                               "'%s' AND manifest_sha256 = '%s'",
                               dir, json_string_value(json_object_get(man, "manifest_sha256"))),
                     1);
    json_decref(man);
    free(out);
    free(err);
    /* the files are CSV with a header, gzip-compressed */
    rc = llt_run(&out, "gzip -dc %s/processed.csv.gz | head -1", dir);
    ck_assert_msg(rc == 0 && strncmp(out, "stage,payment_id,payload_hash,payload,outcome", 45) == 0,
                  "header: %s", out);
    free(out);

    rc = llt_ctl(&out, &err, NULL, "archive verify %s", dir);
    ck_assert_msg(rc == 0 && strstr(out, "every file matches"), "verify: %s%s", out, err);
    free(out);
    free(err);
    /* a changed byte, then a missing file: named */
    rc = llt_run(&out, "printf 'x' | dd of=%s/outbox.csv.gz bs=1 seek=20 conv=notrunc 2>&1", dir);
    ck_assert_int_eq(rc, 0);
    free(out);
    rc = llt_ctl(&out, &err, NULL, "archive verify %s", dir);
    ck_assert_msg(rc == 1 && strstr(out, "FAIL  outbox.csv.gz") && strstr(out, "SHA-256") &&
                      strstr(err, "fix:"),
                  "a changed file: exit %d: %s%s", rc, out, err);
    free(out);
    free(err);
    /* a manifest that no longer lists a table */
    rc = llt_run(&out,
                 "cp %1$s/manifest.json %1$s/m.json && jq 'del(.files[] | select(.table == "
                 "\"settlement_items\"))' %1$s/m.json > %1$s/manifest.json",
                 dir);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    rc = llt_ctl(&out, &err, NULL, "archive verify %s", dir);
    ck_assert_msg(rc == 1 && strstr(out, "FAIL  settlement_items") &&
                      strstr(out, "missing from the manifest"),
                  "a table left out of the manifest: exit %d: %s%s", rc, out, err);
    free(out);
    free(err);
    char path[600];
    snprintf(path, sizeof path, "%s/processed.csv.gz", dir);
    ck_assert_int_eq(unlink(path), 0);
    rc = llt_ctl(&out, &err, NULL, "archive verify %s", dir);
    ck_assert_msg(rc == 1 && strstr(out, "FAIL  processed.csv.gz") && strstr(out, "cannot read"),
                  "a missing file: exit %d: %s%s", rc, out, err);
    free(out);
    free(err);

    /* bad arguments: each named, with the fix */
    static const struct {
        const char *args, *want;
        int rc;
    } bad[] = {
        {"archive --before yesterday-ish --to /tmp/llt-archive-x", "is not a time", 1},
        {"archive --before 2999-01-01 --to /tmp/llt-archive-x", "less than an hour ago", 1},
        {"archive --before 2020-01-01 --to /tmp", "exists", 1},
        {"archive --before 2020-01-01 --to /nonexistent-dir/x", "does not exist", 1},
        {"archive --to /tmp/llt-archive-x", "--before", 2},
        {"archive verify", "one directory", 2},
        {"archive verify /tmp", "manifest.json", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = llt_ctl(&out, &err, ledger, "%s", bad[i].args);
        ck_assert_msg(rc == bad[i].rc && strstr(err, bad[i].want), "%s: exit %d: %s%s", bad[i].args,
                      rc, out, err);
        free(out);
        free(err);
    }
    free(before);
}
END_TEST

/* ---- archive first, then expire -------------------------------------------------- */

/* With retention.archive_first, a partition past the window stays until
 * an archive holds its time; then it goes, and the archive has its rows. */
START_TEST(archive_first_keeps_a_partition_until_an_archive_holds_it)
{
    /* daily partitions for the past two weeks, as in test_retention.c */
    llw_past_partitions(db, 14);
    static const char *const first[] = {"LEDGERLINE_RETENTION_ARCHIVE_FIRST=true", NULL};
    run_payments(first);
    age_all(9);
    pid_t pay = llw_start_instance(
        PAYMENT_WORKER, ledger, "payment-2",
        (const char *const[]){"LEDGERLINE_RETENTION_TICK_INTERVAL_S=1", first[0], NULL});
    llw_wait_logged(pay, "not archived yet", WAIT_MS, "the partition waiting for an archive");
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM processed"), 2 * N_PAY);

    char *before = time_ago("8 days");
    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "--json archive --before %s --to %s", before, dir);
    ck_assert_msg(rc == 0, "archive: %s%s", out, err);
    json_t *man = llt_json(out);
    ck_assert_int_eq(file_rows(man, "processed"), 2 * N_PAY);
    json_decref(man);
    free(out);
    free(err);
    llw_wait_sql(db, 0, WAIT_MS, "the archived partition dropped",
                 "SELECT count(*) FROM processed");
    llw_wait_sql(db, 0, WAIT_MS, "its outbox partition too", "SELECT count(*) FROM outbox");
    rc = llt_ctl(&out, &err, NULL, "archive verify %s", dir);
    ck_assert_msg(rc == 0, "verify: %s%s", out, err);
    free(out);
    free(err);
    llw_stop_ok(pay, STOP_MS, "payment-worker");
    llw_assert_verify(ledger);
    free(before);
}
END_TEST

/* ---- killed while writing --------------------------------------------------------- */

START_TEST(a_kill_while_archiving_leaves_no_archive_and_the_next_run_writes_it_whole)
{
    run_payments(NULL);
    age_all(2);
    char *before = time_ago("1 day");
    char *out = NULL;
    int rc = llt_run(&out,
                     "LEDGERLINE_POSTGRES_DBNAME=%s LEDGERLINE_CRASH_AT=archive_mid_write %s "
                     "archive --before %s --to %s",
                     ledger, LEDGERCTL_BIN, before, dir);
    ck_assert_msg(rc != 0, "the crash point was not reached: %s", out);
    free(out);
    struct stat st;
    ck_assert_msg(stat(dir, &st) != 0, "%s exists after a kill", dir);
    rc = llt_run(&out, "ls -d %s.partial-*", dir);
    ck_assert_msg(rc == 0, "no partial directory left to delete: %s", out);
    free(out);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM retention_archives"), 0);

    char *err;
    rc = llt_ctl(&out, &err, ledger, "archive --before %s --to %s", before, dir);
    ck_assert_msg(rc == 0 && strstr(out, "archived to"), "archive again: %s%s", out, err);
    free(out);
    free(err);
    rc = llt_ctl(&out, &err, NULL, "archive verify %s", dir);
    ck_assert_msg(rc == 0, "verify: %s%s", out, err);
    free(out);
    free(err);
    ck_assert_int_eq(llw_count(db, "SELECT count(*) FROM retention_archives"), 1);
    free(before);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("archive");
    TCase *tc = tcase_create("archive");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup_archive, teardown_archive);
    tcase_add_test(tc, archive_holds_the_old_bookkeeping_and_closed_batches_and_verify_checks_it);
    tcase_add_test(tc, archive_first_keeps_a_partition_until_an_archive_holds_it);
    tcase_add_test(tc, a_kill_while_archiving_leaves_no_archive_and_the_next_run_writes_it_whole);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
