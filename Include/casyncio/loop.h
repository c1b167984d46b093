/*
 * loop.h — the event loop (Lib/asyncio/base_events.py BaseEventLoop) and its
 * handles. Time is integer nanoseconds of CLOCK_MONOTONIC, or of a virtual
 * clock that jumps to the next deadline whenever nothing is ready.
 *
 * A loop runs on one thread at a time. Only ca_loop_call_soon_threadsafe,
 * ca_loop_stop_threadsafe and ca_loop_wake may be called from other threads.
 */
#ifndef CASYNCIO_LOOP_H
#define CASYNCIO_LOOP_H

#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ca_handle ca_handle;

/** A plain loop callback: call_soon(fn, arg). */
typedef void (*ca_callback_fn)(void *arg);

extern const ca_type ca_HandleType;
extern const ca_type ca_TimerHandleType;
extern const ca_type ca_LoopType;

typedef enum ca_backend_kind {
    CA_BACKEND_AUTO = 0,  /* io_uring when the kernel allows it, else epoll;
                             ASYNCIO_BACKEND=uring|epoll overrides */
    CA_BACKEND_URING = 1,
    CA_BACKEND_EPOLL = 2,
} ca_backend_kind;

/** Loop construction options. Zero-initialise for the defaults. */
typedef struct ca_loop_config {
    bool virtual_clock;          /* deterministic time: jump to the next deadline when idle;
                                    while I/O or executor jobs are pending the loop waits
                                    for them in real time (up to the next deadline's
                                    distance) and jumps only when that wait saw nothing */
    bool debug;                  /* slow-callback reports, thread checks */
    ca_backend_kind backend;
    int64_t slow_callback_ns;    /* debug threshold; 0: 100 ms */
} ca_loop_config;

/** Context handed to an exception handler. Every pointer is borrowed and may be NULL. */
typedef struct ca_exception_context {
    const char *message;
    struct ca_error *exception;
    ca_future *future;
    ca_task *task;
    ca_handle *handle;
} ca_exception_context;

typedef void (*ca_exception_handler_fn)(ca_loop *loop, const ca_exception_context *context,
                                        void *arg);

typedef enum ca_log_level { CA_LOG_DEBUG = 10, CA_LOG_INFO = 20, CA_LOG_WARNING = 30,
                            CA_LOG_ERROR = 40 } ca_log_level;
typedef void (*ca_log_fn)(ca_loop *loop, ca_log_level level, const char *message, void *arg);

/**
 * new_event_loop(): creates a loop (new reference in *out). Errors: OSError
 * from the I/O backend (eventfd, io_uring_setup, epoll_create), MemoryError.
 */
struct ca_error *ca_loop_new(const ca_loop_config *config, ca_loop **out);

/** The loop's clock in nanoseconds (virtual time in virtual-clock mode). */
int64_t ca_loop_time(const ca_loop *loop);

/**
 * call_soon(fn, arg, context=ctx): queues fn(arg) for the next iteration,
 * FIFO. `ctx` NULL runs it in a private copy of the current context.
 * `arg_release` (may be NULL) is called with arg once the handle is done
 * with it (after running, or when cancelled or dropped by close). An
 * `arg_release` equal to `fn` makes a call that runs exactly once: as the
 * callback, or, when the handle never runs, as its release (for work that
 * must not be lost, such as dropping a reference). When `out` is not NULL it
 * receives a new reference to the handle. Errors: RuntimeError "Event loop
 * is closed"; in debug mode RuntimeError "Non-thread-safe operation invoked
 * on an event loop other than the current one". On error arg_release runs.
 */
struct ca_error *ca_loop_call_soon(ca_loop *loop, ca_callback_fn fn, void *arg,
                                   ca_release_fn arg_release, ca_context *ctx, ca_handle **out);

/** call_later(delay_ns, ...): call_at(time() + delay_ns). */
struct ca_error *ca_loop_call_later(ca_loop *loop, int64_t delay_ns, ca_callback_fn fn, void *arg,
                                    ca_release_fn arg_release, ca_context *ctx, ca_handle **out);

/** call_at(when_ns, ...): a timer handle that runs fn(arg) once time() >= when. */
struct ca_error *ca_loop_call_at(ca_loop *loop, int64_t when_ns, ca_callback_fn fn, void *arg,
                                 ca_release_fn arg_release, ca_context *ctx, ca_handle **out);

/**
 * call_soon_threadsafe(fn, arg): safe from any thread; wakes the loop if it
 * is waiting for I/O. The callback runs in an empty context. `arg_release`
 * as for ca_loop_call_soon: it runs on the loop's thread, or on the thread
 * closing the loop when the loop closes before it took the call, or at once
 * on this thread on error. Errors: RuntimeError "Event loop is closed",
 * MemoryError.
 */
struct ca_error *ca_loop_call_soon_threadsafe(ca_loop *loop, ca_callback_fn fn, void *arg,
                                              ca_release_fn arg_release);

/** Handle.cancel(): the callback will not run; a timer leaves the heap lazily. */
void ca_handle_cancel(ca_handle *handle);
bool ca_handle_cancelled(const ca_handle *handle);
/** TimerHandle.when() in loop nanoseconds (0 for a plain handle). */
int64_t ca_handle_when(const ca_handle *handle);
/** The loop a handle belongs to (borrowed). */
ca_loop *ca_handle_get_loop(const ca_handle *handle);

/**
 * run_forever(): runs iterations until stop(). Errors: RuntimeError "Event
 * loop is closed", "This event loop is already running", "Cannot run the
 * event loop while another loop is running"; a KeyboardInterrupt/SystemExit
 * raised by a task escapes the loop (new reference).
 */
struct ca_error *ca_loop_run_forever(ca_loop *loop);

/**
 * run_until_complete(fut): runs until `fut` is done and returns its outcome:
 * NULL on success (read the result with ca_future_result), else the error
 * result() raises. Also RuntimeError "Event loop stopped before Future
 * completed." and the run_forever errors. ValueError when `fut` belongs to
 * another loop.
 */
struct ca_error *ca_loop_run_until_complete(ca_loop *loop, ca_future *fut);

/** stop(): the current iteration completes, then run_forever returns. */
void ca_loop_stop(ca_loop *loop);
/** stop() from another thread (through the thread-safe inbox). */
struct ca_error *ca_loop_stop_threadsafe(ca_loop *loop);

/** close(): drops pending callbacks and timers, releasing at once what each
 *  holds (its argument through its release function, its task or future,
 *  its context) even while someone still holds the handle; closes the
 *  coroutines of the loop's tasks still pending (they can never resume) and
 *  cuts the reference cycles they, their done callbacks, gathers and shields
 *  form, which CPython's GC would collect; then releases the backend.
 *  Default-executor jobs still queued are dropped; one already running in a
 *  worker thread is waited for, because its argument (a buffer, a file) is
 *  in use there — where CPython's close() returns at once and leaves the
 *  thread running. So a job that never returns makes close() never return:
 *  bound such jobs yourself (ca_loop_shutdown_default_executor under a
 *  timeout tells when they are done).
 *  RuntimeError "Cannot close a running event loop"; idempotent. */
struct ca_error *ca_loop_close(ca_loop *loop);

bool ca_loop_is_running(const ca_loop *loop);
bool ca_loop_is_closed(const ca_loop *loop);

/** The loop running on the calling thread (borrowed) or NULL. */
ca_loop *ca_get_running_loop(void);
/** get_running_loop(): RuntimeError "no running event loop" when none. */
struct ca_error *ca_get_running_loop_checked(ca_loop **out);

/** create_future(): a new pending future (new reference, NULL: memory). */
ca_future *ca_loop_create_future(ca_loop *loop);

/**
 * create_task(coro, name=, context=, eager_start=): through the task factory
 * if one is set, else Task(). Takes `coro`; new reference in *out.
 */
struct ca_error *ca_loop_create_task(ca_loop *loop, ca_coro *coro, const ca_task_options *opts,
                                     ca_task **out);

/** set_task_factory(fn, arg) (fn NULL restores the default). */
void ca_loop_set_task_factory(ca_loop *loop, ca_task_factory_fn fn, void *arg);
ca_task_factory_fn ca_loop_get_task_factory(const ca_loop *loop);

/** set_exception_handler(fn, arg) (fn NULL restores the default handler). */
void ca_loop_set_exception_handler(ca_loop *loop, ca_exception_handler_fn fn, void *arg);
/** call_exception_handler(context): the custom handler, else the default. */
void ca_loop_call_exception_handler(ca_loop *loop, const ca_exception_context *context);
/** default_exception_handler(context): logs message and details at ERROR. */
void ca_loop_default_exception_handler(ca_loop *loop, const ca_exception_context *context);

/** Where the loop's log lines go (default: stderr). */
void ca_loop_set_logger(ca_loop *loop, ca_log_fn fn, void *arg);

void ca_loop_set_debug(ca_loop *loop, bool enabled);
bool ca_loop_get_debug(const ca_loop *loop);
/** slow_callback_duration in nanoseconds. */
void ca_loop_set_slow_callback_duration(ca_loop *loop, int64_t ns);

/** Virtual clock only: moves time forward by `ns` (tests). */
void ca_loop_advance_time(ca_loop *loop, int64_t ns);

/** Counts for tests and debuggers. */
size_t ca_loop_ready_count(const ca_loop *loop);
size_t ca_loop_timer_count(const ca_loop *loop);   /* heap entries, cancelled included */
uint64_t ca_loop_iteration_count(const ca_loop *loop);
/** "io_uring" or "epoll". */
const char *ca_loop_backend_name(const ca_loop *loop);

#ifdef __cplusplus
}
#endif
#endif
