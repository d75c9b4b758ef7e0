/*
 * chaos_journal.c - the chaos producer's journal (chaos_journal.h).
 */
#include "chaos_journal.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const kinds[] = {"req", "dup", "chg", "bad", "forged"};

static char *hex_decode(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    if (!out)
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

int cj_load(const char *path, cj_t *j, char *err, size_t errlen)
{
    memset(j, 0, sizeof *j);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) {
            /* a torn last line (the producer was stopped mid-write) never
             * reached the broker: it was written before publishing */
            int c = fgetc(f);
            if (c == EOF)
                break;
            snprintf(err, errlen, "%s:%d: %s", path, lineno, je.text);
            free(line);
            fclose(f);
            return -1;
        }
        if (j->n == j->cap) {
            j->cap = j->cap ? 2 * j->cap : 1024;
            j->m = realloc(j->m, j->cap * sizeof *j->m);
            if (!j->m)
                abort();
        }
        cj_msg_t *m = &j->m[j->n];
        memset(m, 0, sizeof *m);
        const char *k = json_string_value(json_object_get(o, "k"));
        size_t ki = 0;
        while (ki < 5 && (!k || strcmp(k, kinds[ki]) != 0))
            ki++;
        if (ki == 5) {
            snprintf(err, errlen, "%s:%d: unknown kind", path, lineno);
            json_decref(o);
            free(line);
            fclose(f);
            return -1;
        }
        m->kind = (cj_kind_t)ki;
        const char *id = json_string_value(json_object_get(o, "id"));
        snprintf(m->id, sizeof m->id, "%s", id ? id : "");
        m->has_id = id != NULL;
        const char *s;
        if ((s = json_string_value(json_object_get(o, "payer"))))
            snprintf(m->payer, sizeof m->payer, "%s", s);
        if ((s = json_string_value(json_object_get(o, "payee"))))
            snprintf(m->payee, sizeof m->payee, "%s", s);
        m->amount = json_integer_value(json_object_get(o, "amount"));
        if ((s = json_string_value(json_object_get(o, "hex"))))
            m->body = hex_decode(s, &m->len);
        j->n++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    return 0;
}

void cj_free(cj_t *j)
{
    for (size_t i = 0; i < j->n; i++)
        free(j->m[i].body);
    free(j->m);
    memset(j, 0, sizeof *j);
}

void cj_append(FILE *f, const cj_msg_t *m)
{
    json_t *o = json_pack("{s:s}", "k", kinds[m->kind]);
    if (m->kind == CJ_BAD || m->kind == CJ_FORGED) {
        char *hex = malloc(2 * m->len + 1);
        if (!hex)
            abort();
        for (size_t i = 0; i < m->len; i++)
            sprintf(hex + 2 * i, "%02x", (unsigned char)m->body[i]);
        hex[2 * m->len] = '\0';
        json_object_set_new(o, "hex", json_string(hex));
        json_object_set_new(o, "id", m->has_id ? json_string(m->id) : json_null());
        free(hex);
    } else {
        json_object_set_new(o, "id", json_string(m->id));
    }
    if (m->kind == CJ_REQ) {
        json_object_set_new(o, "payer", json_string(m->payer));
        json_object_set_new(o, "payee", json_string(m->payee));
    }
    if (m->kind == CJ_REQ || m->kind == CJ_CHG)
        json_object_set_new(o, "amount", json_integer(m->amount));
    char *s = json_dumps(o, JSON_COMPACT);
    fprintf(f, "%s\n", s);
    fflush(f);
    free(s);
    json_decref(o);
}

size_t cj_req_body(char *buf, size_t n, const cj_msg_t *req, int64_t amount)
{
    return (size_t)snprintf(buf, n,
                            "{\"payment_id\":\"%s\",\"payer\":\"%s\",\"payee\":\"%s\","
                            "\"amount\":%" PRId64 ",\"currency\":\"EUR\"}",
                            req->id, req->payer, req->payee, amount);
}

const cj_msg_t *cj_find(const cj_t *j, const char *id)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->m[i].kind == CJ_REQ && strcmp(j->m[i].id, id) == 0)
            return &j->m[i];
    return NULL;
}
