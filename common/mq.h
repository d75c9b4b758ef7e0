/*
 * mq.h - AMQP 0-9-1 client on librabbitmq 0.11: one connection, one
 * channel (number 1), publisher confirms always on.
 *
 * A worker opens two of these: one to consume, one to publish. RabbitMQ
 * throttles (blocks) publishing connections under memory or disk alarms;
 * keeping consumption on its own connection lets acks flow meanwhile.
 *
 * librabbitmq has no recovery and no confirm helper, so this file has both:
 *   - mq_connect() (re)builds the connection, channel and confirm.select;
 *     the caller redeclares topology and restarts consumption after it;
 *   - mq_publish() sends and counts; mq_confirm_wait() reads basic.ack /
 *     basic.nack / basic.return frames until every publish since the last
 *     wait is settled, or the deadline passes.
 * Every blocking call has a deadline (socket, handshake and RPC timeouts),
 * so a silent broker can never hang a worker past its heartbeat.
 *
 * TLS (mq_opts_t.tls): the same connection over librabbitmq's OpenSSL
 * socket, verifying the broker's certificate chain and host name by
 * default. librabbitmq 0.11 matches the host name against the DNS entries
 * of the certificate's subjectAltName only (not its IP address entries).
 * A failed handshake says which check failed and which setting fixes it.
 *
 * Errors: LL_ECONN (connection gone: call mq_connect again), LL_ETIMEOUT,
 * LL_ENACK (broker refused a publish), LL_ENOTFOUND (no such queue, or a
 * mandatory publish that no queue took), LL_EPROTO (the broker refused an
 * operation on the channel, e.g. a declare with different arguments; the
 * channel is reopened). Detail in mq_errstr().
 *
 * Not thread-safe: one thread per mq_t (librabbitmq's own rule).
 *
 * Public API: mq_t, mq_opts_t, mq_tls_opts_t, mq_props_t, mq_header_t,
 * mq_delivery_t, mq_new, mq_free, mq_connect, mq_close, mq_is_up, mq_errstr,
 * mq_declare_exchange, mq_declare_queue, mq_declare_private_queue, mq_bind,
 * mq_purge, mq_queue_stats, mq_delete_queue, mq_publish, mq_confirm_wait,
 * mq_pending, mq_publish_copy, mq_consume, mq_consume_tag, mq_cancel, mq_next,
 * mq_recv, mq_get, mq_ack, mq_reject, mq_nack, mq_service, mq_keepalive,
 * mq_delivery_clear, mq_delivery_header, mq_delivery_headers, mq_bytes_json,
 * mq_table_json.
 */
#ifndef LL_MQ_H
#define LL_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <amqp.h>
#include <jansson.h>

#include "err.h"

/* TLS (amqps) of a connection. Zeroed: plain TCP. The verify switches are
 * negative so that a caller that turns TLS on and forgets them verifies. */
typedef struct mq_tls_opts {
    bool on;
    const char *ca_file;   /* PEM CA bundle; NULL or "": the system's bundle */
    const char *cert_file; /* client certificate; NULL or "": none */
    const char *key_file;  /* its key (PEM, not encrypted); with cert_file */
    bool skip_verify_peer; /* accept a certificate no CA of ca_file signed */
    bool skip_verify_host; /* accept a certificate that does not name host */
} mq_tls_opts_t;

typedef struct mq_opts {
    const char *host;
    int port;
    const char *user;
    const char *password;
    const char *vhost;
    int heartbeat_s;        /* 0 = off */
    int connect_timeout_ms; /* socket connect, handshake and every RPC */
    const char *conn_name;  /* shown in the management UI */
    mq_tls_opts_t tls;      /* zeroed: plain TCP */
} mq_opts_t;

typedef struct mq mq_t;

/* A message as received. Everything in it stays valid until
 * mq_delivery_clear(), whatever else happens on the connection, so a worker
 * can hold a whole batch of them. */
typedef struct mq_delivery {
    amqp_envelope_t env; /* librabbitmq's; owned */
    const char *body;    /* points into env; not NUL-terminated */
    size_t len;
    uint64_t tag;     /* delivery tag, for mq_ack() */
    bool redelivered; /* the broker delivered it before */
    bool filled;      /* env holds a message that must be destroyed */
} mq_delivery_t;

/* A header for mq_publish(): string or integer value. */
typedef struct mq_header {
    const char *key;
    const char *str; /* NULL: use num */
    int64_t num;
} mq_header_t;

typedef struct mq_props {
    const char *message_id;   /* may be NULL */
    const char *type;         /* may be NULL */
    const char *content_type; /* NULL: "application/json" */
    const mq_header_t *headers;
    size_t nheaders;
    const amqp_table_t *raw_headers; /* used instead of headers when set */
    int64_t timestamp_s;             /* 0: not set */
} mq_props_t;

/* A client for `opts` (strings copied); not connected. Caller frees with
 * mq_free(). Never NULL (aborts on OOM). */
mq_t *mq_new(const mq_opts_t *opts);
void mq_free(mq_t *m);

/* (Re)connects: drops any old connection, opens socket, logs in with
 * heartbeats and the connection name, opens channel 1, confirm.select.
 * Publish sequence numbers restart at 1. */
int mq_connect(mq_t *m) LL_MUSTCHECK;
void mq_close(mq_t *m);
bool mq_is_up(const mq_t *m);
const char *mq_errstr(const mq_t *m);

/* Durable, not auto-deleted. */
int mq_declare_exchange(mq_t *m, const char *name, const char *type) LL_MUSTCHECK;
/* Durable queue with `args` (may be NULL). */
int mq_declare_queue(mq_t *m, const char *name, const amqp_table_t *args) LL_MUSTCHECK;
/* A classic queue of this connection alone: not durable, exclusive,
 * deleted when the connection closes (a tool's own tap on an exchange;
 * persistent messages routed to it are kept in memory only). */
int mq_declare_private_queue(mq_t *m, const char *name) LL_MUSTCHECK;
int mq_bind(mq_t *m, const char *queue, const char *exchange, const char *key) LL_MUSTCHECK;
int mq_purge(mq_t *m, const char *queue, uint32_t *purged) LL_MUSTCHECK;
int mq_delete_queue(mq_t *m, const char *queue) LL_MUSTCHECK;
/* Ready messages and consumers of `queue`; LL_ENOTFOUND if it does not exist. */
int mq_queue_stats(mq_t *m, const char *queue, uint32_t *messages,
                   uint32_t *consumers) LL_MUSTCHECK;

/* Sends one persistent message. Not confirmed yet: see mq_confirm_wait().
 * `mandatory`: the broker returns it if no queue is bound for it, and
 * mq_confirm_wait() then reports LL_ENOTFOUND. */
int mq_publish(mq_t *m, const char *exchange, const char *key, const void *body, size_t len,
               const mq_props_t *props, bool mandatory) LL_MUSTCHECK;
/* Publishes not yet settled by the broker. */
size_t mq_pending(const mq_t *m);
/* Waits until every publish since the previous wait is confirmed.
 * LL_OK: all acked and routed. LL_ENACK / LL_ENOTFOUND: all settled but at
 * least one nacked / returned (count in *failed if not NULL): publish them
 * again. LL_ETIMEOUT / LL_ECONN: unknown outcome: reconnect and publish all
 * again (consumers dedupe by event_id). */
int mq_confirm_wait(mq_t *m, int timeout_ms, size_t *failed) LL_MUSTCHECK;
/* Publishes a copy of delivery `d` (body and every property but user_id,
 * which the broker checks against the publishing user) with `headers`
 * instead of its own (NULL or empty: none), persistent. Counted and
 * confirmed like mq_publish(). */
int mq_publish_copy(mq_t *m, const char *exchange, const char *key, const mq_delivery_t *d,
                    const amqp_table_t *headers, bool mandatory) LL_MUSTCHECK;

/* basic.qos(prefetch) + basic.consume(queue), manual acks. */
int mq_consume(mq_t *m, const char *queue, int prefetch) LL_MUSTCHECK;
/* mq_consume() with the consumer tag `tag` (several consumers of one
 * channel, each with its own prefetch, for a tool that holds more
 * unacked messages than one consumer may). */
int mq_consume_tag(mq_t *m, const char *queue, int prefetch, const char *tag) LL_MUSTCHECK;
/* basic.cancel of consumer `tag`, waiting for cancel-ok; deliveries that
 * arrived before it are kept for mq_next()/mq_recv(), none come after. Its
 * unacked messages stay unacked. */
int mq_cancel(mq_t *m, const char *tag) LL_MUSTCHECK;
/* The next delivery, waiting at most timeout_ms (0: poll). LL_ETIMEOUT when
 * none came. On LL_OK the caller owns *d: mq_delivery_clear() it. */
int mq_next(mq_t *m, mq_delivery_t *d, int timeout_ms) LL_MUSTCHECK;
/* mq_next() with every frame of the message read under a deadline: the
 * delivery within timeout_ms (0: poll), its content within the RPC
 * timeout (librabbitmq's own read of a content waits without one). */
int mq_recv(mq_t *m, mq_delivery_t *d, int timeout_ms) LL_MUSTCHECK;
/* basic.get: one message or *empty = true. Caller clears *d when filled.
 * The content is read within the RPC timeout like the reply itself. */
int mq_get(mq_t *m, const char *queue, mq_delivery_t *d, bool *empty) LL_MUSTCHECK;

int mq_ack(mq_t *m, uint64_t tag, bool multiple) LL_MUSTCHECK;
/* basic.reject; requeue=false dead-letters per the queue's arguments. */
int mq_reject(mq_t *m, uint64_t tag, bool requeue) LL_MUSTCHECK;
/* basic.nack: `multiple` settles every unacked delivery up to tag; with
 * requeue they return to their queue (a tool that looked at messages with
 * mq_get() gives them back in one frame). */
int mq_nack(mq_t *m, uint64_t tag, bool multiple, bool requeue) LL_MUSTCHECK;

/* Reads whatever the broker sent without blocking (heartbeats, acks of
 * earlier publishes, connection.blocked). Call it from the periodic tick on
 * a connection that may sit idle. */
int mq_service(mq_t *m) LL_MUSTCHECK;
/* Sends a heartbeat frame when half the negotiated interval has passed
 * since the last one, and reads nothing. For a consumer connection that
 * cannot be read while its batch is unfinished (reading would take further
 * deliveries): without it the broker closes the connection after two
 * missed heartbeats and requeues the batch, counting a delivery attempt
 * against each message. */
int mq_keepalive(mq_t *m) LL_MUSTCHECK;

void mq_delivery_clear(mq_delivery_t *d);
/* The value of string header `name`, copied into buf; NULL if absent or not
 * a string or does not fit. */
const char *mq_delivery_header(const mq_delivery_t *d, const char *name, char *buf, size_t n);
/* Every header of `d` as received (any value kind), or NULL when it has
 * none. Valid until mq_delivery_clear(d). */
const amqp_table_t *mq_delivery_headers(const mq_delivery_t *d);

/* Bytes that may not be UTF-8 as a JSON string: as they are when valid,
 * else with every byte outside ASCII as '?'. Never NULL (json_null()). */
json_t *mq_bytes_json(const void *p, size_t len);
/* An AMQP table (headers; NULL: none) as a JSON object: strings as
 * mq_bytes_json, numbers, booleans, nested arrays and tables. Caller
 * decrefs. */
json_t *mq_table_json(const amqp_table_t *t);

#endif
