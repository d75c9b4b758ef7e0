/*
 * ctl.c - shared plumbing of the ledgerctl commands: see ctl.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "digest.h"
#include "log.h"
#include "ctl.h"
#include "money.h"
#include "msg.h"

int ctl_fail(const char *fix, const char *fmt, ...)
{
    va_list ap;
    fputs("ledgerctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (fix)
        fprintf(stderr, "  fix: %s\n", fix);
    return 1;
}

int ctl_usage_error(const ctl_cmd_t *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ledgerctl %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    /* the usage's first line(s) up to the first blank-indented description */
    fprintf(stderr, "%s", cmd->usage);
    return 2;
}

static void conn_name(char *buf, size_t n, const char *what)
{
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(buf, n, "ledgerctl %s@%s:%d", what, host, (int)getpid());
}

db_t *ctl_db(ctl_t *c)
{
    if (c->db)
        return c->db;
    char app[128];
    conn_name(app, sizeof app, "");
    db_opts_t o = conn_db_opts(&c->cfg, "ledgerctl");
    db_t *db = db_new(&o);
    if (db_connect(db) != LL_OK) {
        ctl_fail("start the local stack (./ops/stack up) and export its settings "
                 "(eval \"$(./ops/stack env)\"), or point LEDGERLINE_POSTGRES_HOST/PORT/DBNAME/"
                 "USER/PASSWORD at your server",
                 "%s", db_errstr(db));
        db_free(db);
        return NULL;
    }
    c->db = db;
    return db;
}

mq_t *ctl_mq_new(ctl_t *c, const char *role)
{
    char name[128];
    if (c->cfg.amqp.connection_name[0])
        snprintf(name, sizeof name, "%s%s%s", c->cfg.amqp.connection_name, role[0] ? " " : "",
                 role);
    else
        conn_name(name, sizeof name, role);
    mq_opts_t o = conn_mq_opts(&c->cfg, name);
    mq_t *m = mq_new(&o);
    if (mq_connect(m) != LL_OK) {
        ctl_fail("start the local stack (./ops/stack up) and export its settings "
                 "(eval \"$(./ops/stack env)\"), or point LEDGERLINE_AMQP_HOST/PORT/USER/"
                 "PASSWORD/VHOST at your broker",
                 "%s", mq_errstr(m));
        mq_free(m);
        return NULL;
    }
    return m;
}

mq_t *ctl_mq(ctl_t *c)
{
    if (!c->mq)
        c->mq = ctl_mq_new(c, "");
    return c->mq;
}

int ctl_getopt(ctl_t *c, const ctl_cmd_t *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    /* longopts + --json + --help, built once per call site */
    struct option all[32];
    size_t n = 0;
    for (; longopts && longopts[n].name && n < 29; n++)
        all[n] = longopts[n];
    all[n++] = (struct option){"json", no_argument, NULL, 0x100};
    all[n++] = (struct option){"help", no_argument, NULL, 'h'};
    all[n] = (struct option){NULL, 0, NULL, 0};
    opterr = 0;
    for (;;) {
        int longindex = 0;
        int ch = getopt_long(argc, argv, shortopts ? shortopts : "", all, &longindex);
        if (ch == 0x100) {
            c->json = true;
            continue;
        }
        if (ch == 'h') {
            fputs(cmd->usage, stdout);
            return 'h';
        }
        if (ch == '?') {
            if (optopt)
                ctl_usage_error(cmd, "option -%c is unknown or needs a value", optopt);
            else
                ctl_usage_error(cmd, "option '%s' is unknown or needs a value", argv[optind - 1]);
            return '?';
        }
        if (ch == ':') {
            ctl_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
            return '?';
        }
        return ch;
    }
}

void ctl_json_print(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

bool ctl_valid_id(const char *s)
{
    return msg_id_valid(s, strlen(s));
}

int ctl_id_arg(const ctl_cmd_t *cmd, int argc, char **argv, const char *what, const char **id)
{
    if (optind >= argc)
        return ctl_usage_error(cmd, "missing the %s", what);
    *id = argv[optind++];
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!ctl_valid_id(*id))
        return ctl_usage_error(cmd, "'%s' is not a valid %s (1-64 chars of [A-Za-z0-9_.:-])", *id,
                               what);
    return 0;
}

void ctl_derived_id(const char *prefix, json_t *fields, char out[MSG_ID_MAX + 1])
{
    char *text = fields ? json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (!text)
        log_panic("out of memory deriving an id");
    char hex[DIGEST_HEX_LEN + 1];
    digest_sha256_hex(text, strlen(text), hex);
    snprintf(out, MSG_ID_MAX + 1, "%s%.28s", prefix, hex);
    free(text);
    json_decref(fields);
}

const char *ctl_money(int64_t amount, const char *currency, char *buf, size_t n)
{
    if (money_format(amount, currency, buf, n) != LL_OK)
        snprintf(buf, n, "%" PRId64 " minor units", amount);
    return buf;
}

int ctl_period(const ctl_cmd_t *cmd, db_t *db, const char *from, const char *to)
{
    if (db_exec(db, "SET TIME ZONE 'UTC'") != LL_OK)
        return ctl_fail(NULL, "setting the session's time zone: %s", db_errstr(db));
    const char *flag[] = {"--from", "--to"}, *val[] = {from, to};
    PGresult *r;
    for (int k = 0; k < 2; k++) {
        const char *p[] = {val[k]};
        if (db_query(db, &r, "SELECT $1::timestamptz", 1, p) == LL_OK) {
            PQclear(r);
            continue;
        }
        if (strncmp(db_sqlstate(db), "22", 2) == 0)
            return ctl_usage_error(cmd,
                                   "%s '%s' is not a time (use e.g. 2026-12-01 or "
                                   "2026-12-01T10:00:00Z; times without a zone are UTC)",
                                   flag[k], val[k]);
        return ctl_fail(NULL, "checking %s: %s", flag[k], db_errstr(db));
    }
    if (db_query(db, &r, "SELECT $1::timestamptz < $2::timestamptz", 2, val) != LL_OK)
        return ctl_fail(NULL, "checking the period: %s", db_errstr(db));
    bool ordered = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!ordered)
        return ctl_usage_error(cmd, "--from '%s' is not before --to '%s'", from, to);
    return 0;
}
