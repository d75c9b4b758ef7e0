/*
 * chaos_amqp.c - librabbitmq calls of the chaos tools (chaos_amqp.h).
 */
#include "chaos_amqp.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define RPC_TIMEOUT_S 10

struct camqp {
    amqp_connection_state_t conn;
    uint64_t next_tag;  /* tag of the next publish */
    uint64_t confirmed; /* every tag <= this one is acked */
};

static void read_password(char *out, size_t n)
{
    const char *p = getenv("LEDGERLINE_AMQP_PASSWORD");
    const char *f = getenv("LEDGERLINE_AMQP_PASSWORD_FILE");
    snprintf(out, n, "%s", p ? p : "guest");
    if (!p && f) {
        FILE *fp = fopen(f, "r");
        if (fp) {
            if (fgets(out, (int)n, fp))
                out[strcspn(out, "\r\n")] = '\0';
            fclose(fp);
        }
    }
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static int reply_ok(amqp_rpc_reply_t r)
{
    return r.reply_type == AMQP_RESPONSE_NORMAL;
}

camqp_t *camqp_connect(char *err, size_t errlen)
{
    const char *host = env_or("LEDGERLINE_AMQP_HOST", "127.0.0.1");
    int port = atoi(env_or("LEDGERLINE_AMQP_PORT", "5672"));
    const char *user = env_or("LEDGERLINE_AMQP_USER", "guest");
    const char *vhost = env_or("LEDGERLINE_AMQP_VHOST", "/");
    char pass[256];
    read_password(pass, sizeof pass);

    camqp_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->conn = amqp_new_connection();
    c->next_tag = 1;
    amqp_socket_t *sock = amqp_tcp_socket_new(c->conn);
    struct timeval tv = {RPC_TIMEOUT_S, 0};
    amqp_set_handshake_timeout(c->conn, &tv);
    amqp_set_rpc_timeout(c->conn, &tv);
    if (!sock || amqp_socket_open_noblock(sock, host, port, &tv) != AMQP_STATUS_OK) {
        snprintf(err, errlen, "cannot connect to %s:%d", host, port);
        goto fail;
    }
    if (!reply_ok(amqp_login(c->conn, vhost, 0, 131072, 30, AMQP_SASL_METHOD_PLAIN, user, pass))) {
        snprintf(err, errlen, "login as '%s' to %s:%d refused", user, host, port);
        goto fail;
    }
    amqp_channel_open(c->conn, 1);
    if (!reply_ok(amqp_get_rpc_reply(c->conn))) {
        snprintf(err, errlen, "channel.open failed");
        goto fail;
    }
    amqp_confirm_select(c->conn, 1);
    if (!reply_ok(amqp_get_rpc_reply(c->conn))) {
        snprintf(err, errlen, "confirm.select failed");
        goto fail;
    }
    return c;
fail:
    camqp_free(c);
    return NULL;
}

void camqp_free(camqp_t *c)
{
    if (!c)
        return;
    amqp_destroy_connection(c->conn); /* closes the socket without a handshake */
    free(c);
}

uint64_t camqp_publish(camqp_t *c, const char *exchange, const char *routing_key, const void *body,
                       size_t len, const char *msg_id)
{
    amqp_basic_properties_t p;
    memset(&p, 0, sizeof p);
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    if (msg_id) {
        p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        p.message_id = amqp_cstring_bytes(msg_id);
    }
    amqp_bytes_t b = {len, (void *)body};
    if (amqp_basic_publish(c->conn, 1, amqp_cstring_bytes(exchange),
                           amqp_cstring_bytes(routing_key), 1, 0, &p, b) != AMQP_STATUS_OK)
        return 0;
    return c->next_tag++;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int camqp_confirm(camqp_t *c, uint64_t upto, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    bool returned = false;
    while (c->confirmed < upto) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct timeval tv = {left / 1000, (left % 1000) * 1000};
        amqp_frame_t f;
        int st = amqp_simple_wait_frame_noblock(c->conn, &f, &tv);
        if (st != AMQP_STATUS_OK)
            return -1;
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->multiple) {
                if (a->delivery_tag > c->confirmed)
                    c->confirmed = a->delivery_tag;
            } else if (a->delivery_tag == c->confirmed + 1) {
                c->confirmed = a->delivery_tag;
            }
            /* a single ack past a gap: RabbitMQ acks in order on one
             * channel, so a gap cannot happen; the gap's tags stay
             * unconfirmed and the deadline catches it */
        } else if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            returned = true; /* unroutable (a binding missing while the broker boots) */
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD ||
                   f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            return -1;
        }
    }
    return returned ? -1 : 0;
}

int64_t camqp_depth(camqp_t *c, const char *queue)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c->conn, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    if (!ok || !reply_ok(amqp_get_rpc_reply(c->conn)))
        return -1;
    return ok->message_count;
}

int camqp_get(camqp_t *c, const char *queue, char **body, size_t *len, char **rkey)
{
    amqp_maybe_release_buffers(c->conn);
    amqp_rpc_reply_t r = amqp_basic_get(c->conn, 1, amqp_cstring_bytes(queue), 0);
    if (!reply_ok(r))
        return -1;
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return 0;
    const amqp_basic_get_ok_t *g = r.reply.decoded;
    uint64_t tag = g->delivery_tag;
    *rkey = strndup(g->routing_key.bytes, g->routing_key.len);
    amqp_message_t m;
    if (!reply_ok(amqp_read_message(c->conn, 1, &m, 0))) {
        free(*rkey);
        return -1;
    }
    *len = m.body.len;
    *body = malloc(m.body.len + 1);
    if (!*body)
        abort();
    memcpy(*body, m.body.bytes, m.body.len);
    (*body)[m.body.len] = '\0';
    amqp_destroy_message(&m);
    if (amqp_basic_ack(c->conn, 1, tag, 0) != AMQP_STATUS_OK) {
        free(*body);
        free(*rkey);
        return -1;
    }
    return 1;
}

int camqp_tap(camqp_t *c, const char *queue, const char *exchange)
{
    amqp_table_entry_t e[1];
    e[0].key = amqp_cstring_bytes("x-queue-type");
    e[0].value.kind = AMQP_FIELD_KIND_UTF8;
    e[0].value.value.bytes = amqp_cstring_bytes("quorum");
    amqp_table_t args = {1, e};
    amqp_queue_declare(c->conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    if (!reply_ok(amqp_get_rpc_reply(c->conn)))
        return -1;
    amqp_queue_bind(c->conn, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes("#"), amqp_empty_table);
    return reply_ok(amqp_get_rpc_reply(c->conn)) ? 0 : -1;
}

int camqp_purge(camqp_t *c, const char *queue)
{
    amqp_queue_purge(c->conn, 1, amqp_cstring_bytes(queue));
    return reply_ok(amqp_get_rpc_reply(c->conn)) ? 0 : -1;
}

int camqp_delete(camqp_t *c, const char *queue)
{
    amqp_queue_delete(c->conn, 1, amqp_cstring_bytes(queue), 0, 0);
    return reply_ok(amqp_get_rpc_reply(c->conn)) ? 0 : -1;
}
