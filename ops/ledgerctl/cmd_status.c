/*
 * cmd_status.c - `ledgerctl status`: depth and consumers of every queue of
 * the topology (work, dead and retry), from passive declares, so it needs
 * only AMQP access (no management plugin). Rates and worker health come
 * with the operations work.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "topo.h"

int cmd_status(ctl_t *c, int argc, char **argv)
{
    const ctl_cmd_t *cmd = ctl_find_cmd("status");
    static const struct option opts[] = {{"queue", required_argument, NULL, 'q'},
                                         {NULL, 0, NULL, 0}};
    const char *only = NULL;
    int ch;
    while ((ch = ctl_getopt(c, cmd, argc, argv, "", opts)) != -1) {
        if (ch == 'q')
            only = optarg;
        else
            return ch == 'h' ? 0 : 2;
    }
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    char err[512];
    topo_t *t;
    if (topo_load_builtin(&t, err, sizeof err) != LL_OK)
        return ctl_fail("rebuild from a valid schemas/topology.yaml", "%s", err);
    if (only && !topo_find_queue(t, only)) {
        topo_free(t);
        return ctl_usage_error(cmd, "'%s' is not a queue of the topology", only);
    }
    mq_t *m = ctl_mq(c);
    if (!m) {
        topo_free(t);
        return 1;
    }
    json_t *list = c->json ? json_array() : NULL;
    if (!c->json && !only)
        printf("%-22s %-6s %10s %10s\n", "QUEUE", "CLASS", "MESSAGES", "CONSUMERS");
    int rc = 0;
    for (size_t i = 0; i < t->nq; i++) {
        const topo_queue_t *q = &t->q[i];
        if (only && strcmp(only, q->name) != 0)
            continue;
        uint32_t msgs = 0, consumers = 0;
        int st = mq_queue_stats(m, q->name, &msgs, &consumers);
        if (st != LL_OK) {
            rc = ctl_fail("declare the topology: ledgerctl topology apply", "queue '%s': %s",
                          q->name, mq_errstr(m));
            break;
        }
        if (list)
            json_array_append_new(list,
                                  json_pack("{s:s, s:s, s:I, s:I}", "name", q->name, "class",
                                            topo_class_name(q->cls), "messages", (json_int_t)msgs,
                                            "consumers", (json_int_t)consumers));
        else if (only)
            printf("%u\n", msgs);
        else
            printf("%-22s %-6s %10u %10u\n", q->name, topo_class_name(q->cls), msgs, consumers);
    }
    topo_free(t);
    if (list) {
        if (rc == 0)
            ctl_json_print(json_pack("{s:o}", "queues", list));
        else
            json_decref(list);
    }
    return rc;
}
