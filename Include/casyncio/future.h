/*
 * future.h — asyncio.Future (Modules/_asynciomodule.c FutureObj).
 *
 * A future belongs to one loop and is used on that loop's thread only.
 * Done callbacks are never run inline: set_result / set_exception / cancel
 * schedule them with call_soon, in registration order.
 */
#ifndef CASYNCIO_FUTURE_H
#define CASYNCIO_FUTURE_H

#include "context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ca_loop ca_loop;
typedef struct ca_future ca_future;
typedef struct ca_task ca_task;

/** A done callback: called with the future and the registered argument. */
typedef void (*ca_done_fn)(ca_future *fut, void *arg);
/** Releases a callback's argument when the callback is dropped (may be NULL). */
typedef void (*ca_release_fn)(void *arg);

/** One registered done callback (the fn/arg pair is its identity). */
typedef struct ca_callback {
    ca_done_fn fn;
    void *arg;
    ca_release_fn arg_release;
} ca_callback;

/** An entry of the spill array: the callback and its context (owned; NULL
 *  means "a private copy of an empty context"). */
typedef struct ca_callback_entry {
    ca_callback cb;
    ca_context *ctx;
} ca_callback_entry;

/** Storage for callbacks 2..n (fut_callbacks). */
typedef struct ca_callback_list {
    size_t len;
    size_t cap;
    ca_callback_entry items[];
} ca_callback_list;

/** Open-addressed pointer set used when a future is awaited by more than one
 *  waiter (fut_awaited_by with fut_awaited_by_is_set = 1). Debuggers read it:
 *  `mask + 1` slots, NULL = empty, CA_PTRSET_DUMMY = deleted. */
typedef struct ca_ptrset {
    size_t used;
    size_t fill;
    size_t mask;
    void **table;
} ca_ptrset;
#define CA_PTRSET_DUMMY ((void *)1)

typedef enum ca_future_state {
    CA_FUTURE_PENDING = 0,
    CA_FUTURE_CANCELLED = 1,
    CA_FUTURE_FINISHED = 2,
} ca_future_state;

/**
 * The fields Future and Task share, in FutureObj_HEAD's order. The offsets
 * table (debug.h) publishes them; do not reorder.
 */
#define CA_FUTURE_HEAD(prefix)                                                  \
    ca_object ob_base;                                                          \
    ca_loop *prefix##_loop;            /* owning loop (strong); NULL: not initialised */ \
    ca_callback prefix##_callback0;    /* first done callback (fast slot) */    \
    ca_context *prefix##_context0;     /* its context (owned, may be NULL) */   \
    ca_callback_list *prefix##_callbacks; /* callbacks 2..n, or NULL */         \
    struct ca_error *prefix##_exception;  /* set by set_exception (owned) */    \
    void *prefix##_exception_tb;       /* reserved: tracebacks are not captured */ \
    ca_value prefix##_result;          /* set by set_result (owned) */          \
    const char *prefix##_source_tb;    /* debug mode: creation site, or NULL */ \
    char *prefix##_cancel_msg;         /* cancel(msg) (owned, may be NULL) */   \
    struct ca_error *prefix##_cancelled_exc; /* CancelledError raised by the coroutine */ \
    void *prefix##_awaited_by;         /* NULL, one ca_future*, or a ca_ptrset* */ \
    uint8_t prefix##_state;            /* ca_future_state */                    \
    uint8_t prefix##_is_task;                                                   \
    uint8_t prefix##_awaited_by_is_set;                                         \
    uint8_t prefix##_log_tb : 1;       /* exception not yet retrieved */        \
    uint8_t prefix##_blocking : 1;     /* _asyncio_future_blocking */           \
    uint8_t prefix##_pad_ : 6

struct ca_future {
    CA_FUTURE_HEAD(fut);
};

extern const ca_type ca_FutureType;

/**
 * The type descriptor of a Future subclass that overrides cancel(), as
 * tasks._GatheringFuture does: ca_future_cancel calls `ft_cancel` for a
 * future of such a type. Every Future subtype other than Task must be
 * declared with one (ft_cancel NULL: Future.cancel).
 */
typedef struct ca_future_type {
    ca_type ft_base;
    bool (*ft_cancel)(ca_future *fut, const char *msg);
} ca_future_type;

/**
 * Creates a pending future attached to `loop` (loop.create_future()).
 * Returns a new reference, or NULL when `loop` is NULL or memory runs out.
 */
ca_future *ca_future_new(ca_loop *loop);

/** True when `op` is a Future or a Task. */
bool ca_future_check(const void *op);

/** The future's loop (borrowed). */
ca_loop *ca_future_get_loop(const ca_future *fut);

/** Plain state tests (False for an uninitialised future). */
bool ca_future_done(const ca_future *fut);
bool ca_future_cancelled(const ca_future *fut);

/** "PENDING", "CANCELLED" or "FINISHED". */
const char *ca_future_state_name(const ca_future *fut);

/**
 * result(): on success stores a BORROWED view of the result in *out (valid
 * while the future lives; ca_value_copy it to keep it) and clears log_tb.
 * Errors (new reference): the stored exception; a CancelledError from
 * _make_cancelled_error if cancelled; InvalidStateError "Result is not set."
 * while pending.
 */
struct ca_error *ca_future_result(ca_future *fut, ca_value *out);

/**
 * exception(): stores the exception (new reference, NULL if the future has a
 * result) in *out and clears log_tb. Errors: CancelledError if cancelled;
 * InvalidStateError "Exception is not set." while pending.
 */
struct ca_error *ca_future_exception(ca_future *fut, struct ca_error **out);

/**
 * set_result(): takes ownership of `value` (released on failure too) and
 * schedules the callbacks. InvalidStateError "invalid state" when not pending;
 * RuntimeError for a Task ("Task does not support set_result operation").
 */
struct ca_error *ca_future_set_result(ca_future *fut, ca_value value);

/**
 * set_exception(): stores a new reference to `exc` and schedules the
 * callbacks; sets log_tb. A StopIteration (or subclass) is replaced by a
 * RuntimeError("StopIteration interacts badly with generators and cannot be
 * raised into a Future") whose cause and context are the StopIteration.
 * Errors: InvalidStateError when not pending; TypeError "invalid exception
 * object" when exc is NULL; RuntimeError for a Task.
 */
struct ca_error *ca_future_set_exception(ca_future *fut, struct ca_error *exc);

/**
 * cancel(msg): clears log_tb; returns false when not pending, else moves to
 * CANCELLED, keeps a copy of `msg` (NULL: no message) and schedules the
 * callbacks. Dispatches to Task.cancel for a task and to the type's
 * ft_cancel for a Future subtype that overrides it (ca_future_type).
 */
bool ca_future_cancel(ca_future *fut, const char *msg);

/**
 * add_done_callback(fn, arg, context=ctx). `ctx` NULL means a copy of the
 * current context; otherwise a new reference to ctx is kept. `arg_release`
 * (may be NULL) is called once the callback is dropped (after it ran, when
 * removed, or when the future dies). If the future is already done the
 * callback is scheduled with call_soon at once. Errors: RuntimeError "Event
 * loop is closed" from call_soon, InvalidStateError for an uninitialised
 * future, MemoryError; on error arg_release is called.
 */
struct ca_error *ca_future_add_done_callback(ca_future *fut, ca_done_fn fn, void *arg,
                                             ca_release_fn arg_release, ca_context *ctx);

/** remove_done_callback(fn): removes every entry with this fn and arg;
 *  returns how many were removed (surviving entries keep their order). */
size_t ca_future_remove_done_callback(ca_future *fut, ca_done_fn fn, void *arg);

/** _callbacks: copies up to `cap` registered callbacks into `out` in order;
 *  returns the total number registered. */
size_t ca_future_get_callbacks(const ca_future *fut, ca_callback *out, size_t cap);

/** _make_cancelled_error(): the CancelledError saved from the coroutine
 *  (ownership passes to the caller and the slot is cleared), else a new
 *  CancelledError(cancel_msg). Never NULL. */
struct ca_error *ca_future_make_cancelled_error(ca_future *fut);

/** The cancel message (borrowed; NULL when none). */
const char *ca_future_cancel_message(const ca_future *fut);
/** Sets _cancel_message (a copy is kept; NULL clears). */
void ca_future_set_cancel_message(ca_future *fut, const char *msg);

/** _log_traceback setter: false clears the flag; true is a ValueError
 *  ("_log_traceback can only be set to False"). */
struct ca_error *ca_future_set_log_traceback(ca_future *fut, bool value);

/** _asyncio_future_blocking accessors. */
bool ca_future_get_blocking(const ca_future *fut);
void ca_future_set_blocking(ca_future *fut, bool value);

/** future_add_to_awaited_by / future_discard_from_awaited_by: record or
 *  forget that `waiter` awaits `fut`. The first waiter is kept inline; a
 *  second promotes the slot to a set. Returns MemoryError only. */
struct ca_error *ca_future_add_to_awaited_by(ca_future *fut, ca_future *waiter);
void ca_future_discard_from_awaited_by(ca_future *fut, ca_future *waiter);

/** Copies up to `cap` awaiters of `fut` into `out`; returns how many there are. */
size_t ca_future_get_awaited_by(const ca_future *fut, ca_future **out, size_t cap);

/**
 * repr(): "<Future pending>", "<Future finished result=4>", "<Future
 * cancelled>", "<Future finished exception=RuntimeError('x')>", with
 * " cb=[...]" while callbacks are registered. Writes into buf (NUL-terminated
 * when size > 0) and returns the length that was needed.
 */
size_t ca_future_repr(const ca_future *fut, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
