/*
 * ll_proc.c - the worker processes of a test: see ll_proc.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ll_proc.h"

#define LLW_MAX_PROCS 32

typedef struct llw_proc {
    pid_t pid;
    bool reaped;   /* waited for: status is final */
    bool may_exit; /* llw_expect_exit() */
    int status;    /* llw_wait_exit() convention */
    char log[256];
} llw_proc_t;

static llw_proc_t procs[LLW_MAX_PROCS];
static size_t nprocs;
static int log_seq;

static llw_proc_t *find_proc(pid_t pid)
{
    for (size_t i = 0; i < nprocs; i++)
        if (procs[i].pid == pid)
            return &procs[i];
    return NULL;
}

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return -WTERMSIG(st);
    return LLW_TIMEDOUT;
}

/* ---- starting ------------------------------------------------------------ */

/* In the child: "NAME=value" into the environment. */
static void child_setenv(const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return;
    char name[256];
    size_t n = (size_t)(eq - kv);
    if (n >= sizeof name)
        return;
    memcpy(name, kv, n);
    name[n] = '\0';
    setenv(name, eq + 1, 1);
}

pid_t llw_start(const char *bin, const char *dbname, const char *const *extra_env,
                const char *logpath)
{
    ck_assert_msg(nprocs < LLW_MAX_PROCS, "more than %d worker processes in one test",
                  LLW_MAX_PROCS);
    ck_assert_msg(access(bin, X_OK) == 0, "%s: %s (build it: cmake --build <build dir>)", bin,
                  strerror(errno));
    llw_proc_t *p = &procs[nprocs];
    memset(p, 0, sizeof *p);
    if (logpath)
        snprintf(p->log, sizeof p->log, "%s", logpath);
    else
        snprintf(p->log, sizeof p->log, "/tmp/llw-%d-%d.log", (int)getpid(), ++log_seq);
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* never outlive the test that started us */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0)
            _exit(127);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
        if (in > 2)
            close(in);
        if (dbname)
            setenv("LEDGERLINE_POSTGRES_DBNAME", dbname, 1);
        /* endpoints off unless the test asks for them (extra_env): a test
         * runs several replicas of a kind, which would share its port */
        setenv("LEDGERLINE_HTTP_PORT", "0", 1);
        for (size_t i = 0; extra_env && extra_env[i]; i++)
            child_setenv(extra_env[i]);
        /* what the test process ignores or blocks must not leak into it */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execl(bin, bin, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    nprocs++;
    return pid;
}

pid_t llw_start_instance(const char *bin, const char *dbname, const char *instance,
                         const char *const *extra)
{
    const char *env[24];
    size_t k = 0;
    char inst[96];
    snprintf(inst, sizeof inst, "LEDGERLINE_WORKER_INSTANCE=%s", instance);
    env[k++] = inst;
    for (size_t i = 0; extra && extra[i] && k < 23; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    return llw_start(bin, dbname, env, NULL);
}

/* ---- logs ---------------------------------------------------------------- */

const char *llw_log(pid_t pid)
{
    llw_proc_t *p = find_proc(pid);
    return p ? p->log : "";
}

char *llw_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    size_t cap = 4096, n = 0, got;
    char *s = malloc(cap);
    while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            s = realloc(s, cap);
        }
    }
    s[n] = '\0';
    fclose(f);
    return s;
}

size_t llw_log_count(pid_t pid, const char *needle)
{
    char *s = llw_slurp(llw_log(pid));
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    free(s);
    return n;
}

/* ---- stopping ------------------------------------------------------------ */

void llw_expect_exit(pid_t pid)
{
    llw_proc_t *p = find_proc(pid);
    if (p)
        p->may_exit = true;
}

/* Non-blocking reap of p; true if it has exited (now or before). */
static bool reap(llw_proc_t *p)
{
    if (p->reaped)
        return true;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->reaped = true;
        p->status = decode_status(st);
        return true;
    }
    if (r < 0 && errno == ECHILD) {
        p->reaped = true;
        p->status = LLW_TIMEDOUT;
        return true;
    }
    return false;
}

int llw_wait_exit(pid_t pid, int timeout_ms)
{
    llw_proc_t *p = find_proc(pid);
    llw_proc_t tmp = {.pid = pid};
    if (!p)
        p = &tmp;
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        if (reap(p))
            return p->status;
        if (clock_mono_ms() >= deadline)
            return LLW_TIMEDOUT;
        struct timespec ts = {0, 10 * 1000000L}; /* a signal cutting it short is fine */
        nanosleep(&ts, NULL);
    }
}

int llw_stop(pid_t pid, int timeout_ms)
{
    llw_proc_t *p = find_proc(pid);
    if (p && reap(p))
        return p->status;
    if (p)
        p->may_exit = true;
    kill(pid, SIGTERM);
    int st = llw_wait_exit(pid, timeout_ms);
    if (st != LLW_TIMEDOUT)
        return st;
    kill(pid, SIGKILL);
    int raw;
    while (waitpid(pid, &raw, 0) < 0 && errno == EINTR)
        ;
    if (p) {
        p->reaped = true;
        p->status = LLW_TIMEDOUT;
    }
    return LLW_TIMEDOUT;
}

void llw_stop_ok(pid_t pid, int timeout_ms, const char *what)
{
    int st = llw_stop(pid, timeout_ms);
    LLW_ASSERT(st == 0, "%s%sSIGTERM: worker %d should exit 0 after finishing its batch: %s",
               what ? what : "", what ? ": " : "", (int)pid, llw_status_str(st));
}

void llw_signal(pid_t pid, int sig)
{
    llw_proc_t *p = find_proc(pid);
    if (p && reap(p))
        return;
    kill(pid, sig);
}

void llw_kill_all(void)
{
    for (size_t i = 0; i < nprocs; i++) {
        llw_proc_t *p = &procs[i];
        if (!p->reaped) {
            kill(p->pid, SIGKILL);
            int st;
            while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
                ;
            p->reaped = true;
        }
        if (!getenv("LLW_KEEP_LOGS"))
            unlink(p->log);
    }
    nprocs = 0;
}

/* ---- reporting ----------------------------------------------------------- */

const char *llw_status_str(int status)
{
    static char buf[96];
    if (status == LLW_TIMEDOUT)
        snprintf(buf, sizeof buf, "still running (timed out)");
    else if (status < 0)
        snprintf(buf, sizeof buf, "killed by signal %d (%s)", -status, strsignal(-status));
    else
        snprintf(buf, sizeof buf, "exit %d", status);
    return buf;
}

/* Prints the last `lines` lines of `path` to stderr. */
static void print_tail(const char *path, int lines)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "  (cannot read %s: %s)\n", path, strerror(errno));
        return;
    }
    const long window = 256 * 1024;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long start = size > window ? size - window : 0;
    fseek(f, start, SEEK_SET);
    char *buf = malloc((size_t)(size - start) + 1);
    size_t n = buf ? fread(buf, 1, (size_t)(size - start), f) : 0;
    fclose(f);
    if (!buf)
        return;
    buf[n] = '\0';
    size_t from = n;
    int seen = 0;
    while (from > 0) {
        if (buf[from - 1] == '\n' && from != n && ++seen >= lines)
            break;
        from--;
    }
    fprintf(stderr, "%s%s", buf + from, n > 0 && buf[n - 1] != '\n' ? "\n" : "");
    free(buf);
}

void llw_dump_logs(void)
{
    for (size_t i = 0; i < nprocs; i++) {
        llw_proc_t *p = &procs[i];
        reap(p);
        fprintf(stderr, "---- worker pid %d (%s), log %s, last %d lines ----\n", (int)p->pid,
                p->reaped ? llw_status_str(p->status) : "running", p->log, LLW_TAIL_LINES);
        print_tail(p->log, LLW_TAIL_LINES);
    }
    fflush(stderr);
}

void llw_check_alive(void)
{
    for (size_t i = 0; i < nprocs; i++) {
        llw_proc_t *p = &procs[i];
        if (p->may_exit || p->reaped)
            continue;
        if (reap(p)) {
            llw_dump_logs();
            ck_abort_msg("worker pid %d exited unexpectedly: %s (log %s)", (int)p->pid,
                         llw_status_str(p->status), p->log);
        }
    }
}
