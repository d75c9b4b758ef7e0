/*
 * test_settlement.c - the real settlement-worker against the test stack:
 * window boundaries (the last millisecond of a window and the first of the
 * next make two batches; the window length setting, epoch aligned), the
 * per-payment fee with half-up rounding through the worker (a table), the
 * fee cap (fees = gross, net 0, no payout transfer), late payments (a
 * closed window sends a payment to the next open one, late = true, never
 * to a closed batch), duplicate and conflicting payment.completed, 2 and 3
 * workers racing to close the same batches (one close, one fee and one
 * payout transfer each), the fencing token refusing a closer paused past
 * its lock lease (LEDGERLINE_PAUSE_AT=closer_locked), kill -9 inside the
 * close transaction before and after COMMIT, `ledgerctl settlement
 * list|show`, and `ledgerctl verify` (with its settlement invariants)
 * green after each test.
 *
 * Determinism: every test uses windows that have already ended. Payments
 * are first added by an "adder" worker whose grace (one day) keeps all of
 * them open; it is stopped (SIGTERM, exit 0) once every item is in, and
 * "closer" workers with grace 0 then close what is due. So no batch can
 * close while its payments are still arriving, whatever the machine's
 * speed. Each payment.completed the test publishes has its real payment
 * transfer (ledger_post() from one payer with a large overdraft to the
 * payee, as the payment stage posts it): verify's payment_in_one_batch
 * wants every batch item to be a posted payment, and closing a batch pays
 * its gross out of what the payee received, so a payee whose batches are
 * all closed is back at balance 0.
 *
 * Ids: payees and payments start with the ledger's (unique) database name,
 * so batch ids, Redis locks and idempotency keys never repeat across tests.
 *
 * Test cases (CK_RUN_CASE runs one): windows, late, closers, crash. Every
 * wait for closed batches fails at once when an item joins a batch after
 * it closed, or a closed batch's count or gross differ from its items.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_fixture.h"
#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "msg_encode.h"

#define WORKER  LL_BIN_DIR "/settlement-worker"
#define WAIT_MS 30000
#define STOP_MS 20000
/* grace of the adder: keeps every window that ended within a day open */
#define GRACE_OPEN 86400000LL
#define W_TEST     600 /* window length of most tests: 10 minutes */
#define NPAYEES    20  /* race test: batches to close */

static char *ledger;
static db_t *db;
static mq_t *m;
static llw_events_t *ev;

static const char *const work_queues[] = {"settlement", "settlement.dead", "settlement.retry.1s",
                                          "settlement.retry.30s", NULL};

static llw_fixture_t fx;

static void setup(void)
{
    llw_fixture_up(&fx, work_queues);
    ledger = fx.ledger, db = fx.db, m = fx.m, ev = fx.ev;
    /* the payer of every payment: may go 10^15 into the red */
    llw_ctl(ledger, "account create %s-payer --currency EUR --overdraft 1000000000000000", ledger);
}

static void teardown(void)
{
    llw_fixture_down(&fx);
}

/* ---- small helpers ------------------------------------------------------ */

/* The start (epoch seconds) of the window of length w that began `back`
 * windows before the current one. */
static int64_t past_window(int64_t w, int back)
{
    int64_t now_s = clock_now_ms() / 1000;
    return now_s / w * w - back * w;
}

/* The state letter of /proc/<pid>/stat ('T' when stopped), '?' if none. */
static char proc_state(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *s = llw_slurp(path);
    const char *p = strrchr(s, ')');
    char st = p && p[1] == ' ' && p[2] ? p[2] : '?';
    free(s);
    return st;
}

/* Half-up fee of the contract, for the tests that do not list fees in a
 * table (the fee table test has the values written out). */
static int64_t fee_model(int64_t amount, int bps, int64_t fixed)
{
    return (amount * bps + 5000) / 10000 + fixed;
}

/* ---- accounts and payments --------------------------------------------- */

/* Merchant "<ledger>-<tag>" (into id) with its fee. */
static void merchant(char *id, size_t n, const char *tag, int bps, int64_t fixed)
{
    snprintf(id, n, "%s-%s", ledger, tag);
    llw_ctl(ledger,
            "account create %s --currency EUR --kind merchant --fee-bps %d --fee-fixed %" PRId64,
            id, bps, fixed);
}

static msg_payment_t payment(const char *tag, const char *payee, int64_t amount)
{
    char payer[MSG_ID_MAX + 1];
    snprintf(payer, sizeof payer, "%s-payer", ledger);
    return llw_payment(ledger, tag, payer, payee, amount, "EUR");
}

/* Posts p's payment transfer as the payment stage does; its transfer id
 * into tid. */
static void post_payment(const msg_payment_t *p, char *tid, size_t n)
{
    char *r = llw_text(db,
                       "SELECT status || '|' || transfer_id FROM ledger_post('%s', 'payment', "
                       "'%s', '%s', %" PRId64 ", '%s')",
                       p->payment_id, p->payer, p->payee, p->amount, p->currency);
    LLW_ASSERT(r && strncmp(r, "posted|", 7) == 0, "posting payment %s: %s", p->payment_id,
               r ? r : "(no row)");
    snprintf(tid, n, "%s", r + 7);
    free(r);
}

/* Posts p's payment transfer (unless tid_or_null names a transfer id to
 * put in the event instead) and publishes p as the payment stage does
 * (payment.completed on ledgerline.events, message_id = payment_id) posted
 * at posted_ms; returns the body (caller frees). Not confirmed. */
static char *publish_completed_tid(const msg_payment_t *p, int64_t posted_ms,
                                   const char *tid_or_null)
{
    char tid[MSG_ID_MAX + 1];
    if (tid_or_null)
        snprintf(tid, sizeof tid, "%s", tid_or_null);
    else
        post_payment(p, tid, sizeof tid);
    char *body = msg_encode_completed(p, tid, posted_ms, posted_ms + 1);
    ck_assert_msg(body, "cannot encode payment.completed of %s", p->payment_id);
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_COMPLETED, p->payment_id, MSG_TYPE_COMPLETED,
                    body, strlen(body));
    return body;
}

static char *publish_completed(const msg_payment_t *p, int64_t posted_ms)
{
    return publish_completed_tid(p, posted_ms, NULL);
}

static void publish1(const msg_payment_t *p, int64_t posted_ms)
{
    free(publish_completed(p, posted_ms));
}

/* ---- workers ------------------------------------------------------------- */

/* A settlement-worker: instance name, window length (0: the default, not
 * set), grace, close interval 200 ms, plus `extra` (NULL-terminated). */
static pid_t start(const char *instance, int64_t window_s, int64_t grace_ms,
                   const char *const *extra)
{
    const char *env[23];
    size_t k = 0;
    char win[96], grace[96];
    if (window_s > 0) {
        snprintf(win, sizeof win, "LEDGERLINE_SETTLEMENT_WINDOW_S=%" PRId64, window_s);
        env[k++] = win;
    }
    snprintf(grace, sizeof grace, "LEDGERLINE_SETTLEMENT_GRACE_MS=%" PRId64, grace_ms);
    env[k++] = grace;
    env[k++] = "LEDGERLINE_SETTLEMENT_CLOSE_INTERVAL_MS=200";
    for (size_t i = 0; extra && extra[i] && k < 22; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    return llw_start_instance(WORKER, ledger, instance, env);
}

static void stop_ok(pid_t pid)
{
    llw_stop_ok(pid, STOP_MS, "settlement-worker");
}

/* ---- waiting ------------------------------------------------------------- */

/* Distinct settlement.batch.closed event ids collected so far. */
static size_t closed_events(void)
{
    llw_events_collect(ev);
    return llw_events_distinct(ev, MSG_TYPE_BATCH_CLOSED);
}

/* Until exactly `n` batches are closed, each one's event published and no
 * outbox row is left unsent; fails at once when an item joins a batch
 * after it closed, or a closed batch's totals stop matching its items. */
static void wait_closed(int64_t n, const char *what)
{
    llw_done_t w = {
        .counts = {"SELECT count(*) FROM settlement_batches WHERE status = 'closed'"},
        .rows = n,
        .events = {MSG_TYPE_BATCH_CLOSED},
        .distinct = n,
        .rejected = LLW_ANY,
        .never = {{"a payment whose window's batch is closed joins the next window, never a "
                   "closed batch",
                   "SELECT count(*) FROM settlement_items i JOIN settlement_batches b ON b.id = "
                   "i.batch_id WHERE b.status = 'closed' AND i.added_at > b.closed_at"},
                  {"a closed batch's count and gross are those of its items",
                   "SELECT count(*) FROM settlement_batches b WHERE b.status = 'closed' AND "
                   "(b.count, b.gross) IS DISTINCT FROM (SELECT count(*)::int, "
                   "coalesce(sum(i.amount), 0)::bigint FROM settlement_items i WHERE i.batch_id "
                   "= b.id)"}}};
    llw_wait_done(&fx, &w, WAIT_MS, what);
}

/*
 * The adder phase: a worker whose grace keeps every window of the test open
 * consumes what was published until `items` settlement items exist and the
 * work queues are empty, then is stopped with SIGTERM (exit 0). No batch
 * may be closed.
 */
static void add_all(int64_t window_s, int64_t items)
{
    pid_t a = start("adder", window_s, GRACE_OPEN, NULL);
    llw_wait_sql(db, items, WAIT_MS, "the adder to put every payment in its batch",
                 "SELECT count(*) FROM settlement_items");
    llw_wait_drained(m, "settlement", WAIT_MS);
    llw_wait_drained(m, "settlement.retry.1s", WAIT_MS);
    stop_ok(a);
    int64_t closed =
        llw_count(db, "SELECT count(*) FROM settlement_batches WHERE status = 'closed'");
    LLW_ASSERT(closed == 0, "the adder (grace %lld ms) closed %" PRId64 " batch(es)", GRACE_OPEN,
               closed);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM settlement_items") == items,
               "items changed after the adder stopped");
}

/* ---- expected batches ------------------------------------------------------ */

typedef struct {
    char id[160];
    char payee[96];
    int64_t ws, w; /* window start (epoch s), window length (s) */
    int64_t count, gross, fees_raw, late;
} bwant_t;

static void bw_init(bwant_t *b, const char *payee, int64_t ws, int64_t w)
{
    memset(b, 0, sizeof *b);
    snprintf(b->payee, sizeof b->payee, "%s", payee);
    snprintf(b->id, sizeof b->id, "sb-%s-EUR-%" PRId64, payee, ws);
    b->ws = ws;
    b->w = w;
}

static void bw_add(bwant_t *b, int64_t amount, int64_t fee, bool late)
{
    b->count++;
    b->gross += amount;
    b->fees_raw += fee;
    b->late += late;
}

static int64_t bw_fees(const bwant_t *b)
{
    return b->fees_raw < b->gross ? b->fees_raw : b->gross;
}

/* Checks the item of payment_id: its batch, amount, fee and late flag. */
static void check_item(const char *payment_id, const char *batch_id, int64_t amount, int64_t fee,
                       bool late)
{
    char want[256];
    snprintf(want, sizeof want, "%s|%" PRId64 "|%" PRId64 "|%s", batch_id, amount, fee,
             late ? "true" : "false");
    char *row = llw_text(db,
                         "SELECT batch_id || '|' || amount || '|' || fee || '|' || late FROM "
                         "settlement_items WHERE payment_id = '%s'",
                         payment_id);
    LLW_ASSERT(row && strcmp(row, want) == 0,
               "settlement item of %s\n   is %s\n want %s\n (batch_id|amount|fee|late)", payment_id,
               row ? row : "(no item)", want);
    free(row);
    int64_t n =
        llw_count(db, "SELECT count(*) FROM settlement_items WHERE payment_id = '%s'", payment_id);
    LLW_ASSERT(n == 1, "payment %s has %" PRId64 " settlement items", payment_id, n);
}

/* The settlement.batch.closed events of batch_id: every copy with the same
 * id and bytes; returns how many; *first the first one (borrowed). */
static size_t batch_events(const char *batch_id, json_t **first)
{
    llw_events_collect(ev);
    json_t *all = llw_events_all(ev);
    size_t i, n = 0;
    json_t *e;
    *first = NULL;
    json_array_foreach(all, i, e)
    {
        if (strcmp(llc_jstr(e, "routing_key"), MSG_TYPE_BATCH_CLOSED) != 0)
            continue;
        if (strcmp(llc_jstr(json_object_get(e, "json"), "batch_id"), batch_id) != 0)
            continue;
        if (!*first)
            *first = e;
        else
            LLW_ASSERT(strcmp(llc_jstr(e, "message_id"), llc_jstr(*first, "message_id")) == 0 &&
                           strcmp(llc_jstr(e, "body"), llc_jstr(*first, "body")) == 0,
                       "settlement.batch.closed of %s published again with other bytes:\n  %s\n "
                       " %s",
                       batch_id, llc_jstr(*first, "body"), llc_jstr(e, "body"));
        n++;
    }
    return n;
}

static int64_t jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : INT64_MIN;
}

/* The event of a closed batch: envelope, and every field equal to b. */
static void check_closed_event(const bwant_t *b)
{
    json_t *e;
    size_t n = batch_events(b->id, &e);
    LLW_ASSERT(n >= 1, "no settlement.batch.closed event for batch %s", b->id);
    const json_t *j = json_object_get(e, "json");
    LLW_ASSERT(json_is_object(j), "settlement.batch.closed of %s is not JSON: %s", b->id,
               llc_jstr(e, "body"));
    char want_id[MSG_EVENT_ID_LEN + 1];
    msg_event_id(MSG_TYPE_BATCH_CLOSED, b->id, want_id);
    LLW_ASSERT(strcmp(llc_jstr(j, "event_id"), want_id) == 0 &&
                   strcmp(llc_jstr(e, "message_id"), want_id) == 0,
               "batch %s: event_id %s, AMQP message_id %s, want %s", b->id, llc_jstr(j, "event_id"),
               llc_jstr(e, "message_id"), want_id);
    LLW_ASSERT(strcmp(llc_jstr(j, "type"), MSG_TYPE_BATCH_CLOSED) == 0 &&
                   strcmp(llc_jstr(e, "type"), MSG_TYPE_BATCH_CLOSED) == 0,
               "batch %s: body type '%s', AMQP type '%s'", b->id, llc_jstr(j, "type"),
               llc_jstr(e, "type"));
    int64_t t0 = -1, t1 = -1, occ = -1;
    LLW_ASSERT(msg_parse_time(llc_jstr(j, "window_start"), &t0) == LL_OK &&
                   msg_parse_time(llc_jstr(j, "window_end"), &t1) == LL_OK &&
                   msg_parse_time(llc_jstr(j, "occurred_at"), &occ) == LL_OK,
               "batch %s: unreadable times: %s", b->id, llc_jstr(e, "body"));
    int64_t fees = bw_fees(b);
    LLW_ASSERT(strcmp(llc_jstr(j, "payee"), b->payee) == 0 &&
                   strcmp(llc_jstr(j, "currency"), "EUR") == 0 && t0 == b->ws * 1000 &&
                   t1 == (b->ws + b->w) * 1000 && jint(j, "count") == b->count &&
                   jint(j, "gross") == b->gross && jint(j, "fees") == fees &&
                   jint(j, "net") == b->gross - fees,
               "batch %s: settlement.batch.closed\n   is %s\n want payee %s, EUR, window "
               "[%" PRId64 "000, %" PRId64 "000) ms, count %" PRId64 ", gross %" PRId64
               ", fees %" PRId64 ", net %" PRId64,
               b->id, llc_jstr(e, "body"), b->payee, b->ws, b->ws + b->w, b->count, b->gross, fees,
               b->gross - fees);
    int64_t rows = llw_count(db,
                             "SELECT count(*) FROM outbox o WHERE event_id = '%s' AND routing_key "
                             "= '%s' AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = "
                             "o.id)",
                             want_id, MSG_TYPE_BATCH_CLOSED);
    LLW_ASSERT(rows == 1, "batch %s: %" PRId64 " sent outbox rows for its event, want 1", b->id,
               rows);
}

/*
 * Checks the batch row against b and `status`. A closed batch also: fees
 * (capped), net, closed_by one of `closers` (NULL-terminated; NULL: any
 * non-empty), a fence, exactly one fee transfer (payee -> sys:fees:EUR,
 * fees) when fees > 0 and one payout transfer (payee -> sys:payout:EUR,
 * net) when net > 0, no other transfer with the batch id as ref, and its
 * event. Returns closed_by (caller frees) or NULL when open.
 */
static char *check_batch(const bwant_t *b, const char *status, const char *const *closers)
{
    bool closed = strcmp(status, "closed") == 0;
    int64_t fees = bw_fees(b), net = b->gross - fees;
    char want[512];
    snprintf(want, sizeof want,
             "%s|EUR|%" PRId64 "|%" PRId64 "|%s|%" PRId64 "|%" PRId64 "|%" PRId64 "|%" PRId64
             "|%" PRId64 "|%" PRId64,
             b->payee, b->ws, b->ws + b->w, status, b->count, b->gross, b->fees_raw,
             closed ? fees : -1, closed ? net : -1, b->late);
    char *row = llw_text(
        db,
        "SELECT payee || '|' || currency || '|' || extract(epoch FROM window_start)::bigint || "
        "'|' || extract(epoch FROM window_end)::bigint || '|' || status || '|' || count || '|' "
        "|| gross || '|' || fees_raw || '|' || coalesce(fees, -1) || '|' || coalesce(net, -1) "
        "|| '|' || late_count FROM settlement_batches WHERE id = '%s'",
        b->id);
    LLW_ASSERT(row && strcmp(row, want) == 0,
               "batch %s\n   is %s\n want %s\n "
               "(payee|currency|window_start|window_end|status|count|gross|fees_raw|fees|net|"
               "late_count)",
               b->id, row ? row : "(no batch)", want);
    free(row);
    int64_t items =
        llw_count(db, "SELECT count(*) FROM settlement_items WHERE batch_id = '%s'", b->id);
    LLW_ASSERT(items == b->count, "batch %s has %" PRId64 " items, want %" PRId64, b->id, items,
               b->count);
    int64_t transfers = llw_count(db, "SELECT count(*) FROM transfers WHERE ref = '%s'", b->id);
    if (!closed) {
        LLW_ASSERT(transfers == 0, "open batch %s already has %" PRId64 " transfers", b->id,
                   transfers);
        return NULL;
    }
    int64_t fee_t = llw_count(db,
                              "SELECT count(*) FROM transfers t JOIN settlement_batches b ON "
                              "b.fee_transfer = t.id WHERE b.id = '%s' AND t.ref = b.id AND "
                              "t.kind = 'fee' AND t.debit_account = '%s' AND t.credit_account = "
                              "'sys:fees:EUR' AND t.amount = %" PRId64,
                              b->id, b->payee, fees);
    int64_t payout_t = llw_count(db,
                                 "SELECT count(*) FROM transfers t JOIN settlement_batches b ON "
                                 "b.payout_transfer = t.id WHERE b.id = '%s' AND t.ref = b.id "
                                 "AND t.kind = 'payout' AND t.debit_account = '%s' AND "
                                 "t.credit_account = 'sys:payout:EUR' AND t.amount = %" PRId64,
                                 b->id, b->payee, net);
    LLW_ASSERT(fee_t == (fees > 0) && payout_t == (net > 0) && transfers == (fees > 0) + (net > 0),
               "batch %s (fees %" PRId64 ", net %" PRId64 "): %" PRId64
               " matching fee transfer(s), "
               "%" PRId64 " matching payout transfer(s), %" PRId64 " transfers with its ref",
               b->id, fees, net, fee_t, payout_t, transfers);
    char *by = llw_text(db,
                        "SELECT coalesce(closed_by, '') || '|' || coalesce(fence::text, '') || '|' "
                        "|| (closed_at IS NOT NULL) FROM settlement_batches WHERE id = '%s'",
                        b->id);
    LLW_ASSERT(by, "batch %s vanished", b->id);
    char *bar = strchr(by, '|');
    LLW_ASSERT(bar && bar != by && bar[1] != '|' && strcmp(strrchr(by, '|'), "|true") == 0,
               "closed batch %s: closed_by|fence|closed_at set = %s", b->id, by);
    *bar = '\0';
    bool known = closers == NULL;
    for (size_t i = 0; closers && closers[i]; i++)
        known = known || strcmp(closers[i], by) == 0;
    LLW_ASSERT(known, "batch %s closed_by '%s', not one of the expected closers", b->id, by);
    check_closed_event(b);
    return by;
}

/* `ledgerctl settlement list --json` lists exactly these batches with these
 * values; `settlement show ID --json` of each names its items. */
static void check_ctl(const bwant_t *bs, size_t n)
{
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "settlement list --json");
    LLW_ASSERT(rc == 0, "ledgerctl settlement list --json exited %d: %s%s", rc, out, err);
    json_t *j = llt_json(out);
    json_t *list = json_object_get(j, "batches");
    LLW_ASSERT(json_is_array(list) && json_array_size(list) == n,
               "settlement list --json: want {\"batches\": [%zu batches]}: %s", n, out);
    for (size_t k = 0; k < n; k++) {
        const bwant_t *b = &bs[k];
        char *status = llw_text(db, "SELECT status FROM settlement_batches WHERE id = '%s'", b->id);
        LLW_ASSERT(status, "batch %s missing", b->id);
        bool closed = strcmp(status, "closed") == 0;
        const json_t *o = NULL, *x;
        size_t i;
        json_array_foreach(list, i, x)
        {
            if (strcmp(llc_jstr(x, "id"), b->id) == 0)
                o = x;
        }
        LLW_ASSERT(o, "settlement list --json has no batch %s: %s", b->id, out);
        int64_t fees = bw_fees(b);
        LLW_ASSERT(strcmp(llc_jstr(o, "payee"), b->payee) == 0 &&
                       strcmp(llc_jstr(o, "currency"), "EUR") == 0 &&
                       strcmp(llc_jstr(o, "status"), status) == 0 && jint(o, "count") == b->count &&
                       jint(o, "gross") == b->gross && jint(o, "late_count") == b->late &&
                       (!closed || (jint(o, "fees") == fees && jint(o, "net") == b->gross - fees)),
                   "settlement list --json: batch %s (status %s, count %" PRId64 ", gross %" PRId64
                   ", fees %" PRId64 ", net %" PRId64 ", late_count %" PRId64 ") listed as %s",
                   b->id, status, b->count, b->gross, fees, b->gross - fees, b->late,
                   json_dumps(o, JSON_COMPACT));
        free(status);

        char *sout = NULL, *serr = NULL;
        rc = llt_ctl(&sout, &serr, ledger, "settlement show %s --json", b->id);
        LLW_ASSERT(rc == 0, "ledgerctl settlement show %s --json exited %d: %s%s", b->id, rc, sout,
                   serr);
        json_t *s = llt_json(sout);
        LLW_ASSERT(strstr(sout, b->id), "settlement show %s does not name the batch: %s", b->id,
                   sout);
        /* the items: the one top-level array of objects with payment_id */
        size_t found = 0;
        const char *key;
        json_t *v;
        json_object_foreach(s, key, v)
        {
            if (!json_is_array(v) || json_array_size(v) == 0 ||
                !json_is_string(json_object_get(json_array_get(v, 0), "payment_id")))
                continue;
            found = json_array_size(v);
            json_t *it;
            json_array_foreach(v, i, it)
            {
                int64_t c = llw_count(db,
                                      "SELECT count(*) FROM settlement_items WHERE batch_id = "
                                      "'%s' AND payment_id = '%s'",
                                      b->id, llc_jstr(it, "payment_id"));
                LLW_ASSERT(c == 1, "settlement show %s lists payment '%s', not an item of it",
                           b->id, llc_jstr(it, "payment_id"));
            }
        }
        LLW_ASSERT((int64_t)found == b->count,
                   "settlement show %s --json: want its %" PRId64
                   " items (objects with payment_id in a top-level array): %s",
                   b->id, b->count, sout);
        json_decref(s);
        free(sout);
        free(serr);
    }
    json_decref(j);
    free(out);
    free(err);
}

/* `ledgerctl verify` exits 0, and its --json report has the two settlement
 * invariants, holding. */
static void check_verify(void)
{
    llw_assert_verify(ledger);
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "--json verify");
    LLW_ASSERT(rc == 0, "ledgerctl --json verify exited %d: %s%s", rc, out, err);
    json_t *j = llt_json(out);
    static const char *const names[] = {"payment_in_one_batch", "batch_postings_match"};
    for (size_t k = 0; k < 2; k++) {
        bool seen = false;
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(j, "invariants"), i, x)
        {
            if (strcmp(llc_jstr(x, "name"), names[k]) == 0) {
                seen = true;
                LLW_ASSERT(json_is_true(json_object_get(x, "ok")), "verify: %s broken: %s",
                           names[k], out);
            }
        }
        LLW_ASSERT(seen, "ledgerctl verify has no invariant %s: %s", names[k], out);
    }
    json_decref(j);
    free(out);
    free(err);
}

/* ---- window boundaries ----------------------------------------------------- */

static const struct {
    int64_t window_s; /* 0: the default (86400), not set */
    int64_t w;        /* the length it means */
    int back;         /* first window: this many windows before the current one */
} windows[] = {
    {2, 2, 2},
    {60, 60, 2},
    {0, 86400, 1}, /* yesterday (UTC) and today: today's batch must stay open */
};

START_TEST(a_window_boundary_splits_batches)
{
    int64_t w = windows[_i].w;
    int64_t ws = past_window(w, windows[_i].back);
    int64_t edge = (ws + w) * 1000; /* first ms of the next window */
    char payee[96];
    merchant(payee, sizeof payee, "m", 100, 1);
    msg_payment_t first = payment("first", payee, 1000);   /* first ms of window 1 */
    msg_payment_t last = payment("last", payee, 2000);     /* last ms of window 1 */
    msg_payment_t next = payment("next", payee, 4000);     /* first ms of window 2 */
    msg_payment_t next_l = payment("next-l", payee, 8000); /* last ms of window 2 */
    publish1(&first, ws * 1000);
    publish1(&last, edge - 1);
    publish1(&next, edge);
    publish1(&next_l, edge + w * 1000 - 1);
    llw_confirm(m);
    add_all(windows[_i].window_s, 4);

    bwant_t b[2];
    bw_init(&b[0], payee, ws, w);
    bw_init(&b[1], payee, ws + w, w);
    bw_add(&b[0], 1000, fee_model(1000, 100, 1), false);
    bw_add(&b[0], 2000, fee_model(2000, 100, 1), false);
    bw_add(&b[1], 4000, fee_model(4000, 100, 1), false);
    bw_add(&b[1], 8000, fee_model(8000, 100, 1), false);
    check_item(first.payment_id, b[0].id, 1000, fee_model(1000, 100, 1), false);
    check_item(last.payment_id, b[0].id, 2000, fee_model(2000, 100, 1), false);
    check_item(next.payment_id, b[1].id, 4000, fee_model(4000, 100, 1), false);
    check_item(next_l.payment_id, b[1].id, 8000, fee_model(8000, 100, 1), false);
    check_batch(&b[0], "open", NULL);
    check_batch(&b[1], "open", NULL);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM settlement_batches") == 2,
               "window %" PRId64 " s: %" PRId64 " batches, want 2", w,
               llw_count(db, "SELECT count(*) FROM settlement_batches"));

    /* the second window is due only if it has ended (all but the default) */
    bool second_due = (ws + 2 * w) * 1000 < clock_now_ms();
    pid_t c = start("closer", windows[_i].window_s, 0, NULL);
    wait_closed(second_due ? 2 : 1, "the closer to close the ended windows");
    llw_sleep_ms(800); /* four close intervals: a not yet ended window stays open */
    int64_t closed =
        llw_count(db, "SELECT count(*) FROM settlement_batches WHERE status = 'closed'");
    LLW_ASSERT(closed == (second_due ? 2 : 1),
               "window %" PRId64 " s: %" PRId64
               " closed batches, want %d (a window that has not ended must stay open)",
               w, closed, second_due ? 2 : 1);
    stop_ok(c);
    static const char *const closer[] = {"closer", NULL};
    free(check_batch(&b[0], "closed", closer));
    free(check_batch(&b[1], second_due ? "closed" : "open", closer));
    LLW_ASSERT(llw_balance(db, payee) == (second_due ? 0 : b[1].gross),
               "payee balance %" PRId64 " after paying out its closed batches",
               llw_balance(db, payee));
    check_ctl(b, 2);
    check_verify();
}
END_TEST

/* ---- fees ---------------------------------------------------------------- */

typedef struct {
    int bps;
    int64_t fixed;
    int64_t amount[3]; /* 0: none */
    int64_t fee[3];    /* the item fees: round_half_up(amount * bps / 10000) + fixed */
    int64_t fees, net; /* the batch's at close: least(sum of fees, gross), gross - fees */
} fee_row_t;

static const fee_row_t fee_rows[] = {
    {5000, 0, {1}, {1}, 1, 0},                    /* 0.5 -> 1 (half-even would give 0) */
    {5000, 0, {3}, {2}, 2, 1},                    /* 1.5 -> 2 */
    {100, 0, {149}, {1}, 1, 148},                 /* 1.49 -> 1 */
    {100, 0, {150}, {2}, 2, 148},                 /* 1.5 -> 2 */
    {100, 0, {151}, {2}, 2, 149},                 /* 1.51 -> 2 */
    {100, 0, {249}, {2}, 2, 247},                 /* 2.49 -> 2 */
    {100, 0, {250}, {3}, 3, 247},                 /* 2.5 -> 3 (half-even would give 2) */
    {2500, 0, {10}, {3}, 3, 7},                   /* 2.5 -> 3 */
    {1, 0, {4999}, {0}, 0, 4999},                 /* 0.4999 -> 0: no fee transfer */
    {1, 0, {5000}, {1}, 1, 4999},                 /* 0.5 -> 1 */
    {250, 7, {333}, {15}, 15, 318},               /* 8.325 -> 8, + 7 */
    {0, 0, {12345}, {0}, 0, 12345},               /* no fee at all */
    {0, 3, {7}, {3}, 3, 4},                       /* fixed only */
    {10000, 0, {77}, {77}, 77, 0},                /* 100 %: no payout transfer */
    {100, 0, {150, 150, 150}, {2, 2, 2}, 6, 444}, /* per payment: 3 x 2, not round(4.5) */
    {5000, 0, {1, 3, 5}, {1, 2, 3}, 6, 3},        /* 0.5, 1.5, 2.5 each up */
    {9999, 0, {100000000000000LL}, {99990000000000LL}, 99990000000000LL, 10000000000LL},
    {9999, 0, {99999999999999LL}, {99989999999999LL}, 99989999999999LL, 10000000000LL},
};

static const fee_row_t cap_rows[] = {
    {0, 500, {100, 200}, {500, 500}, 300, 0}, /* fixed above the amounts: fees = gross */
    {10000, 0, {40, 60}, {40, 60}, 100, 0},   /* exactly gross */
    {10000, 1, {100}, {101}, 100, 0},         /* one above gross */
    {5000, 1, {1}, {2}, 1, 0},                /* 0.5 -> 1, + 1: capped at 1 */
    {0, 99, {100}, {99}, 99, 1},              /* just below: net 1 */
};

/* Runs a fee table through the worker: one merchant per row, its payments
 * in one past window; adds, closes, checks each item's fee and each
 * batch's fees and net against the row, the transfers, the balances,
 * ledgerctl and verify. */
static void run_fee_table(const fee_row_t *rows, size_t n)
{
    int64_t ws = past_window(W_TEST, 2);
    bwant_t *bs = calloc(n, sizeof *bs);
    msg_payment_t(*pays)[3] = calloc(n, sizeof *pays);
    int64_t items = 0, sum_fees = 0, sum_net = 0;
    for (size_t r = 0; r < n; r++) {
        int64_t gross = 0;
        for (int k = 0; k < 3 && rows[r].amount[k]; k++)
            gross += rows[r].amount[k];
        char tag[32], payee[96];
        snprintf(tag, sizeof tag, "f%zu", r);
        merchant(payee, sizeof payee, tag, rows[r].bps, rows[r].fixed);
        bw_init(&bs[r], payee, ws, W_TEST);
        for (int k = 0; k < 3 && rows[r].amount[k]; k++) {
            char ptag[32];
            snprintf(ptag, sizeof ptag, "f%zu-%d", r, k);
            pays[r][k] = payment(ptag, payee, rows[r].amount[k]);
            publish1(&pays[r][k], ws * 1000 + 1000 * (int64_t)r + k);
            bw_add(&bs[r], rows[r].amount[k], rows[r].fee[k], false);
            items++;
        }
        ck_assert_msg(bw_fees(&bs[r]) == rows[r].fees && gross - rows[r].fees == rows[r].net,
                      "test table row %zu: fees/net do not follow from its fees", r);
        sum_fees += rows[r].fees;
        sum_net += rows[r].net;
    }
    llw_confirm(m);
    add_all(W_TEST, items);
    for (size_t r = 0; r < n; r++)
        for (int k = 0; k < 3 && rows[r].amount[k]; k++)
            check_item(pays[r][k].payment_id, bs[r].id, rows[r].amount[k], rows[r].fee[k], false);

    pid_t c = start("closer", W_TEST, 0, NULL);
    wait_closed((int64_t)n, "the closer to close every batch of the table");
    stop_ok(c);
    for (size_t r = 0; r < n; r++) {
        free(check_batch(&bs[r], "closed", NULL));
        int64_t bal = llw_balance(db, bs[r].payee);
        LLW_ASSERT(bal == 0,
                   "row %zu: payee %s balance %" PRId64 ", want 0 (received its gross, paid "
                   "fees %" PRId64 " + net %" PRId64 ")",
                   r, bs[r].payee, bal, rows[r].fees, rows[r].net);
    }
    LLW_ASSERT(
        llw_balance(db, "sys:fees:EUR") == sum_fees && llw_balance(db, "sys:payout:EUR") == sum_net,
        "sys:fees:EUR %" PRId64 " (want %" PRId64 "), sys:payout:EUR %" PRId64 " (want %" PRId64
        ")",
        llw_balance(db, "sys:fees:EUR"), sum_fees, llw_balance(db, "sys:payout:EUR"), sum_net);
    check_ctl(bs, n);
    check_verify();
    free(pays);
    free(bs);
}

START_TEST(a_fee_rounds_half_up_per_payment)
{
    run_fee_table(fee_rows, sizeof fee_rows / sizeof fee_rows[0]);
}
END_TEST

START_TEST(a_batch_fee_is_capped_at_its_gross)
{
    run_fee_table(cap_rows, sizeof cap_rows / sizeof cap_rows[0]);
    /* verify can fail: a fee moved into the net without its postings */
    llt_exec(db, "UPDATE settlement_batches SET fees = fees - 1, net = net + 1 "
                 "WHERE fees > 0 AND id = (SELECT min(id) FROM settlement_batches)");
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "verify");
    LLW_ASSERT(rc != 0 && strstr(out, "batch_postings_match"),
               "verify should report batch_postings_match broken after a batch's fees and net "
               "were changed without their postings: exit %d: %s%s",
               rc, out, err);
    free(out);
    free(err);
}
END_TEST

/* ---- late payments --------------------------------------------------------- */

START_TEST(a_late_payment_joins_the_next_open_window)
{
    int64_t ws = past_window(W_TEST, 3); /* ws, ws + W and ws + 2W have all ended */
    char payee[96];
    merchant(payee, sizeof payee, "m", 200, 0);
    const int64_t f = 0; /* fee_fixed */
    msg_payment_t p1 = payment("p1", payee, 1000), p2 = payment("p2", payee, 3000);
    publish1(&p1, ws * 1000 + 10);
    publish1(&p2, ws * 1000 + 20);
    llw_confirm(m);
    add_all(W_TEST, 2);

    bwant_t b[3];
    for (int k = 0; k < 3; k++)
        bw_init(&b[k], payee, ws + k * W_TEST, W_TEST);
    bw_add(&b[0], 1000, fee_model(1000, 200, f), false);
    bw_add(&b[0], 3000, fee_model(3000, 200, f), false);

    pid_t c = start("closer", W_TEST, 0, NULL);
    wait_closed(1, "the closer to close the first window");
    static const char *const closer[] = {"closer", NULL};
    free(check_batch(&b[0], "closed", closer));

    /* posted in the closed window: into the next one, created for it */
    msg_payment_t l1 = payment("late1", payee, 5000);
    publish1(&l1, ws * 1000 + 30);
    llw_confirm(m);
    bw_add(&b[1], 5000, fee_model(5000, 200, f), true);
    wait_closed(2, "the late payment's batch (the next window, ended) to close");
    check_item(l1.payment_id, b[1].id, 5000, fee_model(5000, 200, f), true);
    free(check_batch(&b[0], "closed", closer)); /* unchanged: never a closed batch */
    free(check_batch(&b[1], "closed", closer));

    /* its window and the next both closed: the one after */
    msg_payment_t l2 = payment("late2", payee, 7000);
    publish1(&l2, ws * 1000 + 40);
    llw_confirm(m);
    bw_add(&b[2], 7000, fee_model(7000, 200, f), true);
    wait_closed(3, "the second late payment's batch (two windows on) to close");
    stop_ok(c);
    check_item(l2.payment_id, b[2].id, 7000, fee_model(7000, 200, f), true);
    for (int k = 0; k < 3; k++)
        free(check_batch(&b[k], "closed", closer));
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM settlement_batches") == 3 &&
                   llw_count(db, "SELECT count(*) FROM settlement_items") == 4,
               "want 3 batches and 4 items");
    LLW_ASSERT(llw_balance(db, payee) == 0, "payee balance %" PRId64, llw_balance(db, payee));
    check_ctl(b, 3);
    check_verify();
}
END_TEST

/* ---- duplicates ---------------------------------------------------------- */

/* The ledger, not the event, says what was paid: a payment.completed that
 * contradicts its payment transfer (a forged amount) or has none is
 * rejected and parked, joins no batch and leaves no processed row, so the
 * genuine event still settles. */
START_TEST(a_completed_event_that_contradicts_the_ledger_is_refused)
{
    int64_t ws = past_window(W_TEST, 3);
    char payee[96];
    merchant(payee, sizeof payee, "m", 0, 0);
    msg_payment_t p = payment("p", payee, 1000), ghost = payment("ghost", payee, 5000);
    char tid[MSG_ID_MAX + 1];
    post_payment(&p, tid, sizeof tid);
    msg_payment_t forged = p;
    forged.amount = 999999;
    free(publish_completed_tid(&forged, ws * 1000 + 1, tid));
    free(publish_completed_tid(&ghost, ws * 1000 + 2, "424242")); /* never posted */
    llw_confirm(m);
    pid_t a = start("adder", W_TEST, GRACE_OPEN, NULL);
    llw_wait_events(ev, MSG_TYPE_REJECTED, NULL, 2, WAIT_MS); /* both bogus events */
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM settlement_items") == 0,
               "a bogus payment.completed joined a batch");
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM processed WHERE stage = 'settlement'") == 0,
               "a bogus payment.completed left a processed row");
    const char *ids[] = {p.payment_id, ghost.payment_id};
    for (int i = 0; i < 2; i++) {
        json_t *rej = llw_events_find(ev, MSG_TYPE_REJECTED, ids[i], 0);
        const json_t *rj = json_object_get(rej, "json");
        LLW_ASSERT(rej && strcmp(llc_jstr(rj, "reason"), "processing_failed") == 0 &&
                       strcmp(llc_jstr(rj, "queue"), "settlement") == 0 &&
                       strstr(llc_jstr(rj, "detail"), "does not match the ledger"),
                   "want message.rejected {processing_failed, settlement, 'does not match the "
                   "ledger'} for %s: %s",
                   ids[i], rej ? llc_jstr(rej, "body") : "(none)");
    }
    json_t *dead = llw_queue_drain(m, "settlement.dead");
    LLW_ASSERT(json_array_size(dead) == 2, "want both bogus events parked: %zu parked",
               json_array_size(dead));
    json_decref(dead);

    /* the genuine event still settles */
    free(publish_completed_tid(&p, ws * 1000 + 1, tid));
    llw_confirm(m);
    llw_wait_sql(db, 1, WAIT_MS, "the genuine payment's item",
                 "SELECT count(*) FROM settlement_items");
    llw_wait_drained(m, "settlement", WAIT_MS);
    stop_ok(a);
    bwant_t b;
    bw_init(&b, payee, ws, W_TEST);
    bw_add(&b, 1000, 0, false);
    check_item(p.payment_id, b.id, 1000, 0, false);
    check_batch(&b, "open", NULL);
    check_verify();
}
END_TEST

START_TEST(a_duplicate_payment_completed_adds_no_item)
{
    int64_t ws = past_window(W_TEST, 3);
    char payee[96];
    merchant(payee, sizeof payee, "m", 100, 5);
    msg_payment_t p = payment("p", payee, 1000), q = payment("q", payee, 2000);
    char *pbody = publish_completed(&p, ws * 1000 + 1);
    llw_confirm(m);
    pid_t a = start("adder", W_TEST, GRACE_OPEN, NULL);
    llw_wait_sql(db, 1, WAIT_MS, "the first payment's item",
                 "SELECT count(*) FROM settlement_items");
    /* the same bytes again, then q: once q is in, the duplicate was handled */
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_COMPLETED, p.payment_id, MSG_TYPE_COMPLETED,
                    pbody, strlen(pbody));
    publish1(&q, ws * 1000 + 2);
    llw_confirm(m);
    llw_wait_sql(db, 1, WAIT_MS, "the second payment's item",
                 "SELECT count(*) FROM settlement_items WHERE payment_id = '%s'", q.payment_id);
    llw_wait_drained(m, "settlement", WAIT_MS);
    llw_wait_drained(m, "settlement.retry.1s", WAIT_MS);
    stop_ok(a);

    bwant_t b[2];
    bw_init(&b[0], payee, ws, W_TEST);
    bw_init(&b[1], payee, ws + W_TEST, W_TEST);
    bw_add(&b[0], 1000, fee_model(1000, 100, 5), false);
    bw_add(&b[0], 2000, fee_model(2000, 100, 5), false);
    check_item(p.payment_id, b[0].id, 1000, fee_model(1000, 100, 5), false);
    check_batch(&b[0], "open", NULL);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM processed WHERE stage = 'settlement'") == 2,
               "processed rows of stage settlement: want 2");

    /* close, then the duplicate again: it must not become a late item */
    pid_t c = start("closer", W_TEST, 0, NULL);
    wait_closed(1, "the batch to close");
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_COMPLETED, p.payment_id, MSG_TYPE_COMPLETED,
                    pbody, strlen(pbody));
    msg_payment_t r = payment("r", payee, 4000); /* a real late one after it: the marker */
    publish1(&r, ws * 1000 + 3);
    llw_confirm(m);
    bw_add(&b[1], 4000, fee_model(4000, 100, 5), true);
    wait_closed(2, "the marker's late batch to close");

    /* the same payment_id with another amount: an idempotency conflict */
    msg_payment_t p2 = p;
    p2.amount = 1001;
    free(publish_completed_tid(&p2, ws * 1000 + 1, "t-conflict")); /* no posting: it is bogus */
    llw_confirm(m);
    llw_wait_events(ev, MSG_TYPE_REJECTED, NULL, 1, WAIT_MS); /* the conflicting one */
    stop_ok(c);
    json_t *rej = llw_events_find(ev, MSG_TYPE_REJECTED, p.payment_id, 0);
    const json_t *rj = json_object_get(rej, "json");
    LLW_ASSERT(rej && strcmp(llc_jstr(rj, "reason"), "idempotency_conflict") == 0 &&
                   strcmp(llc_jstr(rj, "queue"), "settlement") == 0 &&
                   strstr(llc_jstr(rj, "detail"), "amount"),
               "want message.rejected {reason idempotency_conflict, queue settlement, detail "
               "naming amount} for %s: %s",
               p.payment_id, rej ? llc_jstr(rej, "body") : "(none for this payment)");
    json_t *dead = llw_queue_drain(m, "settlement.dead");
    LLW_ASSERT(json_array_size(dead) == 1 &&
                   strcmp(llc_jstr(json_array_get(dead, 0), "message_id"), p.payment_id) == 0,
               "want the conflicting message parked in settlement.dead: %zu parked",
               json_array_size(dead));
    json_decref(dead);

    check_item(p.payment_id, b[0].id, 1000, fee_model(1000, 100, 5), false);
    check_item(r.payment_id, b[1].id, 4000, fee_model(4000, 100, 5), true);
    free(check_batch(&b[0], "closed", NULL));
    free(check_batch(&b[1], "closed", NULL));
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM settlement_items") == 3,
               "want 3 items (p, q, r): %" PRId64,
               llw_count(db, "SELECT count(*) FROM settlement_items"));
    check_ctl(b, 2);
    check_verify();
    free(pbody);
}
END_TEST

/* ---- racing closers --------------------------------------------------------- */

static const int racers[] = {2, 3};

START_TEST(racing_workers_close_each_batch_once)
{
    int nw = racers[_i];
    int64_t ws = past_window(W_TEST, 2);
    enum { NWIN = 1, PER = 3 }; /* one window: every batch falls due at the same instant */
    static bwant_t b[NPAYEES * NWIN];
    int64_t items = 0, sum_fees = 0, sum_net = 0;
    for (int i = 0; i < NPAYEES; i++) {
        char tag[16], payee[96];
        snprintf(tag, sizeof tag, "m%d", i);
        int bps = 50 * i;
        int64_t fixed = i % 3;
        merchant(payee, sizeof payee, tag, bps, fixed);
        for (int wdx = 0; wdx < NWIN; wdx++) {
            bwant_t *x = &b[i * NWIN + wdx];
            bw_init(x, payee, ws + wdx * W_TEST, W_TEST);
            for (int k = 0; k < PER; k++) {
                int kk = wdx * PER + k;
                int64_t amt = 100 + 37 * i + 11 * kk;
                char ptag[32];
                snprintf(ptag, sizeof ptag, "r%d-%d", i, kk);
                msg_payment_t p = payment(ptag, payee, amt);
                publish1(&p, (ws + wdx * W_TEST) * 1000 + 1000 * k + i);
                bw_add(x, amt, fee_model(amt, bps, fixed), false);
                items++;
            }
            sum_fees += bw_fees(x);
            sum_net += x->gross - bw_fees(x);
        }
    }
    llw_confirm(m);
    add_all(W_TEST, items);

    char names[3][16];
    const char *closers[4] = {NULL, NULL, NULL, NULL};
    pid_t w[3];
    for (int k = 0; k < nw; k++) {
        snprintf(names[k], sizeof names[k], "racer-%d", k);
        closers[k] = names[k];
    }
    /* the batches fall due (grace) only once every racer is up and
     * consuming, so that they all go for the same batches at once */
    int64_t due_ms = clock_now_ms() + 4000;
    int64_t grace = due_ms - (ws + W_TEST) * 1000;
    for (int k = 0; k < nw; k++)
        w[k] = start(names[k], W_TEST, grace, NULL);
    llw_wait_consuming(m, "settlement", (uint32_t)nw, WAIT_MS);
    int64_t up_ms = clock_now_ms();
    LLW_ASSERT(up_ms < due_ms,
               "the %d racers took until %" PRId64 " ms after the batches fell due to consume: "
               "they did not race",
               nw, up_ms - due_ms);
    wait_closed(NPAYEES * NWIN, "the racing workers to close every batch");
    int64_t early = llw_count(db,
                              "SELECT count(*) FROM settlement_batches WHERE closed_at < "
                              "to_timestamp(%" PRId64 " / 1000.0)",
                              due_ms);
    LLW_ASSERT(early == 0, "%" PRId64 " batch(es) closed before window end + grace", early);
    llw_sleep_ms(600); /* a few more close rounds: nothing may close twice */
    for (int k = 0; k < nw; k++)
        stop_ok(w[k]);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind IN ('fee', 'payout')") ==
                   llw_count(db, "SELECT count(*) FROM settlement_batches WHERE fees > 0") +
                       llw_count(db, "SELECT count(*) FROM settlement_batches WHERE net > 0"),
               "%d racers: fee/payout transfers do not match the closed batches", nw);
    for (int i = 0; i < NPAYEES * NWIN; i++)
        free(check_batch(&b[i], "closed", closers));
    for (int i = 0; i < NPAYEES; i++)
        LLW_ASSERT(llw_balance(db, b[i * NWIN].payee) == 0,
                   "%d racers: payee %s balance %" PRId64 ", want 0 (all its batches paid out)", nw,
                   b[i * NWIN].payee, llw_balance(db, b[i * NWIN].payee));
    LLW_ASSERT(
        llw_balance(db, "sys:fees:EUR") == sum_fees && llw_balance(db, "sys:payout:EUR") == sum_net,
        "%d racers: sys:fees:EUR %" PRId64 "/%" PRId64 ", sys:payout:EUR %" PRId64 "/%" PRId64, nw,
        llw_balance(db, "sys:fees:EUR"), sum_fees, llw_balance(db, "sys:payout:EUR"), sum_net);
    LLW_ASSERT(closed_events() == NPAYEES * NWIN, "%d racers: %zu distinct closed events", nw,
               closed_events());
    check_ctl(b, NPAYEES * NWIN);
    check_verify();
}
END_TEST

/* ---- fencing ------------------------------------------------------------- */

static bool stopped_cond(void *arg, char *status, size_t n)
{
    pid_t pid = *(const pid_t *)arg;
    char st = proc_state(pid);
    snprintf(status, n, "process %d state '%c'", (int)pid, st);
    return st == 'T';
}

/* One merchant "m" (fee bps + fixed) with n payments of amount(k) in a
 * window that has ended, all added by the adder: one open batch in *b,
 * its payee in payee[96]. */
static void one_open_batch(bwant_t *b, char *payee, int bps, int64_t fixed, int n,
                           int64_t (*amount)(int k))
{
    int64_t ws = past_window(W_TEST, 2);
    merchant(payee, 96, "m", bps, fixed);
    bw_init(b, payee, ws, W_TEST);
    for (int k = 0; k < n; k++) {
        char tag[16];
        snprintf(tag, sizeof tag, "p%d", k);
        msg_payment_t p = payment(tag, payee, amount(k));
        publish1(&p, ws * 1000 + k);
        bw_add(b, amount(k), fee_model(amount(k), bps, fixed), false);
    }
    llw_confirm(m);
    add_all(W_TEST, n);
}

/* The single batch of the test was closed exactly once: one fee and one
 * payout transfer, one settlement.batch.closed event stored, the payee
 * paid out to 0. */
static void check_closed_once(const char *payee)
{
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind IN ('fee', 'payout')") == 2,
               "want exactly one fee and one payout transfer");
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM outbox WHERE routing_key = '%s'",
                         MSG_TYPE_BATCH_CLOSED) == 1,
               "want one settlement.batch.closed outbox row");
    LLW_ASSERT(llw_balance(db, payee) == 0, "payee balance %" PRId64, llw_balance(db, payee));
}

static int64_t thousands(int k)
{
    return 1000 * (k + 1);
}

static int64_t five_thousand_and(int k)
{
    return 5000 + k;
}

START_TEST(a_paused_closer_is_refused_by_the_fencing_token)
{
    char payee[96];
    bwant_t b;
    one_open_batch(&b, payee, 300, 2, 3, thousands);

    static const char *const pause_env[] = {"LEDGERLINE_PAUSE_AT=closer_locked",
                                            "LEDGERLINE_SETTLEMENT_LOCK_TTL_MS=1000", NULL};
    pid_t a = start("paused", W_TEST, 0, pause_env);
    llw_wait_until(stopped_cond, &a, WAIT_MS,
                   "the first closer to stop itself at closer_locked (test builds only)");
    check_batch(&b, "open", NULL);

    static const char *const ttl_env[] = {"LEDGERLINE_SETTLEMENT_LOCK_TTL_MS=1000", NULL};
    pid_t c = start("second", W_TEST, 0, ttl_env);
    wait_closed(1, "the second closer to close the batch once the paused one's lease expired");
    static const char *const second[] = {"second", NULL};
    free(check_batch(&b, "closed", second));
    char *fence = llw_text(db, "SELECT fence FROM settlement_batches WHERE id = '%s'", b.id);
    LLW_ASSERT(proc_state(a) == 'T', "the paused closer runs again before SIGCONT");

    llw_signal(a, SIGCONT);
    llw_wait_logged(a, "fencing", WAIT_MS,
                    "the woken closer to log that its close was refused by the fencing check");
    llw_sleep_ms(600);
    stop_ok(a);
    stop_ok(c);
    free(check_batch(&b, "closed", second));
    char *fence2 = llw_text(db, "SELECT fence FROM settlement_batches WHERE id = '%s'", b.id);
    LLW_ASSERT(fence && fence2 && strcmp(fence, fence2) == 0,
               "the batch's fence changed from %s to %s after the paused closer woke", fence,
               fence2);
    check_closed_once(payee);
    free(fence);
    free(fence2);
    check_ctl(&b, 1);
    check_verify();
}
END_TEST

/* A closer whose lease ran out while nobody else took over passes the
 * fencing check (no newer token exists), so the lease itself is checked:
 * it is extended just before COMMIT only if still held; here it is not, so
 * the close is rolled back, and the next round locks and closes it once. */
START_TEST(a_closer_whose_lease_ran_out_rolls_back_and_retries)
{
    char payee[96];
    bwant_t b;
    one_open_batch(&b, payee, 120, 0, 2, five_thousand_and);

    static const char *const env[] = {"LEDGERLINE_PAUSE_AT=closer_locked",
                                      "LEDGERLINE_SETTLEMENT_LOCK_TTL_MS=3000", NULL};
    pid_t a = start("lapsed", W_TEST, 0, env);
    llw_wait_until(stopped_cond, &a, WAIT_MS,
                   "the closer to stop itself at closer_locked (test builds only)");
    llw_sleep_ms(3500); /* its lease (3 s) runs out; no other closer runs */
    llw_signal(a, SIGCONT);
    llw_wait_logged(a, "abandoned before COMMIT", WAIT_MS,
                    "the closer to roll back the close because its lease ran out");
    LLW_ASSERT(llw_log_count(a, "fencing") == 0, "no newer token existed: fencing must not refuse");
    check_batch(&b, "open", NULL);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind IN ('fee', 'payout')") == 0,
               "the abandoned close must have posted nothing");

    /* next round: it locks again (and pauses again); resumed at once */
    llw_wait_until(stopped_cond, &a, WAIT_MS, "the closer's next round to reach closer_locked");
    llw_signal(a, SIGCONT);
    wait_closed(1, "the next round to close the batch");
    stop_ok(a);
    static const char *const closers[] = {"lapsed", NULL};
    free(check_batch(&b, "closed", closers));
    check_closed_once(payee);
    check_ctl(&b, 1);
    check_verify();
}
END_TEST

/* A close the ledger refuses (here: the payee is frozen) holds its batch:
 * it stays open, says why, and is not tried again before
 * settlement.close_retry_ms, so it can never starve the others; the other
 * batch closes. Once unfrozen and due again, the next try closes it. */
START_TEST(a_refused_close_holds_the_batch_and_the_others_close)
{
    int64_t ws = past_window(W_TEST, 2);
    char frozen[96], fine[96];
    merchant(frozen, sizeof frozen, "frozen", 100, 0);
    merchant(fine, sizeof fine, "fine", 100, 0);
    bwant_t b[2];
    bw_init(&b[0], frozen, ws, W_TEST);
    bw_init(&b[1], fine, ws, W_TEST);
    for (int k = 0; k < 2; k++) {
        msg_payment_t p = payment(k ? "q1" : "q0", b[k].payee, 10000);
        publish1(&p, ws * 1000 + k);
        bw_add(&b[k], 10000, fee_model(10000, 100, 0), false);
    }
    llw_confirm(m);
    add_all(W_TEST, 2);
    llw_ctl(ledger, "account freeze %s", frozen);

    static const char *const env[] = {"LEDGERLINE_SETTLEMENT_CLOSE_RETRY_MS=60000", NULL};
    pid_t a = start("closer", W_TEST, 0, env);
    wait_closed(1, "the batch of the payee that is not frozen to close");
    llw_wait_logged(a, "held", WAIT_MS, "the closer to log that it holds the refused batch");
    llw_sleep_ms(1500); /* > 7 close rounds of 200 ms */
    LLW_ASSERT(llw_log_count(a, "held: its close was refused") == 1,
               "a held batch was tried again before settlement.close_retry_ms (%zu holds logged)",
               llw_log_count(a, "held: its close was refused"));
    stop_ok(a);
    static const char *const closers[] = {"closer", NULL};
    check_batch(&b[0], "open", NULL);
    free(check_batch(&b[1], "closed", closers));
    char *why = llw_text(db,
                         "SELECT coalesce(close_error, '') || '|' || (close_retry_at > now() + "
                         "interval '50 s') FROM settlement_batches WHERE id = '%s'",
                         b[0].id);
    LLW_ASSERT(why && strstr(why, "account_frozen") && strstr(why, "|t"),
               "the held batch should record account_frozen and a retry ~60 s ahead: %s",
               why ? why : "(none)");
    free(why);
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, ledger, "settlement show %s", b[0].id);
    LLW_ASSERT(rc == 0 && strstr(out, "held") && strstr(out, "account_frozen"),
               "settlement show of a held batch should say held and why (exit %d): %s%s", rc, out,
               err);
    free(out);
    free(err);
    rc = llt_ctl(&out, &err, ledger, "settlement list --json");
    json_t *j = llt_json(out);
    bool listed_held = false;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(j, "batches"), i, x)
    {
        if (strcmp(llc_jstr(x, "id"), b[0].id) == 0)
            listed_held = json_is_true(json_object_get(x, "held")) &&
                          strstr(llc_jstr(x, "close_error"), "account_frozen");
    }
    LLW_ASSERT(rc == 0 && listed_held, "settlement list --json should mark the batch held: %s",
               out);
    json_decref(j);
    free(out);
    free(err);

    /* fixed, and due again (the retry time moved to now rather than waited) */
    llw_ctl(ledger, "account unfreeze %s", frozen);
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE settlement_batches SET close_retry_at = now() WHERE id = '%s'", b[0].id);
    llt_exec(db, sql);
    pid_t c = start("closer", W_TEST, 0, env);
    wait_closed(2, "the held batch to close once its payee is unfrozen");
    stop_ok(c);
    free(check_batch(&b[0], "closed", closers));
    free(check_batch(&b[1], "closed", closers));
    LLW_ASSERT(llw_balance(db, frozen) == 0 && llw_balance(db, fine) == 0,
               "payees should be paid out to 0: %" PRId64 ", %" PRId64, llw_balance(db, frozen),
               llw_balance(db, fine));
    check_ctl(b, 2);
    check_verify();
}
END_TEST

/* ---- kill -9 inside the close ---------------------------------------------- */

static const struct {
    const char *point;
    bool committed; /* the crash comes after COMMIT: one batch closed by the crasher */
} close_points[] = {
    {"before_close_commit", false},
    {"after_close_commit", true},
};

START_TEST(a_kill_inside_the_close_closes_once)
{
    const char *point = close_points[_i].point;
    bool committed = close_points[_i].committed;
    int64_t ws = past_window(W_TEST, 2);
    bwant_t b[2];
    for (int i = 0; i < 2; i++) {
        char tag[16], payee[96];
        snprintf(tag, sizeof tag, "m%d", i);
        merchant(payee, sizeof payee, tag, 150, 1);
        bw_init(&b[i], payee, ws, W_TEST);
        for (int k = 0; k < 2; k++) {
            snprintf(tag, sizeof tag, "p%d-%d", i, k);
            int64_t amt = 700 + 300 * i + 50 * k;
            msg_payment_t p = payment(tag, payee, amt);
            publish1(&p, ws * 1000 + 2 * i + k);
            bw_add(&b[i], amt, fee_model(amt, 150, 1), false);
        }
    }
    llw_confirm(m);
    add_all(W_TEST, 4);

    char at[64];
    snprintf(at, sizeof at, "LEDGERLINE_CRASH_AT=%s", point);
    const char *crash_env[] = {at, "LEDGERLINE_SETTLEMENT_LOCK_TTL_MS=1000", NULL};
    pid_t c = start("crasher", W_TEST, 0, crash_env);
    llw_expect_exit(c);
    int st = llw_wait_exit(c, WAIT_MS);
    LLW_ASSERT(st == -SIGKILL,
               "LEDGERLINE_CRASH_AT=%s: the closer should kill itself with SIGKILL: %s (a build "
               "without -DLEDGERLINE_CRASH_POINTS=ON never crashes)",
               point, llw_status_str(st));
    int64_t closed =
        llw_count(db, "SELECT count(*) FROM settlement_batches WHERE status = 'closed'");
    int64_t posted =
        llw_count(db, "SELECT count(*) FROM transfers WHERE kind IN ('fee', 'payout')");
    int64_t unsent = llw_count(db, "SELECT count(*) FROM outbox_pending");
    LLW_ASSERT(closed == committed && posted == 2 * committed && unsent == committed,
               "%s: at the crash %" PRId64 " closed batch(es), %" PRId64
               " fee/payout transfers, %" PRId64 " unsent outbox rows; want %d, %d, %d",
               point, closed, posted, unsent, committed, 2 * committed, committed);
    LLW_ASSERT(closed_events() == 0, "%s: a settlement.batch.closed was published before the crash",
               point);
    char *crashed = committed
                        ? llw_text(db, "SELECT id FROM settlement_batches WHERE status = 'closed'")
                        : NULL;

    static const char *const rec_env[] = {"LEDGERLINE_SETTLEMENT_LOCK_TTL_MS=1000",
                                          "LEDGERLINE_WORKER_OUTBOX_SWEEP_INTERVAL_MS=200",
                                          "LEDGERLINE_WORKER_OUTBOX_SWEEP_AGE_MS=500", NULL};
    pid_t r = start("recoverer", W_TEST, 0, rec_env);
    wait_closed(2, "the restarted worker to close every batch and publish every event");
    stop_ok(r);
    for (int i = 0; i < 2; i++) {
        bool by_crasher = crashed && strcmp(crashed, b[i].id) == 0;
        const char *const who[] = {by_crasher ? "crasher" : "recoverer", NULL};
        free(check_batch(&b[i], "closed", who));
        LLW_ASSERT(llw_balance(db, b[i].payee) == 0, "%s: payee %s balance %" PRId64, point,
                   b[i].payee, llw_balance(db, b[i].payee));
    }
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM transfers WHERE kind IN ('fee', 'payout')") == 4,
               "%s: want 4 fee/payout transfers", point);
    LLW_ASSERT(llw_count(db, "SELECT count(*) FROM outbox WHERE routing_key = '%s'",
                         MSG_TYPE_BATCH_CLOSED) == 2,
               "%s: want one settlement.batch.closed outbox row per batch", point);
    free(crashed);
    check_ctl(b, 2);
    check_verify();
}
END_TEST

/* A test case of the suite: per-test fixture, the suite's timeout. */
static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    suite_add_tcase(s, tc);
    return tc;
}

/* Test cases by subject, so that one can run alone (CK_RUN_CASE=late, as
 * ops/mutate does for a mutant that names its `case`). */
int main(void)
{
    Suite *s = suite_create("settlement");
    TCase *tc = tcase(s, "windows");
    tcase_add_loop_test(tc, a_window_boundary_splits_batches, 0,
                        (int)(sizeof windows / sizeof windows[0]));
    tcase_add_test(tc, a_fee_rounds_half_up_per_payment);
    tcase_add_test(tc, a_batch_fee_is_capped_at_its_gross);
    tc = tcase(s, "late");
    tcase_add_test(tc, a_late_payment_joins_the_next_open_window);
    tcase_add_test(tc, a_duplicate_payment_completed_adds_no_item);
    tcase_add_test(tc, a_completed_event_that_contradicts_the_ledger_is_refused);
    tc = tcase(s, "closers");
    tcase_add_loop_test(tc, racing_workers_close_each_batch_once, 0,
                        (int)(sizeof racers / sizeof racers[0]));
    tcase_add_test(tc, a_paused_closer_is_refused_by_the_fencing_token);
    tcase_add_test(tc, a_closer_whose_lease_ran_out_rolls_back_and_retries);
    tcase_add_test(tc, a_refused_close_holds_the_batch_and_the_others_close);
    tc = tcase(s, "crash");
    tcase_add_loop_test(tc, a_kill_inside_the_close_closes_once, 0,
                        (int)(sizeof close_points / sizeof close_points[0]));
    return llt_run_suite(s);
}
