/*
 * test_embed.c - the schemas/ files compiled into the binaries are the
 * files of the source tree, byte for byte, sorted so migrations run in
 * order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "ll_test.h"

START_TEST(embed_matches_the_source_tree)
{
    int n = 0;
    const char *prev = "";
    for (const embed_file_t *f = embed_files; f->name; f++, n++) {
        ck_assert_msg(strcmp(prev, f->name) < 0, "not sorted: %s then %s", prev, f->name);
        prev = f->name;
        char path[512];
        snprintf(path, sizeof path, "%s/schemas/%s", LL_SOURCE_DIR, f->name);
        FILE *fp = fopen(path, "rb");
        ck_assert_msg(fp != NULL, "%s is embedded but not in the tree", path);
        char *buf = malloc(f->len + 2);
        size_t got = fread(buf, 1, f->len + 1, fp);
        fclose(fp);
        ck_assert_msg(got == f->len && memcmp(buf, f->data, f->len) == 0, "%s differs", path);
        ck_assert_int_eq(f->data[f->len], '\0');
        free(buf);
        ck_assert_ptr_eq(embed_find(f->name), f);
    }
    ck_assert_int_ge(n, 3);
    ck_assert_ptr_nonnull(embed_find("topology.yaml"));
    ck_assert_ptr_nonnull(embed_find("sql/migrations/001_ledger.sql"));
    ck_assert_ptr_nonnull(embed_find("sql/functions/ledger_post.sql"));
    ck_assert_ptr_nonnull(embed_find("json/payment.requested.json"));
    ck_assert_ptr_null(embed_find("nope.sql"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("embed");
    TCase *tc = tcase_create("files");
    tcase_add_test(tc, embed_matches_the_source_tree);
    suite_add_tcase(s, tc);
    return llt_run_suite(s);
}
