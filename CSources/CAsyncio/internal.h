/*
 * internal.h — structures and helpers shared by the core's files but not
 * part of the public API.
 */
#ifndef CASYNCIO_INTERNAL_H
#define CASYNCIO_INTERNAL_H

#include <casyncio/casyncio.h>
#include <stdatomic.h>
#include <string.h>

#include "backend.h"

#define CA_LIKELY(x) __builtin_expect(!!(x), 1)
#define CA_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* For the few hot helpers the compiler would otherwise keep out of line. */
#define CA_ALWAYS_INLINE inline __attribute__((always_inline))

/* Hot thread-locals use the initial-exec model: a plain %fs-relative load
 * instead of a __tls_get_addr call when the core is built position-independent. */
#define CA_TLS _Thread_local __attribute__((tls_model("initial-exec")))

/* MARK: - Small-block freelists (object.c) */

#define CA_SMALL_MAX 512
#define CA_SMALL_CLASSES (CA_SMALL_MAX / 16)
#define CA_SMALL_LIST_CAP (1u << 18)

typedef struct ca_small_block { struct ca_small_block *next; } ca_small_block;

/* Blocks above CA_SMALL_MAX (a gather's result list of 1000 items, say)
 * come from power-of-two classes up to CA_MEDIUM_MAX, a few kept per class. */
#define CA_MEDIUM_MIN_SHIFT 10
#define CA_MEDIUM_CLASSES 11 /* 1 KiB .. 1 MiB */
#define CA_MEDIUM_MAX ((size_t)1 << (CA_MEDIUM_MIN_SHIFT + CA_MEDIUM_CLASSES - 1))
#define CA_MEDIUM_LIST_CAP 16

/* A thread's lists. `room` counts the blocks a list may still take: zero
 * (as thread-local storage starts) until the thread registers the exit hook
 * that returns its lists, and again once that hook ran, so a thread that only
 * frees (a Swift wrapper dropped on some other thread) never strands a block
 * in lists nobody will return. */
typedef struct ca_small_lists {
    ca_small_block *head[CA_SMALL_CLASSES];
    uint32_t room[CA_SMALL_CLASSES];
    ca_small_block *medium_head[CA_MEDIUM_CLASSES];
    uint32_t medium_room[CA_MEDIUM_CLASSES];
    bool registered;
} ca_small_lists;

extern CA_TLS ca_small_lists ca_small;

void *ca_small_alloc_slow(size_t size);
void ca_small_free_slow(void *p, size_t size);

static inline size_t ca_small_class(size_t size) { return (size + 15) / 16 - 1; }

/** ca_small_alloc's fast path alone, for a `size` of 1..CA_SMALL_MAX: a
 *  block from the freelist, or NULL when it is empty (the caller's slow
 *  path then allocates with ca_small_alloc). Keeps the hottest inline
 *  paths free of calls, so the functions they are inlined into need no
 *  saved registers. */
static CA_ALWAYS_INLINE void *ca_small_alloc_pooled(size_t size) {
    size_t c = ca_small_class(size);
    ca_small_block *b = ca_small.head[c];
    if (CA_LIKELY(b != NULL)) {
        ca_small.head[c] = b->next;
        ca_small.room[c]++;
    }
    return b;
}

/** Allocates `size` bytes from the calling thread's size-class freelist
 *  (falls back to ca_malloc). Blocks up to CA_SMALL_MAX bytes are pooled. */
static inline void *ca_small_alloc(size_t size) {
    if (CA_LIKELY(size != 0 && size <= CA_SMALL_MAX)) {
        void *b = ca_small_alloc_pooled(size);
        if (CA_LIKELY(b != NULL)) return b;
    }
    return ca_small_alloc_slow(size);
}

/** Returns a block obtained from ca_small_alloc with the same `size`. */
static inline void ca_small_free(void *p, size_t size) {
    if (CA_LIKELY(p != NULL && size != 0 && size <= CA_SMALL_MAX)) {
        size_t c = ca_small_class(size);
        if (CA_LIKELY(ca_small.room[c] != 0)) {
            ca_small_block *b = p;
            b->next = ca_small.head[c];
            ca_small.head[c] = b;
            ca_small.room[c]--;
            return;
        }
    }
    ca_small_free_slow(p, size);
}

/** Initialises an object header (refcount 1). */
static inline void ca_object_init(void *op, const ca_type *type) {
    ((ca_object *)op)->ob_refcnt = 1;
    ((ca_object *)op)->ob_type = type;
}

/* MARK: - Per-thread state (CPython keeps these on _PyThreadStateImpl) */

typedef struct ca_tstate {
    ca_loop *running_loop;       /* borrowed: set while run_forever runs */
    ca_task *running_task;       /* borrowed: the task whose step runs now */
    ca_llist_node tasks_head;    /* circular list of this thread's live tasks */
    ca_context *context;         /* current context (borrowed while entered) */
    ca_context *base_context;    /* the thread's outermost context (owned) */
    ca_context *scratch_context; /* reused for callbacks with a private empty context */
    uint64_t thread_id;
    bool initialised;
} ca_tstate;

extern CA_TLS ca_tstate ca_ts;

/** The calling thread's state, initialised on first use. */
static inline ca_tstate *ca_tstate_get(void) {
    extern void ca_tstate_init(ca_tstate *ts);
    if (CA_UNLIKELY(!ca_ts.initialised)) ca_tstate_init(&ca_ts);
    return &ca_ts;
}

/* MARK: - Contexts (context.c) */

typedef struct ca_ctxmap ca_ctxmap;

struct ca_context {
    ca_object ob_base;
    ca_ctxmap *map;        /* persistent map, NULL when empty */
    ca_context *prev;      /* the context current before enter */
    bool entered;
};

/** Context's tp_dealloc (context.c). */
void ca_context_dealloc(ca_object *op);

/** ca_decref for a context, calling its dealloc without the generic type
 *  walk: every task drops one. */
static CA_ALWAYS_INLINE void ca_context_decref(ca_context *ctx) {
    if (ctx != NULL && --ctx->ob_base.ob_refcnt == 0) ca_context_dealloc(&ctx->ob_base);
}

/** ca_context_copy_current with its common case inline: the current
 *  context binds no variable, so the copy is a fresh empty context from the
 *  freelist. Every task makes one. NULL when memory runs out. */
static CA_ALWAYS_INLINE ca_context *ca_context_copy_current_inline(void) {
    ca_context *cur = ca_ts.context;
    ca_context *c;
    if (CA_LIKELY(cur != NULL && cur->map == NULL && (c = ca_small_alloc_pooled(sizeof(ca_context))) != NULL)) {
        ca_object_init(c, &ca_ContextType);
        c->map = NULL;
        c->prev = NULL;
        c->entered = false;
        return c;
    }
    return ca_context_copy_current();
}

/** Copy of the current context, or NULL when it binds no variable (a
 *  private copy of an empty context needs no object). */
static inline ca_context *ca_context_copy_current_or_null(void) {
    ca_context *cur = ca_ts.context;
    if (CA_LIKELY(cur == NULL || cur->map == NULL)) return NULL;
    return ca_context_copy(cur);
}
/** Enters `ctx` for a callback; NULL enters a fresh private empty context.
 *  Returns the context entered (pass to ca_context_leave_for_callback), or
 *  NULL when the callback runs in the current context instead. */
ca_context *ca_context_enter_for_callback_slow(ca_context *ctx);
static inline ca_context *ca_context_enter_for_callback(ca_context *ctx) {
    ca_tstate *ts = &ca_ts;
    if (ctx == NULL) {
        ctx = ts->scratch_context;
        if (CA_UNLIKELY(ctx == NULL || ctx->ob_base.ob_refcnt != 1 || ctx->entered || ctx->map != NULL))
            return ca_context_enter_for_callback_slow(NULL);
    } else if (CA_UNLIKELY(ctx->entered)) {
        return NULL;
    }
    ctx->prev = ts->context;
    ctx->entered = true;
    ts->context = ctx;
    return ctx;
}
static inline void ca_context_leave_for_callback(ca_context *entered) {
    if (entered == NULL) return;
    ca_ts.context = entered->prev;
    entered->prev = NULL;
    entered->entered = false;
}

/* MARK: - Handles and the loop (loop.c) */

typedef enum ca_handle_kind {
    CA_HANDLE_CALLBACK = 0,  /* fn(arg) */
    CA_HANDLE_DONE = 1,      /* done_fn(fut, arg): a future's done callback */
    CA_HANDLE_TASK_STEP = 2, /* task_step(task, exc) */
} ca_handle_kind;

struct ca_handle {
    ca_object ob_base;
    ca_loop *h_loop;            /* strong */
    uint8_t h_kind;
    uint8_t h_cancelled;
    uint8_t h_scheduled;        /* in the timer heap */
    uint8_t h_is_timer;
    uint32_t h_seq;             /* timers: scheduling order, the tie-break of equal
                                   deadlines (fills padding; compared modulo 2^32) */
    union {
        ca_callback_fn fn;
        ca_done_fn done_fn;
    } h_fn;
    void *h_arg;                /* TASK_STEP: the error to throw in (strong, or NULL),
                                   released by h_release like any argument */
    ca_release_fn h_release;
    ca_object *h_obj;           /* DONE: the future; TASK_STEP: the task (strong) */
    ca_context *h_ctx;          /* strong, NULL: private empty context */
    int64_t h_when;
};
/* 80 bytes: the freelists' 80-byte class, five handles to six cache lines
 * where 96 bytes took two lines for every three. */
_Static_assert(sizeof(struct ca_handle) <= 80, "a handle fits the 80-byte size class");

typedef struct ca_timer_entry {
    int64_t when;
    ca_handle *handle; /* the heap's reference */
} ca_timer_entry;

typedef struct ca_tsnode {
    _Atomic(struct ca_tsnode *) next;
    ca_callback_fn fn;
    void *arg;
    ca_release_fn release;
} ca_tsnode;

struct ca_loop {
    ca_object ob_base;
    /* ready queue: ring buffer of handles */
    ca_handle **ready;
    size_t ready_head;
    size_t ready_len;
    size_t ready_cap;           /* power of two */
    /* timers: binary min-heap on (when, seq), keys stored inline so sifting
     * never touches the handles themselves */
    struct ca_timer_entry *heap;
    size_t heap_len;
    size_t heap_cap;
    size_t timer_cancelled_count;
    uint64_t timer_seq;
    /* state */
    bool stopping;
    bool closed;
    bool running;
    bool debug;
    bool virtual_clock;
    int64_t vtime;
    int64_t clock_resolution;
    int64_t slow_callback_ns;
    uint64_t thread_id;         /* running thread, 0 when not running */
    uint64_t iterations;
    ca_task *current_task;      /* borrowed */
    ca_handle *current_handle;  /* borrowed, while a handle runs */
    ca_error *fatal;            /* KeyboardInterrupt/SystemExit escaping a step */
    /* hooks */
    ca_task_factory_fn task_factory;
    void *task_factory_arg;
    ca_exception_handler_fn exc_handler;
    void *exc_handler_arg;
    ca_log_fn logger;
    void *logger_arg;
    /* I/O backend and the thread-safe inbox (Vyukov MPSC queue) */
    const ca_backend_ops *backend_ops;
    ca_backend *backend;
    size_t io_pending;          /* operations in flight in the backend */
    struct ca_io_loop *io;      /* io.c: per-fd records, fault hook (NULL until first I/O) */
    _Atomic(ca_tsnode *) inbox_head;
    ca_tsnode *inbox_tail;
    ca_tsnode inbox_stub;
    atomic_int wake_pending;
    atomic_bool closed_atomic;
    atomic_int ts_inflight;     /* threads inside call_soon_threadsafe */
    atomic_bool stop_requested; /* stop_threadsafe() */
    /* debugging */
    struct ca_loop *registry_next;
    /* shield() calls whose outer is still pending (combinators.c): outer
     * and inner tie each other through their callbacks, the cycles close()
     * must cut; an intrusive list, so a finishing shield leaves in O(1) */
    struct shield_link *shields;
};

/** Initialises the block `h` as a handle of `loop` (a reference to the
 *  loop taken), every field written: a plain callback with no payload yet. */
static inline ca_handle *ca_handle_init(ca_handle *h, ca_loop *loop) {
    h->ob_base.ob_refcnt = 1;
    h->ob_base.ob_type = &ca_HandleType;
    h->h_loop = loop;
    loop->ob_base.ob_refcnt++;
    h->h_kind = CA_HANDLE_CALLBACK;
    h->h_cancelled = 0;
    h->h_scheduled = 0;
    h->h_is_timer = 0;
    h->h_seq = 0;
    h->h_fn.fn = NULL;
    h->h_arg = NULL;
    h->h_release = NULL;
    h->h_obj = NULL;
    h->h_ctx = NULL;
    h->h_when = 0;
    return h;
}

/** A new handle of `loop` (a reference to the loop taken), every field
 *  written: a plain callback with no payload yet; NULL when memory runs out.
 *  Handles are the hottest allocation of all. */
static inline ca_handle *ca_handle_alloc(ca_loop *loop) {
    ca_handle *h = ca_small_alloc(sizeof(ca_handle));
    return CA_LIKELY(h != NULL) ? ca_handle_init(h, loop) : NULL;
}

/** ca_handle_alloc from the freelist alone: NULL when it is empty (the
 *  caller's slow path then uses ca_handle_alloc). */
static CA_ALWAYS_INLINE ca_handle *ca_handle_alloc_pooled(ca_loop *loop) {
    ca_handle *h = ca_small_alloc_pooled(sizeof(ca_handle));
    return CA_LIKELY(h != NULL) ? ca_handle_init(h, loop) : NULL;
}

/** Doubles the ready queue (the slow path of ca_loop_ready_push_steal).
 *  MemoryError. */
ca_error *ca_loop_ready_grow(ca_loop *loop);

/** ca_loop_ready_push_steal for a full queue: grows it, then appends `h`
 *  (dropped when the queue cannot grow: MemoryError). */
ca_error *ca_loop_ready_push_grow(ca_loop *loop, ca_handle *h);

/** Appends `h` to the ready queue, stealing the caller's reference (dropped
 *  when the queue cannot grow: MemoryError). */
static inline ca_error *ca_loop_ready_push_steal(ca_loop *loop, ca_handle *h) {
    if (CA_UNLIKELY(loop->ready_len == loop->ready_cap)) return ca_loop_ready_push_grow(loop, h);
    loop->ready[(loop->ready_head + loop->ready_len) & (loop->ready_cap - 1)] = h;
    loop->ready_len++;
    return NULL;
}

/** Fills a fresh handle as a done callback: done_fn(fut, arg) in ctx (fut
 *  gets a new reference; ctx and the release duty move into the handle). */
static CA_ALWAYS_INLINE void ca_handle_set_done(ca_handle *h, ca_future *fut, ca_done_fn fn, void *arg,
                                                ca_release_fn release, ca_context *ctx_taken) {
    h->h_kind = CA_HANDLE_DONE;
    h->h_fn.done_fn = fn;
    h->h_arg = arg;
    h->h_release = release;
    h->h_obj = ca_incref(fut);
    h->h_ctx = ctx_taken;
}

/** The rare paths of ca_loop_call_soon_done: a closed loop or debug mode
 *  (every check), or an empty handle freelist (loop.c). */
ca_error *ca_loop_call_soon_done_slow(ca_loop *loop, ca_future *fut, ca_done_fn fn, void *arg,
                                      ca_release_fn release, ca_context *ctx_taken);

/** call_soon for a done callback: done_fn(fut, arg) in ctx (ctx and the
 *  release duty are taken). Inline because every future's done callbacks
 *  come through here. Errors: RuntimeError (closed loop, or the wrong
 *  thread in debug mode), MemoryError. */
static CA_ALWAYS_INLINE ca_error *ca_loop_call_soon_done(ca_loop *loop, ca_future *fut, ca_done_fn fn, void *arg,
                                                         ca_release_fn release, ca_context *ctx_taken) {
    if (CA_UNLIKELY(loop->closed || loop->debug))
        return ca_loop_call_soon_done_slow(loop, fut, fn, arg, release, ctx_taken);
    ca_handle *h = ca_handle_alloc_pooled(loop);
    if (CA_UNLIKELY(h == NULL)) return ca_loop_call_soon_done_slow(loop, fut, fn, arg, release, ctx_taken);
    ca_handle_set_done(h, fut, fn, arg, release, ctx_taken);
    return ca_loop_ready_push_steal(loop, h);
}

/** A ca_release_fn dropping the object reference a callback argument holds. */
void ca_release_object(void *arg);

/** Makes a fresh handle a task step: task.__step(exc) (task and exc get
 *  new references). */
static CA_ALWAYS_INLINE void ca_handle_set_step(ca_handle *h, ca_task *task, ca_error *exc) {
    h->h_kind = CA_HANDLE_TASK_STEP;
    h->h_obj = ca_incref(task);
    if (exc != NULL) {
        h->h_arg = ca_incref(exc);
        h->h_release = ca_release_object;
    }
    h->h_ctx = ca_incref(task->task_context);
}

/** ca_loop_call_soon_step in full, for a closed loop (RuntimeError "Event
 *  loop is closed"), debug mode (call_soon's thread check) or an empty
 *  handle freelist (loop.c). */
ca_error *ca_loop_call_soon_step_slow(ca_loop *loop, ca_task *task, ca_error *exc);

/** call_soon(task.__step, exc, context=task_context). exc borrowed. Inline
 *  because every step of every task is scheduled here. Errors: RuntimeError
 *  (closed loop; in debug mode, another thread than the loop's), MemoryError. */
static CA_ALWAYS_INLINE ca_error *ca_loop_call_soon_step(ca_loop *loop, ca_task *task, ca_error *exc) {
    ca_handle *h = CA_LIKELY(!loop->closed && !loop->debug) ? ca_handle_alloc_pooled(loop) : NULL;
    if (CA_UNLIKELY(h == NULL)) return ca_loop_call_soon_step_slow(loop, task, exc);
    ca_handle_set_step(h, task, exc);
    return ca_loop_ready_push_steal(loop, h);
}

/** The default error report for something that failed inside a callback. */
void ca_loop_report_callback_error(ca_loop *loop, ca_handle *h, ca_error *err);

void ca_loop_log(ca_loop *loop, ca_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** gettid(), cached per thread. */
uint64_t ca_thread_id(void);

/* MARK: - I/O (io.c) */

/** Releases loop->io once the backend is closed (ca_loop_close). */
void ca_io_loop_free(ca_loop *loop);

/* MARK: - Futures (future.c) */

/** ca_future_check with the exact-type tests inlined (Future_CheckExact). */
static inline bool ca_future_check_fast(const void *op) {
    const ca_type *t = op ? ((const ca_object *)op)->ob_type : NULL;
    return t == &ca_FutureType || t == &ca_TaskType || (op != NULL && ca_future_check(op));
}

/** Initialises the shared head (loop reference taken). */
static inline void ca_future_init_head(ca_future *fut, ca_loop *loop) {
    memset((char *)fut + sizeof(ca_object), 0, sizeof(ca_future) - sizeof(ca_object));
    fut->fut_loop = ca_incref(loop);
    fut->fut_state = CA_FUTURE_PENDING;
}

/** ca_future_new inlined, for the sync primitives' waiters: a pending
 *  Future of `loop` (a new reference), NULL when memory runs out. */
static inline ca_future *ca_future_new_inline(ca_loop *loop) {
    ca_future *fut = ca_small_alloc(sizeof(ca_future));
    if (CA_UNLIKELY(fut == NULL)) return NULL;
    ca_object_init(fut, &ca_FutureType);
    ca_future_init_head(fut, loop);
    return fut;
}

/** Unlinks an orphaned task (task_tid == 0) from the orphan list under the
 *  registry lock: orphans are finished or freed by any thread (debug_offsets.c). */
void ca_debug_unlink_orphan(ca_task *task);

/** ca_unregister_task, inline: the task leaves its thread's all-tasks list
 *  (a task that outlived its thread leaves the orphans' list instead). */
static CA_ALWAYS_INLINE void ca_unregister_task_inline(ca_task *task) {
    ca_llist_node *n = &task->task_node;
    if (n->next == NULL) return;
    if (CA_UNLIKELY(task->task_tid == 0)) {
        ca_debug_unlink_orphan(task);
        return;
    }
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

/** future_schedule_callbacks in full: the task leaves the all-tasks list,
 *  then every done callback goes through call_soon in order. */
ca_error *ca_future_schedule_callbacks_slow(ca_future *fut);

/** The end of future_schedule_callbacks for a future with no callback
 *  list: callback0, if any, goes through call_soon. */
static CA_ALWAYS_INLINE ca_error *ca_future_schedule_callback0(ca_future *fut) {
    if (fut->fut_callback0.fn == NULL) return NULL;
    ca_callback cb = fut->fut_callback0;
    ca_context *ctx = fut->fut_context0;
    fut->fut_callback0 = (ca_callback){0};
    fut->fut_context0 = NULL;
    return ca_loop_call_soon_done(fut->fut_loop, fut, cb.fn, cb.arg, cb.arg_release, ctx);
}

/** future_schedule_callbacks for a future that just completed: the common
 *  case, a future or task with at most one callback (a task waiting on it),
 *  is scheduled inline; a task leaves the all-tasks list first. */
static CA_ALWAYS_INLINE ca_error *ca_future_schedule_callbacks(ca_future *fut) {
    if (CA_UNLIKELY(fut->fut_callbacks != NULL)) return ca_future_schedule_callbacks_slow(fut);
    if (fut->fut_is_task) ca_unregister_task_inline((ca_task *)fut);
    return ca_future_schedule_callback0(fut);
}

/** The common case of add_done_callback: the first callback of a pending
 *  future goes to the inline slot. */
static CA_ALWAYS_INLINE bool ca_future_callback0_free(const ca_future *fut) {
    return fut->fut_loop != NULL && fut->fut_state == CA_FUTURE_PENDING && fut->fut_callback0.fn == NULL &&
           fut->fut_callbacks == NULL;
}

/** add_done_callback(fn, context=ctx) with its common case inline: the
 *  first callback of a pending future (ctx borrowed, non-NULL; the release
 *  duty of `arg` is taken). Anything else goes through
 *  ca_future_add_done_callback, with its errors. */
static CA_ALWAYS_INLINE ca_error *ca_future_add_done_callback_inline(ca_future *fut, ca_done_fn fn, void *arg,
                                                                     ca_release_fn release, ca_context *ctx) {
    if (CA_LIKELY(ca_future_callback0_free(fut))) {
        fut->fut_callback0 = (ca_callback){fn, arg, release};
        fut->fut_context0 = ca_incref(ctx);
        return NULL;
    }
    return ca_future_add_done_callback(fut, fn, arg, release, ctx);
}

/** add_done_callback(fn) in a copy of the current context (the NULL ctx of
 *  ca_future_add_done_callback), its common case inline as above. */
static CA_ALWAYS_INLINE ca_error *ca_future_add_done_callback_current(ca_future *fut, ca_done_fn fn, void *arg,
                                                                      ca_release_fn release) {
    if (CA_LIKELY(ca_future_callback0_free(fut))) {
        fut->fut_callback0 = (ca_callback){fn, arg, release};
        fut->fut_context0 = ca_context_copy_current_or_null();
        return NULL;
    }
    return ca_future_add_done_callback(fut, fn, arg, release, NULL);
}

/** future_add_to_awaited_by with its common case inline: the first waiter
 *  of a Future or Task takes the inline slot (a new reference). */
static CA_ALWAYS_INLINE ca_error *ca_future_add_to_awaited_by_inline(ca_future *fut, ca_future *waiter) {
    const ca_type *ft = fut->ob_base.ob_type, *wt = waiter->ob_base.ob_type;
    if (CA_LIKELY(fut->fut_awaited_by == NULL && (ft == &ca_TaskType || ft == &ca_FutureType) &&
                  (wt == &ca_TaskType || wt == &ca_FutureType))) {
        fut->fut_awaited_by = ca_incref(waiter);
        return NULL;
    }
    return ca_future_add_to_awaited_by(fut, waiter);
}

/** future_discard_from_awaited_by with its common case inline: `waiter`
 *  holds the inline slot. */
static CA_ALWAYS_INLINE void ca_future_discard_from_awaited_by_inline(ca_future *fut, ca_future *waiter) {
    if (CA_LIKELY(fut->fut_awaited_by == (void *)waiter)) CA_CLEAR(fut->fut_awaited_by);
    else ca_future_discard_from_awaited_by(fut, waiter);
}

/** fut.set_result(None) for a waiter future a sync primitive or queue
 *  made and left pending (the futures.py checks stay: another kind of
 *  future, or a done one, takes ca_future_set_result's path). */
static CA_ALWAYS_INLINE ca_error *ca_future_set_none_result(ca_future *fut) {
    if (CA_UNLIKELY(fut->ob_base.ob_type != &ca_FutureType || fut->fut_loop == NULL ||
                    fut->fut_state != CA_FUTURE_PENDING))
        return ca_future_set_result(fut, ca_none());
    fut->fut_result = ca_none();
    fut->fut_state = CA_FUTURE_FINISHED;
    return ca_future_schedule_callbacks(fut);
}

/** Moves the future to CANCELLED and schedules callbacks (future_cancel).
 *  `msg` is copied (NULL: none). */
bool ca_future_cancel_impl(ca_future *fut, const char *msg);
/** future_set_result / future_set_exception without the Task refusal. */
ca_error *ca_future_set_result_impl(ca_future *fut, ca_value value);
ca_error *ca_future_set_exception_impl(ca_future *fut, ca_error *exc);
/** The common end of a future: a plain result, nothing else to drop but the
 *  loop reference (ca_future_clear_head's fast path). */
static inline bool ca_future_head_is_plain(const ca_future *fut) {
    return fut->fut_callback0.fn == NULL && fut->fut_callbacks == NULL && fut->fut_exception == NULL &&
           fut->fut_result.kind < CA_VALUE_PTR && fut->fut_cancel_msg == NULL && fut->fut_cancelled_exc == NULL &&
           fut->fut_awaited_by == NULL;
}
/** Releases everything the shared head owns (for Future and Task dealloc). */
void ca_future_clear_head(ca_future *fut);
/** Releases the done callbacks (their arguments through their release
 *  functions, unrun) and the awaited_by links of a future that can never
 *  complete: its loop closed while it was pending. The state is untouched. */
void ca_future_drop_links(ca_future *fut);
/** Logs "<Class> exception was never retrieved" if needed (dealloc path). */
void ca_future_finalize(ca_future *fut);

/* MARK: - Combinators (combinators.c) */
/** For a pending _GatheringFuture (anything else: no-op) whose loop closed:
 *  drops its done callbacks on its children, the awaited_by links to its
 *  caller, its children (recursing into pending gathering children) and its
 *  caller. These form cycles with the caller, whose frame holds the outer,
 *  that nothing can complete any more. */
void ca_gather_break_cycles(ca_future *fut);
/** For the shield() outers of a closing loop still pending: drops the
 *  callbacks that tie each to its inner future (a cycle) and the inner's
 *  awaited_by links to shield's caller; then releases the loop's list of
 *  outers. A shield made on a closed loop is never listed (it starts
 *  untied), so the list is empty once close() returns. */
void ca_shields_break_cycles(ca_loop *loop);

/* MARK: - Coroutines (coro.c) */

/** ca_coro_check with the common tests inlined: kit frames and direct
 *  subtypes of the coroutine type. */
static CA_ALWAYS_INLINE bool ca_coro_check_fast(const void *op) {
    if (CA_UNLIKELY(op == NULL)) return false;
    const ca_type *base = ((const ca_object *)op)->ob_type->tp_base;
    return base == &ca_CFrameType || base == &ca_CoroType || ca_coro_check(op);
}

/** The tp_dealloc of kit frames (coro.c). */
void ca_cframe_dealloc(ca_object *op);

/** ca_decref for a coroutine, calling a kit frame's dealloc without the
 *  generic type walk: every task drops one. */
static CA_ALWAYS_INLINE void ca_coro_decref(ca_coro *coro) {
    if (coro == NULL || --coro->ob_base.ob_refcnt != 0) return;
    const ca_type *t = coro->ob_base.ob_type;
    if (CA_LIKELY(t->tp_dealloc == NULL && t->tp_base == &ca_CFrameType)) ca_cframe_dealloc(&coro->ob_base);
    else ca_object_dealloc(&coro->ob_base);
}

/** Resumes a kit frame that is neither running nor closed, forwarding to
 *  the coroutine it awaits first; `exc` (borrowed) is thrown in, NULL sends
 *  None. `res` must be reset (ca_coro_send's contract otherwise). */
ca_coro_status ca_cframe_resume(ca_cframe *cf, ca_error *exc, ca_coro_result *res);

/** ca_coro_send(coro, None, res), a kit frame resumed without the
 *  indirect call: what every task step and awaited kit coroutine does. */
static CA_ALWAYS_INLINE ca_coro_status ca_coro_send_none(ca_coro *coro, ca_coro_result *res) {
    if (CA_LIKELY(((const ca_coro_type *)coro->ob_base.ob_type)->send == ca_cframe_send &&
                  (coro->co_state == CA_CORO_CREATED || coro->co_state == CA_CORO_SUSPENDED))) {
        res->future = NULL;
        res->value = ca_none();
        res->error = NULL;
        return ca_cframe_resume((ca_cframe *)coro, NULL, res);
    }
    return ca_coro_send(coro, ca_none(), res);
}

/* MARK: - Tasks (task.c) */
void ca_task_step_handle_run(ca_task *task, ca_error *exc);
void ca_task_break_cycles(ca_loop *loop);

/* MARK: - Formatting helpers (error.c) */
typedef struct ca_strbuf {
    char *buf;
    size_t size;
    size_t len; /* length needed so far */
} ca_strbuf;
void ca_strbuf_printf(ca_strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Python's repr() of a str: single quotes unless the text has a single
 *  quote and no double quote; backslash, the quote and control characters
 *  escaped. NULL prints None. */
void ca_repr_str(ca_strbuf *sb, const char *s);
void ca_value_repr(ca_strbuf *sb, const ca_value *v);
void ca_error_repr(ca_strbuf *sb, const ca_error *err);
void ca_fn_repr(ca_strbuf *sb, const void *fn);
void ca_coro_repr(ca_strbuf *sb, const ca_coro *coro);
void ca_future_repr_info(ca_strbuf *sb, const ca_future *fut, bool with_state);

#endif
