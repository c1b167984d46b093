/*
 * json.c — a small strict JSON reader (RFC 8259) for scenario files. Numbers
 * with a fraction or exponent are kept apart from integers (JV_NUM), since
 * scenario times and counts must be integers.
 */
#include "conformance.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tree owns its nodes: the core only ever sees immortal references. */
const ca_type cconf_ValueType = {"value", sizeof(jv), NULL, NULL};

typedef struct reader {
    const char *p;
    const char *end;
    int depth;
    char *err;
    size_t errsize;
    bool failed;
} reader;

static void fail(reader *rd, const char *what) {
    if (!rd->failed) snprintf(rd->err, rd->errsize, "invalid JSON: %s", what);
    rd->failed = true;
}

static jv *node_new(reader *rd, jv_kind kind) {
    jv *v = calloc(1, sizeof *v);
    if (v == NULL) {
        fail(rd, "out of memory");
        return NULL;
    }
    v->ob_base.ob_refcnt = CA_IMMORTAL_REFCNT;
    v->ob_base.ob_type = &cconf_ValueType;
    v->kind = (uint8_t)kind;
    return v;
}

void jv_free(jv *v) {
    if (v == NULL) return;
    for (size_t i = 0; i < v->len && v->items != NULL; i++) {
        jv_free(v->items[i]);
        if (v->keys != NULL) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->s);
    free(v);
}

const jv *jv_get(const jv *obj, const char *key) {
    if (obj == NULL || obj->kind != JV_OBJ) return NULL;
    for (size_t i = obj->len; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0) return obj->items[i];
    return NULL;
}

static void skip_ws(reader *rd) {
    while (rd->p < rd->end && (*rd->p == ' ' || *rd->p == '\t' || *rd->p == '\n' || *rd->p == '\r')) rd->p++;
}

static bool literal(reader *rd, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(rd->end - rd->p) < n || memcmp(rd->p, word, n) != 0) return false;
    rd->p += n;
    return true;
}

static int hex4(reader *rd) {
    if (rd->end - rd->p < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *rd->p++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static void put_utf8(sbuf *sb, unsigned cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_putn(sb, b, n);
}

/* Reads a string after its opening quote; returns a malloc'd copy. */
static char *read_string(reader *rd, size_t *len_out) {
    sbuf sb = {0};
    sb_putn(&sb, "", 0);
    for (;;) {
        if (rd->p >= rd->end) {
            fail(rd, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)*rd->p++;
        if (c == '"') {
            *len_out = sb.len;
            return sb_take(&sb);
        }
        if (c < 0x20) {
            fail(rd, "control character in string");
            break;
        }
        if (c != '\\') {
            sb_putn(&sb, (const char *)&c, 1);
            continue;
        }
        if (rd->p >= rd->end) {
            fail(rd, "bad escape");
            break;
        }
        char e = *rd->p++;
        switch (e) {
        case '"': sb_putn(&sb, "\"", 1); break;
        case '\\': sb_putn(&sb, "\\", 1); break;
        case '/': sb_putn(&sb, "/", 1); break;
        case 'b': sb_putn(&sb, "\b", 1); break;
        case 'f': sb_putn(&sb, "\f", 1); break;
        case 'n': sb_putn(&sb, "\n", 1); break;
        case 'r': sb_putn(&sb, "\r", 1); break;
        case 't': sb_putn(&sb, "\t", 1); break;
        case 'u': {
            int cp = hex4(rd);
            if (cp < 0) {
                fail(rd, "bad \\u escape");
                break;
            }
            if (cp >= 0xD800 && cp < 0xDC00 && rd->end - rd->p >= 6 && rd->p[0] == '\\' && rd->p[1] == 'u') {
                const char *save = rd->p;
                rd->p += 2;
                int lo = hex4(rd);
                if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else rd->p = save;
            }
            put_utf8(&sb, (unsigned)cp);
            break;
        }
        default:
            fail(rd, "bad escape");
            break;
        }
        if (rd->failed) break;
    }
    free(sb_take(&sb));
    return NULL;
}

static jv *read_value(reader *rd);

static bool append(reader *rd, jv *v, jv *item, char *key, size_t *cap) {
    if (v->len == *cap) {
        size_t n = *cap ? *cap * 2 : 4;
        jv **items = realloc(v->items, n * sizeof *items);
        if (items == NULL) {
            fail(rd, "out of memory");
            return false;
        }
        v->items = items;
        if (v->kind == JV_OBJ) {
            char **keys = realloc(v->keys, n * sizeof *keys);
            if (keys == NULL) {
                fail(rd, "out of memory");
                return false;
            }
            v->keys = keys;
        }
        *cap = n;
    }
    v->items[v->len] = item;
    if (v->kind == JV_OBJ) v->keys[v->len] = key;
    v->len++;
    return true;
}

static jv *read_container(reader *rd, jv_kind kind) {
    char close = kind == JV_LIST ? ']' : '}';
    jv *v = node_new(rd, kind);
    if (v == NULL) return NULL;
    size_t cap = 0;
    if (++rd->depth > 200) fail(rd, "nested too deeply");
    skip_ws(rd);
    if (!rd->failed && rd->p < rd->end && *rd->p == close) {
        rd->p++;
        rd->depth--;
        return v;
    }
    while (!rd->failed) {
        char *key = NULL;
        if (kind == JV_OBJ) {
            skip_ws(rd);
            size_t klen;
            if (rd->p >= rd->end || *rd->p != '"') {
                fail(rd, "object key expected");
                break;
            }
            rd->p++;
            key = read_string(rd, &klen);
            if (key == NULL) break;
            skip_ws(rd);
            if (rd->p >= rd->end || *rd->p != ':') {
                free(key);
                fail(rd, "':' expected");
                break;
            }
            rd->p++;
        }
        jv *item = read_value(rd);
        if (item == NULL || !append(rd, v, item, key, &cap)) {
            jv_free(item);
            free(key);
            break;
        }
        skip_ws(rd);
        if (rd->p < rd->end && *rd->p == ',') {
            rd->p++;
            continue;
        }
        if (rd->p < rd->end && *rd->p == close) {
            rd->p++;
            rd->depth--;
            return v;
        }
        fail(rd, kind == JV_LIST ? "',' or ']' expected" : "',' or '}' expected");
    }
    jv_free(v);
    return NULL;
}

static jv *read_number(reader *rd) {
    const char *start = rd->p;
    if (rd->p < rd->end && *rd->p == '-') rd->p++;
    if (rd->p >= rd->end || *rd->p < '0' || *rd->p > '9') {
        fail(rd, "bad number");
        return NULL;
    }
    if (*rd->p == '0') rd->p++;
    else
        while (rd->p < rd->end && *rd->p >= '0' && *rd->p <= '9') rd->p++;
    bool integral = true;
    if (rd->p < rd->end && *rd->p == '.') {
        integral = false;
        rd->p++;
        if (rd->p >= rd->end || *rd->p < '0' || *rd->p > '9') {
            fail(rd, "bad number");
            return NULL;
        }
        while (rd->p < rd->end && *rd->p >= '0' && *rd->p <= '9') rd->p++;
    }
    if (rd->p < rd->end && (*rd->p == 'e' || *rd->p == 'E')) {
        integral = false;
        rd->p++;
        if (rd->p < rd->end && (*rd->p == '+' || *rd->p == '-')) rd->p++;
        if (rd->p >= rd->end || *rd->p < '0' || *rd->p > '9') {
            fail(rd, "bad number");
            return NULL;
        }
        while (rd->p < rd->end && *rd->p >= '0' && *rd->p <= '9') rd->p++;
    }
    jv *v = node_new(rd, integral ? JV_INT : JV_NUM);
    if (v == NULL || !integral) return v;
    char buf[32];
    size_t n = (size_t)(rd->p - start);
    if (n >= sizeof buf) {
        jv_free(v);
        fail(rd, "integer out of range");
        return NULL;
    }
    memcpy(buf, start, n);
    buf[n] = '\0';
    errno = 0;
    v->i = strtoll(buf, NULL, 10);
    if (errno == ERANGE) {
        jv_free(v);
        fail(rd, "integer out of range");
        return NULL;
    }
    return v;
}

static jv *read_value(reader *rd) {
    skip_ws(rd);
    if (rd->p >= rd->end) {
        fail(rd, "value expected");
        return NULL;
    }
    char c = *rd->p;
    if (c == '{' || c == '[') {
        rd->p++;
        return read_container(rd, c == '{' ? JV_OBJ : JV_LIST);
    }
    if (c == '"') {
        rd->p++;
        size_t len;
        char *s = read_string(rd, &len);
        if (s == NULL) return NULL;
        jv *v = node_new(rd, JV_STR);
        if (v == NULL) {
            free(s);
            return NULL;
        }
        v->s = s;
        v->len = len;
        return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return read_number(rd);
    jv *v = NULL;
    if (literal(rd, "null")) v = node_new(rd, JV_NULL);
    else if (literal(rd, "true")) {
        v = node_new(rd, JV_BOOL);
        if (v != NULL) v->b = true;
    } else if (literal(rd, "false")) v = node_new(rd, JV_BOOL);
    else fail(rd, "unexpected character");
    return v;
}

jv *jv_parse(const char *text, size_t len, char *err, size_t errsize) {
    reader rd = {text, text + len, 0, err, errsize, false};
    jv *v = read_value(&rd);
    if (v != NULL) {
        skip_ws(&rd);
        if (rd.p != rd.end) fail(&rd, "extra data after the value");
    }
    if (rd.failed) {
        jv_free(v);
        return NULL;
    }
    return v;
}
