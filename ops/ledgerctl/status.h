/*
 * status.h - what the files of `ledgerctl status` share: the state kept
 * between --watch rounds, and the one JSON document a round gathers (what
 * --json prints, and what the text screen is drawn from).
 *
 *   status.c          the state's init/free, problems, reading the document;
 *   status_servers.c  asking each server whether it is up (connections
 *                     are kept across rounds and reopened when they died);
 *   status_gather.c   one round: the servers, then what they hold;
 *   status_draw.c     the text screen, the JSON document, the problems;
 *   cmd_status.c      the command: options, --queue, --watch, exit status.
 *
 * The document of one round (keys in this order; null: not known this
 * round, because the server it comes from is down):
 *   at            UTC time of the round, "2026-01-31T23:59:59Z";
 *   servers       postgres {up, address, then latency_ms and ledger, or
 *                 error}, redis {up, address, then latency_ms, or error},
 *                 rabbitmq {up, address, and error when down} (AMQP),
 *                 management {up, url, then latency_ms, version, cluster
 *                 and alarms, or error} (the management API);
 *   queues        every queue of the topology: {name, class, missing} or
 *                 {name, class, type, ready, unacked, consumers,
 *                 publish_rate, deliver_rate, ack_rate, policy,
 *                 oldest_age_s, oldest_age_note (why the age is null)};
 *   dead_letters  each dead queue: {queue, depth, scanned, truncated,
 *                 reasons {reason: count}}, or reasons null and error;
 *   outbox        null or {pending, threshold_s, stages [{stage, pending,
 *                 oldest_age_s}]};
 *   settlement    null or {held_count, overdue_count, held, overdue}, each
 *                 batch {id, payee, currency, window_end,
 *                 window_ended_s_ago, and close_error, close_retry_at when
 *                 held};
 *   workers       null or the worker registry's records (the workers'
 *                 own JSON, docs/operations.md#worker-registry), sorted
 *                 by worker and instance;
 *   workers_of_other_ledgers  how many records were left out, when some;
 *   consumers     null or [{queue, connection, peer, consumer_tag,
 *                 prefetch, registered_as}];
 *   ok            no problem;
 *   problems      [{what, problem, fix}]: what needs a human.
 * A server that is down never stops the round: what depends on it says so.
 *
 * Public API: STATUS_SCAN_MAX, dead_scan_t, status_t, status_init,
 * status_free, status_round, status_draw, status_draw_json,
 * status_print_problems; between the files: status__need, status__jnum,
 * status__jstr, status__servers.
 */
#ifndef LL_STATUS_H
#define LL_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "ctl.h"
#include "kv.h"
#include "mgmt.h"
#include "topo.h"

#define STATUS_SCAN_MAX 10000 /* a dead queue deeper than this is not read */

/* What the last scan of one dead queue found (kept between --watch rounds). */
typedef struct dead_scan {
    long long depth; /* -1: never scanned */
    json_t *reasons; /* {reason: count} */
    size_t scanned;
    int64_t oldest_ms; /* earliest parked_ms, 0 when unknown */
    int64_t at_ms;     /* monotonic time of the scan */
} dead_scan_t;

typedef struct status {
    ctl_t *c;
    topo_t *t;
    double outbox_age_s; /* backlog older than this needs a human */
    db_t *db;
    mq_t *mq;
    mgmt_t *mg;
    kv_t *kv;          /* Redis (common/kv.h), opened by the first round */
    char vhost[256];   /* escaped for management paths */
    dead_scan_t *dead; /* t->nq entries */
    /* this round */
    json_t *doc;
    json_t *problems;
    bool pg_up, redis_up, amqp_up, mgmt_up;
    char ledger[64]; /* ledger_identity.id; "" when unknown */
} status_t;

/* Loads the topology and readies s for rounds; no server is asked yet.
 * 0, or 1 after printing the error (nothing to free). On 0 the caller
 * frees with status_free(). */
int status_init(status_t *s, ctl_t *c, double outbox_age_s);
/* Closes the connections and frees what the rounds kept, not s->doc. */
void status_free(status_t *s);

/* One round: asks every server and fills s->doc (the caller decrefs it
 * before the next round). 1 when a problem needs a human, else 0. */
int status_round(status_t *s);

/* The text screen of s->doc, on f. */
void status_draw(const status_t *s, FILE *f);
/* s->doc as one compact line on f, keys in the document's order. */
void status_draw_json(const status_t *s, FILE *f);
/* Each problem of s->doc on stderr: "ledgerctl: ..." and "  fix: ...". */
void status_print_problems(const status_t *s);

/* Appends {what, problem, fix} to this round's problems. */
void status__need(status_t *s, const char *what, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The number at a dotted path of o ("message_stats.publish_details.rate");
 * false when there is none. */
bool status__jnum(const json_t *o, const char *path, double *out);
/* The string at o.k, "" when there is none (borrowed from o). */
const char *status__jstr(const json_t *o, const char *k);

/* Asks PostgreSQL, Redis, RabbitMQ over AMQP and the management API
 * whether they are up: sets s->*_up and s->ledger, and doc.servers. */
void status__servers(status_t *s);

#endif
