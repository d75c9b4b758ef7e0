/*
 * settings.c - Ledgerline's one table of settings: see settings.h.
 *
 * One row per setting; the README's configuration reference is generated
 * from these rows (cfg_print_reference), so the help text is the doc.
 */
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"
#include "xmalloc.h"

extern char **environ;

static_assert((int)SETTINGS_LOG_DEBUG == (int)LOG_DEBUG && (int)SETTINGS_LOG_ERROR == 0,
              "log.level choices must match log_level_t");

const char *const settings_log_level_names[] = {"error", "warn", "info", "debug", NULL};
const char *const settings_queue_type_names[] = {"quorum", "classic", NULL};
const char *const settings_sslmode_names[] = {"disable",   "allow",       "prefer", "require",
                                              "verify-ca", "verify-full", NULL};
const char *const settings_overflow_names[] = {"reject-publish", "drop-head", NULL};

#define OFF(field) offsetof(settings_t, field)
#define STR(sec, key, field, def, help)                                                            \
    {                                                                                              \
        sec, key, CFG_STR, OFF(field), def, 0, 0, NULL, 0, help                                    \
    }
#define SECRET(sec, key, field, def, help)                                                         \
    {                                                                                              \
        sec, key, CFG_STR, OFF(field), def, 0, 0, NULL, CFG_SECRET, help                           \
    }
#define INT(sec, key, field, def, min, max, help)                                                  \
    {                                                                                              \
        sec, key, CFG_INT, OFF(field), def, min, max, NULL, 0, help                                \
    }
#define BOOL(sec, key, field, def, help)                                                           \
    {                                                                                              \
        sec, key, CFG_BOOL, OFF(field), def, 0, 0, NULL, 0, help                                   \
    }
#define ENUM(sec, key, field, def, choices, help)                                                  \
    {                                                                                              \
        sec, key, CFG_ENUM, OFF(field), def, 0, 0, choices, 0, help                                \
    }

const cfg_setting_t settings_table[] = {
    /* log */
    ENUM("log", "level", log.level, "info", settings_log_level_names,
         "lowest level logged: error (needs a human), warn, info (lifecycle), debug (per "
         "message)"),

    /* amqp */
    STR("amqp", "host", amqp.host, "127.0.0.1", "RabbitMQ host name or address"),
    INT("amqp", "port", amqp.port, "5672", 1, 65535, "RabbitMQ AMQP port"),
    STR("amqp", "user", amqp.user, "guest", "RabbitMQ user name"),
    SECRET("amqp", "password", amqp.password, "guest", "RabbitMQ password"),
    STR("amqp", "vhost", amqp.vhost, "/", "RabbitMQ virtual host"),
    INT("amqp", "heartbeat_s", amqp.heartbeat_s, "30", 0, 600,
        "AMQP heartbeat interval in seconds (0 disables)"),
    STR("amqp", "connection_name", amqp.connection_name, "",
        "connection name shown by RabbitMQ (empty: derived from worker and host)"),
    INT("amqp", "prefetch", amqp.prefetch, "512", 1, 65535,
        "unacknowledged deliveries per consumer (basic.qos prefetch count)"),
    INT("amqp", "confirm_timeout_ms", amqp.confirm_timeout_ms, "10000", 100, 600000,
        "how long to wait for publisher confirms before treating the connection as lost"),
    INT("amqp", "connect_timeout_ms", amqp.connect_timeout_ms, "5000", 100, 600000,
        "TCP connect and login timeout"),
    ENUM("amqp", "queue_type", amqp.queue_type, "quorum", settings_queue_type_names,
         "type of the work queues declared by the topology"),
    INT("amqp", "delivery_limit", amqp.delivery_limit, "20", 1, 1000,
        "x-delivery-limit of quorum queues: redeliveries before dead-lettering"),
    STR("amqp", "management_url", amqp.management_url, "http://127.0.0.1:15672",
        "RabbitMQ management API (ledgerctl status and topology apply; same user and "
        "password)"),
    INT("amqp", "dead_max_length", amqp.dead_max_length, "1000000", 1, 1000000000,
        "most messages a dead-letter queue (<queue>.dead) holds; set as a policy by "
        "`ledgerctl topology apply`"),
    ENUM("amqp", "dead_overflow", amqp.dead_overflow, "reject-publish", settings_overflow_names,
         "a full dead-letter queue: reject-publish (nothing is lost: the worker keeps the "
         "message unacked and retries until an operator makes room) or drop-head (the oldest "
         "dead letter is dropped)"),
    INT("amqp", "audit_max_length", amqp.audit_max_length, "100000", 1, 1000000000,
        "most events the audit queue (events.audit) keeps; the oldest are dropped"),
    BOOL("amqp", "tls", amqp.tls, "false",
         "connect with TLS (amqps): amqp.port must then be the broker's TLS listener (RabbitMQ: "
         "5671)"),
    STR("amqp", "tls_ca_file", amqp.tls_ca_file, "",
        "PEM file of the CA certificates that may sign the broker's certificate (empty: the "
        "system's CA bundle)"),
    STR("amqp", "tls_cert_file", amqp.tls_cert_file, "",
        "client certificate (PEM, chain first) for a broker that asks for one; needs "
        "amqp.tls_key_file (empty: none)"),
    STR("amqp", "tls_key_file", amqp.tls_key_file, "",
        "private key (PEM, not encrypted) of amqp.tls_cert_file"),
    BOOL("amqp", "tls_verify_peer", amqp.tls_verify_peer, "true",
         "with amqp.tls: refuse a broker whose certificate no CA of amqp.tls_ca_file signed "
         "(off only for tests)"),
    BOOL("amqp", "tls_verify_hostname", amqp.tls_verify_hostname, "true",
         "with amqp.tls: refuse a broker whose certificate does not name amqp.host (a DNS entry "
         "of its subjectAltName; IP address entries are not matched)"),

    /* redis */
    STR("redis", "host", redis.host, "127.0.0.1", "Redis host name or address"),
    INT("redis", "port", redis.port, "6379", 1, 65535, "Redis port"),
    SECRET("redis", "password", redis.password, "", "Redis password (empty: no AUTH)"),
    INT("redis", "db", redis.db, "0", 0, 15, "Redis database number (SELECT)"),
    INT("redis", "timeout_ms", redis.timeout_ms, "2000", 10, 60000,
        "Redis connect and command timeout"),
    STR("redis", "key_prefix", redis.key_prefix,
        "ll:", "prefix of every Redis key Ledgerline writes"),

    /* postgres */
    STR("postgres", "host", postgres.host, "127.0.0.1",
        "PostgreSQL host name, address or socket directory"),
    INT("postgres", "port", postgres.port, "5432", 1, 65535, "PostgreSQL port"),
    STR("postgres", "dbname", postgres.dbname, "ledgerline", "PostgreSQL database name"),
    STR("postgres", "user", postgres.user, "ledgerline", "PostgreSQL user name"),
    SECRET("postgres", "password", postgres.password, "",
           "PostgreSQL password (empty: libpq's defaults, e.g. .pgpass)"),
    INT("postgres", "connect_timeout_s", postgres.connect_timeout_s, "5", 1, 300,
        "PostgreSQL connect timeout in seconds"),
    ENUM("postgres", "sslmode", postgres.sslmode, "prefer", settings_sslmode_names,
         "libpq sslmode: prefer uses TLS when the server offers it, unverified; verify-full "
         "checks the certificate against postgres.sslrootcert and its name against postgres.host"),
    STR("postgres", "sslrootcert", postgres.sslrootcert, "",
        "PEM file of the CA certificates that may sign the server's certificate, for sslmode "
        "verify-ca and verify-full (empty: libpq's default, ~/.postgresql/root.crt)"),
    STR("postgres", "sslcert", postgres.sslcert, "",
        "client certificate (PEM) for a server that asks for one; needs postgres.sslkey (empty: "
        "libpq's default, ~/.postgresql/postgresql.crt if it exists)"),
    STR("postgres", "sslkey", postgres.sslkey, "",
        "private key (PEM, mode 0600) of postgres.sslcert"),
    STR("postgres", "application_name", postgres.application_name, "",
        "application_name shown in pg_stat_activity (empty: derived from the worker)"),

    /* worker: the shared runtime of every stage */
    STR("worker", "instance", worker.instance, "",
        "this process's name in logs, outbox claims and Redis guards (empty: <host>:<pid>)"),
    INT("worker", "batch_max_messages", worker.batch_max_messages, "256", 1, 4096,
        "a batch closes at this many messages (one PostgreSQL transaction per batch)"),
    INT("worker", "batch_max_wait_ms", worker.batch_max_wait_ms, "0", 0, 60000,
        "...or this long after its first message (0: a batch takes the messages already "
        "delivered and goes, growing by itself under load while the one before commits)"),
    INT("worker", "max_attempts", worker.max_attempts, "5", 1, 100,
        "attempts at a message whose processing keeps failing before it is parked with "
        "processing_failed"),
    INT("worker", "inflight_ttl_ms", worker.inflight_ttl_ms, "30000", 1000, 3600000,
        "lifetime of the Redis in-flight guard of a message being processed"),
    INT("worker", "done_ttl_s", worker.done_ttl_s, "86400", 1, 2592000,
        "how long Redis remembers a processed payment (the fast path for duplicates)"),
    INT("worker", "shutdown_timeout_ms", worker.shutdown_timeout_ms, "15000", 100, 600000,
        "after SIGTERM, how long to finish the batch in hand before giving up"),
    INT("worker", "outbox_sweep_interval_ms", worker.outbox_sweep_interval_ms, "1000", 100, 3600000,
        "how often unsent outbox rows are looked for"),
    INT("worker", "outbox_sweep_age_ms", worker.outbox_sweep_age_ms, "5000", 0, 3600000,
        "an unsent outbox row older than this is republished by the sweep"),

    /* http: /healthz, /readyz and /metrics of every worker */
    STR("http", "address", http.address, "127.0.0.1",
        "listen address of the worker's endpoints (0.0.0.0 in containers)"),
    INT("http", "port", http.port, "-1", -1, 65535,
        "port of /healthz, /readyz, /metrics: 0 turns them off, -1 takes the kind's default "
        "(risk 9471, payment 9472, settlement 9473, refund 9474, funds 9475)"),
    INT("http", "liveness_timeout_ms", http.liveness_timeout_ms, "60000", 1000, 3600000,
        "/healthz fails when the worker loop has made no progress for this long"),

    /* risk: the rules of the risk stage, evaluated in this order */
    STR("risk", "max_amount", risk.max_amount, "",
        "hard rule: highest amount per currency, \"CUR:minor,...\" (e.g. EUR:1000000); "
        "currencies not listed have no limit"),
    STR("risk", "blocklist_file", risk.blocklist_file, "",
        "hard rule: file of blocklisted payer/payee ids, one per line (# comments); reloaded "
        "on SIGHUP"),
    INT("risk", "velocity_count", risk.velocity_count, "0", 0, 1000000,
        "hard rule: at most this many approved payments per payer within the window (0: off)"),
    INT("risk", "velocity_sum", risk.velocity_sum, "0", 0, 100000000000000000LL,
        "hard rule: at most this many minor units approved per payer within the window (0: off)"),
    INT("risk", "velocity_window_s", risk.velocity_window_s, "3600", 1, 31536000,
        "the sliding window of the velocity rules, in seconds"),
    INT("risk", "score_threshold", risk.score_threshold, "80", 0, 100,
        "decline when the score of the soft signals reaches this (0: never)"),
    INT("risk", "weight_new_payee", risk.weight_new_payee, "20", 0, 100,
        "soft signal: first payment from this payer to this payee"),
    INT("risk", "weight_above_median", risk.weight_above_median, "60", 0, 100,
        "soft signal: amount above median_factor x the payer's median of its last 20 "
        "approvals (needs 3)"),
    INT("risk", "median_factor", risk.median_factor, "10", 1, 1000,
        "how far above the payer's median an amount must be for above_median"),
    STR("risk", "ruleset_version", risk.ruleset_version, "1",
        "recorded with every decision, to audit which rules decided it"),

    /* signing: HMAC-SHA256 keyrings (common/sign.h), "KEY_ID SECRET" per line */
    STR("signing", "approval_keys_file", signing.approval_keys_file, "",
        "keys of payment.approved: the risk-worker signs with the first, the payment-worker "
        "rejects approvals no key verifies (empty: unsigned)"),
    STR("signing", "request_keys_file", signing.request_keys_file, "",
        "producer and rail keys: when set, the risk, refund and funds workers reject a "
        "command no key verifies"),
    BOOL("signing", "allow_unsigned", signing.allow_unsigned, "false",
         "run without approval_keys_file on purpose: the risk and payment workers then log "
         "once that approvals are unsigned instead of an error at every start and reload"),

    /* settlement */
    INT("settlement", "window_s", settlement.window_s, "86400", 1, 31536000,
        "settlement window length in seconds, aligned to the Unix epoch (86400: UTC days)"),
    INT("settlement", "grace_ms", settlement.grace_ms, "5000", 0, 86400000,
        "a batch closes this long after its window ends (late payments go to the next one)"),
    INT("settlement", "close_interval_ms", settlement.close_interval_ms, "1000", 100, 3600000,
        "how often a settlement-worker looks for batches to close"),
    INT("settlement", "lock_ttl_ms", settlement.lock_ttl_ms, "10000", 1000, 3600000,
        "lease of the Redis lock of a batch being closed (fenced: an expired holder cannot "
        "write)"),
    INT("settlement", "close_retry_ms", settlement.close_retry_ms, "60000", 100, 86400000,
        "a batch whose close was refused (payee frozen or short of funds) is held this long "
        "before the next try"),

    /* retention of the bookkeeping (docs/ledger.md#retention) */
    INT("retention", "window_s", retention.window_s, "604800", 120, 315360000,
        "processed rows (the record that answers a duplicate) and outbox events are kept this "
        "long, then dropped a partition at a time; a duplicate arriving later is rejected as "
        "duplicate_expired. At least twice worker.done_ttl_s"),
    INT("retention", "partition_s", retention.partition_s, "86400", 60, 2592000,
        "the time one partition of processed and outbox holds (86400: UTC days); a partition "
        "is dropped once its end is retention.window_s old"),
    INT("retention", "ahead_s", retention.ahead_s, "259200", 60, 31536000,
        "partitions are created this far ahead of now (an insert at a time no partition holds "
        "fails)"),
    INT("retention", "tick_interval_s", retention.tick_interval_s, "60", 1, 86400,
        "how often each worker runs the retention job (one at a time: an advisory lock)"),
    BOOL("retention", "expire", retention.expire, "true",
         "drop partitions older than the window (false: keep them all; partitions ahead are "
         "still created)"),
    BOOL("retention", "archive_first", retention.archive_first, "false",
         "drop only partitions that `ledgerctl archive --before` has written (its newest "
         "--before); the others stay, and the job logs that they wait for an archive"),
};

/* Rules between settings, after each is valid alone. */
static int settings_cross_check(const settings_t *s, cfg_error_t *err)
{
    if (s->worker.done_ttl_s * 2 > s->retention.window_s) {
        memset(err, 0, sizeof *err);
        snprintf(err->key, sizeof err->key, "worker.done_ttl_s");
        snprintf(err->msg, sizeof err->msg,
                 "worker.done_ttl_s (%lld) is more than half of retention.window_s (%lld): the "
                 "Redis record of a payment must expire well before its PostgreSQL record; "
                 "lower worker.done_ttl_s or raise retention.window_s",
                 s->worker.done_ttl_s, s->retention.window_s);
        return LL_ECONFIG;
    }
    long long parts = (s->retention.window_s + s->retention.ahead_s) / s->retention.partition_s + 2;
    if (parts > SETTINGS_PARTITIONS_MAX) {
        memset(err, 0, sizeof *err);
        snprintf(err->key, sizeof err->key, "retention.partition_s");
        snprintf(err->msg, sizeof err->msg,
                 "retention.partition_s (%lld) makes about %lld partitions of processed and of "
                 "outbox (retention.window_s + retention.ahead_s over it), more than %d: every "
                 "batch locks them all; raise retention.partition_s",
                 s->retention.partition_s, parts, SETTINGS_PARTITIONS_MAX);
        return LL_ECONFIG;
    }
    if (s->retention.ahead_s < s->retention.tick_interval_s * 2) {
        memset(err, 0, sizeof *err);
        snprintf(err->key, sizeof err->key, "retention.ahead_s");
        snprintf(err->msg, sizeof err->msg,
                 "retention.ahead_s (%lld) is less than twice retention.tick_interval_s (%lld): "
                 "a tick could come after the last partition ended; raise retention.ahead_s",
                 s->retention.ahead_s, s->retention.tick_interval_s);
        return LL_ECONFIG;
    }
    return LL_OK;
}

const size_t settings_count = sizeof settings_table / sizeof settings_table[0];

int settings_load_env(settings_t *s, const char *path, char *const *envp, cfg_error_t *err)
{
    cfg_origin_t *origins = ll_xcalloc(settings_count, sizeof *origins);
    s->origins = NULL;
    int rc = cfg_load(settings_table, settings_count, s, origins, path, envp, err);
    if (rc == LL_OK && (rc = settings_cross_check(s, err)) != LL_OK)
        cfg_free(settings_table, settings_count, s);
    if (rc != LL_OK) {
        free(origins);
        return rc;
    }
    s->origins = origins;
    return LL_OK;
}

int settings_load(settings_t *s, const char *path, cfg_error_t *err)
{
    return settings_load_env(s, path, environ, err);
}

void settings_free(settings_t *s)
{
    if (!s)
        return;
    cfg_free(settings_table, settings_count, s);
    free(s->origins);
    s->origins = NULL;
}

void settings_print(const settings_t *s, FILE *out)
{
    cfg_print(settings_table, settings_count, s, s->origins, out);
}
