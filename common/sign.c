/*
 * sign.c - HMAC-SHA256 keyring: see sign.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>

#include "digest.h"
#include "msg.h"
#include "sign.h"
#include "xmalloc.h"

#define SIGN_KEYS_MAX 8

typedef struct sign_key {
    char id[MSG_ID_MAX + 1];
    unsigned char *secret;
    size_t len;
} sign_key_t;

struct sign_keyring {
    sign_key_t keys[SIGN_KEYS_MAX];
    size_t n;
};

void sign_free(sign_keyring_t *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++) {
        OPENSSL_cleanse(k->keys[i].secret, k->keys[i].len);
        free(k->keys[i].secret);
    }
    free(k);
}

int sign_load(const char *path, sign_keyring_t **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cannot read key file %s: %s", path,
                 f ? "not a regular file" : strerror(errno));
        if (f)
            fclose(f);
        return LL_ECONFIG;
    }
    sign_keyring_t *k = ll_xcalloc(1, sizeof *k);
    char line[1024];
    int n = 0, rc = LL_OK;
    while (fgets(line, sizeof line, f)) {
        n++;
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        char *sp = p + strcspn(p, " \t");
        char *secret = sp;
        while (*secret == ' ' || *secret == '\t')
            secret++;
        *sp = '\0';
        size_t slen = strlen(secret);
        while (slen > 0 && (secret[slen - 1] == ' ' || secret[slen - 1] == '\t'))
            secret[--slen] = '\0';
        if (!msg_id_valid(p, strlen(p)) || slen < 32) {
            snprintf(err, errlen,
                     "%s line %d: want \"KEY_ID SECRET\" with a key id of [A-Za-z0-9_.:-] and a "
                     "secret of at least 32 bytes",
                     path, n);
            rc = LL_ECONFIG;
            break;
        }
        if (k->n == SIGN_KEYS_MAX) {
            snprintf(err, errlen, "%s: more than %d keys", path, SIGN_KEYS_MAX);
            rc = LL_ECONFIG;
            break;
        }
        sign_key_t *key = &k->keys[k->n++];
        snprintf(key->id, sizeof key->id, "%s", p);
        key->secret = ll_xmalloc(slen);
        memcpy(key->secret, secret, slen);
        key->len = slen;
        OPENSSL_cleanse(line, sizeof line);
    }
    if (rc == LL_OK && ferror(f)) {
        snprintf(err, errlen, "cannot read key file %s: %s", path, strerror(errno));
        rc = LL_ECONFIG;
    }
    fclose(f);
    if (rc == LL_OK && k->n == 0) {
        snprintf(err, errlen, "%s holds no key", path);
        rc = LL_ECONFIG;
    }
    if (rc != LL_OK) {
        sign_free(k);
        return rc;
    }
    *out = k;
    return LL_OK;
}

static void hmac_hex(const sign_key_t *key, const void *body, size_t len, char hex[65])
{
    digest_hmac_sha256_hex(key->secret, key->len, body, len, hex);
}

void sign_body(const sign_keyring_t *k, const void *body, size_t len, char out[SIGN_MAX])
{
    char hex[65];
    hmac_hex(&k->keys[0], body, len, hex);
    snprintf(out, SIGN_MAX, "%s:%s", k->keys[0].id, hex);
}

int sign_verify(const sign_keyring_t *k, const char *header, const void *body, size_t len,
                char *why, size_t whylen)
{
    if (!header || !*header) {
        snprintf(why, whylen, "no %s header: the message is not signed", SIGN_HEADER);
        return LL_EREJECT;
    }
    const char *colon = strrchr(header, ':');
    if (!colon || strlen(colon + 1) != 64) {
        snprintf(why, whylen, "%s is not \"<key id>:<64 hex chars>\"", SIGN_HEADER);
        return LL_EREJECT;
    }
    size_t idlen = (size_t)(colon - header);
    for (size_t i = 0; i < k->n; i++) {
        const sign_key_t *key = &k->keys[i];
        if (strlen(key->id) != idlen || memcmp(key->id, header, idlen) != 0)
            continue;
        char hex[65];
        hmac_hex(key, body, len, hex);
        if (CRYPTO_memcmp(hex, colon + 1, 64) == 0)
            return LL_OK;
        snprintf(why, whylen, "%s does not match the body (key '%s')", SIGN_HEADER, key->id);
        return LL_EREJECT;
    }
    snprintf(why, whylen, "%s names unknown key id '%.*s'", SIGN_HEADER,
             (int)(idlen < 64 ? idlen : 64), header);
    return LL_EREJECT;
}
