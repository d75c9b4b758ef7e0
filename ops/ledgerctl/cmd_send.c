/*
 * cmd_send.c - `ledgerctl send TYPE BODY`: one command message (a JSON
 * body: payment.requested, refund.requested, deposit.received,
 * withdrawal.requested, withdrawal.returned) to ledgerline.commands with a
 * publisher confirm, for producers, rail adapters under test and
 * operators. The body goes through the consuming stage's own decoder
 * first, so a bad value is reported here with its field instead of parked
 * in a dead-letter queue. ctl_send() is the publish `refund request` uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "msg.h"
#include "msg_decode.h"
#include "sign.h"
#include "xmalloc.h"

/* The commands, by routing key, and the decoder of the stage that takes
 * each. */
static const msg_decoder_t *const commands[] = {
    &msg_decoder_requested,           &msg_decoder_refund_requested,
    &msg_decoder_deposit_received,    &msg_decoder_withdrawal_requested,
    &msg_decoder_withdrawal_returned,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* A refused permission is the user's, not the broker's health. */
static const char *send_fix(mq_t *m, const char *type)
{
    static char fix[256];
    if (strstr(mq_errstr(m), "ACCESS_REFUSED")) {
        snprintf(fix, sizeof fix,
                 "this amqp.user may not publish %s to ledgerline.commands: producers publish "
                 "payment/refund/withdrawal requests, rail adapters deposits and returns "
                 "(docs/contract.md#users-and-permissions)",
                 type);
        return fix;
    }
    return "check the broker, then send the same body again (the workers deduplicate it)";
}

int ctl_send(ctl_t *c, const char *type, const char *body, const char *message_id,
             sign_keyring_t *keys)
{
    mq_t *m = ctl_mq(c);
    if (!m)
        return 1;
    mq_props_t props = {
        .message_id = message_id, .type = type, .timestamp_s = clock_now_ms() / 1000};
    char sig[SIGN_MAX];
    mq_header_t h[2] = {{"x-ledgerline-requested-at", NULL, clock_now_ms()}};
    props.headers = h;
    props.nheaders = 1;
    if (keys) {
        sign_body(keys, body, strlen(body), sig);
        h[props.nheaders++] = (mq_header_t){SIGN_HEADER, sig, 0};
    }
    if (mq_publish(m, "ledgerline.commands", type, body, strlen(body), &props, true) != LL_OK)
        return ctl_fail(send_fix(m, type), "publish failed: %s", mq_errstr(m));
    size_t failed = 0;
    int rc = mq_confirm_wait(m, (int)c->cfg.amqp.confirm_timeout_ms, &failed);
    if (rc == LL_ENOTFOUND)
        return ctl_fail("declare the topology first: ledgerctl topology apply",
                        "no queue took the %s: %s", type, mq_errstr(m));
    if (rc != LL_OK)
        return ctl_fail(send_fix(m, type), "the %s was not confirmed: %s", type, mq_errstr(m));
    return 0;
}

static char *read_stdin(void)
{
    size_t cap = 4096, n = 0;
    char *buf = ll_xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += r;
        if (n > MSG_BODY_MAX)
            break;
        if (cap - n - 1 == 0)
            buf = ll_xrealloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    return buf;
}

int cmd_send(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("send");
    static const struct option opts[] = {{"key-file", required_argument, NULL, 'K'},
                                         {NULL, 0, NULL, 0}};
    const char *key_file = NULL;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        if (ch != 'K')
            return ch == 'h' ? 0 : 2;
        key_file = optarg;
    }
    if (argc - optind != 2)
        return ctl_usage_error(cmd, "give the message type and its JSON body (or - for stdin)");
    const char *type = argv[optind];
    const msg_decoder_t *dec = NULL;
    for (size_t i = 0; i < NCOMMANDS && !dec; i++)
        if (strcmp(commands[i]->type, type) == 0)
            dec = commands[i];
    if (!dec)
        return ctl_usage_error(cmd,
                               "'%s' is not a command: payment.requested, refund.requested, "
                               "deposit.received, withdrawal.requested or withdrawal.returned",
                               type);
    char *owned = strcmp(argv[optind + 1], "-") == 0 ? read_stdin() : NULL;
    const char *body = owned ? owned : argv[optind + 1];
    void *msg = ll_xcalloc(1, dec->size);
    msg_reject_t why;
    int rc = dec->decode(body, strlen(body), msg, &why);
    if (rc != LL_OK) {
        free(msg);
        free(owned);
        return ctl_fail("correct the body (schemas/json/ has the schema of each message)",
                        "the %s would be rejected (%s): %s", type, msg_reason_str(why.reason),
                        why.detail);
    }
    char key[MSG_ID_MAX + 1];
    snprintf(key, sizeof key, "%s", (const char *)msg + dec->key_offset);
    dec->clear(msg);
    free(msg);
    sign_keyring_t *keys = NULL;
    if (key_file) {
        char err[512];
        if (sign_load(key_file, &keys, err, sizeof err) != LL_OK) {
            free(owned);
            return ctl_fail("give a file of \"KEY_ID SECRET\" lines (secret >= 32 bytes)", "%s",
                            err);
        }
    }
    rc = ctl_send(c, type, body, key, keys);
    sign_free(keys);
    free(owned);
    if (rc)
        return rc;
    if (c->json)
        ctl_json_print(json_pack("{s:s, s:s, s:s}", "type", type, dec->key_field, key, "exchange",
                                 "ledgerline.commands"));
    else
        printf("sent %s %s to ledgerline.commands (confirmed)\n", type, key);
    return 0;
}
