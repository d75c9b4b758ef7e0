/*
 * test_status.c - `ledgerctl status` against the real stack: exit 0 on a
 * clean stack; exit 1 naming the cause, with a fix, when PostgreSQL, Redis
 * or RabbitMQ is stopped (each stopped and started again for real), when
 * the management API is unreachable, when dead letters exist, when a work
 * queue holds messages nobody consumes, when the outbox has a backlog older
 * than the threshold, when a settlement batch is held or overdue, and when
 * a registered worker is not ready; --json reports the queue depths,
 * dead-letter reasons, outbox backlog, batches and workers the test
 * arranged; a real risk-worker shows in the registry and in RabbitMQ's
 * consumer list; --queue keeps printing one number without the management
 * API; --watch repeats until SIGINT.
 *
 * Each test has a fresh ledger, the topology's queues empty and no worker
 * registry records (tests run one at a time on the stack).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "ll_amqp.h"
#include "ll_http.h"
#include "ll_proc.h"
#include "ll_redis.h"
#include "ll_stack.h"
#include "ll_test.h"
#include "ll_wait.h"
#include "topo.h"

#define RISK_WORKER LL_BIN_DIR "/risk-worker"

static char *ledger;

/* ---- fixture ----------------------------------------------------------------- */

static const char *key_prefix(void)
{
    const char *p = getenv("LEDGERLINE_REDIS_KEY_PREFIX");
    return p ? p : "ll:";
}

/* Deletes every worker registry record (`<prefix>workers:*`). */
static void registry_clear(void)
{
    llr_stack_t st = {0};
    llr_stack(&st);
    redisContext *rc = llr_stack_raw(&st);
    char pattern[128];
    snprintf(pattern, sizeof pattern, "%sworkers:*", key_prefix());
    redisReply *r = redisCommand(rc, "KEYS %s", pattern);
    ck_assert_msg(r && r->type == REDIS_REPLY_ARRAY, "KEYS %s failed", pattern);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *d = redisCommand(rc, "DEL %s", r->element[i]->str);
        freeReplyObject(d);
    }
    freeReplyObject(r);
    redisFree(rc);
    free(st.password);
}

/* A registry record for `instance` (expires in 60 s), as a worker writes
 * it (docs/operations.md#worker-registry). */
static void registry_put(const char *instance, const char *ledger_id, bool ready, const char *why)
{
    llr_stack_t st = {0};
    llr_stack(&st);
    redisContext *rc = llr_stack_raw(&st);
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:b, s:s, s:b, s:{s:b, s:b, s:b}, s:i, s:i, "
        "s:i, s:f, s:f, s:s, s:s, s:s, s:s}",
        "instance", instance, "worker", "risk-worker", "stage", "risk", "version", "test", "pid",
        4242, "host", "testhost", "ledger", ledger_id, "http", "", "ready", ready, "why", why,
        "draining", false, "up", "postgres", ready, "rabbitmq", true, "redis", true, "consumed", 10,
        "acked", 10, "rejected", 0, "rate", 12.5, "p99_ms", 42.0, "last_error",
        ready ? "" : "PostgreSQL unavailable", "last_error_at", "", "started_at",
        "2026-01-01T00:00:00Z", "updated_at", "2026-01-01T00:00:00Z");
    char *val = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    redisReply *r = redisCommand(rc, "SET %sworkers:%s %s PX 60000", key_prefix(), instance, val);
    ck_assert_msg(r && r->type == REDIS_REPLY_STATUS, "SET registry record failed");
    freeReplyObject(r);
    free(val);
    redisFree(rc);
    free(st.password);
}

static void purge_topology(void)
{
    topo_t *t;
    char err[256];
    ck_assert_int_eq(topo_load_builtin(&t, err, sizeof err), LL_OK);
    mq_t *m = llt_mq();
    for (size_t i = 0; i < t->nq; i++) {
        uint32_t n;
        ck_assert_msg(mq_purge(m, t->q[i].name, &n) == LL_OK, "purge %s: %s", t->q[i].name,
                      mq_errstr(m));
    }
    mq_free(m);
    topo_free(t);
}

static void setup(void)
{
    llw_stack_restore(); /* a test that failed with a server stopped left it stopped */
    ledger = llt_ledger();
    char *out, *err;
    int rc = llt_ctl(&out, &err, NULL, "topology apply");
    ck_assert_msg(rc == 0, "topology apply: %s%s", out, err);
    free(out);
    free(err);
    purge_topology();
    registry_clear();
}

static void teardown(void)
{
    llw_kill_all();
    llw_stack_restore();
    purge_topology();
    registry_clear();
    llt_dropdb(ledger);
    free(ledger);
}

/* ---- running status ------------------------------------------------------------ */

typedef struct run {
    int rc;
    char *out, *err;
    json_t *j; /* --json only */
} run_t;

/* `ledgerctl status ARGS` on the test's ledger, with the environment
 * assignments `env` ("" for none). */
static run_t status(const char *env, const char *args)
{
    run_t r = {0};
    char errpath[] = "/tmp/llt_status_err_XXXXXX";
    int fd = mkstemp(errpath);
    ck_assert(fd >= 0);
    close(fd);
    /* llt_run() adds 2>&1 to the whole command: stderr goes to its file inside */
    r.rc = llt_run(&r.out, "(LEDGERLINE_POSTGRES_DBNAME=%s %s %s status %s 2>%s)", ledger, env,
                   LEDGERCTL_BIN, args, errpath);
    r.err = llw_slurp(errpath);
    unlink(errpath);
    if (strstr(args, "--json") && !strstr(args, "--watch"))
        r.j = llt_json(r.out);
    return r;
}

static void run_free(run_t *r)
{
    free(r->out);
    free(r->err);
    json_decref(r->j);
}

static json_t *find_by(json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *v = json_string_value(json_object_get(o, key));
        if (v && strcmp(v, value) == 0)
            return o;
    }
    return NULL;
}

/* The problem of kind `what`, or NULL. */
static json_t *problem(const run_t *r, const char *what)
{
    return find_by(json_object_get(r->j, "problems"), "what", what);
}

static long long jint(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* Every stderr problem line is followed by its fix. */
static void check_fixes(const run_t *r)
{
    size_t n = 0;
    for (const char *p = strstr(r->err, "ledgerctl: "); p; p = strstr(p + 1, "ledgerctl: ")) {
        const char *nl = strchr(p, '\n');
        ck_assert_msg(nl && strncmp(nl + 1, "  fix: ", 7) == 0, "a problem without its fix: %s",
                      r->err);
        n++;
    }
    ck_assert_msg(n > 0, "exit %d but nothing on stderr", r->rc);
}

/* n payment.requested messages into the risk queue (nothing consumes them). */
static void publish_requests(mq_t *m, int n)
{
    for (int i = 0; i < n; i++) {
        char id[32], body[64];
        snprintf(id, sizeof id, "st-%d", i);
        snprintf(body, sizeof body, "{\"payment_id\":\"%s\"}", id);
        llw_publish_raw(m, "ledgerline.commands", "payment.requested", id, "payment.requested",
                        body, strlen(body));
    }
    llw_confirm(m);
}

/* A copy parked the way a worker parks it: ledgerline.dead, routing key the
 * work queue, header x-ledgerline-reason. */
static void park(mq_t *m, const char *work, const char *reason)
{
    mq_header_t h[] = {{.key = "x-ledgerline-reason", .str = reason},
                       {.key = "x-ledgerline-detail", .str = "arranged by test_status"}};
    mq_props_t p = {.headers = h, .nheaders = 2, .timestamp_s = clock_now_ms() / 1000 - 90};
    const char *body = "{\"payment_id\":\"st-dead\"}";
    ck_assert_int_eq(mq_publish(m, "ledgerline.dead", work, body, strlen(body), &p, true), LL_OK);
    llw_confirm(m);
}

/* ---- a clean stack -------------------------------------------------------------- */

START_TEST(status_clean_stack_exits_0)
{
    run_t r = status("", "");
    ck_assert_msg(r.rc == 0, "status on a clean stack exited %d:\n%s%s", r.rc, r.out, r.err);
    ck_assert_msg(strstr(r.out, "all clear") && r.err[0] == '\0', "%s%s", r.out, r.err);
    run_free(&r);

    r = status("", "--json");
    ck_assert_msg(r.rc == 0, "%s%s", r.out, r.err);
    ck_assert(json_is_true(json_object_get(r.j, "ok")));
    ck_assert_int_eq((int)json_array_size(json_object_get(r.j, "problems")), 0);
    json_t *sv = json_object_get(r.j, "servers");
    static const char *const servers[] = {"postgres", "redis", "rabbitmq", "management"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(json_is_true(json_object_get(json_object_get(sv, servers[i]), "up")),
                      "%s not up: %s", servers[i], r.out);
    topo_t *t;
    char err[256];
    ck_assert_int_eq(topo_load_builtin(&t, err, sizeof err), LL_OK);
    json_t *qs = json_object_get(r.j, "queues");
    ck_assert_int_eq((int)json_array_size(qs), (int)t->nq);
    for (size_t i = 0; i < t->nq; i++) {
        json_t *q = find_by(qs, "name", t->q[i].name);
        ck_assert_msg(q && jint(q, "ready") == 0, "queue %s: %s", t->q[i].name, r.out);
    }
    topo_free(t);
    ck_assert_int_eq(jint(json_object_get(r.j, "outbox"), "pending"), 0);
    ck_assert_int_eq(jint(json_object_get(r.j, "settlement"), "held_count"), 0);
    ck_assert_int_eq((int)json_array_size(json_object_get(r.j, "workers")), 0);
    run_free(&r);
}
END_TEST

/* ---- what needs a human ------------------------------------------------------------ */

START_TEST(status_names_dead_letters_by_reason)
{
    mq_t *m = llt_mq();
    park(m, "payments", "invalid_json");
    park(m, "payments", "invalid_json");
    park(m, "payments", "amount_invalid");
    /* one dead-lettered by the broker: rejected from the work queue */
    const char *body = "{\"payment_id\":\"st-broker\"}";
    llw_publish_raw(m, "ledgerline.events", "payment.approved", "st-broker", "payment.approved",
                    body, strlen(body));
    llw_confirm(m);
    mq_delivery_t d;
    bool empty = true;
    for (int i = 0; i < 100 && empty; i++) {
        ck_assert_int_eq(mq_get(m, "payments", &d, &empty), LL_OK);
        if (empty)
            llw_sleep_ms(50);
    }
    ck_assert_msg(!empty, "the probe never reached the payments queue");
    ck_assert_int_eq(mq_reject(m, d.tag, false), LL_OK);
    mq_delivery_clear(&d);
    for (int i = 0; i < 100 && llw_queue_depth(m, "payments.dead") < 4; i++)
        llw_sleep_ms(50);

    run_t r = status("", "--json");
    ck_assert_msg(r.rc == 1, "dead letters, but exit %d:\n%s%s", r.rc, r.out, r.err);
    json_t *dl = find_by(json_object_get(r.j, "dead_letters"), "queue", "payments.dead");
    ck_assert_msg(dl != NULL, "%s", r.out);
    ck_assert_int_eq(jint(dl, "depth"), 4);
    ck_assert_int_eq(jint(dl, "scanned"), 4);
    ck_assert(json_is_false(json_object_get(dl, "truncated")));
    json_t *reasons = json_object_get(dl, "reasons");
    ck_assert_msg(jint(reasons, "invalid_json") == 2 && jint(reasons, "amount_invalid") == 1 &&
                      json_object_size(reasons) == 3,
                  "reasons: %s", r.out);
    const char *k;
    json_t *v;
    long long sum = 0;
    json_object_foreach(reasons, k, v) sum += json_integer_value(v);
    ck_assert_int_eq(sum, 4);
    ck_assert_int_eq(
        jint(find_by(json_object_get(r.j, "dead_letters"), "queue", "risk.dead"), "depth"), 0);
    json_t *pq = find_by(json_object_get(r.j, "queues"), "name", "payments.dead");
    ck_assert_msg(json_number_value(json_object_get(pq, "oldest_age_s")) >= 80,
                  "the oldest letter was published 90 s ago: %s", r.out);
    json_t *p = problem(&r, "dead_letters");
    ck_assert_msg(p && strstr(json_string_value(json_object_get(p, "problem")), "payments.dead"),
                  "%s", r.out);
    ck_assert_msg(strstr(r.err, "4 dead letters in payments.dead") &&
                      strstr(r.err, "invalid_json 2") &&
                      strstr(r.err, "ledgerctl dlq list payments.dead"),
                  "%s", r.err);
    check_fixes(&r);
    /* the scan took nothing */
    ck_assert_int_eq(llw_queue_depth(m, "payments.dead"), 4);
    run_free(&r);

    r = status("", "");
    ck_assert_int_eq(r.rc, 1);
    ck_assert_msg(strstr(r.out, "invalid_json 2") && strstr(r.out, "amount_invalid 1"), "%s",
                  r.out);
    run_free(&r);
    mq_free(m);
}
END_TEST

START_TEST(status_names_a_work_queue_without_consumers)
{
    mq_t *m = llt_mq();
    publish_requests(m, 3);
    run_t r = status("", "--json");
    ck_assert_msg(r.rc == 1, "exit %d:\n%s%s", r.rc, r.out, r.err);
    json_t *q = find_by(json_object_get(r.j, "queues"), "name", "risk");
    ck_assert_msg(jint(q, "ready") == 3 && jint(q, "consumers") == 0, "%s", r.out);
    ck_assert(json_is_null(json_object_get(q, "oldest_age_s"))); /* quorum: n/a, said why */
    ck_assert_msg(strstr(json_string_value(json_object_get(q, "oldest_age_note")), "quorum"), "%s",
                  r.out);
    ck_assert_msg(problem(&r, "no_consumers") && strstr(r.err, "work queue risk holds 3"), "%s",
                  r.err);
    check_fixes(&r);
    run_free(&r);

    /* --queue: one number, for scripts; no management API needed */
    r = status("", "--queue risk");
    ck_assert_msg(r.rc == 0 && strcmp(r.out, "3\n") == 0, "exit %d: '%s' %s", r.rc, r.out, r.err);
    run_free(&r);
    char env[128];
    snprintf(env, sizeof env, "LEDGERLINE_AMQP_MANAGEMENT_URL=http://127.0.0.1:%d",
             llh_free_port());
    r = status(env, "--queue risk");
    ck_assert_msg(r.rc == 0 && strcmp(r.out, "3\n") == 0,
                  "without the management API: exit %d: "
                  "'%s' %s",
                  r.rc, r.out, r.err);
    run_free(&r);
    r = status("", "--queue nosuchqueue");
    ck_assert_int_eq(r.rc, 2);
    run_free(&r);
    mq_free(m);
}
END_TEST

START_TEST(status_reports_the_outbox_backlog_against_its_threshold)
{
    db_t *db = llt_db(ledger);
    llt_exec(db,
             "INSERT INTO outbox (stage, payment_id, event_id, exchange, routing_key, body, "
             "created_at) VALUES "
             "('payment', 'st-p1', 'st-e1', 'ledgerline.events', 'payment.completed', '{}', "
             " now() - interval '120 seconds'), "
             "('payment', 'st-p2', 'st-e2', 'ledgerline.events', 'payment.completed', '{}', "
             " now() - interval '30 seconds'), "
             "('risk', 'st-p3', 'st-e3', 'ledgerline.events', 'payment.approved', '{}', now())");
    llt_exec(db, "INSERT INTO outbox_pending (id, stage, created_at) "
                 "SELECT id, stage, created_at FROM outbox");
    db_free(db);

    run_t r = status("", "--json");
    ck_assert_msg(r.rc == 1, "exit %d:\n%s%s", r.rc, r.out, r.err);
    json_t *ob = json_object_get(r.j, "outbox");
    ck_assert_int_eq(jint(ob, "pending"), 3);
    json_t *pay = find_by(json_object_get(ob, "stages"), "stage", "payment");
    json_t *risk = find_by(json_object_get(ob, "stages"), "stage", "risk");
    ck_assert_msg(pay && jint(pay, "pending") == 2 &&
                      json_number_value(json_object_get(pay, "oldest_age_s")) >= 119,
                  "%s", r.out);
    ck_assert_msg(risk && jint(risk, "pending") == 1 &&
                      json_number_value(json_object_get(risk, "oldest_age_s")) < 60,
                  "%s", r.out);
    json_t *p = problem(&r, "outbox_backlog");
    ck_assert_msg(p && strstr(json_string_value(json_object_get(p, "problem")), "stage payment"),
                  "%s", r.out);
    ck_assert_msg(json_array_size(json_object_get(r.j, "problems")) == 1,
                  "only the payment backlog is past 60 s: %s", r.err);
    check_fixes(&r);
    run_free(&r);

    r = status("", "--outbox-age 600 --json");
    ck_assert_msg(r.rc == 0 && !problem(&r, "outbox_backlog"), "below --outbox-age: %s%s", r.out,
                  r.err);
    run_free(&r);
}
END_TEST

/* The bookkeeping's partitions: a fresh ledger reaches retention.ahead_s
 * ahead, kept since the beginning; one whose newest partition ends within
 * the hour (no worker created more) needs a human, with the fix. */
START_TEST(status_names_partitions_running_out)
{
    run_t r = status("", "--json");
    ck_assert_msg(r.rc == 0, "exit %d:\n%s%s", r.rc, r.out, r.err);
    json_t *rt = json_object_get(r.j, "retention");
    ck_assert_msg(json_number_value(json_object_get(rt, "partitions_ahead_s")) > 2 * 86400 &&
                      strcmp(json_string_value(json_object_get(rt, "kept_since")), "-infinity") ==
                          0 &&
                      json_number_value(json_object_get(rt, "overdue_s")) == 0,
                  "%s", r.out);
    run_free(&r);
    r = status("", "");
    ck_assert_msg(strstr(r.out, "BOOKKEEPING  window 7d00h, kept since the beginning"), "%s",
                  r.out);
    run_free(&r);

    /* the partitions of later times gone, the one of now ending in 10 minutes */
    db_t *db = llt_db(ledger);
    llt_exec(db, "DO $$ DECLARE r record; t text; lo0 timestamptz; BEGIN "
                 "SELECT b.lo INTO lo0 FROM retention_bounds('processed') b "
                 "WHERE now() >= b.lo AND now() < b.hi; "
                 "FOR r IN SELECT b.part FROM retention_bounds('processed') b WHERE b.hi > now() "
                 "UNION ALL SELECT b.part FROM retention_bounds('outbox') b WHERE b.hi > now() "
                 "LOOP EXECUTE format('DROP TABLE %I', r.part); END LOOP; "
                 "FOREACH t IN ARRAY ARRAY['processed', 'outbox'] LOOP "
                 "EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', "
                 "t || '_short', t, lo0, now() + interval '10 minutes'); END LOOP; END $$");
    db_free(db);
    r = status("", "--json");
    json_t *p = problem(&r, "partitions_running_out");
    ck_assert_msg(r.rc == 1 && p, "exit %d: %s", r.rc, r.out);
    ck_assert_msg(strstr(json_string_value(json_object_get(p, "fix")), "ledgerctl migrate"), "%s",
                  r.out);
    check_fixes(&r);
    run_free(&r);
}
END_TEST

START_TEST(status_names_held_and_overdue_settlement_batches)
{
    db_t *db = llt_db(ledger);
    llt_exec(db, "INSERT INTO accounts (id, currency, kind) VALUES ('st-shop', 'EUR', 'merchant')");
    llt_exec(db,
             "INSERT INTO settlement_batches (id, payee, currency, window_start, window_end, "
             "status, close_error, close_retry_at) VALUES "
             "('st-b-held', 'st-shop', 'EUR', now() - interval '3 h', now() - interval '2 h', "
             " 'open', 'insufficient_funds', now() + interval '1 h'), "
             "('st-b-overdue', 'st-shop', 'EUR', now() - interval '2 h', now() - interval '1 h', "
             " 'open', NULL, NULL), "
             "('st-b-in-grace', 'st-shop', 'EUR', now() - interval '1 h', "
             " now() - interval '30 s', 'open', NULL, NULL), "
             "('st-b-open', 'st-shop', 'EUR', now() - interval '30 s', now() + interval '1 h', "
             " 'open', NULL, NULL), "
             "('st-b-closed', 'st-shop', 'EUR', now() - interval '5 h', now() - interval '4 h', "
             " 'closed', NULL, NULL)");
    db_free(db);

    run_t r = status("", "--json");
    ck_assert_msg(r.rc == 1, "exit %d:\n%s%s", r.rc, r.out, r.err);
    json_t *st = json_object_get(r.j, "settlement");
    ck_assert_msg(jint(st, "held_count") == 1 && jint(st, "overdue_count") == 1, "%s", r.out);
    json_t *held = json_array_get(json_object_get(st, "held"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(held, "id")), "st-b-held");
    ck_assert_str_eq(json_string_value(json_object_get(held, "close_error")), "insufficient_funds");
    json_t *over = json_array_get(json_object_get(st, "overdue"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(over, "id")), "st-b-overdue");
    ck_assert_msg(problem(&r, "batch_held") && problem(&r, "batch_overdue"), "%s", r.err);
    ck_assert_msg(strstr(r.err, "st-b-held") && strstr(r.err, "insufficient_funds") &&
                      strstr(r.err, "st-b-overdue") && !strstr(r.err, "st-b-in-grace") &&
                      !strstr(r.err, "st-b-open") && !strstr(r.err, "st-b-closed"),
                  "%s", r.err);
    check_fixes(&r);
    run_free(&r);
}
END_TEST

/* The ledger_identity id of the test's ledger. */
static void ledger_id(char *out, size_t n)
{
    db_t *db = llt_db(ledger);
    PGresult *res;
    ck_assert_int_eq(db_query(db, &res, "SELECT id FROM ledger_identity", 0, NULL), LL_OK);
    snprintf(out, n, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    db_free(db);
}

START_TEST(status_lists_registered_workers_and_names_one_not_ready)
{
    char id[64];
    ledger_id(id, sizeof id);
    registry_put("st-ready", id, true, "");
    registry_put("st-sick", id, false, "postgres down");
    registry_put("st-other-ledger", "0000000000000000", false, "redis down");

    run_t r = status("", "--json");
    ck_assert_msg(r.rc == 1, "exit %d:\n%s%s", r.rc, r.out, r.err);
    json_t *ws = json_object_get(r.j, "workers");
    ck_assert_int_eq((int)json_array_size(ws), 2);
    json_t *ok = find_by(ws, "instance", "st-ready"), *sick = find_by(ws, "instance", "st-sick");
    ck_assert_msg(ok && json_is_true(json_object_get(ok, "ready")) &&
                      json_number_value(json_object_get(ok, "rate")) == 12.5 &&
                      json_number_value(json_object_get(ok, "p99_ms")) == 42.0,
                  "%s", r.out);
    ck_assert_msg(sick && json_is_false(json_object_get(sick, "ready")), "%s", r.out);
    ck_assert_int_eq(jint(r.j, "workers_of_other_ledgers"), 1);
    ck_assert_msg(problem(&r, "worker_not_ready") &&
                      strstr(r.err, "worker st-sick (risk-worker on testhost, pid 4242) is not "
                                    "ready: postgres down") &&
                      !strstr(r.err, "st-other-ledger") && !strstr(r.err, "st-ready"),
                  "%s", r.err);
    ck_assert_int_eq((int)json_array_size(json_object_get(r.j, "problems")), 1);
    check_fixes(&r);
    run_free(&r);

    r = status("", "");
    ck_assert_int_eq(r.rc, 1);
    ck_assert_msg(strstr(r.out, "st-ready") && strstr(r.out, "st-sick") &&
                      strstr(r.out, "PostgreSQL unavailable"),
                  "%s", r.out);
    run_free(&r);
}
END_TEST

/* The consumer of `queue` whose connection name holds `instance` (a
 * worker names its connections "<worker> <instance> <role>"), or NULL. */
static json_t *consumer_of(const run_t *r, const char *queue, const char *instance)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r->j, "consumers"), i, c)
    {
        const char *q = json_string_value(json_object_get(c, "queue"));
        const char *conn = json_string_value(json_object_get(c, "connection"));
        if (q && conn && strcmp(q, queue) == 0 && strstr(conn, instance))
            return c;
    }
    return NULL;
}

/* RabbitMQ lists the worker `arg` as a consumer of risk. */
static bool consumer_listed(void *arg, char *st, size_t n)
{
    run_t r = status("", "--json");
    bool ok = consumer_of(&r, "risk", arg) != NULL;
    char *txt = json_dumps(json_object_get(r.j, "consumers"), JSON_COMPACT);
    snprintf(st, n, "exit %d, consumers %.300s", r.rc, txt ? txt : "null");
    free(txt);
    run_free(&r);
    return ok;
}

/* The worker `arg` is in the registry, ready; its consumer is matched to
 * it; and status says all clear. */
static bool registered_ready(void *arg, char *st, size_t n)
{
    run_t r = status("", "--json");
    json_t *w = find_by(json_object_get(r.j, "workers"), "instance", arg);
    json_t *c = consumer_of(&r, "risk", arg);
    const char *as = c ? json_string_value(json_object_get(c, "registered_as")) : NULL;
    bool ok =
        r.rc == 0 && w && json_is_true(json_object_get(w, "ready")) && as && strcmp(as, arg) == 0;
    snprintf(st, n, "exit %d, registry record %s, consumer %s; stderr: %.300s", r.rc,
             w ? "present" : "missing", as ? as : "missing", r.err);
    run_free(&r);
    return ok;
}

START_TEST(status_shows_a_real_worker_in_the_registry_and_the_consumers)
{
    pid_t pid = llw_start_instance(RISK_WORKER, ledger, "st-real-1", NULL);
    llw_wait_until(consumer_listed, "st-real-1", 30000,
                   "RabbitMQ's consumer list (status --json) to show risk-worker st-real-1");
    llw_wait_until(registered_ready, "st-real-1", 30000,
                   "the worker registry (status --json) to show risk-worker st-real-1 ready");
    run_t r = status("", "");
    ck_assert_msg(r.rc == 0 && strstr(r.out, "st-real-1") && strstr(r.out, "registered"), "%s%s",
                  r.out, r.err);
    run_free(&r);
    llw_stop_ok(pid, 15000, "risk-worker");
}
END_TEST

START_TEST(status_lists_a_worker_without_redis_from_rabbitmq)
{
    char port[64];
    snprintf(port, sizeof port, "LEDGERLINE_REDIS_PORT=%d", llh_free_port());
    const char *env[] = {port, NULL};
    pid_t pid = llw_start_instance(RISK_WORKER, ledger, "st-noredis-1", env);
    llw_wait_until(consumer_listed, "st-noredis-1", 30000,
                   "RabbitMQ's consumer list to show risk-worker st-noredis-1 (no Redis)");
    run_t r = status("", "--json");
    json_t *c = consumer_of(&r, "risk", "st-noredis-1");
    ck_assert_msg(c && strcmp(json_string_value(json_object_get(c, "registered_as")), "") == 0 &&
                      !find_by(json_object_get(r.j, "workers"), "instance", "st-noredis-1"),
                  "%s", r.out);
    run_free(&r);
    r = status("", "");
    ck_assert_msg(strstr(r.out, "st-noredis-1") && strstr(r.out, "NOT in the registry"), "%s",
                  r.out);
    run_free(&r);
    llw_stop_ok(pid, 15000, "risk-worker");
}
END_TEST

/* ---- servers down ----------------------------------------------------------------- */

static bool status_clean(void *arg, char *st, size_t n)
{
    (void)arg;
    run_t r = status("", "");
    snprintf(st, n, "exit %d: %.400s", r.rc, r.err);
    bool ok = r.rc == 0;
    run_free(&r);
    return ok;
}

/* Stops `server`; status must exit 1 with problem `what` (stderr holding
 * `needle`, with fixes) and the server DOWN in --json; starts it again;
 * status must come back to exit 0. */
static void check_down(const char *server, const char *what, const char *json_key,
                       const char *needle)
{
    ck_assert_int_eq(llw_stack("stop-one", server), 0);
    run_t r = status("", "--json");
    ck_assert_msg(r.rc == 1, "%s stopped, but exit %d:\n%s%s", server, r.rc, r.out, r.err);
    ck_assert_msg(problem(&r, what) && strstr(r.err, needle), "%s stopped:\n%s", server, r.err);
    check_fixes(&r);
    json_t *sv = json_object_get(r.j, "servers");
    ck_assert_msg(json_is_false(json_object_get(json_object_get(sv, json_key), "up")), "%s", r.out);
    static const char *const all[] = {"postgres", "redis", "rabbitmq"};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(all[i], json_key) != 0)
            ck_assert_msg(json_is_true(json_object_get(json_object_get(sv, all[i]), "up")),
                          "only %s is stopped, but %s is not up: %s", server, all[i], r.out);
    run_free(&r);
    r = status("", "");
    ck_assert_msg(r.rc == 1 && strstr(r.out, "DOWN"), "%s", r.out);
    run_free(&r);
    ck_assert_int_eq(llw_stack("start-one", server), 0);
    llw_wait_until(status_clean, NULL, 60000, "status exit 0 once the server is back");
}

START_TEST(status_names_postgres_down)
{
    check_down("postgres", "postgres_down", "postgres", "PostgreSQL at ");
}
END_TEST

START_TEST(status_names_redis_down)
{
    check_down("redis", "redis_down", "redis", "Redis at ");
}
END_TEST

START_TEST(status_names_rabbitmq_down)
{
    check_down("rabbitmq", "rabbitmq_down", "rabbitmq", "RabbitMQ is down");
}
END_TEST

START_TEST(status_names_the_management_api_down_with_its_fix)
{
    char env[128];
    snprintf(env, sizeof env, "LEDGERLINE_AMQP_MANAGEMENT_URL=http://127.0.0.1:%d",
             llh_free_port());
    run_t r = status(env, "--json");
    ck_assert_msg(r.rc == 1, "exit %d:\n%s%s", r.rc, r.out, r.err);
    ck_assert_msg(problem(&r, "management_down") && strstr(r.err, "management API") &&
                      strstr(r.err, "rabbitmq_management") &&
                      strstr(r.err, "LEDGERLINE_AMQP_MANAGEMENT_URL"),
                  "%s", r.err);
    check_fixes(&r);
    /* what AMQP alone knows is still there */
    json_t *q = find_by(json_object_get(r.j, "queues"), "name", "risk");
    ck_assert_msg(jint(q, "ready") == 0 && json_is_integer(json_object_get(q, "ready")) &&
                      json_is_null(json_object_get(q, "unacked")),
                  "%s", r.out);
    run_free(&r);
}
END_TEST

START_TEST(status_watch_redraws_until_sigint)
{
    char *out;
    int rc =
        llt_run(&out,
                "LEDGERLINE_POSTGRES_DBNAME=%s timeout --foreground --preserve-status -s INT 4 "
                "%s status --watch --interval 0.5",
                ledger, LEDGERCTL_BIN);
    size_t n = 0;
    for (const char *p = strstr(out, "ledgerline status"); p;
         p = strstr(p + 1, "ledgerline status"))
        n++;
    ck_assert_msg(rc == 0 && n >= 3 && !strchr(out, '\033'),
                  "exit %d, %zu blocks (want >= 3 plain blocks, exit 0 after SIGINT):\n%s", rc, n,
                  out);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_unchecked_fixture(tc, NULL, llw_stack_restore);
    tcase_add_test(tc, status_clean_stack_exits_0);
    tcase_add_test(tc, status_names_partitions_running_out);
    tcase_add_test(tc, status_names_dead_letters_by_reason);
    tcase_add_test(tc, status_names_a_work_queue_without_consumers);
    tcase_add_test(tc, status_reports_the_outbox_backlog_against_its_threshold);
    tcase_add_test(tc, status_names_held_and_overdue_settlement_batches);
    tcase_add_test(tc, status_lists_registered_workers_and_names_one_not_ready);
    tcase_add_test(tc, status_shows_a_real_worker_in_the_registry_and_the_consumers);
    tcase_add_test(tc, status_lists_a_worker_without_redis_from_rabbitmq);
    tcase_add_test(tc, status_names_the_management_api_down_with_its_fix);
    tcase_add_test(tc, status_watch_redraws_until_sigint);
    tcase_add_test(tc, status_names_postgres_down);
    tcase_add_test(tc, status_names_redis_down);
    tcase_add_test(tc, status_names_rabbitmq_down);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
