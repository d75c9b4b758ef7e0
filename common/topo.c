/*
 * topo.c - parse schemas/topology.yaml (libyaml document API) and declare
 * it: see topo.h and the comment at the top of topology.yaml for what each
 * queue class adds.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "embed.h"
#include "topo.h"
#include "xmalloc.h"

static const char *const exchange_types[] = {
    "topic", "direct", "fanout", "headers", "x-consistent-hash", NULL};
static const char *const class_names[] = {
    [TOPO_WORK] = "work", [TOPO_DEAD] = "dead", [TOPO_RETRY] = "retry", [TOPO_AUDIT] = "audit"};

const char *topo_class_name(topo_class_t c)
{
    return (unsigned)c < sizeof class_names / sizeof class_names[0] ? class_names[c] : "?";
}

void topo_free(topo_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nex; i++) {
        free(t->ex[i].name);
        free(t->ex[i].type);
    }
    for (size_t i = 0; i < t->nq; i++) {
        topo_queue_t *q = &t->q[i];
        for (size_t j = 0; j < q->nbinds; j++) {
            free(q->binds[j].exchange);
            free(q->binds[j].key);
        }
        free(q->binds);
        free(q->name);
        free(q->retry_to);
    }
    free(t->ex);
    free(t->q);
    free(t);
}

/* --- parsing --------------------------------------------------------------- */

typedef struct parse {
    yaml_document_t doc;
    char *err;
    size_t errlen;
} parse_t;

static int perr(parse_t *p, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int perr(parse_t *p, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "topology.yaml line %d: %s", n ? (int)n->start_mark.line + 1 : 0,
             msg);
    return LL_ECONFIG;
}

static yaml_node_t *node(parse_t *p, int id)
{
    return yaml_document_get_node(&p->doc, id);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Fetches the scalar value of `key` in mapping m; NULL if absent. */
static yaml_node_t *map_get(parse_t *p, yaml_node_t *m, const char *key)
{
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        const char *k = scalar(node(p, pr->key));
        if (k && strcmp(k, key) == 0)
            return node(p, pr->value);
    }
    return NULL;
}

/* Every key of mapping m must be one of `allowed`. */
static int map_check(parse_t *p, yaml_node_t *m, const char *const *allowed, const char *what)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return perr(p, m, "%s must be a mapping", what);
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = node(p, pr->key);
        const char *k = scalar(kn);
        int ok = 0;
        for (const char *const *a = allowed; k && *a; a++)
            ok |= strcmp(k, *a) == 0;
        if (!ok) {
            char msg[120];
            snprintf(msg, sizeof msg, "unknown key '%s' in %s", k ? k : "?", what);
            return perr(p, kn, "%s", msg);
        }
    }
    return LL_OK;
}

static int req_str(parse_t *p, yaml_node_t *m, const char *key, const char *what, char **out)
{
    yaml_node_t *v = map_get(p, m, key);
    const char *s = scalar(v);
    if (!s || !*s) {
        char msg[120];
        snprintf(msg, sizeof msg, "%s needs a non-empty '%s'", what, key);
        return perr(p, v ? v : m, "%s", msg);
    }
    *out = ll_xstrdup(s);
    return LL_OK;
}

static int parse_binds(parse_t *p, yaml_node_t *qn, topo_queue_t *q)
{
    yaml_node_t *b = map_get(p, qn, "bind");
    if (!b)
        return perr(p, qn, "queue '%s' has no 'bind' list", q->name);
    if (b->type != YAML_SEQUENCE_NODE)
        return perr(p, b, "'bind' of queue '%s' must be a list", q->name);
    size_t n = (size_t)(b->data.sequence.items.top - b->data.sequence.items.start);
    q->binds = ll_xcalloc(n ? n : 1, sizeof *q->binds);
    static const char *const keys[] = {"exchange", "key", NULL};
    for (yaml_node_item_t *it = b->data.sequence.items.start; it < b->data.sequence.items.top;
         it++) {
        yaml_node_t *bn = node(p, *it);
        int rc = map_check(p, bn, keys, "a binding");
        if (rc)
            return rc;
        topo_bind_t *bd = &q->binds[q->nbinds++];
        if ((rc = req_str(p, bn, "exchange", "a binding", &bd->exchange)) ||
            (rc = req_str(p, bn, "key", "a binding", &bd->key)))
            return rc;
    }
    return LL_OK;
}

static int parse_queue(parse_t *p, yaml_node_t *qn, topo_queue_t *q)
{
    static const char *const keys[] = {"name", "class", "bind", "ttl_ms", "retry_to", NULL};
    int rc = map_check(p, qn, keys, "a queue");
    if (rc || (rc = req_str(p, qn, "name", "a queue", &q->name)))
        return rc;
    yaml_node_t *cn = map_get(p, qn, "class");
    const char *c = scalar(cn);
    if (!c)
        return perr(p, qn, "queue '%s' needs a 'class' (work, dead, retry or audit)", q->name);
    if (strcmp(c, "work") == 0)
        q->cls = TOPO_WORK;
    else if (strcmp(c, "dead") == 0)
        q->cls = TOPO_DEAD;
    else if (strcmp(c, "retry") == 0)
        q->cls = TOPO_RETRY;
    else if (strcmp(c, "audit") == 0)
        q->cls = TOPO_AUDIT;
    else
        return perr(p, cn, "class '%s' is not one of work, dead, retry, audit", c);
    if (q->cls == TOPO_RETRY) {
        yaml_node_t *tn = map_get(p, qn, "ttl_ms");
        const char *t = scalar(tn);
        char *end = NULL;
        long long v = t ? strtoll(t, &end, 10) : 0;
        if (!t || *end || v <= 0 || v > 86400000)
            return perr(p, tn ? tn : qn, "retry queue '%s' needs ttl_ms in 1..86400000", q->name);
        q->ttl_ms = v;
        if ((rc = req_str(p, qn, "retry_to", "a retry queue", &q->retry_to)))
            return rc;
    } else if (map_get(p, qn, "ttl_ms") || map_get(p, qn, "retry_to")) {
        return perr(p, qn, "ttl_ms and retry_to are for retry queues only (queue '%s')", q->name);
    }
    return parse_binds(p, qn, q);
}

static int parse_exchange(parse_t *p, yaml_node_t *en, topo_exchange_t *e)
{
    static const char *const keys[] = {"name", "type", NULL};
    int rc = map_check(p, en, keys, "an exchange");
    if (rc || (rc = req_str(p, en, "name", "an exchange", &e->name)) ||
        (rc = req_str(p, en, "type", "an exchange", &e->type)))
        return rc;
    for (const char *const *t = exchange_types; *t; t++)
        if (strcmp(*t, e->type) == 0)
            return LL_OK;
    return perr(p, map_get(p, en, "type"), "exchange type '%s' is not supported", e->type);
}

/* Cross-references: bindings name declared exchanges, retry_to names a work
 * queue, names are unique. */
static int topo_validate(const topo_t *t, char *err, size_t errlen)
{
    for (size_t i = 0; i < t->nq; i++) {
        const topo_queue_t *q = &t->q[i];
        for (size_t j = 0; j < i; j++)
            if (strcmp(t->q[j].name, q->name) == 0) {
                snprintf(err, errlen, "topology.yaml: queue '%s' is declared twice", q->name);
                return LL_ECONFIG;
            }
        for (size_t b = 0; b < q->nbinds; b++) {
            size_t k = 0;
            while (k < t->nex && strcmp(t->ex[k].name, q->binds[b].exchange) != 0)
                k++;
            if (k == t->nex) {
                snprintf(err, errlen,
                         "topology.yaml: queue '%s' binds to exchange '%s', which is not "
                         "declared under 'exchanges'",
                         q->name, q->binds[b].exchange);
                return LL_ECONFIG;
            }
        }
        if (q->cls == TOPO_RETRY) {
            const topo_queue_t *to = topo_find_queue(t, q->retry_to);
            if (!to || to->cls != TOPO_WORK) {
                snprintf(err, errlen,
                         "topology.yaml: retry queue '%s' feeds '%s', which is not a work queue",
                         q->name, q->retry_to);
                return LL_ECONFIG;
            }
        }
    }
    return LL_OK;
}

int topo_parse(topo_t **out, const char *yaml, size_t len, char *err, size_t errlen)
{
    *out = NULL;
    parse_t p = {.err = err, .errlen = errlen};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "out of memory");
        return LL_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &p.doc)) {
        snprintf(err, errlen, "topology.yaml line %d: %s", (int)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        return LL_ECONFIG;
    }
    yaml_parser_delete(&parser);

    topo_t *t = ll_xcalloc(1, sizeof *t);
    int rc = LL_OK;
    yaml_node_t *root = yaml_document_get_root_node(&p.doc);
    static const char *const top_keys[] = {"version", "exchanges", "queues", NULL};
    if (!root) {
        rc = perr(&p, NULL, "%s", "the document is empty");
        goto fail;
    }
    if ((rc = map_check(&p, root, top_keys, "the top level")))
        goto fail;
    const char *ver = scalar(map_get(&p, root, "version"));
    if (!ver || strcmp(ver, "1") != 0) {
        rc = perr(&p, root, "%s", "'version: 1' is required");
        goto fail;
    }
    yaml_node_t *exs = map_get(&p, root, "exchanges");
    yaml_node_t *qs = map_get(&p, root, "queues");
    if (!exs || exs->type != YAML_SEQUENCE_NODE || !qs || qs->type != YAML_SEQUENCE_NODE) {
        rc = perr(&p, root, "%s", "'exchanges' and 'queues' must both be lists");
        goto fail;
    }
    size_t nex = (size_t)(exs->data.sequence.items.top - exs->data.sequence.items.start);
    size_t nq = (size_t)(qs->data.sequence.items.top - qs->data.sequence.items.start);
    t->ex = ll_xcalloc(nex ? nex : 1, sizeof *t->ex);
    t->q = ll_xcalloc(nq ? nq : 1, sizeof *t->q);
    for (yaml_node_item_t *it = exs->data.sequence.items.start; it < exs->data.sequence.items.top;
         it++)
        if ((rc = parse_exchange(&p, node(&p, *it), &t->ex[t->nex++])))
            goto fail;
    for (yaml_node_item_t *it = qs->data.sequence.items.start; it < qs->data.sequence.items.top;
         it++)
        if ((rc = parse_queue(&p, node(&p, *it), &t->q[t->nq++])))
            goto fail;
    if ((rc = topo_validate(t, err, errlen)))
        goto fail;
    yaml_document_delete(&p.doc);
    *out = t;
    return LL_OK;
fail:
    yaml_document_delete(&p.doc);
    topo_free(t);
    return rc;
}

int topo_load_builtin(topo_t **out, char *err, size_t errlen)
{
    const embed_file_t *f = embed_find("topology.yaml");
    if (!f) {
        *out = NULL;
        snprintf(err, errlen, "topology.yaml is not compiled into this binary (build bug)");
        return LL_ECONFIG;
    }
    return topo_parse(out, f->data, f->len, err, errlen);
}

const topo_queue_t *topo_find_queue(const topo_t *t, const char *name)
{
    for (size_t i = 0; i < t->nq; i++)
        if (strcmp(t->q[i].name, name) == 0)
            return &t->q[i];
    return NULL;
}

/* --- declaring ----------------------------------------------------------- */

static void arg_str(amqp_table_entry_t *e, const char *k, const char *v)
{
    e->key = amqp_cstring_bytes(k);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(v);
}

static void arg_int(amqp_table_entry_t *e, const char *k, int64_t v)
{
    e->key = amqp_cstring_bytes(k);
    e->value.kind = AMQP_FIELD_KIND_I64;
    e->value.value.i64 = v;
}

/* The arguments a queue of class `q->cls` is declared with. */
static int queue_args(const topo_queue_t *q, const topo_params_t *p, amqp_table_entry_t *e)
{
    int n = 0;
    switch (q->cls) {
    case TOPO_WORK:
        arg_str(&e[n++], "x-queue-type", p->quorum ? "quorum" : "classic");
        arg_str(&e[n++], "x-dead-letter-exchange", "ledgerline.dead");
        arg_str(&e[n++], "x-dead-letter-routing-key", q->name);
        if (p->quorum)
            arg_int(&e[n++], "x-delivery-limit", p->delivery_limit);
        break;
    case TOPO_DEAD:
        arg_str(&e[n++], "x-queue-type", p->quorum ? "quorum" : "classic");
        break;
    case TOPO_AUDIT: /* a view for operators: classic, no dead-lettering */
        arg_str(&e[n++], "x-queue-type", "classic");
        break;
    case TOPO_RETRY:
        arg_str(&e[n++], "x-queue-type", "classic");
        arg_int(&e[n++], "x-message-ttl", q->ttl_ms);
        arg_str(&e[n++], "x-dead-letter-exchange", "");
        arg_str(&e[n++], "x-dead-letter-routing-key", q->retry_to);
        break;
    }
    return n;
}

int topo_apply(const topo_t *t, mq_t *m, const topo_params_t *p, topo_report_fn *report, void *ud,
               char *err, size_t errlen)
{
    int rc;
    for (size_t i = 0; i < t->nex; i++) {
        if ((rc = mq_declare_exchange(m, t->ex[i].name, t->ex[i].type)) != LL_OK) {
            snprintf(err, errlen,
                     "%s; fix: delete the exchange '%s' (it exists with another type) or "
                     "restore topology.yaml",
                     mq_errstr(m), t->ex[i].name);
            return rc;
        }
        if (report)
            report(ud, "exchange", t->ex[i].name);
    }
    for (size_t i = 0; i < t->nq; i++) {
        const topo_queue_t *q = &t->q[i];
        amqp_table_entry_t e[8];
        amqp_table_t args = {.num_entries = queue_args(q, p, e), .entries = e};
        if ((rc = mq_declare_queue(m, q->name, &args)) != LL_OK) {
            if (rc == LL_EPROTO)
                snprintf(err, errlen,
                         "%s; fix: queue '%s' already exists with other arguments: set "
                         "amqp.queue_type / amqp.delivery_limit to match it, or drain and delete "
                         "the queue, then apply again",
                         mq_errstr(m), q->name);
            else
                snprintf(err, errlen, "%s", mq_errstr(m));
            return rc;
        }
        if (report)
            report(ud, "queue", q->name);
        for (size_t b = 0; b < q->nbinds; b++) {
            if ((rc = mq_bind(m, q->name, q->binds[b].exchange, q->binds[b].key)) != LL_OK) {
                snprintf(err, errlen, "%s", mq_errstr(m));
                return rc;
            }
            if (report) {
                char what[256];
                snprintf(what, sizeof what, "%s <- %s [%s]", q->name, q->binds[b].exchange,
                         q->binds[b].key);
                report(ud, "binding", what);
            }
        }
    }
    return LL_OK;
}
