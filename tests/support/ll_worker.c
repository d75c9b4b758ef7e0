/*
 * ll_worker.c - helpers for suites that run real worker processes: see
 * ll_worker.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ll_test.h"
#include "ll_worker.h"

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

int64_t llw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void llw_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

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

/* ---- worker processes ------------------------------------------------- */

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

const char *llw_log(pid_t pid)
{
    llw_proc_t *p = find_proc(pid);
    return p ? p->log : "";
}

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
    int64_t deadline = llw_now_ms() + timeout_ms;
    for (;;) {
        if (reap(p))
            return p->status;
        if (llw_now_ms() >= deadline)
            return LLW_TIMEDOUT;
        llw_sleep_ms(10);
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

void llw_signal(pid_t pid, int sig)
{
    llw_proc_t *p = find_proc(pid);
    if (p && reap(p))
        return;
    kill(pid, sig);
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

void llw_stop_ok(pid_t pid, int timeout_ms)
{
    int st = llw_stop(pid, timeout_ms);
    LLW_ASSERT(st == 0, "SIGTERM: worker %d should exit 0 after finishing its batch: %s", (int)pid,
               llw_status_str(st));
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

typedef struct {
    pid_t pid;
    const char *needle;
} log_wait_t;

static bool log_cond(void *arg, char *status, size_t n)
{
    const log_wait_t *w = arg;
    size_t have = llw_log_count(w->pid, w->needle);
    snprintf(status, n, "'%s' logged %zu time(s) by %d", w->needle, have, (int)w->pid);
    return have > 0;
}

void llw_wait_logged(pid_t pid, const char *needle, int timeout_ms, const char *what)
{
    log_wait_t w = {pid, needle};
    llw_wait_until(log_cond, &w, timeout_ms, what);
}

typedef struct {
    db_t *db;
    int64_t n;
} lock_wait_t;

static bool lock_waiters_cond(void *arg, char *status, size_t n)
{
    const lock_wait_t *w = arg;
    int64_t waiting = 0;
    llw_try_scalar(w->db,
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                   &waiting);
    snprintf(status, n, "%" PRId64 " backend(s) waiting for a lock, want %" PRId64, waiting, w->n);
    return waiting >= w->n;
}

void llw_wait_lock_waiters(db_t *db, int64_t n, int timeout_ms, const char *what)
{
    lock_wait_t w = {db, n};
    llw_wait_until(lock_waiters_cond, &w, timeout_ms, what);
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

/* ---- waiting ---------------------------------------------------------- */

void llw_wait_until(llw_cond_fn cond, void *arg, int timeout_ms, const char *what)
{
    int64_t start = llw_now_ms();
    char status[512];
    for (;;) {
        llw_check_alive();
        status[0] = '\0';
        if (cond(arg, status, sizeof status))
            return;
        if (llw_now_ms() - start >= timeout_ms) {
            llw_dump_logs();
            ck_abort_msg("timed out after %d ms waiting for %s (last seen: %s)", timeout_ms, what,
                         status[0] ? status : "-");
        }
        llw_sleep_ms(50);
    }
}

typedef struct {
    llw_events_t *ev;
    const char *rk, *payment_id;
    size_t n;
} count_wait_t;

static bool count_cond(void *arg, char *status, size_t n)
{
    const count_wait_t *w = arg;
    llw_events_collect(w->ev);
    size_t have = llw_events_count(w->ev, w->rk, w->payment_id);
    snprintf(status, n, "%zu of %zu %s event(s) for %s", have, w->n, w->rk, w->payment_id);
    return have >= w->n;
}

void llw_wait_events(llw_events_t *ev, const char *rk, const char *payment_id, size_t n,
                     int timeout_ms)
{
    count_wait_t w = {ev, rk, payment_id, n};
    char what[256];
    snprintf(what, sizeof what, "%zu %s event(s) for %s", n, rk, payment_id);
    llw_wait_until(count_cond, &w, timeout_ms, what);
}

uint32_t llw_queue_depth(mq_t *m, const char *queue)
{
    uint32_t msgs = 0, consumers = 0;
    int rc = mq_queue_stats(m, queue, &msgs, &consumers);
    LLW_ASSERT(rc == LL_OK, "queue %s: %s", queue, mq_errstr(m));
    return msgs;
}

void llw_purge(mq_t *m, const char *const *queues)
{
    for (size_t i = 0; queues[i]; i++) {
        uint32_t n;
        int rc = mq_purge(m, queues[i], &n);
        ck_assert_msg(rc == LL_OK, "purge %s: %s", queues[i], mq_errstr(m));
    }
}

typedef struct {
    mq_t *m;
    const char *queue;
    uint32_t want;
    int64_t zero_since; /* llw_wait_drained: 0 = not at zero */
} queue_wait_t;

static bool consuming_cond(void *arg, char *status, size_t n)
{
    queue_wait_t *w = arg;
    uint32_t msgs = 0, consumers = 0;
    int rc = mq_queue_stats(w->m, w->queue, &msgs, &consumers);
    snprintf(status, n, "%s: %s, %u consumer(s), %u ready", w->queue, ll_errname(rc), consumers,
             msgs);
    return rc == LL_OK && consumers >= w->want;
}

void llw_wait_consuming(mq_t *m, const char *queue, uint32_t consumers, int timeout_ms)
{
    queue_wait_t w = {m, queue, consumers, 0};
    char what[160];
    snprintf(what, sizeof what, "%u consumer(s) on queue %s", consumers, queue);
    llw_wait_until(consuming_cond, &w, timeout_ms, what);
}

static bool drained_cond(void *arg, char *status, size_t n)
{
    queue_wait_t *w = arg;
    uint32_t msgs = 0, consumers = 0;
    int rc = mq_queue_stats(w->m, w->queue, &msgs, &consumers);
    snprintf(status, n, "%s: %s, %u ready, %u consumer(s)", w->queue, ll_errname(rc), msgs,
             consumers);
    if (rc != LL_OK || msgs != 0) {
        w->zero_since = 0;
        return false;
    }
    int64_t now = llw_now_ms();
    if (w->zero_since == 0)
        w->zero_since = now;
    return now - w->zero_since >= 300;
}

void llw_wait_drained(mq_t *m, const char *queue, int timeout_ms)
{
    queue_wait_t w = {m, queue, 0, 0};
    char what[160];
    snprintf(what, sizeof what, "queue %s to stay empty for 300 ms", queue);
    llw_wait_until(drained_cond, &w, timeout_ms, what);
}

/* ---- publishing and reading messages ----------------------------------- */

void llw_publish_raw(mq_t *m, const char *exchange, const char *rk, const char *message_id,
                     const char *type, const void *body, size_t len)
{
    mq_props_t props = {
        .message_id = message_id,
        .type = type,
        .content_type = "application/json",
    };
    int rc = mq_publish(m, exchange, rk, body, len, &props, true);
    ck_assert_msg(rc == LL_OK, "publish to %s/%s: %s", exchange, rk, mq_errstr(m));
    /* keep the confirm window bounded */
    if (mq_pending(m) >= 256)
        llw_confirm(m);
}

char *llw_publish_approved(mq_t *m, const msg_payment_t *p, int64_t occurred_ms)
{
    char *body = msg_encode_approved(p, 0, NULL, 0, occurred_ms);
    ck_assert_msg(body != NULL, "cannot encode payment.approved for %s", p->payment_id);
    llw_publish_raw(m, "ledgerline.events", MSG_TYPE_APPROVED, p->payment_id, MSG_TYPE_APPROVED,
                    body, strlen(body));
    return body;
}

void llw_confirm(mq_t *m)
{
    size_t failed = 0;
    int rc = mq_confirm_wait(m, 30000, &failed);
    ck_assert_msg(rc == LL_OK, "publisher confirms: %s (%zu failed): %s", ll_errname(rc), failed,
                  mq_errstr(m));
}

static json_t *bytes_json(amqp_bytes_t b)
{
    return json_stringn_nocheck(b.bytes ? (const char *)b.bytes : "", b.len);
}

/* The message of d as {"routing_key", "message_id", "type", "body",
 * "headers"}. */
static json_t *delivery_json(const mq_delivery_t *d)
{
    const amqp_basic_properties_t *p = &d->env.message.properties;
    json_t *o = json_object();
    json_object_set_new(o, "routing_key", bytes_json(d->env.routing_key));
    json_object_set_new(o, "message_id",
                        (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? bytes_json(p->message_id)
                                                                 : json_null());
    json_object_set_new(o, "type",
                        (p->_flags & AMQP_BASIC_TYPE_FLAG) ? bytes_json(p->type) : json_null());
    json_object_set_new(o, "body", json_stringn_nocheck(d->body ? d->body : "", d->len));
    json_t *h = json_object();
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < p->headers.num_entries; i++) {
            const amqp_table_entry_t *e = &p->headers.entries[i];
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)e->key.len, (const char *)e->key.bytes);
            const amqp_field_value_t *v = &e->value;
            json_t *jv = NULL;
            switch (v->kind) {
            case AMQP_FIELD_KIND_UTF8:
            case AMQP_FIELD_KIND_BYTES:
                jv = bytes_json(v->value.bytes);
                break;
            case AMQP_FIELD_KIND_I8:
                jv = json_integer(v->value.i8);
                break;
            case AMQP_FIELD_KIND_U8:
                jv = json_integer(v->value.u8);
                break;
            case AMQP_FIELD_KIND_I16:
                jv = json_integer(v->value.i16);
                break;
            case AMQP_FIELD_KIND_U16:
                jv = json_integer(v->value.u16);
                break;
            case AMQP_FIELD_KIND_I32:
                jv = json_integer(v->value.i32);
                break;
            case AMQP_FIELD_KIND_U32:
                jv = json_integer(v->value.u32);
                break;
            case AMQP_FIELD_KIND_I64:
                jv = json_integer(v->value.i64);
                break;
            case AMQP_FIELD_KIND_U64:
                jv = json_integer((json_int_t)v->value.u64);
                break;
            default:
                break;
            }
            if (jv)
                json_object_set_new(h, key, jv);
        }
    }
    json_object_set_new(o, "headers", h);
    /* bodies and headers are kept byte for byte, valid UTF-8 or not: compare them,
     * never dump them as JSON */
    return o;
}

json_t *llw_queue_drain(mq_t *m, const char *queue)
{
    json_t *all = json_array();
    for (;;) {
        mq_delivery_t d;
        bool empty = false;
        int rc = mq_get(m, queue, &d, &empty);
        ck_assert_msg(rc == LL_OK, "basic.get on %s: %s", queue, mq_errstr(m));
        if (empty)
            return all;
        json_array_append_new(all, delivery_json(&d));
        rc = mq_ack(m, d.tag, false);
        mq_delivery_clear(&d);
        ck_assert_msg(rc == LL_OK, "ack on %s: %s", queue, mq_errstr(m));
    }
}

const char *llw_header(const json_t *msg, const char *name)
{
    return json_string_value(json_object_get(json_object_get(msg, "headers"), name));
}

struct llw_events {
    mq_t *m;
    char queue[96];
    char key[128];
    json_t *all;
};

static int events_declare(llw_events_t *ev)
{
    amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-expires"),
                            .value = {.kind = AMQP_FIELD_KIND_I32, .value = {.i32 = 600000}}};
    amqp_table_t args = {.num_entries = 1, .entries = &e};
    int rc = mq_declare_queue(ev->m, ev->queue, &args);
    if (rc == LL_OK)
        rc = mq_bind(ev->m, ev->queue, "ledgerline.events", ev->key);
    return rc;
}

llw_events_t *llw_events_open(const char *binding_key)
{
    static int seq;
    llw_events_t *ev = calloc(1, sizeof *ev);
    ck_assert(ev != NULL);
    snprintf(ev->queue, sizeof ev->queue, "llt.events.%d.%d", (int)getpid(), ++seq);
    snprintf(ev->key, sizeof ev->key, "%s", binding_key ? binding_key : "#");
    ev->all = json_array();
    ev->m = llt_mq();
    int rc = mq_declare_exchange(ev->m, "ledgerline.events", "topic");
    ck_assert_msg(rc == LL_OK, "declare ledgerline.events: %s", mq_errstr(ev->m));
    rc = events_declare(ev);
    ck_assert_msg(rc == LL_OK, "event queue %s: %s", ev->queue, mq_errstr(ev->m));
    uint32_t n;
    rc = mq_purge(ev->m, ev->queue, &n);
    ck_assert_msg(rc == LL_OK, "purge %s: %s", ev->queue, mq_errstr(ev->m));
    return ev;
}

size_t llw_events_collect(llw_events_t *ev)
{
    size_t got = 0;
    for (;;) {
        mq_delivery_t d;
        bool empty = false;
        int rc = mq_get(ev->m, ev->queue, &d, &empty);
        if (rc != LL_OK) {
            /* the broker went away (a restart test): come back next time */
            if (mq_connect(ev->m) == LL_OK && events_declare(ev) != LL_OK)
                mq_close(ev->m);
            return got;
        }
        if (empty)
            return got;
        json_t *o = delivery_json(&d);
        json_error_t err;
        json_t *body = json_loadb(d.body ? d.body : "", d.len, 0, &err);
        json_object_set_new(o, "json", body ? body : json_null());
        json_array_append_new(ev->all, o);
        got++;
        rc = mq_ack(ev->m, d.tag, false);
        mq_delivery_clear(&d);
        if (rc != LL_OK)
            return got;
    }
}

json_t *llw_events_all(llw_events_t *ev)
{
    return ev->all;
}

static bool event_matches(json_t *o, const char *rk, const char *payment_id)
{
    if (rk && strcmp(json_string_value(json_object_get(o, "routing_key")), rk) != 0)
        return false;
    if (payment_id) {
        const char *p =
            json_string_value(json_object_get(json_object_get(o, "json"), "payment_id"));
        if (!p || strcmp(p, payment_id) != 0)
            return false;
    }
    return true;
}

size_t llw_events_count(llw_events_t *ev, const char *rk, const char *payment_id)
{
    size_t i, n = 0;
    json_t *o;
    json_array_foreach(ev->all, i, o)
    {
        if (event_matches(o, rk, payment_id))
            n++;
    }
    return n;
}

size_t llw_events_distinct(llw_events_t *ev, const char *rk)
{
    json_t *seen = json_object();
    size_t i;
    json_t *o;
    json_array_foreach(ev->all, i, o)
    {
        if (!event_matches(o, rk, NULL))
            continue;
        const char *id = json_string_value(json_object_get(json_object_get(o, "json"), "event_id"));
        if (id)
            json_object_set_new(seen, id, json_true());
    }
    size_t n = json_object_size(seen);
    json_decref(seen);
    return n;
}

json_t *llw_events_find(llw_events_t *ev, const char *rk, const char *payment_id, size_t nth)
{
    size_t i;
    json_t *o;
    json_array_foreach(ev->all, i, o)
    {
        if (event_matches(o, rk, payment_id) && nth-- == 0)
            return o;
    }
    return NULL;
}

void llw_events_close(llw_events_t *ev)
{
    if (!ev)
        return;
    if (mq_is_up(ev->m) || mq_connect(ev->m) == LL_OK) {
        if (mq_delete_queue(ev->m, ev->queue) != LL_OK)
            fprintf(stderr, "cannot delete %s: %s\n", ev->queue, mq_errstr(ev->m));
    }
    mq_free(ev->m);
    json_decref(ev->all);
    free(ev);
}

/* ---- the stack's servers ---------------------------------------------- */

/* Runs ops/stack in a new session; output into *out (caller frees) when
 * out is not NULL. Exit status, or -1. Never fails the test. */
static int stack_run(const char *name, const char *cmd, const char *server, char **out)
{
    char path[] = "/tmp/llw-stack-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        unlink(path);
        return -1;
    }
    if (pid == 0) {
        setsid(); /* servers it starts stay out of the test's process group */
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0)
            dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(LL_SOURCE_DIR "/ops/stack", "stack", "--name", name, cmd, server, (char *)NULL);
        _exit(127);
    }
    close(fd);
    int64_t deadline = llw_now_ms() + 180000;
    int st = 0, rc = -1;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            break;
        }
        if (r < 0 && errno != EINTR)
            break;
        if (llw_now_ms() >= deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            fprintf(stderr, "ops/stack %s %s: killed after 180 s\n", cmd, server);
            break;
        }
        llw_sleep_ms(50);
    }
    FILE *f = fopen(path, "r");
    char *text = calloc(1, 65536);
    if (f && text) {
        size_t n = fread(text, 1, 65535, f);
        text[n] = '\0';
    }
    if (f)
        fclose(f);
    unlink(path);
    if (rc != 0 && text && strcmp(cmd, "status") != 0)
        fprintf(stderr, "ops/stack --name %s %s %s exited %d:\n%s\n", name, cmd, server, rc, text);
    if (out)
        *out = text;
    else
        free(text);
    return rc;
}

int llw_stack(const char *cmd, const char *server)
{
    return stack_run(llt_env("LEDGERLINE_STACK_NAME"), cmd, server, NULL);
}

static bool stack_is_up(const char *name, const char *server)
{
    char *out = NULL;
    stack_run(name, "status", "", &out);
    bool up = false;
    size_t len = strlen(server);
    for (char *line = out; line && *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, server, len) == 0 && line[len] == ' ') {
            char *w = line + len;
            while (*w == ' ')
                w++;
            up = strncmp(w, "up", 2) == 0 && (w[2] == ' ' || w[2] == '\n' || w[2] == '\0');
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(out);
    return up;
}

bool llw_stack_is_up(const char *server)
{
    return stack_is_up(llt_env("LEDGERLINE_STACK_NAME"), server);
}

void llw_stack_restore(void)
{
    static const char *const servers[] = {"postgres", "redis", "rabbitmq"};
    const char *name = getenv("LEDGERLINE_STACK_NAME");
    if (!name || !*name)
        return;
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++) {
        if (stack_is_up(name, servers[i]))
            continue;
        fprintf(stderr, "restoring %s of stack %s\n", servers[i], name);
        stack_run(name, "start-one", servers[i], NULL);
    }
}

kv_t *llw_kv(void)
{
    char *pw = llt_secret("LEDGERLINE_REDIS_PASSWORD");
    const char *db = getenv("LEDGERLINE_REDIS_DB");
    kv_t *kv = NULL;
    int rc = kv_open(&kv, llt_env("LEDGERLINE_REDIS_HOST"), atoi(llt_env("LEDGERLINE_REDIS_PORT")),
                     pw, db && *db ? atoi(db) : 0, 2000, NULL);
    free(pw);
    ck_assert_msg(rc == LL_OK, "kv_open: %s", ll_errname(rc));
    return kv;
}

void llw_redis_key(char *out, size_t n, db_t *db, const char *stage, const char *payment_id)
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

/* ---- the ledger ------------------------------------------------------- */

void llw_ctl(const char *dbname, const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, dbname, "%s", args);
    ck_assert_msg(rc == 0, "ledgerctl %s exited %d: %s%s", args, rc, out, err);
    free(out);
    free(err);
}

void llw_accounts_create(const char *dbname, const llw_account_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        llw_ctl(dbname, "account create %s --currency %s --overdraft %lld", a[i].id, a[i].currency,
                (long long)a[i].overdraft);
        if (a[i].balance > 0)
            llw_ctl(dbname, "account fund %s %lld --ref fund-%s", a[i].id, (long long)a[i].balance,
                    a[i].id);
        if (a[i].frozen)
            llw_ctl(dbname, "account freeze %s", a[i].id);
    }
}

llw_account_t *llw_model_find(llw_account_t *accts, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(accts[i].id, id) == 0)
            return &accts[i];
    return NULL;
}

const char *llw_model_apply(llw_account_t *accts, size_t n, const msg_payment_t *p)
{
    llw_account_t *d = llw_model_find(accts, n, p->payer);
    llw_account_t *c = llw_model_find(accts, n, p->payee);
    if (!d || !c)
        return "unknown_account";
    if (d->frozen || c->frozen)
        return "account_frozen";
    if (strcmp(d->currency, p->currency) != 0 || strcmp(c->currency, p->currency) != 0)
        return "currency_mismatch";
    int64_t nd, nc;
    if (__builtin_sub_overflow(d->balance, p->amount, &nd))
        return "overflow";
    if (nd < -d->overdraft)
        return "insufficient_funds";
    if (__builtin_add_overflow(c->balance, p->amount, &nc))
        return "overflow";
    d->balance = nd;
    c->balance = nc;
    return "completed";
}

int64_t llw_balance(db_t *db, const char *id)
{
    PGresult *r = NULL;
    const char *params[] = {id};
    int rc = db_query(db, &r, "SELECT balance FROM accounts WHERE id = $1", 1, params);
    ck_assert_msg(rc == LL_OK, "balance of %s: %s", id, db_errstr(db));
    ck_assert_msg(PQntuples(r) == 1, "no account %s", id);
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

void llw_assert_verify(const char *dbname)
{
    char *out = NULL, *err = NULL;
    int rc = llt_ctl(&out, &err, dbname, "verify");
    LLW_ASSERT(rc == 0, "ledgerctl verify exited %d:\n%s%s", rc, out, err);
    free(out);
    free(err);
}

int64_t llw_count(db_t *db, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return llt_scalar(db, sql);
}

bool llw_try_scalar(db_t *db, const char *sql, int64_t *out)
{
    if (!db_is_up(db) && db_connect(db) != LL_OK)
        return false;
    PGresult *r = NULL;
    if (db_query(db, &r, sql, 0, NULL) != LL_OK) {
        if (db_connect(db) != LL_OK)
            db_close(db);
        return false;
    }
    bool ok = PQntuples(r) >= 1 && !PQgetisnull(r, 0, 0);
    if (ok)
        *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return ok;
}

char *llw_text(db_t *db, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = NULL;
    int rc = db_query(db, &r, sql, 0, NULL);
    LLW_ASSERT(rc == LL_OK, "%s: %s", sql, db_errstr(db));
    char *v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    return v;
}

msg_payment_t llw_payment(const char *ledger, const char *tag, const char *payer, const char *payee,
                          int64_t amount, const char *currency)
{
    msg_payment_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.payment_id, sizeof p.payment_id, "%s-%s", ledger, tag);
    snprintf(p.payer, sizeof p.payer, "%s", payer);
    snprintf(p.payee, sizeof p.payee, "%s", payee);
    p.amount = amount;
    snprintf(p.currency, sizeof p.currency, "%s", currency);
    return p;
}

/* ---- the common fixture of the worker suites --------------------------- */

const char *const llw_payment_queues[] = {"payments",          "payments.dead",      "settlement",
                                          "payments.retry.1s", "payments.retry.30s", NULL};

void llw_fixture_up(llw_fixture_t *f, const char *const *purge)
{
    f->ledger = llt_ledger(); /* first: fails with advice when the stack's env is missing */
    llw_ctl(NULL, "topology apply");
    f->db = llt_db(f->ledger);
    f->m = llt_mq();
    llw_purge(f->m, purge);
    f->ev = llw_events_open(NULL);
}

void llw_fixture_down(llw_fixture_t *f)
{
    llw_kill_all();
    llw_events_close(f->ev);
    mq_free(f->m);
    db_free(f->db);
    if (f->ledger)
        llt_dropdb(f->ledger);
    free(f->ledger);
    memset(f, 0, sizeof *f);
}
