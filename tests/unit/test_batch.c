/*
 * test_batch.c - the message state machine: every transition the diagram
 * in batch.h allows works, every other one panics (the process aborts).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "ll_test.h"
#include "log.h"

static const struct {
    item_state_t from, to;
} allowed[] = {
    {ITEM_RECEIVED, ITEM_DECODED},    {ITEM_RECEIVED, ITEM_COMMITTED}, {ITEM_DECODED, ITEM_BATCHED},
    {ITEM_DECODED, ITEM_COMMITTED},   {ITEM_BATCHED, ITEM_COMMITTED},  {ITEM_BATCHED, ITEM_DECODED},
    {ITEM_COMMITTED, ITEM_PUBLISHED}, {ITEM_PUBLISHED, ITEM_ACKED},
};
#define NALLOWED (sizeof allowed / sizeof allowed[0])

static bool is_allowed(item_state_t from, item_state_t to)
{
    for (size_t i = 0; i < NALLOWED; i++)
        if (allowed[i].from == from && allowed[i].to == to)
            return true;
    return false;
}

START_TEST(batch_allowed_transitions_work)
{
    item_t it;
    memset(&it, 0, sizeof it);
    it.state = allowed[_i].from;
    item_set_state(&it, allowed[_i].to);
    ck_assert_int_eq(it.state, allowed[_i].to);
}
END_TEST

/* _i enumerates every (from, to) pair that is NOT allowed */
START_TEST(batch_forbidden_transitions_panic)
{
    int k = 0;
    for (int from = ITEM_RECEIVED; from <= ITEM_ACKED; from++)
        for (int to = ITEM_RECEIVED; to <= ITEM_ACKED; to++) {
            if (is_allowed(from, to))
                continue;
            if (k++ != _i)
                continue;
            log_set_output(fopen("/dev/null", "w"));
            item_t it;
            memset(&it, 0, sizeof it);
            it.state = (item_state_t)from;
            item_set_state(&it, (item_state_t)to); /* must abort */
            ck_abort_msg("%s -> %s was allowed", item_state_name(from), item_state_name(to));
        }
}
END_TEST

START_TEST(batch_walks_the_happy_path_and_clears)
{
    batch_t b = {0};
    for (int i = 0; i < 100; i++) {
        mq_delivery_t d;
        memset(&d, 0, sizeof d);
        item_t *it = batch_add(&b, &d);
        ck_assert_int_eq(it->state, ITEM_RECEIVED);
    }
    ck_assert_uint_eq(b.n, 100);
    item_state_t path[] = {ITEM_DECODED, ITEM_BATCHED, ITEM_COMMITTED, ITEM_PUBLISHED, ITEM_ACKED};
    for (size_t i = 0; i < b.n; i++)
        for (size_t s = 0; s < sizeof path / sizeof path[0]; s++)
            item_set_state(&b.items[i], path[s]);
    batch_clear(&b);
    ck_assert_uint_eq(b.n, 0);
    batch_free(&b);
}
END_TEST

int main(void)
{
    int forbidden = (ITEM_ACKED + 1) * (ITEM_ACKED + 1) - (int)NALLOWED;
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("states");
    tcase_add_loop_test(tc, batch_allowed_transitions_work, 0, (int)NALLOWED);
    tcase_add_loop_test_raise_signal(tc, batch_forbidden_transitions_panic, SIGABRT, 0, forbidden);
    tcase_add_test(tc, batch_walks_the_happy_path_and_clears);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
