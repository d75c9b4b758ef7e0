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
 * The runtime signs every event it publishes when a stage installed an
 * outgoing keyring with sign_set_outgoing().
 *
 * Public API: SIGN_HEADER, sign_keyring_t, sign_load, sign_free, sign_body,
 * sign_verify, sign_reload, sign_set_outgoing, sign_outgoing.
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

/* Loads `path` into *slot, freeing the keyring it held; an empty path
 * empties the slot. On failure *slot is untouched (a bad file at reload
 * keeps the keys in use) and err says why. */
int sign_reload(const char *path, sign_keyring_t **slot, char *err, size_t errlen) LL_MUSTCHECK;

/* The keyring the runtime signs outgoing events with (NULL: none; not
 * owned). */
void sign_set_outgoing(const sign_keyring_t *k);
const sign_keyring_t *sign_outgoing(void);

#endif
