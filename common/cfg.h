/*
 * cfg.h - the configuration engine: one declarative table fills a plain
 * struct from three sources, each overriding the one before:
 *
 *   built-in default  <  YAML file  <  environment
 *
 * (Redis static_configs[], PgBouncer CF_ABS, Postfix CONFIG_INT_TABLE.)
 * The table is generic; Ledgerline's own table is in settings.c.
 *
 * YAML: a top-level mapping of section -> mapping of key -> scalar:
 *     amqp:
 *       port: 5672
 * Environment: LEDGERLINE_<SECTION>_<KEY>, upper-cased (LEDGERLINE_AMQP_PORT).
 * A CFG_SECRET setting may instead be read from the file named by
 * LEDGERLINE_<SECTION>_<KEY>_FILE (one trailing newline stripped); setting
 * both is an error. A LEDGERLINE_<SECTION>_* variable of a known section
 * that names no setting is an error (typo protection); variables whose
 * section is unknown (LEDGERLINE_CONFIG, LEDGERLINE_STACK_DIR) are ignored.
 *
 * Every problem is LL_ECONFIG with a cfg_error_t whose msg names the
 * source (file path or environment variable), the line, the key, what is
 * wrong and how to fix it, e.g.
 *   /etc/ll.yaml:3: amqp.prot: unknown key; did you mean "port"?
 * Secret values are never echoed, in errors or in cfg_print().
 *
 * Field types: CFG_STR -> char * (owned, never NULL after load, "" allowed),
 * CFG_INT -> long long, CFG_BOOL -> bool, CFG_ENUM -> int (index into
 * choices).
 *
 * Public API: cfg_type_t, CFG_SECRET, cfg_setting_t, cfg_error_t,
 * cfg_origin_t, cfg_from_t, cfg_load, cfg_free, cfg_print, cfg_print_reference,
 * cfg_env_name, cfg_type_name.
 */
#ifndef LL_CFG_H
#define LL_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

#define CFG_ENV_PREFIX "LEDGERLINE_"

typedef enum { CFG_STR, CFG_INT, CFG_BOOL, CFG_ENUM } cfg_type_t;

#define CFG_SECRET 0x1 /* masked in cfg_print, may come from <VAR>_FILE */

typedef struct cfg_setting {
    const char *section;        /* "amqp" */
    const char *key;            /* "port": YAML amqp: {port: ...}, env LEDGERLINE_AMQP_PORT */
    cfg_type_t type;            /* what the field at offset is, see above */
    size_t offset;              /* offsetof() into the target struct */
    const char *def;            /* default, as text, parsed like any other source */
    long long min, max;         /* CFG_INT bounds, inclusive; 0,0 = unbounded */
    const char *const *choices; /* CFG_ENUM: NULL-terminated; the field is an int index */
    unsigned flags;             /* CFG_SECRET */
    const char *help;           /* one line, for --help and the README reference */
} cfg_setting_t;

typedef struct cfg_error {
    char source[256]; /* file path, "environment variable LEDGERLINE_X" or "built-in default" */
    int line;         /* 1-based line in the file; 0 when not from a file */
    char key[96];     /* "amqp.port" (or the section alone); "" when none */
    char msg[768];    /* the whole sentence: source, line, key, problem, fix */
} cfg_error_t;

typedef enum { CFG_FROM_DEFAULT, CFG_FROM_FILE, CFG_FROM_ENV, CFG_FROM_ENV_FILE } cfg_from_t;

/* Where one setting's effective value came from. */
typedef struct cfg_origin {
    cfg_from_t from;
    int line;       /* CFG_FROM_FILE: line of the value */
    char name[256]; /* CFG_FROM_FILE: the path; CFG_FROM_ENV[_FILE]: the variable */
} cfg_origin_t;

/* Fills `target` from the table: defaults, then the YAML file at
 * yaml_path (NULL: none), then envp (NULL-terminated "NAME=value" array,
 * e.g. environ; NULL: none). The string fields of target are overwritten
 * without being freed (cfg_free() first when reloading). origins (NULL:
 * not wanted) receives n entries. On success the caller frees the strings
 * with cfg_free(). On failure returns LL_ECONFIG (or LL_ENOMEM never: OOM
 * aborts), fills *err (may be NULL) and leaves no string allocated. */
int cfg_load(const cfg_setting_t *table, size_t n, void *target, cfg_origin_t *origins,
             const char *yaml_path, char *const *envp, cfg_error_t *err) LL_MUSTCHECK;

/* Frees the CFG_STR fields and sets them to NULL; safe to call twice. */
void cfg_free(const cfg_setting_t *table, size_t n, void *target);

/* The effective configuration as YAML, one section at a time, secrets
 * printed "********" (or "" when empty), each line ending in a comment with
 * its origin (# default, # file PATH:LINE, # env VAR) when origins is not
 * NULL. The output loads back with cfg_load (secrets excepted). */
void cfg_print(const cfg_setting_t *table, size_t n, const void *target,
               const cfg_origin_t *origins, FILE *out);

/* A Markdown table for the README, one row per setting:
 * | key | env | type | default | range/choices | description | */
void cfg_print_reference(const cfg_setting_t *table, size_t n, FILE *out);

/* "LEDGERLINE_AMQP_PORT" for {amqp, port} into buf; returns buf. */
char *cfg_env_name(const cfg_setting_t *s, char *buf, size_t size);
/* "string", "int", "bool", "enum". */
const char *cfg_type_name(cfg_type_t type);

#endif
