/*
 * status.c - the state of `ledgerctl status` kept between --watch rounds
 * (its init and free), the round's problems, and reading the round's
 * document: see status.h.
 *
 * Public API: status_init, status_free, status__need, status__jnum,
 * status__jstr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

int status_init(status_t *s, ctl_t *c, double outbox_age_s)
{
    *s = (status_t){.c = c, .outbox_age_s = outbox_age_s};
    char err[512];
    if (topo_load_builtin(&s->t, err, sizeof err) != LL_OK)
        return ctl_fail("rebuild from a valid schemas/topology.yaml", "%s", err);
    if (mgmt_escape(c->cfg.amqp.vhost, s->vhost, sizeof s->vhost) != LL_OK) {
        topo_free(s->t);
        return ctl_fail("use a shorter amqp.vhost", "amqp.vhost is too long");
    }
    s->dead = calloc(s->t->nq, sizeof *s->dead);
    if (!s->dead)
        abort();
    for (size_t i = 0; i < s->t->nq; i++)
        s->dead[i].depth = -1;
    s->mg = mgmt_open(&c->cfg);
    return 0;
}

void status_free(status_t *s)
{
    if (s->dead)
        for (size_t i = 0; i < s->t->nq; i++)
            json_decref(s->dead[i].reasons);
    free(s->dead);
    db_free(s->db);
    mq_free(s->mq);
    mgmt_free(s->mg);
    kv_free(s->kv);
    topo_free(s->t);
}

void status__need(status_t *s, const char *what, const char *fix, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(s->problems,
                          json_pack("{s:s, s:s, s:s}", "what", what, "problem", msg, "fix", fix));
}

bool status__jnum(const json_t *o, const char *path, double *out)
{
    char key[64];
    const char *p = path;
    while (o) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key)
            return false;
        memcpy(key, p, n);
        key[n] = '\0';
        o = json_object_get(o, key);
        if (!dot)
            break;
        p = dot + 1;
    }
    if (!json_is_number(o))
        return false;
    *out = json_number_value(o);
    return true;
}

const char *status__jstr(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}
