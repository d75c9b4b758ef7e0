/*
 * money.h - money arithmetic for Ledgerline: amounts are int64 minor units,
 * never floating point (docs/ledger.md#money).
 *
 * What is here:
 *   - checked int64 arithmetic that reports overflow instead of wrapping;
 *   - the fee formula round_half_up(amount * bps / 10000) + fixed, exact for
 *     every int64 amount (128-bit intermediates);
 *   - the ISO 4217 table (active alphabetic codes and their minor-unit
 *     exponent) used by the message codec and mirrored by the JSON Schemas'
 *     currency enum (tests/unit/test_schema.c keeps the two identical);
 *   - a strict parser and a formatter for amounts in minor units.
 *
 * No function here allocates memory.
 *
 * Public API: money_add(), money_sub(), money_mul(), money_fee(),
 * money_currency_valid(), money_currency_exponent(), money_currency_count(),
 * money_currency_at(), money_parse_minor(), money_format(), MONEY_FORMAT_MAX.
 */
#ifndef LL_MONEY_H
#define LL_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Big enough for money_format() of any int64 in any currency of the table:
 * sign + 19 digits + '.' + leading "0" + NUL, rounded up. */
#define MONEY_FORMAT_MAX 32

/* *out = a + b / a - b / a * b. LL_OK, or LL_ERANGE on int64 overflow
 * (*out is then left unchanged). */
LL_MUSTCHECK int money_add(int64_t a, int64_t b, int64_t *out);
LL_MUSTCHECK int money_sub(int64_t a, int64_t b, int64_t *out);
LL_MUSTCHECK int money_mul(int64_t a, int64_t b, int64_t *out);

/*
 * The fee on `amount`: round_half_up(amount * bps / 10000) + fixed, where
 * half-up means an exact .5 rounds away from zero (amount >= 0, so up).
 * Requires amount >= 0 and 0 <= bps <= 10000 (else LL_EINVAL); the
 * proportional part never overflows, LL_ERANGE if adding `fixed` does.
 * *out is written only on LL_OK.
 */
LL_MUSTCHECK int money_fee(int64_t amount, int bps, int64_t fixed, int64_t *out);

/* True iff `code` is exactly 3 upper-case ASCII letters and an active
 * ISO 4217 code of the table. NULL -> false. */
bool money_currency_valid(const char *code);

/* Minor-unit exponent of `code` (EUR 2, JPY 0, KWD 3, CLF 4), or -1 if the
 * code is not in the table. */
int money_currency_exponent(const char *code);

/* The table, sorted by code, for iteration (the schema agreement test):
 * money_currency_at(i) for i < money_currency_count() is a static string,
 * NULL past the end. */
size_t money_currency_count(void);
const char *money_currency_at(size_t i);

/*
 * Strict decimal parse of an amount in minor units: optional leading '-',
 * then digits; no spaces, no '+', no leading zeros except "0" itself, no
 * "-0", nothing after the digits. LL_EINVAL for bad syntax (NULL too),
 * LL_ERANGE if the value does not fit int64. *out is written only on LL_OK.
 */
LL_MUSTCHECK int money_parse_minor(const char *s, int64_t *out);

/*
 * Formats `amount` minor units of `currency` in major units: 1234 EUR ->
 * "12.34", -5 EUR -> "-0.05", 1234 JPY -> "1234"; exact for INT64_MIN.
 * No grouping, no currency symbol. LL_EINVAL for an unknown currency,
 * LL_ERANGE if `buf` (n bytes) is too small (MONEY_FORMAT_MAX always is
 * enough); buf is NUL-terminated whenever n > 0.
 */
LL_MUSTCHECK int money_format(int64_t amount, const char *currency, char *buf, size_t n);

#endif
