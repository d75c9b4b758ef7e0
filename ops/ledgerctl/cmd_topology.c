/*
 * cmd_topology.c - `ledgerctl topology apply`: declare schemas/topology.yaml
 * over AMQP, then set the length-limit policies of the dead and audit
 * queues through the management API (docs/contract.md, "Bindings and
 * routing keys"): policies, not queue arguments, so a limit can change
 * without redeclaring a queue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "mgmt.h"
#include "topo.h"

/* RabbitMQ applies one policy per queue, the one of highest priority: ours
 * win over a catch-all policy of lower priority. */
#define TOPOLOGY_POLICY_PRIORITY 10

typedef struct counts {
    int exchanges, queues, bindings;
    json_t *list;
} counts_t;

static void on_declared(void *ud, const char *what, const char *name)
{
    counts_t *n = ud;
    if (strcmp(what, "exchange") == 0)
        n->exchanges++;
    else if (strcmp(what, "queue") == 0)
        n->queues++;
    else
        n->bindings++;
    if (n->list)
        json_array_append_new(n->list, json_pack("{s:s, s:s}", "kind", what, "name", name));
}

/* The policies Ledgerline owns, from the settings: a new array of
 * {name, pattern, apply-to, priority, definition}. */
static json_t *wanted_policies(const settings_t *s)
{
    return json_pack(
        "[{s:s, s:s, s:s, s:i, s:{s:I, s:s}}, {s:s, s:s, s:s, s:i, s:{s:I, s:s}}]", "name",
        "ledgerline-dead", "pattern", "^(risk|payments|settlement|refunds|funds)\\.dead$",
        "apply-to", "queues", "priority", TOPOLOGY_POLICY_PRIORITY, "definition", "max-length",
        (json_int_t)s->amqp.dead_max_length, "overflow",
        settings_overflow_names[s->amqp.dead_overflow], "name", "ledgerline-audit", "pattern",
        "^events\\.audit$", "apply-to", "queues", "priority", TOPOLOGY_POLICY_PRIORITY,
        "definition", "max-length", (json_int_t)s->amqp.audit_max_length, "overflow", "drop-head");
}

/* PUTs each policy of `want`, then reads it back and checks the broker
 * holds that definition. LL_OK, or the mgmt error printed with its fix. */
static int set_policies(ctl_t *c, const json_t *want)
{
    char vhost[256];
    if (mgmt_escape(c->cfg.amqp.vhost, vhost, sizeof vhost) != LL_OK)
        return ctl_fail("use a shorter amqp.vhost", "amqp.vhost is too long");
    mgmt_t *mg = mgmt_open(&c->cfg);
    int rc = 0;
    size_t i;
    json_t *p;
    json_array_foreach(want, i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        char path[512];
        snprintf(path, sizeof path, "/api/policies/%s/%s", vhost, name);
        json_t *body = json_deep_copy(p);
        json_object_del(body, "name");
        int st = mgmt_put(mg, path, body);
        json_decref(body);
        json_t *got = NULL;
        if (st == LL_OK)
            st = mgmt_get(mg, path, &got);
        if (st != LL_OK) {
            rc = ctl_fail(mgmt_fix(mg),
                          "the queues are declared, but the length limits of the dead and audit "
                          "queues are not (policy %s): %s",
                          name, mgmt_errstr(mg));
            break;
        }
        if (!json_equal(json_object_get(got, "definition"), json_object_get(p, "definition")) ||
            !json_equal(json_object_get(got, "pattern"), json_object_get(p, "pattern"))) {
            char *g = json_dumps(got, JSON_COMPACT);
            rc = ctl_fail("read the broker's log; apply again",
                          "policy %s was set but the broker holds another one: %s", name,
                          g ? g : "?");
            free(g);
            json_decref(got);
            break;
        }
        json_decref(got);
    }
    mgmt_free(mg);
    return rc;
}

int cmd_topology_apply(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("topology apply");
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, NULL, NULL)) != -1)
        return ch == 'h' ? 0 : 2;
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    char err[512];
    topo_t *t;
    if (topo_load_builtin(&t, err, sizeof err) != LL_OK)
        return ctl_fail("this binary was built from a broken schemas/topology.yaml: fix it and "
                        "rebuild",
                        "%s", err);
    mq_t *m = ctl_mq(c);
    if (!m) {
        topo_free(t);
        return 1;
    }
    topo_params_t p = {.quorum = c->cfg.amqp.queue_type == SETTINGS_QUEUE_QUORUM,
                       .delivery_limit = (int)c->cfg.amqp.delivery_limit};
    counts_t n = {.list = c->json ? json_array() : NULL};
    int rc = topo_apply(t, m, &p, on_declared, &n, err, sizeof err);
    topo_free(t);
    if (rc != LL_OK) {
        json_decref(n.list);
        return ctl_fail(NULL, "topology apply failed: %s", err);
    }
    json_t *pol = wanted_policies(&c->cfg);
    if (set_policies(c, pol) != 0) {
        json_decref(pol);
        json_decref(n.list);
        return 1;
    }
    const char *qt = p.quorum ? "quorum" : "classic";
    if (n.list) {
        ctl_json_print(json_pack("{s:i, s:i, s:i, s:s, s:o, s:o}", "exchanges", n.exchanges,
                                 "queues", n.queues, "bindings", n.bindings, "queue_type", qt,
                                 "declared", n.list, "policies", pol));
        return 0;
    }
    printf("declared %d exchanges, %d queues (%s work queues), %d bindings on %s:%lld "
           "vhost %s\n",
           n.exchanges, n.queues, qt, n.bindings, c->cfg.amqp.host, (long long)c->cfg.amqp.port,
           c->cfg.amqp.vhost);
    size_t i;
    json_t *o;
    json_array_foreach(pol, i, o)
    {
        json_t *d = json_object_get(o, "definition");
        printf("policy %s on %s: max-length %lld, overflow %s\n",
               json_string_value(json_object_get(o, "name")),
               json_string_value(json_object_get(o, "pattern")),
               (long long)json_integer_value(json_object_get(d, "max-length")),
               json_string_value(json_object_get(d, "overflow")));
    }
    json_decref(pol);
    return 0;
}
