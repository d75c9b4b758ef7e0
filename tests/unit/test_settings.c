/*
 * test_settings.c - Ledgerline's real settings table: with no file and no
 * environment it yields the documented defaults; every row has help text;
 * environment names are unique; the README reference has one row per
 * setting; an environment override reaches the struct.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_test.h"
#include "settings.h"

/* The documented defaults: {key, field offset, type, text, integer} */
#define S(f) offsetof(settings_t, f)
static const struct {
    const char *key;
    size_t off;
    cfg_type_t type;
    const char *str;
    long long num;
} defaults[] = {
    {"log.level", S(log.level), CFG_ENUM, NULL, SETTINGS_LOG_INFO},
    {"amqp.host", S(amqp.host), CFG_STR, "127.0.0.1", 0},
    {"amqp.port", S(amqp.port), CFG_INT, NULL, 5672},
    {"amqp.user", S(amqp.user), CFG_STR, "guest", 0},
    {"amqp.password", S(amqp.password), CFG_STR, "guest", 0},
    {"amqp.vhost", S(amqp.vhost), CFG_STR, "/", 0},
    {"amqp.heartbeat_s", S(amqp.heartbeat_s), CFG_INT, NULL, 30},
    {"amqp.connection_name", S(amqp.connection_name), CFG_STR, "", 0},
    {"amqp.prefetch", S(amqp.prefetch), CFG_INT, NULL, 512},
    {"amqp.confirm_timeout_ms", S(amqp.confirm_timeout_ms), CFG_INT, NULL, 10000},
    {"amqp.connect_timeout_ms", S(amqp.connect_timeout_ms), CFG_INT, NULL, 5000},
    {"amqp.queue_type", S(amqp.queue_type), CFG_ENUM, NULL, SETTINGS_QUEUE_QUORUM},
    {"amqp.delivery_limit", S(amqp.delivery_limit), CFG_INT, NULL, 20},
    {"amqp.management_url", S(amqp.management_url), CFG_STR, "http://127.0.0.1:15672", 0},
    {"amqp.dead_max_length", S(amqp.dead_max_length), CFG_INT, NULL, 1000000},
    {"amqp.dead_overflow", S(amqp.dead_overflow), CFG_ENUM, NULL, SETTINGS_OVERFLOW_REJECT_PUBLISH},
    {"amqp.audit_max_length", S(amqp.audit_max_length), CFG_INT, NULL, 100000},
    {"amqp.tls", S(amqp.tls), CFG_BOOL, NULL, 0},
    {"amqp.tls_ca_file", S(amqp.tls_ca_file), CFG_STR, "", 0},
    {"amqp.tls_cert_file", S(amqp.tls_cert_file), CFG_STR, "", 0},
    {"amqp.tls_key_file", S(amqp.tls_key_file), CFG_STR, "", 0},
    {"amqp.tls_verify_peer", S(amqp.tls_verify_peer), CFG_BOOL, NULL, 1},
    {"amqp.tls_verify_hostname", S(amqp.tls_verify_hostname), CFG_BOOL, NULL, 1},
    {"redis.host", S(redis.host), CFG_STR, "127.0.0.1", 0},
    {"redis.port", S(redis.port), CFG_INT, NULL, 6379},
    {"redis.password", S(redis.password), CFG_STR, "", 0},
    {"redis.db", S(redis.db), CFG_INT, NULL, 0},
    {"redis.timeout_ms", S(redis.timeout_ms), CFG_INT, NULL, 2000},
    {"redis.key_prefix", S(redis.key_prefix), CFG_STR, "ll:", 0},
    {"postgres.host", S(postgres.host), CFG_STR, "127.0.0.1", 0},
    {"postgres.port", S(postgres.port), CFG_INT, NULL, 5432},
    {"postgres.dbname", S(postgres.dbname), CFG_STR, "ledgerline", 0},
    {"postgres.user", S(postgres.user), CFG_STR, "ledgerline", 0},
    {"postgres.password", S(postgres.password), CFG_STR, "", 0},
    {"postgres.connect_timeout_s", S(postgres.connect_timeout_s), CFG_INT, NULL, 5},
    {"postgres.sslmode", S(postgres.sslmode), CFG_ENUM, NULL, SETTINGS_SSLMODE_PREFER},
    {"postgres.sslrootcert", S(postgres.sslrootcert), CFG_STR, "", 0},
    {"postgres.sslcert", S(postgres.sslcert), CFG_STR, "", 0},
    {"postgres.sslkey", S(postgres.sslkey), CFG_STR, "", 0},
    {"postgres.application_name", S(postgres.application_name), CFG_STR, "", 0},
    {"worker.instance", S(worker.instance), CFG_STR, "", 0},
    {"worker.batch_max_messages", S(worker.batch_max_messages), CFG_INT, NULL, 256},
    {"worker.batch_max_wait_ms", S(worker.batch_max_wait_ms), CFG_INT, NULL, 0},
    {"worker.max_attempts", S(worker.max_attempts), CFG_INT, NULL, 5},
    {"worker.inflight_ttl_ms", S(worker.inflight_ttl_ms), CFG_INT, NULL, 30000},
    {"worker.done_ttl_s", S(worker.done_ttl_s), CFG_INT, NULL, 86400},
    {"worker.shutdown_timeout_ms", S(worker.shutdown_timeout_ms), CFG_INT, NULL, 15000},
    {"worker.outbox_sweep_interval_ms", S(worker.outbox_sweep_interval_ms), CFG_INT, NULL, 1000},
    {"worker.outbox_sweep_age_ms", S(worker.outbox_sweep_age_ms), CFG_INT, NULL, 5000},
    {"http.address", S(http.address), CFG_STR, "127.0.0.1", 0},
    {"http.port", S(http.port), CFG_INT, NULL, -1},
    {"http.liveness_timeout_ms", S(http.liveness_timeout_ms), CFG_INT, NULL, 60000},
    {"risk.max_amount", S(risk.max_amount), CFG_STR, "", 0},
    {"risk.blocklist_file", S(risk.blocklist_file), CFG_STR, "", 0},
    {"risk.velocity_count", S(risk.velocity_count), CFG_INT, NULL, 0},
    {"risk.velocity_sum", S(risk.velocity_sum), CFG_INT, NULL, 0},
    {"risk.velocity_window_s", S(risk.velocity_window_s), CFG_INT, NULL, 3600},
    {"risk.score_threshold", S(risk.score_threshold), CFG_INT, NULL, 80},
    {"risk.weight_new_payee", S(risk.weight_new_payee), CFG_INT, NULL, 20},
    {"risk.weight_above_median", S(risk.weight_above_median), CFG_INT, NULL, 60},
    {"risk.median_factor", S(risk.median_factor), CFG_INT, NULL, 10},
    {"risk.ruleset_version", S(risk.ruleset_version), CFG_STR, "1", 0},
    {"signing.approval_keys_file", S(signing.approval_keys_file), CFG_STR, "", 0},
    {"signing.request_keys_file", S(signing.request_keys_file), CFG_STR, "", 0},
    {"signing.allow_unsigned", S(signing.allow_unsigned), CFG_BOOL, "false", 0},
    {"settlement.window_s", S(settlement.window_s), CFG_INT, NULL, 86400},
    {"settlement.grace_ms", S(settlement.grace_ms), CFG_INT, NULL, 5000},
    {"settlement.close_interval_ms", S(settlement.close_interval_ms), CFG_INT, NULL, 1000},
    {"settlement.lock_ttl_ms", S(settlement.lock_ttl_ms), CFG_INT, NULL, 10000},
    {"settlement.close_retry_ms", S(settlement.close_retry_ms), CFG_INT, NULL, 60000},
    {"retention.window_s", S(retention.window_s), CFG_INT, NULL, 604800},
    {"retention.partition_s", S(retention.partition_s), CFG_INT, NULL, 86400},
    {"retention.ahead_s", S(retention.ahead_s), CFG_INT, NULL, 259200},
    {"retention.tick_interval_s", S(retention.tick_interval_s), CFG_INT, NULL, 60},
    {"retention.expire", S(retention.expire), CFG_BOOL, NULL, 1},
    {"retention.archive_first", S(retention.archive_first), CFG_BOOL, NULL, 0},
};

static const cfg_setting_t *find(const char *key)
{
    for (size_t i = 0; i < settings_count; i++) {
        char k[128];
        snprintf(k, sizeof k, "%s.%s", settings_table[i].section, settings_table[i].key);
        if (strcmp(k, key) == 0)
            return &settings_table[i];
    }
    return NULL;
}

START_TEST(settings_documented_defaults)
{
    settings_t s;
    cfg_error_t err;
    char *env[] = {NULL};
    ck_assert_msg(settings_load_env(&s, NULL, env, &err) == LL_OK, "%s", err.msg);
    const cfg_setting_t *row = find(defaults[_i].key);
    ck_assert_msg(row != NULL, "%s not in the table", defaults[_i].key);
    ck_assert_uint_eq(row->offset, defaults[_i].off);
    ck_assert_int_eq(row->type, defaults[_i].type);
    const char *p = (const char *)&s + defaults[_i].off;
    switch (defaults[_i].type) {
    case CFG_STR:
        ck_assert_str_eq(*(char *const *)p, defaults[_i].str);
        break;
    case CFG_INT:
        ck_assert_int_eq(*(const long long *)p, defaults[_i].num);
        break;
    case CFG_ENUM:
        ck_assert_int_eq(*(const int *)p, defaults[_i].num);
        break;
    case CFG_BOOL:
        ck_assert_int_eq(*(const bool *)p, defaults[_i].num);
        break;
    }
    ck_assert_int_eq(s.origins[row - settings_table].from, CFG_FROM_DEFAULT);
    settings_free(&s);
    settings_free(&s);
}
END_TEST

START_TEST(settings_table_is_documented)
{
    /* every row of the table is in the defaults list above, and back */
    ck_assert_uint_eq(settings_count, sizeof defaults / sizeof defaults[0]);
    const char *secrets[] = {"amqp.password", "redis.password", "postgres.password"};
    for (size_t i = 0; i < settings_count; i++) {
        const cfg_setting_t *t = &settings_table[i];
        ck_assert_msg(t->help && strlen(t->help) > 5 && !strchr(t->help, '\n'),
                      "%s.%s: no one-line help", t->section, t->key);
        char k[128];
        snprintf(k, sizeof k, "%s.%s", t->section, t->key);
        bool secret = false;
        for (size_t j = 0; j < 3; j++)
            secret |= strcmp(k, secrets[j]) == 0;
        ck_assert_msg(((t->flags & CFG_SECRET) != 0) == secret, "%s: secret flag wrong", k);
        if (t->type == CFG_INT)
            ck_assert_msg(t->min < t->max, "%s: no range", k);
        if (t->type == CFG_ENUM)
            ck_assert_ptr_nonnull(t->choices);
    }
}
END_TEST

START_TEST(settings_env_names_unique)
{
    for (size_t i = 0; i < settings_count; i++) {
        char a[128], af[160];
        cfg_env_name(&settings_table[i], a, sizeof a);
        snprintf(af, sizeof af, "%s_FILE", a);
        for (size_t j = i + 1; j < settings_count; j++) {
            char b[128];
            cfg_env_name(&settings_table[j], b, sizeof b);
            ck_assert_str_ne(a, b);
            ck_assert_str_ne(af, b); /* a _FILE variable never shadows a setting */
        }
    }
}
END_TEST

START_TEST(settings_reference_one_row_each)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cfg_print_reference(settings_table, settings_count, f);
    fclose(f);
    size_t rows = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        rows++;
        const cfg_setting_t *t = &settings_table[rows - 1];
        char want[160];
        snprintf(want, sizeof want, "| `%s.%s` |", t->section, t->key);
        ck_assert_msg(strncmp(line, want, strlen(want)) == 0, "row %zu: %s", rows, line);
        ck_assert_msg(strstr(line, t->help) != NULL, "row %zu lacks help: %s", rows, line);
    }
    ck_assert_uint_eq(rows, settings_count);
    free(buf);
}
END_TEST

START_TEST(settings_env_and_file)
{
    char path[] = "/tmp/test_settings_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *yaml = "amqp:\n  queue_type: classic\n  prefetch: 10\npostgres:\n"
                       "  sslmode: verify-full\nlog:\n  level: debug\n";
    ck_assert_int_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    char *env[] = {"LEDGERLINE_AMQP_PREFETCH=64", "LEDGERLINE_REDIS_KEY_PREFIX=t:", NULL};
    settings_t s;
    cfg_error_t err;
    ck_assert_msg(settings_load_env(&s, path, env, &err) == LL_OK, "%s", err.msg);
    ck_assert_int_eq(s.amqp.queue_type, SETTINGS_QUEUE_CLASSIC);
    ck_assert_int_eq(s.amqp.prefetch, 64);
    ck_assert_int_eq(s.log.level, LOG_DEBUG);
    ck_assert_str_eq(settings_sslmode_names[s.postgres.sslmode], "verify-full");
    ck_assert_str_eq(s.redis.key_prefix, "t:");
    settings_free(&s);
    unlink(path);
}
END_TEST

START_TEST(settings_error_leaves_nothing)
{
    char *env[] = {"LEDGERLINE_REDIS_DB=16", NULL};
    settings_t s;
    cfg_error_t err;
    ck_assert_int_eq(settings_load_env(&s, NULL, env, &err), LL_ECONFIG);
    ck_assert_msg(strstr(err.msg, "redis.db") && strstr(err.msg, "0..15"), "%s", err.msg);
    ck_assert_ptr_null(s.origins);
    ck_assert_ptr_null(s.redis.host);
    settings_free(&s);
}
END_TEST

/* Rules between settings: each value valid alone, the pair refused with
 * both names and the fix; the boundary itself accepted. */
static const struct {
    const char *a, *b;
    bool ok;
    const char *names; /* in the message */
} cross[] = {
    {"LEDGERLINE_WORKER_DONE_TTL_S=302400", "LEDGERLINE_RETENTION_WINDOW_S=604800", true, NULL},
    {"LEDGERLINE_WORKER_DONE_TTL_S=302401", "LEDGERLINE_RETENTION_WINDOW_S=604800", false,
     "retention.window_s"},
    {"LEDGERLINE_WORKER_DONE_TTL_S=60", "LEDGERLINE_RETENTION_WINDOW_S=120", true, NULL},
    {"LEDGERLINE_RETENTION_AHEAD_S=120", "LEDGERLINE_RETENTION_TICK_INTERVAL_S=60", true, NULL},
    {"LEDGERLINE_RETENTION_AHEAD_S=119", "LEDGERLINE_RETENTION_TICK_INTERVAL_S=60", false,
     "retention.tick_interval_s"},
    /* (604800 + 259200) / 15360 + 2 = 58 partitions; / 14400 + 2 = 62 */
    {"LEDGERLINE_RETENTION_PARTITION_S=15360", "LEDGERLINE_LOG_LEVEL=info", true, NULL},
    {"LEDGERLINE_RETENTION_PARTITION_S=14400", "LEDGERLINE_LOG_LEVEL=info", false,
     "retention.partition_s"},
};

START_TEST(settings_cross_rules_name_both_settings)
{
    char *env[] = {(char *)cross[_i].a, (char *)cross[_i].b, NULL};
    settings_t s;
    cfg_error_t err;
    int rc = settings_load_env(&s, NULL, env, &err);
    if (cross[_i].ok) {
        ck_assert_msg(rc == LL_OK, "%s %s: %s", cross[_i].a, cross[_i].b, err.msg);
        settings_free(&s);
        return;
    }
    ck_assert_msg(rc == LL_ECONFIG, "%s %s accepted", cross[_i].a, cross[_i].b);
    ck_assert_msg(strstr(err.msg, cross[_i].names) && strstr(err.msg, "raise") &&
                      s.origins == NULL && s.redis.host == NULL,
                  "%s", err.msg);
    settings_free(&s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("settings");
    TCase *tc = tcase_create("settings");
    tcase_add_loop_test(tc, settings_documented_defaults, 0,
                        (int)(sizeof defaults / sizeof defaults[0]));
    tcase_add_test(tc, settings_table_is_documented);
    tcase_add_test(tc, settings_env_names_unique);
    tcase_add_test(tc, settings_reference_one_row_each);
    tcase_add_test(tc, settings_env_and_file);
    tcase_add_test(tc, settings_error_leaves_nothing);
    tcase_add_loop_test(tc, settings_cross_rules_name_both_settings, 0,
                        (int)(sizeof cross / sizeof cross[0]));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
