/*
 * chaos_amqp.h - the little AMQP the chaos tools need, written on
 * librabbitmq alone: the chaos producer and checker must not share code
 * with the workers they judge (a bug in common/mq.c must not hide itself).
 *
 * One connection, channel 1, publisher confirms on. Every call has a
 * deadline (librabbitmq 0.11's receive can block past heartbeats). On any
 * error the connection is unusable: free it and connect again.
 *
 * Public API: camqp_t, camqp_connect, camqp_free, camqp_publish,
 * camqp_confirm, camqp_depth, camqp_get, camqp_tap, camqp_purge, camqp_delete.
 */
#ifndef CHAOS_AMQP_H
#define CHAOS_AMQP_H

#include <stddef.h>
#include <stdint.h>

typedef struct camqp camqp_t;

/* Connects from the LEDGERLINE_AMQP_* environment (host, port, user,
 * password or password file, vhost). NULL with the reason in err. */
camqp_t *camqp_connect(char *err, size_t errlen);
void camqp_free(camqp_t *c);

/* Publishes body (persistent, mandatory, application/json, message_id =
 * msg_id if not NULL). Returns the delivery tag (> 0), or 0 on error. */
uint64_t camqp_publish(camqp_t *c, const char *exchange, const char *routing_key, const void *body,
                       size_t len, const char *msg_id);

/* Waits up to timeout_ms until every delivery tag <= upto is confirmed.
 * 0 when all were acked; -1 on a nack, a returned (unroutable) message,
 * an error or the deadline. */
int camqp_confirm(camqp_t *c, uint64_t upto, int timeout_ms);

/* Messages ready in `queue` (passive declare), or -1 (no such queue, or
 * an error). */
int64_t camqp_depth(camqp_t *c, const char *queue);

/* Takes one message from `queue` (basic.get with ack). 1 and *body (caller
 * frees, NUL-terminated, *len bytes) and *rkey (caller frees) when there
 * was one, 0 when the queue is empty, -1 on error. */
int camqp_get(camqp_t *c, const char *queue, char **body, size_t *len, char **rkey);

/* Declares a durable quorum queue bound to `exchange` with key `#`. */
int camqp_tap(camqp_t *c, const char *queue, const char *exchange);

/* queue.purge / queue.delete; 0 or -1. */
int camqp_purge(camqp_t *c, const char *queue);
int camqp_delete(camqp_t *c, const char *queue);

#endif
