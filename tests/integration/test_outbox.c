/*
 * test_outbox.c - the transactional outbox (common/outbox.c) on a real
 * PostgreSQL: outbox_write stores the events of new items, each with its
 * pending mark, and replays the stored event of duplicates, inside the
 * caller's transaction only; outbox_add stores one event the same way;
 * outbox_mark_sent removes exactly the given pending marks and never
 * touches an event row; outbox_claim hands pending events older than `age`
 * to one sweeper at a time, under a 60 s lease, even when two sweepers
 * claim at once.
 *
 * The suite migrates one fresh database (unchecked fixture); every test
 * starts from an empty outbox and checks the table with its own SQL, not
 * only through the code under test. Rows are aged and leases expired with
 * SQL, never by sleeping.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "ll_test.h"
#include "migrate.h"
#include "outbox.h"
#include "retention.h"
#include "xmalloc.h"

static char *suite_db; /* created and migrated once for the suite */
static db_t *db;       /* the test's connection to it */

static void suite_up(void)
{
    suite_db = llt_tmpdb();
    db_t *d = llt_db(suite_db);
    char err[256] = "";
    int rc = migrate_run(d, NULL, NULL, err, sizeof err);
    ck_assert_msg(rc == LL_OK, "migrating %s: %s: %s", suite_db, ll_errname(rc), err);
    /* what `ledgerctl migrate` does next: the partitions of now and ahead */
    settings_t cfg;
    cfg_error_t cerr;
    char *noenv[] = {NULL};
    ck_assert_msg(settings_load_env(&cfg, NULL, noenv, &cerr) == LL_OK, "%s", cerr.msg);
    int created = 0;
    rc = retention_prepare(d, &cfg, &created);
    ck_assert_msg(rc == LL_OK && created > 0, "partitions of %s: %s (%d created)", suite_db,
                  db_errstr(d), created);
    settings_free(&cfg);
    db_free(d);
}

static void suite_down(void)
{
    if (!suite_db)
        return;
    llt_dropdb(suite_db);
    free(suite_db);
    suite_db = NULL;
}

static void setup(void)
{
    ck_assert_msg(suite_db != NULL, "the suite database was not created");
    db = llt_db(suite_db);
    llt_exec(db, "TRUNCATE outbox, outbox_pending RESTART IDENTITY");
}

static void teardown(void)
{
    db_free(db);
    db = NULL;
}

/* --- helpers --------------------------------------------------------------- */

/* Runs `sql` on `d` with text parameters; fails the test on error.
 * Caller PQclear()s. */
static PGresult *query(db_t *d, const char *sql, int n, const char *const *p)
{
    PGresult *r;
    int rc = db_query(d, &r, sql, n, p);
    ck_assert_msg(rc == LL_OK, "%s: %s: %s", sql, ll_errname(rc), db_errstr(d));
    return r;
}

/* An item in `state` for payment `pid` with verdict `v`; with an event
 * (its id derived from rk and pid, like the stages do) when body is set.
 * Caller releases it with item_clear(). */
static void item_make(item_t *it, item_state_t state, const char *pid, item_verdict_t v,
                      const char *rk, const char *body)
{
    memset(it, 0, sizeof *it);
    it->state = state;
    it->verdict = v;
    snprintf(it->key, sizeof it->key, "%s", pid);
    if (body) {
        char id[MSG_EVENT_ID_LEN + 1];
        msg_event_id(rk, pid, id);
        item_set_event(it, id, ll_xstrdup(rk), ll_xstrdup(body));
    }
}

/* outbox_write() in its own transaction on `db`, committed; asserts LL_OK. */
static void write_committed(item_t *items, size_t n)
{
    llt_exec(db, "BEGIN");
    int rc = outbox_write(db, "payment", items, n);
    ck_assert_msg(rc == LL_OK, "outbox_write: %s: %s", ll_errname(rc), db_errstr(db));
    llt_exec(db, "COMMIT");
}

/* Events (outbox rows) matching `cond`. */
static int64_t count_where(db_t *d, const char *cond)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox WHERE %s", cond);
    return llt_scalar(d, sql);
}

/* Pending marks (outbox_pending rows) matching `cond`. */
static int64_t pending_where(db_t *d, const char *cond)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox_pending WHERE %s", cond);
    return llt_scalar(d, sql);
}

/* Events that are sent: no pending mark. */
static int64_t sent_count(db_t *d)
{
    return llt_scalar(d, "SELECT count(*) FROM outbox o WHERE NOT EXISTS "
                         "(SELECT 1 FROM outbox_pending p WHERE p.id = o.id)");
}

/* Every column of every event, as one md5: what must never change once
 * written. Caller frees. */
static char *events_digest(void)
{
    PGresult *r =
        query(db, "SELECT md5(string_agg(o::text, '|' ORDER BY o.id)) FROM outbox o", 0, NULL);
    char *d = ll_xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return d;
}

/* Marks event `id` sent behind outbox.c's back (its pending mark goes). */
static void sent_by_hand(int64_t id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM outbox_pending WHERE id = %" PRId64, id);
    llt_exec(db, sql);
}

/* Inserts `k` pending payment events created `age_s` seconds ago, with
 * payment_ids <prefix>1..<prefix>k; returns the first id (ids are
 * consecutive: the tables are truncated with RESTART IDENTITY per test). */
static int64_t seed(int k, int age_s, const char *prefix)
{
    char ks[16], ages[32];
    snprintf(ks, sizeof ks, "%d", k);
    snprintf(ages, sizeof ages, "%d seconds", age_s);
    const char *p[] = {ks, ages, prefix};
    PGresult *r = query(db,
                        "INSERT INTO outbox (stage, payment_id, event_id, exchange, routing_key, "
                        "body, created_at) SELECT 'payment', $3::text || g, md5($3::text || g), "
                        "'ledgerline.events', 'payment.completed', "
                        "'{\"payment_id\": \"' || $3::text || g || '\", \"n\": ' || g || '}', "
                        "now() - $2::interval FROM generate_series(1, $1::int) g ORDER BY g "
                        "RETURNING id",
                        3, p);
    llt_exec(db, "INSERT INTO outbox_pending (id, stage, created_at) SELECT id, stage, "
                 "created_at FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM outbox_pending p "
                 "WHERE p.id = o.id)");
    ck_assert_int_eq(PQntuples(r), k);
    int64_t first = INT64_MAX;
    for (int i = 0; i < k; i++) {
        int64_t id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        first = id < first ? id : first;
    }
    PQclear(r);
    return first;
}

/* outbox_claim() asserting LL_OK; *n rows into *rows (free them). */
static void claim(db_t *d, const char *instance, int64_t age_ms, int limit, outbox_row_t **rows,
                  size_t *n)
{
    int rc = outbox_claim(d, "payment", instance, age_ms, limit, rows, n);
    ck_assert_msg(rc == LL_OK, "outbox_claim(%s): %s: %s", instance, ll_errname(rc), db_errstr(d));
}

/* The claimed_by of the pending mark of event `id` ("" when NULL).
 * Caller frees. */
static char *claimed_by(int64_t id)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    const char *p[] = {ids};
    PGresult *r =
        query(db, "SELECT coalesce(claimed_by, '') FROM outbox_pending WHERE id = $1", 1, p);
    ck_assert_int_eq(PQntuples(r), 1);
    char *who = ll_xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return who;
}

static bool has_id(const outbox_row_t *rows, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].id == id)
            return true;
    return false;
}

/* --- outbox_write ---------------------------------------------------------- */

/* Exactly what a stage would publish, with text that a JSON round trip
 * through jsonb could change if the body were not kept as a string. */
static const char tricky_body[] =
    "{ \"payment_id\" : \"p-2\",  \"note\": \"quote \\\" backslash \\\\ tab \\t \u00e9\u20ac\","
    " \"amount\": 1.50, \"amount\": 150 }";

START_TEST(outbox_write_new_items_get_one_row_each_exactly_as_their_event)
{
    item_t it[4];
    item_make(&it[0], ITEM_BATCHED, "p-1", VERDICT_NEW, "payment.completed",
              "{\"payment_id\":\"p-1\"}");
    item_make(&it[1], ITEM_BATCHED, "p-2", VERDICT_NEW, "payment.failed", tricky_body);
    item_make(&it[2], ITEM_BATCHED, "p.3:x_y", VERDICT_NEW, "payment.completed",
              "{\"payment_id\":\"p.3:x_y\"}");
    /* a new item without an event (a stage effect with nothing to publish) */
    item_make(&it[3], ITEM_BATCHED, "p-4", VERDICT_NEW, NULL, NULL);
    write_committed(it, 4);

    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox"), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(it[i].outbox_id > 0, "item %d: outbox_id %" PRId64, i, it[i].outbox_id);
        for (int j = 0; j < i; j++)
            ck_assert_int_ne(it[i].outbox_id, it[j].outbox_id);
        char ids[32];
        snprintf(ids, sizeof ids, "%" PRId64, it[i].outbox_id);
        const char *p[] = {ids};
        PGresult *r = query(db,
                            "SELECT o.stage, o.payment_id, o.event_id, o.exchange, "
                            "o.routing_key, o.body, p.id IS NOT NULL AND p.stage = o.stage "
                            "AND p.created_at = o.created_at, p.claimed_by IS NULL, "
                            "p.claimed_until IS NULL "
                            "FROM outbox o LEFT JOIN outbox_pending p ON p.id = o.id "
                            "WHERE o.id = $1",
                            1, p);
        ck_assert_int_eq(PQntuples(r), 1);
        ck_assert_str_eq(PQgetvalue(r, 0, 0), "payment");
        ck_assert_str_eq(PQgetvalue(r, 0, 1), it[i].key);
        ck_assert_str_eq(PQgetvalue(r, 0, 2), it[i].ev_id);
        ck_assert_str_eq(PQgetvalue(r, 0, 3), OUTBOX_EXCHANGE);
        ck_assert_str_eq(PQgetvalue(r, 0, 4), it[i].ev_rk);
        ck_assert_str_eq(PQgetvalue(r, 0, 5), it[i].ev_body);
        ck_assert_str_eq(PQgetvalue(r, 0, 6), "t");
        ck_assert_str_eq(PQgetvalue(r, 0, 7), "t");
        ck_assert_str_eq(PQgetvalue(r, 0, 8), "t");
        PQclear(r);
        /* the item itself is left as it was */
        ck_assert_int_eq(it[i].state, ITEM_BATCHED);
        ck_assert_int_eq(it[i].verdict, VERDICT_NEW);
    }
    ck_assert_str_eq(it[1].ev_body, tricky_body);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox_pending"), 3);
    ck_assert_int_eq(it[3].outbox_id, 0);
    ck_assert_int_eq(count_where(db, "payment_id = 'p-4'"), 0);
    for (int i = 0; i < 4; i++)
        item_clear(&it[i]);
}
END_TEST

START_TEST(outbox_write_duplicate_gets_event_and_outbox_id_of_the_stored_row)
{
    /* the same payment_id in another stage, stored first (lower id): a
     * duplicate of the payment stage must not replay it */
    llt_exec(db, "INSERT INTO outbox (stage, payment_id, event_id, exchange, routing_key, body) "
                 "VALUES ('risk', 'pay.1:a-b_c', md5('risk'), 'ledgerline.events', "
                 "'payment.approved', '{\"stage\":\"risk\"}')");
    item_t first[2];
    item_make(&first[0], ITEM_BATCHED, "pay.1:a-b_c", VERDICT_NEW, "payment.completed",
              "{\"payment_id\":\"pay.1:a-b_c\",\"first\":true}");
    item_make(&first[1], ITEM_BATCHED, "p-9", VERDICT_NEW, "payment.failed", tricky_body);
    write_committed(first, 2);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox"), 3);

    item_t dup[2];
    item_make(&dup[0], ITEM_BATCHED, "pay.1:a-b_c", VERDICT_DUPLICATE, NULL, NULL);
    /* a stale event on the item is replaced by the stored one */
    item_make(&dup[1], ITEM_BATCHED, "p-9", VERDICT_DUPLICATE, "stale.rk", "{\"stale\":1}");
    write_committed(dup, 2);

    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox"), 3);
    for (int i = 0; i < 2; i++) {
        char ids[32];
        snprintf(ids, sizeof ids, "%" PRId64, first[i].outbox_id);
        const char *p[] = {ids};
        PGresult *r = query(db,
                            "SELECT payment_id, event_id, routing_key, body FROM outbox "
                            "WHERE id = $1 AND stage = 'payment'",
                            1, p);
        ck_assert_int_eq(PQntuples(r), 1);
        ck_assert_str_eq(PQgetvalue(r, 0, 0), dup[i].key);
        ck_assert_int_eq(dup[i].outbox_id, first[i].outbox_id);
        ck_assert_str_eq(dup[i].ev_id, PQgetvalue(r, 0, 1));
        ck_assert_ptr_nonnull(dup[i].ev_rk);
        ck_assert_ptr_nonnull(dup[i].ev_body);
        ck_assert_str_eq(dup[i].ev_rk, PQgetvalue(r, 0, 2));
        ck_assert_str_eq(dup[i].ev_body, PQgetvalue(r, 0, 3));
        ck_assert_int_eq(dup[i].verdict, VERDICT_DUPLICATE);
        PQclear(r);
    }
    ck_assert_str_eq(dup[1].ev_body, tricky_body);
    for (int i = 0; i < 2; i++) {
        item_clear(&first[i]);
        item_clear(&dup[i]);
    }
}
END_TEST

START_TEST(outbox_write_duplicate_of_a_new_item_in_the_same_batch_replays_it)
{
    item_t it[2];
    item_make(&it[0], ITEM_BATCHED, "p-7", VERDICT_NEW, "payment.completed",
              "{\"payment_id\":\"p-7\"}");
    item_make(&it[1], ITEM_BATCHED, "p-7", VERDICT_DUPLICATE, NULL, NULL);
    write_committed(it, 2);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox"), 1);
    ck_assert_int_eq(llt_scalar(db, "SELECT id FROM outbox"), it[0].outbox_id);
    ck_assert_int_eq(it[1].outbox_id, it[0].outbox_id);
    ck_assert_str_eq(it[1].ev_id, it[0].ev_id);
    ck_assert_str_eq(it[1].ev_rk, it[0].ev_rk);
    ck_assert_str_eq(it[1].ev_body, it[0].ev_body);
    item_clear(&it[0]);
    item_clear(&it[1]);
}
END_TEST

START_TEST(outbox_write_refuses_a_duplicate_whose_event_is_not_stored)
{
    item_t it;
    item_make(&it, ITEM_BATCHED, "never-stored", VERDICT_DUPLICATE, NULL, NULL);
    llt_exec(db, "BEGIN");
    int rc = outbox_write(db, "payment", &it, 1);
    ck_assert_msg(rc == LL_EDB, "got %s", ll_errname(rc));
    db_try(db, "ROLLBACK");
    ck_assert_int_eq(it.outbox_id, 0);
    ck_assert_ptr_null(it.ev_body);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox"), 0);
    item_clear(&it);
}
END_TEST

/* "NULL" and "null" match the payment_id pattern of the message schemas
 * (^[A-Za-z0-9_.:-]{1,64}$), so a redelivered payment may carry them. */
START_TEST(outbox_write_duplicate_with_payment_id_NULL_replays_its_stored_row)
{
    item_t first[2];
    item_make(&first[0], ITEM_BATCHED, "NULL", VERDICT_NEW, "payment.completed",
              "{\"payment_id\":\"NULL\"}");
    item_make(&first[1], ITEM_BATCHED, "null", VERDICT_NEW, "payment.completed",
              "{\"payment_id\":\"null\"}");
    write_committed(first, 2);
    ck_assert_int_eq(count_where(db, "payment_id IN ('NULL', 'null')"), 2);

    item_t dup[2];
    item_make(&dup[0], ITEM_BATCHED, "NULL", VERDICT_DUPLICATE, NULL, NULL);
    item_make(&dup[1], ITEM_BATCHED, "null", VERDICT_DUPLICATE, NULL, NULL);
    llt_exec(db, "BEGIN");
    int rc = outbox_write(db, "payment", dup, 2);
    db_try(db, "ROLLBACK");
    ck_assert_msg(rc == LL_OK,
                  "outbox_write of duplicates of the stored payments 'NULL' and 'null' "
                  "returned %s: were the payment_ids passed as the unquoted array literal "
                  "{NULL,null}, PostgreSQL would read SQL NULLs and the stored rows would be "
                  "missed",
                  ll_errname(rc));
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(dup[i].outbox_id, first[i].outbox_id);
        ck_assert_str_eq(dup[i].ev_id, first[i].ev_id);
        ck_assert_str_eq(dup[i].ev_body, first[i].ev_body);
    }
    for (int i = 0; i < 2; i++) {
        item_clear(&first[i]);
        item_clear(&dup[i]);
    }
}
END_TEST

START_TEST(outbox_write_ignores_items_that_are_not_batched)
{
    static const item_state_t not_batched[] = {ITEM_RECEIVED, ITEM_DECODED, ITEM_COMMITTED,
                                               ITEM_PUBLISHED, ITEM_ACKED};
    enum { K = sizeof not_batched / sizeof not_batched[0] };
    item_t it[2 * K + 1];
    for (int i = 0; i < K; i++) {
        char pid[32];
        snprintf(pid, sizeof pid, "new-%d", i);
        item_make(&it[i], not_batched[i], pid, VERDICT_NEW, "payment.completed", "{\"x\":1}");
        /* a duplicate with no stored row: LL_EDB if it were looked at */
        snprintf(pid, sizeof pid, "dup-%d", i);
        item_make(&it[K + i], not_batched[i], pid, VERDICT_DUPLICATE, NULL, NULL);
    }
    item_make(&it[2 * K], ITEM_BATCHED, "the-one", VERDICT_NEW, "payment.completed",
              "{\"payment_id\":\"the-one\"}");
    write_committed(it, 2 * K + 1);

    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox"), 1);
    ck_assert_int_eq(count_where(db, "payment_id = 'the-one'"), 1);
    ck_assert_int_eq(llt_scalar(db, "SELECT id FROM outbox"), it[2 * K].outbox_id);
    for (int i = 0; i < 2 * K; i++) {
        ck_assert_int_eq(it[i].outbox_id, 0);
        ck_assert_int_eq(it[i].state, not_batched[i % K]);
    }
    for (int i = K; i < 2 * K; i++) {
        ck_assert_str_eq(it[i].ev_id, "");
        ck_assert_ptr_null(it[i].ev_body);
    }
    for (int i = 0; i < 2 * K + 1; i++)
        item_clear(&it[i]);
}
END_TEST

START_TEST(outbox_write_rolled_back_leaves_no_row)
{
    db_t *other = llt_db(suite_db);
    item_t it;
    item_make(&it, ITEM_BATCHED, "p-rb", VERDICT_NEW, "payment.completed", "{\"rb\":1}");
    llt_exec(db, "BEGIN");
    int rc = outbox_write(db, "payment", &it, 1);
    ck_assert_msg(rc == LL_OK, "outbox_write: %s: %s", ll_errname(rc), db_errstr(db));
    ck_assert(it.outbox_id > 0);
    /* written inside the caller's transaction: visible there only */
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox"), 1);
    ck_assert_int_eq(llt_scalar(other, "SELECT count(*) FROM outbox"), 0);
    llt_exec(db, "ROLLBACK");
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox"), 0);
    ck_assert_int_eq(llt_scalar(other, "SELECT count(*) FROM outbox"), 0);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox_pending"), 0);
    item_clear(&it);
    db_free(other);
}
END_TEST

/* --- outbox_mark_sent ------------------------------------------------------ */

START_TEST(outbox_mark_sent_marks_exactly_the_given_ids)
{
    int64_t f = seed(6, 600, "m-");
    /* all claimed by a sweeper; the last one already sent long ago */
    llt_exec(db, "UPDATE outbox_pending SET claimed_by = 'sweeper', claimed_until = now() + "
                 "interval '60 s'");
    sent_by_hand(f + 5);
    int64_t rows_before = llt_scalar(db, "SELECT count(*) FROM outbox");
    char *bodies = events_digest();

    int rc = outbox_mark_sent(db, NULL, 0);
    ck_assert_msg(rc == LL_OK, "%s", db_errstr(db));
    ck_assert_int_eq(sent_count(db), 1);

    /* ids 2, 4, 6 of the seed, plus ids that do not exist (the widest ones) */
    int64_t ids[] = {f + 1, f + 3, f + 5, INT64_MAX, INT64_MIN};
    rc = outbox_mark_sent(db, ids, sizeof ids / sizeof ids[0]);
    ck_assert_msg(rc == LL_OK, "%s", db_errstr(db));
    /* in a transaction of its own, committed: nothing left open */
    ck_assert_int_eq(PQtransactionStatus(db_conn(db)), PQTRANS_IDLE);

    PGresult *r = query(db,
                        "SELECT o.id, p.id IS NULL, coalesce(p.claimed_by, '') FROM outbox o "
                        "LEFT JOIN outbox_pending p ON p.id = o.id ORDER BY o.id",
                        0, NULL);
    ck_assert_int_eq(PQntuples(r), 6);
    for (int i = 0; i < 6; i++) {
        int64_t id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        bool given = id == f + 1 || id == f + 3 || id == f + 5;
        ck_assert_msg(strcmp(PQgetvalue(r, i, 1), given ? "t" : "f") == 0,
                      "%s: row %" PRId64 " is %s in outbox_pending",
                      given ? "an event the broker confirmed is no longer pending"
                            : "only the events given are marked sent",
                      id, PQgetvalue(r, i, 1)[0] == 't' ? "not" : "still");
        ck_assert_str_eq(PQgetvalue(r, i, 2), given ? "" : "sweeper");
    }
    PQclear(r);
    ck_assert_int_eq(sent_count(db), 3);
    /* the events themselves are never touched */
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox"), rows_before);
    char *after = events_digest();
    ck_assert_str_eq(after, bodies);
    free(after);
    free(bodies);
}
END_TEST

START_TEST(outbox_add_stores_one_pending_event)
{
    int64_t id = 0;
    llt_exec(db, "BEGIN");
    int rc = outbox_add(db, "settlement", NULL, "ev-1", "settlement.batch.closed",
                        "{\"batch_id\":\"b-1\"}", &id);
    ck_assert_msg(rc == LL_OK, "outbox_add: %s: %s", ll_errname(rc), db_errstr(db));
    llt_exec(db, "COMMIT");
    ck_assert(id > 0);
    char ids[32];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    const char *p[] = {ids};
    PGresult *r = query(db,
                        "SELECT o.stage, o.payment_id IS NULL, o.event_id, o.exchange, "
                        "o.routing_key, o.body, p.stage FROM outbox o JOIN outbox_pending p "
                        "ON p.id = o.id WHERE o.id = $1",
                        1, p);
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "settlement");
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "t");
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "ev-1");
    ck_assert_str_eq(PQgetvalue(r, 0, 3), OUTBOX_EXCHANGE);
    ck_assert_str_eq(PQgetvalue(r, 0, 4), "settlement.batch.closed");
    ck_assert_str_eq(PQgetvalue(r, 0, 5), "{\"batch_id\":\"b-1\"}");
    ck_assert_str_eq(PQgetvalue(r, 0, 6), "settlement");
    PQclear(r);
    /* the settlement stage's sweep finds it */
    outbox_row_t *rows;
    size_t n;
    ck_assert_int_eq(outbox_claim(db, "settlement", "sweeper-s", 0, 10, &rows, &n), LL_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(rows[0].id, id);
    outbox_rows_free(rows, n);
}
END_TEST

/* --- outbox_claim ---------------------------------------------------------- */

START_TEST(outbox_claim_takes_only_unsent_rows_older_than_age)
{
    int64_t fresh = seed(1, 0, "fresh-");
    int64_t mid = seed(1, 30, "mid-");
    int64_t old = seed(1, 600, "old-");
    int64_t sent = seed(1, 600, "sent-");
    sent_by_hand(sent);

    outbox_row_t *rows;
    size_t n;
    claim(db, "sweeper-a", 60000, 100, &rows, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(rows[0].id, old);
    char ids[32];
    snprintf(ids, sizeof ids, "%" PRId64, old);
    const char *p[] = {ids};
    PGresult *r = query(db,
                        "SELECT o.exchange, o.routing_key, o.event_id, o.body, p.claimed_by, "
                        "p.claimed_until BETWEEN now() + interval '50 s' AND now() + interval "
                        "'61 s' FROM outbox o JOIN outbox_pending p ON p.id = o.id "
                        "WHERE o.id = $1",
                        1, p);
    ck_assert_str_eq(rows[0].exchange, PQgetvalue(r, 0, 0));
    ck_assert_str_eq(rows[0].exchange, OUTBOX_EXCHANGE);
    ck_assert_str_eq(rows[0].routing_key, PQgetvalue(r, 0, 1));
    ck_assert_str_eq(rows[0].event_id, PQgetvalue(r, 0, 2));
    ck_assert_str_eq(rows[0].body, PQgetvalue(r, 0, 3));
    ck_assert_str_eq(PQgetvalue(r, 0, 4), "sweeper-a");
    ck_assert_str_eq(PQgetvalue(r, 0, 5), "t");
    PQclear(r);
    outbox_rows_free(rows, n);
    ck_assert_int_eq(pending_where(db, "claimed_by IS NOT NULL"), 1);

    /* a shorter age reaches the 30 s old row, still not the fresh one */
    claim(db, "sweeper-a", 10000, 100, &rows, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(rows[0].id, mid);
    outbox_rows_free(rows, n);
    char *who = claimed_by(fresh);
    ck_assert_str_eq(who, "");
    free(who);
    ck_assert_int_eq(sent_count(db), 1);
}
END_TEST

/* Each stage sweeps only its own rows: a payment worker must never
 * republish risk's approvals (it cannot sign them as risk does). */
START_TEST(outbox_claim_takes_only_rows_of_its_own_stage)
{
    seed(3, 600, "own-");
    llt_exec(db, "UPDATE outbox SET stage = 'risk' WHERE payment_id = 'own-2'");
    llt_exec(db, "UPDATE outbox_pending p SET stage = 'risk' FROM outbox o "
                 "WHERE o.id = p.id AND o.payment_id = 'own-2'");
    outbox_row_t *rows;
    size_t n;
    claim(db, "sweeper-a", 1000, 100, &rows, &n);
    ck_assert_uint_eq(n, 2);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strstr(rows[i].body, "own-2") == NULL, "claimed risk's row: %s",
                      rows[i].body);
    outbox_rows_free(rows, n);
    ck_assert_int_eq(pending_where(db, "stage = 'risk' AND claimed_by IS NULL"), 1);
    ck_assert_int_eq(outbox_claim(db, "risk", "sweeper-r", 1000, 100, &rows, &n), LL_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_msg(strstr(rows[0].body, "own-2") != NULL, "risk's sweep got %s", rows[0].body);
    outbox_rows_free(rows, n);
}
END_TEST

START_TEST(outbox_claim_respects_limit)
{
    int64_t f = seed(5, 600, "l-");
    outbox_row_t *rows;
    size_t n;
    claim(db, "sweeper-a", 1000, 0, &rows, &n);
    ck_assert_int_eq(n, 0);
    outbox_rows_free(rows, n);
    ck_assert_int_eq(pending_where(db, "claimed_by IS NOT NULL"), 0);

    int seen[5] = {0};
    static const size_t want[] = {2, 2, 1, 0};
    for (size_t round = 0; round < sizeof want / sizeof want[0]; round++) {
        claim(db, "sweeper-a", 1000, 2, &rows, &n);
        ck_assert_msg(n == want[round], "round %zu: %zu rows", round, n);
        for (size_t i = 0; i < n; i++) {
            ck_assert(rows[i].id >= f && rows[i].id < f + 5);
            seen[rows[i].id - f]++;
        }
        outbox_rows_free(rows, n);
        ck_assert_int_eq(pending_where(db, "claimed_by = 'sweeper-a'"),
                         (int64_t)(round < 2 ? 2 * (round + 1) : 5));
    }
    for (int i = 0; i < 5; i++)
        ck_assert_msg(seen[i] == 1, "row %" PRId64 " claimed %d times", f + i, seen[i]);
}
END_TEST

START_TEST(outbox_claim_never_returns_sent_rows)
{
    int64_t f = seed(4, 600, "s-");
    /* three sent (their pending marks gone, whatever their lease was) */
    char sql[400];
    snprintf(sql, sizeof sql,
             "UPDATE outbox_pending SET "
             "claimed_by = CASE id WHEN %" PRId64 " THEN 'gone' WHEN %" PRId64 " THEN 'live' END, "
             "claimed_until = CASE id WHEN %" PRId64 " THEN now() - interval '1 minute' "
             "WHEN %" PRId64 " THEN now() + interval '1 minute' END",
             f + 1, f + 2, f + 1, f + 2);
    llt_exec(db, sql);
    for (int64_t id = f; id < f + 3; id++)
        sent_by_hand(id);

    /* the last one: claimed, published, marked sent */
    outbox_row_t *rows;
    size_t n;
    claim(db, "sweeper-a", 1000, 10, &rows, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(rows[0].id, f + 3);
    int rc = outbox_mark_sent(db, &rows[0].id, 1);
    ck_assert_msg(rc == LL_OK, "%s", db_errstr(db));
    outbox_rows_free(rows, n);

    claim(db, "sweeper-b", 0, 100, &rows, &n);
    ck_assert_int_eq(n, 0);
    outbox_rows_free(rows, n);
    ck_assert_int_eq(llt_scalar(db, "SELECT count(*) FROM outbox_pending"), 0);
    ck_assert_int_eq(sent_count(db), 4);
}
END_TEST

START_TEST(outbox_claim_in_concurrent_transactions_gets_disjoint_rows)
{
    enum { N = 10 };
    int64_t f = seed(N, 600, "c-");
    db_t *b = llt_db(suite_db);
    /* B must skip A's locked rows, not wait for them */
    llt_exec(b, "SET lock_timeout = '5s'");

    outbox_row_t *ra, *rb;
    size_t na, nb;
    llt_exec(db, "BEGIN");
    claim(db, "sweeper-a", 1000, 4, &ra, &na);
    ck_assert_int_eq(na, 4);
    llt_exec(b, "BEGIN");
    claim(b, "sweeper-b", 1000, 100, &rb, &nb);
    ck_assert_int_eq(nb, N - 4);
    llt_exec(db, "COMMIT");
    llt_exec(b, "COMMIT");

    int seen[N] = {0};
    for (size_t i = 0; i < na; i++) {
        ck_assert(ra[i].id >= f && ra[i].id < f + N);
        seen[ra[i].id - f]++;
    }
    for (size_t i = 0; i < nb; i++) {
        ck_assert(rb[i].id >= f && rb[i].id < f + N);
        ck_assert_msg(!has_id(ra, na, rb[i].id), "row %" PRId64 " claimed by both", rb[i].id);
        seen[rb[i].id - f]++;
    }
    for (int i = 0; i < N; i++)
        ck_assert_msg(seen[i] == 1, "row %" PRId64 " claimed %d times", f + i, seen[i]);
    for (size_t i = 0; i < na; i++) {
        char *who = claimed_by(ra[i].id);
        ck_assert_str_eq(who, "sweeper-a");
        free(who);
    }
    for (size_t i = 0; i < nb; i++) {
        char *who = claimed_by(rb[i].id);
        ck_assert_str_eq(who, "sweeper-b");
        free(who);
    }
    outbox_rows_free(ra, na);
    outbox_rows_free(rb, nb);

    /* nothing left for a third sweeper */
    claim(b, "sweeper-c", 0, 100, &rb, &nb);
    ck_assert_int_eq(nb, 0);
    outbox_rows_free(rb, nb);
    db_free(b);
}
END_TEST

START_TEST(outbox_claim_rolled_back_leaves_the_rows_to_the_next_sweeper)
{
    int64_t f = seed(3, 600, "r-");
    db_t *b = llt_db(suite_db);
    outbox_row_t *rows;
    size_t n;
    llt_exec(db, "BEGIN");
    claim(db, "sweeper-a", 1000, 10, &rows, &n);
    ck_assert_int_eq(n, 3);
    outbox_rows_free(rows, n);
    llt_exec(db, "ROLLBACK");
    ck_assert_int_eq(pending_where(db, "claimed_by IS NOT NULL"), 0);

    claim(b, "sweeper-b", 1000, 10, &rows, &n);
    ck_assert_int_eq(n, 3);
    for (int64_t id = f; id < f + 3; id++)
        ck_assert(has_id(rows, n, id));
    outbox_rows_free(rows, n);
    ck_assert_int_eq(pending_where(db, "claimed_by = 'sweeper-b'"), 3);
    db_free(b);
}
END_TEST

enum { RACE_ROWS = 400, RACE_LIMIT = 3 };

typedef struct racer {
    db_t *db;
    const char *instance;
    pthread_barrier_t *start;
    int64_t ids[RACE_ROWS]; /* what it claimed, in order */
    size_t n;
    int rc;        /* first failure, LL_OK if none */
    bool overflow; /* claimed more rows than exist */
    char errstr[256];
} racer_t;

/* Claims until a claim comes back empty. No Check assertions here: they
 * are not thread-safe; the main thread checks what was recorded. */
static void *race(void *arg)
{
    racer_t *r = arg;
    pthread_barrier_wait(r->start);
    for (;;) {
        outbox_row_t *rows;
        size_t n;
        r->rc = outbox_claim(r->db, "payment", r->instance, 1000, RACE_LIMIT, &rows, &n);
        if (r->rc != LL_OK) {
            snprintf(r->errstr, sizeof r->errstr, "%s", db_errstr(r->db));
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            if (r->n == RACE_ROWS)
                r->overflow = true;
            else
                r->ids[r->n++] = rows[i].id;
        }
        outbox_rows_free(rows, n);
        if (n == 0 || r->overflow)
            return NULL;
    }
}

START_TEST(outbox_claim_two_sweepers_racing_get_every_row_exactly_once)
{
    int64_t f = seed(RACE_ROWS, 600, "race-");
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    static racer_t rs[2];
    memset(rs, 0, sizeof rs);
    const char *names[2] = {"sweeper-a", "sweeper-b"};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        rs[i].db = llt_db(suite_db);
        rs[i].instance = names[i];
        rs[i].start = &start;
    }
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);

    static int seen[RACE_ROWS];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(rs[i].rc == LL_OK, "%s: %s: %s", names[i], ll_errname(rs[i].rc),
                      rs[i].errstr);
        ck_assert_msg(!rs[i].overflow, "%s claimed more rows than exist", names[i]);
        for (size_t k = 0; k < rs[i].n; k++) {
            int64_t id = rs[i].ids[k];
            ck_assert(id >= f && id < f + RACE_ROWS);
            seen[id - f]++;
        }
    }
    for (int i = 0; i < RACE_ROWS; i++)
        ck_assert_msg(seen[i] == 1, "row %" PRId64 " claimed %d times (a: %zu rows, b: %zu)", f + i,
                      seen[i], rs[0].n, rs[1].n);
    /* the table agrees with what each sweeper was handed */
    for (int i = 0; i < 2; i++) {
        char cond[64];
        snprintf(cond, sizeof cond, "claimed_by = '%s'", names[i]);
        ck_assert_int_eq(pending_where(db, cond), (int64_t)rs[i].n);
    }
    ck_assert_int_eq(pending_where(db, "claimed_by IS NULL"), 0);
    for (int i = 0; i < 2; i++)
        db_free(rs[i].db);
}
END_TEST

START_TEST(outbox_claim_lease_holds_rows_until_it_expires)
{
    int64_t f = seed(3, 600, "lease-");
    db_t *b = llt_db(suite_db);
    outbox_row_t *rows;
    size_t n;
    claim(db, "sweeper-a", 1000, 10, &rows, &n);
    ck_assert_int_eq(n, 3);
    outbox_rows_free(rows, n);

    /* A's claim is committed (no row lock left): only the lease stops B,
     * and A itself */
    claim(b, "sweeper-b", 0, 10, &rows, &n);
    ck_assert_int_eq(n, 0);
    outbox_rows_free(rows, n);
    claim(db, "sweeper-a", 0, 10, &rows, &n);
    ck_assert_int_eq(n, 0);
    outbox_rows_free(rows, n);
    ck_assert_int_eq(pending_where(db, "claimed_by = 'sweeper-a'"), 3);

    /* A died: the lease of its first row runs out */
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE outbox_pending SET claimed_until = now() - interval '1 second' "
             "WHERE id = %" PRId64,
             f);
    llt_exec(db, sql);
    claim(b, "sweeper-b", 1000, 10, &rows, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(rows[0].id, f);
    outbox_rows_free(rows, n);
    char *who = claimed_by(f);
    ck_assert_str_eq(who, "sweeper-b");
    free(who);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM outbox_pending WHERE id = %" PRId64
             " AND claimed_until > now() + interval '50 s'",
             f);
    ck_assert_int_eq(llt_scalar(db, sql), 1);

    /* then the others' */
    llt_exec(db, "UPDATE outbox_pending SET claimed_until = now() - interval '1 second' "
                 "WHERE claimed_by = 'sweeper-a'");
    claim(b, "sweeper-b", 1000, 10, &rows, &n);
    ck_assert_int_eq(n, 2);
    ck_assert(has_id(rows, n, f + 1) && has_id(rows, n, f + 2));
    outbox_rows_free(rows, n);
    ck_assert_int_eq(pending_where(db, "claimed_by = 'sweeper-b'"), 3);
    db_free(b);
}
END_TEST

/* --- outbox_rows_free ------------------------------------------------------ */

START_TEST(outbox_rows_free_is_safe_on_null_and_on_zero_rows)
{
    outbox_rows_free(NULL, 0);
    outbox_rows_free(NULL, 3);
    outbox_row_t *rows;
    size_t n;
    claim(db, "sweeper-a", 0, 10, &rows, &n); /* empty table */
    ck_assert_int_eq(n, 0);
    outbox_rows_free(rows, n);
    seed(2, 600, "f-");
    claim(db, "sweeper-a", 1000, 0, &rows, &n); /* limit 0 */
    ck_assert_int_eq(n, 0);
    outbox_rows_free(rows, n);
    claim(db, "sweeper-a", 1000, 10, &rows, &n);
    ck_assert_int_eq(n, 2);
    outbox_rows_free(rows, n);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("postgres");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, suite_up, suite_down);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, outbox_write_new_items_get_one_row_each_exactly_as_their_event);
    tcase_add_test(tc, outbox_write_duplicate_gets_event_and_outbox_id_of_the_stored_row);
    tcase_add_test(tc, outbox_write_duplicate_of_a_new_item_in_the_same_batch_replays_it);
    tcase_add_test(tc, outbox_write_refuses_a_duplicate_whose_event_is_not_stored);
    tcase_add_test(tc, outbox_write_duplicate_with_payment_id_NULL_replays_its_stored_row);
    tcase_add_test(tc, outbox_write_ignores_items_that_are_not_batched);
    tcase_add_test(tc, outbox_write_rolled_back_leaves_no_row);
    tcase_add_test(tc, outbox_mark_sent_marks_exactly_the_given_ids);
    tcase_add_test(tc, outbox_add_stores_one_pending_event);
    tcase_add_test(tc, outbox_claim_takes_only_unsent_rows_older_than_age);
    tcase_add_test(tc, outbox_claim_takes_only_rows_of_its_own_stage);
    tcase_add_test(tc, outbox_claim_respects_limit);
    tcase_add_test(tc, outbox_claim_never_returns_sent_rows);
    tcase_add_test(tc, outbox_claim_in_concurrent_transactions_gets_disjoint_rows);
    tcase_add_test(tc, outbox_claim_rolled_back_leaves_the_rows_to_the_next_sweeper);
    tcase_add_test(tc, outbox_claim_two_sweepers_racing_get_every_row_exactly_once);
    tcase_add_test(tc, outbox_claim_lease_holds_rows_until_it_expires);
    tcase_add_test(tc, outbox_rows_free_is_safe_on_null_and_on_zero_rows);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
