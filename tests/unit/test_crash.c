/*
 * test_crash.c - the crash and pause points the crash tests rely on
 * (common/crash.h), each in a forked child so the test survives its kills.
 *
 * In a build with LEDGERLINE_CRASH_POINTS (./ops/test): the named point
 * SIGKILLs the process on its N-th hit (LEDGERLINE_CRASH_AFTER, default 1)
 * and never earlier, another name or no variable never kills, and a pause
 * point stops the process with SIGSTOP until SIGCONT. In any other build
 * the points compile to nothing: the same environment kills and stops
 * nothing, which is what a production binary must guarantee.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crash.h"
#include "ll_test.h"
#include "log.h"

#define CALLS 5

/* What a child that called a point `calls` times, with the given
 * environment, ended as. *reached = how many calls returned (written to a
 * pipe before each call, so a kill mid-way is counted exactly). */
static int child_status(const char *at, const char *after, const char *name, int calls,
                        int *reached)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull)
            log_set_output(devnull);
        if (at)
            setenv("LEDGERLINE_CRASH_AT", at, 1);
        else
            unsetenv("LEDGERLINE_CRASH_AT");
        if (after)
            setenv("LEDGERLINE_CRASH_AFTER", after, 1);
        else
            unsetenv("LEDGERLINE_CRASH_AFTER");
        for (int i = 0; i < calls; i++) {
            crash_point(name);
            char c = 'x';
            if (write(fds[1], &c, 1) != 1)
                _exit(3);
        }
        (void)name; /* unused when the points compile to nothing */
        _exit(0);
    }
    close(fds[1]);
    char buf[64];
    ssize_t r;
    *reached = 0;
    while ((r = read(fds[0], buf, sizeof buf)) > 0)
        *reached += (int)r;
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void assert_killed_at(int status, int reached, int expect_reached)
{
#ifdef LEDGERLINE_CRASH_POINTS
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "expected SIGKILL, got status 0x%x", status);
    ck_assert_int_eq(reached, expect_reached);
#else
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "a build without crash points must not kill (status 0x%x)", status);
    ck_assert_int_eq(reached, CALLS);
#endif
}

static void assert_survived(int status, int reached)
{
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "expected exit 0, got 0x%x",
                  status);
    ck_assert_int_eq(reached, CALLS);
}

START_TEST(the_named_point_kills_on_its_first_hit)
{
    int reached;
    int st = child_status("after_commit", NULL, "after_commit", CALLS, &reached);
    assert_killed_at(st, reached, 0);
}
END_TEST

/* CRASH_AFTER=N: calls 1..N-1 return, call N kills. */
START_TEST(crash_after_n_kills_on_the_nth_hit_only)
{
    static const struct {
        const char *after;
        int reached;
    } rows[] = {{"1", 0}, {"2", 1}, {"3", 2}, {"5", 4}, {"0", 0}, {"-4", 0}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int reached;
        int st = child_status("mid_batch", rows[i].after, "mid_batch", CALLS, &reached);
        assert_killed_at(st, reached, rows[i].reached);
    }
}
END_TEST

START_TEST(a_hit_count_beyond_the_calls_never_kills)
{
    int reached;
    int st = child_status("mid_batch", "6", "mid_batch", CALLS, &reached);
    assert_survived(st, reached);
}
END_TEST

START_TEST(another_point_or_no_variable_never_kills)
{
    static const char *const ats[] = {"after_publish", "after_commit_", "", NULL};
    for (size_t i = 0; i < sizeof ats / sizeof ats[0]; i++) {
        int reached;
        int st = child_status(ats[i], "1", "after_commit", CALLS, &reached);
        assert_survived(st, reached);
    }
}
END_TEST

/* The paused-closer test stops a worker at closer_locked and resumes it. */
START_TEST(a_pause_point_stops_until_sigcont)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull)
            log_set_output(devnull);
        setenv("LEDGERLINE_PAUSE_AT", "closer_locked", 1);
        pause_point("other_point");
        pause_point("closer_locked");
        _exit(7);
    }
    int status;
#ifdef LEDGERLINE_CRASH_POINTS
    ck_assert_int_eq(waitpid(pid, &status, WUNTRACED), pid);
    ck_assert_msg(WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP,
                  "expected a SIGSTOP stop, got status 0x%x", status);
    ck_assert_int_eq(kill(pid, SIGCONT), 0);
#endif
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 7, "expected exit 7, got 0x%x",
                  status);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("points");
    tcase_add_test(tc, the_named_point_kills_on_its_first_hit);
    tcase_add_test(tc, crash_after_n_kills_on_the_nth_hit_only);
    tcase_add_test(tc, a_hit_count_beyond_the_calls_never_kills);
    tcase_add_test(tc, another_point_or_no_variable_never_kills);
    tcase_add_test(tc, a_pause_point_stops_until_sigcont);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return llt_run_suite(crash_suite());
}
