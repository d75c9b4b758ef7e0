/*
 * test_xmalloc.c - the allocation wrappers return usable memory, and an
 * allocation that cannot be satisfied logs "out of memory" and aborts the
 * daemon instead of returning NULL (Postfix mymalloc). The OOM case runs in
 * a re-executed child with ASAN_OPTIONS=allocator_may_return_null=1, so the
 * wrapper, not the sanitizer, is what reacts.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ll_test.h"
#include "log.h"
#include "xmalloc.h"

START_TEST(xmalloc_returns_usable_memory)
{
    char *p = ll_xmalloc(0);
    ck_assert_ptr_nonnull(p);
    free(p);
    int *z = ll_xcalloc(100, sizeof *z);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(z[i], 0);
    z = ll_xrealloc(z, 1000 * sizeof *z);
    z[999] = 7;
    free(z);
    char *s = ll_xstrdup("ledger");
    ck_assert_str_eq(s, "ledger");
    free(s);
    s = ll_xstrndup("ledgerline", 6);
    ck_assert_str_eq(s, "ledger");
    free(s);
    s = ll_xasprintf("%s:%d", "idem", 42);
    ck_assert_str_eq(s, "idem:42");
    free(s);
    /* never cut, whatever the length */
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    s = ll_xasprintf("D|%s|", big);
    ck_assert_uint_eq(strlen(s), sizeof big - 1 + 3);
    ck_assert_int_eq(s[0], 'D');
    ck_assert_int_eq(s[sizeof big + 1], '|');
    free(s);
}
END_TEST

START_TEST(xmalloc_aborts_with_a_log_line_when_memory_runs_out)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        setenv("ASAN_OPTIONS", "allocator_may_return_null=1:abort_on_error=0", 1);
        execl("/proc/self/exe", "test_xmalloc", "--oom-child", (char *)NULL);
        _exit(99);
    }
    close(fds[1]);
    char out[4096] = "";
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "child status %d: %s", st, out);
    ck_assert_msg(strstr(out, "out of memory") != NULL, "no log line: %s", out);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--oom-child") == 0) {
        log_init("test_xmalloc", LOG_INFO);
        void *p = ll_xmalloc(SIZE_MAX / 2);
        printf("returned %p instead of aborting\n", p);
        return 0;
    }
    Suite *s = suite_create("xmalloc");
    TCase *tc = tcase_create("xmalloc");
    tcase_add_test(tc, xmalloc_returns_usable_memory);
    tcase_add_test(tc, xmalloc_aborts_with_a_log_line_when_memory_runs_out);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
