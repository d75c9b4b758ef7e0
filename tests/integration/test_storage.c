/*
 * test_storage.c - `ledgerctl storage` against a ledger with payments and
 * their bookkeeping: every table of the schema is listed once, classed
 * books, bookkeeping or schema; the class totals are the sums of their
 * tables; the bytes per payment are the tables' total over the posted
 * payments; bookkeeping grows with processed and outbox rows.
 */
#include <check.h>
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
    llw_ctl(ledger, "account create alice --currency EUR");
    llw_ctl(ledger, "account create bob --currency EUR");
    llw_ctl(ledger, "account fund alice 100000 --ref f1");
    llt_exec(db, "SELECT ledger_post('p-' || n, 'payment', 'alice', 'bob', 10, 'EUR') "
                 "FROM generate_series(1, 200) n");
    llt_exec(
        db, "INSERT INTO processed (stage, payment_id, payload_hash, payload, outcome) "
            "SELECT 'payment', 'p-' || n, md5(n::text), (SELECT string_agg(md5(n || '.' || g), '') "
            "FROM generate_series(1, 63) g), 'completed' "
            "FROM generate_series(1, 200) n");
    llt_exec(db, "ANALYZE");
}

static void teardown(void)
{
    db_free(db);
    llt_dropdb(ledger);
    free(ledger);
}

static json_t *storage(void)
{
    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "storage --json");
    ck_assert_msg(rc == 0, "storage --json: exit %d: %s%s", rc, out, err);
    json_t *j = llt_json(out);
    free(out);
    free(err);
    return j;
}

static const json_t *find(const json_t *j, const char *table)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(j, "tables"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "table")), table) == 0)
            return t;
    }
    return NULL;
}

static json_int_t num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

START_TEST(storage_classes_every_table_and_adds_them_up)
{
    json_t *j = storage();
    static const struct {
        const char *table, *cls;
    } want[] = {{"transfers", "books"},         {"entries", "books"},
                {"accounts", "books"},          {"settlement_batches", "books"},
                {"refunds", "books"},           {"deposits", "books"},
                {"withdrawals", "books"},       {"processed", "bookkeeping"},
                {"outbox", "bookkeeping"},      {"outbox_pending", "bookkeeping"},
                {"schema_migrations", "schema"}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const json_t *t = find(j, want[i].table);
        ck_assert_msg(t != NULL, "table %s not listed", want[i].table);
        ck_assert_str_eq(json_string_value(json_object_get(t, "class")), want[i].cls);
        ck_assert_msg(num(t, "bytes") > 0, "%s has no size", want[i].table);
    }
    json_int_t books = 0, keeping = 0, schema = 0;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(j, "tables"), i, t)
    {
        const char *cls = json_string_value(json_object_get(t, "class"));
        json_int_t *sum = strcmp(cls, "books") == 0         ? &books
                          : strcmp(cls, "bookkeeping") == 0 ? &keeping
                                                            : &schema;
        *sum += num(t, "bytes");
    }
    ck_assert_int_eq(num(j, "books_bytes"), books);
    ck_assert_int_eq(num(j, "bookkeeping_bytes"), keeping);
    ck_assert_int_eq(num(j, "schema_bytes"), schema);
    ck_assert_int_eq(num(j, "tables_bytes"), books + keeping + schema);
    ck_assert_int_eq(num(j, "payments"), 200);
    double per = json_real_value(json_object_get(j, "bytes_per_payment"));
    ck_assert_msg(per > 0 && (json_int_t)(per * 200 + 0.5) == num(j, "tables_bytes"),
                  "bytes per payment %.1f x 200 should be the tables' %lld", per,
                  (long long)num(j, "tables_bytes"));
    /* 200 payloads of 2016 hex digits (TOAST compresses them, by at most
     * half): the processed table holds at least that */
    ck_assert_msg(num(find(j, "processed"), "bytes") >= 200 * 1000, "processed is %lld bytes",
                  (long long)num(find(j, "processed"), "bytes"));
    ck_assert_msg(num(find(j, "processed"), "rows_estimate") == 200, "rows of processed");
    /* partitioned: the legacy one of migration 017 and those made ahead,
     * the same for outbox; nothing expired yet */
    ck_assert_msg(num(find(j, "processed"), "partitions") >= 2 &&
                      num(find(j, "processed"), "partitions") ==
                          num(find(j, "outbox"), "partitions") &&
                      num(find(j, "transfers"), "partitions") == 0,
                  "partitions of processed %lld, outbox %lld, transfers %lld",
                  (long long)num(find(j, "processed"), "partitions"),
                  (long long)num(find(j, "outbox"), "partitions"),
                  (long long)num(find(j, "transfers"), "partitions"));
    ck_assert_str_eq(json_string_value(json_object_get(j, "bookkeeping_kept_since")), "-infinity");
    json_decref(j);

    char *out, *err;
    int rc = llt_ctl(&out, &err, ledger, "storage");
    ck_assert_msg(rc == 0 && strstr(out, "bookkeeping") && strstr(out, "200 payments posted") &&
                      strstr(out, "bytes of tables per payment") &&
                      strstr(out, "bookkeeping kept since the beginning"),
                  "storage text: %s%s", out, err);
    free(out);
    free(err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("storage");
    TCase *tc = tcase_create("postgres");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, storage_classes_every_table_and_adds_them_up);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
