/*
 * secret_file.h - a new secret file: random bytes in hex, created once with
 * mode 0600 and never overwritten (O_EXCL), removed again if it could not
 * be written whole. Used by `ledgerctl users apply` (generated passwords)
 * and `ledgerctl keys generate` (signing keys).
 *
 * Public API: secret_file_new.
 */
#ifndef LL_SECRET_FILE_H
#define LL_SECRET_FILE_H

#include <stddef.h>

/* Creates `path` holding "<prefix><hex of nbytes random bytes>\n". The hex
 * goes to hex[2 * nbytes + 1] when not NULL. 0, or 1 after printing the
 * problem; `exists_fix` is the fix printed when the file exists (NULL: a
 * generic one). */
int secret_file_new(const char *path, const char *prefix, size_t nbytes, const char *exists_fix,
                    char *hex);

#endif
