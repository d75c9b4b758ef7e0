/*
 * ll_ledger.h - the ledger under a worker test and a model to compare it
 * with: ledgerctl that must succeed, accounts created, funded and frozen,
 * a one-at-a-time model of ledger_post() over those accounts, balances,
 * `ledgerctl verify`, counts and text read with formatted queries, and
 * payments with ids unique to the test's ledger. Failures print the
 * workers' log tails (LLW_ASSERT()).
 *
 * Public API: llw_ctl, llw_account_t, llw_accounts_create, llw_model_find,
 * llw_model_apply, llw_balance, llw_assert_verify, llw_count, llw_text,
 * llw_payment, llw_past_partitions, llw_deadlocks.
 */
#ifndef LL_LEDGER_H
#define LL_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "msg.h"

/* Runs ledgerctl on `dbname` (NULL: the stack's own); fails the test
 * unless it exits 0. */
void llw_ctl(const char *dbname, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An account of the test and of the model. */
typedef struct llw_account {
    const char *id;
    const char *currency;
    int64_t balance;   /* funded with this much (>= 0) at creation */
    int64_t overdraft; /* overdraft_limit */
    bool frozen;
} llw_account_t;

/* Creates, funds and freezes each account with ledgerctl. */
void llw_accounts_create(const char *dbname, const llw_account_t *a, size_t n);
/* The account `id` of accts, or NULL. */
llw_account_t *llw_model_find(llw_account_t *accts, size_t n, const char *id);
/* Applies p to the model as ledger_post() does, in this order of checks:
 * unknown_account, account_frozen, currency_mismatch, insufficient_funds,
 * balance_overflow (the payee's balance would pass INT64_MAX). Returns
 * "completed" (balances moved) or the refusal reason. */
const char *llw_model_apply(llw_account_t *accts, size_t n, const msg_payment_t *p);

/* accounts.balance of `id`; fails the test if there is no such account. */
int64_t llw_balance(db_t *db, const char *id);
/* `ledgerctl verify` must exit 0 (fails with its report and the logs). */
void llw_assert_verify(const char *dbname);
/* llt_scalar() of a formatted query. */
int64_t llw_count(db_t *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text of the first column of the first row of a formatted query, or
 * NULL (no row, or NULL). Fails the test if the query fails. Caller
 * frees. */
char *llw_text(db_t *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A payment with the unique id "<ledger>-<tag>" (Redis is shared by every
 * test: ids must never repeat across tests), no description or metadata. */
msg_payment_t llw_payment(const char *ledger, const char *tag, const char *payer, const char *payee,
                          int64_t amount, const char *currency);

/* The ledger of db as if it had run for `days` days: its legacy
 * partitions dropped, daily ones for the past `days` days (the SQL suites'
 * pg_temp.past_partitions() of tests/sql/lib/retention.sql, loaded into
 * db's session). */
void llw_past_partitions(db_t *db, int days);

/* Deadlocks PostgreSQL has counted in db's database, once every other
 * session of it has ended (a session's counts are flushed when it ends;
 * waits up to 30 s): call it before the workers start and after they
 * stopped. */
int64_t llw_deadlocks(db_t *db);

#endif
