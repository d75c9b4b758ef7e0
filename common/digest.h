/*
 * digest.h - SHA-256 and HMAC-SHA-256 as lower-case hex: the one place the
 * project hashes (payload hashes, event ids, migration and function-set
 * checksums, message signatures) and turns bytes into hex.
 *
 * An OpenSSL failure here can only be out of memory (SHA-256 is always
 * there), which a daemon cannot handle usefully: it aborts (xmalloc.h).
 *
 * Public API: DIGEST_HEX_LEN, digest_hex, digest_sha256, digest_sha256_hex,
 * digest_hmac_sha256_hex, digest_sha256_file.
 */
#ifndef LL_DIGEST_H
#define LL_DIGEST_H

#include <stddef.h>

#define DIGEST_HEX_LEN 64 /* hex chars of a SHA-256 */

/* The n bytes of md as 2n lower-case hex chars and a NUL into out. */
void digest_hex(const unsigned char *md, size_t n, char *out);

/* SHA-256 of the concatenation of n pieces (parts[i], lens[i] bytes). */
void digest_sha256(const void *const *parts, const size_t *lens, size_t n, unsigned char md[32]);

/* SHA-256 of len bytes as hex. */
void digest_sha256_hex(const void *data, size_t len, char out[DIGEST_HEX_LEN + 1]);

/* HMAC-SHA-256 of len bytes under key (keylen bytes) as hex. */
void digest_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char out[DIGEST_HEX_LEN + 1]);

/* SHA-256 of a whole file as hex, read in pieces; *bytes (may be NULL)
 * gets its size. 0, or -1 (errno set) when it cannot be read. */
int digest_sha256_file(const char *path, char out[DIGEST_HEX_LEN + 1], long long *bytes);

#endif
