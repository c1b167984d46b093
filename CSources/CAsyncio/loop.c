/*
 * loop.c — the event loop of Lib/asyncio/base_events.py: a ready queue of
 * handles, a timer heap, the I/O backend and the thread-safe inbox.
 * Differences on purpose: time is integer nanoseconds (no float rounding),
 * equal deadlines run FIFO (heapq leaves them unspecified), and when nothing
 * is ready and no I/O is in flight an iteration makes no syscall at all.
 */
#include "internal.h"
#include "debug_internal.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_SCHEDULED_TIMER_HANDLES 100
#define MAXIMUM_SELECT_TIMEOUT_NS (24LL * 3600 * 1000000000LL)
#define DEFAULT_SLOW_CALLBACK_NS (100LL * 1000000LL)

static void handle_dealloc(ca_object *op);
static void loop_dealloc(ca_object *op);
const ca_type ca_HandleType = {"Handle", sizeof(ca_handle), handle_dealloc, NULL};
const ca_type ca_TimerHandleType = {"TimerHandle", sizeof(ca_handle), NULL, &ca_HandleType};
const ca_type ca_LoopType = {"EventLoop", sizeof(ca_loop), loop_dealloc, NULL};


static inline int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t ca_loop_time(const ca_loop *loop) { return loop->virtual_clock ? loop->vtime : monotonic_ns(); }

/* MARK: - Handles */

/* Drops the callback and what it holds (Handle.cancel / after _run). After
 * a run (`ran`), a task wakeup's ca_release_object is done without the
 * indirect call: every task step that a future's completion schedules; and
 * a handle only the ready queue still holds (run_once frees it next, nothing
 * else can reach it) keeps its stale fields instead of having them cleared.
 * A callback that is its own release runs exactly once: not again after
 * its run. */
static CA_ALWAYS_INLINE void handle_drop_payload(ca_handle *h, bool ran) {
    ca_release_fn release = h->h_release;
    void *arg = h->h_arg;
    ca_object *obj = h->h_obj;
    ca_context *ctx = h->h_ctx;
    /* any kind's function: a done or step function is never a release */
    ca_callback_fn fn = h->h_fn.fn;
    if (!ran || h->ob_base.ob_refcnt != 1) {
        h->h_fn.fn = NULL;
        h->h_release = NULL;
        h->h_arg = NULL;
        h->h_obj = NULL;
        h->h_ctx = NULL;
    }
    if (release != NULL) {
        if (ran && release == ca_release_object) ca_decref(arg);
        else if (!ran || release != fn) release(arg);
    }
    ca_decref(obj);
    ca_decref(ctx);
}

static inline void handle_clear_payload(ca_handle *h) { handle_drop_payload(h, false); }

static void handle_dealloc(ca_object *op) {
    ca_handle *h = (ca_handle *)op;
    handle_clear_payload(h);
    ca_decref(h->h_loop);
    ca_small_free(h, sizeof(ca_handle));
}

void ca_handle_cancel(ca_handle *h) {
    if (h->h_cancelled) return;
    h->h_cancelled = 1;
    if (h->h_is_timer && h->h_scheduled) h->h_loop->timer_cancelled_count++;
    handle_clear_payload(h);
}

bool ca_handle_cancelled(const ca_handle *h) { return h->h_cancelled; }
int64_t ca_handle_when(const ca_handle *h) { return h->h_is_timer ? h->h_when : 0; }
ca_loop *ca_handle_get_loop(const ca_handle *h) { return h->h_loop; }

static void handle_repr(ca_strbuf *sb, const ca_handle *h) {
    ca_strbuf_printf(sb, "<%s", h->h_is_timer ? "TimerHandle" : "Handle");
    if (h->h_is_timer) ca_strbuf_printf(sb, " when=%lld", (long long)h->h_when);
    if (h->h_cancelled) ca_strbuf_printf(sb, " cancelled");
    if (h->h_kind == CA_HANDLE_TASK_STEP && h->h_obj != NULL) {
        char tbuf[256];
        ca_task_repr((ca_task *)h->h_obj, tbuf, sizeof tbuf);
        ca_strbuf_printf(sb, " Task.__step(%s)", tbuf);
    } else if (h->h_fn.fn != NULL) {
        ca_strbuf_printf(sb, " ");
        ca_fn_repr(sb, (const void *)h->h_fn.fn);
    }
    ca_strbuf_printf(sb, ">");
}

/* MARK: - Ready queue (ring buffer) */

ca_error *ca_loop_ready_grow(ca_loop *loop) {
    size_t cap = loop->ready_cap ? loop->ready_cap * 2 : 1024;
    ca_handle **n = ca_malloc(cap * sizeof(ca_handle *));
    if (n == NULL) return ca_error_new(&ca_MemoryError, NULL);
    for (size_t i = 0; i < loop->ready_len; i++) n[i] = loop->ready[(loop->ready_head + i) & (loop->ready_cap - 1)];
    ca_free(loop->ready);
    loop->ready = n;
    loop->ready_head = 0;
    loop->ready_cap = cap;
    return NULL;
}

ca_error *ca_loop_ready_push_grow(ca_loop *loop, ca_handle *h) {
    ca_error *err = ca_loop_ready_grow(loop);
    if (err != NULL) {
        ca_decref(h);
        return err;
    }
    return ca_loop_ready_push_steal(loop, h);
}

static inline ca_handle *ready_pop(ca_loop *loop) {
    ca_handle *h = loop->ready[loop->ready_head];
    loop->ready_head = (loop->ready_head + 1) & (loop->ready_cap - 1);
    loop->ready_len--;
    return h;
}

/* MARK: - Timer heap: min-heap on (when, seq) */

static inline bool timer_less(const ca_timer_entry *a, const ca_timer_entry *b) {
    if (a->when != b->when) return a->when < b->when;
    /* equal deadlines (rare) run in scheduling order */
    return (int32_t)(a->handle->h_seq - b->handle->h_seq) < 0;
}

/* A 4-ary heap: half the depth of a binary one, and the four children of a
 * node sit side by side in memory. */
#define HEAP_ARITY 4
_Static_assert(HEAP_ARITY == 4, "heap_min_child brackets a group of four");

static void heap_sift_up(ca_loop *loop, size_t i) {
    ca_timer_entry *hp = loop->heap;
    ca_timer_entry x = hp[i];
    while (i > 0) {
        size_t parent = (i - 1) / HEAP_ARITY;
        if (!timer_less(&x, &hp[parent])) break;
        hp[i] = hp[parent];
        i = parent;
    }
    hp[i] = x;
}

/* The smallest child of node i, or SIZE_MAX for a leaf. A full group of
 * four (every node but the last inner one) is a two-round tournament: the
 * same three comparisons as a scan, without its loop, and the two first-round
 * ones independent of each other. (when, seq) is a total order, so any
 * bracket finds the same minimum. */
static inline size_t heap_min_child(const ca_timer_entry *hp, size_t n, size_t i) {
    size_t first = HEAP_ARITY * i + 1;
    if (first >= n) return SIZE_MAX;
    if (CA_LIKELY(first + HEAP_ARITY <= n)) {
        size_t a = first + (size_t)timer_less(&hp[first + 1], &hp[first]);
        size_t b = first + 2 + (size_t)timer_less(&hp[first + 3], &hp[first + 2]);
        return timer_less(&hp[b], &hp[a]) ? b : a;
    }
    size_t last = first + HEAP_ARITY < n ? first + HEAP_ARITY : n;
    size_t m = first;
    for (size_t c = first + 1; c < last; c++)
        if (timer_less(&hp[c], &hp[m])) m = c;
    return m;
}

static void heap_sift_down(ca_loop *loop, size_t i) {
    ca_timer_entry *hp = loop->heap;
    size_t n = loop->heap_len;
    ca_timer_entry x = hp[i];
    for (;;) {
        size_t m = heap_min_child(hp, n, i);
        if (m == SIZE_MAX || !timer_less(&hp[m], &x)) break;
        hp[i] = hp[m];
        i = m;
    }
    hp[i] = x;
}

/* Removes the earliest timer; returns the heap's reference to its handle.
 * Bottom-up deletion: the hole left at the root walks down to a leaf along
 * the smallest children, then the last entry is sifted up from there; it is
 * a late deadline, so it rarely climbs. */
static ca_handle *heap_pop(ca_loop *loop) {
    ca_timer_entry *hp = loop->heap;
    ca_handle *top = hp[0].handle;
    size_t n = --loop->heap_len;
    top->h_scheduled = 0;
    if (n == 0) return top;
    size_t i = 0;
    for (;;) {
        size_t m = heap_min_child(hp, n, i);
        if (m == SIZE_MAX) break;
        hp[i] = hp[m];
        i = m;
    }
    hp[i] = hp[n];
    heap_sift_up(loop, i);
    return top;
}

/* MARK: - Scheduling */

static ca_error *closed_error(void) { return ca_error_new(&ca_RuntimeError, "Event loop is closed"); }

static ca_error *check_thread(ca_loop *loop) {
    if (loop->debug && loop->thread_id != 0 && loop->thread_id != ca_thread_id())
        return ca_error_new(&ca_RuntimeError,
                            "Non-thread-safe operation invoked on an event loop other than the current one");
    return NULL;
}

static ca_error *schedule_check_slow(ca_loop *loop, void *arg, ca_release_fn release, ca_context *ctx_taken) {
    ca_error *err = loop->closed ? closed_error() : check_thread(loop);
    if (err != NULL) {
        if (release != NULL) release(arg);
        ca_decref(ctx_taken);
    }
    return err;
}

static inline ca_error *schedule_check(ca_loop *loop, void *arg, ca_release_fn release, ca_context *ctx_taken) {
    if (CA_LIKELY(!loop->closed && !loop->debug)) return NULL;
    return schedule_check_slow(loop, arg, release, ctx_taken);
}

ca_error *ca_loop_call_soon(ca_loop *loop, ca_callback_fn fn, void *arg, ca_release_fn release, ca_context *ctx,
                            ca_handle **out) {
    if (out) *out = NULL;
    ca_error *err = schedule_check(loop, arg, release, NULL);
    if (err != NULL) return err;
    ca_handle *h = ca_handle_alloc(loop);
    if (h == NULL) {
        if (release) release(arg);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    h->h_kind = CA_HANDLE_CALLBACK;
    h->h_fn.fn = fn;
    h->h_arg = arg;
    h->h_release = release;
    h->h_ctx = ctx ? ca_incref(ctx) : ca_context_copy_current_or_null();
    if (out) *out = ca_incref(h);
    err = ca_loop_ready_push_steal(loop, h);
    if (err != NULL && out) CA_CLEAR(*out);
    return err;
}

ca_error *ca_loop_call_soon_done_slow(ca_loop *loop, ca_future *fut, ca_done_fn fn, void *arg, ca_release_fn release,
                                      ca_context *ctx_taken) {
    ca_error *err = schedule_check(loop, arg, release, ctx_taken);
    if (err != NULL) return err;
    ca_handle *h = ca_handle_alloc(loop);
    if (h == NULL) {
        if (release) release(arg);
        ca_decref(ctx_taken);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    ca_handle_set_done(h, fut, fn, arg, release, ctx_taken);
    return ca_loop_ready_push_steal(loop, h);
}

ca_error *ca_loop_call_soon_step_slow(ca_loop *loop, ca_task *task, ca_error *exc) {
    ca_error *err = loop->closed ? closed_error() : check_thread(loop);
    if (err != NULL) return err;
    ca_handle *h = ca_handle_alloc(loop);
    if (h == NULL) return ca_error_new(&ca_MemoryError, NULL);
    ca_handle_set_step(h, task, exc);
    return ca_loop_ready_push_steal(loop, h);
}

ca_error *ca_loop_call_at(ca_loop *loop, int64_t when, ca_callback_fn fn, void *arg, ca_release_fn release,
                          ca_context *ctx, ca_handle **out) {
    if (out) *out = NULL;
    ca_error *err = schedule_check(loop, arg, release, NULL);
    if (err != NULL) return err;
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 256;
        ca_timer_entry *n = ca_realloc(loop->heap, cap * sizeof(ca_timer_entry));
        if (n == NULL) {
            if (release) release(arg);
            return ca_error_new(&ca_MemoryError, NULL);
        }
        loop->heap = n;
        loop->heap_cap = cap;
    }
    ca_handle *h = ca_handle_alloc(loop);
    if (h == NULL) {
        if (release) release(arg);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    h->ob_base.ob_type = &ca_TimerHandleType;
    h->h_kind = CA_HANDLE_CALLBACK;
    h->h_is_timer = 1;
    h->h_fn.fn = fn;
    h->h_arg = arg;
    h->h_release = release;
    h->h_ctx = ctx ? ca_incref(ctx) : ca_context_copy_current_or_null();
    h->h_when = when;
    h->h_scheduled = 1;
    /* the heap owns the initial reference */
    h->h_seq = (uint32_t)loop->timer_seq++;
    loop->heap[loop->heap_len] = (ca_timer_entry){when, h};
    heap_sift_up(loop, loop->heap_len++);
    if (out) *out = ca_incref(h);
    return NULL;
}

ca_error *ca_loop_call_later(ca_loop *loop, int64_t delay_ns, ca_callback_fn fn, void *arg, ca_release_fn release,
                             ca_context *ctx, ca_handle **out) {
    int64_t now = ca_loop_time(loop), when;
    /* saturate: a delay past the end of time never fires (CPython's float
     * arithmetic gets the same for free) */
    if (__builtin_add_overflow(now, delay_ns, &when)) when = delay_ns > 0 ? INT64_MAX : INT64_MIN;
    return ca_loop_call_at(loop, when, fn, arg, release, ctx, out);
}

/* MARK: - Thread-safe inbox (Vyukov's intrusive MPSC queue) */

static void inbox_push(ca_loop *loop, ca_tsnode *n) {
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    ca_tsnode *prev = atomic_exchange_explicit(&loop->inbox_head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* Pops one node, or NULL when empty or a producer is mid-push (it will
 * wake the loop once its push is complete). Loop thread only. */
static ca_tsnode *inbox_pop(ca_loop *loop) {
    ca_tsnode *tail = loop->inbox_tail;
    ca_tsnode *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &loop->inbox_stub) {
        if (next == NULL) return NULL;
        loop->inbox_tail = next;
        tail = next;
        next = atomic_load_explicit(&tail->next, memory_order_acquire);
    }
    if (next != NULL) {
        loop->inbox_tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&loop->inbox_head, memory_order_acquire)) return NULL;
    inbox_push(loop, &loop->inbox_stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        loop->inbox_tail = next;
        return tail;
    }
    return NULL;
}

/* A foreign thread's visit: `ts_inflight` counts it so close() waits for it
 * to leave before tearing the backend down. Returns false (visit over) when
 * the loop is closed. */
static bool threadsafe_enter(ca_loop *loop) {
    atomic_fetch_add_explicit(&loop->ts_inflight, 1, memory_order_acq_rel);
    if (!atomic_load_explicit(&loop->closed_atomic, memory_order_acquire)) return true;
    atomic_fetch_sub_explicit(&loop->ts_inflight, 1, memory_order_release);
    return false;
}

/* Wakes the loop unless a wake-up is already pending, and ends the visit. */
static void threadsafe_wake_and_leave(ca_loop *loop) {
    if (atomic_exchange_explicit(&loop->wake_pending, 1, memory_order_acq_rel) == 0)
        loop->backend_ops->wake(loop->backend);
    atomic_fetch_sub_explicit(&loop->ts_inflight, 1, memory_order_release);
}

ca_error *ca_loop_call_soon_threadsafe(ca_loop *loop, ca_callback_fn fn, void *arg, ca_release_fn release) {
    ca_tsnode *n = ca_malloc(sizeof *n);
    if (n == NULL || !threadsafe_enter(loop)) {
        ca_free(n);
        if (release) release(arg);
        return n == NULL ? ca_error_new(&ca_MemoryError, NULL) : closed_error();
    }
    n->fn = fn;
    n->arg = arg;
    n->release = release;
    inbox_push(loop, n);
    threadsafe_wake_and_leave(loop);
    return NULL;
}

/* Moves what other threads queued onto the ready queue, in their order. */
static void inbox_drain(ca_loop *loop) {
    ca_tsnode *n;
    while ((n = inbox_pop(loop)) != NULL) {
        /* h_ctx stays NULL: a private empty context, never the loop thread's */
        ca_handle *h = ca_handle_alloc(loop);
        ca_error *err = NULL;
        if (h == NULL) {
            if (n->release) n->release(n->arg);
            err = ca_error_new(&ca_MemoryError, NULL);
        } else {
            h->h_fn.fn = n->fn;
            h->h_arg = n->arg;
            h->h_release = n->release;
            err = ca_loop_ready_push_steal(loop, h);
        }
        if (err != NULL) {
            ca_loop_report_callback_error(loop, NULL, err);
            ca_decref(err);
        }
        ca_free(n);
    }
}

static void inbox_discard(ca_loop *loop) {
    ca_tsnode *n;
    while ((n = inbox_pop(loop)) != NULL) {
        if (n->release) n->release(n->arg);
        ca_free(n);
    }
}

ca_error *ca_loop_stop_threadsafe(ca_loop *loop) {
    /* An atomic request rather than a queued callback: a foreign thread
     * must not touch the loop's plain reference count. */
    if (!threadsafe_enter(loop)) return closed_error();
    atomic_store_explicit(&loop->stop_requested, true, memory_order_release);
    threadsafe_wake_and_leave(loop);
    return NULL;
}

/* MARK: - Exception handler and logging */

static void default_logger(ca_loop *loop, ca_log_level level, const char *message, void *arg) {
    const char *lv = level >= CA_LOG_ERROR ? "ERROR" : level >= CA_LOG_WARNING ? "WARNING"
                   : level >= CA_LOG_INFO ? "INFO" : "DEBUG";
    fprintf(stderr, "%s:asyncio:%s\n", lv, message);
}

void ca_loop_log(ca_loop *loop, ca_log_level level, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (loop->logger) loop->logger(loop, level, buf, loop->logger_arg);
    else default_logger(loop, level, buf, NULL);
}

void ca_loop_set_logger(ca_loop *loop, ca_log_fn fn, void *arg) {
    loop->logger = fn;
    loop->logger_arg = arg;
}

void ca_loop_default_exception_handler(ca_loop *loop, const ca_exception_context *c) {
    char buf[1024];
    ca_strbuf sb = {buf, sizeof buf, 0};
    buf[0] = '\0';
    ca_strbuf_printf(&sb, "%s", c->message ? c->message : "Unhandled exception in event loop");
    if (c->exception) {
        ca_strbuf_printf(&sb, "\nexception: ");
        ca_error_repr(&sb, c->exception);
    }
    char obuf[512];
    if (c->future) {
        ca_future_repr(c->future, obuf, sizeof obuf);
        ca_strbuf_printf(&sb, "\nfuture: %s", obuf);
    }
    if (c->handle) {
        ca_strbuf obsb = {obuf, sizeof obuf, 0};
        handle_repr(&obsb, c->handle);
        ca_strbuf_printf(&sb, "\nhandle: %s", obuf);
    }
    if (c->task) {
        ca_task_repr(c->task, obuf, sizeof obuf);
        ca_strbuf_printf(&sb, "\ntask: %s", obuf);
    }
    ca_loop_log(loop, CA_LOG_ERROR, "%s", buf);
}

void ca_loop_set_exception_handler(ca_loop *loop, ca_exception_handler_fn fn, void *arg) {
    loop->exc_handler = fn;
    loop->exc_handler_arg = arg;
}

void ca_loop_call_exception_handler(ca_loop *loop, const ca_exception_context *c) {
    if (loop->exc_handler) loop->exc_handler(loop, c, loop->exc_handler_arg);
    else ca_loop_default_exception_handler(loop, c);
}

void ca_loop_report_callback_error(ca_loop *loop, ca_handle *h, ca_error *err) {
    char msg[600];
    ca_strbuf sb = {msg, sizeof msg, 0};
    msg[0] = '\0';
    ca_strbuf_printf(&sb, "Exception in callback ");
    if (h) handle_repr(&sb, h);
    else ca_strbuf_printf(&sb, "(scheduling)");
    ca_exception_context c = {.message = msg, .exception = err, .handle = h};
    ca_loop_call_exception_handler(loop, &c);
}

/* MARK: - Running */

static inline void handle_run(ca_loop *loop, ca_handle *h) {
    ca_context *entered = ca_context_enter_for_callback(h->h_ctx);
    loop->current_handle = h;
    int64_t t0 = loop->debug ? monotonic_ns() : 0;
    switch ((ca_handle_kind)h->h_kind) {
    case CA_HANDLE_CALLBACK:
        h->h_fn.fn(h->h_arg);
        break;
    case CA_HANDLE_DONE:
        h->h_fn.done_fn((ca_future *)h->h_obj, h->h_arg);
        break;
    case CA_HANDLE_TASK_STEP:
        ca_task_step_handle_run((ca_task *)h->h_obj, (ca_error *)h->h_arg);
        break;
    }
    if (loop->debug) {
        int64_t dt = monotonic_ns() - t0;
        if (dt >= loop->slow_callback_ns) {
            char buf[512];
            ca_strbuf sb = {buf, sizeof buf, 0};
            buf[0] = '\0';
            handle_repr(&sb, h);
            ca_loop_log(loop, CA_LOG_WARNING, "Executing %s took %.3f seconds", buf, (double)dt / 1e9);
        }
    }
    loop->current_handle = NULL;
    ca_context_leave_for_callback(entered);
    handle_drop_payload(h, true);
}

static void timers_prune(ca_loop *loop) {
    size_t n = loop->heap_len;
    if (n > MIN_SCHEDULED_TIMER_HANDLES && loop->timer_cancelled_count * 2 > n) {
        /* Most handles are cancelled: rebuild rather than pop one by one. */
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            ca_handle *h = loop->heap[i].handle;
            if (h->h_cancelled) {
                h->h_scheduled = 0;
                ca_decref(h);
            } else {
                loop->heap[j++] = loop->heap[i];
            }
        }
        loop->heap_len = j;
        for (size_t i = j / HEAP_ARITY + 1; i-- > 0;) heap_sift_down(loop, i);
        loop->timer_cancelled_count = 0;
        return;
    }
    while (loop->heap_len > 0 && loop->heap[0].handle->h_cancelled) {
        loop->timer_cancelled_count--;
        ca_decref(heap_pop(loop));
    }
}

static void run_once(ca_loop *loop) {
    timers_prune(loop);

    int64_t timeout;
    bool woken = atomic_load_explicit(&loop->wake_pending, memory_order_acquire) != 0;
    if (loop->ready_len > 0 || loop->stopping || woken) {
        timeout = 0;
    } else if (loop->heap_len > 0) {
        timeout = loop->heap[0].when - ca_loop_time(loop);
        if (timeout < 0) timeout = 0;
        if (timeout > MAXIMUM_SELECT_TIMEOUT_NS) timeout = MAXIMUM_SELECT_TIMEOUT_NS;
    } else {
        timeout = -1;
    }

    if (loop->virtual_clock && timeout > 0 && loop->io_pending > 0) {
        /* Virtual time with I/O or executor jobs in flight: they finish in
         * real time, so wait for them as a real loop would; only a wait that
         * lasted its whole timeout with nothing happening lets time jump to
         * the deadline (a signal or a stray edge ends a wait early). */
        int nev = 0;
        int64_t t0 = monotonic_ns();
        ca_error *err = loop->backend_ops->poll(loop->backend, timeout, &nev);
        if (err != NULL) {
            ca_loop_report_callback_error(loop, NULL, err);
            ca_decref(err);
        }
        if (nev == 0 && !atomic_load_explicit(&loop->wake_pending, memory_order_acquire) &&
            monotonic_ns() - t0 >= timeout)
            loop->vtime += timeout;
    } else if (loop->virtual_clock && timeout > 0) {
        /* Virtual time: nothing can happen before the next deadline except a
         * thread-safe call, so look for one without blocking and jump. */
        int nev = 0;
        ca_error *err = loop->backend_ops->poll(loop->backend, 0, &nev);
        if (err != NULL) {
            ca_loop_report_callback_error(loop, NULL, err);
            ca_decref(err);
        }
        if (!atomic_load_explicit(&loop->wake_pending, memory_order_acquire)) loop->vtime += timeout;
    } else if (timeout != 0 || loop->io_pending > 0) {
        int nev = 0;
        ca_error *err = loop->backend_ops->poll(loop->backend, timeout, &nev);
        if (err != NULL) {
            ca_loop_report_callback_error(loop, NULL, err);
            ca_decref(err);
        }
    }

    if (atomic_load_explicit(&loop->wake_pending, memory_order_relaxed) &&
        atomic_exchange_explicit(&loop->wake_pending, 0, memory_order_acq_rel)) {
        inbox_drain(loop);
        if (atomic_exchange_explicit(&loop->stop_requested, false, memory_order_acq_rel)) loop->stopping = true;
    }

    if (loop->heap_len > 0) {
        int64_t end_time = ca_loop_time(loop) + loop->clock_resolution;
        while (loop->heap_len > 0) {
            if (loop->heap[0].when >= end_time) break;
            ca_handle *h = heap_pop(loop);
            /* Grown here, not through ca_loop_ready_push_grow: that call in
             * the middle of run_once cost every iteration two instructions. */
            if (CA_UNLIKELY(loop->ready_len == loop->ready_cap) && ca_loop_ready_grow(loop) != NULL) {
                ca_decref(h);
                break;
            }
            (void)ca_loop_ready_push_steal(loop, h); /* there is room: cannot fail */
        }
    }

    /* Run only what is ready now: callbacks scheduled meanwhile wait for
     * the next iteration (after another poll). */
    size_t ntodo = loop->ready_len;
    for (size_t i = 0; i < ntodo; i++) {
        ca_handle *h = ready_pop(loop);
        if (CA_LIKELY(!h->h_cancelled)) handle_run(loop, h);
        if (CA_LIKELY(--h->ob_base.ob_refcnt == 0)) {
            /* the payload is gone already: skip the generic dealloc */
            ca_decref(h->h_loop);
            ca_small_free(h, sizeof(ca_handle));
        }
        if (CA_UNLIKELY(loop->fatal != NULL)) break;
    }
    loop->iterations++;
}

static ca_error *check_runnable(ca_loop *loop) {
    if (loop->closed) return closed_error();
    if (loop->running) return ca_error_new(&ca_RuntimeError, "This event loop is already running");
    if (ca_tstate_get()->running_loop != NULL)
        return ca_error_new(&ca_RuntimeError, "Cannot run the event loop while another loop is running");
    return NULL;
}

ca_error *ca_loop_run_forever(ca_loop *loop) {
    ca_error *err = check_runnable(loop);
    if (err != NULL) return err;
    ca_tstate *ts = ca_tstate_get();
    ca_incref(loop);
    loop->running = true;
    loop->thread_id = ca_thread_id();
    ts->running_loop = loop;
    for (;;) {
        run_once(loop);
        if (loop->fatal != NULL || loop->stopping) break;
    }
    loop->stopping = false;
    loop->running = false;
    loop->thread_id = 0;
    ts->running_loop = NULL;
    err = loop->fatal;
    loop->fatal = NULL;
    ca_decref(loop);
    return err;
}

static void run_until_complete_cb(ca_future *fut, void *arg) {
    if (fut->fut_state != CA_FUTURE_CANCELLED) {
        ca_error *exc = NULL;
        ca_error *err = ca_future_exception(fut, &exc);
        ca_decref(err);
        bool escaping = ca_error_matches(exc, &ca_SystemExit) || ca_error_matches(exc, &ca_KeyboardInterrupt);
        ca_decref(exc);
        if (escaping) return; /* run_forever already stopped (bpo-22429) */
    }
    ca_loop_stop(fut->fut_loop);
}

ca_error *ca_loop_run_until_complete(ca_loop *loop, ca_future *fut) {
    ca_error *err = check_runnable(loop);
    if (err != NULL) return err;
    if (fut->fut_loop != loop)
        return ca_error_new(&ca_ValueError, "The future belongs to a different loop than the one specified as the loop argument");
    ca_incref(fut);
    err = ca_future_add_done_callback(fut, run_until_complete_cb, loop, NULL, NULL);
    if (err == NULL) {
        err = ca_loop_run_forever(loop);
        ca_future_remove_done_callback(fut, run_until_complete_cb, loop);
    }
    if (err == NULL) {
        if (fut->fut_state == CA_FUTURE_PENDING) {
            err = ca_error_new(&ca_RuntimeError, "Event loop stopped before Future completed.");
        } else {
            ca_value ignored;
            err = ca_future_result(fut, &ignored);
        }
    }
    ca_decref(fut);
    return err;
}

void ca_loop_stop(ca_loop *loop) { loop->stopping = true; }
bool ca_loop_is_running(const ca_loop *loop) { return loop->running; }
bool ca_loop_is_closed(const ca_loop *loop) { return loop->closed; }

ca_loop *ca_get_running_loop(void) { return ca_tstate_get()->running_loop; }

ca_error *ca_get_running_loop_checked(ca_loop **out) {
    *out = ca_tstate_get()->running_loop;
    return *out ? NULL : ca_error_new(&ca_RuntimeError, "no running event loop");
}

/* MARK: - Lifecycle */

ca_error *ca_loop_new(const ca_loop_config *config, ca_loop **out) {
    *out = NULL;
    ca_loop_config cfg = config ? *config : (ca_loop_config){0};
    ca_loop *loop = ca_calloc(1, sizeof *loop);
    if (loop == NULL) return ca_error_new(&ca_MemoryError, NULL);
    ca_object_init(loop, &ca_LoopType);
    loop->virtual_clock = cfg.virtual_clock;
    loop->debug = cfg.debug;
    loop->slow_callback_ns = cfg.slow_callback_ns > 0 ? cfg.slow_callback_ns : DEFAULT_SLOW_CALLBACK_NS;
    loop->clock_resolution = 1; /* clock_getres(CLOCK_MONOTONIC) is 1 ns on Linux */
    atomic_init(&loop->inbox_head, &loop->inbox_stub);
    atomic_init(&loop->inbox_stub.next, NULL);
    loop->inbox_tail = &loop->inbox_stub;
    atomic_init(&loop->wake_pending, 0);
    atomic_init(&loop->closed_atomic, false);
    atomic_init(&loop->stop_requested, false);
    atomic_init(&loop->ts_inflight, 0);
    ca_error *err = ca_loop_ready_grow(loop);
    if (err == NULL) err = ca_backend_open(cfg.backend, &loop->backend_ops, &loop->backend);
    if (err != NULL) {
        ca_free(loop->ready);
        ca_free(loop);
        return err;
    }
    ca_debug_register_loop(loop);
    *out = loop;
    return NULL;
}

ca_error *ca_loop_close(ca_loop *loop) {
    if (loop->running) return ca_error_new(&ca_RuntimeError, "Cannot close a running event loop");
    if (loop->closed) return NULL;
    loop->closed = true;
    atomic_store_explicit(&loop->closed_atomic, true, memory_order_release);
    while (atomic_load_explicit(&loop->ts_inflight, memory_order_acquire) != 0) sched_yield();
    ca_incref(loop);
    /* The dropped callbacks can never run: release what they hold now, not
     * when their handles die. A handle object may outlive the loop (a
     * Handle wrapper owns a reference), and its argument may own that very
     * wrapper (the Swift layer's callbacks do): without this, such a pair
     * keeps itself, its closure and the loop alive for good. */
    while (loop->ready_len > 0) {
        ca_handle *h = ready_pop(loop);
        handle_clear_payload(h);
        ca_decref(h);
    }
    while (loop->heap_len > 0) {
        ca_handle *h = loop->heap[--loop->heap_len].handle;
        h->h_scheduled = 0;
        handle_clear_payload(h);
        ca_decref(h);
    }
    loop->timer_cancelled_count = 0;
    inbox_discard(loop);
    ca_task_break_cycles(loop);
    ca_shields_break_cycles(loop);
    if (loop->backend != NULL) {
        loop->backend_ops->close(loop->backend);
        loop->backend = NULL;
    }
    ca_io_loop_free(loop);
    ca_decref(loop);
    return NULL;
}

static void loop_dealloc(ca_object *op) {
    ca_loop *loop = (ca_loop *)op;
    if (!loop->closed) {
        loop->ob_base.ob_refcnt = 1; /* close() takes temporary references */
        ca_error *err = ca_loop_close(loop);
        ca_decref(err);
        if (--loop->ob_base.ob_refcnt != 0) return;
    }
    ca_debug_unregister_loop(loop);
    ca_free(loop->ready);
    ca_free(loop->heap);
    ca_free(loop);
}

/* MARK: - Tasks and hooks */

ca_future *ca_loop_create_future(ca_loop *loop) { return ca_future_new(loop); }

ca_error *ca_loop_create_task(ca_loop *loop, ca_coro *coro, const ca_task_options *opts, ca_task **out) {
    *out = NULL;
    if (loop->closed) {
        if (ca_coro_check(coro)) ca_coro_close(coro);
        ca_decref(coro);
        return closed_error();
    }
    if (loop->task_factory != NULL) return loop->task_factory(loop, coro, opts, loop->task_factory_arg, out);
    return ca_task_new(loop, coro, opts, out);
}

void ca_loop_set_task_factory(ca_loop *loop, ca_task_factory_fn fn, void *arg) {
    loop->task_factory = fn;
    loop->task_factory_arg = arg;
}
ca_task_factory_fn ca_loop_get_task_factory(const ca_loop *loop) { return loop->task_factory; }

void ca_loop_set_debug(ca_loop *loop, bool enabled) { loop->debug = enabled; }
bool ca_loop_get_debug(const ca_loop *loop) { return loop->debug; }
void ca_loop_set_slow_callback_duration(ca_loop *loop, int64_t ns) { loop->slow_callback_ns = ns; }

void ca_loop_advance_time(ca_loop *loop, int64_t ns) {
    if (loop->virtual_clock && ns > 0) loop->vtime += ns;
}

size_t ca_loop_ready_count(const ca_loop *loop) { return loop->ready_len; }
size_t ca_loop_timer_count(const ca_loop *loop) { return loop->heap_len; }
uint64_t ca_loop_iteration_count(const ca_loop *loop) { return loop->iterations; }
const char *ca_loop_backend_name(const ca_loop *loop) {
    return loop->backend_ops ? loop->backend_ops->name : "closed";
}
