/*
 * taskgroup.c — asyncio.TaskGroup, mirroring Lib/asyncio/taskgroups.py
 * (3.14). _tasks is kept in creation order so that an abort cancels the
 * children in the order they were created (the conformance oracle pins this
 * order; CPython's set order depends on addresses).
 */
#include "combinators_internal.h"

#include <stdio.h>
#include <string.h>

static void taskgroup_dealloc(ca_object *op);
const ca_type ca_TaskGroupType = {"TaskGroup", sizeof(ca_taskgroup), taskgroup_dealloc, NULL};

ca_taskgroup *ca_taskgroup_new(void) {
    ca_taskgroup *tg = ca_small_alloc(sizeof *tg);
    if (tg == NULL) return NULL;
    memset(tg, 0, sizeof *tg);
    ca_object_init(tg, &ca_TaskGroupType);
    return tg;
}

size_t ca_taskgroup_repr(const ca_taskgroup *tg, char *buf, size_t size) {
    char info[96] = "";
    size_t len = 0;
    if (tg->ntasks > 0) len += (size_t)snprintf(info + len, sizeof info - len, " tasks=%zu", tg->ntasks);
    if (tg->nerrors > 0) len += (size_t)snprintf(info + len, sizeof info - len, " errors=%zu", tg->nerrors);
    if (tg->aborting) snprintf(info + len, sizeof info - len, " cancelling");
    else if (tg->entered) snprintf(info + len, sizeof info - len, " entered");
    int n = snprintf(buf, size, "<TaskGroup%s>", info);
    return n < 0 ? 0 : (size_t)n;
}

static ca_error *taskgroup_error(const ca_taskgroup *tg, const char *what) {
    char r[128];
    ca_taskgroup_repr(tg, r, sizeof r);
    return ca_error_format(&ca_RuntimeError, "TaskGroup %s %s", r, what);
}

/* MARK: - The set of unfinished children, in creation order */

static ca_error *tasks_add(ca_taskgroup *tg, ca_task *task) {
    if (tg->tasks_len == tg->tasks_cap) {
        /* Compact the gaps left by finished children before growing. */
        size_t k = 0;
        for (size_t i = tg->tasks_first; i < tg->tasks_len; i++)
            if (tg->tasks[i] != NULL) tg->tasks[k++] = tg->tasks[i];
        tg->tasks_len = k;
        tg->tasks_first = 0;
        if (k * 2 > tg->tasks_cap || tg->tasks_cap == 0) {
            size_t cap = tg->tasks_cap ? tg->tasks_cap * 2 : 8;
            ca_task **t = ca_small_alloc(cap * sizeof *t);
            if (t == NULL) return ca_error_new(&ca_MemoryError, NULL);
            if (k > 0) memcpy(t, tg->tasks, k * sizeof *t);
            ca_small_free(tg->tasks, tg->tasks_cap * sizeof *t);
            tg->tasks = t;
            tg->tasks_cap = cap;
        }
    }
    tg->tasks[tg->tasks_len++] = ca_incref(task);
    tg->ntasks++;
    return NULL;
}

/* _tasks.discard(task); children mostly finish in creation order, so the
 * search starts at the first unfinished one. */
static void tasks_discard(ca_taskgroup *tg, ca_task *task) {
    for (size_t i = tg->tasks_first; i < tg->tasks_len; i++) {
        if (tg->tasks[i] != task) continue;
        tg->tasks[i] = NULL;
        tg->ntasks--;
        while (tg->tasks_first < tg->tasks_len && tg->tasks[tg->tasks_first] == NULL) tg->tasks_first++;
        ca_decref(task);
        return;
    }
}

static ca_error *errors_append(ca_taskgroup *tg, ca_error *exc) {
    if (tg->nerrors == tg->errors_cap) {
        size_t cap = tg->errors_cap ? tg->errors_cap * 2 : 4;
        ca_error **e = ca_small_alloc(cap * sizeof *e);
        if (e == NULL) return ca_error_new(&ca_MemoryError, NULL);
        if (tg->nerrors > 0) memcpy(e, tg->errors, tg->nerrors * sizeof *e);
        ca_small_free(tg->errors, tg->errors_cap * sizeof *e);
        tg->errors = e;
        tg->errors_cap = cap;
    }
    tg->errors[tg->nerrors++] = ca_incref(exc);
    return NULL;
}

static void errors_clear(ca_taskgroup *tg) {
    for (size_t i = 0; i < tg->nerrors; i++) ca_decref(tg->errors[i]);
    tg->nerrors = 0;
}

static bool is_base_error(const ca_error *exc) {
    return ca_error_matches(exc, &ca_SystemExit) || ca_error_matches(exc, &ca_KeyboardInterrupt);
}

/* MARK: - enter, create_task, abort */

ca_error *ca_taskgroup_enter(ca_taskgroup *tg) {
    if (tg->entered) return taskgroup_error(tg, "has already been entered");
    if (tg->loop == NULL) {
        ca_loop *loop;
        ca_error *err = ca_get_running_loop_checked(&loop);
        if (err != NULL) return err;
        tg->loop = ca_incref(loop);
    }
    ca_task *parent;
    ca_decref(ca_current_task(tg->loop, &parent));
    if (parent == NULL) return taskgroup_error(tg, "cannot determine the parent task");
    tg->parent_task = ca_incref(parent);
    tg->entered = true;
    return NULL;
}

static void taskgroup_abort(ca_taskgroup *tg) {
    tg->aborting = true;
    for (size_t i = tg->tasks_first; i < tg->tasks_len; i++) {
        ca_task *t = tg->tasks[i];
        if (t != NULL && t->task_state == CA_FUTURE_PENDING) ca_task_cancel(t, NULL);
    }
}

/* The part of _on_task_done for a child that failed with `exc`. */
static void taskgroup_child_failed(ca_taskgroup *tg, ca_task *task, ca_error *exc) {
    ca_error *err = errors_append(tg, exc);
    if (err != NULL) {
        ca_loop_report_callback_error(tg->loop, NULL, err);
        ca_decref(err);
    }
    if (is_base_error(exc) && tg->base_error == NULL) tg->base_error = ca_incref(exc);

    if (tg->parent_task->task_state != CA_FUTURE_PENDING) {
        /* Not sure if this case is possible (taskgroups.py), but handled. */
        char tr[256], pr[256], msg[600];
        ca_task_repr(task, tr, sizeof tr);
        ca_task_repr(tg->parent_task, pr, sizeof pr);
        snprintf(msg, sizeof msg, "Task %s has errored out but its parent task %s is already completed", tr, pr);
        ca_exception_context ctx = {.message = msg, .exception = exc, .task = task};
        ca_loop_call_exception_handler(tg->loop, &ctx);
        return;
    }

    if (!tg->aborting && !tg->parent_cancel_requested) {
        /* The parent is not being cancelled: cancel it to abort whatever the
         * body awaits now, and mark it "not cancelled" again at exit. */
        taskgroup_abort(tg);
        tg->parent_cancel_requested = true;
        ca_task_cancel(tg->parent_task, NULL);
    }
}

/* _on_task_done: the done callback left on every child. */
static void taskgroup_on_task_done(ca_future *fut, void *arg) {
    ca_taskgroup *tg = arg;
    ca_task *task = ca_incref((ca_task *)fut);
    tasks_discard(tg, task);
    if (tg->parent_task != NULL) ca_future_discard_from_awaited_by(fut, (ca_future *)tg->parent_task);

    if (tg->on_completed_fut != NULL && tg->ntasks == 0 && tg->on_completed_fut->fut_state == CA_FUTURE_PENDING) {
        ca_error *err = ca_future_set_result(tg->on_completed_fut, ca_int(1));
        if (err != NULL) {
            ca_loop_report_callback_error(tg->loop, NULL, err);
            ca_decref(err);
        }
    }

    ca_error *exc = NULL;
    if (fut->fut_state != CA_FUTURE_CANCELLED) ca_decref(ca_future_exception(fut, &exc));
    if (exc != NULL && tg->parent_task != NULL) taskgroup_child_failed(tg, task, exc);
    ca_decref(exc);
    ca_decref(task);
}

static void close_coro(ca_coro *coro) {
    if (coro == NULL) return;
    if (ca_coro_check(coro)) ca_coro_close(coro);
    ca_decref(coro);
}

ca_error *ca_taskgroup_create_task(ca_taskgroup *tg, ca_coro *coro, const ca_task_options *opts, ca_task **out) {
    *out = NULL;
    const char *refusal = !tg->entered                           ? "has not been entered"
                          : (tg->exiting && tg->ntasks == 0) ? "is finished"
                          : tg->aborting                      ? "is shutting down"
                                                              : NULL;
    if (refusal != NULL) {
        close_coro(coro);
        return taskgroup_error(tg, refusal);
    }
    ca_task *task;
    ca_error *err = ca_loop_create_task(tg->loop, coro, opts, &task);
    if (err != NULL) return err;
    err = ca_future_add_to_awaited_by((ca_future *)task, (ca_future *)tg->parent_task);
    /* Always add the done callback, even for a task that completed eagerly:
     * otherwise its error would cancel the parent too early (gh-128550). */
    if (err == NULL) err = tasks_add(tg, task);
    if (err == NULL)
        err = ca_future_add_done_callback((ca_future *)task, taskgroup_on_task_done, ca_incref(tg),
                                          ca_release_object, NULL);
    if (err != NULL) {
        ca_decref(task);
        return err;
    }
    *out = task;
    return NULL;
}

/* MARK: - exit */

typedef struct taskgroup_aexit_frame {
    ca_cframe cf;
    ca_taskgroup *tg;                  /* owned */
    ca_error *exc;                     /* the body's error (owned) */
    ca_error *propagate_cancellation_error; /* owned */
} taskgroup_aexit_frame;

static void taskgroup_aexit_finalize(taskgroup_aexit_frame *self) {
    CA_CLEAR(self->tg);
    CA_CLEAR(self->exc);
    CA_CLEAR(self->propagate_cancellation_error);
}

/* `raise err` inside __aexit__ while `exc` is being handled: err's context
 * becomes exc (the cycle check is ca_error_set_context's). */
static ca_error *raise_in_handler(ca_error *err, ca_error *exc) {
    if (exc != NULL && err != exc) ca_error_set_context(err, exc);
    return err;
}

/* __aexit__'s `finally:` — drop what the group no longer needs. */
static void taskgroup_release(ca_taskgroup *tg) {
    CA_CLEAR(tg->parent_task);
    errors_clear(tg);
    CA_CLEAR(tg->base_error);
}

/* What _aexit raises once every child is done (NULL: nothing). */
static ca_error *taskgroup_aexit_result(taskgroup_aexit_frame *self) {
    ca_taskgroup *tg = self->tg;
    ca_error *exc = self->exc;
    if (tg->base_error != NULL) {
        /* 3.14 re-raises SystemExit / KeyboardInterrupt bare; the other
         * errors are dropped (3.15 reports them, gh-135736). */
        return raise_in_handler(ca_incref(tg->base_error), exc);
    }

    if (tg->parent_cancel_requested) {
        /* If this flag is set we *must* call uncancel(). */
        if (ca_task_uncancel(tg->parent_task) == 0) {
            /* No pending cancellations left: don't propagate CancelledError. */
            CA_CLEAR(self->propagate_cancellation_error);
        }
    }

    /* Propagate CancelledError if there is one, except if there are other
     * errors -- those have priority. */
    if (self->propagate_cancellation_error != NULL && tg->nerrors == 0) {
        ca_error *err = self->propagate_cancellation_error;
        self->propagate_cancellation_error = NULL;
        return raise_in_handler(err, exc);
    }

    if (exc != NULL && !ca_error_matches(exc, &ca_CancelledError)) {
        ca_error *err = errors_append(tg, exc);
        if (err != NULL) return err;
    }

    if (tg->nerrors > 0) {
        /* If the parent task is being cancelled from outside the group,
         * un-cancel and re-cancel it, keeping the cancel count stable. */
        if (ca_task_cancelling(tg->parent_task) > 0) {
            ca_task_uncancel(tg->parent_task);
            ca_task_cancel(tg->parent_task, NULL);
        }
        ca_error *group = ca_error_group_new("unhandled errors in a TaskGroup", tg->errors, tg->nerrors);
        raise_in_handler(group, exc);
        if (group->nchildren > 0) group->suppress_context = true; /* `from None` (not the MemoryError singleton) */
        return group;
    }
    /* The 3.14 __aexit__ returns None here: an error of the body, if any,
     * continues to propagate. */
    return ca_incref(exc);
}

CA_CORO_TYPE(taskgroup_aexit_type, taskgroup_aexit_frame, taskgroup_aexit, taskgroup_aexit_finalize);

CA_CORO_BODY(taskgroup_aexit, taskgroup_aexit_frame) {
    ca_taskgroup *tg = self->tg;
    ca_error *err;
    CA_BEGIN;
    tg->exiting = true;
    if (self->exc != NULL && is_base_error(self->exc) && tg->base_error == NULL)
        tg->base_error = ca_incref(self->exc);
    if (self->exc != NULL && ca_error_matches(self->exc, &ca_CancelledError))
        self->propagate_cancellation_error = ca_incref(self->exc);
    if (self->exc != NULL && !tg->aborting) {
        /* Our parent task is being cancelled, or the body raised. */
        taskgroup_abort(tg);
    }

    /* A loop, because on_completed_fut can be cancelled several times if
     * the parent task is cancelled repeatedly. */
    while (tg->ntasks > 0) {
        if (tg->on_completed_fut == NULL) {
            tg->on_completed_fut = ca_loop_create_future(tg->loop);
            if (tg->on_completed_fut == NULL) {
                err = ca_error_new(&ca_MemoryError, NULL);
                goto fail;
            }
        }
        CA_AWAIT_TRY(ca_incref(tg->on_completed_fut), err);
        if (err != NULL) {
            if (!ca_error_matches(err, &ca_CancelledError)) goto fail;
            if (!tg->aborting) {
                /* The parent is cancelled while the children still run. */
                CA_CLEAR(self->propagate_cancellation_error);
                self->propagate_cancellation_error = err;
                taskgroup_abort(tg);
            } else {
                ca_decref(err);
            }
        }
        CA_CLEAR(tg->on_completed_fut);
    }

    err = taskgroup_aexit_result(self);
    taskgroup_release(tg);
    if (err != NULL) CA_RAISE(err);
    CA_RETURN(ca_none());
fail:
    taskgroup_release(tg);
    CA_RAISE(err);
    CA_END;
}

ca_coro *ca_taskgroup_exit(ca_taskgroup *tg, ca_error *exc) {
    taskgroup_aexit_frame *f = CA_CORO_NEW(taskgroup_aexit_type, taskgroup_aexit_frame);
    if (f == NULL) {
        ca_decref(exc);
        return NULL;
    }
    f->tg = ca_incref(tg);
    f->exc = exc;
    return &f->cf.co;
}

static void taskgroup_dealloc(ca_object *op) {
    ca_taskgroup *tg = (ca_taskgroup *)op;
    for (size_t i = tg->tasks_first; i < tg->tasks_len; i++) ca_decref(tg->tasks[i]);
    ca_small_free(tg->tasks, tg->tasks_cap * sizeof *tg->tasks);
    taskgroup_release(tg);
    ca_small_free(tg->errors, tg->errors_cap * sizeof *tg->errors);
    CA_CLEAR(tg->on_completed_fut);
    CA_CLEAR(tg->loop);
    ca_small_free(tg, sizeof *tg);
}
