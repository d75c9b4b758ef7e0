/*
 * test_topo.c - parsing and validating topology documents: the built-in
 * schemas/topology.yaml has the shape docs/contract.md#topology promises, and
 * every kind of mistake in a document is refused with its line.
 */
#include <string.h>

#include "ll_test.h"
#include "topo.h"

START_TEST(topo_builtin_has_the_contract_shape)
{
    topo_t *t;
    char e[256];
    ck_assert_msg(topo_load_builtin(&t, e, sizeof e) == LL_OK, "%s", e);
    ck_assert_uint_eq(t->nex, 4);
    const char *work[] = {"risk", "payments", "settlement"};
    const char *from[] = {"payment.requested", "payment.approved", "payment.completed"};
    const char *via[] = {"ledgerline.commands", "ledgerline.events", "ledgerline.events"};
    for (int i = 0; i < 3; i++) {
        const topo_queue_t *q = topo_find_queue(t, work[i]);
        ck_assert_ptr_nonnull(q);
        ck_assert_int_eq(q->cls, TOPO_WORK);
        ck_assert_uint_eq(q->nbinds, 1);
        ck_assert_str_eq(q->binds[0].exchange, via[i]);
        ck_assert_str_eq(q->binds[0].key, from[i]);
        char name[64];
        snprintf(name, sizeof name, "%s.dead", work[i]);
        const topo_queue_t *d = topo_find_queue(t, name);
        ck_assert_msg(d && d->cls == TOPO_DEAD, "%s", name);
        ck_assert_str_eq(d->binds[0].exchange, "ledgerline.dead");
        ck_assert_str_eq(d->binds[0].key, work[i]);
        int retries = 0;
        for (size_t k = 0; k < t->nq; k++)
            if (t->q[k].cls == TOPO_RETRY && strcmp(t->q[k].retry_to, work[i]) == 0) {
                retries++;
                ck_assert_str_eq(t->q[k].binds[0].exchange, "ledgerline.retry");
            }
        ck_assert_int_ge(retries, 1);
    }
    ck_assert_ptr_null(topo_find_queue(t, "nope"));
    topo_free(t);
    topo_free(NULL);
}
END_TEST

#define EX "version: 1\nexchanges:\n  - {name: e, type: topic}\n"

static const struct {
    const char *label, *doc, *want;
} bad[] = {
    {"syntax", "version: 1\nexchanges: [\n", "line"},
    {"empty", "", "empty"},
    {"no version", "exchanges: []\nqueues: []\n", "'version: 1'"},
    {"unknown top key", EX "queues: []\nqueue: []\n", "line 5: unknown key 'queue'"},
    {"bad exchange type", "version: 1\nexchanges:\n  - {name: e, type: fanoutt}\nqueues: []\n",
     "line 3: exchange type 'fanoutt'"},
    {"bad class", EX "queues:\n  - {name: q, class: worker, bind: []}\n", "line 5: class 'worker'"},
    {"unknown queue key", EX "queues:\n  - {name: q, class: work, bind: [], ttl: 5}\n",
     "line 5: unknown key 'ttl'"},
    {"undeclared exchange",
     EX "queues:\n  - {name: q, class: work, bind: [{exchange: x, key: k}]}\n",
     "exchange 'x', which is not declared"},
    {"retry without ttl",
     EX "queues:\n  - {name: q, class: work, bind: []}\n"
        "  - {name: r, class: retry, retry_to: q, bind: []}\n",
     "line 6: retry queue 'r' needs ttl_ms"},
    {"retry to a non-work queue",
     EX "queues:\n  - {name: q, class: dead, bind: []}\n"
        "  - {name: r, class: retry, ttl_ms: 5, retry_to: q, bind: []}\n",
     "feeds 'q', which is not a work queue"},
    {"ttl on a work queue", EX "queues:\n  - {name: q, class: work, ttl_ms: 5, bind: []}\n",
     "for retry queues only"},
    {"duplicate queue",
     EX "queues:\n  - {name: q, class: work, bind: []}\n"
        "  - {name: q, class: work, bind: []}\n",
     "declared twice"},
    {"binding without key", EX "queues:\n  - {name: q, class: work, bind: [{exchange: e}]}\n",
     "needs a non-empty 'key'"},
};

START_TEST(topo_refuses_bad_documents_with_the_line)
{
    topo_t *t = (topo_t *)1;
    char e[256] = "";
    int rc = topo_parse(&t, bad[_i].doc, strlen(bad[_i].doc), e, sizeof e);
    ck_assert_msg(rc == LL_ECONFIG, "%s: rc %d", bad[_i].label, rc);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(e, bad[_i].want) != NULL, "%s: '%s' lacks '%s'", bad[_i].label, e,
                  bad[_i].want);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("topo");
    TCase *tc = tcase_create("parse");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, topo_builtin_has_the_contract_shape);
    tcase_add_loop_test(tc, topo_refuses_bad_documents_with_the_line, 0,
                        (int)(sizeof bad / sizeof bad[0]));
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
