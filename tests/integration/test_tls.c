/*
 * test_tls.c - TLS to RabbitMQ (amqps) and PostgreSQL (sslmode=verify-full)
 * on the test stack, whose certificates ops/stack made (its own CA, a
 * server certificate for 127.0.0.1 and localhost, a client certificate;
 * `ops/stack env` names them). With the stack's CA both clients connect
 * and really encrypt (pg_stat_ssl says so; a message goes through the
 * broker's TLS listener and back), and a client certificate is presented
 * and accepted. Against a second, unrelated CA this test generates with
 * openssl, a host name the certificate does not carry, a file that is not
 * there, a client certificate of the unrelated CA, TLS to the plain AMQP
 * port or plain AMQP to the TLS one, the connection is refused and the
 * error names the cause and the setting that fixes it. The verify switches
 * really switch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_test.h"

static char dir[32]; /* the unrelated CA and its client */
static char other_ca[96], other_cert[96], other_key[96];

/* Once, before the tests (unchecked fixture): the unrelated CA and a
 * client certificate it signed, made the way an operator would. */
static void make_other_ca(void)
{
    snprintf(dir, sizeof dir, "%s", "/tmp/llt_tls_XXXXXX");
    ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s failed", dir);
    snprintf(other_ca, sizeof other_ca, "%s/other-ca.crt", dir);
    snprintf(other_cert, sizeof other_cert, "%s/other-client.crt", dir);
    snprintf(other_key, sizeof other_key, "%s/other-client.key", dir);
    char *out = NULL;
    int rc = llt_run(&out,
                     "cd '%s' && EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
                     "openssl req -x509 $EC -keyout other-ca.key -out other-ca.crt -days 2 "
                     "-subj '/CN=Unrelated test CA' && "
                     "openssl req -new $EC -keyout other-client.key -out other-client.csr "
                     "-subj '/CN=ledgerline-client' && "
                     "openssl x509 -req -in other-client.csr -CA other-ca.crt -CAkey other-ca.key "
                     "-set_serial 1 -days 2 -out other-client.crt",
                     dir);
    ck_assert_msg(rc == 0, "openssl could not make the unrelated CA (%d): %s", rc, out);
    free(out);
}

static void remove_other_ca(void)
{
    char *out = NULL;
    if (llt_run(&out, "rm -rf '%s'", dir) != 0)
        fprintf(stderr, "cleanup: %s\n", out);
    free(out);
}

/* The stack's CA, and a hint when the stack was started by an ops/stack
 * without TLS. */
static const char *stack_ca(void)
{
    const char *ca = llt_env("LEDGERLINE_STACK_TLS_CA");
    ck_assert_msg(access(ca, R_OK) == 0,
                  "%s is not readable: restart the stack with this checkout's ops/stack, which "
                  "makes its certificates (ops/stack --name NAME down && ops/stack --name NAME up)",
                  ca);
    return ca;
}

/* --- PostgreSQL ---------------------------------------------------------- */

/* A client of the stack's PostgreSQL on `host`, not connected. */
static db_t *tls_db(const char *host, const char *sslmode, const char *rootcert, const char *cert,
                    const char *key)
{
    char *pw = llt_secret("LEDGERLINE_POSTGRES_PASSWORD");
    db_opts_t o = {
        .host = host,
        .port = atoi(llt_env("LEDGERLINE_POSTGRES_PORT")),
        .dbname = llt_env("LEDGERLINE_POSTGRES_DBNAME"),
        .user = llt_env("LEDGERLINE_POSTGRES_USER"),
        .password = pw,
        .connect_timeout_s = 10,
        .sslmode = sslmode,
        .sslrootcert = rootcert,
        .sslcert = cert,
        .sslkey = key,
        .application_name = "ledgerline-tests tls",
    };
    db_t *db = db_new(&o);
    free(pw);
    return db;
}

static void assert_has(const char *what, const char *text, const char *part)
{
    ck_assert_msg(strstr(text, part) != NULL, "%s does not say \"%s\": %s", what, part, text);
}

START_TEST(tls_postgres_verify_full_with_the_stack_ca_is_encrypted)
{
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (size_t i = 0; i < 2; i++) {
        db_t *db = tls_db(hosts[i], "verify-full", stack_ca(), NULL, NULL);
        int rc = db_connect(db);
        ck_assert_msg(rc == LL_OK, "verify-full to %s: %s", hosts[i], db_errstr(db));
        ck_assert_int_eq(
            llt_scalar(db, "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), 1);
        db_free(db);
    }
}
END_TEST

START_TEST(tls_postgres_client_certificate_is_presented)
{
    db_t *db =
        tls_db("127.0.0.1", "verify-full", stack_ca(), llt_env("LEDGERLINE_STACK_TLS_CLIENT_CERT"),
               llt_env("LEDGERLINE_STACK_TLS_CLIENT_KEY"));
    ck_assert_msg(db_connect(db) == LL_OK, "%s", db_errstr(db));
    ck_assert_int_eq(llt_scalar(db, "SELECT (client_dn = '/CN=ledgerline-client')::int "
                                    "FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
                     1);
    db_free(db);
}
END_TEST

START_TEST(tls_postgres_unrelated_ca_is_refused_naming_sslrootcert)
{
    db_t *db = tls_db("127.0.0.1", "verify-full", other_ca, NULL, NULL);
    ck_assert_int_eq(db_connect(db), LL_ECONN);
    assert_has("the error", db_errstr(db), "certificate verify failed");
    assert_has("the error", db_errstr(db), "postgres.sslrootcert");
    db_free(db);
    /* verify-ca checks the chain too */
    db = tls_db("127.0.0.1", "verify-ca", other_ca, NULL, NULL);
    ck_assert_int_eq(db_connect(db), LL_ECONN);
    assert_has("the error", db_errstr(db), "certificate verify failed");
    db_free(db);
}
END_TEST

START_TEST(tls_postgres_host_name_not_in_the_certificate_is_refused)
{
    /* libpq connects to PGHOSTADDR and checks the certificate against the
     * host name: the right server under a name its certificate lacks */
    setenv("PGHOSTADDR", "127.0.0.1", 1);
    db_t *db = tls_db("ledgerline-wrong-name.invalid", "verify-full", stack_ca(), NULL, NULL);
    int rc = db_connect(db);
    unsetenv("PGHOSTADDR");
    ck_assert_int_eq(rc, LL_ECONN);
    assert_has("the error", db_errstr(db), "does not match host name");
    assert_has("the error", db_errstr(db), "postgres.host");
    db_free(db);
    /* verify-ca does not check the name */
    setenv("PGHOSTADDR", "127.0.0.1", 1);
    db = tls_db("ledgerline-wrong-name.invalid", "verify-ca", stack_ca(), NULL, NULL);
    rc = db_connect(db);
    unsetenv("PGHOSTADDR");
    ck_assert_msg(rc == LL_OK, "verify-ca under another name: %s", db_errstr(db));
    db_free(db);
}
END_TEST

START_TEST(tls_postgres_client_certificate_of_an_unrelated_ca_is_refused)
{
    db_t *db = tls_db("127.0.0.1", "verify-full", stack_ca(), other_cert, other_key);
    ck_assert_int_eq(db_connect(db), LL_ECONN);
    assert_has("the error", db_errstr(db), "unknown ca");
    assert_has("the error", db_errstr(db), "postgres.sslcert");
    db_free(db);
}
END_TEST

START_TEST(tls_postgres_missing_files_are_refused_naming_the_setting)
{
    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such-ca.crt", dir);
    db_t *db = tls_db("127.0.0.1", "verify-full", missing, NULL, NULL);
    ck_assert_int_eq(db_connect(db), LL_ECONN);
    assert_has("the error", db_errstr(db), missing);
    assert_has("the error", db_errstr(db), "postgres.sslrootcert");
    db_free(db);
    /* libpq alone would go on without a client certificate it cannot read */
    db = tls_db("127.0.0.1", "verify-full", stack_ca(), missing, other_key);
    ck_assert_int_eq(db_connect(db), LL_ECONN);
    assert_has("the error", db_errstr(db), missing);
    assert_has("the error", db_errstr(db), "postgres.sslcert");
    db_free(db);
}
END_TEST

/* --- RabbitMQ ------------------------------------------------------------ */

/* A client of the stack's broker at host:port with `tls`, not connected. */
static mq_t *tls_mq(const char *host, int port, mq_tls_opts_t tls)
{
    char *pw = llt_secret("LEDGERLINE_AMQP_PASSWORD");
    const char *vhost = getenv("LEDGERLINE_AMQP_VHOST");
    mq_opts_t o = {
        .host = host,
        .port = port,
        .user = llt_env("LEDGERLINE_AMQP_USER"),
        .password = pw,
        .vhost = vhost && *vhost ? vhost : "/",
        .heartbeat_s = 30,
        .connect_timeout_ms = 5000,
        .conn_name = "ledgerline-tests tls",
        .tls = tls,
    };
    mq_t *m = mq_new(&o);
    free(pw);
    return m;
}

static int amqps_port(void)
{
    return atoi(llt_env("LEDGERLINE_STACK_AMQPS_PORT"));
}

/* Declares a private queue, publishes one message to it with a confirm,
 * consumes it back and acks it: the whole protocol over this connection. */
static void round_trip(mq_t *m)
{
    char q[64], body[64];
    snprintf(q, sizeof q, "llt.tls.%d", (int)getpid());
    snprintf(body, sizeof body, "{\"over\":\"tls\",\"pid\":%d}", (int)getpid());
    ck_assert_msg(mq_declare_private_queue(m, q) == LL_OK, "%s", mq_errstr(m));
    ck_assert_msg(mq_publish(m, "", q, body, strlen(body), NULL, true) == LL_OK, "%s",
                  mq_errstr(m));
    ck_assert_msg(mq_confirm_wait(m, 5000, NULL) == LL_OK, "%s", mq_errstr(m));
    ck_assert_msg(mq_consume(m, q, 10) == LL_OK, "%s", mq_errstr(m));
    mq_delivery_t d;
    ck_assert_msg(mq_next(m, &d, 5000) == LL_OK, "%s", mq_errstr(m));
    ck_assert_int_eq((int)d.len, (int)strlen(body));
    ck_assert(memcmp(d.body, body, d.len) == 0);
    ck_assert_int_eq(mq_ack(m, d.tag, false), LL_OK);
    mq_delivery_clear(&d);
}

START_TEST(tls_amqp_with_the_stack_ca_publishes_and_consumes)
{
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (size_t i = 0; i < 2; i++) {
        mq_t *m =
            tls_mq(hosts[i], amqps_port(), (mq_tls_opts_t){.on = true, .ca_file = stack_ca()});
        ck_assert_msg(mq_connect(m) == LL_OK, "amqps to %s: %s", hosts[i], mq_errstr(m));
        round_trip(m);
        mq_free(m);
    }
}
END_TEST

START_TEST(tls_amqp_client_certificate_is_accepted)
{
    mq_t *m = tls_mq("127.0.0.1", amqps_port(),
                     (mq_tls_opts_t){.on = true,
                                     .ca_file = stack_ca(),
                                     .cert_file = llt_env("LEDGERLINE_STACK_TLS_CLIENT_CERT"),
                                     .key_file = llt_env("LEDGERLINE_STACK_TLS_CLIENT_KEY")});
    ck_assert_msg(mq_connect(m) == LL_OK, "%s", mq_errstr(m));
    round_trip(m);
    mq_free(m);
}
END_TEST

START_TEST(tls_amqp_unrelated_ca_is_refused_naming_tls_ca_file)
{
    mq_t *m = tls_mq("127.0.0.1", amqps_port(), (mq_tls_opts_t){.on = true, .ca_file = other_ca});
    ck_assert_int_eq(mq_connect(m), LL_ECONN);
    ck_assert(!mq_is_up(m));
    assert_has("the error", mq_errstr(m), "certificate verify failed");
    assert_has("the error", mq_errstr(m), "amqp.tls_ca_file");
    assert_has("the error", mq_errstr(m), other_ca);
    mq_free(m);
}
END_TEST

START_TEST(tls_amqp_host_name_not_in_the_certificate_is_refused)
{
    /* 127.1 is 127.0.0.1 written as no entry of the certificate writes it:
     * librabbitmq compares names, so this is a name the certificate lacks */
    mq_t *m = tls_mq("127.1", amqps_port(), (mq_tls_opts_t){.on = true, .ca_file = stack_ca()});
    ck_assert_int_eq(mq_connect(m), LL_ECONN);
    assert_has("the error", mq_errstr(m), "does not name '127.1'");
    assert_has("the error", mq_errstr(m), "amqp.host");
    mq_free(m);
}
END_TEST

START_TEST(tls_amqp_verify_switches_switch)
{
    /* the name check off: the same name is accepted */
    mq_t *m = tls_mq("127.1", amqps_port(),
                     (mq_tls_opts_t){.on = true, .ca_file = stack_ca(), .skip_verify_host = true});
    ck_assert_msg(mq_connect(m) == LL_OK, "%s", mq_errstr(m));
    mq_free(m);
    /* the chain check off: the unrelated CA is accepted (the name still
     * matches) */
    m = tls_mq("127.0.0.1", amqps_port(),
               (mq_tls_opts_t){.on = true, .ca_file = other_ca, .skip_verify_peer = true});
    ck_assert_msg(mq_connect(m) == LL_OK, "%s", mq_errstr(m));
    round_trip(m);
    mq_free(m);
}
END_TEST

START_TEST(tls_amqp_client_certificate_of_an_unrelated_ca_is_refused)
{
    mq_t *m = tls_mq(
        "127.0.0.1", amqps_port(),
        (mq_tls_opts_t){
            .on = true, .ca_file = stack_ca(), .cert_file = other_cert, .key_file = other_key});
    ck_assert_int_eq(mq_connect(m), LL_ECONN);
    /* in TLS 1.3 the broker refuses it after the handshake: its alert
     * ("tlsv1 alert unknown ca") is read at login, or the connection is
     * closed before it is; either way the error names the certificate */
    assert_has("the error", mq_errstr(m), "ended the TLS connection at login");
    assert_has("the error", mq_errstr(m), "amqp.tls_cert_file");
    mq_free(m);
}
END_TEST

START_TEST(tls_amqp_configuration_mistakes_name_the_setting)
{
    /* a CA file that is not there */
    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such-ca.crt", dir);
    mq_t *m = tls_mq("127.0.0.1", amqps_port(), (mq_tls_opts_t){.on = true, .ca_file = missing});
    ck_assert_int_eq(mq_connect(m), LL_ECONN);
    assert_has("the error", mq_errstr(m), missing);
    assert_has("the error", mq_errstr(m), "amqp.tls_ca_file");
    mq_free(m);
    /* a certificate without its key */
    m = tls_mq("127.0.0.1", amqps_port(),
               (mq_tls_opts_t){.on = true,
                               .ca_file = stack_ca(),
                               .cert_file = llt_env("LEDGERLINE_STACK_TLS_CLIENT_CERT")});
    ck_assert_int_eq(mq_connect(m), LL_ECONN);
    assert_has("the error", mq_errstr(m), "amqp.tls_key_file");
    mq_free(m);
    /* TLS to the plain AMQP port */
    m = tls_mq("127.0.0.1", atoi(llt_env("LEDGERLINE_AMQP_PORT")),
               (mq_tls_opts_t){.on = true, .ca_file = stack_ca()});
    ck_assert_int_eq(mq_connect(m), LL_ECONN);
    assert_has("the error", mq_errstr(m), "TLS handshake");
    assert_has("the error", mq_errstr(m), "amqp.port");
    mq_free(m);
    /* plain AMQP to the TLS listener */
    m = tls_mq("127.0.0.1", amqps_port(), (mq_tls_opts_t){.on = false});
    ck_assert_int_eq(mq_connect(m), LL_ECONN);
    assert_has("the error", mq_errstr(m), "amqp.tls");
    mq_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls");
    TCase *pg = tcase_create("postgres");
    tcase_set_timeout(pg, 60);
    tcase_add_unchecked_fixture(pg, make_other_ca, remove_other_ca);
    tcase_add_test(pg, tls_postgres_verify_full_with_the_stack_ca_is_encrypted);
    tcase_add_test(pg, tls_postgres_client_certificate_is_presented);
    tcase_add_test(pg, tls_postgres_unrelated_ca_is_refused_naming_sslrootcert);
    tcase_add_test(pg, tls_postgres_host_name_not_in_the_certificate_is_refused);
    tcase_add_test(pg, tls_postgres_client_certificate_of_an_unrelated_ca_is_refused);
    tcase_add_test(pg, tls_postgres_missing_files_are_refused_naming_the_setting);
    suite_add_tcase(s, pg);
    TCase *mq = tcase_create("rabbitmq");
    tcase_set_timeout(mq, 60);
    tcase_add_unchecked_fixture(mq, make_other_ca, remove_other_ca);
    tcase_add_test(mq, tls_amqp_with_the_stack_ca_publishes_and_consumes);
    tcase_add_test(mq, tls_amqp_client_certificate_is_accepted);
    tcase_add_test(mq, tls_amqp_unrelated_ca_is_refused_naming_tls_ca_file);
    tcase_add_test(mq, tls_amqp_host_name_not_in_the_certificate_is_refused);
    tcase_add_test(mq, tls_amqp_verify_switches_switch);
    tcase_add_test(mq, tls_amqp_client_certificate_of_an_unrelated_ca_is_refused);
    tcase_add_test(mq, tls_amqp_configuration_mistakes_name_the_setting);
    suite_add_tcase(s, mq);
    return llt_run_suite(s);
}
