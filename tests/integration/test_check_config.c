/*
 * test_check_config.c - `<kind>-worker --check-config` fails exactly when
 * a start would, before any server is contacted: a missing blocklist, a
 * bad risk.max_amount, an unusable key file, a bad http.address each make
 * --check-config exit 1 naming the problem, and the worker started with
 * the same settings refuses to start too; a good configuration exits 0 and
 * prints the effective settings. And the README's signing example, run as
 * written, makes key files both workers accept and signs a publish.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_amqp.h"
#include "ll_check.h"
#include "ll_proc.h"
#include "ll_test.h"
#include "ll_wait.h"

#define RISK    LL_BIN_DIR "/risk-worker"
#define PAYMENT LL_BIN_DIR "/payment-worker"

/* Runs `bin --check-config` with the extra environment `env` ("A=b C=d"). */
static int check(char **out, const char *env, const char *bin)
{
    return llt_run(out, "env %s %s --check-config", env, bin);
}

/* The worker itself, started with `env`: its exit status within 20 s
 * (LLW_TIMEDOUT when it kept running). */
static int start_status(const char *env, const char *bin)
{
    char *copy = strdup(env), *save = NULL;
    const char *extra[8];
    size_t n = 0;
    for (char *t = strtok_r(copy, " ", &save); t && n < 7; t = strtok_r(NULL, " ", &save))
        extra[n++] = t;
    extra[n] = NULL;
    pid_t pid = llw_start_instance(bin, NULL, "check-config", extra);
    llw_expect_exit(pid);
    int st = llw_wait_exit(pid, 20000);
    if (st == LLW_TIMEDOUT)
        llw_stop(pid, 20000);
    free(copy);
    return st;
}

typedef struct {
    const char *what;
    const char *bin;
    const char *env;
    const char *says; /* in the output of --check-config */
} bad_t;

static char keyfile[96], shortkey[96];

static void files_up(void)
{
    snprintf(keyfile, sizeof keyfile, "/tmp/llt-cc-%d.keys", (int)getpid());
    snprintf(shortkey, sizeof shortkey, "/tmp/llt-cc-%d-short.keys", (int)getpid());
    FILE *f = fopen(keyfile, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "k1 0123456789abcdef0123456789abcdef0123456789abcdef\n");
    fclose(f);
    f = fopen(shortkey, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "k1 \n"); /* what the README example used to write: an empty secret */
    fclose(f);
}

static void files_down(void)
{
    unlink(keyfile);
    unlink(shortkey);
}

START_TEST(check_config_fails_when_a_start_would)
{
    char env[4][256];
    snprintf(env[0], sizeof env[0], "LEDGERLINE_RISK_BLOCKLIST_FILE=/nonexistent/blocklist");
    snprintf(env[1], sizeof env[1], "LEDGERLINE_RISK_MAX_AMOUNT=EUR:abc");
    snprintf(env[2], sizeof env[2], "LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE=%s", shortkey);
    snprintf(env[3], sizeof env[3], "LEDGERLINE_HTTP_ADDRESS=localhost:80 LEDGERLINE_HTTP_PORT=9");
    const bad_t bad[] = {
        {"a missing blocklist", RISK, env[0], "/nonexistent/blocklist"},
        {"a bad max_amount", RISK, env[1], "risk.max_amount"},
        {"an unusable key file", PAYMENT, env[2], shortkey},
        {"a bad http.address", PAYMENT, env[3], "http.address"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out;
        int rc = check(&out, bad[i].env, bad[i].bin);
        ck_assert_msg(rc == 1, "%s: --check-config exit %d, want 1: %s", bad[i].what, rc, out);
        ck_assert_msg(strstr(out, bad[i].says) && strstr(out, "not usable"),
                      "%s: --check-config should name '%s': %s", bad[i].what, bad[i].says, out);
        free(out);
        int st = start_status(bad[i].env, bad[i].bin);
        ck_assert_msg(st == 1, "%s: the worker itself exited %d, want 1 (refused at start)",
                      bad[i].what, st);
    }
}
END_TEST

START_TEST(check_config_passes_a_good_configuration)
{
    char env[256], *out;
    snprintf(env, sizeof env, "LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE=%s", keyfile);
    int rc = check(&out, env, PAYMENT);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
    ck_assert_msg(strstr(out, "approval_keys_file") && strstr(out, keyfile), "%s", out);
    ck_assert_msg(strstr(out, "9472"), "the kind's default port should be shown: %s", out);
    free(out);
    rc = check(&out, "LEDGERLINE_RISK_MAX_AMOUNT=EUR:1000000", RISK);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
    free(out);
}
END_TEST

/* The first ```sh block after the README's "signing-example" marker. */
static char *readme_example(void)
{
    char *readme = llw_slurp(LL_SOURCE_DIR "/README.md");
    const char *m = strstr(readme, "<!-- signing-example");
    ck_assert_msg(m, "README.md has no signing-example marker");
    const char *start = strstr(m, "```sh\n");
    ck_assert_ptr_nonnull(start);
    start += 6;
    const char *end = strstr(start, "```");
    ck_assert_ptr_nonnull(end);
    char *block = strndup(start, (size_t)(end - start));
    free(readme);
    return block;
}

START_TEST(readme_signing_example_makes_keys_the_workers_accept)
{
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/llt-readme-%d", (int)getpid());
    ck_assert_int_eq(llt_run(NULL, "rm -rf %s && mkdir -p %s", dir, dir), 0);
    snprintf(path, sizeof path, "%s/example.sh", dir);
    char *block = readme_example();
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "set -euo pipefail\n%s", block);
    fclose(f);
    free(block);

    char *out;
    int rc = llt_run(&out, "cd %s && PATH=%s:$PATH bash %s", dir, LL_BIN_DIR, path);
    ck_assert_msg(rc == 0, "the README's signing example failed (%d): %s", rc, out);
    free(out);
    /* what it wrote is accepted by both workers as keys */
    rc = llt_run(&out,
                 "LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE=%s/approval.keys "
                 "LEDGERLINE_SIGNING_REQUEST_KEYS_FILE=%s/producer.keys %s --check-config && "
                 "LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE=%s/approval.keys %s --check-config",
                 dir, dir, RISK, dir, PAYMENT);
    ck_assert_msg(rc == 0, "the example's key files are refused (%d): %s", rc, out);
    free(out);
    /* the publish it ran left a signed request in the risk queue: take it */
    mq_t *m = llt_mq();
    bool signed_one = false;
    for (int i = 0; i < 50 && !signed_one; i++) {
        json_t *msgs = llw_queue_drain(m, "risk");
        size_t k;
        json_t *msg;
        json_array_foreach(msgs, k, msg) signed_one |=
            llw_header(msg, "x-ledgerline-signature") != NULL;
        json_decref(msgs);
        if (!signed_one)
            llw_sleep_ms(100);
    }
    mq_free(m);
    ck_assert_msg(signed_one, "no signed payment.requested from the example in queue risk");
    llt_run(NULL, "rm -rf %s", dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("check_config");
    TCase *tc = tcase_create("workers");
    tcase_set_timeout(tc, 180);
    tcase_add_checked_fixture(tc, files_up, files_down);
    tcase_add_test(tc, check_config_fails_when_a_start_would);
    tcase_add_test(tc, check_config_passes_a_good_configuration);
    tcase_add_test(tc, readme_signing_example_makes_keys_the_workers_accept);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
