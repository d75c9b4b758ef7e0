/*
 * cmd_publish.c - `ledgerctl publish`: one payment from flags, or --count N
 * generated ones from a seed, with publisher confirms.
 *
 * Every body is run through the codec the workers use (msg_payment_decode)
 * before it is sent, so a typo is reported here with the field and the
 * reason instead of ending up in risk.dead. Messages are published
 * `mandatory`: if no queue is bound for them the broker returns them and
 * the command fails, telling the operator to apply the topology.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "money.h"
#include "msg.h"
#include "msg_decode.h"
#include "msg_encode.h"
#include "sign.h"
#include "xmalloc.h"

#define MAX_ACCOUNTS 100000

typedef struct pub {
    ctl_t *c;
    mq_t *m;
    const char *type;     /* routing key */
    const char *exchange; /* ledgerline.commands or ledgerline.events */
    int window;
    long long sent, confirmed;
    bool progress;
    int64_t started, last_progress;
    sign_keyring_t *keys; /* --key-file: sign each body with its first key */
} pub_t;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Splits "a,b,c" in place into out[]; returns the count or -1. */
static int split_ids(char *s, char **out, int max)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max || !ctl_valid_id(tok))
            return -1;
        out[n++] = tok;
    }
    return n;
}

/* The fix for a failed publish: a refused permission is the user's, not
 * the broker's health. */
static const char *publish_fix(const pub_t *p)
{
    if (strstr(mq_errstr(p->m), "ACCESS_REFUSED"))
        return "this amqp.user may not publish there: producers publish payment.requested to "
               "ledgerline.commands; --type payment.approved needs a user that may publish on "
               "ledgerline.events (docs/contract.md#users-and-permissions)";
    return "check the broker, then publish again (duplicates are deduplicated by the workers)";
}

static int confirm(pub_t *p)
{
    size_t failed = 0;
    int rc = mq_confirm_wait(p->m, (int)p->c->cfg.amqp.confirm_timeout_ms, &failed);
    if (rc == LL_ENOTFOUND)
        return ctl_fail("declare the topology first: ledgerctl topology apply",
                        "no queue took %zu message(s): %s", failed, mq_errstr(p->m));
    if (rc == LL_ENACK)
        return ctl_fail("look at the queue's limits and the broker's alarms, then publish "
                        "again (generated ids repeat for the same --seed; duplicates are "
                        "deduplicated by the workers)",
                        "the broker refused %zu message(s)", failed);
    if (rc != LL_OK)
        return ctl_fail(publish_fix(p), "publish not confirmed after %lld confirmed: %s",
                        p->confirmed, mq_errstr(p->m));
    p->confirmed = p->sent;
    return 0;
}

static void progress(pub_t *p, long long total, bool last)
{
    if (!p->progress)
        return;
    int64_t now = clock_mono_ms();
    if (!last && now - p->last_progress < 200)
        return;
    p->last_progress = now;
    double secs = (double)(now - p->started) / 1000.0;
    fprintf(stderr, "\rpublished %lld/%lld (%.0f/s)%s", p->confirmed, total,
            secs > 0 ? (double)p->confirmed / secs : 0.0, last ? "\n" : "");
}

/* Validates `body` as a payment.requested and sends it as p->type. */
static int send_one(pub_t *p, const char *body, size_t len)
{
    msg_payment_t pay;
    msg_reject_t why;
    memset(&pay, 0, sizeof pay);
    if (msg_payment_decode(body, len, &pay, &why) != LL_OK)
        return ctl_fail("correct the value; `ledgerctl publish --help` shows the options",
                        "the payment would be rejected (%s): %s", msg_reason_str(why.reason),
                        why.detail);
    char *owned = NULL;
    if (strcmp(p->type, MSG_TYPE_APPROVED) == 0) {
        owned = msg_encode_approved(&pay, 0, NULL, 0, clock_now_ms());
        if (!owned) {
            msg_payment_clear(&pay);
            return ctl_fail(NULL, "out of memory");
        }
        body = owned;
        len = strlen(owned);
    }
    mq_props_t props = {
        .message_id = pay.payment_id, .type = p->type, .timestamp_s = clock_now_ms() / 1000};
    char sig[SIGN_MAX];
    /* the request time, for the workers' end-to-end latency metrics */
    mq_header_t h[2] = {{"x-ledgerline-requested-at", NULL, clock_now_ms()}};
    props.headers = h;
    props.nheaders = 1;
    if (p->keys) {
        sign_body(p->keys, body, len, sig);
        h[props.nheaders++] = (mq_header_t){SIGN_HEADER, sig, 0};
    }
    int rc = mq_publish(p->m, p->exchange, p->type, body, len, &props, true);
    free(owned);
    msg_payment_clear(&pay);
    if (rc != LL_OK)
        return ctl_fail(publish_fix(p), "publish failed: %s", mq_errstr(p->m));
    p->sent++;
    if (p->sent - p->confirmed >= p->window)
        return confirm(p);
    return 0;
}

static char *encode_request(const char *id, const char *payer, const char *payee, int64_t amount,
                            const char *currency, const char *description, json_t *metadata)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s}", "payment_id", id, "payer", payer, "payee",
                          payee, "amount", (json_int_t)amount, "currency", currency);
    if (!j)
        return NULL;
    if (description)
        json_object_set_new(j, "description", json_string(description));
    if (metadata)
        json_object_set(j, "metadata", metadata);
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

/* The id of a payment published without --payment-id: the same command
 * run twice (a retry) publishes the same payment. */
static void derive_id(const char *payer, const char *payee, int64_t amount, const char *currency,
                      const char *desc, json_t *metadata, char out[MSG_ID_MAX + 1])
{
    ctl_derived_id("cli-",
                   json_pack("{s:s, s:s, s:I, s:s, s:s?, s:O?}", "payer", payer, "payee", payee,
                             "amount", (json_int_t)amount, "currency", currency, "description",
                             desc, "metadata", metadata),
                   out);
}

int cmd_publish(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("publish");
    static const struct option opts[] = {{"payer", required_argument, NULL, 'a'},
                                         {"payee", required_argument, NULL, 'b'},
                                         {"amount", required_argument, NULL, 'm'},
                                         {"currency", required_argument, NULL, 'c'},
                                         {"payment-id", required_argument, NULL, 'i'},
                                         {"description", required_argument, NULL, 'd'},
                                         {"metadata", required_argument, NULL, 'M'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"payers", required_argument, NULL, 'A'},
                                         {"payees", required_argument, NULL, 'B'},
                                         {"min-amount", required_argument, NULL, 'x'},
                                         {"max-amount", required_argument, NULL, 'X'},
                                         {"type", required_argument, NULL, 't'},
                                         {"window", required_argument, NULL, 'w'},
                                         {"key-file", required_argument, NULL, 'K'},
                                         {NULL, 0, NULL, 0}};
    const char *payer = NULL, *payee = NULL, *currency = NULL, *id = NULL, *desc = NULL;
    const char *key_file = NULL;
    char *payers_s = NULL, *payees_s = NULL;
    int64_t amount = -1, count = 0, seed = 1, min_amount = 100, max_amount = 10000, window = 256;
    bool have_amount = false;
    json_t *metadata = NULL;
    pub_t p = {.c = c, .type = MSG_TYPE_REQUESTED};
    int ch, rc = 0;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        int64_t *num = NULL;
        const char *name = NULL;
        switch (ch) {
        case 'a':
            payer = optarg;
            break;
        case 'b':
            payee = optarg;
            break;
        case 'c':
            currency = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 'd':
            desc = optarg;
            break;
        case 'A':
            payers_s = optarg;
            break;
        case 'B':
            payees_s = optarg;
            break;
        case 'K':
            key_file = optarg;
            break;
        case 't':
            if (strcmp(optarg, MSG_TYPE_REQUESTED) && strcmp(optarg, MSG_TYPE_APPROVED)) {
                json_decref(metadata);
                return ctl_usage_error(cmd, "--type must be payment.requested or "
                                            "payment.approved");
            }
            p.type =
                strcmp(optarg, MSG_TYPE_APPROVED) == 0 ? MSG_TYPE_APPROVED : MSG_TYPE_REQUESTED;
            break;
        case 'M': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                json_decref(metadata);
                return ctl_usage_error(cmd, "--metadata '%s' must be KEY=VALUE", optarg);
            }
            if (!metadata)
                metadata = json_object();
            *eq = '\0';
            if (json_object_get(metadata, optarg)) {
                json_decref(metadata);
                return ctl_usage_error(
                    cmd, "--metadata key '%s' is given twice: give each key once", optarg);
            }
            json_t *v = json_string(eq + 1);
            if (!v || json_object_set_new(metadata, optarg, v) != 0) {
                json_decref(metadata);
                return ctl_usage_error(cmd, "--metadata '%s': key and value must be valid UTF-8",
                                       optarg);
            }
            break;
        }
        case 'm':
            num = &amount, name = "--amount", have_amount = true;
            break;
        case 'n':
            num = &count, name = "--count";
            break;
        case 's':
            num = &seed, name = "--seed";
            break;
        case 'x':
            num = &min_amount, name = "--min-amount";
            break;
        case 'X':
            num = &max_amount, name = "--max-amount";
            break;
        case 'w':
            num = &window, name = "--window";
            break;
        default:
            json_decref(metadata);
            return ch == 'h' ? 0 : 2;
        }
        if (num && money_parse_minor(optarg, num) != LL_OK) {
            json_decref(metadata);
            return ctl_usage_error(cmd, "%s '%s' is not an integer", name, optarg);
        }
    }
    if (optind < argc) {
        json_decref(metadata);
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    }
    if (desc) {
        json_t *d = json_string(desc);
        if (!d) {
            json_decref(metadata);
            return ctl_usage_error(cmd, "--description is not valid UTF-8 text");
        }
        json_decref(d);
    }
    if (!currency || (count == 0 && (!payer || !payee || !have_amount)) ||
        (count > 0 && (!payers_s || !payees_s))) {
        json_decref(metadata);
        return ctl_usage_error(cmd, count > 0 ? "--count needs --payers, --payees and --currency"
                                              : "one payment needs --payer, --payee, --amount "
                                                "and --currency (or use --count N)");
    }
    if (count < 0 || count > 100000000 || window < 1 || window > 65535 || min_amount < 1 ||
        max_amount < min_amount || max_amount > MSG_AMOUNT_MAX) {
        json_decref(metadata);
        return ctl_usage_error(cmd, "need 0 <= --count <= 10^8, 1 <= --window <= 65535 and "
                                    "1 <= --min-amount <= --max-amount <= 10^14");
    }
    char **payers = ll_xcalloc(MAX_ACCOUNTS, sizeof *payers);
    char **payees = ll_xcalloc(MAX_ACCOUNTS, sizeof *payees);
    int np = 0, nq = 0;
    if (count > 0) {
        np = split_ids(payers_s, payers, MAX_ACCOUNTS);
        nq = split_ids(payees_s, payees, MAX_ACCOUNTS);
        /* every payer needs a payee other than itself, or the run would stop
         * half-way at the first such draw */
        bool pairable = np > 0 && nq > 0;
        for (int a = 0; pairable && a < np; a++) {
            bool other = false;
            for (int b = 0; b < nq && !other; b++)
                other = strcmp(payers[a], payees[b]) != 0;
            pairable = other;
        }
        if (!pairable) {
            json_decref(metadata);
            free(payers);
            free(payees);
            return ctl_usage_error(cmd,
                                   "--payers and --payees must be comma-separated account "
                                   "ids (at most %d each), with a payee other than itself for "
                                   "every payer",
                                   MAX_ACCOUNTS);
        }
    }

    p.exchange =
        strcmp(p.type, MSG_TYPE_APPROVED) == 0 ? "ledgerline.events" : "ledgerline.commands";
    if (key_file) {
        char err[512];
        if (sign_load(key_file, &p.keys, err, sizeof err) != LL_OK) {
            json_decref(metadata);
            free(payers);
            free(payees);
            return ctl_fail("give a file of \"KEY_ID SECRET\" lines (secret >= 32 bytes)", "%s",
                            err);
        }
    }
    p.window = (int)window;
    p.m = ctl_mq(c);
    if (!p.m) {
        json_decref(metadata);
        free(payers);
        free(payees);
        sign_free(p.keys);
        return 1;
    }
    p.progress = count > 0 && !c->json && isatty(STDERR_FILENO);
    p.started = p.last_progress = clock_mono_ms();

    char gen_id[MSG_ID_MAX + 1];
    if (count == 0) {
        if (!id) { /* derived from the request: a retry is the same payment */
            derive_id(payer, payee, amount, currency, desc, metadata, gen_id);
            id = gen_id;
        }
        char *body = encode_request(id, payer, payee, amount, currency, desc, metadata);
        rc = body ? send_one(&p, body, strlen(body)) : ctl_fail(NULL, "out of memory");
        free(body);
    } else {
        uint64_t st = (uint64_t)seed;
        for (int64_t i = 0; i < count && rc == 0; i++) {
            uint64_t r = splitmix64(&st);
            int a = (int)(r % (uint64_t)np);
            int b = (int)((r >> 20) % (uint64_t)nq);
            while (strcmp(payers[a], payees[b]) == 0) /* ends: checked above */
                b = (b + 1) % nq;
            int64_t amt =
                min_amount + (int64_t)((r >> 8) % (uint64_t)(max_amount - min_amount + 1));
            snprintf(gen_id, sizeof gen_id, "gen-%" PRId64 "-%" PRId64, seed, i);
            char *body =
                encode_request(gen_id, payers[a], payees[b], amt, currency, desc, metadata);
            rc = body ? send_one(&p, body, strlen(body)) : ctl_fail(NULL, "out of memory");
            free(body);
            progress(&p, count, false);
        }
    }
    if (rc == 0 && p.sent > p.confirmed)
        rc = confirm(&p);
    json_decref(metadata);
    free(payers);
    free(payees);
    sign_free(p.keys);
    if (rc != 0)
        return rc;
    progress(&p, count, true);
    double secs = (double)(clock_mono_ms() - p.started) / 1000.0;
    if (c->json)
        ctl_json_print(json_pack("{s:I, s:s, s:s, s:f, s:s?}", "published", (json_int_t)p.sent,
                                 "type", p.type, "exchange", p.exchange, "seconds", secs,
                                 "payment_id", count == 0 ? id : NULL));
    else if (count == 0)
        printf("published %s %s to %s (confirmed)%s\n", p.type, id, p.exchange,
               id == gen_id ? "; its id comes from the request: the same command again is the "
                              "same payment (--payment-id for another)"
                            : "");
    else
        printf("published %lld %s to %s (confirmed) in %.2f s (%.0f/s)\n", p.sent, p.type,
               p.exchange, secs, secs > 0 ? (double)p.sent / secs : 0.0);
    return 0;
}
