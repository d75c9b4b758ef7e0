/*
 * settings.h - Ledgerline's settings: one struct, one table (settings.c).
 *
 * Every program loads the same table with settings_load(): defaults, then
 * the YAML file, then LEDGERLINE_<SECTION>_<KEY> environment variables
 * (see cfg.h). To add a setting: add the field to the section's struct
 * here, and one row to settings_table[] in settings.c; validation, env
 * overrides, --check-config and the README reference follow from the row.
 * To add a section: a new nested struct and its rows.
 *
 * Public API: settings_t, settings_table, settings_count, settings_load,
 * settings_load_env, settings_free, settings_print, the SETTINGS_* enums and
 * their choice names (settings_log_level_names, settings_queue_type_names,
 * settings_sslmode_names,
 * settings_overflow_names).
 */
#ifndef LL_SETTINGS_H
#define LL_SETTINGS_H

#include <stdbool.h>
#include <stdio.h>

#include "cfg.h"
#include "err.h"
#include "log.h"

/* log.level: the same values as log_level_t */
enum {
    SETTINGS_LOG_ERROR = LOG_ERROR,
    SETTINGS_LOG_WARN = LOG_WARN,
    SETTINGS_LOG_INFO = LOG_INFO,
    SETTINGS_LOG_DEBUG = LOG_DEBUG
};
/* amqp.queue_type */
enum { SETTINGS_QUEUE_QUORUM, SETTINGS_QUEUE_CLASSIC };
/* amqp.dead_overflow: RabbitMQ's overflow behaviours, by their names */
enum { SETTINGS_OVERFLOW_REJECT_PUBLISH, SETTINGS_OVERFLOW_DROP_HEAD };
/* postgres.sslmode: settings_sslmode_names[] gives libpq's keyword */
enum {
    SETTINGS_SSLMODE_DISABLE,
    SETTINGS_SSLMODE_ALLOW,
    SETTINGS_SSLMODE_PREFER,
    SETTINGS_SSLMODE_REQUIRE,
    SETTINGS_SSLMODE_VERIFY_CA,
    SETTINGS_SSLMODE_VERIFY_FULL
};

/* NULL-terminated choice names, indexed by the enums above. */
extern const char *const settings_log_level_names[];
extern const char *const settings_queue_type_names[];
extern const char *const settings_sslmode_names[];
extern const char *const settings_overflow_names[];

/* Strings are owned by the struct (freed by settings_free), never NULL
 * after a successful settings_load. */
typedef struct settings {
    struct {
        int level; /* SETTINGS_LOG_* */
    } log;
    struct {
        char *host;
        long long port;
        char *user;
        char *password;
        char *vhost;
        long long heartbeat_s;
        char *connection_name; /* "": the program derives one */
        long long prefetch;
        long long confirm_timeout_ms;
        long long connect_timeout_ms;
        int queue_type; /* SETTINGS_QUEUE_* */
        long long delivery_limit;
        char *management_url;       /* the RabbitMQ management API (ledgerctl only) */
        long long dead_max_length;  /* policy on <queue>.dead (ledgerctl topology apply) */
        int dead_overflow;          /* SETTINGS_OVERFLOW_* */
        long long audit_max_length; /* policy on events.audit */
        bool tls;                   /* amqps: see mq_tls_opts_t */
        char *tls_ca_file;          /* "": the system's CA bundle */
        char *tls_cert_file;        /* "": no client certificate */
        char *tls_key_file;
        bool tls_verify_peer;
        bool tls_verify_hostname;
    } amqp;
    struct {
        char *host;
        long long port;
        char *password;
        long long db;
        long long timeout_ms;
        char *key_prefix;
    } redis;
    struct {
        char *host;
        long long port;
        char *dbname;
        char *user;
        char *password;
        long long connect_timeout_s;
        int sslmode;       /* SETTINGS_SSLMODE_* */
        char *sslrootcert; /* "": libpq's default (~/.postgresql/root.crt) */
        char *sslcert;     /* "": libpq's default (~/.postgresql/postgresql.crt) */
        char *sslkey;
        char *application_name; /* "": the program derives one */
    } postgres;
    struct {
        char *instance; /* "": <host>:<pid> */
        long long batch_max_messages;
        long long batch_max_wait_ms;
        long long max_attempts;
        long long inflight_ttl_ms;
        long long done_ttl_s;
        long long shutdown_timeout_ms;
        long long outbox_sweep_interval_ms;
        long long outbox_sweep_age_ms;
    } worker;
    struct {
        char *address;                 /* the endpoints' listen address */
        long long port;                /* 0: off; -1: the kind's default (stage_t.http_port) */
        long long liveness_timeout_ms; /* /healthz fails when the loop is stuck this long */
    } http;
    struct {
        char *max_amount;     /* "EUR:1000000,USD:2000000"; "" = no limit */
        char *blocklist_file; /* one account id per line; "" = none */
        long long velocity_count;
        long long velocity_sum;
        long long velocity_window_s;
        long long score_threshold;
        long long weight_new_payee;
        long long weight_above_median;
        long long median_factor;
        char *ruleset_version;
    } risk;
    struct {
        char *approval_keys_file; /* risk signs approvals, payment verifies them */
        char *request_keys_file;  /* risk verifies payment.requested */
        bool allow_unsigned;      /* no approval keys on purpose: no error */
    } signing;
    struct {
        long long window_s;
        long long grace_ms;
        long long close_interval_ms;
        long long lock_ttl_ms;
        long long close_retry_ms;
    } settlement;
    struct {
        long long window_s;        /* processed rows and outbox events kept this long */
        long long partition_s;     /* the time one partition holds */
        long long ahead_s;         /* partitions exist this far ahead of now */
        long long tick_interval_s; /* how often a worker runs the retention job */
        bool expire;               /* false: partitions are created, never dropped */
        bool archive_first;        /* drop only what `ledgerctl archive` wrote */
    } retention;
    cfg_origin_t *origins; /* settings_count entries: where each value came from */
} settings_t;

/* Most partitions of processed (and of outbox) the retention settings may
 * make: a batch's lookups lock every partition and its index. */
#define SETTINGS_PARTITIONS_MAX 60

extern const cfg_setting_t settings_table[];
extern const size_t settings_count;

/* Loads defaults < the YAML file at path (NULL: none) < environ into *s.
 * On success the caller frees with settings_free(). On failure returns
 * LL_ECONFIG with *err filled (err->msg is the line to show the operator)
 * and *s holds nothing to free (settings_free is still safe). */
int settings_load(settings_t *s, const char *path, cfg_error_t *err) LL_MUSTCHECK;
/* Same with an explicit environment (NULL-terminated "NAME=value"), for tests. */
int settings_load_env(settings_t *s, const char *path, char *const *envp,
                      cfg_error_t *err) LL_MUSTCHECK;
/* Frees the strings; safe on a zeroed struct and safe twice. */
void settings_free(settings_t *s);
/* The effective configuration, secrets masked, with origins (--check-config). */
void settings_print(const settings_t *s, FILE *out);

#endif
