/*
 * secret_file.c - new secret files (secret_file.h).
 */
#include "secret_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "digest.h"

#define SECRET_MAX_BYTES 64

int secret_file_new(const char *path, const char *prefix, size_t nbytes, const char *exists_fix,
                    char *hex)
{
    unsigned char raw[SECRET_MAX_BYTES];
    char text[2 * SECRET_MAX_BYTES + 1];
    if (nbytes > sizeof raw)
        abort();
    if (RAND_bytes(raw, (int)nbytes) != 1)
        return ctl_fail(NULL, "no random bytes from OpenSSL for %s", path);
    digest_hex(raw, nbytes, text);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return ctl_fail(errno == EEXIST && exists_fix ? exists_fix
                        : errno == ENOENT             ? "create its directory first (mode 0700)"
                                                      : "check the directory is writable",
                        "cannot create %s: %s", path, strerror(errno));
    size_t plen = strlen(prefix), tlen = strlen(text);
    bool ok = write(fd, prefix, plen) == (ssize_t)plen && write(fd, text, tlen) == (ssize_t)tlen &&
              write(fd, "\n", 1) == 1;
    if (close(fd) != 0 || !ok) {
        unlink(path);
        return ctl_fail("check the free space", "cannot write %s", path);
    }
    if (hex)
        memcpy(hex, text, tlen + 1);
    return 0;
}
