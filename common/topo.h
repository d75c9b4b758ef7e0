/*
 * topo.h - the AMQP topology of schemas/topology.yaml: parse, validate,
 * declare. Workers declare it at start and after every reconnect;
 * `ledgerctl topology apply` declares it on demand. Declaring is
 * idempotent: an existing exchange, queue or binding with the same
 * arguments is left as it is.
 *
 * Public API: topo_t, topo_class_t, topo_exchange_t, topo_queue_t, topo_bind_t,
 * topo_params_t, topo_report_fn, topo_parse, topo_load_builtin, topo_free,
 * topo_find_queue, topo_apply, topo_class_name.
 */
#ifndef LL_TOPO_H
#define LL_TOPO_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "mq.h"

typedef enum { TOPO_WORK, TOPO_DEAD, TOPO_RETRY, TOPO_AUDIT } topo_class_t;

typedef struct topo_bind {
    char *exchange;
    char *key;
} topo_bind_t;

typedef struct topo_queue {
    char *name;
    topo_class_t cls;
    int64_t ttl_ms; /* retry only */
    char *retry_to; /* retry only: the work queue it feeds */
    topo_bind_t *binds;
    size_t nbinds;
} topo_queue_t;

typedef struct topo_exchange {
    char *name;
    char *type; /* topic, direct, fanout, headers, x-consistent-hash */
} topo_exchange_t;

typedef struct topo {
    topo_exchange_t *ex;
    size_t nex;
    topo_queue_t *q;
    size_t nq;
} topo_t;

/* What the configuration decides about the declared arguments. */
typedef struct topo_params {
    int quorum;         /* 1: work and dead queues are quorum queues */
    int delivery_limit; /* quorum x-delivery-limit of work queues */
} topo_params_t;

/* Parses and validates a topology document. On failure returns LL_ECONFIG
 * and writes the reason (with line number) to err. On success the caller
 * frees *out with topo_free(). */
int topo_parse(topo_t **out, const char *yaml, size_t len, char *err, size_t errlen) LL_MUSTCHECK;
/* The topology compiled into this binary (schemas/topology.yaml). */
int topo_load_builtin(topo_t **out, char *err, size_t errlen) LL_MUSTCHECK;
void topo_free(topo_t *t);

const topo_queue_t *topo_find_queue(const topo_t *t, const char *name);
const char *topo_class_name(topo_class_t c);

/* Called by topo_apply() after each object is declared, for reports. */
typedef void topo_report_fn(void *ud, const char *what, const char *name);

/* Declares every exchange, queue and binding on `m`. On failure returns the
 * mq error and writes what failed and how to fix it to err. */
int topo_apply(const topo_t *t, mq_t *m, const topo_params_t *p, topo_report_fn *report, void *ud,
               char *err, size_t errlen) LL_MUSTCHECK;

#endif
