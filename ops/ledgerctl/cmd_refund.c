/*
 * cmd_refund.c - `ledgerctl refund request PAYMENT_ID --amount N`: one
 * refund.requested to ledgerline.commands, with a publisher confirm, for
 * producers and operators (docs/contract.md#refund-requested).
 *
 * The body goes through the refund stage's own decoder first, so a bad
 * value is reported here with its field instead of parked in refunds.dead.
 * Without --refund-id the id is derived from the request (payment,
 * amount, reason): the same command run twice (a retry) is one refund;
 * a second refund of the same amount needs its own --refund-id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "money.h"
#include "msg.h"
#include "msg_decode.h"
#include "sign.h"

int cmd_refund_request(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("refund request");
    static const struct option opts[] = {{"amount", required_argument, NULL, 'm'},
                                         {"refund-id", required_argument, NULL, 'i'},
                                         {"reason", required_argument, NULL, 'r'},
                                         {"key-file", required_argument, NULL, 'K'},
                                         {NULL, 0, NULL, 0}};
    const char *id = NULL, *reason = NULL, *key_file = NULL;
    int64_t amount = 0;
    bool have_amount = false;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        switch (ch) {
        case 'm':
            if (money_parse_minor(optarg, &amount) != LL_OK)
                return ctl_usage_error(cmd, "--amount '%s' is not an integer (minor units)",
                                       optarg);
            have_amount = true;
            break;
        case 'i':
            id = optarg;
            break;
        case 'r':
            reason = optarg;
            break;
        case 'K':
            key_file = optarg;
            break;
        default:
            return ch == 'h' ? 0 : 2;
        }
    }
    const char *payment_id;
    int rc = ctl_id_arg(cmd, argc, argv, "payment id", &payment_id);
    if (rc)
        return rc;
    if (!have_amount)
        return ctl_usage_error(cmd, "--amount is required: the minor units to refund (1234 = "
                                    "12.34 EUR)");
    char gen[MSG_ID_MAX + 1];
    if (!id) {
        json_t *probe = reason ? json_string(reason) : NULL;
        if (reason && !probe)
            return ctl_usage_error(cmd, "--reason is not valid UTF-8 text");
        json_decref(probe);
        ctl_derived_id("rf-",
                       json_pack("{s:s, s:I, s:s*}", "payment_id", payment_id, "amount",
                                 (json_int_t)amount, "reason", reason),
                       gen);
        id = gen;
    }
    json_t *j = json_pack("{s:s, s:s, s:I, s:s*}", "refund_id", id, "payment_id", payment_id,
                          "amount", (json_int_t)amount, "reason", reason);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body)
        return ctl_usage_error(cmd, "--refund-id and --reason must be valid UTF-8 text");
    msg_refund_t r;
    msg_reject_t why;
    if (msg_refund_decode(body, strlen(body), &r, &why) != LL_OK) {
        free(body);
        return ctl_fail("correct the value; `ledgerctl refund request --help` shows the options",
                        "the refund would be rejected (%s): %s", msg_reason_str(why.reason),
                        why.detail);
    }
    sign_keyring_t *keys = NULL;
    if (key_file) {
        char err[512];
        if (sign_load(key_file, &keys, err, sizeof err) != LL_OK) {
            free(body);
            return ctl_fail("give a file of \"KEY_ID SECRET\" lines (secret >= 32 bytes)", "%s",
                            err);
        }
    }
    rc = ctl_send(c, MSG_TYPE_REFUND_REQUESTED, body, r.refund_id, keys);
    sign_free(keys);
    free(body);
    if (rc)
        return rc;
    if (c->json)
        ctl_json_print(json_pack("{s:s, s:s, s:I}", "refund_id", r.refund_id, "payment_id",
                                 r.payment_id, "amount", (json_int_t)r.amount));
    else
        printf("published refund.requested %s of payment %s (confirmed)%s\n", r.refund_id,
               r.payment_id,
               id == gen ? "; its id comes from the request: the same command again is the same "
                           "refund (--refund-id for another)"
                         : "");
    return 0;
}
