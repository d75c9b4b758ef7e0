/*
 * ll_redis.c - a throwaway redis-server for tests: see ll_redis.h.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "clock.h"
#include "ll_redis.h"
#include "ll_test.h"

void llr_stack(llr_stack_t *s)
{
    s->host = llt_env("LEDGERLINE_REDIS_HOST");
    s->port = atoi(llt_env("LEDGERLINE_REDIS_PORT"));
    if (!getenv("LEDGERLINE_REDIS_PASSWORD"))
        (void)llt_env("LEDGERLINE_REDIS_PASSWORD_FILE");
    free(s->password);
    s->password = llt_secret("LEDGERLINE_REDIS_PASSWORD");
}

kv_t *llr_stack_kv(const llr_stack_t *s, const char *prefix, int timeout_ms)
{
    kv_t *kv;
    ck_assert_int_eq(kv_open(&kv, s->host, s->port, s->password, 0, timeout_ms, prefix), LL_OK);
    ck_assert_msg(kv_is_up(kv), "cannot reach the stack's Redis at %s:%d: %s", s->host, s->port,
                  kv_errstr(kv));
    return kv;
}

redisContext *llr_stack_raw(const llr_stack_t *s)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
    ck_assert_msg(c && !c->err, "raw connect: %s", c ? c->errstr : "no memory");
    if (s->password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", s->password);
        ck_assert_msg(r && r->type == REDIS_REPLY_STATUS, "raw AUTH failed");
        freeReplyObject(r);
    }
    return c;
}

static pid_t server = -1;

void llr_stop(void)
{
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
        server = -1;
    }
}

int llr_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool answers_ping(int port)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

void llr_start(int port)
{
    ck_assert_msg(server <= 0, "a throwaway redis-server already runs (pid %d)", (int)server);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the test */
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execlp("redis-server", "redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--dir", "/tmp", (char *)NULL);
        _exit(127);
    }
    server = pid;
    int64_t deadline = clock_mono_ms() + 10000;
    while (!answers_ping(port)) {
        int status = 0;
        ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0, "redis-server exited (status %d)",
                      status);
        ck_assert_msg(clock_mono_ms() < deadline, "redis-server on port %d never answered", port);
        usleep(20000);
    }
}
