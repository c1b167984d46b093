/*
 * casyncio_shim.h — the C side of the Swift layer (module Asyncio): the
 * coroutine object a Swift `async` body drives a C task through, the
 * per-thread windows the loop's executors read, the box that carries Swift
 * values in a future, and two entry points of the Swift runtime.
 *
 * Nothing here is public API of the package: Sources/Asyncio is its only
 * user. Every function runs on the loop thread unless its comment says
 * otherwise.
 */
#ifndef CASYNCIO_SHIM_H
#define CASYNCIO_SHIM_H

#include <casyncio/casyncio.h>

#include "casyncio_shim_datagram.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MARK: - The Swift runtime */

/** The Swift task running on this thread (AsyncTask *), or NULL. About ten
 *  instructions, where withUnsafeCurrentTask costs hundreds. */
void *cas_swift_task_current(void);

/** Swift's Task.cancel() on a task identified by its AsyncTask pointer; any
 *  thread. The task must be alive (not yet completed). */
void cas_swift_task_cancel(void *task);

/** Makes the suspended continuation `cont` (an UnsafeContinuation's raw
 *  value: its AsyncTask) resume onto the serial executor (`identity`,
 *  `implementation`: the two words of an UnownedSerialExecutor) instead of
 *  the generic executor, when it still has the shape this code knows: a
 *  non-throwing continuation the task awaits, set to resume on the generic
 *  executor. Its resumption then goes straight to that executor's enqueue,
 *  where the generic executor would first look up the task's executor
 *  preference under the task's status lock. Returns whether it did; false
 *  leaves the continuation untouched (it resumes as before).
 *
 *  Reads the Swift runtime's ABI layout (swift/ABI/Task.h: AsyncTask's
 *  ResumeContext, ContinuationAsyncContext's Flags, AwaitSynchronization
 *  and ResumeToExecutor, the last "public ABI") only when the runtime reports
 *  the layout version it was written for and `cont` is an AsyncTask (its
 *  metadata). Loop thread, between the
 *  body's suspension and the resume of `cont`. */
bool cas_continuation_resume_to(void *cont, void *identity, uintptr_t implementation);

/** Whether cas_continuation_resume_to recognizes this Swift runtime (the
 *  layout version it was written for; checked once by cas_install). When
 *  false, every resumption takes the generic executor's path. Any thread. */
bool cas_continuation_retarget_supported(void);

/** swift_retain / swift_release of a Swift object given as a raw pointer. */
void cas_swift_retain(void *object);
void cas_swift_release(void *object);

/* libswiftCore's reference-count queries (C calling convention). */
size_t swift_unownedRetainCount(void *object); /* libswiftCore, C calling convention */
size_t swift_weakRetainCount(void *object);

/** Whether no weak or unowned reference to the Swift object exists (the
 *  runtime's counts: unowned 1 = only the strong side's, weak <= 1 = the
 *  side table's own or none). An object someone still reaches weakly must not
 *  be recycled: that reference would then lead to someone else's state. */
static inline bool cas_swift_no_weak_or_unowned(void *object) {
    return swift_unownedRetainCount(object) <= 1 && swift_weakRetainCount(object) <= 1;
}

/* MARK: - Swift coroutines */

/** Where a Swift body stands, seen from its C task. */
typedef enum cas_phase {
    CAS_PHASE_NOT_STARTED = 0, /* the Swift task's first job is captured, not run */
    CAS_PHASE_RUNNING = 1,     /* its job runs inside send/throw */
    CAS_PHASE_AWAITING = 2,    /* suspended on a loop await (continuation recorded) */
    CAS_PHASE_FOREIGN = 3,     /* suspended elsewhere; waits for its job to be adopted */
    CAS_PHASE_DONE = 4,        /* the body returned or threw; outcome stored */
} cas_phase;

/**
 * A coroutine whose body is a Swift `async` closure running in a Swift task.
 * The C task drives it like any other coroutine; each send/throw runs the
 * Swift task's pending job synchronously until the body awaits a loop future
 * (YIELD it), gives up one iteration (bare YIELD), returns or throws.
 *
 * Job and continuation fields are the Swift runtime's pointers (UnownedJob,
 * UnsafeContinuation) stored bit for bit.
 */
typedef struct cas_coro {
    ca_coro co;               /* co_awaiting: a C coroutine the body delegates to */
    uint8_t phase;            /* cas_phase */
    uint8_t bare_yield;       /* the recorded await is a bare yield (sleep(0)) */
    uint8_t closing;          /* close() asked the body to unwind; loop awaits raise */
    uint8_t abandoned;        /* thrown into before it started: the body never runs */
    void *swift_task;         /* the body's AsyncTask (identity; alive until DONE) */
    void *job;                /* the job the next step runs (captured or adopted);
                                 bit 0: it was enqueued on the serial role */
    void *trampoline;         /* the task's own job re-enqueued while it ran (same tag) */
    void *cont;               /* the continuation of the recorded await */
    ca_future *awaited;       /* the future of the recorded await (owned until yielded) */
    ca_future *foreign;       /* the private future of a foreign suspension (owned) */
    ca_error *resume_exc;     /* thrown at the await when the body resumes (owned) */
    ca_value resume_value;    /* what a delegated C coroutine returned (owned) */
    ca_error *pending_exc;    /* a CancelledError deferred to the next loop await (owned) */
    ca_value result;          /* DONE: the return value (owned) */
    ca_error *error;          /* DONE: the error (owned), NULL when it returned */
    void *core;               /* the loop's Swift core (unretained; alive until DONE) */
    void *body[2];            /* the body closure (a Swift function value) from its
                                 creation until the task's first job moves it out */
} cas_coro;

/** The hooks the Swift layer installs once (cas_install). */
typedef struct cas_hooks {
    ca_coro_status (*send)(cas_coro *coro, ca_coro_result *res);
    ca_coro_status (*throw_)(cas_coro *coro, ca_error *exc, ca_coro_result *res);
    void (*close)(cas_coro *coro);
} cas_hooks;

/** Installs the Swift implementations of send/throw/close. Idempotent; the
 *  first call wins. Any thread. */
void cas_install(const cas_hooks *hooks);

/** The coroutine type of Swift bodies ("swift" in reprs). */
extern const ca_coro_type cas_SwiftCoroType;

/** A new coroutine (refcount 1) for a body created at `file`:`line` in
 *  `name` (static strings). From the core's per-thread freelists in steady
 *  state. NULL when out of memory. */
cas_coro *cas_coro_new(const char *name, const char *file, int32_t line);

/** Returns the calling thread's recycled blocks to the allocator (before a
 *  leak check; done at thread exit anyway). The shim's coroutines and slots
 *  come from the core's freelists, so this is ca_freelists_clear. */
void cas_freelists_clear(void);

/** The size of a callback slot: room for two Swift closures of two words
 *  each (a done callback and the invoker that knows its type). */
#define CAS_SLOT_SIZE 32

/** A block of CAS_SLOT_SIZE bytes, aligned as malloc aligns, uninitialized: where the
 *  Swift layer keeps a callback a C object holds, so registering one
 *  allocates nothing in steady state. From the core's per-thread freelists
 *  (any thread may free a slot another allocated); NULL when out of memory.
 *  The caller owns it until cas_slot_free. */
void *cas_slot_alloc(void);

/** Returns a slot of cas_slot_alloc (whose contents the caller already
 *  destroyed) to the calling thread's freelist, or to the allocator once
 *  the thread's exit hooks ran; NULL is ignored. */
void cas_slot_free(void *slot);

/** True when `op` is a Swift coroutine. */
static inline bool cas_coro_check(const void *op) {
    return op != NULL && ((const ca_object *)op)->ob_type == &cas_SwiftCoroType.base;
}

/* MARK: - Per-thread windows */

/**
 * What the loop's executors read when a job is enqueued. `capture` is open
 * while send resumes or starts a body: the job enqueued then is that body's.
 * `running` is the coroutine whose job runs now: its own job enqueued again
 * is an executor hop to run inline (trampoline). `core` is the Swift core of
 * the loop an EventLoop runs on this thread.
 */
typedef struct cas_tls {
    cas_coro *capture;
    cas_coro *running;
    void *core;
    ca_loop *loop;
    /* The job (or other call of the Swift layer) this thread is handing to
     * a loop through call_soon_threadsafe: a release of it that runs
     * meanwhile is the loop refusing it (closed, or out of memory), not a
     * loop dropping it later. */
    void *handover;
} cas_tls;

extern _Thread_local cas_tls cas_tls_state __attribute__((tls_model("initial-exec")));

/** The calling thread's windows. */
__attribute__((returns_nonnull)) static inline cas_tls *cas_tls_get(void) { return &cas_tls_state; }

/* MARK: - Futures */

/** The type of the private future a Swift body waits on while suspended
 *  outside the loop (Task.sleep, another actor): "SwiftSuspension" in reprs. */
extern const ca_future_type cas_SwiftSuspensionType;

/** A pending future of `loop` typed SwiftSuspension (new reference; NULL:
 *  memory). */
ca_future *cas_suspension_new(ca_loop *loop);

/** Marks `fut` as awaited with `yield from` (_asyncio_future_blocking). */
static inline void cas_future_set_blocking(ca_future *fut) { fut->fut_blocking = 1; }

/* MARK: - Boxes */

/**
 * A core object holding one retained Swift object: how a future stores a
 * Swift value that is not an integer, a double or nothing. Copying the
 * value (gather, shield) shares the box by reference count, so the Swift
 * object lives as long as any future holds it. `tag` names the Swift type
 * the object boxes, checked before a typed read.
 */
typedef struct cas_box {
    ca_object ob_base;
    void *object; /* retained Swift object */
    const void *tag;
} cas_box;

extern const ca_type cas_BoxType;

/** A box taking the caller's +1 on `object` (new reference; NULL: memory,
 *  the object then released). */
cas_box *cas_box_new(void *object, const void *tag);

/** The Swift object of an OBJECT value holding a box with `tag`, else NULL
 *  (borrowed). */
static inline void *cas_box_object(const ca_value *v, const void *tag) {
    if (v->kind != CA_VALUE_OBJECT || v->u.obj == NULL || v->u.obj->ob_type != &cas_BoxType) return NULL;
    const cas_box *b = (const cas_box *)v->u.obj;
    return b->tag == tag ? b->object : NULL;
}

/* MARK: - Errors */

/** The C type of a Swift error that is not an asyncio error ("SwiftError",
 *  < Exception); the Swift error itself rides in the payload. */
extern const ca_error_type cas_SwiftError;
/** GeneratorExit (< BaseException), thrown into a body its task abandons. */
extern const ca_error_type cas_GeneratorExit;

/** The addresses of the error types the Swift layer names (Swift imports
 *  the C constants by value, and types are compared by address). */
static inline const ca_error_type *cas_CancelledError(void) { return &ca_CancelledError; }
static inline const ca_error_type *cas_TimeoutError(void) { return &ca_TimeoutError; }
static inline const ca_error_type *cas_InvalidStateError(void) { return &ca_InvalidStateError; }
static inline const ca_error_type *cas_QueueEmpty(void) { return &ca_QueueEmpty; }
static inline const ca_error_type *cas_QueueFull(void) { return &ca_QueueFull; }
static inline const ca_error_type *cas_QueueShutDown(void) { return &ca_QueueShutDown; }
static inline const ca_error_type *cas_BrokenBarrierError(void) { return &ca_BrokenBarrierError; }
static inline const ca_error_type *cas_OSError(void) { return &ca_OSError; }
static inline const ca_error_type *cas_BaseExceptionGroup(void) { return &ca_BaseExceptionGroup; }
static inline const ca_error_type *cas_Exception(void) { return &ca_Exception; }
static inline const ca_error_type *cas_RuntimeError(void) { return &ca_RuntimeError; }
static inline const ca_error_type *cas_SwiftErrorType(void) { return &cas_SwiftError; }
static inline const ca_error_type *cas_GeneratorExitType(void) { return &cas_GeneratorExit; }

/** A built-in error type by its Python name ("ValueError"), or NULL. */
const ca_error_type *cas_error_type_named(const char *name);

/** Stores `payload` (a retained Swift object) in err->payload, released
 *  with the error. */
void cas_error_set_swift_payload(ca_error *err, void *payload);

/** The Swift object in err->payload when the Swift layer put it there, else
 *  NULL (borrowed). */
void *cas_error_swift_payload(const ca_error *err);

/* MARK: - Small helpers Swift cannot express directly */

/** The result of a task or future as a borrowed view (no checks). */
static inline const ca_value *cas_future_result_view(const ca_future *fut) { return &fut->fut_result; }

/** ca_value constructors for Swift (the header's are static inline too, but
 *  take unions Swift builds awkwardly). */
static inline ca_value cas_obj_value(void *o) { return ca_obj(o); }

#ifdef __cplusplus
}
#endif
#endif
