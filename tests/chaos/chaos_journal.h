/*
 * chaos_journal.h - what the chaos producer published, one JSON line per
 * message, written before the message is published (so the checker knows
 * of everything that may have reached the broker):
 *
 *   {"k":"req","id":ID,"payer":A,"payee":B,"amount":N}   a payment request
 *   {"k":"dup","id":ID}                 the same request again, same bytes
 *   {"k":"chg","id":ID,"amount":N}      the same payment_id, another amount
 *   {"k":"bad","hex":HEX,"id":ID|null}  a malformed request (body in hex;
 *                                       id: the payment_id the contract
 *                                       says is readable from it, if any)
 *   {"k":"forged","hex":HEX,"id":ID}    an unsigned payment.approved
 *                                       published straight to the events
 *
 * Public API: cj_msg_t, cj_t, cj_load, cj_free, cj_append, cj_req_body,
 * cj_find.
 */
#ifndef CHAOS_JOURNAL_H
#define CHAOS_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { CJ_REQ, CJ_DUP, CJ_CHG, CJ_BAD, CJ_FORGED } cj_kind_t;

typedef struct cj_msg {
    cj_kind_t kind;
    char id[80];
    char payer[64], payee[64];
    int64_t amount;
    char *body; /* bad and forged: the exact bytes (NUL-terminated copy) */
    size_t len;
    int has_id; /* bad: a payment_id is readable */
} cj_msg_t;

typedef struct cj {
    cj_msg_t *m;
    size_t n, cap;
} cj_t;

/* Reads a journal; 0, or -1 with the line in err. A missing file is an
 * empty journal. */
int cj_load(const char *path, cj_t *j, char *err, size_t errlen);
void cj_free(cj_t *j);

/* Writes one line for m and flushes. */
void cj_append(FILE *f, const cj_msg_t *m);

/* The payment.requested body of a request with `amount`, into buf. */
size_t cj_req_body(char *buf, size_t n, const cj_msg_t *req, int64_t amount);

/* The first CJ_REQ of `id`, or NULL (linear: the checker indexes itself). */
const cj_msg_t *cj_find(const cj_t *j, const char *id);

#endif
