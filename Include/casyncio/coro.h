/*
 * coro.h — the coroutine protocol a task drives, and a stackless coroutine
 * kit that lets a C coroutine read like an `async def`.
 *
 * Protocol (PyIter_Send's): send(value) / throw(error) resume the coroutine
 * and report YIELD (a future to wait on, or none for a bare yield), RETURN
 * (a value) or RAISE (an error); close() abandons it.
 */
#ifndef CASYNCIO_CORO_H
#define CASYNCIO_CORO_H

#include "future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ca_coro ca_coro;

typedef enum ca_coro_status {
    CA_CORO_YIELD = 0,
    CA_CORO_RETURN = 1,
    CA_CORO_RAISE = 2,
} ca_coro_status;

/** What a resumption produced. Exactly one member is meaningful. */
typedef struct ca_coro_result {
    ca_future *future;      /* YIELD: the awaited future (new reference), NULL: bare yield */
    ca_value value;         /* RETURN: the return value (owned) */
    struct ca_error *error; /* RAISE: the error (new reference) */
} ca_coro_result;

typedef enum ca_coro_state {
    CA_CORO_CREATED = 0,
    CA_CORO_RUNNING = 1,
    CA_CORO_SUSPENDED = 2,
    CA_CORO_CLOSED = 3,
} ca_coro_state;

/** The vtable of a coroutine type. */
typedef struct ca_coro_type {
    ca_type base; /* tp_name, tp_basicsize, tp_dealloc; tp_base = &ca_CoroType */
    /** Resumes with `value` (taken). */
    ca_coro_status (*send)(ca_coro *self, ca_value value, ca_coro_result *res);
    /** Resumes by raising `exc` (borrowed) at the suspension point. */
    ca_coro_status (*throw_)(ca_coro *self, struct ca_error *exc, ca_coro_result *res);
    /** Abandons the coroutine; releases what its suspension holds. */
    void (*close)(ca_coro *self);
} ca_coro_type;

/** The header of every coroutine; what debuggers read for the call stack. */
struct ca_coro {
    ca_object ob_base;
    const char *co_name;        /* qualified name, e.g. "main" (static string) */
    const char *co_filename;    /* static string */
    int32_t co_firstlineno;
    int32_t co_lineno;          /* line of the current suspension, 0 when not suspended */
    ca_coro *co_awaiting;       /* coroutine this one awaits ("yield from"), owned, or NULL */
    uint8_t co_state;           /* ca_coro_state */
};

extern const ca_type ca_CoroType; /* abstract base of every coroutine type */

/** True when `op` is a coroutine (its type derives from ca_CoroType). */
bool ca_coro_check(const void *op);

/** Dispatch helpers. send/throw on a RUNNING coroutine raise a ValueError
 *  ("coroutine already executing"); on a CLOSED one, "cannot reuse already
 *  awaited coroutine". throw into a CREATED coroutine raises `exc` at once. */
ca_coro_status ca_coro_send(ca_coro *coro, ca_value value, ca_coro_result *res);
ca_coro_status ca_coro_throw(ca_coro *coro, struct ca_error *exc, ca_coro_result *res);
void ca_coro_close(ca_coro *coro);

/* MARK: - The C coroutine kit */

typedef struct ca_cframe ca_cframe;

/** Type of a kit coroutine: a body function and a finalizer for the frame's
 *  own fields. Define with CA_CORO_TYPE. */
typedef struct ca_cframe_type {
    ca_coro_type coro_type;
    ca_coro_status (*body)(void *frame, ca_coro_result *res);
    void (*finalize)(void *frame); /* releases user fields; may be NULL */
    const char *name;
    const char *filename;
    int32_t firstlineno;
} ca_cframe_type;

/** The kit's part of a frame: embed as the FIRST member `cf` of your frame.
 *  Suspension points are numbered with __COUNTER__, so any number of them
 *  may share a source line (macros that nest awaits do). */
struct ca_cframe {
    ca_coro co;
    int32_t resume_point;       /* the line to resume at; 0 = start */
    struct ca_error *exc;       /* error delivered at the current await (owned) */
    ca_future *awaited;         /* future of the last CA_AWAIT (owned) */
    ca_value subvalue;          /* return value of the last CA_AWAIT_CORO (owned) */
    /* Run with the awaited future if the frame is closed while suspended on
     * it: the `except:`/`finally:` around that await, for macros that await
     * inline (CA_AWAIT_QUEUE_GET). Set just before suspending, cleared on
     * resumption. */
    void (*on_abandon)(ca_future *awaited, void *arg);
    void *on_abandon_arg;
};

/**
 * Allocates a zeroed frame of `size` bytes (>= sizeof(ca_cframe)) for `type`,
 * from a freelist in steady state. Returns a new reference or NULL (memory).
 */
ca_coro *ca_cframe_new(const ca_cframe_type *type, size_t size);

/** Defines `ident`, the type of a kit coroutine with frame struct
 *  `frame_t` (whose first member is `ca_cframe cf`), body `body_fn` and
 *  `finalize_fn` (`void (*)(frame_t *)` releasing the frame's own fields,
 *  or NULL). */
#define CA_CORO_TYPE(ident, frame_t, body_fn, finalize_fn)                        \
    static ca_coro_status body_fn(frame_t *self, ca_coro_result *ca__res);       \
    /* thunks: the kit calls through void *, the user functions take frame_t * */ \
    static ca_coro_status body_fn##__ca_body(void *self, ca_coro_result *res) {  \
        return body_fn((frame_t *)self, res);                                    \
    }                                                                            \
    static void body_fn##__ca_finalize(void *self) {                             \
        void (*fin)(frame_t *) = (finalize_fn);                                  \
        if (fin != NULL) fin((frame_t *)self);                                   \
    }                                                                            \
    static const ca_cframe_type ident = {                                        \
        .coro_type = {.base = {#body_fn, sizeof(frame_t), NULL, &ca_CFrameType},  \
                      .send = ca_cframe_send,                                    \
                      .throw_ = ca_cframe_throw,                                 \
                      .close = ca_cframe_close},                                 \
        .body = body_fn##__ca_body,                                              \
        .finalize = body_fn##__ca_finalize,                                      \
        .name = #body_fn,                                                        \
        .filename = __FILE__,                                                    \
        .firstlineno = __LINE__,                                                 \
    }

/** Allocates a frame of `frame_t` for kit type `type` (a new reference to
 *  the frame, typed; NULL when out of memory). */
#define CA_CORO_NEW(type, frame_t) ((frame_t *)ca_cframe_new(&(type), sizeof(frame_t)))

/** The body's signature. */
#define CA_CORO_BODY(body_fn, frame_t) \
    static ca_coro_status body_fn(frame_t *self, ca_coro_result *ca__res)

extern const ca_type ca_CFrameType; /* base of every kit coroutine type (< ca_CoroType) */

/* The kit's protocol implementation and the helpers the macros call. */
ca_coro_status ca_cframe_send(ca_coro *self, ca_value value, ca_coro_result *res);
ca_coro_status ca_cframe_throw(ca_coro *self, struct ca_error *exc, ca_coro_result *res);
void ca_cframe_close(ca_coro *self);
bool ca_cframe_await_begin(ca_cframe *cf, ca_future *fut, int line, ca_coro_result *res);
struct ca_error *ca_cframe_await_end(ca_cframe *cf);
bool ca_cframe_await_coro_begin(ca_cframe *cf, ca_coro *coro, int line, ca_coro_result *res);
struct ca_error *ca_cframe_take_exc(ca_cframe *cf);

#define CA__FALLTHROUGH __attribute__((fallthrough))

/* ca_cframe_await_begin / _end with their common case inline (a pending
 * future to suspend on; a result to resume with), for the await macros. */
static inline bool ca_cframe_await_begin_fast(ca_cframe *cf, ca_future *fut, int line, ca_coro_result *res) {
    if (__builtin_expect(fut == NULL || fut->fut_state != CA_FUTURE_PENDING, 0))
        return ca_cframe_await_begin(cf, fut, line, res);
    ca_decref(cf->awaited);
    cf->awaited = fut;
    fut->fut_blocking = 1;
    cf->co.co_lineno = line;
    res->future = (ca_future *)ca_incref(fut);
    return true;
}
static inline struct ca_error *ca_cframe_await_end_fast(ca_cframe *cf) {
    if (__builtin_expect(cf->exc == NULL && cf->awaited->fut_state == CA_FUTURE_FINISHED &&
                             cf->awaited->fut_exception == NULL, 1))
        return NULL;
    return ca_cframe_await_end(cf);
}

/** Starts the body. Everything between BEGIN and END is the coroutine. */
#define CA_BEGIN                                          \
    ca_cframe *const ca__cf = &self->cf;                  \
    switch (ca__cf->resume_point) {                       \
    case 0:

/** Ends the body; falling off the end returns None. */
#define CA_END                                            \
    default:                                              \
        break;                                            \
    }                                                     \
    ca__res->value = ca_none();                           \
    return CA_CORO_RETURN

/** `return v` (the value is taken). */
#define CA_RETURN(v)                                      \
    do {                                                  \
        ca__res->value = (v);                             \
        return CA_CORO_RETURN;                            \
    } while (0)

/** `raise err` (the reference is taken). */
#define CA_RAISE(err)                                     \
    do {                                                  \
        ca__res->error = (err);                           \
        return CA_CORO_RAISE;                             \
    } while (0)

/**
 * `try: await fut` — takes the reference to `fut` (NULL raises MemoryError).
 * A done future does not suspend. Afterwards `err_out` holds the error raised
 * at the await (owned, NULL on success) and CA_RESULT() the result.
 */
#define CA__AWAIT_TRY(fut_expr, err_out, ca__id)                                          \
    do {                                                                         \
        if (ca_cframe_await_begin_fast(ca__cf, (ca_future *)(fut_expr), __LINE__, ca__res)) { \
            ca__cf->resume_point = (ca__id);                                     \
            return CA_CORO_YIELD;                                                \
        }                                                                        \
        CA__FALLTHROUGH;                                                         \
    case (ca__id):                                                               \
        (err_out) = ca_cframe_await_end_fast(ca__cf);                            \
    } while (0)
#define CA_AWAIT_TRY(fut_expr, err_out) CA__AWAIT_TRY(fut_expr, err_out, __COUNTER__ + 1)

/** `await fut`: like CA_AWAIT_TRY but an error propagates out of the body. */
#define CA_AWAIT(fut_expr)                                                       \
    do {                                                                         \
        struct ca_error *ca__aerr;                                               \
        CA_AWAIT_TRY(fut_expr, ca__aerr);                                        \
        if (ca__aerr != NULL) CA_RAISE(ca__aerr);                                \
    } while (0)

/** The result of the last CA_AWAIT (a borrowed ca_value, valid until the
 *  next await). */
#define CA_RESULT() (ca__cf->awaited->fut_result)

/** `try: await coro` — delegates to another coroutine (taken) until it
 *  returns (CA_CORO_RESULT) or raises (err_out). */
#define CA__AWAIT_CORO_TRY(coro_expr, err_out, ca__id)                                    \
    do {                                                                         \
        if (ca_cframe_await_coro_begin(ca__cf, (ca_coro *)(coro_expr), __LINE__, ca__res)) { \
            ca__cf->resume_point = (ca__id);                                     \
            return CA_CORO_YIELD;                                                \
        }                                                                        \
        CA__FALLTHROUGH;                                                         \
    case (ca__id):                                                               \
        (err_out) = ca_cframe_take_exc(ca__cf);                            \
    } while (0)
#define CA_AWAIT_CORO_TRY(coro_expr, err_out) CA__AWAIT_CORO_TRY(coro_expr, err_out, __COUNTER__ + 1)

#define CA_AWAIT_CORO(coro_expr)                                                 \
    do {                                                                         \
        struct ca_error *ca__cerr;                                               \
        CA_AWAIT_CORO_TRY(coro_expr, ca__cerr);                                  \
        if (ca__cerr != NULL) CA_RAISE(ca__cerr);                                \
    } while (0)

/** The value the last CA_AWAIT_CORO returned (ca_value lvalue, owned by
 *  the frame until the next CA_AWAIT_CORO; move it out to keep it). */
#define CA_CORO_RESULT() (ca__cf->subvalue)

/** A bare `yield` (what asyncio.sleep(0) does): gives up one loop iteration.
 *  `err_out` receives an error thrown in meanwhile (e.g. cancellation). */
#define CA__YIELD_TRY(err_out, ca__id)                                                    \
    do {                                                                         \
        ca__cf->co.co_lineno = __LINE__;                                         \
        ca__cf->resume_point = (ca__id);                                         \
        ca__res->future = NULL;                                                  \
        return CA_CORO_YIELD;                                                    \
    case (ca__id):                                                               \
        (err_out) = ca_cframe_take_exc(ca__cf);                                  \
    } while (0)
#define CA_YIELD_TRY(err_out) CA__YIELD_TRY(err_out, __COUNTER__ + 1)

#define CA_YIELD()                                                               \
    do {                                                                         \
        struct ca_error *ca__yerr;                                               \
        CA_YIELD_TRY(ca__yerr);                                                  \
        if (ca__yerr != NULL) CA_RAISE(ca__yerr);                                \
    } while (0)

/** Yields `fut` (taken) to the task WITHOUT the blocking flag — the
 *  "yield instead of yield from" mistake; for tests of the task's checks. */
#define CA__YIELD_RAW_TRY(fut_expr, err_out, ca__id)                                      \
    do {                                                                         \
        ca__cf->co.co_lineno = __LINE__;                                         \
        ca__cf->resume_point = (ca__id);                                         \
        ca__res->future = (ca_future *)(fut_expr);                               \
        return CA_CORO_YIELD;                                                    \
    case (ca__id):                                                               \
        (err_out) = ca_cframe_take_exc(ca__cf);                                  \
    } while (0)
#define CA_YIELD_RAW_TRY(fut_expr, err_out) CA__YIELD_RAW_TRY(fut_expr, err_out, __COUNTER__ + 1)

#ifdef __cplusplus
}
#endif
#endif
