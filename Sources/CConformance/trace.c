/*
 * trace.c — the trace format of SPEC.md section 3: lines, values, errors and
 * future states (the reference's emit, fmt_val, fmt_err and state_of).
 *
 * An error's first argument is carried as its rendering: a scenario message
 * `"bye"` is stored as the C string "\"bye\"" (quotes included), 5 as "5",
 * so every value survives the core's string messages unchanged. A message
 * the core makes itself, the "" of CancelledError('') that gather gives a
 * cancelled child, is the only empty one and is printed as "".
 */
#include "conformance.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MARK: - Text buffers */

static bool sb_reserve(sbuf *sb, size_t extra) {
    if (sb->len + extra + 1 <= sb->cap) return true;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1) cap *= 2;
    char *p = realloc(sb->p, cap);
    if (p == NULL) return false;
    sb->p = p;
    sb->cap = cap;
    return true;
}

void sb_putn(sbuf *sb, const char *s, size_t n) {
    if (!sb_reserve(sb, n)) return;
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

void sb_puts(sbuf *sb, const char *s) { sb_putn(sb, s, strlen(s)); }

void sb_printf(sbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sb_reserve(sb, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

char *sb_take(sbuf *sb) {
    char *p = sb->p != NULL ? sb->p : strdup("");
    *sb = (sbuf){0};
    return p;
}

/* MARK: - Values */

/* json.dumps of a string (scenario strings are printable ASCII). */
static void fmt_str(sbuf *sb, const char *s, size_t n) {
    sb_putn(sb, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_putn(sb, esc, 2);
        } else if (c < 0x20 || c == 0x7F) {
            sb_printf(sb, "\\u%04x", c);
        } else {
            sb_putn(sb, (const char *)&c, 1);
        }
    }
    sb_putn(sb, "\"", 1);
}

void fmt_jv(sbuf *sb, const jv *v) {
    if (v == NULL) {
        sb_puts(sb, "null");
        return;
    }
    switch (v->kind) {
    case JV_BOOL: sb_puts(sb, v->b ? "true" : "false"); break;
    case JV_INT: sb_printf(sb, "%lld", (long long)v->i); break;
    case JV_STR: fmt_str(sb, v->s, v->len); break;
    case JV_LIST:
        sb_puts(sb, "[");
        for (size_t i = 0; i < v->len; i++) {
            if (i > 0) sb_puts(sb, ",");
            fmt_jv(sb, v->items[i]);
        }
        sb_puts(sb, "]");
        break;
    default: sb_puts(sb, "null"); break;
    }
}

ca_value jv_value(const jv *v) {
    if (v == NULL || v->kind == JV_NULL) return ca_none();
    return ca_obj(ca_incref((void *)v));
}

/* The id a future or task is known by: the first id declared for it, else
 * (a task asyncio made for a coroutine) the id of its coroutine. */
const char *name_of(run *r, const void *obj) {
    int slot = name_find(r, obj);
    if (slot < 0 && ca_task_check(obj)) {
        ca_coro *coro = ca_task_get_coro((const ca_task *)obj);
        if (coro != NULL) slot = name_find(r, coro);
    }
    return slot >= 0 ? r->scn->ids[slot] : NULL;
}

void fmt_ref(run *r, sbuf *sb, const void *fut) {
    const char *name = name_of(r, fut);
    sb_printf(sb, "<%s>", name != NULL ? name : "?");
}

typedef struct named {
    const char *name;
    const void *obj;
} named;

static int named_cmp(const void *a, const void *b) {
    const named *x = a, *y = b;
    if (x->name == NULL || y->name == NULL) return (x->name == NULL) - (y->name == NULL);
    return strcmp(x->name, y->name);
}

/* A set of futures, members sorted by id, unnamed ones last. */
static void fmt_set(run *r, sbuf *sb, void *const *objs, size_t n) {
    named stack[16];
    named *items = n <= 16 ? stack : malloc(n * sizeof *items);
    sb_puts(sb, "{");
    if (items == NULL) {
        run_fail(r, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) items[i] = (named){name_of(r, objs[i]), objs[i]};
    qsort(items, n, sizeof *items, named_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) sb_puts(sb, ",");
        sb_printf(sb, "<%s>", items[i].name != NULL ? items[i].name : "?");
    }
    sb_puts(sb, "}");
    if (items != stack) free(items);
}

void fmt_task_set(run *r, sbuf *sb, ca_task *const *tasks, size_t n) { fmt_set(r, sb, (void *const *)tasks, n); }

void fmt_val(run *r, sbuf *sb, const ca_value *v) {
    switch (v->kind) {
    case CA_VALUE_NONE: sb_puts(sb, "null"); return;
    case CA_VALUE_INT: sb_printf(sb, "%lld", (long long)v->u.i); return;
    case CA_VALUE_OBJECT: break;
    default: run_fail(r, "cannot render a value of kind %d", (int)v->kind); return;
    }
    const ca_object *o = v->u.obj;
    if (o->ob_type == &cconf_ValueType) {
        fmt_jv(sb, (const jv *)o);
    } else if (ca_object_is_instance(o, &ca_ErrorType)) {
        fmt_err(r, sb, (const ca_error *)o);
    } else if (ca_result_list_check(o)) {
        const ca_result_list *l = (const ca_result_list *)o;
        sb_puts(sb, "[");
        for (size_t i = 0; i < l->len; i++) {
            if (i > 0) sb_puts(sb, ",");
            fmt_val(r, sb, ca_result_list_item(l, i));
        }
        sb_puts(sb, "]");
    } else if (ca_wait_sets_check(o)) {
        const ca_wait_sets *ws = (const ca_wait_sets *)o;
        sb_puts(sb, "[");
        fmt_set(r, sb, (void *const *)ws->futures, ws->ndone);
        sb_puts(sb, ",");
        fmt_set(r, sb, (void *const *)(ws->futures + ws->ndone), ws->npending);
        sb_puts(sb, "]");
    } else if (ca_future_check(o)) {
        fmt_ref(r, sb, o);
    } else {
        run_fail(r, "cannot render a value of type %s", o->ob_type->tp_name);
    }
}

/* MARK: - Errors and states */

void fmt_err(run *r, sbuf *sb, const ca_error *e) {
    sb_puts(sb, e->type->name);
    if (ca_error_matches(e, &ca_BaseExceptionGroup)) {
        sb_puts(sb, "[");
        for (size_t i = 0; i < e->nchildren; i++) {
            if (i > 0) sb_puts(sb, ",");
            fmt_err(r, sb, e->children[i]);
        }
        sb_puts(sb, "]");
        return;
    }
    /* messages of these are implementation-defined: never printed */
    if (ca_error_matches(e, &ca_InvalidStateError) || ca_error_matches(e, &ca_RuntimeError) ||
        ca_error_matches(e, &ca_ValueError) || ca_error_matches(e, &ca_TypeError) || e->message == NULL)
        return;
    if (e->message[0] == '\0') sb_puts(sb, "(\"\")");
    else sb_printf(sb, "(%s)", e->message);
}

void state_of(run *r, sbuf *sb, const ca_future *f) {
    if (f->fut_state == CA_FUTURE_PENDING) {
        sb_puts(sb, "pending");
    } else if (f->fut_state == CA_FUTURE_CANCELLED) {
        sb_puts(sb, "cancelled");
    } else if (f->fut_exception != NULL) {
        sb_puts(sb, "exception ");
        fmt_err(r, sb, f->fut_exception);
    } else {
        sb_puts(sb, "result ");
        fmt_val(r, sb, &f->fut_result);
    }
}

/* MARK: - Lines */

void emit(run *r, const char *actor, const char *fmt, ...) {
    if (r->closed) return;
    int64_t ns = r->idle ? r->idle_ns : ca_loop_time(r->loop);
    sb_printf(&r->out, "%lld %s ", (long long)((ns + 500000) / 1000000), actor);
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof small) {
        sb_putn(&r->out, small, (size_t)n);
    } else if (n >= 0) {
        char *big = malloc((size_t)n + 1);
        if (big != NULL) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            sb_putn(&r->out, big, (size_t)n);
            free(big);
        }
    }
    sb_putn(&r->out, "\n", 1);
}

ca_error *make_error(const op *o) { return ca_error_new(o->error, o->msg); }
