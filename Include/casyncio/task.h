/*
 * task.h — asyncio.Task (Modules/_asynciomodule.c TaskObj): drives a
 * coroutine through the loop, one step per ready-queue callback.
 */
#ifndef CASYNCIO_TASK_H
#define CASYNCIO_TASK_H

#include "coro.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Intrusive node of the per-thread list of live tasks (llist_node). */
typedef struct ca_llist_node {
    struct ca_llist_node *next; /* NULL: not registered */
    struct ca_llist_node *prev;
} ca_llist_node;

struct ca_task {
    CA_FUTURE_HEAD(task);
    uint8_t task_must_cancel : 1;
    uint8_t task_log_destroy_pending : 1;
    int32_t task_num_cancels_requested;
    ca_future *task_fut_waiter;       /* what the task is blocked on (owned) */
    ca_coro *task_coro;               /* owned; dropped after an eager task ends */
    char *task_name;                  /* owned; NULL until set or formatted */
    uint64_t task_name_id;            /* N of the automatic "Task-N" name */
    ca_context *task_context;         /* owned */
    ca_llist_node task_node;          /* all-tasks list node */
    uint64_t task_tid;                /* creating thread (gettid) */
};

extern const ca_type ca_TaskType;

/** Options of create_task / Task(). Zero-initialise for the defaults. */
typedef struct ca_task_options {
    const char *name;       /* NULL: automatic Task-N (formatted lazily) */
    ca_context *context;    /* NULL: a copy of the current context */
    int eager_start;        /* -1 false, 0 default (the loop's factory decides), 1 true */
} ca_task_options;

/**
 * Task(coro, loop=loop, name=..., context=..., eager_start=...). Takes the
 * reference to `coro` in every case (on failure the coroutine is closed and
 * released). With eager start and a running loop the first step runs before
 * this returns. Returns a new reference in *out. Errors: TypeError "a
 * coroutine was expected, got ..." (coro is not a coroutine), RuntimeError
 * "Event loop is closed", MemoryError.
 */
struct ca_error *ca_task_new(ca_loop *loop, ca_coro *coro, const ca_task_options *opts,
                             ca_task **out);

/** True when `op` is a Task. */
bool ca_task_check(const void *op);

/**
 * cancel(msg): returns false when the task is done; otherwise counts the
 * request (cancelling()), forwards it to fut_waiter, or arranges for the
 * next step to throw CancelledError(msg), and returns true.
 */
bool ca_task_cancel(ca_task *task, const char *msg);

/** cancelling(): the number of pending cancel requests. */
int ca_task_cancelling(const ca_task *task);

/** uncancel(): decrements the request count; reaching 0 withdraws an
 *  undelivered request (must_cancel). Returns the new count. */
int ca_task_uncancel(ca_task *task);

/** get_name(): the name, formatting "Task-N" on first use (borrowed; NULL
 *  only when out of memory). */
const char *ca_task_get_name(ca_task *task);

/** set_name(): keeps a copy of `name`. */
struct ca_error *ca_task_set_name(ca_task *task, const char *name);

/** get_coro() (borrowed; NULL after an eager task completed synchronously). */
ca_coro *ca_task_get_coro(const ca_task *task);
/** get_context() (borrowed). */
ca_context *ca_task_get_context(const ca_task *task);
/** The future the task waits on (borrowed; NULL when none). */
ca_future *ca_task_fut_waiter(const ca_task *task);
/** _must_cancel. */
bool ca_task_must_cancel(const ca_task *task);

/** repr(): "<Task pending name='Task-1' coro=<main() running at f.c:12>>",
 *  with cancelling / cancelled / finished result=... / wait_for=<...>. */
size_t ca_task_repr(ca_task *task, char *buf, size_t size);

/* MARK: - Current and all tasks */

/** current_task(loop): the task running on `loop` (borrowed) or NULL.
 *  `loop` NULL means the running loop; then RuntimeError "no running event
 *  loop" when there is none. */
struct ca_error *ca_current_task(ca_loop *loop, ca_task **out);

/**
 * all_tasks(loop): copies up to `cap` not-done tasks of `loop` (NULL: the
 * running loop) into `out` (borrowed pointers); *count receives how many
 * there are. RuntimeError when `loop` is NULL and no loop runs.
 */
struct ca_error *ca_all_tasks(ca_loop *loop, ca_task **out, size_t cap, size_t *count);

/** _enter_task / _leave_task / _swap_current_task, with CPython's errors. */
struct ca_error *ca_enter_task(ca_loop *loop, ca_task *task);
struct ca_error *ca_leave_task(ca_loop *loop, ca_task *task);
/** Makes `task` (may be NULL) current and stores the previous (borrowed) in *prev. */
struct ca_error *ca_swap_current_task(ca_loop *loop, ca_task *task, ca_task **prev);

/** _register_task / _unregister_task on the calling thread's list. */
void ca_register_task(ca_task *task);
void ca_unregister_task(ca_task *task);

/**
 * A task factory (loop.set_task_factory): creates the task for
 * create_task. `arg` is the pointer given to ca_loop_set_task_factory.
 * Takes `coro` in every case. Returns a new reference in *out.
 */
typedef struct ca_error *(*ca_task_factory_fn)(ca_loop *loop, ca_coro *coro,
                                               const ca_task_options *opts, void *arg,
                                               ca_task **out);

/** asyncio.eager_task_factory: Task(..., eager_start=True). */
struct ca_error *ca_eager_task_factory(ca_loop *loop, ca_coro *coro, const ca_task_options *opts,
                                       void *arg, ca_task **out);

/* MARK: - sleep */

/**
 * asyncio.sleep(delay, result): a coroutine (new reference, NULL when out of
 * memory) that gives up one iteration for delay <= 0, else waits `delay`
 * seconds and returns `result` (taken). NaN raises ValueError "Invalid
 * delay: NaN (not a number)" when awaited; a cancelled sleep cancels its
 * timer. Await it with CA_AWAIT_CORO or run it as a task.
 */
ca_coro *ca_sleep(double delay, ca_value result);

/**
 * `await asyncio.sleep(delay)` inside a kit body. For delay <= 0 this is the
 * bare yield asyncio.sleep performs (`__sleep0`) done inline, without making
 * a coroutine: the same single loop iteration, the same cancellation point,
 * and no allocation. Otherwise it delegates to ca_sleep. Errors propagate.
 */
#define CA_AWAIT_SLEEP(delay)                                                   \
    do {                                                                        \
        double ca__delay = (delay);                                             \
        if (ca__delay <= 0) {                                                   \
            CA_YIELD();                                                         \
        } else {                                                                \
            CA_AWAIT_CORO(ca_sleep(ca__delay, ca_none()));                      \
        }                                                                       \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
