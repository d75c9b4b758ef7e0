/*
 * ctl.h - what every ledgerctl command shares: the loaded settings, lazily
 * opened PostgreSQL and RabbitMQ connections, option parsing, output.
 *
 * Conventions of every command:
 *   - exit 0 on success, 1 when the command ran and failed (or found a
 *     broken invariant), 2 on a usage error;
 *   - errors go to stderr as "ledgerctl: <problem>" followed by
 *     "  fix: <what to do>", never a bare errno;
 *   - --json prints one JSON document on stdout for scripts;
 *   - --help prints the command's usage on stdout and exits 0.
 *
 * Public API: ctl_t, ctl_cmd_t, ctl_fail, ctl_usage_error, ctl_db, ctl_mq, ctl_mq_new,
 * ctl_getopt, ctl_json_print, ctl_valid_id, ctl_id_arg, CTL_SQL_TIME, ctl_money,
 * ctl_period, ctl_verify_ledger, ctl_verify_count, ctl_send, ctl_derived_id,
 * ctl_commands, ctl_find_cmd, the cmd_* entry points.
 */
#ifndef LL_CTL_H
#define LL_CTL_H

#include <getopt.h>
#include <stdbool.h>
#include <jansson.h>

#include "db.h"
#include "mq.h"
#include "msg.h"
#include "settings.h"
#include "sign.h"

typedef struct ctl {
    settings_t cfg;
    const char *config_path; /* NULL: environment only */
    bool json;
    db_t *db; /* opened by ctl_db() */
    mq_t *mq; /* opened by ctl_mq() */
} ctl_t;

typedef struct ctl_cmd {
    const char *name; /* "account create" */
    int (*run)(ctl_t *c, int argc, char **argv);
    const char *summary; /* one line for `ledgerctl --help` */
    const char *usage;   /* full text for `ledgerctl <cmd> --help` */
} ctl_cmd_t;

/* Prints "ledgerctl: <problem>\n  fix: <fix>\n" to stderr; returns 1. */
int ctl_fail(const char *fix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the problem and the command's usage line to stderr; returns 2. */
int ctl_usage_error(const ctl_cmd_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The PostgreSQL / RabbitMQ connection, opened on first use. NULL after
 * printing an error that names the server and how to reach it. */
db_t *ctl_db(ctl_t *c);
mq_t *ctl_mq(ctl_t *c);
/* Another RabbitMQ connection with the same settings, its name ending in
 * `role` ("tap"), for a command that needs more than one; caller frees
 * with mq_free(). NULL after printing the error. */
mq_t *ctl_mq_new(ctl_t *c, const char *role);

/*
 * getopt_long over a command's argv with --json and --help added.
 * Returns the option like getopt_long, 'h' when --help was given (the usage
 * has been printed), '?' on a bad option (an error has been printed), -1 at
 * the end. --json sets c->json.
 */
int ctl_getopt(ctl_t *c, const ctl_cmd_t *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* Prints `j` compactly on stdout with a newline and releases it. */
void ctl_json_print(json_t *j);

/* An account id or payment id: 1-64 chars of [A-Za-z0-9_.:-]. */
bool ctl_valid_id(const char *s);

/* The one positional ID argument of a command (`what`: "payment id",
 * "account id"): 0 with *id set, or 2 after printing the usage error. */
int ctl_id_arg(const ctl_cmd_t *cmd, int argc, char **argv, const char *what, const char **id);

/* The SQL text of timestamptz `col` as the contract writes times:
 * YYYY-MM-DDTHH:MM:SS.mmmZ, UTC. */
#define CTL_SQL_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* "12.34" for 1234 EUR into buf (or the minor units when the currency is
 * unknown); returns buf. */
const char *ctl_money(int64_t amount, const char *currency, char *buf, size_t n);

/* The period [--from, --to) of a command: sets the session's time zone to
 * UTC (times without a zone are UTC), has PostgreSQL parse each time and
 * checks from < to. 0, or the exit status after printing the problem
 * (2: a usage error naming the flag). */
int ctl_period(const ctl_cmd_t *cmd, db_t *db, const char *from, const char *to);

int cmd_migrate(ctl_t *c, int argc, char **argv);
int cmd_dlq_list(ctl_t *c, int argc, char **argv);
int cmd_dlq_show(ctl_t *c, int argc, char **argv);
int cmd_dlq_replay(ctl_t *c, int argc, char **argv);
int cmd_dlq_purge(ctl_t *c, int argc, char **argv);
int cmd_topology_apply(ctl_t *c, int argc, char **argv);
int cmd_users_apply(ctl_t *c, int argc, char **argv);
int cmd_keys_generate(ctl_t *c, int argc, char **argv);
int cmd_account_create(ctl_t *c, int argc, char **argv);
int cmd_account_fund(ctl_t *c, int argc, char **argv);
int cmd_account_freeze(ctl_t *c, int argc, char **argv);
int cmd_account_unfreeze(ctl_t *c, int argc, char **argv);
int cmd_account_show(ctl_t *c, int argc, char **argv);
int cmd_account_list(ctl_t *c, int argc, char **argv);
int cmd_account_statement(ctl_t *c, int argc, char **argv);
int cmd_publish(ctl_t *c, int argc, char **argv);
int cmd_verify(ctl_t *c, int argc, char **argv);
int cmd_bench(ctl_t *c, int argc, char **argv);
int cmd_status(ctl_t *c, int argc, char **argv);
int cmd_risk_show(ctl_t *c, int argc, char **argv);
int cmd_payment_show(ctl_t *c, int argc, char **argv);
int cmd_refund_request(ctl_t *c, int argc, char **argv);
int cmd_send(ctl_t *c, int argc, char **argv);
int cmd_storage(ctl_t *c, int argc, char **argv);
int cmd_archive(ctl_t *c, int argc, char **argv);
/* Publishes one command body of routing key `type` to ledgerline.commands
 * (message_id, signed with the first key of `keys` when not NULL) and
 * waits for its confirm. 0, or the exit status with the error printed. */
/* The id of a message published without one: prefix and 28 hex digits of
 * the SHA-256 of `fields` (compact, keys sorted; taken), so the same
 * command run twice (a retry) publishes the same message. */
void ctl_derived_id(const char *prefix, json_t *fields, char out[MSG_ID_MAX + 1]);
int ctl_send(ctl_t *c, const char *type, const char *body, const char *message_id,
             sign_keyring_t *keys);
int cmd_payment_list(ctl_t *c, int argc, char **argv);
int cmd_settlement_list(ctl_t *c, int argc, char **argv);
int cmd_settlement_show(ctl_t *c, int argc, char **argv);
int cmd_config_check(ctl_t *c, int argc, char **argv);
int cmd_config_reference(ctl_t *c, int argc, char **argv);

/* Checks every ledger invariant (cmd_verify.c) in one snapshot: the
 * number broken (0: all hold), or -1 when they could not be checked (the
 * error is printed). Appends one {name, promise, ok, rows} object per
 * invariant to `list` when not NULL; prints the text report when `print`.
 * ctl_verify_count(): how many invariants there are. */
/* --unsent-within's default: an event the broker has not confirmed for 5
 * minutes is stuck (the sweep republishes after worker.outbox_sweep_age_ms,
 * 5 s by default). */
#define CTL_VERIFY_UNSENT_WITHIN 300
int ctl_verify_ledger(ctl_t *c, int64_t settle_within, int64_t unsent_within, json_t *list,
                      bool print);
size_t ctl_verify_count(void);

/* The command table (commands.c), ending with a NULL name, and one
 * command of it by name (NULL if none): for main's dispatch and usage,
 * and for each command's own --help. */
const ctl_cmd_t *ctl_commands(void);
const ctl_cmd_t *ctl_find_cmd(const char *name);

#endif
