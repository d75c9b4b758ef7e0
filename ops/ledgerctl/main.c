/*
 * main.c - ledgerctl: the operator's command line for Ledgerline.
 *
 * Parses the global options, loads the settings (YAML file given by
 * --config or LEDGERLINE_CONFIG, then LEDGERLINE_* environment), and runs
 * one command from the table below. Commands live one group per file:
 * cmd_migrate.c, cmd_topology.c, cmd_account.c, cmd_publish.c,
 * cmd_verify.c, cmd_config.c; shared plumbing in ctl.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"

static const ctl_cmd_t commands[] = {
    {"migrate", cmd_migrate, "apply pending SQL migrations (safe to run concurrently)",
     "usage: ledgerctl migrate [--json]\n"
     "  Applies the numbered migrations compiled into ledgerctl (schemas/sql/) that\n"
     "  the database does not have yet, each once, and records them in\n"
     "  schema_migrations. Several ledgerctl processes may run it at once.\n"},
    {"topology apply", cmd_topology_apply, "declare exchanges, queues and bindings (idempotent)",
     "usage: ledgerctl topology apply [--json]\n"
     "  Declares the topology of schemas/topology.yaml on RabbitMQ. Work and dead\n"
     "  queues get the type of amqp.queue_type (quorum by default).\n"},
    {"account create", cmd_account_create, "create a customer or merchant account",
     "usage: ledgerctl account create ID --currency CUR [--kind customer|merchant]\n"
     "                                [--overdraft N] [--fee-bps N] [--fee-fixed N] [--json]\n"
     "  ID: 1-64 chars of [A-Za-z0-9_.:-]. CUR: ISO 4217 code. --overdraft: how far\n"
     "  below zero the balance may go, in minor units (default 0). --fee-bps and\n"
     "  --fee-fixed: merchant settlement fees (basis points, minor units).\n"
     "  Creating an account that exists with the same attributes is a no-op.\n"},
    {"account fund", cmd_account_fund, "credit an account from the system funding account",
     "usage: ledgerctl account fund ID AMOUNT [--ref REF] [--json]\n"
     "  AMOUNT in minor units (1234 = 12.34 EUR). Posts a transfer from the\n"
     "  system account sys:funding:<CUR>, so balances still sum to zero.\n"
     "  --ref makes it idempotent: funding again with the same ref does nothing.\n"},
    {"account freeze", cmd_account_freeze, "freeze an account (payments to or from it fail)",
     "usage: ledgerctl account freeze ID [--json]\n"},
    {"account unfreeze", cmd_account_unfreeze, "make a frozen account active again",
     "usage: ledgerctl account unfreeze ID [--json]\n"},
    {"account show", cmd_account_show, "show an account and its latest entries",
     "usage: ledgerctl account show ID [--entries N] [--json]\n"},
    {"account list", cmd_account_list, "list accounts",
     "usage: ledgerctl account list [--kind K] [--json]\n"},
    {"publish", cmd_publish, "publish payment requests (one, or N generated)",
     "usage: ledgerctl publish --payer ID --payee ID --amount N --currency CUR\n"
     "                         [--payment-id ID] [--description TEXT] [--metadata K=V]...\n"
     "       ledgerctl publish --count N [--seed S] --payers A,B,.. --payees C,D,..\n"
     "                         --currency CUR [--min-amount N] [--max-amount N]\n"
     "       common: [--type payment.requested|payment.approved] [--window W]\n"
     "               [--key-file F] [--json]\n"
     "  Publishes persistent messages with publisher confirms (W unconfirmed at\n"
     "  most, default 256) and fails unless the broker confirmed every one.\n"
     "  Generated payments have ids gen-<seed>-<i>: the same seed gives the same\n"
     "  payments, so publishing twice produces duplicates the workers dedupe.\n"
     "  --type payment.approved publishes straight to the payments queue (as if\n"
     "  risk had approved, score 0): for benchmarks of the payment stage.\n"
     "  --key-file signs every body with the first key of F (\"KEY_ID SECRET\"\n"
     "  lines), in header x-ledgerline-signature (signing.request_keys_file).\n"},
    {"verify", cmd_verify, "check every ledger invariant; exit 1 if one is broken",
     "usage: ledgerctl verify [--settle-within SECONDS] [--json]\n"
     "  Checks the invariants of DESIGN.md section 4 and prints each broken one\n"
     "  with the rows involved (at most 20 each). A payment posted less than\n"
     "  --settle-within seconds ago (default 900) may still be on its way to a\n"
     "  settlement batch; an older one must be in one (payment_settled).\n"},
    {"bench", cmd_bench, "load a deployment: payments per second, latency, then verify",
     "usage: ledgerctl bench [--count N | --duration S] [--rate R] [--window W]\n"
     "                       [--stage pipeline|risk|payment|settlement] [--prefill]\n"
     "                       [--payers N] [--payees N] [--payer-list A,B,..]\n"
     "                       [--payee-list C,D,..] [--currency CUR] [--min-amount N]\n"
     "                       [--max-amount N] [--run-id ID] [--key-file F]\n"
     "                       [--timeout S] [--no-verify] [--json]\n"
     "       ledgerctl bench --broker [--count N] [--size BYTES] [--window W] [--json]\n"
     "  Publishes payment.requested (ids bench-<run id>-<i>) at --rate per second,\n"
     "  or as fast as publisher confirms allow (W unconfirmed at most, default\n"
     "  256), --count of them (default 10000) or for --duration seconds, and\n"
     "  follows every one through the stages on a private queue bound to\n"
     "  ledgerline.events (and PostgreSQL for settlement, which publishes no event\n"
     "  per payment) until it is decided, posted or failed, and in a settlement\n"
     "  batch, or --timeout (default 600 s) passes. A live line on a terminal shows\n"
     "  rates, backlog and p99 so far. The report: outcome counts, each stage's rate\n"
     "  (its first to its last outcome), the run's payments/s, latency percentiles\n"
     "  from publish to the risk decision, to payment.completed and to the\n"
     "  settlement batch (settlement_items.added_at), then `verify` (--no-verify\n"
     "  skips it). Exit 1 if a stage fell short or the ledger is broken.\n"
     "  Accounts: bench-payer-1..N (default 2000, funded once from\n"
     "  sys:funding:<CUR>) and bench-shop-1..M (default 500, merchants with fees\n"
     "  150 bps + 25) are created unless --payer-list/--payee-list name existing\n"
     "  ones. Amounts are uniform in --min-amount..--max-amount (100..10000).\n"
     "  --stage risk|payment stops at that stage (payment publishes\n"
     "  payment.approved as the risk-worker would; --key-file signs like it);\n"
     "  --stage settlement publishes nothing and follows --count payments of an\n"
     "  earlier --run-id into settlement batches. --prefill publishes everything\n"
     "  first, says \"prefilled\" on stderr, then follows: start the workers after it\n"
     "  to measure a drain (rates count from the first outcome).\n"
     "  --broker measures RabbitMQ alone, the baseline of a run: --count persistent\n"
     "  messages (default 50000) of --size bytes (512) through a quorum queue of\n"
     "  its own, published with confirms and consumed with acks at once.\n"},
    {"status", cmd_status, "depth and consumers of every queue (work, dead, retry)",
     "usage: ledgerctl status [--queue NAME] [--json]\n"
     "  Ready messages and consumers of each queue of the topology. With --queue,\n"
     "  prints only that queue's ready-message count (for scripts).\n"},
    {"risk show", cmd_risk_show, "the risk decision of a payment: score, rules, rule set",
     "usage: ledgerctl risk show PAYMENT_ID [--json]\n"
     "  The decision the risk-worker recorded: approved or declined, the score, the\n"
     "  rules that fired and the rule-set version (risk.ruleset_version).\n"},
    {"settlement list", cmd_settlement_list, "settlement batches: window, totals, status",
     "usage: ledgerctl settlement list [--json]\n"},
    {"settlement show", cmd_settlement_show, "one settlement batch and its payments",
     "usage: ledgerctl settlement show BATCH_ID [--json]\n"},
    {"config check", cmd_config_check, "validate the configuration and print it (secrets masked)",
     "usage: ledgerctl config check\n"
     "  Same as --check-config: loads the file and environment, prints the\n"
     "  effective configuration with where each value came from.\n"},
    {"config reference", cmd_config_reference, "print every setting as a Markdown table",
     "usage: ledgerctl config reference\n"},
    {NULL, NULL, NULL, NULL},
};

const ctl_cmd_t *ctl_find_cmd(const char *name)
{
    for (const ctl_cmd_t *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: ledgerctl [--config FILE] [--json] COMMAND [ARGS]\n\n"
                 "Operate a Ledgerline deployment. Connection settings come from\n"
                 "LEDGERLINE_* variables (eval \"$(./ops/stack env)\" for the local stack)\n"
                 "and, optionally, a YAML file (--config or LEDGERLINE_CONFIG).\n\n"
                 "commands:\n");
    for (const ctl_cmd_t *c = commands; c->name; c++)
        fprintf(out, "  %-18s %s\n", c->name, c->summary);
    fprintf(out, "\n`ledgerctl COMMAND --help` shows a command's options.\n");
}

/* Is argv[i] the group word of a two-word command ("account", ...)? */
static bool is_group(const char *w)
{
    size_t n = strlen(w);
    for (const ctl_cmd_t *c = commands; c->name; c++)
        if (strncmp(c->name, w, n) == 0 && c->name[n] == ' ')
            return true;
    return false;
}

static void group_usage(const char *group)
{
    size_t n = strlen(group);
    fprintf(stderr, "ledgerctl %s: which one?\n", group);
    for (const ctl_cmd_t *c = commands; c->name; c++)
        if (strncmp(c->name, group, n) == 0 && c->name[n] == ' ')
            fprintf(stderr, "  ledgerctl %-18s %s\n", c->name, c->summary);
}

int main(int argc, char **argv)
{
    ctl_t c;
    memset(&c, 0, sizeof c);
    c.config_path = getenv("LEDGERLINE_CONFIG");
    if (c.config_path && !*c.config_path)
        c.config_path = NULL;

    int i = 1;
    bool check_config = false;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("ledgerctl %s\n", LEDGERLINE_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = true;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_config = true;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            c.config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            c.config_path = argv[i] + 9;
        } else {
            fprintf(stderr,
                    "ledgerctl: unknown option '%s'\n  fix: see `ledgerctl --help`; command "
                    "options go after the command\n",
                    argv[i]);
            return 2;
        }
    }
    if (!check_config && i >= argc) {
        usage(stderr);
        return 2;
    }

    cfg_error_t err;
    memset(&err, 0, sizeof err);
    if (settings_load(&c.cfg, c.config_path, &err) != LL_OK) {
        /* msg names the source, line, key, the problem and the fix */
        fprintf(stderr, "ledgerctl: %s\n", err.msg);
        settings_free(&c.cfg);
        return 2;
    }
    log_init("ledgerctl", LOG_WARN);

    int rc;
    if (check_config) {
        rc = cmd_config_check(&c, 0, NULL);
        goto out;
    }
    char name[64];
    int used = 1;
    if (is_group(argv[i])) {
        if (i + 1 >= argc || argv[i + 1][0] == '-') {
            group_usage(argv[i]);
            rc = 2;
            goto out;
        }
        snprintf(name, sizeof name, "%s %s", argv[i], argv[i + 1]);
        used = 2;
    } else {
        snprintf(name, sizeof name, "%s", argv[i]);
    }
    const ctl_cmd_t *cmd = ctl_find_cmd(name);
    if (!cmd) {
        fprintf(stderr, "ledgerctl: unknown command '%s'\n  fix: `ledgerctl --help` lists them\n",
                name);
        rc = 2;
        goto out;
    }
    /* the command sees argv[0] = its name, then its own arguments */
    int cargc = argc - i - used + 1;
    char **cargv = argv + i + used - 1;
    rc = cmd->run(&c, cargc, cargv);
out:
    db_free(c.db);
    mq_free(c.mq);
    settings_free(&c.cfg);
    return rc;
}
