/*
 * ll_redis.c - Redis in the tests: see ll_redis.h.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "ll_proc.h"
#include "ll_redis.h"
#include "ll_test.h"

/* ---- the stack's Redis ---------------------------------------------------- */

void llr_stack(llr_stack_t *s)
{
    s->host = llt_env("LEDGERLINE_REDIS_HOST");
    s->port = atoi(llt_env("LEDGERLINE_REDIS_PORT"));
    if (!getenv("LEDGERLINE_REDIS_PASSWORD"))
        (void)llt_env("LEDGERLINE_REDIS_PASSWORD_FILE");
    free(s->password);
    s->password = llt_secret("LEDGERLINE_REDIS_PASSWORD");
    const char *db = getenv("LEDGERLINE_REDIS_DB");
    s->db = db && *db ? atoi(db) : 0;
}

kv_t *llr_stack_kv(const llr_stack_t *s, const char *prefix, int timeout_ms)
{
    kv_t *kv;
    ck_assert_int_eq(kv_open(&kv, s->host, s->port, s->password, s->db, timeout_ms, prefix), LL_OK);
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
    if (s->db != 0) {
        redisReply *r = redisCommand(c, "SELECT %d", s->db);
        ck_assert_msg(r && r->type == REDIS_REPLY_STATUS, "raw SELECT %d failed", s->db);
        freeReplyObject(r);
    }
    return c;
}

kv_t *llr_kv(void)
{
    llr_stack_t s = {0};
    llr_stack(&s);
    kv_t *kv = llr_stack_kv(&s, NULL, 2000);
    free(s.password);
    return kv;
}

/* ---- idempotency keys ------------------------------------------------------ */

void llr_idem_key(char *out, size_t n, db_t *db, const char *stage, const char *payment_id)
{
    PGresult *r = NULL;
    int rc = db_query(db, &r, "SELECT id FROM ledger_identity", 0, NULL);
    ck_assert_msg(rc == LL_OK, "the ledger identity: %s", db_errstr(db));
    ck_assert_msg(PQntuples(r) == 1, "table ledger_identity has %d rows", PQntuples(r));
    const char *prefix = getenv("LEDGERLINE_REDIS_KEY_PREFIX");
    snprintf(out, n, "%sidem:%s:%s:%s", prefix ? prefix : "ll:", PQgetvalue(r, 0, 0), stage,
             payment_id);
    PQclear(r);
}

void llr_idem_forget(db_t *db, const char *stage, const char *payment_id, const char *what)
{
    char key[160];
    llr_idem_key(key, sizeof key, db, stage, payment_id);
    kv_t *kv = llr_kv();
    int rc = kv_del(kv, key);
    kv_free(kv);
    LLW_ASSERT(rc == LL_OK, "Redis key %s %s: %s", key, what, ll_errname(rc));
}

/* ---- a throwaway redis-server ---------------------------------------------- */

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
