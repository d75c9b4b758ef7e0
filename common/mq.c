/*
 * mq.c - AMQP client on librabbitmq 0.11: see mq.h.
 *
 * Confirm bookkeeping: publishes since the last mq_confirm_wait() form a
 * window [win_first, next_seq). conf[] holds one state byte per sequence
 * number of the window; the broker's ack/nack (possibly `multiple`) settle
 * them; a basic.return precedes the ack of the message it returns.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "clock.h"
#include "mq.h"
#include "xmalloc.h"

#define MQ_CHANNEL 1

enum { CONF_PENDING = 0, CONF_ACK, CONF_NACK };

struct mq {
    char *host, *user, *password, *vhost, *conn_name;
    int port, heartbeat_s, timeout_ms;
    bool tls;                          /* amqps */
    char *tls_ca, *tls_cert, *tls_key; /* "" when unset */
    bool tls_verify_peer, tls_verify_host;

    amqp_connection_state_t conn;
    bool up;
    bool blocked; /* connection.blocked by the broker (resource alarm) */

    uint64_t next_seq;  /* sequence number of the next publish */
    uint64_t win_first; /* first sequence number not yet waited for */
    unsigned char *conf;
    size_t conf_cap;
    size_t npending;
    size_t nreturned;
    int64_t keepalive_ms; /* monotonic time of the last mq_keepalive() heartbeat */

    char errstr[512]; /* room for a TLS failure: two file names and the fix */
};

static void mq_seterr(mq_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mq_seterr(mq_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->errstr, sizeof m->errstr, fmt, ap);
    va_end(ap);
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

mq_t *mq_new(const mq_opts_t *o)
{
    mq_t *m = ll_xcalloc(1, sizeof *m);
    m->host = ll_xstrdup(o->host ? o->host : "127.0.0.1");
    m->user = ll_xstrdup(o->user ? o->user : "guest");
    m->password = ll_xstrdup(o->password ? o->password : "guest");
    m->vhost = ll_xstrdup(o->vhost ? o->vhost : "/");
    m->conn_name = ll_xstrdup(o->conn_name ? o->conn_name : "ledgerline");
    m->port = o->port > 0 ? o->port : 5672;
    m->heartbeat_s = o->heartbeat_s;
    m->timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    m->tls = o->tls.on;
    m->tls_ca = ll_xstrdup(o->tls.ca_file ? o->tls.ca_file : "");
    m->tls_cert = ll_xstrdup(o->tls.cert_file ? o->tls.cert_file : "");
    m->tls_key = ll_xstrdup(o->tls.key_file ? o->tls.key_file : "");
    m->tls_verify_peer = !o->tls.skip_verify_peer;
    m->tls_verify_host = !o->tls.skip_verify_host;
    return m;
}

void mq_close(mq_t *m)
{
    if (!m || !m->conn)
        return;
    if (m->up) {
        /* polite close, bounded by the RPC timeout */
        amqp_channel_close(m->conn, MQ_CHANNEL, AMQP_REPLY_SUCCESS);
        amqp_connection_close(m->conn, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(m->conn);
    m->conn = NULL;
    m->up = false;
    m->npending = 0;
}

void mq_free(mq_t *m)
{
    if (!m)
        return;
    mq_close(m);
    if (m->password)
        memset(m->password, 0, strlen(m->password));
    free(m->host);
    free(m->user);
    free(m->password);
    free(m->vhost);
    free(m->conn_name);
    free(m->tls_ca);
    free(m->tls_cert);
    free(m->tls_key);
    free(m->conf);
    free(m);
}

bool mq_is_up(const mq_t *m)
{
    return m->up;
}

const char *mq_errstr(const mq_t *m)
{
    return m->errstr;
}

/* The connection is unusable: drop it without talking to the broker. */
static int mq_broken(mq_t *m)
{
    if (m->conn) {
        amqp_destroy_connection(m->conn);
        m->conn = NULL;
    }
    m->up = false;
    m->npending = 0;
    return LL_ECONN;
}

static void reply_text(amqp_bytes_t b, char *buf, size_t n)
{
    snprintf(buf, n, "%.*s", (int)b.len, (const char *)b.bytes);
}

static int mq_open_channel(mq_t *m);

/* Turns a failed RPC reply into an error code, handling the server's
 * channel.close (answer close-ok, reopen) and connection.close. */
static int mq_reply_err(mq_t *m, amqp_rpc_reply_t r, const char *what)
{
    char text[160];
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return LL_OK;
    case AMQP_RESPONSE_NONE:
        mq_seterr(m, "%s: no reply from the broker", what);
        return mq_broken(m);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        mq_seterr(m, "%s: %s (broker %s:%d)", what, amqp_error_string2(r.library_error), m->host,
                  m->port);
        mq_broken(m);
        return r.library_error == AMQP_STATUS_TIMEOUT ? LL_ETIMEOUT : LL_ECONN;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *c = r.reply.decoded;
            reply_text(c->reply_text, text, sizeof text);
            mq_seterr(m, "%s: %s", what, text);
            int code = c->reply_code;
            amqp_channel_close_ok_t ok = {0};
            if (amqp_send_method(m->conn, MQ_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != 0)
                return mq_broken(m);
            char saved[sizeof m->errstr];
            memcpy(saved, m->errstr, sizeof saved);
            int rc = mq_open_channel(m);
            memcpy(m->errstr, saved, sizeof saved);
            if (rc != LL_OK)
                return rc;
            return code == AMQP_NOT_FOUND ? LL_ENOTFOUND : LL_EPROTO;
        }
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *c = r.reply.decoded;
            reply_text(c->reply_text, text, sizeof text);
            mq_seterr(m, "%s: broker closed the connection: %s", what, text);
            amqp_connection_close_ok_t ok = {0};
            (void)amqp_send_method(m->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            return mq_broken(m);
        }
        mq_seterr(m, "%s: unexpected method 0x%08x from the broker", what, r.reply.id);
        return mq_broken(m);
    }
    mq_seterr(m, "%s: unknown reply type", what);
    return mq_broken(m);
}

static void conf_reset(mq_t *m)
{
    m->next_seq = 1;
    m->win_first = 1;
    m->npending = 0;
    m->nreturned = 0;
}

static int mq_open_channel(mq_t *m)
{
    amqp_channel_open(m->conn, MQ_CHANNEL);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(m->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return mq_reply_err(m, r, "channel.open");
    amqp_confirm_select(m->conn, MQ_CHANNEL);
    r = amqp_get_rpc_reply(m->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return mq_reply_err(m, r, "confirm.select");
    conf_reset(m);
    return LL_OK;
}

/* --- TLS ---------------------------------------------------------------------
 * librabbitmq 0.11 hides OpenSSL's detail behind a few status codes; what
 * is left of it is on this thread's OpenSSL error queue (librabbitmq clears
 * it before each call), read here to name the cause. */

/* The reason of the last OpenSSL error of this thread ("" when none),
 * e.g. "tlsv1 alert unknown ca"; clears the queue. */
static const char *mq_tls_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "";
}

/* Why `path` cannot be used: the system's word when it cannot be read,
 * else OpenSSL's (not PEM, a key that does not match...). */
static const char *mq_tls_file_err(const char *path)
{
    if (access(path, R_OK) != 0) {
        ERR_clear_error();
        return strerror(errno);
    }
    const char *why = mq_tls_reason();
    return why[0] ? why : "not PEM";
}

/* The CA bundle to trust: amqp.tls_ca_file, else OpenSSL's default file
 * (SSL_CERT_FILE, else the system's bundle: librabbitmq loads none itself). */
static const char *mq_tls_ca(const mq_t *m)
{
    if (m->tls_ca[0])
        return m->tls_ca;
    const char *env = getenv(X509_get_default_cert_file_env());
    return env && *env ? env : X509_get_default_cert_file();
}

/* A TLS socket on m->conn, configured; NULL with errstr set. */
static amqp_socket_t *mq_tls_socket(mq_t *m)
{
    amqp_socket_t *sock = amqp_ssl_socket_new(m->conn);
    if (!sock) {
        mq_seterr(m, "cannot create a TLS socket for AMQP: %s", mq_tls_reason());
        return NULL;
    }
    const char *ca = mq_tls_ca(m);
    ERR_clear_error();
    if (amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK) {
        mq_seterr(m, "amqp: cannot load the CA certificates of %s: %s; %s", ca, mq_tls_file_err(ca),
                  m->tls_ca[0] ? "point amqp.tls_ca_file at a readable PEM file of CA certificates"
                               : "install the system's CA bundle (ca-certificates) or set "
                                 "amqp.tls_ca_file");
        return NULL;
    }
    if (m->tls_cert[0] || m->tls_key[0]) {
        if (!m->tls_cert[0] || !m->tls_key[0]) {
            mq_seterr(m,
                      "amqp: amqp.tls_%s_file is set but amqp.tls_%s_file is not; set both "
                      "(a client certificate and its key) or neither",
                      m->tls_cert[0] ? "cert" : "key", m->tls_cert[0] ? "key" : "cert");
            return NULL;
        }
        if (amqp_ssl_socket_set_key(sock, m->tls_cert, m->tls_key) != AMQP_STATUS_OK) {
            const char *why = access(m->tls_cert, R_OK) != 0 ? mq_tls_file_err(m->tls_cert)
                                                             : mq_tls_file_err(m->tls_key);
            mq_seterr(m,
                      "amqp: cannot load the client certificate %s with key %s: %s; check "
                      "amqp.tls_cert_file and amqp.tls_key_file (readable PEM files, the key not "
                      "encrypted and matching the certificate)",
                      m->tls_cert, m->tls_key, why);
            return NULL;
        }
    }
    amqp_ssl_socket_set_verify_peer(sock, m->tls_verify_peer);
    amqp_ssl_socket_set_verify_hostname(sock, m->tls_verify_host);
    return sock;
}

/* errstr for a TLS socket that did not open: which check failed, and the
 * setting that fixes it. */
static void mq_tls_open_err(mq_t *m, int st)
{
    const char *why = mq_tls_reason();
    switch (st) {
    case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
        mq_seterr(m,
                  "amqp: TLS handshake with %s:%d failed: certificate verify failed (no CA of %s "
                  "signed the broker's certificate); check amqp.tls_ca_file: it must hold the CA "
                  "that signed it",
                  m->host, m->port, mq_tls_ca(m));
        break;
    case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
        mq_seterr(m,
                  "amqp: TLS handshake with %s:%d failed: the broker's certificate does not name "
                  "'%s'; check amqp.host: it must be a DNS name of the certificate's "
                  "subjectAltName (IP address entries are not matched)",
                  m->host, m->port, m->host);
        break;
    case AMQP_STATUS_SSL_CONNECTION_FAILED:
    case AMQP_STATUS_SSL_ERROR:
        mq_seterr(m,
                  "amqp: TLS handshake with %s:%d failed: %s; check that amqp.port is the "
                  "broker's TLS listener (amqps) and that the broker accepts this client "
                  "(amqp.tls_cert_file)",
                  m->host, m->port, why[0] ? why : amqp_error_string2(st));
        break;
    default:
        mq_seterr(m, "cannot connect to RabbitMQ at %s:%d (TLS): %s", m->host, m->port,
                  amqp_error_string2(st));
        break;
    }
}

int mq_connect(mq_t *m)
{
    mq_close(m);
    m->conn = amqp_new_connection();
    if (!m->conn) {
        mq_seterr(m, "out of memory creating an AMQP connection");
        return LL_ENOMEM;
    }
    amqp_socket_t *sock = NULL;
    if (m->tls) {
        sock = mq_tls_socket(m);
        if (!sock)
            return mq_broken(m);
    } else {
        sock = amqp_tcp_socket_new(m->conn);
        if (!sock) {
            mq_seterr(m, "cannot create a TCP socket for AMQP");
            return mq_broken(m);
        }
    }
    struct timeval tv = ms_tv(m->timeout_ms);
    if (m->tls)
        ERR_clear_error();
    int st = amqp_socket_open_noblock(sock, m->host, m->port, &tv);
    if (st != AMQP_STATUS_OK) {
        if (m->tls)
            mq_tls_open_err(m, st);
        else
            mq_seterr(m, "cannot connect to RabbitMQ at %s:%d: %s", m->host, m->port,
                      amqp_error_string2(st));
        return mq_broken(m);
    }
    (void)amqp_set_handshake_timeout(m->conn, &tv);
    (void)amqp_set_rpc_timeout(m->conn, &tv);

    amqp_table_entry_t props[1];
    props[0].key = amqp_cstring_bytes("connection_name");
    props[0].value.kind = AMQP_FIELD_KIND_UTF8;
    props[0].value.value.bytes = amqp_cstring_bytes(m->conn_name);
    amqp_table_t ptable = {.num_entries = 1, .entries = props};

    amqp_rpc_reply_t r =
        amqp_login_with_properties(m->conn, m->vhost, 0, 131072, m->heartbeat_s, &ptable,
                                   AMQP_SASL_METHOD_PLAIN, m->user, m->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        /* in TLS 1.3 the broker's verdict on a client certificate comes
         * after the handshake and ends the first read, here: with its alert
         * when it was read before the connection closed, else without */
        bool tls_lost = m->tls && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                        r.library_error != AMQP_STATUS_TIMEOUT;
        const char *alert = tls_lost ? mq_tls_reason() : "";
        int rc = mq_reply_err(m, r, "login");
        char tmp[sizeof m->errstr];
        if (tls_lost)
            snprintf(tmp, sizeof tmp,
                     "amqp: the broker at %s:%d ended the TLS connection at login: %s; check "
                     "amqp.tls_cert_file and amqp.tls_key_file (a client certificate signed by a "
                     "CA the broker trusts, if it asks for one)",
                     m->host, m->port, alert[0] ? alert : amqp_error_string2(r.library_error));
        else
            snprintf(tmp, sizeof tmp, "%s (user '%s', vhost '%s'; check amqp.user/amqp.password%s)",
                     m->errstr, m->user, m->vhost,
                     !m->tls && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                         ? ", and amqp.tls if amqp.port is a TLS listener"
                         : "");
        memcpy(m->errstr, tmp, sizeof tmp);
        mq_broken(m);
        return rc == LL_ETIMEOUT ? rc : LL_ECONN;
    }
    m->up = true;
    int rc = mq_open_channel(m);
    if (rc != LL_OK) {
        mq_broken(m);
        return LL_ECONN;
    }
    m->errstr[0] = '\0';
    m->blocked = false;
    return LL_OK;
}

static int mq_check_up(mq_t *m)
{
    if (m->up)
        return LL_OK;
    if (!m->errstr[0])
        mq_seterr(m, "not connected to RabbitMQ");
    return LL_ECONN;
}

int mq_declare_exchange(mq_t *m, const char *name, const char *type)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_exchange_declare(m->conn, MQ_CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(type),
                          0, 1, 0, 0, amqp_empty_table);
    char what[160];
    snprintf(what, sizeof what, "declare exchange '%s'", name);
    return mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
}

int mq_declare_queue(mq_t *m, const char *name, const amqp_table_t *args)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_queue_declare(m->conn, MQ_CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0,
                       args ? *args : amqp_empty_table);
    char what[160];
    snprintf(what, sizeof what, "declare queue '%s'", name);
    return mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
}

int mq_declare_private_queue(mq_t *m, const char *name)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_queue_declare(m->conn, MQ_CHANNEL, amqp_cstring_bytes(name), 0, 0, 1, 1, amqp_empty_table);
    char what[160];
    snprintf(what, sizeof what, "declare private queue '%s'", name);
    return mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
}

int mq_bind(mq_t *m, const char *queue, const char *exchange, const char *key)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_queue_bind(m->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    char what[200];
    snprintf(what, sizeof what, "bind queue '%s' to '%s' with '%s'", queue, exchange, key);
    return mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
}

int mq_purge(mq_t *m, const char *queue, uint32_t *purged)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_queue_purge_ok_t *ok = amqp_queue_purge(m->conn, MQ_CHANNEL, amqp_cstring_bytes(queue));
    char what[160];
    snprintf(what, sizeof what, "purge queue '%s'", queue);
    rc = mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
    if (rc == LL_OK && purged)
        *purged = ok ? ok->message_count : 0;
    return rc;
}

int mq_delete_queue(mq_t *m, const char *queue)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_queue_delete(m->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), 0, 0);
    char what[160];
    snprintf(what, sizeof what, "delete queue '%s'", queue);
    return mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
}

int mq_queue_stats(mq_t *m, const char *queue, uint32_t *messages, uint32_t *consumers)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(m->conn, MQ_CHANNEL, amqp_cstring_bytes(queue),
                                                     1, 0, 0, 0, amqp_empty_table);
    char what[160];
    snprintf(what, sizeof what, "inspect queue '%s'", queue);
    rc = mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
    if (rc == LL_OK) {
        if (messages)
            *messages = ok->message_count;
        if (consumers)
            *consumers = ok->consumer_count;
    }
    return rc;
}

static void conf_grow(mq_t *m, size_t need)
{
    if (need <= m->conf_cap)
        return;
    size_t cap = m->conf_cap ? m->conf_cap : 256;
    while (cap < need)
        cap *= 2;
    m->conf = ll_xrealloc(m->conf, cap);
    m->conf_cap = cap;
}

int mq_publish(mq_t *m, const char *exchange, const char *key, const void *body, size_t len,
               const mq_props_t *p, bool mandatory)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type =
        amqp_cstring_bytes(p && p->content_type ? p->content_type : "application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    amqp_table_entry_t entries[32];
    if (p) {
        if (p->message_id) {
            props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
            props.message_id = amqp_cstring_bytes(p->message_id);
        }
        if (p->type) {
            props._flags |= AMQP_BASIC_TYPE_FLAG;
            props.type = amqp_cstring_bytes(p->type);
        }
        if (p->timestamp_s > 0) {
            props._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
            props.timestamp = (uint64_t)p->timestamp_s;
        }
        if (p->raw_headers) {
            props._flags |= AMQP_BASIC_HEADERS_FLAG;
            props.headers = *p->raw_headers;
        } else if (p->nheaders > 0) {
            if (p->nheaders > sizeof entries / sizeof entries[0]) {
                mq_seterr(m, "too many headers (%zu)", p->nheaders);
                return LL_EINVAL;
            }
            for (size_t i = 0; i < p->nheaders; i++) {
                entries[i].key = amqp_cstring_bytes(p->headers[i].key);
                if (p->headers[i].str) {
                    entries[i].value.kind = AMQP_FIELD_KIND_UTF8;
                    entries[i].value.value.bytes = amqp_cstring_bytes(p->headers[i].str);
                } else {
                    entries[i].value.kind = AMQP_FIELD_KIND_I64;
                    entries[i].value.value.i64 = p->headers[i].num;
                }
            }
            props._flags |= AMQP_BASIC_HEADERS_FLAG;
            props.headers.num_entries = (int)p->nheaders;
            props.headers.entries = entries;
        }
    }
    amqp_bytes_t b = {.len = len, .bytes = (void *)body};
    int st = amqp_basic_publish(m->conn, MQ_CHANNEL, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(key), mandatory, 0, &props, b);
    if (st != AMQP_STATUS_OK) {
        mq_seterr(m, "publish to '%s' with '%s': %s", exchange, key, amqp_error_string2(st));
        return mq_broken(m);
    }
    conf_grow(m, (size_t)(m->next_seq - m->win_first) + 1);
    m->conf[m->next_seq - m->win_first] = CONF_PENDING;
    m->next_seq++;
    m->npending++;
    return LL_OK;
}

size_t mq_pending(const mq_t *m)
{
    return m->npending;
}

static void conf_settle(mq_t *m, uint64_t tag, bool multiple, unsigned char state)
{
    uint64_t lo = multiple ? m->win_first : tag;
    for (uint64_t s = lo; s <= tag && s < m->next_seq; s++) {
        if (s < m->win_first)
            continue;
        unsigned char *c = &m->conf[s - m->win_first];
        if (*c == CONF_PENDING) {
            *c = state;
            m->npending--;
        }
    }
}

/* Drains the body of a basic.return (its header and body frames). */
static int mq_discard_return(mq_t *m)
{
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(m->conn, MQ_CHANNEL, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return mq_reply_err(m, r, "read returned message");
    amqp_destroy_message(&msg);
    return LL_OK;
}

/* Handles one frame that is not a delivery: confirms, returns, closes.
 * Returns LL_OK to go on, or an error. */
static int mq_handle_frame(mq_t *m, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return LL_OK;
    char text[160];
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = f->payload.method.decoded;
        conf_settle(m, a->delivery_tag, a->multiple, CONF_ACK);
        return LL_OK;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *n = f->payload.method.decoded;
        conf_settle(m, n->delivery_tag, n->multiple, CONF_NACK);
        return LL_OK;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *r = f->payload.method.decoded;
        reply_text(r->reply_text, text, sizeof text);
        mq_seterr(m, "message returned by the broker: %s (exchange '%.*s', key '%.*s')", text,
                  (int)r->exchange.len, (const char *)r->exchange.bytes, (int)r->routing_key.len,
                  (const char *)r->routing_key.bytes);
        m->nreturned++;
        char saved[sizeof m->errstr];
        memcpy(saved, m->errstr, sizeof saved);
        int rc = mq_discard_return(m);
        if (rc == LL_OK)
            memcpy(m->errstr, saved, sizeof saved);
        return rc;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
        m->blocked = true;
        return LL_OK;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        m->blocked = false;
        return LL_OK;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *c = f->payload.method.decoded;
        reply_text(c->reply_text, text, sizeof text);
        mq_seterr(m, "broker closed the channel: %s", text);
        /* unsettled publishes are lost with the channel: report, reopen */
        amqp_channel_close_ok_t ok = {0};
        if (amqp_send_method(m->conn, MQ_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != 0)
            return mq_broken(m);
        char saved[sizeof m->errstr];
        memcpy(saved, m->errstr, sizeof saved);
        int rc = mq_open_channel(m);
        memcpy(m->errstr, saved, sizeof saved);
        return rc == LL_OK ? LL_EPROTO : rc;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *c = f->payload.method.decoded;
        reply_text(c->reply_text, text, sizeof text);
        mq_seterr(m, "broker closed the connection: %s", text);
        amqp_connection_close_ok_t ok = {0};
        (void)amqp_send_method(m->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return mq_broken(m);
    }
    case AMQP_BASIC_CANCEL_METHOD:
        mq_seterr(m, "the broker cancelled the consumer (queue deleted?)");
        return LL_ESTATE;
    default:
        return LL_OK;
    }
}

/* Waits for one frame for at most ms; LL_ETIMEOUT when none. */
static int mq_wait_frame(mq_t *m, amqp_frame_t *f, int ms)
{
    struct timeval tv = ms_tv(ms < 0 ? 0 : ms);
    int st = amqp_simple_wait_frame_noblock(m->conn, f, &tv);
    if (st == AMQP_STATUS_OK)
        return LL_OK;
    if (st == AMQP_STATUS_TIMEOUT)
        return LL_ETIMEOUT;
    mq_seterr(m, "connection to RabbitMQ %s:%d lost: %s", m->host, m->port, amqp_error_string2(st));
    return mq_broken(m);
}

int mq_confirm_wait(mq_t *m, int timeout_ms, size_t *failed)
{
    if (failed)
        *failed = 0;
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (m->npending > 0) {
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            mq_seterr(m, "%zu publish(es) not confirmed within %d ms%s", m->npending, timeout_ms,
                      m->blocked ? " (connection blocked by a broker resource alarm)" : "");
            return LL_ETIMEOUT;
        }
        amqp_frame_t f;
        rc = mq_wait_frame(m, &f, (int)left);
        if (rc == LL_ETIMEOUT)
            continue;
        if (rc != LL_OK)
            return rc;
        rc = mq_handle_frame(m, &f);
        if (rc != LL_OK)
            return rc; /* the connection may be gone (mq_broken): touch nothing */
        amqp_maybe_release_buffers(m->conn);
    }
    size_t nacked = 0;
    for (uint64_t s = m->win_first; s < m->next_seq; s++)
        if (m->conf[s - m->win_first] == CONF_NACK)
            nacked++;
    size_t returned = m->nreturned;
    m->win_first = m->next_seq;
    m->nreturned = 0;
    if (nacked) {
        if (failed)
            *failed = nacked;
        mq_seterr(m, "the broker nacked %zu publish(es)", nacked);
        return LL_ENACK;
    }
    if (returned) {
        if (failed)
            *failed = returned;
        return LL_ENOTFOUND; /* errstr set when the return arrived */
    }
    return LL_OK;
}

int mq_consume(mq_t *m, const char *queue, int prefetch)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_basic_qos(m->conn, MQ_CHANNEL, 0, (uint16_t)prefetch, 0);
    rc = mq_reply_err(m, amqp_get_rpc_reply(m->conn), "basic.qos");
    if (rc)
        return rc;
    amqp_basic_consume(m->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    char what[160];
    snprintf(what, sizeof what, "consume from queue '%s'", queue);
    return mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
}

int mq_consume_tag(mq_t *m, const char *queue, int prefetch, const char *tag)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_basic_qos(m->conn, MQ_CHANNEL, 0, (uint16_t)prefetch, 0);
    rc = mq_reply_err(m, amqp_get_rpc_reply(m->conn), "basic.qos");
    if (rc)
        return rc;
    amqp_basic_consume(m->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(tag), 0,
                       0, 0, amqp_empty_table);
    char what[160];
    snprintf(what, sizeof what, "consume from queue '%s'", queue);
    return mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
}

int mq_cancel(mq_t *m, const char *tag)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_basic_cancel(m->conn, MQ_CHANNEL, amqp_cstring_bytes(tag));
    char what[160];
    snprintf(what, sizeof what, "cancel consumer '%s'", tag);
    return mq_reply_err(m, amqp_get_rpc_reply(m->conn), what);
}

static void delivery_fill(mq_delivery_t *d)
{
    d->body = d->env.message.body.bytes;
    d->len = d->env.message.body.len;
    d->tag = d->env.delivery_tag;
    d->redelivered = d->env.redelivered;
    d->filled = true;
}

int mq_next(mq_t *m, mq_delivery_t *d, int timeout_ms)
{
    memset(d, 0, sizeof *d);
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left < 0)
            left = 0;
        amqp_maybe_release_buffers(m->conn);
        struct timeval tv = ms_tv((int)left);
        amqp_rpc_reply_t r = amqp_consume_message(m->conn, &d->env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            delivery_fill(d);
            return LL_OK;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            return LL_ETIMEOUT;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            /* a frame that is not a delivery: read and handle it */
            amqp_frame_t f;
            rc = mq_wait_frame(m, &f, (int)left);
            if (rc == LL_ETIMEOUT)
                return rc;
            if (rc != LL_OK)
                return rc;
            rc = mq_handle_frame(m, &f);
            if (rc != LL_OK)
                return rc;
            if (clock_mono_ms() >= deadline)
                return LL_ETIMEOUT;
            continue;
        }
        return mq_reply_err(m, r, "consume");
    }
}

/* Copies the bytes of a content header's field into the message's pool. */
static int props_dup(amqp_bytes_t *b, amqp_pool_t *pool)
{
    if (b->len == 0)
        return LL_OK;
    amqp_bytes_t c;
    amqp_pool_alloc_bytes(pool, b->len, &c);
    if (!c.bytes)
        return LL_ENOMEM;
    memcpy(c.bytes, b->bytes, b->len);
    *b = c;
    return LL_OK;
}

/* The properties of a content header frame, copied into msg->pool (the
 * frame's own memory is recycled with the connection's buffers). */
static int props_clone(const amqp_basic_properties_t *src, amqp_message_t *msg)
{
    amqp_basic_properties_t *p = &msg->properties;
    *p = *src;
    amqp_pool_t *pool = &msg->pool;
    int rc = LL_OK;
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        rc |= props_dup(&p->content_type, pool);
    if (p->_flags & AMQP_BASIC_CONTENT_ENCODING_FLAG)
        rc |= props_dup(&p->content_encoding, pool);
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        rc |= props_dup(&p->correlation_id, pool);
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        rc |= props_dup(&p->reply_to, pool);
    if (p->_flags & AMQP_BASIC_EXPIRATION_FLAG)
        rc |= props_dup(&p->expiration, pool);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        rc |= props_dup(&p->message_id, pool);
    if (p->_flags & AMQP_BASIC_TYPE_FLAG)
        rc |= props_dup(&p->type, pool);
    if (p->_flags & AMQP_BASIC_USER_ID_FLAG)
        rc |= props_dup(&p->user_id, pool);
    if (p->_flags & AMQP_BASIC_APP_ID_FLAG)
        rc |= props_dup(&p->app_id, pool);
    if (p->_flags & AMQP_BASIC_CLUSTER_ID_FLAG)
        rc |= props_dup(&p->cluster_id, pool);
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        p->headers = amqp_empty_table;
        if (amqp_table_clone(&src->headers, &p->headers, pool) != AMQP_STATUS_OK)
            rc = LL_ENOMEM;
    }
    return rc ? LL_ENOMEM : LL_OK;
}

/*
 * amqp_read_message() with a deadline: the content header and body frames
 * that follow a basic.get-ok. librabbitmq's own waits for them without
 * one (only heartbeats bound it). On success msg is owned by the caller
 * (amqp_destroy_message()); on failure it is empty.
 */
static int mq_read_content(mq_t *m, amqp_message_t *msg, int timeout_ms, const char *what)
{
    memset(msg, 0, sizeof *msg);
    init_amqp_pool(&msg->pool, 4096);
    int64_t deadline = clock_mono_ms() + timeout_ms;
    amqp_frame_t f;
    int rc;
    bool header = false;
    size_t want = 0;
    for (;;) {
        if (header && msg->body.len == want)
            return LL_OK;
        int64_t left = deadline - clock_mono_ms();
        rc = left > 0 ? mq_wait_frame(m, &f, (int)left) : LL_ETIMEOUT;
        if (rc == LL_ETIMEOUT) {
            mq_seterr(m, "%s: the message's content did not arrive within %d ms", what, timeout_ms);
            mq_broken(m); /* the rest of its frames may still come: unusable */
            break;
        }
        if (rc != LL_OK)
            break;
        if (f.channel != MQ_CHANNEL || (header && f.frame_type != AMQP_FRAME_BODY) ||
            (!header && f.frame_type != AMQP_FRAME_HEADER)) {
            if (f.frame_type == AMQP_FRAME_METHOD) {
                rc = mq_handle_frame(m, &f); /* a close, most likely */
                if (rc != LL_OK)
                    break;
            }
            mq_seterr(m, "%s: unexpected frame type %d on channel %d", what, f.frame_type,
                      f.channel);
            rc = mq_broken(m);
            break;
        }
        if (!header) {
            header = true;
            if (props_clone(f.payload.properties.decoded, msg) != LL_OK) {
                mq_seterr(m, "%s: out of memory", what);
                rc = mq_broken(m);
                break;
            }
            want = (size_t)f.payload.properties.body_size;
            msg->body = amqp_bytes_malloc(want);
            if (want > 0 && !msg->body.bytes) {
                mq_seterr(m, "%s: out of memory for a body of %zu bytes", what, want);
                rc = mq_broken(m);
                break;
            }
            msg->body.len = 0; /* bytes filled so far, until complete */
            continue;
        }
        amqp_bytes_t frag = f.payload.body_fragment;
        if (msg->body.len + frag.len > want) {
            mq_seterr(m, "%s: body longer than announced", what);
            rc = mq_broken(m);
            break;
        }
        memcpy((char *)msg->body.bytes + msg->body.len, frag.bytes, frag.len);
        msg->body.len += frag.len;
    }
    if (header)
        msg->body.len = want; /* amqp_bytes_free() needs only .bytes */
    amqp_destroy_message(msg);
    memset(msg, 0, sizeof *msg);
    return rc;
}

int mq_recv(mq_t *m, mq_delivery_t *d, int timeout_ms)
{
    memset(d, 0, sizeof *d);
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        amqp_maybe_release_buffers(m->conn);
        amqp_frame_t f;
        rc = mq_wait_frame(m, &f, left > 0 ? (int)left : 0);
        if (rc != LL_OK)
            return rc; /* LL_ETIMEOUT: nothing came */
        if (f.frame_type != AMQP_FRAME_METHOD || f.payload.method.id != AMQP_BASIC_DELIVER_METHOD) {
            rc = mq_handle_frame(m, &f);
            if (rc != LL_OK)
                return rc;
            continue;
        }
        const amqp_basic_deliver_t *dl = f.payload.method.decoded;
        d->env.channel = f.channel;
        d->env.consumer_tag = amqp_bytes_malloc_dup(dl->consumer_tag);
        d->env.delivery_tag = dl->delivery_tag;
        d->env.redelivered = dl->redelivered;
        d->env.exchange = amqp_bytes_malloc_dup(dl->exchange);
        d->env.routing_key = amqp_bytes_malloc_dup(dl->routing_key);
        rc = mq_read_content(m, &d->env.message, m->timeout_ms, "consume");
        if (rc != LL_OK) {
            amqp_bytes_free(d->env.consumer_tag);
            amqp_bytes_free(d->env.exchange);
            amqp_bytes_free(d->env.routing_key);
            memset(d, 0, sizeof *d);
            return rc;
        }
        delivery_fill(d);
        return LL_OK;
    }
}

int mq_get(mq_t *m, const char *queue, mq_delivery_t *d, bool *empty)
{
    memset(d, 0, sizeof *d);
    *empty = true;
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_maybe_release_buffers(m->conn);
    amqp_rpc_reply_t r = amqp_basic_get(m->conn, MQ_CHANNEL, amqp_cstring_bytes(queue), 0);
    char what[160];
    snprintf(what, sizeof what, "get from queue '%s'", queue);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return mq_reply_err(m, r, what);
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return LL_OK;
    amqp_basic_get_ok_t *ok = r.reply.decoded;
    d->env.channel = MQ_CHANNEL;
    d->env.delivery_tag = ok->delivery_tag;
    d->env.redelivered = ok->redelivered;
    d->env.exchange = amqp_bytes_malloc_dup(ok->exchange);
    d->env.routing_key = amqp_bytes_malloc_dup(ok->routing_key);
    d->env.consumer_tag = amqp_empty_bytes;
    rc = mq_read_content(m, &d->env.message, m->timeout_ms, what);
    if (rc != LL_OK) {
        amqp_bytes_free(d->env.exchange);
        amqp_bytes_free(d->env.routing_key);
        memset(d, 0, sizeof *d);
        return rc;
    }
    delivery_fill(d);
    *empty = false;
    return LL_OK;
}

int mq_ack(mq_t *m, uint64_t tag, bool multiple)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    int st = amqp_basic_ack(m->conn, MQ_CHANNEL, tag, multiple);
    if (st != AMQP_STATUS_OK) {
        mq_seterr(m, "ack %llu: %s", (unsigned long long)tag, amqp_error_string2(st));
        return mq_broken(m);
    }
    return LL_OK;
}

int mq_reject(mq_t *m, uint64_t tag, bool requeue)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    int st = amqp_basic_reject(m->conn, MQ_CHANNEL, tag, requeue);
    if (st != AMQP_STATUS_OK) {
        mq_seterr(m, "reject %llu: %s", (unsigned long long)tag, amqp_error_string2(st));
        return mq_broken(m);
    }
    return LL_OK;
}

int mq_nack(mq_t *m, uint64_t tag, bool multiple, bool requeue)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    int st = amqp_basic_nack(m->conn, MQ_CHANNEL, tag, multiple, requeue);
    if (st != AMQP_STATUS_OK) {
        mq_seterr(m, "nack %llu: %s", (unsigned long long)tag, amqp_error_string2(st));
        return mq_broken(m);
    }
    return LL_OK;
}

int mq_publish_copy(mq_t *m, const char *exchange, const char *key, const mq_delivery_t *d,
                    const amqp_table_t *headers, bool mandatory)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    amqp_basic_properties_t props = d->env.message.properties;
    /* the broker refuses a user_id other than the publishing user's */
    props._flags &= ~(AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_HEADERS_FLAG);
    props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (headers && headers->num_entries > 0) {
        props._flags |= AMQP_BASIC_HEADERS_FLAG;
        props.headers = *headers;
    }
    amqp_bytes_t b = {.len = d->len, .bytes = (void *)d->body};
    int st = amqp_basic_publish(m->conn, MQ_CHANNEL, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(key), mandatory, 0, &props, b);
    if (st != AMQP_STATUS_OK) {
        mq_seterr(m, "publish to '%s' with '%s': %s", exchange, key, amqp_error_string2(st));
        return mq_broken(m);
    }
    conf_grow(m, (size_t)(m->next_seq - m->win_first) + 1);
    m->conf[m->next_seq - m->win_first] = CONF_PENDING;
    m->next_seq++;
    m->npending++;
    return LL_OK;
}

int mq_service(mq_t *m)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    for (;;) {
        amqp_frame_t f;
        rc = mq_wait_frame(m, &f, 0);
        if (rc == LL_ETIMEOUT)
            return LL_OK;
        if (rc != LL_OK)
            return rc;
        rc = mq_handle_frame(m, &f);
        if (rc != LL_OK)
            return rc; /* the connection may be gone (mq_broken): touch nothing */
        amqp_maybe_release_buffers(m->conn);
    }
}

int mq_keepalive(mq_t *m)
{
    int rc = mq_check_up(m);
    if (rc)
        return rc;
    int hb = amqp_get_heartbeat(m->conn);
    int64_t now = clock_mono_ms();
    if (hb <= 0 || now - m->keepalive_ms < (int64_t)hb * 500)
        return LL_OK;
    amqp_frame_t f;
    memset(&f, 0, sizeof f);
    f.frame_type = AMQP_FRAME_HEARTBEAT;
    f.channel = 0;
    if (amqp_send_frame(m->conn, &f) != AMQP_STATUS_OK) {
        mq_seterr(m, "sending a heartbeat failed: the connection is gone");
        return mq_broken(m);
    }
    m->keepalive_ms = now;
    return LL_OK;
}

void mq_delivery_clear(mq_delivery_t *d)
{
    if (d && d->filled)
        amqp_destroy_envelope(&d->env);
    if (d)
        memset(d, 0, sizeof *d);
}

const char *mq_delivery_header(const mq_delivery_t *d, const char *name, char *buf, size_t n)
{
    const amqp_basic_properties_t *p = &d->env.message.properties;
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    size_t klen = strlen(name);
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len != klen || memcmp(e->key.bytes, name, klen) != 0)
            continue;
        if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
            return NULL;
        amqp_bytes_t v = e->value.value.bytes;
        if (v.len + 1 > n)
            return NULL;
        memcpy(buf, v.bytes, v.len);
        buf[v.len] = '\0';
        return buf;
    }
    return NULL;
}

const amqp_table_t *mq_delivery_headers(const mq_delivery_t *d)
{
    const amqp_basic_properties_t *p = &d->env.message.properties;
    if (!d->filled || !(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return NULL;
    return &p->headers;
}

/* --- headers as JSON (for people: `ledgerctl dlq show`, tests) ----------- */

/* A string that may not be UTF-8: as is when it is, else with every
 * invalid byte replaced by '?'. */
json_t *mq_bytes_json(const void *p, size_t len)
{
    json_t *j = json_stringn(p, len);
    if (j)
        return j;
    char *s = malloc(len + 1);
    if (!s)
        return json_null();
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = ((const unsigned char *)p)[i];
        s[i] = ch < 0x80 && ch != 0 ? (char)ch : '?';
    }
    j = json_stringn(s, len);
    free(s);
    return j ? j : json_null();
}

static json_t *field_json(const amqp_field_value_t *v);

json_t *mq_table_json(const amqp_table_t *t)
{
    json_t *o = json_object();
    for (int i = 0; t && i < t->num_entries; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)t->entries[i].key.len,
                 (const char *)t->entries[i].key.bytes);
        json_object_set_new(o, key, field_json(&t->entries[i].value));
    }
    return o;
}

static json_t *field_json(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        return json_boolean(v->value.boolean);
    case AMQP_FIELD_KIND_I8:
        return json_integer(v->value.i8);
    case AMQP_FIELD_KIND_U8:
        return json_integer(v->value.u8);
    case AMQP_FIELD_KIND_I16:
        return json_integer(v->value.i16);
    case AMQP_FIELD_KIND_U16:
        return json_integer(v->value.u16);
    case AMQP_FIELD_KIND_I32:
        return json_integer(v->value.i32);
    case AMQP_FIELD_KIND_U32:
        return json_integer(v->value.u32);
    case AMQP_FIELD_KIND_I64:
        return json_integer(v->value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return json_integer((json_int_t)v->value.u64);
    case AMQP_FIELD_KIND_F32:
        return json_real(v->value.f32);
    case AMQP_FIELD_KIND_F64:
        return json_real(v->value.f64);
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return mq_bytes_json(v->value.bytes.bytes, v->value.bytes.len);
    case AMQP_FIELD_KIND_ARRAY: {
        json_t *a = json_array();
        for (int i = 0; i < v->value.array.num_entries; i++)
            json_array_append_new(a, field_json(&v->value.array.entries[i]));
        return a;
    }
    case AMQP_FIELD_KIND_TABLE:
        return mq_table_json(&v->value.table);
    default:
        return json_null();
    }
}
