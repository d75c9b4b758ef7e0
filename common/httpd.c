/*
 * httpd.c - see httpd.h. The listening socket is made here (so a port in
 * use is reported with its errno) and handed to libmicrohttpd, which runs
 * its own polling thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"
#include "xmalloc.h"

#define HTTPD_CONN_LIMIT   32
#define HTTPD_CONN_TIMEOUT 10 /* seconds */

#if MHD_VERSION < 0x00097002
typedef int mhd_result_t;
#else
typedef enum MHD_Result mhd_result_t;
#endif

struct httpd {
    struct MHD_Daemon *d;
    int fd;
    int port;
    httpd_handler_fn *fn;
    void *ud;
};

static mhd_result_t answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                           const char *version, const char *upload, size_t *upload_size,
                           void **state)
{
    (void)version, (void)upload, (void)upload_size, (void)state;
    httpd_t *h = cls;
    httpd_reply_t r = {.status = 200, .content_type = "text/plain; charset=utf-8", .body = NULL};
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        r.status = 405;
        r.body = ll_xstrdup("only GET and HEAD\n");
    } else {
        h->fn(h->ud, url, &r);
        if (!r.body)
            r.body = ll_xstrdup("");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(r.body), r.body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r.body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", r.content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r.status == 405)
        MHD_add_response_header(resp, "Allow", "GET, HEAD");
    mhd_result_t rc = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return rc;
}

int httpd_start(httpd_t **out, const char *address, int port, httpd_handler_fn *fn, void *ud,
                char *err, size_t errlen)
{
    *out = NULL;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (port < 0 || port > 65535) {
        snprintf(err, errlen, "http.port %d is not a port (0..65535)", port);
        return LL_ECONFIG;
    }
    if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        sl = sizeof *v4;
    } else if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        sl = sizeof *v6;
    } else {
        snprintf(err, errlen,
                 "http.address '%s' is not an IPv4 or IPv6 address (use 127.0.0.1, or 0.0.0.0 "
                 "in a container)",
                 address);
        return LL_ECONFIG;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 16) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "cannot listen on %s:%d for /healthz, /readyz, /metrics: %s%s",
                 address, port, strerror(e),
                 e == EADDRINUSE ? " (another process, perhaps another replica on this host, has "
                                   "it: give each its own http.port, or 0 to turn them off)"
                                 : "");
        return LL_ECONFIG;
    }
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    httpd_t *h = ll_xcalloc(1, sizeof *h);
    h->fd = fd;
    h->port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    h->fn = fn;
    h->ud = ud;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, answer, h, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_CONN_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_CONN_TIMEOUT,
                            MHD_OPTION_END);
    if (!h->d) {
        close(fd);
        free(h);
        snprintf(err, errlen, "cannot start the HTTP server on %s:%d (libmicrohttpd refused)",
                 address, port);
        return LL_ECONFIG;
    }
    *out = h;
    return LL_OK;
}

int httpd_port(const httpd_t *h)
{
    return h ? h->port : 0;
}

void httpd_stop(httpd_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d); /* closes the listening socket too */
    free(h);
}
