/*
 * ll_http.c - see ll_http.h. libcurl for the GETs.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ll_http.h"
#include "ll_proc.h"
#include "ll_wait.h"
#include "sbuf.h"

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    sbuf_add(ud, p, size * n);
    return size * n;
}

int llh_get(int port, const char *path, char **body)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    ck_assert_msg(c, "curl_easy_init failed");
    sbuf_t b;
    sbuf_init(&b, 4096);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    char *text = sbuf_take(&b);
    if (body)
        *body = text;
    else
        free(text);
    return (int)status;
}

int llh_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(fd >= 0, "socket failed");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                      getsockname(fd, (struct sockaddr *)&a, &len) == 0,
                  "cannot find a free port");
    close(fd);
    return ntohs(a.sin_port);
}

double llh_metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

typedef struct {
    int port;
    const char *path;
    int want, last;
} status_cond_t;

static bool status_is(void *ud, char *seen, size_t seenlen)
{
    status_cond_t *c = ud;
    c->last = llh_get(c->port, c->path, NULL);
    snprintf(seen, seenlen, "HTTP %d", c->last);
    return c->last == c->want;
}

void llh_wait_status(int port, const char *path, int status, int timeout_ms)
{
    status_cond_t c = {port, path, status, 0};
    char what[128];
    snprintf(what, sizeof what, "GET :%d%s answering %d", port, path, status);
    llw_wait_until(status_is, &c, timeout_ms, what);
}
