/*
 * cmd_keys.c - `ledgerctl keys generate`: a new signing key file for
 * signing.approval_keys_file (or request_keys_file), in the format of
 * common/sign.h: one line "KEY_ID SECRET", the secret 32 random bytes in
 * hex. The file is created with mode 0600 and never overwritten: a key in
 * use is rotated by adding a new first line by hand (README, "Signed
 * approvals"). --if-missing makes a second run a no-op, for install
 * scripts (ops/stack, compose's migrate service).
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "secret_file.h"
#include "sign.h"

#define SECRET_BYTES 32

int cmd_keys_generate(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("keys generate");
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"if-missing", no_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL, *id = NULL;
    bool if_missing = false;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        if (ch == 'o')
            out = optarg;
        else if (ch == 'i')
            id = optarg;
        else if (ch == 'm')
            if_missing = true;
        else
            return ch == 'h' ? 0 : 2;
    }
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!out)
        return ctl_usage_error(cmd, "--out FILE is required");
    char idbuf[32];
    if (!id) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(idbuf, sizeof idbuf, "k%Y%m%d", &tm);
        id = idbuf;
    }
    if (!ctl_valid_id(id))
        return ctl_usage_error(cmd, "--id '%s' must be 1-64 chars of [A-Za-z0-9_.:-]", id);
    if (if_missing && access(out, F_OK) == 0) {
        char err[256];
        sign_keyring_t *k;
        if (sign_load(out, &k, err, sizeof err) != LL_OK)
            return ctl_fail("fix or remove it", "%s exists but is not a key file: %s", out, err);
        sign_free(k);
        if (c->json)
            ctl_json_print(json_pack("{s:s, s:b}", "file", out, "generated", 0));
        else
            printf("%s exists: kept\n", out);
        return 0;
    }
    char prefix[80];
    snprintf(prefix, sizeof prefix, "%s ", id);
    if (secret_file_new(out, prefix, SECRET_BYTES,
                        "keep it (a key in use is rotated by adding a new first line: README, "
                        "\"Signed approvals\"), or pass --if-missing",
                        NULL) != 0)
        return 1;
    if (c->json)
        ctl_json_print(json_pack("{s:s, s:s, s:b}", "file", out, "key_id", id, "generated", 1));
    else
        printf("wrote key %s to %s (mode 0600)\n", id, out);
    return 0;
}
