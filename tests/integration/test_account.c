/*
 * test_account.c - `ledgerctl account create|fund|show|freeze|unfreeze|list`
 * against a real PostgreSQL: what each command changes in the ledger, that
 * repeating a command is safe, and that every refusal names the problem and
 * the fix.
 */
#include <stdlib.h>
#include <string.h>

#include "ll_ledger.h"
#include "ll_test.h"

static char *ledger;
static db_t *db;

static void setup(void)
{
    ledger = llt_ledger();
    db = llt_db(ledger);
}

static void teardown(void)
{
    db_free(db);
    llt_dropdb(ledger);
    free(ledger);
}

/* Runs ledgerctl on the test ledger; checks the exit status. */
static char *ctl_ok(const char *args)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "%s", args);
    ck_assert_msg(rc == 0, "ledgerctl %s -> %d: %s%s", args, rc, out, err);
    free(err);
    return out;
}

/* Runs ledgerctl expecting `want_rc`; returns stderr, which must carry a fix
 * when the command ran (rc 1) . */
static char *ctl_fails(int want_rc, const char *args)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "%s", args);
    ck_assert_msg(rc == want_rc, "ledgerctl %s -> %d, want %d: %s%s", args, rc, want_rc, out, err);
    if (want_rc == 1)
        ck_assert_msg(strstr(err, "fix:") != NULL, "no fix in: %s", err);
    free(out);
    return err;
}

static int64_t balance(const char *id)
{
    return llw_balance(db, id);
}

START_TEST(account_create_is_idempotent_and_refuses_a_conflict)
{
    free(ctl_ok("account create alice --currency EUR"));
    char *out = ctl_ok("account create alice --currency EUR");
    ck_assert_msg(strstr(out, "unchanged") != NULL, "%s", out);
    free(out);
    char *err = ctl_fails(1, "account create alice --currency USD");
    ck_assert_msg(strstr(err, "already exists with other attributes") != NULL, "%s", err);
    free(err);
    out = ctl_ok("account create shop --currency EUR --kind merchant --fee-bps 150 "
                 "--fee-fixed 25 --json");
    json_t *j = llt_json(out);
    ck_assert_str_eq(json_string_value(json_object_get(j, "kind")), "merchant");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "fee_bps")), 150);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "fee_fixed")), 25);
    ck_assert(json_is_true(json_object_get(j, "created")));
    json_decref(j);
    free(out);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM accounts"), 2);
}
END_TEST

/* Usage errors exit 2 and say what is wrong. */
static const struct {
    const char *args, *want;
} bad_creates[] = {
    {"account create 'bad id' --currency EUR", "not a valid account id"},
    {"account create alice --currency eur", "not an ISO 4217 code"},
    {"account create alice --currency XYZ", "not an ISO 4217 code"},
    {"account create alice", "--currency is required"},
    {"account create alice --currency EUR --kind system", "system accounts are managed"},
    {"account create alice --currency EUR --overdraft -5", "--overdraft"},
    {"account create alice --currency EUR --fee-bps 10001", "--fee-bps"},
    {"account create alice --currency EUR --fee-fixed 100000000000001", "above 10^14"},
    {"account create sys:x --currency EUR", "reserved"},
    {"account create alice --currency EUR --bogus", "unknown"},
};

START_TEST(account_create_rejects_bad_arguments)
{
    char *err = ctl_fails(2, bad_creates[_i].args);
    ck_assert_msg(strstr(err, bad_creates[_i].want) != NULL, "%s: %s", bad_creates[_i].args, err);
    free(err);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM accounts"), 0);
}
END_TEST

START_TEST(account_fund_posts_from_the_system_account_once_per_ref)
{
    free(ctl_ok("account create alice --currency EUR"));
    free(ctl_ok("account fund alice 5000 --ref r1"));
    ck_assert_int_eq(balance("alice"), 5000);
    ck_assert_int_eq(balance("sys:funding:EUR"), -5000);
    char *out = ctl_ok("account fund alice 5000 --ref r1");
    ck_assert_msg(strstr(out, "nothing done") != NULL, "%s", out);
    free(out);
    ck_assert_int_eq(balance("alice"), 5000);
    char *err = ctl_fails(1, "account fund alice 7000 --ref r1");
    ck_assert_msg(strstr(err, "already used") != NULL, "%s", err);
    free(err);
    /* without --ref a retry would fund twice: refused, naming the flag */
    err = ctl_fails(2, "account fund alice 250");
    ck_assert_msg(strstr(err, "--ref is required"), "%s", err);
    free(err);
    ck_assert_int_eq(balance("alice"), 5000);
    free(ctl_ok("account fund alice 250 --ref r2"));
    free(ctl_ok("account fund alice 250 --ref r2")); /* the retry: nothing more */
    ck_assert_int_eq(balance("alice"), 5250);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM transfers WHERE kind = 'funding'"), 2);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM entries"), 4);

    err = ctl_fails(1, "account fund nobody 10 --ref r3");
    ck_assert_msg(strstr(err, "no account 'nobody'") != NULL, "%s", err);
    free(err);
    err = ctl_fails(2, "account fund alice 0 --ref r4");
    free(err);
    err = ctl_fails(2, "account fund alice 12.50 --ref r5");
    free(err);
    ck_assert_int_eq(balance("alice"), 5250);

    /* past the int64 limit: refused, naming the accounts, nothing posted */
    free(ctl_ok("account create bob --currency EUR"));
    err = ctl_fails(1, "account fund bob 9223372036854775807 --ref r6");
    ck_assert_msg(strstr(err, "int64 limit") && strstr(err, "sys:funding:EUR"), "%s", err);
    free(err);
    ck_assert_int_eq(balance("bob"), 0);
    ck_assert_int_eq(balance("alice"), 5250);
}
END_TEST

START_TEST(account_show_prints_balance_and_entries)
{
    free(ctl_ok("account create alice --currency EUR"));
    free(ctl_ok("account fund alice 1234 --ref a"));
    free(ctl_ok("account fund alice 66 --ref b"));
    char *out = ctl_ok("account show alice --json");
    json_t *j = llt_json(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "balance")), 1300);
    json_t *entries = json_object_get(j, "entries");
    ck_assert_int_eq(json_array_size(entries), 2);
    json_t *latest = json_array_get(entries, 0);
    ck_assert_str_eq(json_string_value(json_object_get(latest, "ref")), "b");
    ck_assert_int_eq(json_integer_value(json_object_get(latest, "balance_after")), 1300);
    ck_assert_str_eq(json_string_value(json_object_get(latest, "counterparty")), "sys:funding:EUR");
    json_decref(j);
    free(out);
    out = ctl_ok("account show alice");
    ck_assert_msg(strstr(out, "13.00") != NULL, "human output shows the major units: %s", out);
    free(out);
    char *err = ctl_fails(1, "account show nobody");
    free(err);
}
END_TEST

START_TEST(account_freeze_blocks_funding_until_unfrozen)
{
    free(ctl_ok("account create alice --currency EUR"));
    free(ctl_ok("account freeze alice"));
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM accounts WHERE status = 'frozen'"), 1);
    char *err = ctl_fails(1, "account fund alice 10 --ref frozen-1");
    ck_assert_msg(strstr(err, "account_frozen") && strstr(err, "unfreeze"), "%s", err);
    free(err);
    free(ctl_ok("account unfreeze alice"));
    free(ctl_ok("account fund alice 10 --ref frozen-1"));
    ck_assert_int_eq(balance("alice"), 10);
    err = ctl_fails(1, "account freeze nobody");
    free(err);
    char *out = ctl_ok("account list --json");
    json_t *j = llt_json(out);
    ck_assert_int_eq(json_array_size(json_object_get(j, "accounts")), 2); /* + sys:funding:EUR */
    json_decref(j);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("account");
    TCase *tc = tcase_create("postgres");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, account_create_is_idempotent_and_refuses_a_conflict);
    tcase_add_loop_test(tc, account_create_rejects_bad_arguments, 0,
                        (int)(sizeof bad_creates / sizeof bad_creates[0]));
    tcase_add_test(tc, account_fund_posts_from_the_system_account_once_per_ref);
    tcase_add_test(tc, account_show_prints_balance_and_entries);
    tcase_add_test(tc, account_freeze_blocks_funding_until_unfrozen);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
