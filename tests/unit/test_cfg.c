/*
 * test_cfg.c - the configuration engine on a small private table covering
 * every type: defaults, YAML, environment overrides, _FILE secrets, origins,
 * every error message (which must name the source, the line and the key),
 * cfg_print's masking and cfg_print_reference.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "ll_test.h"

typedef struct {
    char *name;
    long long port;
    bool enabled;
    int mode;
    char *secret;
    char *token;
    long long retries;
} tcfg_t;

static const char *const modes[] = {"fast", "slow", "off", NULL};

#define O(f) offsetof(tcfg_t, f)
static const cfg_setting_t table[] = {
    {"srv", "name", CFG_STR, O(name), "alpha", 0, 0, NULL, 0, "server name"},
    {"srv", "port", CFG_INT, O(port), "8080", 1, 65535, NULL, 0, "listen port"},
    {"srv", "enabled", CFG_BOOL, O(enabled), "true", 0, 0, NULL, 0, "on or off"},
    {"srv", "mode", CFG_ENUM, O(mode), "slow", 0, 0, modes, 0, "speed"},
    {"auth", "secret", CFG_STR, O(secret), "", 0, 0, NULL, CFG_SECRET, "a secret"},
    {"auth", "token", CFG_STR, O(token), "tok-default", 0, 0, NULL, CFG_SECRET, "another"},
    {"auth", "retries", CFG_INT, O(retries), "3", 0, 10, NULL, 0, "retry | count"},
};
#define N (sizeof table / sizeof table[0])

/* Writes `text` to a fresh temporary file; caller unlinks and frees. */
static char *tmp_file(const char *text)
{
    char *path = strdup("/tmp/test_cfg_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void drop_file(char *path)
{
    if (path)
        unlink(path);
    free(path);
}

/* Everything `print` wrote; caller frees. */
static char *capture_print(const tcfg_t *c, const cfg_origin_t *origins)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cfg_print(table, N, c, origins, f);
    fclose(f);
    return buf;
}

START_TEST(cfg_defaults_without_file_or_env)
{
    tcfg_t c;
    cfg_origin_t o[N];
    cfg_error_t err;
    char *env[] = {NULL};
    ck_assert_int_eq(cfg_load(table, N, &c, o, NULL, env, &err), LL_OK);
    ck_assert_str_eq(c.name, "alpha");
    ck_assert_int_eq(c.port, 8080);
    ck_assert(c.enabled);
    ck_assert_int_eq(c.mode, 1);
    ck_assert_str_eq(c.secret, "");
    ck_assert_str_eq(c.token, "tok-default");
    ck_assert_int_eq(c.retries, 3);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(o[i].from, CFG_FROM_DEFAULT);
    cfg_free(table, N, &c);
    ck_assert_ptr_null(c.name);
    cfg_free(table, N, &c); /* twice is safe */
    /* NULL envp and NULL origins are fine too */
    ck_assert_int_eq(cfg_load(table, N, &c, NULL, NULL, NULL, NULL), LL_OK);
    ck_assert_str_eq(c.name, "alpha");
    cfg_free(table, N, &c);
}
END_TEST

/* Good inputs: {label, yaml (NULL: no file), env, expected values} */
static const struct {
    const char *label, *yaml;
    char *env[4];
    const char *name;
    long long port;
    bool enabled;
    int mode;
    long long retries;
} goods[] = {
    {"empty file", "", {NULL}, "alpha", 8080, true, 1, 3},
    {"comments only", "# nothing\n", {NULL}, "alpha", 8080, true, 1, 3},
    {"empty section", "srv:\nauth:\n", {NULL}, "alpha", 8080, true, 1, 3},
    {"file values",
     "srv:\n  name: beta\n  port: 9090\n  enabled: no\n  mode: fast\n",
     {NULL},
     "beta",
     9090,
     false,
     0,
     3},
    {"quoted and case",
     "srv:\n  name: \"x y\"\n  port: '1'\n  enabled: ON\n  mode: OFF\n",
     {NULL},
     "x y",
     1,
     true,
     2,
     3},
    {"range ends",
     "srv:\n  port: 65535\nauth:\n  retries: 0\n",
     {NULL},
     "alpha",
     65535,
     true,
     1,
     0},
    {"empty string", "srv:\n  name: \"\"\n", {NULL}, "", 8080, true, 1, 3},
    {"env over file",
     "srv:\n  port: 9090\n  name: file\n",
     {"LEDGERLINE_SRV_PORT=7070", "LEDGERLINE_SRV_ENABLED=0", NULL},
     "file",
     7070,
     false,
     1,
     3},
    {"env only",
     NULL,
     {"LEDGERLINE_SRV_MODE=off", "LEDGERLINE_AUTH_RETRIES=10", NULL},
     "alpha",
     8080,
     true,
     2,
     10},
    {"unknown sections ignored",
     NULL,
     {"LEDGERLINE_STACK_DIR=/x", "LEDGERLINE_CONFIG=/y.yaml", "PATH=/bin", NULL},
     "alpha",
     8080,
     true,
     1,
     3},
    {"env empty string", NULL, {"LEDGERLINE_SRV_NAME=", NULL}, "", 8080, true, 1, 3},
};

START_TEST(cfg_good_inputs)
{
    char *path = goods[_i].yaml ? tmp_file(goods[_i].yaml) : NULL;
    tcfg_t c;
    cfg_error_t err = {0};
    int rc = cfg_load(table, N, &c, NULL, path, goods[_i].env, &err);
    ck_assert_msg(rc == LL_OK, "%s: %s", goods[_i].label, err.msg);
    ck_assert_str_eq(c.name, goods[_i].name);
    ck_assert_int_eq(c.port, goods[_i].port);
    ck_assert_int_eq(c.enabled, goods[_i].enabled);
    ck_assert_int_eq(c.mode, goods[_i].mode);
    ck_assert_int_eq(c.retries, goods[_i].retries);
    cfg_free(table, N, &c);
    drop_file(path);
}
END_TEST

/* {value, want} for every spelling of a boolean */
static const struct {
    const char *in;
    bool want;
} bools[] = {{"true", true}, {"false", false}, {"yes", true}, {"no", false},  {"on", true},
             {"off", false}, {"1", true},      {"0", false},  {"TRUE", true}, {"No", false}};

START_TEST(cfg_bool_spellings)
{
    char var[64];
    snprintf(var, sizeof var, "LEDGERLINE_SRV_ENABLED=%s", bools[_i].in);
    char *env[] = {var, NULL};
    tcfg_t c;
    ck_assert_int_eq(cfg_load(table, N, &c, NULL, NULL, env, NULL), LL_OK);
    ck_assert_int_eq(c.enabled, bools[_i].want);
    cfg_free(table, N, &c);
}
END_TEST

/* Errors: {label, yaml (NULL: none; "-" a missing file), env, line (0: none),
 * key ("" none), source ("" the file; else this), substrings} */
static const struct {
    const char *label, *yaml;
    char *env[4];
    int line;
    const char *key, *source;
    const char *has[3];
} errors[] = {
    {"null value (~)",
     "srv:\n  name: ~\n",
     {NULL},
     2,
     "srv.name",
     "",
     {"has no value", "remove the line to keep the default"}},
    {"null value (empty)",
     "srv:\n  port: 1\n  name:\n",
     {NULL},
     3,
     "srv.name",
     "",
     {"has no value", "quote it for an empty string"}},
    {"null value (NULL)", "srv:\n  name: NULL\n", {NULL}, 2, "srv.name", "", {"has no value"}},
    {"unknown key near",
     "srv:\n  prot: 1\n",
     {NULL},
     2,
     "srv.prot",
     "",
     {"unknown key", "did you mean \"port\""}},
    {"unknown key far",
     "srv:\n  port: 1\n  zzzzzzzzz: 1\n",
     {NULL},
     3,
     "srv.zzzzzzzzz",
     "",
     {"unknown key", "name, port, enabled, mode"}},
    {"unknown section",
     "srvv:\n  port: 1\n",
     {NULL},
     1,
     "srvv",
     "",
     {"unknown section", "did you mean \"srv\""}},
    {"unknown section far",
     "\n\ndatabase:\n  port: 1\n",
     {NULL},
     3,
     "database",
     "",
     {"unknown section", "srv, auth"}},
    {"mapping for scalar",
     "srv:\n  port:\n    a: 1\n",
     {NULL},
     3,
     "srv.port",
     "",
     {"expected a single value", "found a mapping"}},
    {"list for scalar", "srv:\n  port: [1, 2]\n", {NULL}, 2, "srv.port", "", {"found a list"}},
    {"not an integer",
     "srv:\n  port: abc\n",
     {NULL},
     2,
     "srv.port",
     "",
     {"\"abc\" is not an integer", "1..65535"}},
    {"float", "srv:\n  port: 80.5\n", {NULL}, 2, "srv.port", "", {"not an integer", "1..65535"}},
    {"empty int", "srv:\n  port:\n", {NULL}, 2, "srv.port", "", {"has no value"}},
    {"quoted empty int", "srv:\n  port: \"\"\n", {NULL}, 2, "srv.port", "", {"not an integer"}},
    {"too big",
     "srv:\n\n  port: 70000\n",
     {NULL},
     3,
     "srv.port",
     "",
     {"70000 is out of range", "1..65535"}},
    {"too small",
     "auth:\n  retries: -1\n",
     {NULL},
     2,
     "auth.retries",
     "",
     {"out of range", "0..10"}},
    {"huge", "srv:\n  port: 99999999999999999999\n", {NULL}, 2, "srv.port", "", {"out of range"}},
    {"bad bool",
     "srv:\n  enabled: maybe\n",
     {NULL},
     2,
     "srv.enabled",
     "",
     {"\"maybe\" is not a boolean", "true/false, yes/no, on/off, 1/0"}},
    {"bad enum",
     "srv:\n  mode: turbo\n",
     {NULL},
     2,
     "srv.mode",
     "",
     {"\"turbo\"", "fast, slow, off"}},
    {"duplicate key",
     "srv:\n  port: 1\n  port: 2\n",
     {NULL},
     3,
     "srv.port",
     "",
     {"duplicate key", "line 2"}},
    {"duplicate section",
     "srv:\n  port: 1\nsrv:\n  mode: fast\n",
     {NULL},
     3,
     "srv",
     "",
     {"duplicate section", "line 1"}},
    {"syntax", "srv:\n  name: \"unterminated\n", {NULL}, -1, "", "", {"YAML syntax error"}},
    {"syntax indent", "srv:\n  port: 1\n bad: 2\n", {NULL}, -1, "", "", {"YAML syntax error"}},
    {"top scalar", "hello\n", {NULL}, 1, "", "", {"mapping of sections", "found a scalar"}},
    {"top list", "- a\n- b\n", {NULL}, 1, "", "", {"mapping of sections", "found a list"}},
    {"section scalar", "srv: 5\n", {NULL}, 1, "srv", "", {"must be a mapping", "found a scalar"}},
    {"two documents",
     "srv:\n  port: 1\n---\nsrv:\n  port: 2\n",
     {NULL},
     3,
     "",
     "",
     {"more than one YAML document"}},
    {"missing file",
     "-",
     {NULL},
     0,
     "",
     "",
     {"cannot read config file", "No such file or directory"}},
    {"env not int",
     NULL,
     {"LEDGERLINE_SRV_PORT=abc", NULL},
     0,
     "srv.port",
     "environment variable LEDGERLINE_SRV_PORT",
     {"\"abc\" is not an integer", "1..65535"}},
    {"env enum",
     NULL,
     {"LEDGERLINE_SRV_MODE=turbo", NULL},
     0,
     "srv.mode",
     "environment variable LEDGERLINE_SRV_MODE",
     {"fast, slow, off"}},
    {"env typo",
     NULL,
     {"LEDGERLINE_SRV_PROT=1", NULL},
     0,
     "",
     "environment variable LEDGERLINE_SRV_PROT",
     {"matches no setting", "did you mean LEDGERLINE_SRV_PORT"}},
    {"env unknown key",
     NULL,
     {"LEDGERLINE_AUTH_WHATEVER_ELSE=1", NULL},
     0,
     "",
     "environment variable LEDGERLINE_AUTH_WHATEVER_ELSE",
     {"matches no setting"}},
    {"env both",
     NULL,
     {"LEDGERLINE_AUTH_SECRET=a", "LEDGERLINE_AUTH_SECRET_FILE=/nonexistent", NULL},
     0,
     "auth.secret",
     "environment variable LEDGERLINE_AUTH_SECRET",
     {"both LEDGERLINE_AUTH_SECRET and LEDGERLINE_AUTH_SECRET_FILE", "unset one"}},
    {"env file unreadable",
     NULL,
     {"LEDGERLINE_AUTH_TOKEN_FILE=/nonexistent/tok", NULL},
     0,
     "",
     "environment variable LEDGERLINE_AUTH_TOKEN_FILE",
     {"/nonexistent/tok", "No such file or directory"}},
    {"env file not secret",
     NULL,
     {"LEDGERLINE_SRV_PORT_FILE=/etc/hostname", NULL},
     0,
     "srv.port",
     "environment variable LEDGERLINE_SRV_PORT_FILE",
     {"only secrets", "LEDGERLINE_SRV_PORT"}},
};

START_TEST(cfg_errors)
{
    char *path = NULL;
    const char *fname = NULL;
    if (errors[_i].yaml && strcmp(errors[_i].yaml, "-") == 0)
        fname = "/nonexistent/dir/ledgerline.yaml";
    else if (errors[_i].yaml)
        fname = path = tmp_file(errors[_i].yaml);
    tcfg_t c;
    memset(&c, 0xa5, sizeof c);
    cfg_error_t err;
    int rc = cfg_load(table, N, &c, NULL, fname, errors[_i].env, &err);
    ck_assert_msg(rc == LL_ECONFIG, "%s: loaded", errors[_i].label);
    /* nothing left allocated on failure */
    ck_assert_ptr_null(c.name);
    ck_assert_ptr_null(c.secret);

    const char *src = errors[_i].source[0] ? errors[_i].source : fname;
    ck_assert_str_eq(err.source, src);
    ck_assert_msg(strstr(err.msg, src) == err.msg, "%s: msg does not start with %s: %s",
                  errors[_i].label, src, err.msg);
    if (errors[_i].line > 0) {
        ck_assert_int_eq(err.line, errors[_i].line);
        char at[300];
        snprintf(at, sizeof at, "%s:%d: ", src, errors[_i].line);
        ck_assert_msg(strstr(err.msg, at) != NULL, "%s: no %s in %s", errors[_i].label, at,
                      err.msg);
    } else if (errors[_i].line < 0) {
        ck_assert_int_gt(err.line, 0); /* syntax errors: libyaml's line */
    }
    ck_assert_str_eq(err.key, errors[_i].key);
    if (errors[_i].key[0]) {
        char k[120];
        snprintf(k, sizeof k, ": %s: ", errors[_i].key);
        ck_assert_msg(strstr(err.msg, k) != NULL, "%s: key missing: %s", errors[_i].label, err.msg);
    }
    for (size_t h = 0; h < 3 && errors[_i].has[h]; h++)
        ck_assert_msg(strstr(err.msg, errors[_i].has[h]) != NULL, "%s: no '%s' in: %s",
                      errors[_i].label, errors[_i].has[h], err.msg);
    cfg_free(table, N, &c);
    drop_file(path);
}
END_TEST

/* {file content, the secret it yields}: one trailing newline is stripped */
static const struct {
    const char *content, *want;
} secrets[] = {
    {"s3cret\n", "s3cret"},
    {"s3cret", "s3cret"},
    {"a\n\n", "a\n"},
    {"crlf\r\n", "crlf"},
    {"", ""},
    {"with space \n", "with space "},
};

START_TEST(cfg_secret_from_file)
{
    char *path = tmp_file(secrets[_i].content);
    char var[300];
    snprintf(var, sizeof var, "LEDGERLINE_AUTH_SECRET_FILE=%s", path);
    char *env[] = {var, NULL};
    tcfg_t c;
    cfg_origin_t o[N];
    cfg_error_t err;
    ck_assert_int_eq(cfg_load(table, N, &c, o, NULL, env, &err), LL_OK);
    ck_assert_str_eq(c.secret, secrets[_i].want);
    ck_assert_int_eq(o[4].from, CFG_FROM_ENV_FILE);
    ck_assert_str_eq(o[4].name, "LEDGERLINE_AUTH_SECRET_FILE");
    cfg_free(table, N, &c);
    drop_file(path);
}
END_TEST

START_TEST(cfg_print_masks_and_shows_origins)
{
    char *path = tmp_file("srv:\n  name: \"quote\\\" and \\\\ back\"\n  port: 9090\nauth:\n"
                          "  token: file-token-value\n");
    char *env[] = {"LEDGERLINE_AUTH_SECRET=topsecret-env-value", "LEDGERLINE_SRV_MODE=fast", NULL};
    tcfg_t c;
    cfg_origin_t o[N];
    cfg_error_t err;
    ck_assert_int_eq(cfg_load(table, N, &c, o, path, env, &err), LL_OK);
    ck_assert_str_eq(c.secret, "topsecret-env-value");
    ck_assert_str_eq(c.token, "file-token-value");
    char *out = capture_print(&c, o);

    ck_assert_msg(strstr(out, "topsecret") == NULL, "secret leaked: %s", out);
    ck_assert_msg(strstr(out, "file-token") == NULL, "secret leaked: %s", out);
    ck_assert_msg(strstr(out, "secret: \"********\"") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "token: \"********\"") != NULL, "%s", out);
    char want[400];
    snprintf(want, sizeof want, "port: 9090  # file %s:3", path);
    ck_assert_msg(strstr(out, want) != NULL, "no '%s' in %s", want, out);
    ck_assert_msg(strstr(out, "mode: \"fast\"  # env LEDGERLINE_SRV_MODE") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "enabled: true  # default") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "srv:\n") == out, "%s", out);
    ck_assert_msg(strstr(out, "\nauth:\n") != NULL, "%s", out);

    /* the output is YAML that loads back to the same (non-secret) values */
    char *again = tmp_file(out);
    tcfg_t d;
    ck_assert_int_eq(cfg_load(table, N, &d, NULL, again, NULL, &err), LL_OK);
    ck_assert_str_eq(d.name, c.name);
    ck_assert_int_eq(d.port, c.port);
    ck_assert_int_eq(d.mode, c.mode);
    ck_assert_int_eq(d.enabled, c.enabled);
    cfg_free(table, N, &d);
    drop_file(again);
    free(out);

    /* an empty secret prints as "" (nothing to hide, and says it is unset) */
    free(c.secret);
    c.secret = strdup("");
    out = capture_print(&c, NULL);
    ck_assert_msg(strstr(out, "secret: \"\"\n") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "#") == NULL, "origins printed without origins: %s", out);
    free(out);
    cfg_free(table, N, &c);
    drop_file(path);
}
END_TEST

START_TEST(cfg_secret_never_in_errors)
{
    /* a secret that fails validation must not be echoed: make one */
    static const cfg_setting_t st[] = {
        {"s", "pin", CFG_INT, 0, "1", 0, 9, NULL, CFG_SECRET, "secret pin"},
    };
    long long pin;
    char *env[] = {"LEDGERLINE_S_PIN=hunter2", NULL};
    cfg_error_t err;
    ck_assert_int_eq(cfg_load(st, 1, &pin, NULL, NULL, env, &err), LL_ECONFIG);
    ck_assert_msg(strstr(err.msg, "hunter2") == NULL, "secret echoed: %s", err.msg);
    ck_assert_msg(strstr(err.msg, "s.pin") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(cfg_reference_table)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cfg_print_reference(table, N, f);
    fclose(f);
    size_t lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    ck_assert_uint_eq(lines, N + 2);
    ck_assert_msg(
        strncmp(buf, "| key | env | type | default | range/choices | description |\n", 60) == 0,
        "%s", buf);
    const char *has[] = {"`srv.port`",
                         "`LEDGERLINE_SRV_PORT`",
                         "1..65535",
                         "fast, slow, off",
                         "`LEDGERLINE_AUTH_SECRET` or `LEDGERLINE_AUTH_SECRET_FILE`",
                         "string (secret)",
                         "retry \\| count"};
    for (size_t i = 0; i < sizeof has / sizeof has[0]; i++)
        ck_assert_msg(strstr(buf, has[i]) != NULL, "no %s in %s", has[i], buf);
    free(buf);
}
END_TEST

START_TEST(cfg_env_names)
{
    char buf[128];
    ck_assert_str_eq(cfg_env_name(&table[1], buf, sizeof buf), "LEDGERLINE_SRV_PORT");
    ck_assert_str_eq(cfg_env_name(&table[6], buf, sizeof buf), "LEDGERLINE_AUTH_RETRIES");
    ck_assert_str_eq(cfg_type_name(CFG_ENUM), "enum");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cfg");
    TCase *tc = tcase_create("cfg");
    tcase_add_test(tc, cfg_defaults_without_file_or_env);
    tcase_add_loop_test(tc, cfg_good_inputs, 0, (int)(sizeof goods / sizeof goods[0]));
    tcase_add_loop_test(tc, cfg_bool_spellings, 0, (int)(sizeof bools / sizeof bools[0]));
    tcase_add_loop_test(tc, cfg_errors, 0, (int)(sizeof errors / sizeof errors[0]));
    tcase_add_loop_test(tc, cfg_secret_from_file, 0, (int)(sizeof secrets / sizeof secrets[0]));
    tcase_add_test(tc, cfg_print_masks_and_shows_origins);
    tcase_add_test(tc, cfg_secret_never_in_errors);
    tcase_add_test(tc, cfg_reference_table);
    tcase_add_test(tc, cfg_env_names);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
