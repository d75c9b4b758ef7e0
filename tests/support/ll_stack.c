/*
 * ll_stack.c - the stack's servers under a fault test: see ll_stack.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ll_stack.h"
#include "ll_test.h"
#include "ll_wait.h"

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
