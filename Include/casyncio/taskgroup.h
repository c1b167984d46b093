/*
 * taskgroup.h — asyncio.TaskGroup (Lib/asyncio/taskgroups.py, 3.14).
 *
 * Used from a kit coroutine as `async with TaskGroup() as tg:`
 *
 *     err = ca_taskgroup_enter(self->tg);
 *     if (err != NULL) CA_RAISE(err);
 *     ... ca_taskgroup_create_task(self->tg, child, NULL, &task) ...
 *     CA_AWAIT_CORO_TRY(..., err);                       // the body
 *     CA_AWAIT_CORO_TRY(ca_taskgroup_exit(self->tg, err), err);
 *     if (err != NULL) CA_RAISE(err);
 *
 * The exit waits for every child. The first child error cancels the other
 * children (in creation order) and the owning task; errors are raised
 * together as an exception group "unhandled errors in a TaskGroup";
 * KeyboardInterrupt and SystemExit are re-raised bare; the owner's
 * cancelling() is restored.
 */
#ifndef CASYNCIO_TASKGROUP_H
#define CASYNCIO_TASKGROUP_H

#include "timeout.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A task group. Fields are read-only for users. */
typedef struct ca_taskgroup {
    ca_object ob_base;
    bool entered;
    bool exiting;
    bool aborting;
    bool parent_cancel_requested;
    ca_loop *loop;                /* owned; set at entry */
    ca_task *parent_task;         /* owned while entered */
    ca_task **tasks;              /* unfinished children in creation order (owned; NULL: gone) */
    size_t tasks_len;             /* slots used in `tasks`, gaps included */
    size_t tasks_cap;
    size_t tasks_first;           /* slots before this one are all gaps */
    size_t ntasks;                /* unfinished children */
    struct ca_error **errors;     /* children's errors in completion order (owned) */
    size_t nerrors;
    size_t errors_cap;
    struct ca_error *base_error;  /* the first KeyboardInterrupt/SystemExit (owned) */
    ca_future *on_completed_fut;  /* what the exit waits on (owned) */
} ca_taskgroup;

extern const ca_type ca_TaskGroupType;

/** TaskGroup(): a new group (new reference; NULL when out of memory). */
ca_taskgroup *ca_taskgroup_new(void);

/**
 * __aenter__: binds the group to the running loop and the current task.
 * Never suspends. Errors: RuntimeError "TaskGroup <...> has already been
 * entered", "TaskGroup <...> cannot determine the parent task", "no running
 * event loop".
 */
ca_error *ca_taskgroup_enter(ca_taskgroup *tg);

/**
 * __aexit__ as a coroutine (new reference; NULL when out of memory) to
 * await in the owner's task. Takes `exc`, the error that ended the body
 * (NULL: none). It waits for every child, then raises what the `async
 * with` statement raises: the exception group, a bare KeyboardInterrupt or
 * SystemExit, the CancelledError when the owner was cancelled from outside
 * and no child failed, or `exc`; it returns None when the block ends
 * normally.
 */
ca_coro *ca_taskgroup_exit(ca_taskgroup *tg, struct ca_error *exc);

/**
 * create_task(coro, name=, context=, eager_start=): creates a child with
 * loop.create_task (new reference in *out) and records it as awaited by the
 * owner. Takes `coro` in every case; it is closed when refused. Errors:
 * RuntimeError "TaskGroup <...> has not been entered", "... is finished",
 * "... is shutting down"; create_task's errors.
 */
struct ca_error *ca_taskgroup_create_task(ca_taskgroup *tg, ca_coro *coro, const ca_task_options *opts,
                                          ca_task **out);

/**
 * repr(): "<TaskGroup tasks=2 errors=1 cancelling>", "<TaskGroup entered>",
 * "<TaskGroup>". Writes into buf (NUL-terminated when size > 0); returns the
 * length that was needed.
 */
size_t ca_taskgroup_repr(const ca_taskgroup *tg, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
