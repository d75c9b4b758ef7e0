/*
 * test_stage_set_based.c - each stage's set-based batch function gives
 * exactly what one-at-a-time processing gives (their fast paths and the
 * *_apply_seq fallbacks in schemas/sql/functions/).
 *
 * payment_apply_batch and settlement_apply_batch decide a batch in one
 * statement when they can, and fall back to their one-at-a-time loops
 * (payment_apply_seq, settlement_apply_seq) when they cannot. Each test
 * runs a few hundred random batches against a real ledger, each twice from
 * the same state: once through the batch function (then rolled back), once
 * through the loop (committed, so the ledger moves on), and compares the
 * result rows and every row written (balances, transfers, entries with
 * their running balances, processed rows, settlement batches and items).
 * The batches are drawn to hit every refusal, duplicates and conflicts with
 * earlier batches, repeats inside a batch, payments short of funds, late
 * payments (closed windows) and events that contradict the ledger; the
 * test also counts which path each batch took (pg_stat_xact_user_functions)
 * and fails unless both were taken often, so it cannot pass by never
 * reaching the set-based statement.
 *
 * risk_apply_batch has no loop left to compare with: it is checked against
 * a model of the rules written here (risk_apply_batch's rules, in queue order,
 * with the decisions of earlier payments of the same batch counting), over
 * random batches and random rule settings.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ll_test.h"
#include "xmalloc.h"

#define ROUNDS 240

static char *ledger;
static db_t *db;

static void setup(void)
{
    ledger = llt_ledger();
    db = llt_db(ledger);
    /* count PL/pgSQL calls: which path a batch took */
    llt_exec(db, "SET track_functions = 'pl'");
}

static void teardown(void)
{
    db_free(db);
    llt_dropdb(ledger);
    free(ledger);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(uint64_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng % n;
}

/* Every row of `sql` as one text ("a|b\nc|d\n"). Caller frees. */
static char *rows_text(const char *sql, int nparams, const char *const *params)
{
    PGresult *r;
    int rc = db_query(db, &r, sql, nparams, params);
    ck_assert_msg(rc == LL_OK, "%s: %s", sql, db_errstr(db));
    size_t cap = 256, len = 0;
    char *out = ll_xmalloc(cap);
    out[0] = '\0';
    for (int i = 0; i < PQntuples(r); i++)
        for (int j = 0; j < PQnfields(r); j++) {
            const char *v = PQgetisnull(r, i, j) ? "<null>" : PQgetvalue(r, i, j);
            size_t need = len + strlen(v) + 3;
            if (need > cap) {
                while (need > cap)
                    cap *= 2;
                out = ll_xrealloc(out, cap);
            }
            len += (size_t)snprintf(out + len, cap - len, "%s%s", v,
                                    j + 1 < PQnfields(r) ? "|" : "\n");
        }
    PQclear(r);
    return out;
}

static int64_t scalar(const char *sql)
{
    return llt_scalar(db, sql);
}

/* Calls of `fn` this session counted and has not flushed to the
 * statistics yet, the current transaction's among them: compare two
 * readings taken in one transaction. */
static int64_t calls_in_tx(const char *fn)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
             "WHERE funcname = '%s'",
             fn);
    return scalar(sql);
}

/* `ledgerctl verify` holds on the test's ledger after `what`. */
static void verify_holds(const char *what)
{
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "verify --settle-within 315360000");
    ck_assert_msg(rc == 0, "verify after %s: %s%s", what, out, err);
    free(out);
    free(err);
}

static void must_equal(const char *what, int round, const char *set_based, const char *seq,
                       const char *batch)
{
    ck_assert_msg(strcmp(set_based, seq) == 0,
                  "round %d, %s differ\n--- set-based:\n%s--- one at a time:\n%s--- batch: %s",
                  round, what, set_based, seq, batch);
}

/* ---- payment --------------------------------------------------------------- */

/* accounts of the payment test: who may pay whom, and what goes wrong */
static const char *const pay_ids[] = {
    "c0",     "c1",  "c2",    "c3",
    "c4",     "c5",                             /* customers, small balances: funds run out */
    "rich",   "m0",  "m1",    "m2",             /* a funded customer, merchants */
    "frozen", "usd", "ghost", "sys:funding:EUR" /* refusals: frozen, currency, unknown, system */
};
#define NPAY_IDS (sizeof pay_ids / sizeof pay_ids[0])

static void payment_accounts(void)
{
    llt_exec(db, "INSERT INTO accounts (id, currency, kind) VALUES "
                 "('sys:funding:EUR', 'EUR', 'system'), ('sys:funding:USD', 'USD', 'system');"
                 "INSERT INTO accounts (id, currency, overdraft_limit) VALUES "
                 "('c0', 'EUR', 0), ('c1', 'EUR', 0), ('c2', 'EUR', 500), ('c3', 'EUR', 0), "
                 "('c4', 'EUR', 2000), ('c5', 'EUR', 0), ('rich', 'EUR', 0), ('usd', 'USD', 0), "
                 "('frozen', 'EUR', 0);"
                 "INSERT INTO accounts (id, currency, kind) VALUES ('m0', 'EUR', 'merchant'), "
                 "('m1', 'EUR', 'merchant'), ('m2', 'EUR', 'merchant');"
                 "SELECT ledger_post('f-' || id, 'funding', 'sys:funding:' || currency, id, "
                 "CASE id WHEN 'rich' THEN 100000000 ELSE 3000 END, currency) FROM accounts "
                 "WHERE kind = 'customer';"
                 "UPDATE accounts SET status = 'frozen' WHERE id = 'frozen'");
}

typedef struct pay {
    char id[32], payer[32], payee[32], cur[4];
    int64_t amount;
} pay_t;

static void pay_json(char *buf, size_t n, const pay_t *p, size_t k)
{
    size_t w = (size_t)snprintf(buf, n, "[");
    for (size_t i = 0; i < k; i++) {
        char payload[160];
        snprintf(payload, sizeof payload, "%s>%s:%" PRId64 ":%s", p[i].payer, p[i].payee,
                 p[i].amount, p[i].cur);
        w += (size_t)snprintf(
            buf + w, n - w,
            "%s{\"key\":\"%s\",\"payment_id\":\"%s\",\"hash\":\"%s\",\"payload\":\"%s\","
            "\"payer\":\"%s\",\"payee\":\"%s\",\"amount\":%" PRId64 ",\"currency\":\"%s\"}",
            i ? "," : "", p[i].id, p[i].id, payload, payload, p[i].payer, p[i].payee, p[i].amount,
            p[i].cur);
    }
    snprintf(buf + w, n - w, "]");
}

/* What a payment batch changed, from the given transfer and entry ids on. */
static char *payment_state(int64_t t0, int64_t e0)
{
    char a[24], b[24];
    snprintf(a, sizeof a, "%" PRId64, t0);
    snprintf(b, sizeof b, "%" PRId64, e0);
    const char *p[] = {a, b};
    char *bal = rows_text("SELECT id, balance FROM accounts ORDER BY id", 0, NULL);
    char *tr = rows_text("SELECT ref, kind, debit_account, credit_account, amount, currency "
                         "FROM transfers WHERE id > $1::bigint ORDER BY id",
                         1, p);
    char *en = rows_text("SELECT t.ref, e.account_id, e.amount, e.balance_after FROM entries e "
                         "JOIN transfers t ON t.id = e.transfer_id WHERE e.id > $2::bigint "
                         "AND $1::bigint IS NOT NULL ORDER BY e.id",
                         2, p);
    char *pr = rows_text("SELECT payment_id, payload_hash, outcome FROM processed "
                         "WHERE stage = 'payment' ORDER BY payment_id",
                         0, NULL);
    char *all =
        ll_xasprintf("balances:\n%stransfers:\n%sentries:\n%sprocessed:\n%s", bal, tr, en, pr);
    free(bal);
    free(tr);
    free(en);
    free(pr);
    return all;
}

/* Mostly ordinary payers and payees, now and then one the ledger refuses
 * (frozen, another currency, unknown, a system account). */
static const char *pick_payer(void)
{
    return rnd(10) < 8 ? pay_ids[rnd(7)] : pay_ids[7 + rnd(NPAY_IDS - 7)];
}

static const char *pick_payee(void)
{
    return rnd(10) < 8 ? pay_ids[rnd(10)] : pay_ids[10 + rnd(NPAY_IDS - 10)];
}

START_TEST(payment_set_based_path_equals_one_at_a_time)
{
    payment_accounts();
    static pay_t done[ROUNDS * 12];
    size_t ndone = 0;
    int fast = 0, slow = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pay_t b[12];
        size_t k = 1 + rnd(12);
        for (size_t i = 0; i < k; i++) {
            pay_t *p = &b[i];
            uint64_t what = rnd(20);
            if (what == 0 && ndone > 0) {
                *p = done[rnd(ndone)]; /* duplicate of an earlier batch */
            } else if (what == 1 && ndone > 0) {
                *p = done[rnd(ndone)]; /* conflict: same id, other amount */
                p->amount += 1;
            } else if (what == 2 && i > 0 && round % 3 == 0) {
                *p = b[rnd(i)]; /* repeated inside this batch */
            } else {
                snprintf(p->id, sizeof p->id, "p%d-%zu", round, i);
                do {
                    snprintf(p->payer, sizeof p->payer, "%s", pick_payer());
                    snprintf(p->payee, sizeof p->payee, "%s", pick_payee());
                } while (strcmp(p->payer, p->payee) == 0);
                /* every fourth batch spends big: some payers fall short */
                p->amount = 1 + (int64_t)rnd(round % 4 == 0 ? 3000 : 60);
                snprintf(p->cur, sizeof p->cur, "%s", rnd(15) ? "EUR" : "USD");
            }
        }
        char batch[8192];
        pay_json(batch, sizeof batch, b, k);
        const char *param[] = {batch};
        int64_t t0 = scalar("SELECT coalesce(max(id), 0) FROM transfers");
        int64_t e0 = scalar("SELECT coalesce(max(id), 0) FROM entries");

        llt_exec(db, "BEGIN");
        int64_t loops_before = calls_in_tx("payment_apply_seq");
        char *rows_a = rows_text("SELECT r.ord, r.verdict, r.outcome, t.ref, r.prior_payload "
                                 "FROM payment_apply_batch($1::jsonb) r "
                                 "LEFT JOIN transfers t ON t.id = r.transfer_id ORDER BY r.ord",
                                 1, param);
        bool took_loop = calls_in_tx("payment_apply_seq") > loops_before;
        char *state_a = payment_state(t0, e0);
        llt_exec(db, "ROLLBACK");

        llt_exec(db, "BEGIN");
        char *rows_b = rows_text(
            "WITH f AS MATERIALIZED (SELECT processed_claim('payment', $1::jsonb) AS fresh), "
            "l AS MATERIALIZED (SELECT count(*) FROM (SELECT 1 FROM accounts a WHERE a.id IN "
            "(SELECT x.value ->> 'payer' FROM jsonb_array_elements($1::jsonb) x UNION "
            "SELECT x.value ->> 'payee' FROM jsonb_array_elements($1::jsonb) x) ORDER BY a.id "
            "FOR NO KEY UPDATE) s) "
            "SELECT r.ord, r.verdict, r.outcome, t.ref, r.prior_payload "
            "FROM f, l, payment_apply_seq($1::jsonb, f.fresh) r "
            "LEFT JOIN transfers t ON t.id = r.transfer_id ORDER BY r.ord",
            1, param);
        char *state_b = payment_state(t0, e0);
        llt_exec(db, "COMMIT");

        must_equal("result rows", round, rows_a, rows_b, batch);
        must_equal("ledger rows", round, state_a, state_b, batch);
        took_loop ? slow++ : fast++;
        free(rows_a);
        free(rows_b);
        free(state_a);
        free(state_b);
        for (size_t i = 0; i < k && ndone < sizeof done / sizeof done[0]; i++)
            done[ndone++] = b[i];
    }
    fprintf(stderr, "payment: %d batches set-based, %d one at a time\n", fast, slow);
    ck_assert_msg(fast >= ROUNDS / 5 && slow >= ROUNDS / 5,
                  "want both paths taken often: set-based %d, one at a time %d of %d batches", fast,
                  slow, ROUNDS);
    verify_holds("the payment rounds");
}
END_TEST

/* ---- settlement ------------------------------------------------------------ */

#define SET_WINDOW 60
#define NPAYEES    4

typedef struct completed {
    char id[32], payee[32];
    int64_t amount, posted_ms;
} completed_t;

static void completed_json(char *buf, size_t n, const completed_t *c, size_t k)
{
    size_t w = (size_t)snprintf(buf, n, "[");
    for (size_t i = 0; i < k; i++) {
        char payload[160];
        snprintf(payload, sizeof payload, "%s:%" PRId64 ":%" PRId64, c[i].payee, c[i].amount,
                 c[i].posted_ms);
        w += (size_t)snprintf(buf + w, n - w,
                              "%s{\"key\":\"%s\",\"payment_id\":\"%s\",\"hash\":\"%s\","
                              "\"payload\":\"%s\",\"payee\":\"%s\",\"amount\":%" PRId64
                              ",\"currency\":\"EUR\",\"posted_ms\":%" PRId64 "}",
                              i ? "," : "", c[i].id, c[i].id, payload, payload, c[i].payee,
                              c[i].amount, c[i].posted_ms);
    }
    snprintf(buf + w, n - w, "]");
}

static char *settlement_state(void)
{
    char *bt = rows_text("SELECT id, payee, status, count, gross, fees_raw, late_count, "
                         "window_start FROM settlement_batches ORDER BY id",
                         0, NULL);
    char *it = rows_text("SELECT payment_id, batch_id, amount, fee, late FROM settlement_items "
                         "ORDER BY payment_id",
                         0, NULL);
    char *pr = rows_text("SELECT payment_id, payload_hash, outcome FROM processed "
                         "WHERE stage = 'settlement' ORDER BY payment_id",
                         0, NULL);
    char *all = ll_xasprintf("batches:\n%sitems:\n%sprocessed:\n%s", bt, it, pr);
    free(bt);
    free(it);
    free(pr);
    return all;
}

START_TEST(settlement_set_based_path_equals_one_at_a_time)
{
    /* payees with fees; one payer that may go far into the red */
    llt_exec(db, "INSERT INTO accounts (id, currency, overdraft_limit) VALUES "
                 "('payer', 'EUR', 1000000000000);"
                 "INSERT INTO accounts (id, currency, kind, fee_bps, fee_fixed) VALUES "
                 "('s0', 'EUR', 'merchant', 150, 25), ('s1', 'EUR', 'merchant', 0, 0), "
                 "('s2', 'EUR', 'merchant', 290, 0), ('s3', 'EUR', 'merchant', 10000, 7)");
    static completed_t done[ROUNDS * 12];
    size_t ndone = 0;
    int fast = 0, slow = 0;
    int64_t token = 0;
    /* windows of one minute, well in the past, one after the other */
    const int64_t w0 = 1700000000LL / SET_WINDOW * SET_WINDOW;
    for (int round = 0; round < ROUNDS; round++) {
        completed_t b[12];
        size_t k = 1 + rnd(12);
        int64_t window = w0 + SET_WINDOW * (round / 20); /* a new window every 20 rounds */
        for (size_t i = 0; i < k; i++) {
            completed_t *c = &b[i];
            uint64_t what = rnd(20);
            if (what == 0 && ndone > 0) {
                *c = done[rnd(ndone)]; /* duplicate */
            } else if (what == 1 && ndone > 0) {
                *c = done[rnd(ndone)]; /* conflict: the same payment, another window */
                c->posted_ms += SET_WINDOW * 1000;
            } else if (what == 2 && i > 0 && round % 3 == 0) {
                *c = b[rnd(i)]; /* repeated inside this batch */
            } else {
                snprintf(c->id, sizeof c->id, "q%d-%zu", round, i);
                snprintf(c->payee, sizeof c->payee, "s%d", (int)rnd(NPAYEES));
                c->amount = 1 + (int64_t)rnd(100000);
                /* now and then a payment of an older (maybe closed) window */
                int64_t ws = what == 3 && round >= 20 ? window - SET_WINDOW : window;
                c->posted_ms = ws * 1000 + (int64_t)rnd(SET_WINDOW * 1000);
                char sql[400];
                snprintf(sql, sizeof sql,
                         "SELECT status FROM ledger_post('%s', 'payment', 'payer', '%s', "
                         "%" PRId64 ", 'EUR')",
                         c->id, c->payee, c->amount + (what == 4 ? 1 : 0));
                if (what != 5) /* else: no payment transfer at all */
                    llt_exec(db, sql);
            }
        }
        char batch[8192];
        completed_json(batch, sizeof batch, b, k);
        const char *param[] = {batch, "60"};

        llt_exec(db, "BEGIN");
        int64_t loops_before = calls_in_tx("settlement_apply_seq");
        char *rows_a = rows_text("SELECT ord, verdict, batch_id, late, prior_payload FROM "
                                 "settlement_apply_batch($1::jsonb, $2::bigint) ORDER BY ord",
                                 2, param);
        bool took_loop = calls_in_tx("settlement_apply_seq") > loops_before;
        char *state_a = settlement_state();
        llt_exec(db, "ROLLBACK");

        llt_exec(db, "BEGIN");
        /* the claim, then the loop alone: it creates the batches it fills
         * (settlement_apply_batch creates those of the events processed now
         * that the ledger matches, to lock them in id order first) */
        char *rows_b = rows_text(
            "WITH f AS MATERIALIZED (SELECT processed_claim('settlement', $1::jsonb) AS fresh) "
            "SELECT r.ord, r.verdict, r.batch_id, r.late, r.prior_payload "
            "FROM f, settlement_apply_seq($1::jsonb, $2::bigint, f.fresh) r ORDER BY r.ord",
            2, param);
        char *state_b = settlement_state();
        llt_exec(db, "COMMIT");

        must_equal("result rows", round, rows_a, rows_b, batch);
        must_equal("settlement rows", round, state_a, state_b, batch);
        took_loop ? slow++ : fast++;
        free(rows_a);
        free(rows_b);
        free(state_a);
        free(state_b);
        for (size_t i = 0; i < k && ndone < sizeof done / sizeof done[0]; i++)
            if (strncmp(b[i].id, "q", 1) == 0)
                done[ndone++] = b[i];
        /* close the open batches of the window before this one now and then:
         * later payments of that window are late */
        if (round % 20 == 19 || (round % 7 == 3 && round >= 20)) {
            char sql[300];
            snprintf(sql, sizeof sql,
                     "SELECT id FROM settlement_batches WHERE status = 'open' AND "
                     "window_start <= to_timestamp(%" PRId64 ") ORDER BY id",
                     window - (round % 20 == 19 ? 0 : SET_WINDOW));
            PGresult *r;
            ck_assert_int_eq(db_query(db, &r, sql, 0, NULL), LL_OK);
            for (int i = 0; i < PQntuples(r); i++) {
                char close[300];
                snprintf(close, sizeof close,
                         "SELECT count(*) FROM settlement_close('%s', %" PRId64 ", 'test')",
                         PQgetvalue(r, i, 0), ++token);
                ck_assert_int_eq(scalar(close), 1);
            }
            PQclear(r);
        }
    }
    fprintf(stderr, "settlement: %d batches set-based, %d one at a time\n", fast, slow);
    ck_assert_msg(fast >= ROUNDS / 5 && slow >= ROUNDS / 10,
                  "want both paths taken often: set-based %d, one at a time %d of %d batches", fast,
                  slow, ROUNDS);
    ck_assert_msg(scalar("SELECT count(*) FROM settlement_items WHERE late") > 0,
                  "no late payment was drawn");
    verify_holds("the settlement rounds");
}
END_TEST

/* ---- risk -------------------------------------------------------------------- */

typedef struct rcfg {
    int64_t max_eur; /* 0: none */
    int64_t vcount, vsum;
    int threshold, w_new, w_median, factor;
    const char *block; /* one blocklisted id, or NULL */
} rcfg_t;

typedef struct rdec {
    char id[32], payer[16], payee[16], hash[96];
    int64_t amount;
    bool approved;
    int score;
    char rules[96];
} rdec_t;

/* The idempotency hash of a decision's payload (a stand-in: only equality
 * matters). */
static void set_hash(rdec_t *d)
{
    char h[sizeof d->hash];
    snprintf(h, sizeof h, "%s>%s:%" PRId64, d->payer, d->payee, d->amount);
    memcpy(d->hash, h, sizeof h);
}

static rdec_t hist[ROUNDS * 10];
static size_t nhist;

static const rdec_t *hist_find(const char *id)
{
    for (size_t i = 0; i < nhist; i++)
        if (strcmp(hist[i].id, id) == 0)
            return &hist[i];
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* risk_apply_batch's rules for one new payment, given every earlier decision */
static void model_decide(const rcfg_t *c, rdec_t *d, const char *cur)
{
    d->rules[0] = '\0';
    d->score = 0;
    d->approved = true;
    const char *hard = NULL;
    int64_t n = 0, sum = 0;
    for (size_t i = 0; i < nhist; i++)
        if (hist[i].approved && strcmp(hist[i].payer, d->payer) == 0)
            n++, sum += hist[i].amount;
    if (c->max_eur && strcmp(cur, "EUR") == 0 && d->amount > c->max_eur)
        hard = "max_amount";
    else if (c->block && (strcmp(c->block, d->payer) == 0 || strcmp(c->block, d->payee) == 0))
        hard = "blocklisted";
    else if (c->vcount > 0 && n >= c->vcount)
        hard = "velocity_count";
    else if (c->vsum > 0 && sum + d->amount > c->vsum)
        hard = "velocity_sum";
    if (hard) {
        d->approved = false;
        snprintf(d->rules, sizeof d->rules, "%s", hard);
        return;
    }
    bool seen = false;
    int64_t last[20];
    int k = 0;
    for (size_t i = nhist; i-- > 0;) {
        if (!hist[i].approved || strcmp(hist[i].payer, d->payer) != 0)
            continue;
        seen |= strcmp(hist[i].payee, d->payee) == 0;
        if (k < 20)
            last[k++] = hist[i].amount;
    }
    char rules[96] = "";
    if (c->w_new > 0 && !seen) {
        d->score += c->w_new;
        strcat(rules, "new_payee");
    }
    if (c->w_median > 0 && k >= 3) {
        qsort(last, (size_t)k, sizeof last[0], cmp64);
        /* amount > factor * median, in integers: 2*amount > factor*(a+b) */
        int64_t twice_median = k % 2 ? 2 * last[k / 2] : last[k / 2 - 1] + last[k / 2];
        if (2 * d->amount > c->factor * twice_median) {
            d->score += c->w_median;
            strcat(rules, rules[0] ? ",above_median" : "above_median");
        }
    }
    if (d->score > 100)
        d->score = 100;
    if (c->threshold > 0 && d->score >= c->threshold) {
        d->approved = false;
        strcat(rules, rules[0] ? ",score" : "score");
    }
    snprintf(d->rules, sizeof d->rules, "%s", rules);
}

START_TEST(risk_batches_decide_like_one_at_a_time)
{
    static const char *const payers[] = {"a", "b", "c"};
    static const char *const payees[] = {"x", "y", "z", "a"};
    int repeats = 0, in_batch_history = 0;
    for (int round = 0; round < ROUNDS; round++) {
        rcfg_t c = {
            .max_eur = rnd(4) == 0 ? 5000 : 0,
            .vcount = rnd(4) == 0 ? 3 + (int64_t)rnd(round / 4 + 2) : 0,
            .vsum = rnd(5) == 0 ? 20000 + (int64_t)rnd(200000) : 0,
            .threshold = rnd(3) == 0 ? 0 : 30 + (int)rnd(60),
            .w_new = (int)rnd(3) * 20,
            .w_median = rnd(3) ? 60 : 0,
            .factor = 1 + (int)rnd(4),
            .block = rnd(8) == 0 ? "y" : NULL,
        };
        char cfg[512];
        snprintf(cfg, sizeof cfg,
                 "{\"version\":\"t\",\"max_amount\":{%s},\"blocklist\":[%s],"
                 "\"velocity_count\":%" PRId64 ",\"velocity_sum\":%" PRId64
                 ",\"velocity_window_s\":86400,\"score_threshold\":%d,\"weight_new_payee\":%d,"
                 "\"weight_above_median\":%d,\"median_factor\":%d}",
                 c.max_eur ? "\"EUR\":5000" : "", c.block ? "\"y\"" : "", c.vcount, c.vsum,
                 c.threshold, c.w_new, c.w_median, c.factor);
        rdec_t b[10];
        const char *cur[10];
        size_t k = 1 + rnd(10);
        char batch[8192];
        size_t w = (size_t)snprintf(batch, sizeof batch, "[");
        for (size_t i = 0; i < k; i++) {
            rdec_t *d = &b[i];
            memset(d, 0, sizeof *d);
            if (rnd(12) == 0 && nhist > 0) {
                *d = hist[rnd(nhist)]; /* duplicate of an earlier decision */
                if (rnd(3) == 0) {     /* or a conflict with it */
                    d->amount++;
                    set_hash(d);
                }
            } else if (rnd(10) == 0 && i > 0) {
                *d = b[rnd(i)]; /* repeated inside this batch */
                repeats++;
            } else {
                snprintf(d->id, sizeof d->id, "r%d-%zu", round, i);
                snprintf(d->payer, sizeof d->payer, "%s", payers[rnd(3)]);
                do
                    snprintf(d->payee, sizeof d->payee, "%s", payees[rnd(4)]);
                while (strcmp(d->payer, d->payee) == 0);
                d->amount = 1 + (int64_t)rnd(rnd(6) ? 2000 : 20000);
                set_hash(d);
            }
            cur[i] = rnd(10) ? "EUR" : "USD";
            w += (size_t)snprintf(
                batch + w, sizeof batch - w,
                "%s{\"key\":\"%s\",\"payment_id\":\"%s\",\"hash\":\"%s\",\"payload\":\"%s\","
                "\"payer\":\"%s\",\"payee\":\"%s\",\"amount\":%" PRId64 ",\"currency\":\"%s\"}",
                i ? "," : "", d->id, d->id, d->hash, d->hash, d->payer, d->payee, d->amount,
                cur[i]);
        }
        snprintf(batch + w, sizeof batch - w, "]");
        /* the model, in queue order; a payer's earlier approvals of this
         * batch count for its later payments */
        char want[4096] = "";
        size_t ww = 0;
        for (size_t i = 0; i < k; i++) {
            const rdec_t *prior = hist_find(b[i].id);
            const char *verdict = "new";
            rdec_t d = b[i];
            if (prior) {
                verdict = strcmp(prior->hash, b[i].hash) == 0 ? "duplicate" : "conflict";
                d = *prior;
            } else {
                size_t before = 0;
                for (size_t j = 0; j < nhist; j++)
                    before += hist[j].approved && strcmp(hist[j].payer, d.payer) == 0;
                model_decide(&c, &d, cur[i]);
                in_batch_history += before > 0;
                hist[nhist++] = d;
            }
            ww += (size_t)snprintf(want + ww, sizeof want - ww, "%zu|%s|%s|%d|{%s}\n", i + 1,
                                   verdict, d.approved ? "approved" : "declined", d.score, d.rules);
        }
        const char *param[] = {batch, cfg};
        char *got = rows_text("SELECT ord, verdict, decision, score, rules FROM "
                              "risk_apply_batch($1::jsonb, $2::jsonb) ORDER BY ord",
                              2, param);
        ck_assert_msg(strcmp(got, want) == 0,
                      "round %d: risk decisions differ from the rules\n--- got:\n%s--- want:\n%s"
                      "--- batch: %s\n--- rules: %s",
                      round, got, want, batch, cfg);
        free(got);
    }
    ck_assert_msg(repeats > 5 && in_batch_history > ROUNDS,
                  "the draw did not exercise the batch: %d repeats, %d payments with history",
                  repeats, in_batch_history);
    ck_assert_int_eq(scalar("SELECT count(*) FROM risk_decisions"), (int64_t)nhist);
    ck_assert_int_eq(scalar("SELECT count(*) FROM processed WHERE stage = 'risk' AND outcome "
                            "NOT IN ('approved', 'declined')"),
                     0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stage_set_based");
    TCase *tc = tcase_create("functions");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, payment_set_based_path_equals_one_at_a_time);
    tcase_add_test(tc, settlement_set_based_path_equals_one_at_a_time);
    tcase_add_test(tc, risk_batches_decide_like_one_at_a_time);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
