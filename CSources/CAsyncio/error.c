/*
 * error.c — error objects and the hierarchy of built-in error types, plus
 * the repr helpers messages are built with.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MARK: - The hierarchy (Python's builtins and asyncio.exceptions) */

const ca_error_type ca_BaseException = {"BaseException", NULL};
const ca_error_type ca_Exception = {"Exception", &ca_BaseException};
const ca_error_type ca_CancelledError = {"CancelledError", &ca_BaseException};
const ca_error_type ca_KeyboardInterrupt = {"KeyboardInterrupt", &ca_BaseException};
const ca_error_type ca_SystemExit = {"SystemExit", &ca_BaseException};
const ca_error_type ca_BaseExceptionGroup = {"BaseExceptionGroup", &ca_BaseException};
/* Python's ExceptionGroup derives from both BaseExceptionGroup and Exception;
 * single inheritance keeps the Exception side, and ca_error_type_is_subtype
 * adds the BaseExceptionGroup edge. */
const ca_error_type ca_ExceptionGroup = {"ExceptionGroup", &ca_Exception};
const ca_error_type ca_StopIteration = {"StopIteration", &ca_Exception};
const ca_error_type ca_RuntimeError = {"RuntimeError", &ca_Exception};
const ca_error_type ca_RecursionError = {"RecursionError", &ca_RuntimeError};
const ca_error_type ca_ValueError = {"ValueError", &ca_Exception};
const ca_error_type ca_TypeError = {"TypeError", &ca_Exception};
const ca_error_type ca_KeyError = {"KeyError", &ca_Exception};
const ca_error_type ca_MemoryError = {"MemoryError", &ca_Exception};
const ca_error_type ca_OSError = {"OSError", &ca_Exception};
const ca_error_type ca_TimeoutError = {"TimeoutError", &ca_OSError};
const ca_error_type ca_ConnectionError = {"ConnectionError", &ca_OSError};
const ca_error_type ca_BrokenPipeError = {"BrokenPipeError", &ca_ConnectionError};
const ca_error_type ca_ConnectionResetError = {"ConnectionResetError", &ca_ConnectionError};
const ca_error_type ca_ConnectionRefusedError = {"ConnectionRefusedError", &ca_ConnectionError};
const ca_error_type ca_ConnectionAbortedError = {"ConnectionAbortedError", &ca_ConnectionError};
const ca_error_type ca_InvalidStateError = {"InvalidStateError", &ca_Exception};
const ca_error_type ca_QueueEmpty = {"QueueEmpty", &ca_Exception};
const ca_error_type ca_QueueFull = {"QueueFull", &ca_Exception};
const ca_error_type ca_QueueShutDown = {"QueueShutDown", &ca_Exception};
const ca_error_type ca_BrokenBarrierError = {"BrokenBarrierError", &ca_RuntimeError};
const ca_error_type ca_EOFError = {"EOFError", &ca_Exception};
const ca_error_type ca_IncompleteReadError = {"IncompleteReadError", &ca_EOFError};
const ca_error_type ca_LimitOverrunError = {"LimitOverrunError", &ca_Exception};

static void error_dealloc(ca_object *op);
const ca_type ca_ErrorType = {"Error", sizeof(ca_error), error_dealloc, NULL};

/* Returned when an error cannot be allocated: immortal, so handing out
 * references to it never frees it. */
static ca_error memory_error_singleton = {
    .ob_base = {CA_IMMORTAL_REFCNT, &ca_ErrorType},
    .type = &ca_MemoryError,
};

bool ca_error_type_is_subtype(const ca_error_type *type, const ca_error_type *base) {
    for (const ca_error_type *t = type; t != NULL; t = t->base) {
        if (t == base) return true;
        if (t == &ca_ExceptionGroup && base == &ca_BaseExceptionGroup) return true;
    }
    return false;
}

bool ca_error_matches(const ca_error *err, const ca_error_type *type) {
    return err != NULL && ca_error_type_is_subtype(err->type, type);
}

static ca_error *error_alloc(const ca_error_type *type) {
    ca_error *e = ca_small_alloc(sizeof(ca_error));
    if (e == NULL) return ca_incref(&memory_error_singleton);
    memset(e, 0, sizeof *e);
    ca_object_init(e, &ca_ErrorType);
    e->type = type;
    return e;
}

ca_error *ca_error_new(const ca_error_type *type, const char *message) {
    ca_error *e = error_alloc(type);
    if (e == &memory_error_singleton || message == NULL) return e;
    e->message = ca_strdup(message);
    if (e->message == NULL) {
        ca_decref(e);
        return ca_incref(&memory_error_singleton);
    }
    return e;
}

ca_error *ca_error_format(const ca_error_type *type, const char *fmt, ...) {
    char small_buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small_buf, sizeof small_buf, fmt, ap);
    va_end(ap);
    if (n < 0) return ca_error_new(type, fmt);
    if ((size_t)n < sizeof small_buf) return ca_error_new(type, small_buf);
    char *big = ca_malloc((size_t)n + 1);
    if (big == NULL) return ca_incref(&memory_error_singleton);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ca_error *e = ca_error_new(type, big);
    ca_free(big);
    return e;
}

ca_error *ca_error_from_errno(const ca_error_type *type, int err_no, const char *message) {
    ca_error *e;
    if (message != NULL)
        e = ca_error_format(type, "[Errno %d] %s: %s", err_no, strerror(err_no), message);
    else
        e = ca_error_format(type, "[Errno %d] %s", err_no, strerror(err_no));
    if (e != &memory_error_singleton) e->err_no = err_no;
    return e;
}

ca_error *ca_error_group_new(const char *message, ca_error *const *errors, size_t n) {
    bool all_exceptions = true;
    for (size_t i = 0; i < n; i++)
        if (!ca_error_matches(errors[i], &ca_Exception)) all_exceptions = false;
    ca_error *g = ca_error_new(all_exceptions ? &ca_ExceptionGroup : &ca_BaseExceptionGroup, message);
    if (g == &memory_error_singleton || n == 0) return g;
    g->children = ca_malloc(n * sizeof(ca_error *));
    if (g->children == NULL) {
        ca_decref(g);
        return ca_incref(&memory_error_singleton);
    }
    for (size_t i = 0; i < n; i++) g->children[i] = ca_incref(errors[i]);
    g->nchildren = n;
    return g;
}

void ca_error_set_cause(ca_error *err, ca_error *cause) {
    if (err == NULL || err == &memory_error_singleton) return;
    ca_incref(cause);
    CA_CLEAR(err->cause);
    err->cause = cause;
    err->suppress_context = true;
}

void ca_error_set_context(ca_error *err, ca_error *context) {
    if (err == NULL || err == &memory_error_singleton || context == err) return;
    /* Python's _PyErr_SetObject: cut the chain where it would loop back. */
    for (ca_error *o = context; o != NULL; o = o->context) {
        if (o->context == err) {
            CA_CLEAR(o->context);
            break;
        }
    }
    ca_incref(context);
    CA_CLEAR(err->context);
    err->context = context;
}

const char *ca_error_message(const ca_error *err) {
    return (err != NULL && err->message != NULL) ? err->message : "";
}

size_t ca_error_describe(const ca_error *err, char *buf, size_t size) {
    ca_strbuf sb = {buf, size, 0};
    if (size > 0) buf[0] = '\0';
    if (err == NULL) {
        ca_strbuf_printf(&sb, "None");
    } else if (err->message != NULL) {
        ca_strbuf_printf(&sb, "%s: %s", err->type->name, err->message);
    } else {
        ca_strbuf_printf(&sb, "%s", err->type->name);
    }
    return sb.len;
}

static void error_dealloc(ca_object *op) {
    ca_error *e = (ca_error *)op;
    if (e == &memory_error_singleton) return;
    ca_free(e->message);
    CA_CLEAR(e->cause);
    /* Iterative release of long __context__ chains avoids deep recursion. */
    ca_error *ctx = e->context;
    e->context = NULL;
    for (size_t i = 0; i < e->nchildren; i++) ca_decref(e->children[i]);
    ca_free(e->children);
    ca_value_clear(&e->payload);
    ca_small_free(e, sizeof(ca_error));
    while (ctx != NULL) {
        if (--ctx->ob_base.ob_refcnt > 0) break;
        ca_error *next = ctx->context;
        ctx->context = NULL;
        ctx->ob_base.ob_refcnt = 1;
        ca_decref(ctx);
        ctx = next;
    }
}

/* MARK: - repr helpers */

void ca_strbuf_printf(ca_strbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *dst = NULL;
    size_t avail = 0;
    if (sb->buf != NULL && sb->len < sb->size) {
        dst = sb->buf + sb->len;
        avail = sb->size - sb->len;
    }
    int n = vsnprintf(dst, avail, fmt, ap);
    va_end(ap);
    if (n > 0) sb->len += (size_t)n;
}

void ca_repr_str(ca_strbuf *sb, const char *s) {
    if (s == NULL) {
        ca_strbuf_printf(sb, "None");
        return;
    }
    /* single quotes unless the text has a single quote and no double quote */
    char q = strchr(s, '\'') != NULL && strchr(s, '"') == NULL ? '"' : '\'';
    ca_strbuf_printf(sb, "%c", q);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '\\' || *c == (unsigned char)q) ca_strbuf_printf(sb, "\\%c", *c);
        else if (*c == '\n') ca_strbuf_printf(sb, "\\n");
        else if (*c == '\r') ca_strbuf_printf(sb, "\\r");
        else if (*c == '\t') ca_strbuf_printf(sb, "\\t");
        else if (*c < 0x20 || *c == 0x7f) ca_strbuf_printf(sb, "\\x%02x", *c);
        else ca_strbuf_printf(sb, "%c", *c);
    }
    ca_strbuf_printf(sb, "%c", q);
}

static void repr_double(ca_strbuf *sb, double d) {
    if (isnan(d)) { ca_strbuf_printf(sb, "nan"); return; }
    if (isinf(d)) { ca_strbuf_printf(sb, d > 0 ? "inf" : "-inf"); return; }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) break;
    }
    /* Python always shows a float as a float: "1.0", not "1". */
    if (strpbrk(tmp, ".eni") == NULL) strcat(tmp, ".0");
    ca_strbuf_printf(sb, "%s", tmp);
}

void ca_value_repr(ca_strbuf *sb, const ca_value *v) {
    switch (v->kind) {
    case CA_VALUE_NONE: ca_strbuf_printf(sb, "None"); break;
    case CA_VALUE_INT: ca_strbuf_printf(sb, "%lld", (long long)v->u.i); break;
    case CA_VALUE_DOUBLE: repr_double(sb, v->u.d); break;
    case CA_VALUE_PTR: ca_strbuf_printf(sb, "<pointer %p>", v->u.ptr.p); break;
    case CA_VALUE_OBJECT:
        if (v->u.obj == NULL) ca_strbuf_printf(sb, "None");
        else if (ca_object_is_instance(v->u.obj, &ca_ErrorType)) ca_error_repr(sb, (ca_error *)v->u.obj);
        else ca_strbuf_printf(sb, "<%s object at %p>", v->u.obj->ob_type->tp_name, (void *)v->u.obj);
        break;
    }
}

void ca_error_repr(ca_strbuf *sb, const ca_error *err) {
    if (err == NULL) { ca_strbuf_printf(sb, "None"); return; }
    ca_strbuf_printf(sb, "%s(", err->type->name);
    if (err->message != NULL) ca_repr_str(sb, err->message);
    ca_strbuf_printf(sb, ")");
}

void ca_fn_repr(ca_strbuf *sb, const void *fn) {
    Dl_info info;
    void *addr;
    memcpy(&addr, &fn, sizeof addr);
    if (dladdr(addr, &info) != 0 && info.dli_sname != NULL && info.dli_saddr == addr)
        ca_strbuf_printf(sb, "%s()", info.dli_sname);
    else
        ca_strbuf_printf(sb, "<function at %p>()", addr);
}

void ca_coro_repr(ca_strbuf *sb, const ca_coro *coro) {
    if (coro == NULL) { ca_strbuf_printf(sb, "None"); return; }
    const char *what = coro->co_state == CA_CORO_CLOSED ? "done, defined" : "running";
    int line = coro->co_lineno ? coro->co_lineno : coro->co_firstlineno;
    ca_strbuf_printf(sb, "<%s() %s at %s:%d>", coro->co_name ? coro->co_name : "coroutine", what,
                     coro->co_filename ? coro->co_filename : "?", line);
}
