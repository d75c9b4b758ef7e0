/*
 * embed.h - the files of schemas/ compiled into every binary
 * (SQL migrations and functions, topology.yaml, JSON Schemas). The table is
 * generated at build time by cmake/embed.cmake; names are paths relative to
 * schemas/, e.g. "sql/migrations/001_ledger.sql",
 * "sql/functions/ledger_post.sql", "topology.yaml",
 * "json/payment.requested.json".
 *
 * Public API: embed_file_t, embed_files[], embed_find().
 */
#ifndef LL_EMBED_H
#define LL_EMBED_H

#include <stddef.h>

typedef struct embed_file {
    const char *name; /* relative to schemas/, NULL ends the table */
    const char *data; /* NUL-terminated, static */
    size_t len;       /* without the terminating NUL */
} embed_file_t;

/* Sorted by name; ends with an entry whose name is NULL. */
extern const embed_file_t embed_files[];

/* The file called `name`, or NULL. The result is static. */
const embed_file_t *embed_find(const char *name);

#endif
