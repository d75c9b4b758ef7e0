/*
 * mgmt.c - the RabbitMQ management API client of ledgerctl: see mgmt.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "mgmt.h"
#include "sbuf.h"
#include "xmalloc.h"

struct mgmt {
    CURL *curl;
    char *url;   /* base, no trailing slash */
    char *shown; /* url without any user:password@, for messages */
    char *user;
    char *password;
    int connect_timeout_ms;
    int timeout_ms;
    long http_status;
    char errstr[512];
    char fix[640];
};

mgmt_t *mgmt_new(const char *url, const char *user, const char *password, int connect_timeout_ms,
                 int timeout_ms)
{
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "ledgerctl: libcurl could not be initialised\n");
            abort();
        }
        curl_ready = 1;
    }
    mgmt_t *m = ll_xcalloc(1, sizeof *m);
    m->url = ll_xstrdup(url ? url : "");
    size_t n = strlen(m->url);
    while (n > 0 && m->url[n - 1] == '/')
        m->url[--n] = '\0';
    /* never show a password written into the URL */
    const char *scheme = strstr(m->url, "://");
    const char *host = scheme ? scheme + 3 : m->url;
    const char *at = strchr(host, '@');
    const char *slash = strchr(host, '/');
    if (at && (!slash || at < slash))
        m->shown = ll_xasprintf("%.*s%s", (int)(host - m->url), m->url, at + 1);
    else
        m->shown = ll_xstrdup(m->url);
    m->user = ll_xstrdup(user ? user : "");
    m->password = ll_xstrdup(password ? password : "");
    m->connect_timeout_ms = connect_timeout_ms > 0 ? connect_timeout_ms : 5000;
    m->timeout_ms = timeout_ms > 0 ? timeout_ms : 15000;
    m->curl = curl_easy_init();
    if (!m->curl) {
        fprintf(stderr, "ledgerctl: libcurl could not create a handle\n");
        abort();
    }
    return m;
}

mgmt_t *mgmt_open(const settings_t *s)
{
    int ct = (int)s->amqp.connect_timeout_ms;
    return mgmt_new(s->amqp.management_url, s->amqp.user, s->amqp.password, ct, ct + 10000);
}

void mgmt_free(mgmt_t *m)
{
    if (!m)
        return;
    if (m->curl)
        curl_easy_cleanup(m->curl);
    free(m->url);
    free(m->shown);
    free(m->user);
    if (m->password) {
        memset(m->password, 0, strlen(m->password));
        free(m->password);
    }
    free(m);
}

const char *mgmt_errstr(const mgmt_t *m)
{
    return m->errstr;
}

const char *mgmt_fix(const mgmt_t *m)
{
    return m->fix;
}

long mgmt_http_status(const mgmt_t *m)
{
    return m->http_status;
}

const char *mgmt_url(const mgmt_t *m)
{
    return m->shown;
}

int mgmt_escape(const char *in, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (k + need >= n) {
            if (n)
                out[0] = '\0';
            return LL_ERANGE;
        }
        if (plain) {
            out[k++] = (char)*p;
        } else {
            out[k++] = '%';
            out[k++] = hex[*p >> 4];
            out[k++] = hex[*p & 15];
        }
    }
    if (k >= n)
        return LL_ERANGE;
    out[k] = '\0';
    return LL_OK;
}

static void set_err(mgmt_t *m, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(mgmt_t *m, const char *fix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->errstr, sizeof m->errstr, fmt, ap);
    va_end(ap);
    snprintf(m->fix, sizeof m->fix, "%s", fix);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    sbuf_t *b = ud;
    if (b->len + size * nmemb > 64u * 1024 * 1024)
        return 0; /* no management answer is this big: stop reading */
    sbuf_add(b, data, size * nmemb);
    return size * nmemb;
}

/* The "reason" (or "error") of an error answer, for the message. */
static void error_reason(const char *body, char *out, size_t n)
{
    out[0] = '\0';
    json_t *j = json_loads(body, 0, NULL);
    const char *r = NULL;
    if (json_is_object(j)) {
        r = json_string_value(json_object_get(j, "reason"));
        if (!r)
            r = json_string_value(json_object_get(j, "error"));
    }
    if (r)
        snprintf(out, n, ": %s", r);
    else if (body[0] && !j)
        snprintf(out, n, ": %.120s", body);
    json_decref(j);
}

/* One request; the answer's body into *body (caller frees) on LL_OK. */
static int request(mgmt_t *m, const char *method, const char *path, const char *send, char **body)
{
    m->errstr[0] = m->fix[0] = '\0';
    m->http_status = 0;
    *body = NULL;
    char *url = ll_xasprintf("%s%s", m->url, path);
    char *shown = ll_xasprintf("%s%s", m->shown, path);
    sbuf_t in;
    sbuf_init(&in, 4096);
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (send)
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
    char cerr[CURL_ERROR_SIZE] = "";

    CURL *c = m->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, m->user);
    curl_easy_setopt(c, CURLOPT_PASSWORD, m->password);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)m->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)m->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &in);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ledgerctl");
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (send) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, send);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(send));
    }
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(hdr);
    char *text = sbuf_take(&in);
    sbuf_free(&in);
    int rc = LL_OK;
    static const char reach_fix[] =
        "is the management plugin enabled (rabbitmq-plugins enable rabbitmq_management) and "
        "listening there? Point amqp.management_url (LEDGERLINE_AMQP_MANAGEMENT_URL) at it, "
        "e.g. http://<broker host>:15672 (`./ops/stack env` prints a local stack's management "
        "port): the management port, not the AMQP or Prometheus one";
    if (cc != CURLE_OK) {
        const char *why = cerr[0] ? cerr : curl_easy_strerror(cc);
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            rc = LL_ETIMEOUT;
            set_err(m,
                    "check the broker's load and alarms (its log); and that "
                    "amqp.management_url (LEDGERLINE_AMQP_MANAGEMENT_URL) is the management port",
                    "RabbitMQ management API %s %s did not answer in time: %s", method, shown, why);
        } else {
            rc = LL_ECONN;
            set_err(m, reach_fix, "cannot reach the RabbitMQ management API at %s: %s", shown, why);
        }
        goto done;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &m->http_status);
    char reason[200];
    error_reason(text, reason, sizeof reason);
    long st = m->http_status;
    if (st == 401) {
        rc = LL_ECONFIG;
        char fix[400];
        snprintf(fix, sizeof fix,
                 "check amqp.user and amqp.password (the same as for AMQP); the user also needs "
                 "a management tag: `rabbitmqctl set_user_tags %s administrator` (or monitoring "
                 "plus policymaker)",
                 m->user);
        set_err(m, fix, "the RabbitMQ management API at %s refused user '%s' (HTTP 401%s)", shown,
                m->user, reason);
    } else if (st == 403) {
        rc = LL_ECONFIG;
        set_err(m,
                "give the user the policymaker or administrator tag and permissions on "
                "amqp.vhost (rabbitmqctl set_user_tags / set_permissions)",
                "the RabbitMQ management API refused %s %s to user '%s' (HTTP 403%s)", method,
                shown, m->user, reason);
    } else if (st == 404) {
        rc = LL_ENOTFOUND;
        set_err(m,
                "check amqp.vhost and that the topology is declared (ledgerctl topology apply); "
                "if every path is 404, amqp.management_url is not the management API",
                "%s %s: not found (HTTP 404%s)", method, shown, reason);
    } else if (st < 200 || st >= 300) {
        rc = LL_EPROTO;
        set_err(m, "read the broker's log; check amqp.management_url",
                "RabbitMQ management API %s %s answered HTTP %ld%s", method, shown, st, reason);
    }
done:
    free(url);
    free(shown);
    if (rc == LL_OK)
        *body = text;
    else
        free(text);
    return rc;
}

int mgmt_get(mgmt_t *m, const char *path, json_t **out)
{
    *out = NULL;
    char *body;
    int rc = request(m, "GET", path, NULL, &body);
    if (rc != LL_OK)
        return rc;
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    if (!j) {
        set_err(m,
                "point amqp.management_url (LEDGERLINE_AMQP_MANAGEMENT_URL) at the management "
                "API (http://<broker host>:15672), not at another service",
                "the answer of %s%s is not JSON (%s): is it the RabbitMQ management API?", m->shown,
                path, je.text);
        free(body);
        return LL_EPROTO;
    }
    free(body);
    *out = j;
    return LL_OK;
}

int mgmt_put(mgmt_t *m, const char *path, const json_t *body)
{
    char *send = json_dumps(body, JSON_COMPACT);
    if (!send) {
        set_err(m, "", "cannot encode the request to %s%s", m->shown, path);
        return LL_EINVAL;
    }
    char *ans;
    int rc = request(m, "PUT", path, send, &ans);
    free(send);
    free(ans);
    return rc;
}

int mgmt_delete(mgmt_t *m, const char *path)
{
    char *ans;
    int rc = request(m, "DELETE", path, NULL, &ans);
    free(ans);
    return rc;
}
