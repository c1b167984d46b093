/*
 * graph.h — asyncio.graph (CPython 3.14, Lib/asyncio/graph.py): the async
 * call graph of a task or future, captured from inside the process.
 *
 * A node is a future with its coroutine stack (for a task: the coroutine it
 * runs, then each coroutine that one awaits, shown innermost first) and the
 * nodes of the futures that await it (fut_awaited_by), recursively.
 *
 * C has no frame objects to skip, so `depth` counts coroutines: depth 1
 * starts the current task's stack at its innermost coroutine (the one
 * calling), depth 2 one coroutine further out. A running coroutine shows
 * the line of its last await (CPython shows the line executing).
 */
#ifndef CASYNCIO_GRAPH_H
#define CASYNCIO_GRAPH_H

#include <limits.h>
#include <stdio.h>

#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/** `limit=None`: keep every entry of every stack. */
enum { CA_CALL_GRAPH_NO_LIMIT = INT_MIN };

/** One coroutine of a stack (FrameCallGraphEntry). */
typedef struct ca_frame_call_graph_entry {
    ca_coro *coro;          /* strong reference */
    const char *name;       /* co_name (static string) */
    const char *filename;   /* co_filename (static string) */
    int32_t lineno;         /* the line of its current await (co_firstlineno when it has none) */
} ca_frame_call_graph_entry;

/** FutureCallGraph(future, call_stack, awaited_by). */
typedef struct ca_future_call_graph {
    ca_future *future;                      /* strong reference */
    ca_frame_call_graph_entry *call_stack;  /* innermost first */
    size_t call_stack_len;
    struct ca_future_call_graph **awaited_by;
    size_t awaited_by_len;
} ca_future_call_graph;

/**
 * capture_call_graph(future=None, /, *, depth=1, limit=None). `future` NULL
 * means the current task of the running loop. Stores the graph (free it
 * with ca_future_call_graph_free) in *out, or NULL when there is no current
 * task. `limit` truncates each stack to abs(limit) entries: for the current
 * task a positive limit keeps the outermost entries and a negative one the
 * innermost; for any other future a positive limit keeps the entries
 * closest to the task (outermost), a negative one the innermost (CPython's
 * slicing); 0 captures awaiters only. Errors: RuntimeError
 * "capture_call_graph() is called outside of a running event loop and no
 * *future* to introspect was provided"; TypeError "<...> object does not
 * appear to be compatible with asyncio.Future"; RuntimeError when the
 * awaiters form a cycle (CPython recurses until RecursionError);
 * MemoryError.
 */
struct ca_error *ca_capture_call_graph(void *future, int depth, int limit, ca_future_call_graph **out);

/** Releases a captured graph (NULL is accepted). */
void ca_future_call_graph_free(ca_future_call_graph *graph);

/**
 * format_call_graph(future=None, /, *, depth=1, limit=None): the graph as
 * text (no trailing newline; "" when there is no current task), e.g.
 *
 *     * Task(name='main', id=0x55d0c0a8e2d0)
 *       + Call stack:
 *       |   File 'app.c', line 42, in async main_body()
 *       + Awaited by:
 *           * Task(name='outer', id=0x55d0c0a8e5a0)
 *
 * A name that ends in ')' (a Swift body's #function, "main()") is shown
 * as it is; others get "()".
 *
 * Stores a NUL-terminated string to release with ca_free in *out.
 * Errors: ca_capture_call_graph's.
 */
struct ca_error *ca_format_call_graph(void *future, int depth, int limit, char **out);

/** print_call_graph(future=None, /, *, file=None, depth=1, limit=None):
 *  writes the text and a newline to `file` (NULL: stdout). */
struct ca_error *ca_print_call_graph(void *future, FILE *file, int depth, int limit);

#ifdef __cplusplus
}
#endif
#endif
