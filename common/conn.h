/*
 * conn.h - the client options of the settings: the one place where the
 * amqp and postgres sections of settings_t become mq_opts_t and
 * db_opts_t (TLS included), for the workers' runtime and every
 * connection ledgerctl opens.
 *
 * The options point into the settings: keep them alive while the options
 * are used (mq_new() and db_new() copy what they keep).
 *
 * Public API: conn_mq_opts, conn_db_opts.
 */
#ifndef LL_CONN_H
#define LL_CONN_H

#include "db.h"
#include "mq.h"
#include "settings.h"

/* The broker client options; conn_name is shown by RabbitMQ. */
mq_opts_t conn_mq_opts(const settings_t *s, const char *conn_name);

/* The PostgreSQL client options; application_name is
 * postgres.application_name when set, else `app_name`. */
db_opts_t conn_db_opts(const settings_t *s, const char *app_name);

#endif
