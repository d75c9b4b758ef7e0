/*
 * fuzz_msg.c - libFuzzer harness for the message codec's decoders of
 * outside input: msg_payment_decode(), msg_approved_decode(),
 * msg_completed_decode(), every other command decoder of a stage
 * (refund.requested, deposit.received, withdrawal.requested,
 * withdrawal.returned) and msg_peek_payment_id(). Invariants checked:
 * the result is LL_OK or LL_EREJECT (LL_ENOMEM tolerated); on LL_OK the
 * payload hash works and the payment re-encodes into an event that the
 * matching decoder accepts with no field changed; a decoded command's
 * canonical form decodes to the same canonical form, and its outcome
 * events encode; on LL_EREJECT the reason
 * is in range and field/detail are NUL-terminated, valid UTF-8 (they go
 * into message.rejected). Seeds: tests/fuzz/corpus/fuzz_msg/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "msg_decode.h"
#include "msg_encode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_msg: invariant failed: %s (line %d)\n", #cond, __LINE__);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_reject(int rc, const msg_reject_t *why)
{
    CHECK(rc == LL_OK || rc == LL_EREJECT || rc == LL_ENOMEM);
    if (rc != LL_EREJECT)
        return;
    CHECK((unsigned)why->reason < MSG_REASON_COUNT);
    CHECK(memchr(why->field, '\0', sizeof why->field) != NULL);
    CHECK(memchr(why->detail, '\0', sizeof why->detail) != NULL);
    CHECK(why->detail[0] != '\0');
    json_t *s = json_string(why->detail); /* NULL if not valid UTF-8 */
    CHECK(s != NULL);
    json_decref(s);
    s = json_string(why->field);
    CHECK(s != NULL);
    json_decref(s);
    char *ev = msg_encode_rejected("risk", why, NULL, NULL, NULL, "risk\nfuzz", 0);
    CHECK(ev != NULL);
    free(ev);
}

/* A decoded payment hashes, and survives encode -> decode unchanged. */
static void check_payment(const msg_payment_t *p)
{
    char h1[65], h2[65], diff[128];
    CHECK(msg_payment_hash(p, h1) == LL_OK);
    CHECK(strlen(h1) == 64);
    static const char *const rules[] = {"fuzz"};
    char *ev = msg_encode_approved(p, 50, rules, 1, 1795426285123LL);
    CHECK(ev != NULL);
    msg_approved_t a;
    msg_reject_t why;
    CHECK(msg_approved_decode(ev, strlen(ev), &a, &why) == LL_OK);
    CHECK(msg_payment_diff(p, &a.payment, diff, sizeof diff) == LL_OK);
    CHECK(diff[0] == '\0');
    CHECK(msg_payment_hash(&a.payment, h2) == LL_OK);
    CHECK(strcmp(h1, h2) == 0);
    msg_approved_clear(&a);
    free(ev);
    ev = msg_encode_completed(p, "t-1", 0, 1);
    CHECK(ev != NULL);
    msg_completed_t c;
    CHECK(msg_completed_decode(ev, strlen(ev), &c, &why) == LL_OK);
    msg_completed_clear(&c);
    free(ev);
}

/* A decoded command (the generic decoder of its stage): its canonical
 * form is a body of the same type that decodes to the same canonical
 * form (the idempotency hash is stable). */
static void check_command(const msg_decoder_t *dec, const uint8_t *data, size_t size)
{
    void *m = calloc(1, dec->size), *m2 = calloc(1, dec->size);
    CHECK(m && m2);
    msg_reject_t why;
    int rc = dec->decode(data, size, m, &why);
    check_reject(rc, &why);
    if (rc == LL_OK) {
        char *c1 = dec->canonical(m);
        CHECK(c1 != NULL);
        CHECK(dec->decode(c1, strlen(c1), m2, &why) == LL_OK);
        char *c2 = dec->canonical(m2);
        CHECK(c2 != NULL && strcmp(c1, c2) == 0);
        char diff[160];
        CHECK(msg_canonical_diff(c1, c2, diff, sizeof diff) == LL_OK && diff[0] == '\0');
        free(c1);
        free(c2);
        dec->clear(m2);
        char *ev = NULL;
        if (dec == &msg_decoder_deposit_received)
            ev = msg_encode_deposit_completed(m, "t-1", 0);
        else if (dec == &msg_decoder_withdrawal_requested)
            ev = msg_encode_withdrawal_failed(m, "insufficient_funds", NULL, 0, 0);
        else if (dec == &msg_decoder_refund_requested)
            ev = msg_encode_refund_failed(m, "refund_exceeds_payment", 0);
        else
            ev = msg_encode_withdrawal_reversed(m, "acc", 1, "EUR", "t-1", 0);
        CHECK(ev != NULL);
        free(ev);
        dec->clear(m);
    }
    free(m);
    free(m2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msg_reject_t why;
    msg_payment_t p;
    int rc = msg_payment_decode(data, size, &p, &why);
    check_reject(rc, &why);
    if (rc == LL_OK)
        check_payment(&p);
    msg_payment_clear(&p);

    msg_approved_t a;
    rc = msg_approved_decode(data, size, &a, &why);
    check_reject(rc, &why);
    if (rc == LL_OK) {
        CHECK(a.score >= 0 && a.score <= MSG_SCORE_MAX && a.nrules <= MSG_RULES_MAX);
        check_payment(&a.payment);
    }
    msg_approved_clear(&a);

    msg_completed_t c;
    rc = msg_completed_decode(data, size, &c, &why);
    check_reject(rc, &why);
    if (rc == LL_OK)
        check_payment(&c.payment);
    msg_completed_clear(&c);

    check_command(&msg_decoder_refund_requested, data, size);
    check_command(&msg_decoder_deposit_received, data, size);
    check_command(&msg_decoder_withdrawal_requested, data, size);
    check_command(&msg_decoder_withdrawal_returned, data, size);

    char id[MSG_ID_MAX + 1];
    rc = msg_peek_payment_id(data, size, id);
    CHECK(rc == LL_OK || rc == LL_ENOTFOUND);
    if (rc == LL_OK) {
        size_t n = strlen(id);
        CHECK(n >= 1 && n <= MSG_ID_MAX);
        CHECK(strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") ==
              n);
    }
    return 0;
}
