/*
 * status_servers.c - whether each server `ledgerctl status` reads is up:
 * PostgreSQL (a query), Redis (PING), RabbitMQ over AMQP (connect) and its
 * management API (/api/overview, alarms from /api/nodes). See status.h.
 *
 * The connections live in status_t across --watch rounds: one that died
 * while idle is reopened once before its server is called down.
 *
 * Public API: status__servers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "status.h"

static void check_postgres(status_t *s, json_t *servers)
{
    const settings_t *cfg = &s->c->cfg;
    char addr[300];
    snprintf(addr, sizeof addr, "%s:%lld/%s", cfg->postgres.host, (long long)cfg->postgres.port,
             cfg->postgres.dbname);
    if (!s->db) {
        db_opts_t o = conn_db_opts(cfg, "ledgerctl status");
        s->db = db_new(&o);
    }
    int64_t t0 = clock_mono_ms();
    int rc = db_is_up(s->db) ? LL_OK : db_connect(s->db);
    PGresult *r = NULL;
    if (rc == LL_OK)
        rc = db_query(s->db, &r, "SELECT 1", 0, NULL);
    if (rc == LL_ECONN && db_connect(s->db) == LL_OK) /* a connection of the last round died */
        rc = db_query(s->db, &r, "SELECT 1", 0, NULL);
    PQclear(r);
    s->pg_up = rc == LL_OK;
    json_t *j = json_pack("{s:b, s:s}", "up", s->pg_up, "address", addr);
    if (s->pg_up) {
        json_object_set_new(j, "latency_ms", json_integer(clock_mono_ms() - t0));
        s->ledger[0] = '\0';
        if (db_query(s->db, &r, "SELECT id FROM ledger_identity", 0, NULL) == LL_OK) {
            if (PQntuples(r) == 1)
                snprintf(s->ledger, sizeof s->ledger, "%s", PQgetvalue(r, 0, 0));
            PQclear(r);
        }
        json_object_set_new(j, "ledger", json_string(s->ledger));
    } else {
        json_object_set_new(j, "error", json_string(db_errstr(s->db)));
        status__need(
            s, "postgres_down",
            "start PostgreSQL (local stack: ./ops/stack start-one postgres), or point "
            "postgres.host/port/dbname/user/password (LEDGERLINE_POSTGRES_*) at it; workers "
            "wait and resume by themselves",
            "PostgreSQL at %s is down: %s", addr, db_errstr(s->db));
    }
    json_object_set_new(servers, "postgres", j);
}

static void check_redis(status_t *s, json_t *servers)
{
    const settings_t *cfg = &s->c->cfg;
    char addr[300], err[256] = "";
    snprintf(addr, sizeof addr, "%s:%lld db %lld", cfg->redis.host, (long long)cfg->redis.port,
             (long long)cfg->redis.db);
    int64_t t0 = clock_mono_ms();
    if (!s->kv &&
        kv_open(&s->kv, cfg->redis.host, (int)cfg->redis.port, cfg->redis.password,
                (int)cfg->redis.db, (int)cfg->redis.timeout_ms, cfg->redis.key_prefix) != LL_OK)
        snprintf(err, sizeof err, "bad Redis settings (redis.port, redis.db, redis.timeout_ms)");
    /* kv reconnects by itself, at most once per backoff interval */
    s->redis_up = s->kv && kv_ping(s->kv) == LL_OK;
    if (s->kv && !s->redis_up)
        snprintf(err, sizeof err, "%s", kv_errstr(s->kv));
    json_t *j = json_pack("{s:b, s:s}", "up", s->redis_up, "address", addr);
    if (s->redis_up) {
        json_object_set_new(j, "latency_ms", json_integer(clock_mono_ms() - t0));
    } else {
        json_object_set_new(j, "error", json_string(err));
        status__need(
            s, "redis_down",
            "start Redis (local stack: ./ops/stack start-one redis), or point redis.host/port/"
            "password/db (LEDGERLINE_REDIS_*) at it; workers go on without it, slower, and "
            "leave the worker registry",
            "Redis at %s is down: %s", addr, err);
    }
    json_object_set_new(servers, "redis", j);
}

static void check_rabbitmq(status_t *s, json_t *servers)
{
    const settings_t *cfg = &s->c->cfg;
    char addr[300];
    snprintf(addr, sizeof addr, "%s:%lld vhost %s", cfg->amqp.host, (long long)cfg->amqp.port,
             cfg->amqp.vhost);
    if (!s->mq) {
        char name[128], host[64] = "";
        gethostname(host, sizeof host - 1);
        snprintf(name, sizeof name, "ledgerctl status@%s:%d", host, (int)getpid());
        mq_opts_t o = conn_mq_opts(cfg, name);
        s->mq = mq_new(&o);
    }
    /* a connection idle through a --watch interval may have died unnoticed */
    if (mq_is_up(s->mq) && mq_service(s->mq) != LL_OK)
        mq_close(s->mq);
    s->amqp_up = mq_is_up(s->mq) || mq_connect(s->mq) == LL_OK;
    json_t *a = json_pack("{s:b, s:s}", "up", s->amqp_up, "address", addr);
    if (!s->amqp_up)
        json_object_set_new(a, "error", json_string(mq_errstr(s->mq)));
    json_object_set_new(servers, "rabbitmq", a);

    json_t *m = json_pack("{s:b, s:s}", "up", false, "url", mgmt_url(s->mg));
    json_t *ov = NULL;
    int64_t t0 = clock_mono_ms();
    s->mgmt_up = mgmt_get(s->mg, "/api/overview", &ov) == LL_OK;
    if (s->mgmt_up) {
        json_object_set_new(m, "up", json_true());
        json_object_set_new(m, "latency_ms", json_integer(clock_mono_ms() - t0));
        json_object_set_new(m, "version", json_string(status__jstr(ov, "rabbitmq_version")));
        json_object_set_new(m, "cluster", json_string(status__jstr(ov, "cluster_name")));
        json_decref(ov);
        json_t *nodes = NULL, *alarms = json_array();
        if (mgmt_get(s->mg, "/api/nodes", &nodes) == LL_OK) {
            size_t i;
            json_t *n;
            json_array_foreach(nodes, i, n)
            {
                const char *node = status__jstr(n, "name");
                if (json_is_false(json_object_get(n, "running")))
                    json_array_append_new(alarms, json_sprintf("%s not running", node));
                if (json_is_true(json_object_get(n, "mem_alarm")))
                    json_array_append_new(alarms, json_sprintf("%s memory alarm", node));
                if (json_is_true(json_object_get(n, "disk_free_alarm")))
                    json_array_append_new(alarms, json_sprintf("%s disk alarm", node));
            }
            json_decref(nodes);
        }
        if (json_array_size(alarms) > 0) {
            char *txt = json_dumps(alarms, JSON_COMPACT);
            status__need(
                s, "rabbitmq_alarm",
                "publishers are blocked while an alarm lasts: free memory or disk on the node "
                "(its log says which), or raise vm_memory_high_watermark / disk_free_limit",
                "RabbitMQ alarm: %s", txt ? txt : "?");
            free(txt);
        }
        json_object_set_new(m, "alarms", alarms);
    } else {
        json_object_set_new(m, "error", json_string(mgmt_errstr(s->mg)));
    }
    json_object_set_new(servers, "management", m);

    if (!s->amqp_up && !s->mgmt_up)
        status__need(
            s, "rabbitmq_down",
            "start RabbitMQ (local stack: ./ops/stack start-one rabbitmq), or point amqp.host/"
            "port/user/password/vhost (LEDGERLINE_AMQP_*) at it; workers reconnect by themselves",
            "RabbitMQ is down: AMQP at %s: %s; management API: %s", addr, mq_errstr(s->mq),
            mgmt_errstr(s->mg));
    else if (!s->amqp_up)
        status__need(
            s, "rabbitmq_down",
            "check the broker's AMQP listener (its log) and amqp.host/port/user/password/vhost "
            "(LEDGERLINE_AMQP_*)",
            "RabbitMQ AMQP at %s is down (its management API answers): %s", addr, mq_errstr(s->mq));
    else if (!s->mgmt_up)
        status__need(s, "management_down", mgmt_fix(s->mg),
                     "RabbitMQ management API unreachable (queue rates, unacked counts, ages and "
                     "consumers are unknown): %s",
                     mgmt_errstr(s->mg));
}

void status__servers(status_t *s)
{
    json_t *servers = json_object();
    check_postgres(s, servers);
    check_redis(s, servers);
    check_rabbitmq(s, servers);
    json_object_set_new(s->doc, "servers", servers);
}
