/*
 * fuzz_keyring.c - libFuzzer harness for the keyring parser (sign_load):
 * the input is a key file ("KEY_ID SECRET" lines). Invariants checked: the
 * result is LL_OK or LL_ECONFIG with a non-empty message; on LL_OK a body
 * signed with the keyring verifies with it, and the same body changed by
 * one byte does not; sign_free() releases everything. The input reaches
 * the parser as a file: an in-memory one (memfd), named by /proc/self/fd.
 * Seeds: tests/fuzz/corpus/fuzz_keyring/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_keyring", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        perror("memfd");
        abort();
    }
    char path[64], err[512] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sign_keyring_t *k = NULL;
    int rc = sign_load(path, &k, err, sizeof err);
    if (rc == LL_OK) {
        static const char body[] = "{\"payment_id\":\"p-1\",\"amount\":100}";
        char sig[SIGN_MAX], why[256];
        sign_body(k, body, sizeof body - 1, sig);
        if (sign_verify(k, sig, body, sizeof body - 1, why, sizeof why) != LL_OK)
            abort(); /* its own signature must verify */
        char changed[sizeof body];
        memcpy(changed, body, sizeof body);
        changed[3] ^= 1;
        if (sign_verify(k, sig, changed, sizeof body - 1, why, sizeof why) == LL_OK)
            abort(); /* a changed body must not */
        sign_free(k);
    } else if (rc != LL_ECONFIG || !err[0]) {
        abort();
    }
    close(fd);
    return 0;
}
