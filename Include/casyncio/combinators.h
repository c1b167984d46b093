/*
 * combinators.h — the functions of Lib/asyncio/tasks.py that combine
 * awaitables: ensure_future, gather, shield, wait, wait_for, as_completed.
 *
 * "Awaitable" below means a Future, a Task or a coroutine (ca_coro). Inputs
 * are borrowed: a combinator keeps the references it needs, and a coroutine
 * it wraps in a task is handed a new reference. Functions that are
 * `async def` in CPython (wait, wait_for, as_completed's steps) return a
 * coroutine to await with CA_AWAIT_CORO or to run as a task; like CPython's,
 * they check their arguments only when awaited, and they cost the loop
 * iterations CPython's cost.
 */
#ifndef CASYNCIO_COMBINATORS_H
#define CASYNCIO_COMBINATORS_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The `timeout` argument of wait, wait_for and as_completed: seconds as a
 * double; any NaN stands for Python's None (no timeout).
 */
#define CA_NO_TIMEOUT (__builtin_nan(""))

/** StopAsyncIteration (< Exception): raised by an exhausted as_completed
 *  async iteration (ca_as_completed_anext). */
extern const ca_error_type ca_StopAsyncIteration;

/* MARK: - Result lists */

/**
 * The result of a gather: the children's outcomes in argument order. With
 * return_exceptions an error is stored as an OBJECT value holding the
 * ca_error (see ca_result_list_error). Immutable once published.
 */
typedef struct ca_result_list {
    ca_object ob_base;
    size_t len;
    ca_value items[]; /* owned */
} ca_result_list;

extern const ca_type ca_ResultListType;

/** True when `op` is a result list. */
bool ca_result_list_check(const void *op);

/** Item `i` (borrowed view; i < len). */
static inline const ca_value *ca_result_list_item(const ca_result_list *list, size_t i) {
    return &list->items[i];
}

/** Item `i` as an error (borrowed) when it holds one, else NULL. */
ca_error *ca_result_list_error(const ca_result_list *list, size_t i);

/**
 * The result list a future holds as its result (borrowed; valid while the
 * future lives), or NULL when the future is not finished with a result list.
 */
ca_result_list *ca_result_list_of(const ca_future *fut);

/* MARK: - ensure_future */

/**
 * ensure_future(aw, loop=loop): a Future or Task is returned as is (a new
 * reference); a coroutine is wrapped in a task created by loop.create_task
 * (`loop` NULL: the running loop), which gets its own reference to it.
 * Returns a new reference in *out. Errors: ValueError "The future belongs to
 * a different loop than the one specified as the loop argument"; TypeError
 * "An asyncio.Future, a coroutine or an awaitable is required"; RuntimeError
 * "There is no current event loop" (a coroutine, no loop and none running);
 * create_task's errors.
 */
ca_error *ca_ensure_future(void *aw, ca_loop *loop, ca_future **out);

/* MARK: - gather */

/** tasks._GatheringFuture (< Future). */
extern const ca_future_type ca_GatheringFutureType;

/**
 * gather(*aws, return_exceptions=...): a future (new reference in *out)
 * whose result is a ca_result_list of the children's results in argument
 * order. Coroutines are wrapped with ensure_future; a repeated argument is
 * one child. Children already done are processed before this returns, so a
 * gather of done children is already done (3.12+). Without
 * return_exceptions the first error (or cancellation) of a child becomes the
 * gather's exception; the other children keep running. With it, errors are
 * collected as OBJECT values and a cancelled child contributes
 * CancelledError(its cancel message, or ""). Cancelling the gather cancels
 * its children; if any child accepted, the gather ends with a CancelledError
 * exception (it is not itself cancelled()), return_exceptions or not; its
 * cancel() returns false once every child is done. The task running gather
 * is recorded as awaiting each pending child.
 * `loop` NULL: the running loop, else the first future's loop. With n == 0
 * the result is a new done future with an empty list (RuntimeError "no
 * running event loop" when `loop` is NULL and none runs). Errors are
 * ensure_future's (a ValueError for futures of different loops); children
 * created before a failure keep running.
 */
ca_error *ca_gather(ca_loop *loop, void *const *aws, size_t n, bool return_exceptions,
                    ca_future **out);

/** _GatheringFuture._cancel_requested: a cancel() reached a child. */
bool ca_gather_cancel_requested(const ca_future *gathering);

/* MARK: - shield */

/**
 * shield(aw): ensure_future(aw) (an already done one is returned as is);
 * otherwise a new future (new reference in *out) that follows it.
 * Cancelling the returned future does not cancel the inner one; cancelling
 * the inner one cancels the outer. An error of an inner future whose outer
 * was cancelled is reported to the loop's exception handler ("<Type>
 * exception in shielded future"). Errors: ensure_future's.
 */
ca_error *ca_shield(void *aw, ca_future **out);

/* MARK: - wait */

/** wait()'s return_when. */
typedef enum ca_return_when {
    CA_ALL_COMPLETED = 0,
    CA_FIRST_COMPLETED = 1,
    CA_FIRST_EXCEPTION = 2,
} ca_return_when;

/**
 * The result of wait: `ndone` done futures followed by `npending` pending
 * ones, each group in argument order (repeated arguments once).
 */
typedef struct ca_wait_sets {
    ca_object ob_base;
    size_t ndone;
    size_t npending;
    ca_future *futures[]; /* owned references */
} ca_wait_sets;

extern const ca_type ca_WaitSetsType;

/** True when `op` is a ca_wait_sets. */
bool ca_wait_sets_check(const void *op);

/** The done future number i (borrowed; i < ndone). */
static inline ca_future *ca_wait_sets_done(const ca_wait_sets *ws, size_t i) { return ws->futures[i]; }
/** The pending future number i (borrowed; i < npending). */
static inline ca_future *ca_wait_sets_pending(const ca_wait_sets *ws, size_t i) {
    return ws->futures[ws->ndone + i];
}

/**
 * wait(fs, timeout=, return_when=): a coroutine (new reference; NULL when
 * out of memory) that returns a ca_wait_sets (an OBJECT value). It always
 * suspends at least once, returns once `return_when` holds or the timeout
 * (CA_NO_TIMEOUT: none) passes, and never cancels anything. The items
 * (core objects: futures, tasks, coroutines) are borrowed; the coroutine
 * keeps references. Raised when awaited: ValueError
 * "Set of Tasks/Futures is empty." / "Invalid return_when value: N";
 * TypeError "Passing coroutines is forbidden, use tasks explicitly." (a
 * coroutine item) or "expect a list of futures, not <type>".
 */
ca_coro *ca_wait(void *const *fs, size_t n, double timeout, int return_when);

/* MARK: - wait_for */

/**
 * wait_for(aw, timeout) as 3.12+ writes it: with a timeout > 0 or
 * CA_NO_TIMEOUT, `async with timeout(t): return await aw` (a coroutine runs
 * inline in the caller's task; when the deadline passes the caller is
 * cancelled and the CancelledError becomes a TimeoutError whose cause is
 * it). With a timeout <= 0, aw is wrapped with ensure_future; a done one
 * gives its result, else it is cancelled and awaited, and TimeoutError is
 * raised from its CancelledError (its result is returned if it swallowed the
 * cancellation). Returns a coroutine (new reference; NULL when out of
 * memory) keeping its own reference to `aw`. Raised when awaited: TypeError
 * for a non-awaitable, and whatever aw raises.
 */
ca_coro *ca_wait_for(void *aw, double timeout);

/* MARK: - as_completed */

/** The iterator as_completed returns (tasks._AsCompletedIterator). */
typedef struct ca_as_completed_iter ca_as_completed_iter;

extern const ca_type ca_AsCompletedIterType;

/**
 * as_completed(aws, timeout=): wraps the awaitables with ensure_future
 * (`loop` NULL: the running loop; repeated arguments once) and returns an
 * iterator (new reference in *out) over them in completion order. After
 * `timeout` seconds (CA_NO_TIMEOUT: never) every step still to come raises
 * TimeoutError. Errors: ensure_future's.
 */
ca_error *ca_as_completed(ca_loop *loop, void *const *aws, size_t n, double timeout,
                          ca_as_completed_iter **out);

/** How many steps the iterator has left (_todo_left). */
size_t ca_as_completed_remaining(const ca_as_completed_iter *it);

/**
 * __next__: consumes a step and returns (new reference in *out) a
 * coroutine that waits for the next future to complete and returns its
 * result or raises its error (TimeoutError after the timeout). Errors:
 * StopIteration when no step is left; MemoryError.
 */
ca_error *ca_as_completed_next(ca_as_completed_iter *it, ca_coro **out);

/**
 * __anext__: a coroutine (new reference; NULL when out of memory) that
 * consumes a step when awaited and returns the next completed future
 * itself (an OBJECT value: the input future or task, or the task made for
 * a coroutine). Raises StopAsyncIteration when no step is left,
 * TimeoutError after the timeout.
 */
ca_coro *ca_as_completed_anext(ca_as_completed_iter *it);

#ifdef __cplusplus
}
#endif
#endif
