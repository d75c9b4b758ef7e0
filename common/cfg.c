/*
 * cfg.c - the configuration engine: see cfg.h.
 *
 * Loading is three passes over one table: parse every default, walk the
 * YAML events (libyaml's event API: we need the line of every key and we
 * must see duplicate keys, which the document API would hide), then scan
 * the environment. Every value, whatever its source, goes through
 * cfg_apply(), so a default, a file and a variable are validated alike.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "cfg.h"
#include "log.h"
#include "xmalloc.h"

#define CFG_SECRET_MAX 65536 /* bytes read from a <VAR>_FILE */

typedef struct {
    const cfg_setting_t *table;
    size_t n;
    void *target;
    cfg_origin_t *origins; /* n entries, always (the caller's or ours) */
    cfg_error_t *err;
    const char *path; /* the YAML file, while parsing it */
    int *file_line;   /* per setting: line it was set at in the file, 0 = not */
} cfg_ctx_t;

/* ---- small helpers ---------------------------------------------------- */

#define FIELD(t, s, type) ((type *)((char *)(t) + (s)->offset))

const char *cfg_type_name(cfg_type_t type)
{
    switch (type) {
    case CFG_STR:
        return "string";
    case CFG_INT:
        return "int";
    case CFG_BOOL:
        return "bool";
    case CFG_ENUM:
        return "enum";
    }
    return "?";
}

char *cfg_env_name(const cfg_setting_t *s, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s_%s", CFG_ENV_PREFIX, s->section, s->key);
    for (char *p = buf; *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    return buf;
}

static void section_env_prefix(const char *section, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s_", CFG_ENV_PREFIX, section);
    for (char *p = buf; *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
}

/* Appends printf output to buf (of size cap) at *len; never overflows. */
__attribute__((format(printf, 4, 5))) static void cat(char *buf, size_t cap, size_t *len,
                                                      const char *fmt, ...)
{
    if (*len >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (k > 0)
        *len = (size_t)k >= cap - *len ? cap - 1 : *len + (size_t)k;
}

/* Fills ctx->err: "<source>[:<line>]: <key>: <problem>". Returns LL_ECONFIG. */
__attribute__((format(printf, 5, 6))) static int
cfg_fail(cfg_ctx_t *ctx, const char *source, int line, const char *key, const char *fmt, ...)
{
    cfg_error_t *e = ctx->err;
    if (!e)
        return LL_ECONFIG;
    snprintf(e->source, sizeof e->source, "%s", source);
    e->line = line;
    snprintf(e->key, sizeof e->key, "%s", key ? key : "");

    char problem[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);

    size_t len = 0;
    e->msg[0] = '\0';
    cat(e->msg, sizeof e->msg, &len, "%s", source);
    if (line > 0)
        cat(e->msg, sizeof e->msg, &len, ":%d", line);
    if (key && *key)
        cat(e->msg, sizeof e->msg, &len, ": %s", key);
    cat(e->msg, sizeof e->msg, &len, ": %s", problem);
    return LL_ECONFIG;
}

/* Case-insensitive edit distance (optimal string alignment: insertions,
 * deletions, substitutions and adjacent transpositions), for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ai != bj);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* Is `word` close enough to `cand` to suggest it? */
static bool is_close(const char *word, const char *cand, size_t *best)
{
    size_t d = edit_distance(word, cand);
    size_t len = strlen(cand);
    size_t allowed = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    if (d == 0 || d > allowed || d >= *best)
        return false;
    *best = d;
    return true;
}

static bool section_known(const cfg_ctx_t *ctx, const char *section)
{
    for (size_t i = 0; i < ctx->n; i++)
        if (strcmp(ctx->table[i].section, section) == 0)
            return true;
    return false;
}

static int find_setting(const cfg_ctx_t *ctx, const char *section, const char *key)
{
    for (size_t i = 0; i < ctx->n; i++)
        if (strcmp(ctx->table[i].section, section) == 0 && strcmp(ctx->table[i].key, key) == 0)
            return (int)i;
    return -1;
}

/* ---- values ------------------------------------------------------------ */

static void describe_range(const cfg_setting_t *s, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    if (s->type == CFG_INT) {
        if (s->min == 0 && s->max == 0)
            cat(buf, size, &len, "any integer");
        else
            cat(buf, size, &len, "%lld..%lld", s->min, s->max);
    } else if (s->type == CFG_ENUM) {
        for (size_t i = 0; s->choices && s->choices[i]; i++)
            cat(buf, size, &len, "%s%s", i ? ", " : "", s->choices[i]);
    } else if (s->type == CFG_BOOL) {
        cat(buf, size, &len, "true/false, yes/no, on/off, 1/0");
    }
}

/* Parses `val` for setting s and stores it in the target. On a bad value
 * writes the problem (and its fix) into why and returns -1. */
static int parse_value(const cfg_setting_t *s, const char *val, void *target, char *why,
                       size_t whysize)
{
    /* never echo a secret */
    const char *shown = (s->flags & CFG_SECRET) ? "(secret)" : val;
    char range[256];
    describe_range(s, range, sizeof range);

    switch (s->type) {
    case CFG_STR: {
        char **f = FIELD(target, s, char *);
        free(*f);
        *f = ll_xstrdup(val);
        return 0;
    }
    case CFG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, 10);
        bool bounded = !(s->min == 0 && s->max == 0);
        if (*val == '\0' || isspace((unsigned char)*val) || *end != '\0') {
            snprintf(why, whysize, "\"%s\" is not an integer; use an integer in %s", shown, range);
            return -1;
        }
        if (errno == ERANGE || (bounded && (v < s->min || v > s->max))) {
            snprintf(why, whysize, "%s is out of range; use an integer in %s", shown, range);
            return -1;
        }
        *FIELD(target, s, long long) = v;
        return 0;
    }
    case CFG_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        for (size_t i = 0; i < 4; i++) {
            if (strcasecmp(val, yes[i]) == 0 || strcasecmp(val, no[i]) == 0) {
                *FIELD(target, s, bool) = strcasecmp(val, yes[i]) == 0;
                return 0;
            }
        }
        snprintf(why, whysize, "\"%s\" is not a boolean; use one of %s", shown, range);
        return -1;
    }
    case CFG_ENUM:
        for (int i = 0; s->choices && s->choices[i]; i++) {
            if (strcasecmp(val, s->choices[i]) == 0) {
                *FIELD(target, s, int) = i;
                return 0;
            }
        }
        snprintf(why, whysize, "\"%s\" is not a valid choice; use one of: %s", shown, range);
        return -1;
    }
    snprintf(why, whysize, "setting has an unknown type %d (bug in the settings table)",
             (int)s->type);
    return -1;
}

static int cfg_apply(cfg_ctx_t *ctx, size_t idx, const char *val, cfg_from_t from,
                     const char *where, int line)
{
    const cfg_setting_t *s = &ctx->table[idx];
    char why[512], key[96];
    snprintf(key, sizeof key, "%s.%s", s->section, s->key);
    if (parse_value(s, val, ctx->target, why, sizeof why) != 0) {
        char source[300];
        if (from == CFG_FROM_FILE)
            snprintf(source, sizeof source, "%s", where);
        else if (from == CFG_FROM_DEFAULT)
            snprintf(source, sizeof source, "built-in default");
        else
            snprintf(source, sizeof source, "environment variable %s", where);
        return cfg_fail(ctx, source, line, key, "%s", why);
    }
    cfg_origin_t *o = &ctx->origins[idx];
    o->from = from;
    o->line = line;
    snprintf(o->name, sizeof o->name, "%s", where ? where : "");
    return LL_OK;
}

/* ---- YAML ---------------------------------------------------------------- */

static const char *event_kind(yaml_event_type_t t)
{
    switch (t) {
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_ALIAS_EVENT:
        return "an alias";
    default:
        return "something else";
    }
}

static int next_event(cfg_ctx_t *ctx, yaml_parser_t *p, yaml_event_t *ev)
{
    if (yaml_parser_parse(p, ev))
        return LL_OK;
    if (p->error == YAML_READER_ERROR && p->problem_offset == 0 && errno)
        return cfg_fail(ctx, ctx->path, 0, NULL, "cannot read config file: %s", strerror(errno));
    int line = (int)(p->problem_mark.line + 1);
    return cfg_fail(ctx, ctx->path, line, NULL,
                    "YAML syntax error: %s%s%s (column %d); fix the syntax at this line",
                    p->problem ? p->problem : "unknown problem", p->context ? " " : "",
                    p->context ? p->context : "", (int)p->problem_mark.column + 1);
}

static bool is_null_scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (*v == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
            strcmp(v, "NULL") == 0);
}

/* The keys of one section, MAPPING_START already consumed. */
static int parse_section(cfg_ctx_t *ctx, yaml_parser_t *p, const char *section)
{
    for (;;) {
        yaml_event_t kev, vev;
        int rc = next_event(ctx, p, &kev);
        if (rc)
            return rc;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return LL_OK;
        }
        int kline = (int)kev.start_mark.line + 1;
        if (kev.type != YAML_SCALAR_EVENT) {
            rc = cfg_fail(ctx, ctx->path, kline, section,
                          "a key of section %s is %s; keys must be plain names like \"port\"",
                          section, event_kind(kev.type));
            yaml_event_delete(&kev);
            return rc;
        }
        char key[96], full[200];
        snprintf(key, sizeof key, "%s", (const char *)kev.data.scalar.value);
        snprintf(full, sizeof full, "%s.%s", section, key);
        yaml_event_delete(&kev);

        int idx = find_setting(ctx, section, key);
        if (idx < 0) {
            size_t best = SIZE_MAX;
            const char *guess = NULL;
            char known[400];
            size_t len = 0;
            known[0] = '\0';
            for (size_t i = 0; i < ctx->n; i++) {
                if (strcmp(ctx->table[i].section, section) != 0)
                    continue;
                cat(known, sizeof known, &len, "%s%s", len ? ", " : "", ctx->table[i].key);
                if (is_close(key, ctx->table[i].key, &best))
                    guess = ctx->table[i].key;
            }
            if (guess)
                return cfg_fail(ctx, ctx->path, kline, full,
                                "unknown key; did you mean \"%s\"? (keys of %s: %s)", guess,
                                section, known);
            return cfg_fail(ctx, ctx->path, kline, full,
                            "unknown key; remove it or use one of the keys of %s: %s", section,
                            known);
        }
        if (ctx->file_line[idx])
            return cfg_fail(ctx, ctx->path, kline, full,
                            "duplicate key (already set at line %d); keep only one of them",
                            ctx->file_line[idx]);
        ctx->file_line[idx] = kline;

        rc = next_event(ctx, p, &vev);
        if (rc)
            return rc;
        int vline = (int)vev.start_mark.line + 1;
        if (vev.type != YAML_SCALAR_EVENT) {
            rc = cfg_fail(ctx, ctx->path, vline, full,
                          "expected a single value, found %s; write it as \"%s: VALUE\"",
                          event_kind(vev.type), key);
            yaml_event_delete(&vev);
            return rc;
        }
        if (is_null_scalar(&vev)) { /* `key:`, `key: ~`: not a value, not "~" */
            rc = cfg_fail(ctx, ctx->path, vline, full,
                          "has no value (YAML null); write \"%s: VALUE\" (quote it for an empty "
                          "string: \"\"), or remove the line to keep the default",
                          key);
            yaml_event_delete(&vev);
            return rc;
        }
        rc = cfg_apply(ctx, (size_t)idx, (const char *)vev.data.scalar.value, CFG_FROM_FILE,
                       ctx->path, vline);
        yaml_event_delete(&vev);
        if (rc)
            return rc;
    }
}

/* The top-level mapping, MAPPING_START already consumed. */
static int parse_top(cfg_ctx_t *ctx, yaml_parser_t *p)
{
    enum { MAX_SECTIONS = 64 };
    char seen[MAX_SECTIONS][64];
    int seen_line[MAX_SECTIONS];
    size_t nseen = 0;

    for (;;) {
        yaml_event_t kev, vev;
        int rc = next_event(ctx, p, &kev);
        if (rc)
            return rc;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return LL_OK;
        }
        int kline = (int)kev.start_mark.line + 1;
        if (kev.type != YAML_SCALAR_EVENT) {
            rc = cfg_fail(ctx, ctx->path, kline, NULL,
                          "a section name is %s; the file must be a mapping of sections "
                          "(amqp:, redis:, ...)",
                          event_kind(kev.type));
            yaml_event_delete(&kev);
            return rc;
        }
        char section[64];
        snprintf(section, sizeof section, "%s", (const char *)kev.data.scalar.value);
        yaml_event_delete(&kev);

        if (!section_known(ctx, section)) {
            size_t best = SIZE_MAX;
            const char *guess = NULL;
            char known[400];
            size_t len = 0;
            known[0] = '\0';
            for (size_t i = 0; i < ctx->n; i++) {
                bool dup = false;
                for (size_t j = 0; j < i && !dup; j++)
                    dup = strcmp(ctx->table[j].section, ctx->table[i].section) == 0;
                if (dup)
                    continue;
                cat(known, sizeof known, &len, "%s%s", len ? ", " : "", ctx->table[i].section);
                if (is_close(section, ctx->table[i].section, &best))
                    guess = ctx->table[i].section;
            }
            if (guess)
                return cfg_fail(ctx, ctx->path, kline, section,
                                "unknown section; did you mean \"%s\"? (sections: %s)", guess,
                                known);
            return cfg_fail(ctx, ctx->path, kline, section,
                            "unknown section; remove it or use one of: %s", known);
        }
        for (size_t i = 0; i < nseen; i++)
            if (strcmp(seen[i], section) == 0)
                return cfg_fail(ctx, ctx->path, kline, section,
                                "duplicate section (already at line %d); merge the two",
                                seen_line[i]);
        if (nseen < MAX_SECTIONS) {
            snprintf(seen[nseen], sizeof seen[nseen], "%s", section);
            seen_line[nseen++] = kline;
        }

        rc = next_event(ctx, p, &vev);
        if (rc)
            return rc;
        if (vev.type == YAML_MAPPING_START_EVENT) {
            yaml_event_delete(&vev);
            rc = parse_section(ctx, p, section);
        } else if (vev.type == YAML_SCALAR_EVENT && is_null_scalar(&vev)) {
            yaml_event_delete(&vev); /* "amqp:" alone: an empty section */
        } else {
            rc = cfg_fail(ctx, ctx->path, (int)vev.start_mark.line + 1, section,
                          "section must be a mapping of key: value, found %s",
                          vev.type == YAML_SCALAR_EVENT ? "a scalar" : event_kind(vev.type));
            yaml_event_delete(&vev);
        }
        if (rc)
            return rc;
    }
}

static int load_yaml(cfg_ctx_t *ctx, const char *path)
{
    ctx->path = path;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cfg_fail(ctx, path, 0, NULL,
                        "cannot read config file: %s; check the path and its permissions",
                        strerror(errno));

    yaml_parser_t p;
    yaml_event_t ev;
    int rc = LL_OK;
    bool have_ev = false;
    if (!yaml_parser_initialize(&p))
        log_panic("out of memory initialising the YAML parser");
    yaml_parser_set_input_file(&p, f);
    errno = 0;

    /* STREAM_START, then DOCUMENT_START or STREAM_END (empty file) */
    for (int step = 0; step < 2; step++) {
        if ((rc = next_event(ctx, &p, &ev)))
            goto done;
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            goto done;
        }
        yaml_event_delete(&ev);
    }
    if ((rc = next_event(ctx, &p, &ev)))
        goto done;
    have_ev = true;
    if (ev.type == YAML_MAPPING_START_EVENT) {
        rc = parse_top(ctx, &p);
    } else if (!(ev.type == YAML_SCALAR_EVENT && is_null_scalar(&ev))) {
        rc = cfg_fail(ctx, path, (int)ev.start_mark.line + 1, NULL,
                      "the file must be a mapping of sections (amqp:, redis:, ...), found %s",
                      ev.type == YAML_SCALAR_EVENT ? "a scalar" : event_kind(ev.type));
    }
    yaml_event_delete(&ev);
    have_ev = false;
    if (rc)
        goto done;
    /* DOCUMENT_END, then STREAM_END: a second document is a mistake */
    if ((rc = next_event(ctx, &p, &ev)))
        goto done;
    yaml_event_delete(&ev);
    if ((rc = next_event(ctx, &p, &ev)))
        goto done;
    if (ev.type != YAML_STREAM_END_EVENT)
        rc = cfg_fail(ctx, path, (int)ev.start_mark.line + 1, NULL,
                      "more than one YAML document; keep a single document");
    yaml_event_delete(&ev);
done:
    if (have_ev)
        yaml_event_delete(&ev);
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

/* ---- environment ------------------------------------------------------- */

/* Value of NAME in envp, or NULL. */
static const char *env_get(char *const *envp, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, len) == 0 && envp[i][len] == '=')
            return envp[i] + len + 1;
    return NULL;
}

static int read_secret_file(cfg_ctx_t *ctx, const char *var, const char *path, char **out)
{
    char source[300];
    snprintf(source, sizeof source, "environment variable %s", var);
    FILE *f = fopen(path, "rb");
    if (!f)
        return cfg_fail(ctx, source, 0, NULL, "cannot read %s: %s; check the path and permissions",
                        path, strerror(errno));
    char *buf = ll_xmalloc(CFG_SECRET_MAX + 1);
    size_t len = fread(buf, 1, CFG_SECRET_MAX + 1, f);
    int ioerr = ferror(f) ? errno : 0;
    fclose(f);
    if (ioerr || len > CFG_SECRET_MAX) {
        free(buf);
        return cfg_fail(ctx, source, 0, NULL, "cannot read %s: %s", path,
                        ioerr ? strerror(ioerr) : "file larger than 64 KiB");
    }
    buf[len] = '\0';
    if (len > 0 && buf[len - 1] == '\n') {
        buf[--len] = '\0';
        if (len > 0 && buf[len - 1] == '\r')
            buf[--len] = '\0';
    }
    *out = buf;
    return LL_OK;
}

static int check_env_names(cfg_ctx_t *ctx, char *const *envp)
{
    size_t plen = strlen(CFG_ENV_PREFIX);
    for (size_t e = 0; envp && envp[e]; e++) {
        const char *eq = strchr(envp[e], '=');
        if (!eq || strncmp(envp[e], CFG_ENV_PREFIX, plen) != 0)
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - envp[e]), envp[e]);

        bool in_section = false, matched = false;
        int guess = -1;
        size_t best = SIZE_MAX;
        char envname[256], fname[300], prefix[128];
        for (size_t i = 0; i < ctx->n && !matched; i++) {
            const cfg_setting_t *s = &ctx->table[i];
            cfg_env_name(s, envname, sizeof envname);
            snprintf(fname, sizeof fname, "%s_FILE", envname);
            if (strcmp(name, envname) == 0)
                matched = true;
            else if (strcmp(name, fname) == 0 && (s->flags & CFG_SECRET))
                matched = true;
            else if (strcmp(name, fname) == 0) {
                char source[300];
                snprintf(source, sizeof source, "environment variable %s", name);
                char key[96];
                snprintf(key, sizeof key, "%s.%s", s->section, s->key);
                return cfg_fail(ctx, source, 0, key,
                                "only secrets can be read from a file; set %s instead", envname);
            }
            section_env_prefix(s->section, prefix, sizeof prefix);
            if (strncmp(name, prefix, strlen(prefix)) == 0) {
                in_section = true;
                if (is_close(name, envname, &best))
                    guess = (int)i;
            }
        }
        if (matched || !in_section)
            continue;
        char source[300];
        snprintf(source, sizeof source, "environment variable %s", name);
        if (guess >= 0) {
            cfg_env_name(&ctx->table[guess], envname, sizeof envname);
            return cfg_fail(ctx, source, 0, NULL,
                            "matches no setting; did you mean %s? (unset it or fix the name)",
                            envname);
        }
        return cfg_fail(ctx, source, 0, NULL,
                        "matches no setting of its section; unset it or fix the name "
                        "(see the configuration reference)");
    }
    return LL_OK;
}

static int load_env(cfg_ctx_t *ctx, char *const *envp)
{
    int rc = check_env_names(ctx, envp);
    if (rc)
        return rc;
    for (size_t i = 0; i < ctx->n; i++) {
        const cfg_setting_t *s = &ctx->table[i];
        char name[256], fname[300];
        cfg_env_name(s, name, sizeof name);
        snprintf(fname, sizeof fname, "%s_FILE", name);
        const char *val = env_get(envp, name);
        const char *file = (s->flags & CFG_SECRET) ? env_get(envp, fname) : NULL;
        if (val && file) {
            char source[300];
            snprintf(source, sizeof source, "environment variable %s", name);
            char key[96];
            snprintf(key, sizeof key, "%s.%s", s->section, s->key);
            return cfg_fail(ctx, source, 0, key, "both %s and %s are set; unset one of them", name,
                            fname);
        }
        if (val) {
            rc = cfg_apply(ctx, i, val, CFG_FROM_ENV, name, 0);
        } else if (file) {
            char *secret = NULL;
            rc = read_secret_file(ctx, fname, file, &secret);
            if (rc == LL_OK)
                rc = cfg_apply(ctx, i, secret, CFG_FROM_ENV_FILE, fname, 0);
            free(secret);
        }
        if (rc)
            return rc;
    }
    return LL_OK;
}

/* ---- public ------------------------------------------------------------ */

int cfg_load(const cfg_setting_t *table, size_t n, void *target, cfg_origin_t *origins,
             const char *yaml_path, char *const *envp, cfg_error_t *err)
{
    cfg_ctx_t ctx = {.table = table, .n = n, .target = target, .err = err};
    int rc = LL_OK;
    if (err)
        memset(err, 0, sizeof *err);
    ctx.origins = origins ? origins : ll_xcalloc(n ? n : 1, sizeof *origins);
    ctx.file_line = ll_xcalloc(n ? n : 1, sizeof *ctx.file_line);
    for (size_t i = 0; i < n; i++)
        if (table[i].type == CFG_STR)
            *FIELD(target, &table[i], char *) = NULL;

    for (size_t i = 0; i < n && rc == LL_OK; i++)
        rc = cfg_apply(&ctx, i, table[i].def ? table[i].def : "", CFG_FROM_DEFAULT, "", 0);
    if (rc == LL_OK && yaml_path)
        rc = load_yaml(&ctx, yaml_path);
    if (rc == LL_OK)
        rc = load_env(&ctx, envp);

    if (rc != LL_OK)
        cfg_free(table, n, target);
    free(ctx.file_line);
    if (!origins)
        free(ctx.origins);
    return rc;
}

void cfg_free(const cfg_setting_t *table, size_t n, void *target)
{
    if (!target)
        return;
    for (size_t i = 0; i < n; i++) {
        if (table[i].type != CFG_STR)
            continue;
        char **f = FIELD(target, &table[i], char *);
        free(*f);
        *f = NULL;
    }
}

/* A YAML double-quoted scalar. */
static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void print_value(FILE *out, const cfg_setting_t *s, const void *target)
{
    const char *t = (const char *)target;
    switch (s->type) {
    case CFG_STR: {
        const char *v = *(char *const *)(t + s->offset);
        if (s->flags & CFG_SECRET)
            fputs(v && *v ? "\"********\"" : "\"\"", out);
        else
            print_quoted(out, v ? v : "");
        break;
    }
    case CFG_INT:
        fprintf(out, "%lld", *(const long long *)(t + s->offset));
        break;
    case CFG_BOOL:
        fputs(*(const bool *)(t + s->offset) ? "true" : "false", out);
        break;
    case CFG_ENUM: {
        int v = *(const int *)(t + s->offset);
        int count = 0;
        while (s->choices && s->choices[count])
            count++;
        if (s->flags & CFG_SECRET)
            fputs("\"********\"", out);
        else if (v >= 0 && v < count)
            print_quoted(out, s->choices[v]);
        else
            fprintf(out, "%d", v);
        break;
    }
    }
}

void cfg_print(const cfg_setting_t *table, size_t n, const void *target,
               const cfg_origin_t *origins, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        bool printed = false;
        for (size_t j = 0; j < i && !printed; j++)
            printed = strcmp(table[j].section, table[i].section) == 0;
        if (printed)
            continue;
        fprintf(out, "%s:\n", table[i].section);
        for (size_t j = i; j < n; j++) {
            const cfg_setting_t *s = &table[j];
            if (strcmp(s->section, table[i].section) != 0)
                continue;
            fprintf(out, "  %s: ", s->key);
            print_value(out, s, target);
            if (origins) {
                const cfg_origin_t *o = &origins[j];
                switch (o->from) {
                case CFG_FROM_DEFAULT:
                    fputs("  # default", out);
                    break;
                case CFG_FROM_FILE:
                    fprintf(out, "  # file %s:%d", o->name, o->line);
                    break;
                case CFG_FROM_ENV:
                case CFG_FROM_ENV_FILE:
                    fprintf(out, "  # env %s", o->name);
                    break;
                }
            }
            fputc('\n', out);
        }
    }
}

/* A Markdown table cell: | must be escaped, newlines flattened. */
static void print_cell(FILE *out, const char *s)
{
    fputc(' ', out);
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
    fputs(" |", out);
}

void cfg_print_reference(const cfg_setting_t *table, size_t n, FILE *out)
{
    fputs("| key | env | type | default | range/choices | description |\n", out);
    fputs("|---|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < n; i++) {
        const cfg_setting_t *s = &table[i];
        char buf[640], env[256], range[256];
        fputc('|', out);
        snprintf(buf, sizeof buf, "`%s.%s`", s->section, s->key);
        print_cell(out, buf);
        cfg_env_name(s, env, sizeof env);
        if (s->flags & CFG_SECRET)
            snprintf(buf, sizeof buf, "`%s` or `%s_FILE`", env, env);
        else
            snprintf(buf, sizeof buf, "`%s`", env);
        print_cell(out, buf);
        snprintf(buf, sizeof buf, "%s%s", cfg_type_name(s->type),
                 (s->flags & CFG_SECRET) ? " (secret)" : "");
        print_cell(out, buf);
        if (s->def && *s->def)
            snprintf(buf, sizeof buf, "`%s`", s->def);
        else
            snprintf(buf, sizeof buf, "(empty)");
        print_cell(out, buf);
        describe_range(s, range, sizeof range);
        if (s->type == CFG_STR)
            snprintf(range, sizeof range, "-");
        print_cell(out, range);
        print_cell(out, s->help);
        fputc('\n', out);
    }
}
