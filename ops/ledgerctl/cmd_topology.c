/*
 * cmd_topology.c - `ledgerctl topology apply`: declare schemas/topology.yaml.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "topo.h"

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
    const char *qt = p.quorum ? "quorum" : "classic";
    if (n.list)
        ctl_json_print(json_pack("{s:i, s:i, s:i, s:s, s:o}", "exchanges", n.exchanges, "queues",
                                 n.queues, "bindings", n.bindings, "queue_type", qt, "declared",
                                 n.list));
    else
        printf("declared %d exchanges, %d queues (%s work queues), %d bindings on %s:%lld "
               "vhost %s\n",
               n.exchanges, n.queues, qt, n.bindings, c->cfg.amqp.host, (long long)c->cfg.amqp.port,
               c->cfg.amqp.vhost);
    return 0;
}
