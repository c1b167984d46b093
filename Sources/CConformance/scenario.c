/*
 * scenario.c — checks a scenario against the language of SPEC.md (what the
 * reference's validate() refuses) and compiles its ops: ids become slots,
 * callback tags indexes, error names types, messages their rendering.
 */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MARK: - The op table (the reference's OPS) */

typedef enum ftype {
    T_ID, T_REF, T_REFS, T_TAG, T_BODY, T_VALUE, T_INT, T_MS, T_MS_OR_NULL, T_BOOL, T_STR, T_ERRNAME,
    T_RETURN_WHEN, T_QKIND, T_EXCEPT,
} ftype;

typedef struct fspec {
    uint8_t f;        /* field */
    uint8_t t;        /* ftype */
    bool required;
} fspec;

typedef struct opspec {
    const char *name;
    fspec fields[6];
    uint8_t nfields;
} opspec;

#define R(f, t) {f, t, true}
#define O(f, t) {f, t, false}
#define SPEC(name, ...) {name, {__VA_ARGS__}, sizeof((fspec[]){__VA_ARGS__}) / sizeof(fspec)}
#define SPEC0(name) {name, {{0, 0, false}}, 0}

static const opspec OPS[OP_COUNT_] = {
    [OP_FUTURE] = SPEC("future", R(F_ID, T_ID)),
    [OP_SPAWN] = SPEC("spawn", R(F_ID, T_ID), R(F_BODY, T_BODY), O(F_NAME, T_STR), O(F_GROUP, T_REF),
                      O(F_EAGER, T_BOOL)),
    [OP_CORO] = SPEC("coro", R(F_ID, T_ID), R(F_BODY, T_BODY)),
    [OP_GATHER] = SPEC("gather", R(F_ID, T_ID), R(F_ITEMS, T_REFS), O(F_RETURN_EXCEPTIONS, T_BOOL)),
    [OP_SHIELD] = SPEC("shield", R(F_ID, T_ID), R(F_ITEM, T_REF)),
    [OP_WAIT_FOR] = SPEC("wait_for", R(F_ID, T_ID), R(F_ITEM, T_REF), R(F_TIMEOUT, T_MS_OR_NULL)),
    [OP_WAIT] = SPEC("wait", R(F_ID, T_ID), R(F_ITEMS, T_REFS), O(F_TIMEOUT, T_MS_OR_NULL),
                     O(F_RETURN_WHEN, T_RETURN_WHEN)),
    [OP_LOCK] = SPEC("lock", R(F_ID, T_ID)),
    [OP_EVENT] = SPEC("event", R(F_ID, T_ID)),
    [OP_CONDITION] = SPEC("condition", R(F_ID, T_ID), O(F_LOCK, T_REF)),
    [OP_SEMAPHORE] = SPEC("semaphore", R(F_ID, T_ID), O(F_VALUE, T_INT)),
    [OP_BOUNDED_SEMAPHORE] = SPEC("bounded_semaphore", R(F_ID, T_ID), O(F_VALUE, T_INT)),
    [OP_QUEUE] = SPEC("queue", R(F_ID, T_ID), O(F_KIND, T_QKIND), O(F_MAXSIZE, T_INT)),
    [OP_CALL_SOON] = SPEC("call_soon", R(F_CB, T_TAG), O(F_ID, T_ID)),
    [OP_CALL_LATER] = SPEC("call_later", R(F_CB, T_TAG), R(F_DELAY, T_MS), O(F_ID, T_ID)),
    [OP_CALL_AT] = SPEC("call_at", R(F_CB, T_TAG), R(F_AT, T_MS), O(F_ID, T_ID)),
    [OP_ADD_DONE_CALLBACK] = SPEC("add_done_callback", R(F_TARGET, T_REF), R(F_CB, T_TAG)),
    [OP_SET_RESULT] = SPEC("set_result", R(F_TARGET, T_REF), O(F_VALUE, T_VALUE)),
    [OP_SET_EXCEPTION] = SPEC("set_exception", R(F_TARGET, T_REF), R(F_ERROR, T_ERRNAME), O(F_MSG, T_VALUE)),
    [OP_CANCEL] = SPEC("cancel", R(F_TARGET, T_REF), O(F_MSG, T_VALUE)),
    [OP_UNCANCEL] = SPEC("uncancel", R(F_TARGET, T_REF)),
    [OP_CANCELLING] = SPEC("cancelling", R(F_TARGET, T_REF)),
    [OP_DONE] = SPEC("done", R(F_TARGET, T_REF)),
    [OP_CANCELLED] = SPEC("cancelled", R(F_TARGET, T_REF)),
    [OP_RESULT] = SPEC("result", R(F_TARGET, T_REF)),
    [OP_EXCEPTION] = SPEC("exception", R(F_TARGET, T_REF)),
    [OP_GET_NAME] = SPEC("get_name", R(F_TARGET, T_REF)),
    [OP_REMOVE_DONE_CALLBACK] = SPEC("remove_done_callback", R(F_TARGET, T_REF), R(F_CB, T_TAG)),
    [OP_CURRENT_TASK] = SPEC0("current_task"),
    [OP_ALL_TASKS] = SPEC0("all_tasks"),
    [OP_RELEASE] = SPEC("release", R(F_TARGET, T_REF)),
    [OP_LOCKED] = SPEC("locked", R(F_TARGET, T_REF)),
    [OP_EVENT_SET] = SPEC("event_set", R(F_TARGET, T_REF)),
    [OP_EVENT_CLEAR] = SPEC("event_clear", R(F_TARGET, T_REF)),
    [OP_IS_SET] = SPEC("is_set", R(F_TARGET, T_REF)),
    [OP_NOTIFY] = SPEC("notify", R(F_TARGET, T_REF), O(F_N, T_INT)),
    [OP_NOTIFY_ALL] = SPEC("notify_all", R(F_TARGET, T_REF)),
    [OP_PUT_NOWAIT] = SPEC("put_nowait", R(F_TARGET, T_REF), R(F_VALUE, T_VALUE)),
    [OP_GET_NOWAIT] = SPEC("get_nowait", R(F_TARGET, T_REF)),
    [OP_TASK_DONE] = SPEC("task_done", R(F_TARGET, T_REF)),
    [OP_QSIZE] = SPEC("qsize", R(F_TARGET, T_REF)),
    [OP_EMPTY] = SPEC("empty", R(F_TARGET, T_REF)),
    [OP_FULL] = SPEC("full", R(F_TARGET, T_REF)),
    [OP_SHUTDOWN] = SPEC("shutdown", R(F_TARGET, T_REF), O(F_IMMEDIATE, T_BOOL)),
    [OP_RESCHEDULE] = SPEC("reschedule", R(F_TARGET, T_REF), O(F_AT, T_MS_OR_NULL), O(F_DELAY, T_MS)),
    [OP_WHEN] = SPEC("when", R(F_TARGET, T_REF)),
    [OP_EXPIRED] = SPEC("expired", R(F_TARGET, T_REF)),
    [OP_AWAIT] = SPEC("await", R(F_TARGET, T_REF)),
    [OP_SLEEP] = SPEC("sleep", R(F_MS, T_MS), O(F_RESULT, T_VALUE)),
    [OP_ACQUIRE] = SPEC("acquire", R(F_TARGET, T_REF)),
    [OP_EVENT_WAIT] = SPEC("event_wait", R(F_TARGET, T_REF)),
    [OP_COND_WAIT] = SPEC("cond_wait", R(F_TARGET, T_REF)),
    [OP_PUT] = SPEC("put", R(F_TARGET, T_REF), R(F_VALUE, T_VALUE)),
    [OP_GET] = SPEC("get", R(F_TARGET, T_REF)),
    [OP_JOIN] = SPEC("join", R(F_TARGET, T_REF)),
    [OP_TRY] = SPEC("try", R(F_BODY, T_BODY), O(F_EXCEPT, T_EXCEPT), O(F_FINALLY, T_BODY)),
    [OP_TIMEOUT] = SPEC("timeout", R(F_ID, T_ID), R(F_BODY, T_BODY), O(F_DELAY, T_MS_OR_NULL),
                        O(F_AT, T_MS_OR_NULL)),
    [OP_TASKGROUP] = SPEC("taskgroup", R(F_ID, T_ID), R(F_BODY, T_BODY)),
    [OP_WITH] = SPEC("with", R(F_TARGET, T_REF), R(F_BODY, T_BODY)),
    [OP_REPEAT] = SPEC("repeat", R(F_COUNT, T_INT), R(F_BODY, T_BODY)),
    [OP_LOG] = SPEC("log", R(F_MSG, T_STR)),
    [OP_RETURN] = SPEC("return", O(F_VALUE, T_VALUE)),
    [OP_RAISE] = SPEC("raise", R(F_ERROR, T_ERRNAME), O(F_MSG, T_VALUE)),
    [OP_RERAISE] = SPEC0("reraise"),
};

static const char *const FIELD_NAMES[F_COUNT_] = {
    [F_ID] = "id", [F_TARGET] = "target", [F_CB] = "cb", [F_ITEM] = "item", [F_ITEMS] = "items",
    [F_NAME] = "name", [F_GROUP] = "group", [F_LOCK] = "lock", [F_ERROR] = "error", [F_MSG] = "msg",
    [F_VALUE] = "value", [F_RESULT] = "result", [F_MS] = "ms", [F_DELAY] = "delay", [F_AT] = "at",
    [F_TIMEOUT] = "timeout", [F_RETURN_WHEN] = "return_when", [F_KIND] = "kind", [F_MAXSIZE] = "maxsize",
    [F_N] = "n", [F_COUNT] = "count", [F_EAGER] = "eager", [F_RETURN_EXCEPTIONS] = "return_exceptions",
    [F_IMMEDIATE] = "immediate", [F_BODY] = "body", [F_EXCEPT] = "except", [F_FINALLY] = "finally",
};

const char *opcode_name(int code) { return OPS[code].name; }

/* Built-in names a user error may not take (Python's builtins matching the
 * user error pattern, 3.11 to 3.14). */
static const char *const PY_BUILTIN_NAMES[] = {
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "BaseExceptionGroup",
    "BlockingIOError", "BrokenPipeError", "BufferError", "BytesWarning", "ChildProcessError",
    "ConnectionAbortedError", "ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
    "DeprecationWarning", "EOFError", "Ellipsis", "EncodingWarning", "EnvironmentError", "Exception",
    "ExceptionGroup", "False", "FileExistsError", "FileNotFoundError", "FloatingPointError", "FutureWarning",
    "GeneratorExit", "IOError", "ImportError", "ImportWarning", "IndentationError", "IndexError",
    "InterruptedError", "IsADirectoryError", "KeyError", "KeyboardInterrupt", "LookupError", "MemoryError",
    "ModuleNotFoundError", "NameError", "None", "NotADirectoryError", "NotImplemented", "NotImplementedError",
    "OSError", "OverflowError", "PendingDeprecationWarning", "PermissionError", "ProcessLookupError",
    "PythonFinalizationError", "RecursionError", "ReferenceError", "ResourceWarning", "RuntimeError",
    "RuntimeWarning", "StopAsyncIteration", "StopIteration", "SyntaxError", "SyntaxWarning", "SystemError",
    "SystemExit", "TabError", "TimeoutError", "True", "TypeError", "UnboundLocalError", "UnicodeDecodeError",
    "UnicodeEncodeError", "UnicodeError", "UnicodeTranslateError", "UnicodeWarning", "UserWarning",
    "ValueError", "Warning", "ZeroDivisionError",
};

static const struct {
    const char *name;
    const ca_error_type *type;
    bool catch_only;
} ERROR_NAMES[] = {
    {"CancelledError", &ca_CancelledError, false},
    {"TimeoutError", &ca_TimeoutError, false},
    {"InvalidStateError", &ca_InvalidStateError, false},
    {"QueueEmpty", &ca_QueueEmpty, false},
    {"QueueFull", &ca_QueueFull, false},
    {"QueueShutDown", &ca_QueueShutDown, false},
    {"RuntimeError", &ca_RuntimeError, false},
    {"ValueError", &ca_ValueError, false},
    {"TypeError", &ca_TypeError, false},
    {"Exception", &ca_Exception, true},
    {"BaseException", &ca_BaseException, true},
    {"ExceptionGroup", &ca_ExceptionGroup, true},
    {"BaseExceptionGroup", &ca_BaseExceptionGroup, true},
};

/* MARK: - Compiler state */

typedef struct compiler {
    scenario *scn;
    char *err;
    size_t errsize;
    bool failed;
    bool has_shutdown;  /* "requires" lists queue_shutdown */
    bool has_eager;     /* "requires" lists eager_start */
} compiler;

static bool bad(compiler *c, const char *where, const char *fmt, const char *arg) {
    if (!c->failed) {
        char what[256];
        snprintf(what, sizeof what, fmt, arg ? arg : "");
        snprintf(c->err, c->errsize, "%s: %s", where, what);
    }
    c->failed = true;
    return false;
}

static bool is_text(const jv *v) {
    if (v == NULL || v->kind != JV_STR) return false;
    for (size_t i = 0; i < v->len; i++)
        if ((unsigned char)v->s[i] < 0x20 || (unsigned char)v->s[i] > 0x7E) return false;
    return true;
}

static bool is_value(const jv *v, int depth) {
    switch (v->kind) {
    case JV_NULL:
    case JV_BOOL:
    case JV_INT: return true;
    case JV_STR: return is_text(v);
    case JV_LIST:
        if (depth > 0) return false;
        for (size_t i = 0; i < v->len; i++)
            if (!is_value(v->items[i], 1)) return false;
        return true;
    default: return false;
    }
}

static bool matches_id(const jv *v) {
    if (v == NULL || v->kind != JV_STR || v->len == 0) return false;
    for (size_t i = 0; i < v->len; i++) {
        char ch = v->s[i];
        bool alpha = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
        if (!alpha && !(i > 0 && ch >= '0' && ch <= '9')) return false;
    }
    return true;
}

static bool matches_tag(const jv *v) {
    if (v == NULL || v->kind != JV_STR || v->len == 0) return false;
    for (size_t i = 0; i < v->len; i++) {
        char ch = v->s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return false;
    }
    return true;
}

static int intern_id(compiler *c, const char *id) {
    scenario *s = c->scn;
    for (size_t i = 0; i < s->nids; i++)
        if (strcmp(s->ids[i], id) == 0) return (int)i;
    char **ids = realloc(s->ids, (s->nids + 1) * sizeof *ids);
    char *copy = strdup(id);
    if (ids == NULL || copy == NULL) {
        free(copy);
        if (ids != NULL) s->ids = ids;
        bad(c, "scenario", "out of memory%s", NULL);
        return 0;
    }
    s->ids = ids;
    s->ids[s->nids] = copy;
    return (int)s->nids++;
}

static int intern_tag(compiler *c, const char *tag) {
    scenario *s = c->scn;
    for (size_t i = 0; i < s->ntags; i++)
        if (strcmp(s->tags[i].name, tag) == 0) return (int)i;
    cbtag *tags = realloc(s->tags, (s->ntags + 1) * sizeof *tags);
    if (tags == NULL) {
        bad(c, "scenario", "out of memory%s", NULL);
        return 0;
    }
    s->tags = tags;
    cbtag *t = &s->tags[s->ntags];
    memset(t, 0, sizeof *t);
    t->name = tag;
    size_t n = strlen(tag) + 4;
    t->actor = malloc(n);
    if (t->actor != NULL) snprintf(t->actor, n, "cb:%s", tag);
    else bad(c, "scenario", "out of memory%s", NULL);
    return (int)s->ntags++;
}

/* The type an error name denotes; user names get one type per scenario. */
static const ca_error_type *error_type(compiler *c, const jv *v, const char *where, bool catch) {
    if (v == NULL || v->kind != JV_STR) {
        bad(c, where, "error name must be a string%s", NULL);
        return NULL;
    }
    for (size_t i = 0; i < sizeof ERROR_NAMES / sizeof ERROR_NAMES[0]; i++) {
        if (strcmp(ERROR_NAMES[i].name, v->s) != 0) continue;
        if (ERROR_NAMES[i].catch_only && !catch) {
            bad(c, where, "%s can only be caught, not raised", v->s);
            return NULL;
        }
        return ERROR_NAMES[i].type;
    }
    bool user = v->len > 0 && v->s[0] >= 'A' && v->s[0] <= 'Z' && matches_tag(v);
    for (size_t i = 0; user && i < sizeof PY_BUILTIN_NAMES / sizeof PY_BUILTIN_NAMES[0]; i++)
        if (strcmp(PY_BUILTIN_NAMES[i], v->s) == 0) user = false;
    if (!user) {
        bad(c, where, "bad user error name '%s'", v->s);
        return NULL;
    }
    scenario *s = c->scn;
    for (size_t i = 0; i < s->nuser_types; i++)
        if (strcmp(s->user_types[i]->name, v->s) == 0) return s->user_types[i];
    ca_error_type **types = realloc(s->user_types, (s->nuser_types + 1) * sizeof *types);
    ca_error_type *t = malloc(sizeof *t);
    if (types == NULL || t == NULL) {
        free(t);
        if (types != NULL) s->user_types = types;
        bad(c, where, "out of memory%s", NULL);
        return NULL;
    }
    *t = (ca_error_type){v->s, &ca_Exception};
    s->user_types = types;
    s->user_types[s->nuser_types++] = t;
    return t;
}

/* MARK: - Ops and bodies */

static bool compile_body(compiler *c, const jv *v, body *out, const char *where, bool in_cb, bool in_handler);

static bool is_int(const jv *v) { return v != NULL && v->kind == JV_INT; }

static bool check_field(compiler *c, op *o, const fspec *fs, const char *where, bool in_cb, bool in_handler) {
    const jv *v = o->f[fs->f];
    char sub[512];
    snprintf(sub, sizeof sub, "%s.%s", where, FIELD_NAMES[fs->f]);
    switch ((ftype)fs->t) {
    case T_ID:
        if (!matches_id(v) || strcmp(v->s, "null") == 0 || strcmp(v->s, "true") == 0 ||
            strcmp(v->s, "false") == 0 || strcmp(v->s, "runner") == 0)
            return bad(c, sub, "bad id%s", NULL);
        o->slot[fs->f] = intern_id(c, v->s);
        return true;
    case T_REF:
        if (!matches_id(v)) return bad(c, sub, "bad reference%s", NULL);
        o->slot[fs->f] = intern_id(c, v->s);
        return true;
    case T_REFS:
        if (v->kind != JV_LIST) return bad(c, sub, "must be a list of ids%s", NULL);
        o->items = calloc(v->len ? v->len : 1, sizeof *o->items);
        if (o->items == NULL) return bad(c, sub, "out of memory%s", NULL);
        for (size_t i = 0; i < v->len; i++) {
            if (!matches_id(v->items[i])) return bad(c, sub, "must be a list of ids%s", NULL);
            o->items[o->nitems++] = intern_id(c, v->items[i]->s);
        }
        return true;
    case T_TAG:
        if (!matches_tag(v)) return bad(c, sub, "bad callback tag%s", NULL);
        o->tag = intern_tag(c, v->s);
        return true;
    case T_BODY: {
        /* a spawned or coro body is a new coroutine: no handler is active */
        bool fresh = o->code == OP_SPAWN || o->code == OP_CORO;
        return compile_body(c, v, fs->f == F_FINALLY ? &o->fin : &o->body, sub, fresh ? false : in_cb,
                            fresh ? false : in_handler);
    }
    case T_VALUE:
        if (!is_value(v, 0))
            return bad(c, sub, "values are null, booleans, ints, printable-ASCII strings or flat lists%s", NULL);
        return true;
    case T_INT:
    case T_MS:
        if (!is_int(v)) return bad(c, sub, "must be an integer%s", NULL);
        return true;
    case T_MS_OR_NULL:
        if (v->kind != JV_NULL && !is_int(v)) return bad(c, sub, "must be an integer or null%s", NULL);
        return true;
    case T_BOOL:
        if (v->kind != JV_BOOL) return bad(c, sub, "must be a boolean%s", NULL);
        return true;
    case T_STR:
        if (!is_text(v)) return bad(c, sub, "must be a printable-ASCII string%s", NULL);
        return true;
    case T_ERRNAME:
        o->error = error_type(c, v, sub, false);
        return o->error != NULL;
    case T_RETURN_WHEN:
        if (v->kind != JV_STR || (strcmp(v->s, "ALL_COMPLETED") != 0 && strcmp(v->s, "FIRST_COMPLETED") != 0 &&
                                  strcmp(v->s, "FIRST_EXCEPTION") != 0))
            return bad(c, sub, "bad return_when%s", NULL);
        return true;
    case T_QKIND:
        if (v->kind != JV_STR ||
            (strcmp(v->s, "fifo") != 0 && strcmp(v->s, "lifo") != 0 && strcmp(v->s, "priority") != 0))
            return bad(c, sub, "bad queue kind%s", NULL);
        return true;
    case T_EXCEPT: {
        if (v->kind != JV_LIST) return bad(c, sub, "must be a list%s", NULL);
        o->handlers = calloc(v->len ? v->len : 1, sizeof *o->handlers);
        if (o->handlers == NULL) return bad(c, sub, "out of memory%s", NULL);
        for (size_t j = 0; j < v->len; j++) {
            const jv *h = v->items[j];
            char hw[600];
            snprintf(hw, sizeof hw, "%s[%zu]", sub, j);
            handler *hd = &o->handlers[o->nhandlers++];
            if (h->kind != JV_OBJ || jv_get(h, "error") == NULL)
                return bad(c, hw, "handler is {\"error\": name-or-list, \"body\": [...]}%s", NULL);
            for (size_t k = 0; k < h->len; k++)
                if (strcmp(h->keys[k], "error") != 0 && strcmp(h->keys[k], "body") != 0)
                    return bad(c, hw, "handler is {\"error\": name-or-list, \"body\": [...]}%s", NULL);
            const jv *names = jv_get(h, "error");
            size_t n = names->kind == JV_LIST ? names->len : 1;
            if (n == 0) return bad(c, hw, "empty error list%s", NULL);
            hd->types = calloc(n, sizeof *hd->types);
            if (hd->types == NULL) return bad(c, hw, "out of memory%s", NULL);
            for (size_t k = 0; k < n; k++) {
                const ca_error_type *t = error_type(c, names->kind == JV_LIST ? names->items[k] : names, hw, true);
                if (t == NULL) return false;
                hd->types[hd->ntypes++] = t;
            }
            const jv *hb = jv_get(h, "body");
            if (hb != NULL && !compile_body(c, hb, &hd->body, hw, in_cb, true)) return false;
        }
        return true;
    }
    }
    return true;
}

static char *format_label(const op *o) {
    sbuf sb = {0};
    if (o->code == OP_SLEEP) sb_printf(&sb, "sleep %lld", (long long)o->f[F_MS]->i);
    else if (o->f[F_TARGET] != NULL) sb_printf(&sb, "%s %s", OPS[o->code].name, o->f[F_TARGET]->s);
    else if (o->f[F_ID] != NULL) sb_printf(&sb, "%s %s", OPS[o->code].name, o->f[F_ID]->s);
    else sb_puts(&sb, OPS[o->code].name);
    return sb_take(&sb);
}

/* Ops that may not appear in a callback body (they suspend, or end a body). */
static bool not_in_callbacks(int code) {
    return (code >= OP_AWAIT && code <= OP_REPEAT) || code == OP_RETURN || code == OP_RAISE || code == OP_RERAISE;
}

static bool compile_op(compiler *c, const jv *v, op *o, const char *where, bool in_cb, bool in_handler) {
    const jv *name = jv_get(v, "op");
    if (v->kind != JV_OBJ || name == NULL || name->kind != JV_STR)
        return bad(c, where, "an op must be an object with an 'op' string%s", NULL);
    int code = -1;
    for (int i = 0; i < OP_COUNT_; i++)
        if (strcmp(OPS[i].name, name->s) == 0) code = i;
    if (code < 0) return bad(c, where, "unknown op '%s'", name->s);
    o->code = (uint8_t)code;
    const opspec *spec = &OPS[code];
    char w[512];
    snprintf(w, sizeof w, "%s(%s)", where, spec->name);
    if (in_cb && not_in_callbacks(code)) return bad(c, w, "not allowed in a callback body%s", NULL);
    if (code == OP_SHUTDOWN && !c->has_shutdown) return bad(c, w, "needs \"requires\": [\"queue_shutdown\"]%s", NULL);
    for (size_t k = 0; k < v->len; k++) {
        if (strcmp(v->keys[k], "op") == 0) continue;
        const fspec *fs = NULL;
        for (size_t j = 0; j < spec->nfields; j++)
            if (strcmp(FIELD_NAMES[spec->fields[j].f], v->keys[k]) == 0) fs = &spec->fields[j];
        if (fs == NULL) return bad(c, w, "unknown field '%s'", v->keys[k]);
        if (code == OP_SPAWN && fs->f == F_EAGER && !c->has_eager)
            return bad(c, w, "eager needs \"requires\": [\"eager_start\"]%s", NULL);
        o->f[fs->f] = jv_get(v, v->keys[k]);
    }
    for (size_t j = 0; j < spec->nfields; j++)
        if (spec->fields[j].required && o->f[spec->fields[j].f] == NULL)
            return bad(c, w, "missing field '%s'", FIELD_NAMES[spec->fields[j].f]);
    if ((code == OP_TIMEOUT || code == OP_RESCHEDULE) && (o->f[F_DELAY] != NULL) == (o->f[F_AT] != NULL))
        return bad(c, w, "give exactly one of 'delay' and 'at'%s", NULL);
    if (code == OP_RERAISE && !in_handler) return bad(c, w, "only allowed inside an except handler%s", NULL);
    for (size_t j = 0; j < spec->nfields; j++) {
        if (o->f[spec->fields[j].f] == NULL) continue;
        if (!check_field(c, o, &spec->fields[j], w, in_cb, in_handler)) return false;
    }
    if (o->f[F_MSG] != NULL && code != OP_LOG && !(code == OP_CANCEL && o->f[F_MSG]->kind == JV_NULL)) {
        /* An error's first argument travels as its rendering (trace.c). */
        sbuf sb = {0};
        fmt_jv(&sb, o->f[F_MSG]);
        o->msg = sb_take(&sb);
    }
    o->label = format_label(o);
    if (o->label == NULL) return bad(c, w, "out of memory%s", NULL);
    return true;
}

static bool compile_body(compiler *c, const jv *v, body *out, const char *where, bool in_cb, bool in_handler) {
    if (v->kind != JV_LIST) return bad(c, where, "body must be a list of ops%s", NULL);
    out->ops = calloc(v->len ? v->len : 1, sizeof *out->ops);
    if (out->ops == NULL) return bad(c, where, "out of memory%s", NULL);
    for (size_t i = 0; i < v->len; i++) {
        char w[512];
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        op *o = &out->ops[out->n++];
        if (!compile_op(c, v->items[i], o, w, in_cb, in_handler)) return false;
    }
    return true;
}

/* MARK: - Scenarios */

int scenario_compile(jv *root, scenario *scn, char *err, size_t errsize) {
    memset(scn, 0, sizeof *scn);
    scn->root = root;
    compiler c = {scn, err, errsize, false, false, false};
    intern_id(&c, "main");
    if (root->kind != JV_OBJ) {
        bad(&c, "scenario", "scenario must be a JSON object%s", NULL);
        return CCONF_INVALID;
    }
    for (size_t i = 0; i < root->len; i++) {
        const char *k = root->keys[i];
        if (strcmp(k, "description") != 0 && strcmp(k, "requires") != 0 && strcmp(k, "callbacks") != 0 &&
            strcmp(k, "main") != 0) {
            bad(&c, "scenario", "unknown top-level key '%s'", k);
            return CCONF_INVALID;
        }
    }
    const jv *main = jv_get(root, "main");
    if (main == NULL) {
        bad(&c, "scenario", "missing 'main'%s", NULL);
        return CCONF_INVALID;
    }
    const jv *req = jv_get(root, "requires");
    if (req != NULL) {
        if (req->kind != JV_LIST) {
            bad(&c, "scenario", "'requires' must be a list of strings%s", NULL);
            return CCONF_INVALID;
        }
        for (size_t i = 0; i < req->len; i++) {
            const jv *r = req->items[i];
            if (r->kind != JV_STR) {
                bad(&c, "scenario", "'requires' must be a list of strings%s", NULL);
                return CCONF_INVALID;
            }
            /* The core provides both optional features of SPEC 6. */
            if (strcmp(r->s, "queue_shutdown") == 0) c.has_shutdown = true;
            else if (strcmp(r->s, "eager_start") == 0) c.has_eager = true;
            else {
                bad(&c, "scenario", "unknown feature '%s' in 'requires'", r->s);
                return CCONF_INVALID;
            }
        }
    }
    const jv *cbs = jv_get(root, "callbacks");
    if (cbs != NULL) {
        if (cbs->kind != JV_OBJ) {
            bad(&c, "scenario", "'callbacks' must be an object%s", NULL);
            return CCONF_INVALID;
        }
        for (size_t i = 0; i < cbs->len; i++) {
            jv tag = {.kind = JV_STR, .s = cbs->keys[i], .len = strlen(cbs->keys[i])};
            char w[300];
            snprintf(w, sizeof w, "callbacks.%.200s", cbs->keys[i]);
            if (!matches_tag(&tag)) {
                bad(&c, w, "bad callback tag%s", NULL);
                return CCONF_INVALID;
            }
            int t = intern_tag(&c, cbs->keys[i]);
            if (c.failed) return CCONF_INVALID;
            body b = {0};
            bool ok = compile_body(&c, cbs->items[i], &b, w, true, false);
            /* a repeated key: the last one wins, as in Python's json */
            scn->tags[t].body = b;
            if (!ok) return CCONF_INVALID;
        }
    }
    if (!compile_body(&c, main, &scn->main, "main", false, false)) return CCONF_INVALID;
    return CCONF_OK;
}

static void body_free(body *b) {
    for (size_t i = 0; i < b->n; i++) {
        op *o = &b->ops[i];
        free(o->items);
        free(o->msg);
        free(o->label);
        body_free(&o->body);
        body_free(&o->fin);
        for (size_t j = 0; j < o->nhandlers; j++) {
            free(o->handlers[j].types);
            body_free(&o->handlers[j].body);
        }
        free(o->handlers);
    }
    free(b->ops);
    b->ops = NULL;
    b->n = 0;
}

void scenario_free(scenario *scn) {
    body_free(&scn->main);
    for (size_t i = 0; i < scn->ntags; i++) {
        body_free(&scn->tags[i].body);
        free(scn->tags[i].actor);
    }
    free(scn->tags);
    for (size_t i = 0; i < scn->nids; i++) free(scn->ids[i]);
    free(scn->ids);
    for (size_t i = 0; i < scn->nuser_types; i++) free(scn->user_types[i]);
    free(scn->user_types);
    jv_free(scn->root);
    memset(scn, 0, sizeof *scn);
}
