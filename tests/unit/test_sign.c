/*
 * test_sign.c - HMAC-SHA256 keyrings: signatures equal an independent
 * implementation's (Python's hmac module computed the expected values),
 * verification accepts any key of the ring (rotation) and names why it
 * refuses, and bad key files are refused with their line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ll_test.h"
#include "sign.h"

#define K1    "k1-secret-0123456789abcdefghijklmnopqrstuvwxyz"
#define K2    "k2-secret-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210"
#define BODY  "{\"hello\":\"ledger\"}"
#define HMAC1 "b528ad8cc3e83f8c94da13b49ba9bde1a74120afb9e97330a80360eb6c2b1b8c"
#define HMAC2 "9aae5f92f65883e734acc6e79978cd6cdcc914f0866daa4eaf792c97b8fd113c"

static char *keyfile(const char *text)
{
    char *path = strdup("/tmp/llt_keys_XXXXXX");
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    return path;
}

static sign_keyring_t *ring(const char *text)
{
    char *path = keyfile(text), err[256];
    sign_keyring_t *k;
    ck_assert_msg(sign_load(path, &k, err, sizeof err) == LL_OK, "%s", err);
    unlink(path);
    free(path);
    return k;
}

START_TEST(sign_matches_an_independent_hmac)
{
    sign_keyring_t *k = ring("# comment\n\nk1 " K1 "\n");
    char sig[SIGN_MAX], why[256];
    sign_body(k, BODY, strlen(BODY), sig);
    ck_assert_str_eq(sig, "k1:" HMAC1);
    ck_assert_int_eq(sign_verify(k, sig, BODY, strlen(BODY), why, sizeof why), LL_OK);
    sign_free(k);
    sign_free(NULL);
}
END_TEST

static const struct {
    const char *header, *body, *why;
} refusals[] = {
    {NULL, BODY, "not signed"},
    {"", BODY, "not signed"},
    {"k1:" HMAC1, "{\"hello\":\"ledgeR\"}", "does not match"},
    {"k1:" HMAC2, BODY, "does not match"},
    {"k9:" HMAC1, BODY, "unknown key id 'k9'"},
    {"k1-" HMAC1, BODY, "is not"},
    {"k1:abc", BODY, "is not"},
};

START_TEST(sign_verify_refuses_with_a_reason)
{
    sign_keyring_t *k = ring("k1 " K1 "\n");
    char why[256] = "";
    ck_assert_int_eq(sign_verify(k, refusals[_i].header, refusals[_i].body,
                                 strlen(refusals[_i].body), why, sizeof why),
                     LL_EREJECT);
    ck_assert_msg(strstr(why, refusals[_i].why) != NULL, "'%s' lacks '%s'", why, refusals[_i].why);
    sign_free(k);
}
END_TEST

START_TEST(sign_rotation_signs_with_the_first_key_and_accepts_both)
{
    sign_keyring_t *k = ring("k2 " K2 "\nk1 " K1 "\n");
    char sig[SIGN_MAX], why[256];
    sign_body(k, BODY, strlen(BODY), sig);
    ck_assert_str_eq(sig, "k2:" HMAC2);
    ck_assert_int_eq(sign_verify(k, "k1:" HMAC1, BODY, strlen(BODY), why, sizeof why), LL_OK);
    ck_assert_int_eq(sign_verify(k, "k2:" HMAC2, BODY, strlen(BODY), why, sizeof why), LL_OK);
    sign_free(k);
}
END_TEST

static const struct {
    const char *text, *want;
} bad_files[] = {
    {"", "holds no key"}, {"# only a comment\n", "holds no key"},   {"k1 tooshort\n", "line 1"},
    {"k1\n", "line 1"},   {"k1 " K1 "\nbad/id " K2 "\n", "line 2"},
};

START_TEST(sign_load_refuses_bad_files_with_the_line)
{
    char *path = keyfile(bad_files[_i].text), err[256] = "";
    sign_keyring_t *k = (sign_keyring_t *)1;
    ck_assert_int_eq(sign_load(path, &k, err, sizeof err), LL_ECONFIG);
    ck_assert_ptr_null(k);
    ck_assert_msg(strstr(err, bad_files[_i].want) != NULL, "'%s' lacks '%s'", err,
                  bad_files[_i].want);
    unlink(path);
    free(path);
    ck_assert_int_eq(sign_load("/nonexistent/keys", &k, err, sizeof err), LL_ECONFIG);
    ck_assert_msg(strstr(err, "/nonexistent/keys") != NULL, "%s", err);
    /* a directory opens but cannot be read: refused, never an empty ring */
    ck_assert_int_eq(sign_load("/tmp", &k, err, sizeof err), LL_ECONFIG);
    ck_assert_msg(strstr(err, "not a regular file") != NULL, "%s", err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sign");
    TCase *tc = tcase_create("hmac");
    tcase_add_test(tc, sign_matches_an_independent_hmac);
    tcase_add_loop_test(tc, sign_verify_refuses_with_a_reason, 0,
                        (int)(sizeof refusals / sizeof refusals[0]));
    tcase_add_test(tc, sign_rotation_signs_with_the_first_key_and_accepts_both);
    tcase_add_loop_test(tc, sign_load_refuses_bad_files_with_the_line, 0,
                        (int)(sizeof bad_files / sizeof bad_files[0]));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
