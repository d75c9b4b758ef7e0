/*
 * digest.c - SHA-256 and HMAC-SHA-256 through OpenSSL's EVP: see digest.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "digest.h"

static void digest_fail(const char *what)
{
    fprintf(stderr, "digest: %s failed (out of memory)\n", what);
    abort();
}

void digest_hex(const unsigned char *md, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}

void digest_sha256(const void *const *parts, const size_t *lens, size_t n, unsigned char md[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int mdlen = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(ctx, parts[i], lens[i]) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        digest_fail("SHA-256");
}

void digest_sha256_hex(const void *data, size_t len, char out[DIGEST_HEX_LEN + 1])
{
    unsigned char md[32];
    const void *parts[1] = {data ? data : ""};
    size_t lens[1] = {data ? len : 0};
    digest_sha256(parts, lens, 1, md);
    digest_hex(md, sizeof md, out);
}

void digest_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                            char out[DIGEST_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, data ? data : "", data ? len : 0, md, &mdlen) ||
        mdlen != 32)
        digest_fail("HMAC-SHA-256");
    digest_hex(md, 32, out);
}

int digest_sha256_file(const char *path, char out[DIGEST_HEX_LEN + 1], long long *bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        digest_fail("SHA-256");
    unsigned char buf[65536], md[32];
    unsigned int mdlen = 0;
    long long total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (EVP_DigestUpdate(ctx, buf, n) != 1)
            digest_fail("SHA-256");
        total += (long long)n;
    }
    int rc = ferror(f) ? -1 : 0;
    fclose(f);
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
        digest_fail("SHA-256");
    EVP_MD_CTX_free(ctx);
    if (rc == 0) {
        digest_hex(md, sizeof md, out);
        if (bytes)
            *bytes = total;
    }
    return rc;
}
