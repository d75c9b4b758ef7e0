/*
 * money.c - checked int64 arithmetic, the fee formula, the ISO 4217 table,
 * and the strict amount parser / formatter of money.h.
 *
 * Public API: see money.h.
 */
#include "money.h"

#include <string.h>

int money_add(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return LL_ERANGE;
    *out = r;
    return LL_OK;
}

int money_sub(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return LL_ERANGE;
    *out = r;
    return LL_OK;
}

int money_mul(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return LL_ERANGE;
    *out = r;
    return LL_OK;
}

int money_fee(int64_t amount, int bps, int64_t fixed, int64_t *out)
{
    if (amount < 0 || bps < 0 || bps > 10000)
        return LL_EINVAL;
    /* amount * bps < 2^63 * 2^14: fits easily in 128 bits; the quotient is
     * at most amount, so it fits int64 again. */
    __int128 prod = (__int128)amount * bps;
    int64_t part = (int64_t)((prod + 5000) / 10000);
    return money_add(part, fixed, out);
}

/*
 * Active ISO 4217 alphabetic codes with a minor unit, sorted by code.
 * Left out on purpose: fund and index codes (BOV, CHE, CHW, COU, MXV, USN,
 * UYI), metals and units without a minor unit (XAU, XAG, XPD, XPT, XBA..XBD,
 * XDR, XSU, XUA), testing / no-currency codes (XTS, XXX), and withdrawn codes
 * (HRK, CUC, SLL, ZWL, ANG -> XCG in 2025, BGN -> EUR in 2026).
 * UYW and CLF are kept: ISO defines a minor unit (4) for them.
 * The JSON Schemas in schemas/json/ carry the same list as the currency enum.
 */
static const struct {
    char code[4];
    int exponent;
} money_iso4217[] = {
    {"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"AOA", 2}, {"ARS", 2}, {"AUD", 2}, {"AWG", 2},
    {"AZN", 2}, {"BAM", 2}, {"BBD", 2}, {"BDT", 2}, {"BHD", 3}, {"BIF", 0}, {"BMD", 2}, {"BND", 2},
    {"BOB", 2}, {"BRL", 2}, {"BSD", 2}, {"BTN", 2}, {"BWP", 2}, {"BYN", 2}, {"BZD", 2}, {"CAD", 2},
    {"CDF", 2}, {"CHF", 2}, {"CLF", 4}, {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"CRC", 2}, {"CUP", 2},
    {"CVE", 2}, {"CZK", 2}, {"DJF", 0}, {"DKK", 2}, {"DOP", 2}, {"DZD", 2}, {"EGP", 2}, {"ERN", 2},
    {"ETB", 2}, {"EUR", 2}, {"FJD", 2}, {"FKP", 2}, {"GBP", 2}, {"GEL", 2}, {"GHS", 2}, {"GIP", 2},
    {"GMD", 2}, {"GNF", 0}, {"GTQ", 2}, {"GYD", 2}, {"HKD", 2}, {"HNL", 2}, {"HTG", 2}, {"HUF", 2},
    {"IDR", 2}, {"ILS", 2}, {"INR", 2}, {"IQD", 3}, {"IRR", 2}, {"ISK", 0}, {"JMD", 2}, {"JOD", 3},
    {"JPY", 0}, {"KES", 2}, {"KGS", 2}, {"KHR", 2}, {"KMF", 0}, {"KPW", 2}, {"KRW", 0}, {"KWD", 3},
    {"KYD", 2}, {"KZT", 2}, {"LAK", 2}, {"LBP", 2}, {"LKR", 2}, {"LRD", 2}, {"LSL", 2}, {"LYD", 3},
    {"MAD", 2}, {"MDL", 2}, {"MGA", 2}, {"MKD", 2}, {"MMK", 2}, {"MNT", 2}, {"MOP", 2}, {"MRU", 2},
    {"MUR", 2}, {"MVR", 2}, {"MWK", 2}, {"MXN", 2}, {"MYR", 2}, {"MZN", 2}, {"NAD", 2}, {"NGN", 2},
    {"NIO", 2}, {"NOK", 2}, {"NPR", 2}, {"NZD", 2}, {"OMR", 3}, {"PAB", 2}, {"PEN", 2}, {"PGK", 2},
    {"PHP", 2}, {"PKR", 2}, {"PLN", 2}, {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2},
    {"RWF", 0}, {"SAR", 2}, {"SBD", 2}, {"SCR", 2}, {"SDG", 2}, {"SEK", 2}, {"SGD", 2}, {"SHP", 2},
    {"SLE", 2}, {"SOS", 2}, {"SRD", 2}, {"SSP", 2}, {"STN", 2}, {"SVC", 2}, {"SYP", 2}, {"SZL", 2},
    {"THB", 2}, {"TJS", 2}, {"TMT", 2}, {"TND", 3}, {"TOP", 2}, {"TRY", 2}, {"TTD", 2}, {"TWD", 2},
    {"TZS", 2}, {"UAH", 2}, {"UGX", 0}, {"USD", 2}, {"UYU", 2}, {"UYW", 4}, {"UZS", 2}, {"VED", 2},
    {"VES", 2}, {"VND", 0}, {"VUV", 0}, {"WST", 2}, {"XAF", 0}, {"XCD", 2}, {"XCG", 2}, {"XOF", 0},
    {"XPF", 0}, {"YER", 2}, {"ZAR", 2}, {"ZMW", 2}, {"ZWG", 2},
};

#define MONEY_NCUR (sizeof money_iso4217 / sizeof money_iso4217[0])

static bool money_code_shape(const char *code)
{
    if (!code)
        return false;
    for (int i = 0; i < 3; i++)
        if (code[i] < 'A' || code[i] > 'Z')
            return false;
    return code[3] == '\0';
}

static int money_find(const char *code)
{
    if (!money_code_shape(code))
        return -1;
    size_t lo = 0, hi = MONEY_NCUR;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(code, money_iso4217[mid].code, 3);
        if (c == 0)
            return (int)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

bool money_currency_valid(const char *code)
{
    return money_find(code) >= 0;
}

int money_currency_exponent(const char *code)
{
    int i = money_find(code);
    return i < 0 ? -1 : money_iso4217[i].exponent;
}

size_t money_currency_count(void)
{
    return MONEY_NCUR;
}

const char *money_currency_at(size_t i)
{
    return i < MONEY_NCUR ? money_iso4217[i].code : NULL;
}

int money_parse_minor(const char *s, int64_t *out)
{
    if (!s)
        return LL_EINVAL;
    const char *p = s;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (*p < '0' || *p > '9')
        return LL_EINVAL;
    if (*p == '0' && (p[1] != '\0' || neg))
        return LL_EINVAL; /* leading zero, or "-0" */
    /* Accumulate negatively: the negative range is the larger one. */
    int64_t v = 0;
    bool range = false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return LL_EINVAL;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_sub_overflow(v, *p - '0', &v))
            range = true; /* keep scanning: bad syntax wins over range */
    }
    if (range)
        return LL_ERANGE;
    if (!neg) {
        if (v == INT64_MIN)
            return LL_ERANGE;
        v = -v;
    }
    *out = v;
    return LL_OK;
}

int money_format(int64_t amount, const char *currency, char *buf, size_t n)
{
    if (buf && n > 0)
        buf[0] = '\0';
    int e = money_currency_exponent(currency);
    if (e < 0 || !buf)
        return LL_EINVAL;
    /* Magnitude as unsigned, exact for INT64_MIN. */
    uint64_t u = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    char digits[24];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (nd <= e) /* at least one digit before the point */
        digits[nd++] = '0';
    char tmp[MONEY_FORMAT_MAX];
    size_t k = 0;
    if (amount < 0)
        tmp[k++] = '-';
    for (int i = nd - 1; i >= 0; i--) {
        if (i == e - 1)
            tmp[k++] = '.';
        tmp[k++] = digits[i];
    }
    tmp[k] = '\0';
    if (k + 1 > n)
        return LL_ERANGE;
    memcpy(buf, tmp, k + 1);
    return LL_OK;
}
