/*
 * conn.c - settings to client options (conn.h).
 */
#include "conn.h"

mq_opts_t conn_mq_opts(const settings_t *s, const char *conn_name)
{
    return (mq_opts_t){
        .host = s->amqp.host,
        .port = (int)s->amqp.port,
        .user = s->amqp.user,
        .password = s->amqp.password,
        .vhost = s->amqp.vhost,
        .heartbeat_s = (int)s->amqp.heartbeat_s,
        .connect_timeout_ms = (int)s->amqp.connect_timeout_ms,
        .conn_name = conn_name,
        .tls = {.on = s->amqp.tls,
                .ca_file = s->amqp.tls_ca_file,
                .cert_file = s->amqp.tls_cert_file,
                .key_file = s->amqp.tls_key_file,
                .skip_verify_peer = !s->amqp.tls_verify_peer,
                .skip_verify_host = !s->amqp.tls_verify_hostname},
    };
}

db_opts_t conn_db_opts(const settings_t *s, const char *app_name)
{
    return (db_opts_t){
        .host = s->postgres.host,
        .port = (int)s->postgres.port,
        .dbname = s->postgres.dbname,
        .user = s->postgres.user,
        .password = s->postgres.password,
        .connect_timeout_s = (int)s->postgres.connect_timeout_s,
        .sslmode = settings_sslmode_names[s->postgres.sslmode],
        .sslrootcert = s->postgres.sslrootcert,
        .sslcert = s->postgres.sslcert,
        .sslkey = s->postgres.sslkey,
        .application_name =
            s->postgres.application_name[0] ? s->postgres.application_name : app_name,
    };
}
