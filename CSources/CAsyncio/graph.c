/*
 * graph.c — capture_call_graph / format_call_graph / print_call_graph as in
 * Lib/asyncio/graph.py (3.14). The coroutine stack of a task is its
 * task_coro followed through co_awaiting (the cr_await chain graph.py
 * follows); awaiters come from fut_awaited_by.
 */
#include "internal.h"

#include <casyncio/graph.h>
#include <inttypes.h>
#include <string.h>

/* A chain longer than this is a corrupted one; graph.py has no bound but
 * Python's recursion limit. */
#define MAX_CHAIN 100000
#define MAX_NESTING 1000

/* MARK: - Capture */

static void graph_free(ca_future_call_graph *g) {
    if (g == NULL) return;
    for (size_t i = 0; i < g->call_stack_len; i++) ca_decref(g->call_stack[i].coro);
    ca_free(g->call_stack);
    for (size_t i = 0; i < g->awaited_by_len; i++) graph_free(g->awaited_by[i]);
    ca_free(g->awaited_by);
    ca_decref(g->future);
    ca_free(g);
}

void ca_future_call_graph_free(ca_future_call_graph *graph) { graph_free(graph); }

static ca_error *not_a_future(const void *op) {
    const char *tp = op ? ((const ca_object *)op)->ob_type->tp_name : "NoneType";
    return ca_error_format(&ca_TypeError, "<%s object at %p> object does not appear to be compatible with asyncio.Future",
                           tp, op);
}

/* The task's coroutines, outermost first (graph.py's `st` before reverse). */
static ca_error *coro_chain(ca_task *task, ca_frame_call_graph_entry **out, size_t *len) {
    *out = NULL;
    *len = 0;
    size_t n = 0;
    for (ca_coro *c = task->task_coro; c != NULL && n < MAX_CHAIN; c = c->co_awaiting) n++;
    if (n == 0) return NULL;
    ca_frame_call_graph_entry *st = ca_calloc(n, sizeof *st);
    if (st == NULL) return ca_error_new(&ca_MemoryError, NULL);
    size_t i = 0;
    for (ca_coro *c = task->task_coro; c != NULL && i < n; c = c->co_awaiting, i++) {
        st[i].coro = ca_incref(c);
        st[i].name = c->co_name;
        st[i].filename = c->co_filename;
        st[i].lineno = c->co_lineno != 0 ? c->co_lineno : c->co_firstlineno;
    }
    *out = st;
    *len = n;
    return NULL;
}

static void reverse(ca_frame_call_graph_entry *st, size_t n) {
    for (size_t i = 0; i < n / 2; i++) {
        ca_frame_call_graph_entry tmp = st[i];
        st[i] = st[n - 1 - i];
        st[n - 1 - i] = tmp;
    }
}

/* Keeps st[from:from+count], releasing the rest. */
static void keep_slice(ca_frame_call_graph_entry *st, size_t *len, size_t from, size_t count) {
    for (size_t i = 0; i < *len; i++)
        if (i < from || i >= from + count) ca_decref(st[i].coro);
    memmove(st, st + from, count * sizeof *st);
    *len = count;
}

/* Python's seq[:k] (k may be negative) and seq[k:]. */
static void slice_head(ca_frame_call_graph_entry *st, size_t *len, long k) {
    long n = (long)*len;
    long end = k >= 0 ? (k < n ? k : n) : (n + k > 0 ? n + k : 0);
    keep_slice(st, len, 0, (size_t)end);
}
static void slice_tail(ca_frame_call_graph_entry *st, size_t *len, long k) {
    long n = (long)*len;
    long start = k >= 0 ? (k < n ? k : n) : (n + k > 0 ? n + k : 0);
    keep_slice(st, len, (size_t)start, (size_t)(n - start));
}

typedef struct path {
    const ca_future *fut;
    const struct path *up;
    int depth;
} path;

static ca_error *build_awaited_by(ca_future *fut, int limit, const path *up, ca_future_call_graph *g);

/* _build_graph_for_future */
static ca_error *build_graph_for_future(ca_future *fut, int limit, const path *up, ca_future_call_graph **out) {
    *out = NULL;
    if (!ca_future_check(fut)) return not_a_future(fut);
    for (const path *p = up; p != NULL; p = p->up)
        if (p->fut == fut)
            return ca_error_format(&ca_RuntimeError, "capture_call_graph(): the awaiters of %p form a cycle",
                                   (void *)fut);
    if (up != NULL && up->depth >= MAX_NESTING)
        return ca_error_new(&ca_RuntimeError, "capture_call_graph(): awaiters nested too deep");
    ca_future_call_graph *g = ca_calloc(1, sizeof *g);
    if (g == NULL) return ca_error_new(&ca_MemoryError, NULL);
    g->future = ca_incref(fut);
    ca_error *err = NULL;
    if (fut->fut_is_task && limit != 0) err = coro_chain((ca_task *)fut, &g->call_stack, &g->call_stack_len);
    path here = {fut, up, up ? up->depth + 1 : 1};
    if (err == NULL) err = build_awaited_by(fut, limit, &here, g);
    if (err != NULL) {
        graph_free(g);
        return err;
    }
    if (limit != CA_CALL_GRAPH_NO_LIMIT) {
        if (limit > 0) slice_head(g->call_stack, &g->call_stack_len, limit);
        else if (limit < 0) slice_tail(g->call_stack, &g->call_stack_len, limit);
    }
    reverse(g->call_stack, g->call_stack_len);
    *out = g;
    return NULL;
}

static ca_error *build_awaited_by(ca_future *fut, int limit, const path *up, ca_future_call_graph *g) {
    size_t n = ca_future_get_awaited_by(fut, NULL, 0);
    if (n == 0) return NULL;
    ca_future **parents = ca_calloc(n, sizeof *parents);
    g->awaited_by = ca_calloc(n, sizeof *g->awaited_by);
    if (parents == NULL || g->awaited_by == NULL) {
        ca_free(parents);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    n = ca_future_get_awaited_by(fut, parents, n);
    ca_error *err = NULL;
    for (size_t i = 0; i < n && err == NULL; i++) {
        err = build_graph_for_future(parents[i], limit, up, &g->awaited_by[i]);
        if (err == NULL) g->awaited_by_len++;
    }
    ca_free(parents);
    return err;
}

ca_error *ca_capture_call_graph(void *future, int depth, int limit, ca_future_call_graph **out) {
    *out = NULL;
    ca_tstate *ts = ca_tstate_get();
    ca_loop *loop = ts->running_loop;
    ca_task *current = loop != NULL ? ts->running_task : NULL;
    if (future != NULL) {
        if (loop == NULL || future != current) return build_graph_for_future(future, limit, NULL, out);
    } else {
        if (loop == NULL)
            return ca_error_new(&ca_RuntimeError, "capture_call_graph() is called outside of a running event loop "
                                                  "and no *future* to introspect was provided");
        future = current;
    }
    if (future == NULL) return NULL;
    if (!ca_future_check(future)) return not_a_future(future);

    /* The current task: its running chain, innermost (the caller) first,
     * skipping depth - 1 coroutines. */
    ca_future_call_graph *g = ca_calloc(1, sizeof *g);
    if (g == NULL) return ca_error_new(&ca_MemoryError, NULL);
    g->future = ca_incref(future);
    ca_error *err = NULL;
    if (limit != 0) {
        err = coro_chain(future, &g->call_stack, &g->call_stack_len);
        reverse(g->call_stack, g->call_stack_len);
        long skip = depth > 1 ? depth - 1 : 0;
        if (err == NULL) slice_tail(g->call_stack, &g->call_stack_len, skip);
    }
    path here = {future, NULL, 1};
    if (err == NULL) err = build_awaited_by(future, limit, &here, g);
    if (err != NULL) {
        graph_free(g);
        return err;
    }
    if (limit != CA_CALL_GRAPH_NO_LIMIT) {
        long trim = -(long)limit;
        if (trim > 0) slice_head(g->call_stack, &g->call_stack_len, trim);
        else if (trim < 0) slice_tail(g->call_stack, &g->call_stack_len, trim);
    }
    *out = g;
    return NULL;
}

/* MARK: - Format */

static void indent(ca_strbuf *sb, int level) {
    for (int i = 0; i < level; i++) ca_strbuf_printf(sb, "    ");
}

static void render_level(ca_strbuf *sb, const ca_future_call_graph *g, int level) {
    if (sb->len > 0) ca_strbuf_printf(sb, "\n");
    indent(sb, level);
    if (g->future->fut_is_task) {
        ca_strbuf_printf(sb, "* Task(name=");
        ca_repr_str(sb, ca_task_get_name((ca_task *)g->future));
        ca_strbuf_printf(sb, ", id=0x%" PRIxPTR ")", (uintptr_t)g->future);
    } else {
        ca_strbuf_printf(sb, "* Future(id=0x%" PRIxPTR ")", (uintptr_t)g->future);
    }
    if (g->call_stack_len > 0) {
        ca_strbuf_printf(sb, "\n");
        indent(sb, level);
        ca_strbuf_printf(sb, "  + Call stack:");
        for (size_t k = 0; k < g->call_stack_len; k++) {
            const ca_frame_call_graph_entry *e = &g->call_stack[k];
            ca_strbuf_printf(sb, "\n");
            indent(sb, level);
            ca_strbuf_printf(sb, "  |   File ");
            ca_repr_str(sb, e->filename ? e->filename : "");
            /* a Swift body's name is its #function, which has its parentheses */
            const char *name = e->name ? e->name : "";
            size_t n = strlen(name);
            ca_strbuf_printf(sb, ", line %d, in async %s%s", (int)e->lineno, name,
                             n > 0 && name[n - 1] == ')' ? "" : "()");
        }
    }
    if (g->awaited_by_len > 0) {
        ca_strbuf_printf(sb, "\n");
        indent(sb, level);
        ca_strbuf_printf(sb, "  + Awaited by:");
        for (size_t k = 0; k < g->awaited_by_len; k++) render_level(sb, g->awaited_by[k], level + 1);
    }
}

ca_error *ca_format_call_graph(void *future, int depth, int limit, char **out) {
    *out = NULL;
    ca_future_call_graph *g = NULL;
    ca_error *err = ca_capture_call_graph(future, depth, limit, &g);
    if (err != NULL) return err;
    /* Two passes over the captured graph: the first measures the text, the
     * second writes it into a buffer of that size. */
    ca_strbuf measure = {NULL, 0, 0};
    if (g != NULL) render_level(&measure, g, 0);
    char *text = ca_malloc(measure.len + 1);
    if (text == NULL) {
        graph_free(g);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    text[0] = '\0';
    ca_strbuf sb = {text, measure.len + 1, 0};
    if (g != NULL) render_level(&sb, g, 0);
    graph_free(g);
    *out = text;
    return NULL;
}

ca_error *ca_print_call_graph(void *future, FILE *file, int depth, int limit) {
    char *text = NULL;
    ca_error *err = ca_format_call_graph(future, depth, limit, &text);
    if (err != NULL) return err;
    if (file == NULL) file = stdout;
    fputs(text, file);
    fputc('\n', file);
    ca_free(text);
    return NULL;
}
