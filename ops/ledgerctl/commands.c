/*
 * commands.c - the table of ledgerctl's commands: name, entry point,
 * one-line summary and --help text of each (the usage text lives here, so
 * `ledgerctl --help` and every `ledgerctl COMMAND --help` come from one
 * place).
 */
#include <string.h>

#include "ctl.h"

static const ctl_cmd_t commands[] = {
    {"migrate", cmd_migrate, "apply pending SQL migrations and functions (safe concurrently)",
     "usage: ledgerctl migrate [--json]\n"
     "  Applies the numbered migrations compiled into ledgerctl\n"
     "  (schemas/sql/migrations/) that the database does not have yet, each once,\n"
     "  recorded in schema_migrations; then re-applies the SQL functions\n"
     "  (schemas/sql/functions/) if the database records another function set\n"
     "  (schema_functions). Workers refuse a database that differs from their build\n"
     "  in either. Several ledgerctl processes may run it at once.\n"
     "  See docs/ledger.md#schema-evolution.\n"},
    {"topology apply", cmd_topology_apply,
     "declare exchanges, queues, bindings and length policies (idempotent)",
     "usage: ledgerctl topology apply [--json]\n"
     "  Declares the topology of schemas/topology.yaml on RabbitMQ. Work and dead\n"
     "  queues get the type of amqp.queue_type (quorum by default). Then, through\n"
     "  the management API (amqp.management_url; the user needs the policymaker\n"
     "  tag), sets the policies that bound the dead queues (ledgerline-dead:\n"
     "  amqp.dead_max_length, amqp.dead_overflow) and events.audit\n"
     "  (ledgerline-audit: amqp.audit_max_length, drop-head).\n"},
    {"users apply", cmd_users_apply,
     "create or update the least-privilege RabbitMQ users (idempotent)",
     "usage: ledgerctl users apply --secrets-dir DIR [--json]\n"
     "  Creates or updates, through the management API (amqp.management_url; the\n"
     "  user needs the administrator tag), the users of schemas/users.json on\n"
     "  amqp.vhost: ledgerline-producer (may only publish payment.requested and\n"
     "  refund.requested to ledgerline.commands), ledgerline-risk,\n"
     "  ledgerline-payment, ledgerline-settlement and ledgerline-refund (each may\n"
     "  publish only its own events, consume only its queue), ledgerline-monitor\n"
     "  (management API read-only, no AMQP rights).\n"
     "  Each password is DIR/<user>.password: kept if the file exists, else\n"
     "  generated (mode 0600). Give each worker kind its user and file\n"
     "  (amqp.user, amqp.password_file). See docs/contract.md#users-and-permissions.\n"},
    {"keys generate", cmd_keys_generate, "write a new signing key file (mode 0600)",
     "usage: ledgerctl keys generate --out FILE [--id KEY_ID] [--if-missing] [--json]\n"
     "  Writes \"KEY_ID SECRET\" (32 random bytes in hex; KEY_ID default\n"
     "  k<YYYYMMDD>) to FILE, created with mode 0600, for\n"
     "  signing.approval_keys_file of the risk and payment workers. Never\n"
     "  overwrites: with --if-missing an existing key file is checked and kept.\n"
     "  Rotate by adding a new key as the first line (README, \"Signed approvals\").\n"},
    {"account create", cmd_account_create, "create a customer or merchant account",
     "usage: ledgerctl account create ID --currency CUR [--kind customer|merchant]\n"
     "                                [--overdraft N] [--fee-bps N] [--fee-fixed N] [--json]\n"
     "  ID: 1-64 chars of [A-Za-z0-9_.:-]. CUR: ISO 4217 code. --overdraft: how far\n"
     "  below zero the balance may go, in minor units (default 0). --fee-bps and\n"
     "  --fee-fixed: merchant settlement fees (basis points, minor units).\n"
     "  Creating an account that exists with the same attributes is a no-op.\n"},
    {"account fund", cmd_account_fund, "credit an account from the system funding account",
     "usage: ledgerctl account fund ID AMOUNT --ref REF [--json]\n"
     "  AMOUNT in minor units (1234 = 12.34 EUR). Posts a transfer from the\n"
     "  system account sys:funding:<CUR>, so balances still sum to zero.\n"
     "  --ref (required) names the funding: the same ref again does nothing, so a\n"
     "  retried command funds once; the same ref with another account or amount\n"
     "  is refused.\n"},
    {"account freeze", cmd_account_freeze, "freeze an account (payments to or from it fail)",
     "usage: ledgerctl account freeze ID [--json]\n"},
    {"account unfreeze", cmd_account_unfreeze, "make a frozen account active again",
     "usage: ledgerctl account unfreeze ID [--json]\n"},
    {"account show", cmd_account_show, "show an account and its latest entries",
     "usage: ledgerctl account show ID [--entries N] [--json]\n"},
    {"account list", cmd_account_list, "list accounts",
     "usage: ledgerctl account list [--kind K] [--json]\n"},
    {"account statement", cmd_account_statement, "an account's statement over a period (text, CSV)",
     "usage: ledgerctl account statement ID [--from TIME] [--to TIME] [--csv | --json]\n"
     "  The opening balance at --from (default: the beginning), every entry of the\n"
     "  period [--from, --to) in time order (kind, ref, the other account, amount,\n"
     "  balance after it) and the closing balance at --to (default: now). TIME is\n"
     "  2026-12-01 or 2026-12-01T10:00:00Z (no zone: UTC). Balances are sums of\n"
     "  entries, so opening + entries = closing for any period. --csv: amounts\n"
     "  and balances in minor units, an opening and a closing row.\n"},
    {"publish", cmd_publish, "publish payment requests (one, or N generated)",
     "usage: ledgerctl publish --payer ID --payee ID --amount N --currency CUR\n"
     "                         [--payment-id ID] [--description TEXT] [--metadata K=V]...\n"
     "       ledgerctl publish --count N [--seed S] --payers A,B,.. --payees C,D,..\n"
     "                         --currency CUR [--min-amount N] [--max-amount N]\n"
     "       common: [--type payment.requested|payment.approved] [--window W]\n"
     "               [--key-file F] [--json]\n"
     "  Publishes persistent messages with publisher confirms (W unconfirmed at\n"
     "  most, default 256) and fails unless the broker confirmed every one.\n"
     "  Every command is safe to retry: one payment's id is --payment-id or, without\n"
     "  it, cli-<hash of payer, payee, amount, currency, description, metadata>, so\n"
     "  the same command twice is one payment (give --payment-id for a second,\n"
     "  identical one); generated payments have ids gen-<seed>-<i>: the same seed\n"
     "  gives the same payments. Duplicates are deduplicated by the workers.\n"
     "  --description must be valid UTF-8; each --metadata key may appear once.\n"
     "  --type payment.approved publishes straight to the payments queue (as if\n"
     "  risk had approved, score 0): for benchmarks of the payment stage.\n"
     "  --key-file signs every body with the first key of F (\"KEY_ID SECRET\"\n"
     "  lines), in header x-ledgerline-signature (signing.request_keys_file).\n"},
    {"verify", cmd_verify, "check every ledger invariant; exit 1 if one is broken",
     "usage: ledgerctl verify [--settle-within SECONDS] [--unsent-within SECONDS] [--json]\n"
     "  Checks the invariants of docs/ledger.md#invariants, prints each broken one\n"
     "  with the rows involved (at most 20 each). A payment posted less than\n"
     "  --settle-within seconds ago (default 900) may still be on its way to a\n"
     "  settlement batch; an older one must be in one (payment_settled). An event\n"
     "  committed more than --unsent-within seconds ago (default 300) must have been\n"
     "  confirmed by the broker (outbox_sent).\n"},
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
    {"status", cmd_status, "one screen for an operator: servers, queues, dead letters, workers",
     "usage: ledgerctl status [--watch] [--interval SECONDS] [--outbox-age SECONDS] [--json]\n"
     "       ledgerctl status --queue NAME [--json]\n"
     "  Whether PostgreSQL, Redis and RabbitMQ (AMQP and its management API,\n"
     "  amqp.management_url) answer; per queue of the topology: ready, unacked,\n"
     "  consumers, publish and deliver rates, age of the oldest message (n/a for\n"
     "  quorum queues: RabbitMQ 3.10 does not report it); dead letters by reason\n"
     "  (the first 10000 of each dead queue, read without removing them); the\n"
     "  outbox backlog per stage; held and overdue settlement batches; each worker\n"
     "  instance of the Redis worker registry (ready, rate, p99, last error) and\n"
     "  RabbitMQ's consumers (workers without Redis show there).\n"
     "  Exit 0 when nothing needs a human; 1 when something does, each named on\n"
     "  stderr with its fix: a server down, dead letters, a work queue with messages\n"
     "  and no consumer, an outbox event unsent for longer than --outbox-age\n"
     "  (default 60), a held or overdue batch, a registered worker not ready.\n"
     "  --watch redraws every --interval seconds (default 2) until interrupted.\n"
     "  --queue NAME prints only that queue's ready count, over AMQP alone (scripts).\n"
     "  See docs/operations.md#status.\n"},
    {"dlq list", cmd_dlq_list, "dead letters of a queue: reason, detail, worker, first seen",
     "usage: ledgerctl dlq list QUEUE [--reason R] [--payment-id ID] [--position N]\n"
     "                          [--older-than DUR] [--newer-than DUR] [--limit N] [--json]\n"
     "  QUEUE is a work queue (risk, payments, settlement) or its dead queue\n"
     "  (risk.dead...). Lists the dead letters without removing them: position,\n"
     "  reason, payment_id (read from the body when it can be), detail, the worker\n"
     "  that parked it and when (FIRST_SEEN). A letter the broker dead-lettered\n"
     "  itself (x-delivery-limit exceeded: the message kept killing its worker) has\n"
     "  no worker and its reason from x-death (delivery_limit). Filters: --reason\n"
     "  and --payment-id match exactly; --older-than/--newer-than compare the age\n"
     "  (now minus the parked time; DUR is a number with s, m, h or d: 30s, 5m, 2h,\n"
     "  1d); --limit N keeps the first N matches. Positions stay the same from one\n"
     "  command to the next while no letter in front is removed, so `dlq show QUEUE\n"
     "  N` and --position N name the letter listed at N. Reading takes every letter\n"
     "  unacked for a moment and gives it back in order: run one dlq command at a\n"
     "  time per queue.\n"},
    {"dlq show", cmd_dlq_show, "one dead letter: headers and body",
     "usage: ledgerctl dlq show QUEUE POSITION|--payment-id ID [--json]\n"
     "  Prints what `dlq list` says of the letter, its route, its AMQP properties,\n"
     "  every header (x-death as JSON) and its body as is. --payment-id shows the\n"
     "  first letter of that payment and names the positions of any others.\n"},
    {"dlq replay", cmd_dlq_replay, "publish selected dead letters to their original route again",
     "usage: ledgerctl dlq replay QUEUE [filters of dlq list] [--all] [--dry-run] [--json]\n"
     "  Publishes each selected dead letter again to the exchange and routing key it\n"
     "  was first sent with (headers x-ledgerline-exchange/-routing-key, else the\n"
     "  broker's x-death, else the work queue's binding in the topology), body and\n"
     "  properties as they are, without the parked-copy headers (x-ledgerline-*,\n"
     "  but the producer's x-ledgerline-signature is kept) and the broker's\n"
     "  (x-death, x-first-death-*, x-delivery-count), mandatory and with publisher\n"
     "  confirms; only a confirmed letter is removed from the dead queue. A letter\n"
     "  the broker returns or refuses (no queue bound, no such exchange) stays, and\n"
     "  the command exits 1 naming the route. A crash between the publish and the\n"
     "  removal leaves the letter in the dead queue too: replaying it again is safe,\n"
     "  because every stage deduplicates by payment_id. Fix the cause first (a key,\n"
     "  a rule, an account), or the letter comes back. --dry-run prints what would\n"
     "  be replayed and where, and changes nothing. Without a filter, --all is\n"
     "  required.\n"},
    {"dlq purge", cmd_dlq_purge, "delete selected dead letters for good",
     "usage: ledgerctl dlq purge QUEUE [filters of dlq list] [--all] [--yes] [--dry-run]\n"
     "                           [--json]\n"
     "  Deletes the selected dead letters and nothing else. Counts them and asks for\n"
     "  confirmation on a terminal unless --yes; when stdin is not a terminal, --yes\n"
     "  is required. Without a filter, --all is required. --dry-run prints what\n"
     "  would be deleted and changes nothing.\n"},
    {"payment show", cmd_payment_show, "the whole life of one payment: request to payout",
     "usage: ledgerctl payment show PAYMENT_ID [--json]\n"
     "  One view, read in one snapshot: the request as risk recorded it, each\n"
     "  stage's outcome, the risk decision (score, rules, rule set), the posting\n"
     "  (transfer, and each account's balance after it), every event stored for\n"
     "  it with its event_id and whether the broker confirmed it, and the\n"
     "  settlement batch (window, fee, late, closed, payout transfer), and its\n"
     "  refunds (outcome, transfer, the batch that nets each, their events). A\n"
     "  request rejected as bad input was never processed: `ledgerctl dlq list`\n"
     "  has it.\n"},
    {"storage", cmd_storage, "disk used per table: the books and the bookkeeping",
     "usage: ledgerctl storage [--json]\n"
     "  Each table of the ledger with its size (rows, indexes and TOAST) and\n"
     "  estimated rows, classed books (the ledger's record, kept forever) or\n"
     "  bookkeeping (processed claims and payloads, the outbox: what exactly-once\n"
     "  delivery needs for a while); their totals, the database's size, and the\n"
     "  bytes of tables per posted payment, the figure to watch for growth.\n"},
    {"archive", cmd_archive, "write expired bookkeeping (and closed batches) to files; verify",
     "usage: ledgerctl archive --before TIME --to DIR [--books] [--json]\n"
     "       ledgerctl archive verify DIR [--json]\n"
     "  Writes every processed row and outbox event created before TIME (at least\n"
     "  an hour ago; UTC unless it names a zone) to DIR, a new directory: one\n"
     "  gzip-compressed CSV file per table and manifest.json (rows, bytes and\n"
     "  SHA-256 of each), from one snapshot, renamed into place only when\n"
     "  complete; then records it, so that with retention.archive_first the\n"
     "  retention job drops only what an archive holds. --books adds the\n"
     "  settlement batches closed before TIME with their items, refunds and\n"
     "  transfers (the books are kept in the database too). `archive verify`\n"
     "  checks each file of DIR against the manifest.\n"},
    {"send", cmd_send, "send one command message (payment, refund, deposit, withdrawal, return)",
     "usage: ledgerctl send TYPE BODY|- [--key-file F] [--json]\n"
     "  Publishes BODY (JSON; - reads stdin) with routing key TYPE to\n"
     "  ledgerline.commands and waits for the broker's confirm. TYPE is one of\n"
     "  payment.requested, refund.requested, deposit.received (rail adapters),\n"
     "  withdrawal.requested, withdrawal.returned (rail adapters). The body is\n"
     "  checked with the decoder of the stage that takes it first, so a bad value\n"
     "  is reported here (schemas/json/ has each schema). Its id field is the\n"
     "  message_id; sending the same body again is deduplicated by the workers.\n"
     "  --key-file signs it like `publish --key-file`. Example:\n"
     "    ledgerctl send deposit.received '{\"deposit_id\":\"d-1\",\"account\":\"alice\",\n"
     "      \"amount\":5000,\"currency\":\"EUR\",\"rail\":\"sepa\",\"rail_reference\":\"r-1\"}'\n"},
    {"refund request", cmd_refund_request, "ask for a full or partial refund of a payment",
     "usage: ledgerctl refund request PAYMENT_ID --amount N [--refund-id ID]\n"
     "                               [--reason TEXT] [--key-file F] [--json]\n"
     "  Publishes one refund.requested to ledgerline.commands (publisher confirm);\n"
     "  refund-worker decides it: refund.completed (a transfer from the payee back\n"
     "  to the payer, netted by the payee's settlement batch) or refund.failed\n"
     "  with its reason. N in minor units of the payment's currency. Without\n"
     "  --refund-id the id is rf-<hash of payment, amount, reason>: the same\n"
     "  command twice is one refund (give --refund-id for a second, identical\n"
     "  one). --key-file signs the body like `publish --key-file`. The outcome:\n"
     "  `ledgerctl payment show PAYMENT_ID`.\n"},
    {"payment list", cmd_payment_list, "payments by account, status and time, a page at a time",
     "usage: ledgerctl payment list [--account ID] [--status S] [--from TIME] [--to TIME]\n"
     "                              [--limit N] [--after PAYMENT_ID] [--json]\n"
     "  Decided payments (risk_decisions) in decision order: time, id, payer, payee,\n"
     "  amount, status (pending, declined, completed, failed) with the decline rules\n"
     "  or failure reason, and the settlement batch. --account: as payer or payee;\n"
     "  --status: a status or a payment.failed reason; --from/--to: the decision\n"
     "  time, [from, to), no zone: UTC; --limit: page size (default 50, at most\n"
     "  10000); --after: the last id of the previous page (printed as \"more:\").\n"
     "  Requests rejected as bad input were never decided: `ledgerctl dlq list`.\n"},
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

const ctl_cmd_t *ctl_commands(void)
{
    return commands;
}

const ctl_cmd_t *ctl_find_cmd(const char *name)
{
    for (const ctl_cmd_t *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}
