/*
 * ll_ledger.c - the ledger under a worker test and its model: see
 * ll_ledger.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "ll_ledger.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"

void llw_ctl(const char *dbname, const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, dbname, "%s", args);
    ck_assert_msg(rc == 0, "ledgerctl %s exited %d: %s%s", args, rc, out, err);
    free(out);
    free(err);
}

void llw_accounts_create(const char *dbname, const llw_account_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        llw_ctl(dbname, "account create %s --currency %s --overdraft %lld", a[i].id, a[i].currency,
                (long long)a[i].overdraft);
        if (a[i].balance > 0)
            llw_ctl(dbname, "account fund %s %lld --ref fund-%s", a[i].id, (long long)a[i].balance,
                    a[i].id);
        if (a[i].frozen)
            llw_ctl(dbname, "account freeze %s", a[i].id);
    }
}

llw_account_t *llw_model_find(llw_account_t *accts, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(accts[i].id, id) == 0)
            return &accts[i];
    return NULL;
}

const char *llw_model_apply(llw_account_t *accts, size_t n, const msg_payment_t *p)
{
    llw_account_t *d = llw_model_find(accts, n, p->payer);
    llw_account_t *c = llw_model_find(accts, n, p->payee);
    if (!d || !c)
        return "unknown_account";
    if (d->frozen || c->frozen)
        return "account_frozen";
    if (strcmp(d->currency, p->currency) != 0 || strcmp(c->currency, p->currency) != 0)
        return "currency_mismatch";
    int64_t nd, nc;
    if (__builtin_sub_overflow(d->balance, p->amount, &nd))
        return "insufficient_funds"; /* below any floor an overdraft can set */
    if (nd < -d->overdraft)
        return "insufficient_funds";
    if (__builtin_add_overflow(c->balance, p->amount, &nc))
        return "balance_overflow";
    d->balance = nd;
    c->balance = nc;
    return "completed";
}

int64_t llw_balance(db_t *db, const char *id)
{
    PGresult *r = NULL;
    const char *params[] = {id};
    int rc = db_query(db, &r, "SELECT balance FROM accounts WHERE id = $1", 1, params);
    ck_assert_msg(rc == LL_OK, "balance of %s: %s", id, db_errstr(db));
    ck_assert_msg(PQntuples(r) == 1, "no account %s", id);
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

void llw_assert_verify(const char *dbname)
{
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, dbname, "verify");
    LLW_ASSERT(rc == 0, "ledgerctl verify exited %d:\n%s%s", rc, out, err);
    free(out);
    free(err);
}

int64_t llw_count(db_t *db, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return llt_scalar(db, sql);
}

char *llw_text(db_t *db, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = NULL;
    int rc = db_query(db, &r, sql, 0, NULL);
    LLW_ASSERT(rc == LL_OK, "%s: %s", sql, db_errstr(db));
    char *v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return v;
}

msg_payment_t llw_payment(const char *ledger, const char *tag, const char *payer, const char *payee,
                          int64_t amount, const char *currency)
{
    msg_payment_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.payment_id, sizeof p.payment_id, "%s-%s", ledger, tag);
    snprintf(p.payer, sizeof p.payer, "%s", payer);
    snprintf(p.payee, sizeof p.payee, "%s", payee);
    p.amount = amount;
    snprintf(p.currency, sizeof p.currency, "%s", currency);
    return p;
}

void llw_past_partitions(db_t *db, int days)
{
    char *lib = llw_slurp(LL_SOURCE_DIR "/tests/sql/lib/retention.sql");
    LLW_ASSERT(lib && lib[0], "cannot read " LL_SOURCE_DIR "/tests/sql/lib/retention.sql");
    llt_exec(db, lib);
    free(lib);
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT pg_temp.past_partitions(%d)", days);
    llt_exec(db, sql);
}

int64_t llw_deadlocks(db_t *db)
{
    /* a session's counts are flushed when it ends */
    llw_wait_sql(db, 0, 30000, "the other database sessions to end (their statistics flushed)",
                 "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND pid <> pg_backend_pid()");
    /* a fresh statistics snapshot, not one cached in this session */
    llt_exec(db, "SELECT pg_stat_clear_snapshot()");
    return llw_count(db,
                     "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()");
}
