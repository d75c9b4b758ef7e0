/*
 * cmd_users.c - `ledgerctl users apply`: the least-privilege RabbitMQ users
 * of schemas/users.json (a producer user that may only publish
 * payment.requested to ledgerline.commands, one user per worker kind that
 * may only publish its own events, a read-only monitoring user), created
 * or updated through the management API with their permissions and topic
 * permissions on amqp.vhost. Idempotent: run it after every upgrade.
 *
 * Passwords live in --secrets-dir, one file per user (<name>.password);
 * a missing one is generated (24 random bytes, hex, mode 0600) like the
 * local stack generates its own, an existing one is kept, so workers and
 * producers can read theirs (amqp.password_file).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"
#include "embed.h"
#include "secret_file.h"
#include "mgmt.h"

#define PASSWORD_BYTES 24

/* The password of `user` in dir: read, or generated and written. LL_OK, or
 * 1 after printing the error. */
static int user_password(const char *dir, const char *user, char *out, size_t n, bool *made)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.password", dir, user);
    *made = false;
    FILE *f = fopen(path, "r");
    if (f) {
        bool ok = fgets(out, (int)n, f) != NULL;
        fclose(f);
        out[strcspn(out, "\r\n")] = '\0';
        if (!ok || !*out)
            return ctl_fail("delete the file to have a new password generated, or write one in it",
                            "%s is empty", path);
        return LL_OK;
    }
    if (errno != ENOENT)
        return ctl_fail("check the directory's permissions", "cannot read %s: %s", path,
                        strerror(errno));
    if (n < 2 * PASSWORD_BYTES + 1)
        abort();
    if (secret_file_new(path, "", PASSWORD_BYTES, NULL, out) != 0)
        return 1;
    *made = true;
    return LL_OK;
}

/* PUTs user u (password pw) with its permissions and topic permissions,
 * replacing topic permissions it had. LL_OK, or 1 after printing. */
static int apply_user(mgmt_t *mg, const char *vhost, const json_t *u, const char *pw)
{
    const char *name = json_string_value(json_object_get(u, "name"));
    char ename[256], path[768];
    if (mgmt_escape(name, ename, sizeof ename) != LL_OK)
        return ctl_fail("fix schemas/users.json and rebuild", "user name '%s' is too long", name);
    json_t *body = json_pack("{s:s, s:O}", "password", pw, "tags", json_object_get(u, "tags"));
    snprintf(path, sizeof path, "/api/users/%s", ename);
    int st = mgmt_put(mg, path, body);
    json_decref(body);
    if (st == LL_OK) {
        body = json_pack("{s:O, s:O, s:O}", "configure", json_object_get(u, "configure"), "write",
                         json_object_get(u, "write"), "read", json_object_get(u, "read"));
        snprintf(path, sizeof path, "/api/permissions/%s/%s", vhost, ename);
        st = mgmt_put(mg, path, body);
        json_decref(body);
    }
    if (st == LL_OK) {
        snprintf(path, sizeof path, "/api/topic-permissions/%s/%s", vhost, ename);
        st = mgmt_delete(mg, path);
        if (st == LL_ENOTFOUND)
            st = LL_OK;
    }
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(u, "topics"), i, t)
    {
        if (st != LL_OK)
            break;
        st = mgmt_put(mg, path, t);
    }
    if (st != LL_OK)
        return ctl_fail(mgmt_fix(mg),
                        "user %s: %s (the management user needs the administrator "
                        "tag)",
                        name, mgmt_errstr(mg));
    return LL_OK;
}

int cmd_users_apply(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("users apply");
    static const struct option opts[] = {{"secrets-dir", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = NULL;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        if (ch == 's')
            dir = optarg;
        else
            return ch == 'h' ? 0 : 2;
    }
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!dir)
        return ctl_usage_error(cmd, "--secrets-dir is required");
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ctl_fail("create it first: mkdir -m 0700 -p DIR",
                        "--secrets-dir %s is not a "
                        "directory",
                        dir);
    const embed_file_t *f = embed_find("users.json");
    json_error_t je;
    json_t *doc = f ? json_loads(f->data, 0, &je) : NULL;
    if (!doc)
        return ctl_fail("fix schemas/users.json and rebuild", "this binary's users.json is "
                                                              "broken");
    char vhost[256];
    if (mgmt_escape(c->cfg.amqp.vhost, vhost, sizeof vhost) != LL_OK) {
        json_decref(doc);
        return ctl_fail("use a shorter amqp.vhost", "amqp.vhost is too long");
    }
    mgmt_t *mg = mgmt_open(&c->cfg);
    json_t *out = c->json ? json_array() : NULL;
    int rc = 0;
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(doc, "users"), i, u)
    {
        const char *name = json_string_value(json_object_get(u, "name"));
        char pw[128];
        bool made;
        if ((rc = user_password(dir, name, pw, sizeof pw, &made)) != 0 ||
            (rc = apply_user(mg, vhost, u, pw)) != 0)
            break;
        char pf[1024];
        snprintf(pf, sizeof pf, "%s/%s.password", dir, name);
        if (out)
            json_array_append_new(out, json_pack("{s:s, s:O, s:s, s:b}", "user", name, "role",
                                                 json_object_get(u, "role"), "password_file", pf,
                                                 "password_generated", made));
        else
            printf("%-22s %s%s\n", name, json_string_value(json_object_get(u, "role")),
                   made ? " (new password)" : "");
    }
    mgmt_free(mg);
    json_decref(doc);
    if (rc != 0) {
        json_decref(out);
        return rc;
    }
    if (out)
        ctl_json_print(json_pack("{s:s, s:s, s:o}", "vhost", c->cfg.amqp.vhost, "secrets_dir", dir,
                                 "users", out));
    else
        printf("passwords in %s/<user>.password (vhost %s)\n", dir, c->cfg.amqp.vhost);
    return 0;
}
