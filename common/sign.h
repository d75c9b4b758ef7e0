/*
 * sign.h - HMAC-SHA256 signatures over message bodies, with key rotation.
 *
 * A keyring is read from a file: one key per line, "KEY_ID SECRET" (id:
 * 1-64 chars of [A-Za-z0-9_.:-], secret: at least 32 bytes; blank lines and
 * # comments ignored). The FIRST key signs; ANY key verifies, so a rotation
 * is: add the new key first and keep the old one second, roll out, then
 * drop the old one. The signature travels in the AMQP header
 * SIGN_HEADER as "<key id>:<64 hex chars>".
 *
 * Who signs what: the risk stage signs what it publishes (its approvals)
 * when signing.approval_keys_file is set, and the payment stage then
 * rejects (bad_signature) any approval that is unsigned or does not
 * verify, so a client allowed to publish on ledgerline.events cannot skip
 * risk. Producers may sign payment.requested the same way
 * (signing.request_keys_file on the risk stage; `ledgerctl publish
 * --key-file`).
 *
 * Which keyring a stage verifies with and which it signs with is part of
 * its table (stage.h); the runtime loads them, and again on SIGHUP.
 *
 * Public API: SIGN_HEADER, SIGN_MAX, sign_keyring_t, sign_load, sign_free,
 * sign_body, sign_verify.
 */
#ifndef LL_SIGN_H
#define LL_SIGN_H

#include <stddef.h>

#include "err.h"

#define SIGN_HEADER "x-ledgerline-signature"
#define SIGN_MAX    (64 + 1 + 64 + 1) /* "<id>:<hex>" + NUL */

typedef struct sign_keyring sign_keyring_t;

/* Reads the keyring at `path`. LL_OK (caller frees with sign_free), or
 * LL_ECONFIG with the file, line and problem in err. */
int sign_load(const char *path, sign_keyring_t **out, char *err, size_t errlen) LL_MUSTCHECK;
void sign_free(sign_keyring_t *k);

/* The header value for `body` with the first key, into out[SIGN_MAX]. */
void sign_body(const sign_keyring_t *k, const void *body, size_t len, char out[SIGN_MAX]);

/* LL_OK if `header` (may be NULL) is a valid signature of `body` by a key
 * of the ring; else LL_EREJECT with the reason in why (e.g. "no
 * x-ledgerline-signature header", "unknown key id 'k9'", "does not match"). */
int sign_verify(const sign_keyring_t *k, const char *header, const void *body, size_t len,
                char *why, size_t whylen) LL_MUSTCHECK;

#endif
