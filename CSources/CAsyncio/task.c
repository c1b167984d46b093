/*
 * task.c — asyncio.Task, mirroring TaskObj in Modules/_asynciomodule.c:
 * task_step / task_step_impl / task_step_handle_result_impl / task_wakeup,
 * eager start, cancellation, and the per-thread list of live tasks.
 */
#include "internal.h"
#include "debug_internal.h"

#include <stdio.h>
#include <string.h>

static void task_dealloc(ca_object *op);
const ca_type ca_TaskType = {"Task", sizeof(ca_task), task_dealloc, &ca_FutureType};

static atomic_uint_fast64_t task_name_counter;

bool ca_task_check(const void *op) { return ca_object_is_instance(op, &ca_TaskType); }

/* MARK: - The all-tasks list (register_task / unregister_task) */

void ca_register_task(ca_task *task) {
    if (task->task_node.next != NULL) return;
    ca_llist_node *head = &ca_tstate_get()->tasks_head;
    task->task_node.next = head;
    task->task_node.prev = head->prev;
    head->prev->next = &task->task_node;
    head->prev = &task->task_node;
}

void ca_unregister_task(ca_task *task) { ca_unregister_task_inline(task); }

static inline ca_task *task_of_node(ca_llist_node *n) {
    return (ca_task *)((char *)n - offsetof(ca_task, task_node));
}

/* MARK: - Current task */

static void loop_repr(char *buf, size_t size, const ca_loop *loop) {
    snprintf(buf, size, "<EventLoop running=%s closed=%s>", loop && loop->running ? "True" : "False",
             loop && loop->closed ? "True" : "False");
}

static ca_error *not_running_loop(ca_loop *loop) {
    char lb[80];
    loop_repr(lb, sizeof lb, loop);
    return ca_error_format(&ca_RuntimeError, "loop %s is not the running loop", lb);
}

ca_error *ca_enter_task(ca_loop *loop, ca_task *task) {
    ca_tstate *ts = ca_tstate_get();
    if (ts->running_loop != loop) return not_running_loop(loop);
    if (ts->running_task != NULL) {
        char a[256], b[256];
        ca_task_repr(task, a, sizeof a);
        ca_task_repr(ts->running_task, b, sizeof b);
        return ca_error_format(&ca_RuntimeError, "Cannot enter into task %s while another task %s is being executed.",
                               a, b);
    }
    ts->running_task = task;
    loop->current_task = task;
    return NULL;
}

ca_error *ca_leave_task(ca_loop *loop, ca_task *task) {
    ca_tstate *ts = ca_tstate_get();
    if (ts->running_loop != loop) return not_running_loop(loop);
    if (ts->running_task != task) {
        char a[256], b[256] = "None";
        ca_task_repr(task, a, sizeof a);
        if (ts->running_task) ca_task_repr(ts->running_task, b, sizeof b);
        return ca_error_format(&ca_RuntimeError, "Invalid attempt to leave task %s while task %s is entered.", a, b);
    }
    ts->running_task = NULL;
    loop->current_task = NULL;
    return NULL;
}

ca_error *ca_swap_current_task(ca_loop *loop, ca_task *task, ca_task **prev) {
    ca_tstate *ts = ca_tstate_get();
    *prev = NULL;
    if (ts->running_loop != loop) return not_running_loop(loop);
    *prev = ts->running_task;
    ts->running_task = task;
    loop->current_task = task;
    return NULL;
}

ca_error *ca_current_task(ca_loop *loop, ca_task **out) {
    ca_tstate *ts = ca_tstate_get();
    *out = NULL;
    if (loop == NULL) {
        loop = ts->running_loop;
        if (loop == NULL) return ca_error_new(&ca_RuntimeError, "no running event loop");
    }
    *out = loop == ts->running_loop ? ts->running_task : loop->current_task;
    return NULL;
}

ca_error *ca_all_tasks(ca_loop *loop, ca_task **out, size_t cap, size_t *count) {
    ca_tstate *ts = ca_tstate_get();
    *count = 0;
    if (loop == NULL) {
        loop = ts->running_loop;
        if (loop == NULL) return ca_error_new(&ca_RuntimeError, "no running event loop");
    }
    size_t n = 0;
    for (ca_llist_node *p = ts->tasks_head.next; p != &ts->tasks_head; p = p->next) {
        ca_task *t = task_of_node(p);
        if (t->task_loop != loop || t->task_state != CA_FUTURE_PENDING) continue;
        if (n < cap) out[n] = t;
        n++;
    }
    *count = n;
    return NULL;
}

/* MARK: - Stepping */

static CA_ALWAYS_INLINE ca_error *task_step(ca_task *task, ca_error *exc);

static ca_error *task_call_step_soon(ca_task *task, ca_error *exc) {
    return ca_loop_call_soon_step(task->task_loop, task, exc);
}

/* task_set_error_soon: a RuntimeError thrown into the coroutine next step. */
static ca_error *task_set_error_soon(ca_task *task, ca_error *e) {
    ca_error *err = task_call_step_soon(task, e);
    ca_decref(e);
    return err;
}

/* Runs a step from a loop callback: KeyboardInterrupt and SystemExit stop
 * the loop (they escape run_forever); anything else the step itself failed
 * with goes to the exception handler, as a failing Handle._run does. */
static CA_ALWAYS_INLINE void task_step_and_report(ca_task *task, ca_error *exc, ca_handle *h) {
    ca_loop *loop = task->task_loop;
    ca_error *err = task_step(task, exc);
    if (err == NULL) return;
    if (ca_error_matches(err, &ca_KeyboardInterrupt) || ca_error_matches(err, &ca_SystemExit)) {
        if (loop->fatal == NULL) loop->fatal = err;
        else ca_decref(err);
        return;
    }
    ca_loop_report_callback_error(loop, h, err);
    ca_decref(err);
}

void ca_task_step_handle_run(ca_task *task, ca_error *exc) {
    task_step_and_report(task, exc, task->task_loop->current_handle);
}

/* task_wakeup: the done callback a task leaves on what it awaits. */
static void task_wakeup(ca_future *fut, void *arg) {
    ca_task *task = arg;
    ca_future_discard_from_awaited_by_inline(fut, (ca_future *)task);
    ca_error *exc = NULL;
    if (fut->fut_state != CA_FUTURE_FINISHED || fut->fut_exception != NULL) {
        ca_value ignored;
        exc = ca_future_result(fut, &ignored); /* also marks the exception retrieved */
    }
    task_step_and_report(task, exc, task->task_loop->current_handle);
    ca_decref(exc);
}

static ca_error *task_step_handle_result_impl(ca_task *task, ca_future *result) {
    if (result == NULL) {
        /* Bare yield relinquishes control for one event loop iteration. */
        return task_call_step_soon(task, NULL);
    }
    char a[256], b[256];
    if (CA_UNLIKELY(!ca_future_check_fast(result))) {
        /* only foreign coroutine types can yield something else */
        ca_task_repr(task, a, sizeof a);
        ca_strbuf sb = {b, sizeof b, 0};
        b[0] = '\0';
        ca_strbuf_printf(&sb, "<%s object at %p>", ((ca_object *)result)->ob_type->tp_name, (void *)result);
        ca_decref(result);
        return task_set_error_soon(task, ca_error_format(&ca_RuntimeError, "Task got bad yield: %s", b));
    }
    if (result == (ca_future *)task) {
        ca_task_repr(task, a, sizeof a);
        ca_decref(result);
        return task_set_error_soon(task, ca_error_format(&ca_RuntimeError, "Task cannot await on itself: %s", a));
    }
    if (result->fut_loop != task->task_loop) {
        ca_task_repr(task, a, sizeof a);
        ca_future_repr(result, b, sizeof b);
        ca_decref(result);
        return task_set_error_soon(
            task, ca_error_format(&ca_RuntimeError, "Task %s got Future %s attached to a different loop", a, b));
    }
    if (!result->fut_blocking) {
        ca_task_repr(task, a, sizeof a);
        ca_future_repr(result, b, sizeof b);
        ca_decref(result);
        return task_set_error_soon(
            task, ca_error_format(&ca_RuntimeError, "yield was used instead of yield from in task %s with %s", a, b));
    }
    ca_error *err = NULL;
    if (CA_LIKELY(result->fut_awaited_by == NULL)) result->fut_awaited_by = ca_incref(task); /* the inline slot */
    else err = ca_future_add_to_awaited_by(result, (ca_future *)task);
    if (err != NULL) {
        ca_decref(result);
        return err;
    }
    result->fut_blocking = 0;
    err = ca_future_add_done_callback_inline(result, task_wakeup, ca_incref(task), ca_release_object,
                                            task->task_context);
    if (err != NULL) {
        ca_decref(result);
        return err;
    }
    task->task_fut_waiter = result; /* the yielded reference */
    if (task->task_must_cancel) {
        char *msg = task->task_cancel_msg ? ca_strdup(task->task_cancel_msg) : NULL;
        if (ca_future_cancel(result, msg)) task->task_must_cancel = 0;
        ca_free(msg);
    }
    return NULL;
}

static ca_error *task_step_impl(ca_task *task, ca_error *exc) {
    if (task->task_state != CA_FUTURE_PENDING) {
        char a[256];
        ca_task_repr(task, a, sizeof a);
        return ca_error_format(&ca_InvalidStateError, "__step(): already done: %s %s", a,
                               exc ? exc->type->name : "None");
    }
    ca_error *throw_exc = ca_incref(exc);
    if (task->task_must_cancel) {
        if (!ca_error_matches(throw_exc, &ca_CancelledError)) {
            CA_CLEAR(throw_exc);
            throw_exc = ca_future_make_cancelled_error((ca_future *)task);
        }
        task->task_must_cancel = 0;
    }
    CA_CLEAR(task->task_fut_waiter);

    ca_coro_result r;
    ca_coro_status st = throw_exc ? ca_coro_throw(task->task_coro, throw_exc, &r)
                                  : ca_coro_send_none(task->task_coro, &r);
    ca_decref(throw_exc);

    switch (st) {
    case CA_CORO_RETURN:
        if (task->task_must_cancel) {
            /* Task is cancelled right before coro stops. */
            task->task_must_cancel = 0;
            ca_value_clear(&r.value);
            char *msg = task->task_cancel_msg ? ca_strdup(task->task_cancel_msg) : NULL;
            ca_future_cancel_impl((ca_future *)task, msg);
            ca_free(msg);
            return NULL;
        }
        return ca_future_set_result_impl((ca_future *)task, r.value);
    case CA_CORO_RAISE:
        if (ca_error_matches(r.error, &ca_CancelledError)) {
            /* Save the original exception so we can chain it later. */
            CA_CLEAR(task->task_cancelled_exc);
            task->task_cancelled_exc = r.error;
            ca_future_cancel_impl((ca_future *)task, NULL);
            return NULL;
        } else {
            ca_error *err = ca_future_set_exception_impl((ca_future *)task, r.error);
            if (err == NULL &&
                (ca_error_matches(r.error, &ca_KeyboardInterrupt) || ca_error_matches(r.error, &ca_SystemExit)))
                return r.error; /* re-raised out of the loop; the task keeps it too */
            ca_decref(r.error);
            return err;
        }
    case CA_CORO_YIELD:
    default:
        return task_step_handle_result_impl(task, r.future);
    }
}

static CA_ALWAYS_INLINE ca_error *task_step(ca_task *task, ca_error *exc) {
    ca_loop *loop = task->task_loop;
    ca_tstate *ts = &ca_ts;
    /* enter_task / leave_task, their checks inlined for the common case */
    if (CA_LIKELY(ts->running_loop == loop && ts->running_task == NULL)) {
        ts->running_task = task;
        loop->current_task = task;
    } else {
        ca_error *err = ca_enter_task(loop, task);
        if (err != NULL) return err;
    }
    ca_incref(task);
    ca_error *res = task_step_impl(task, exc);
    ca_error *leave_err = NULL;
    if (CA_LIKELY(ts->running_loop == loop && ts->running_task == task)) {
        ts->running_task = NULL;
        loop->current_task = NULL;
    } else {
        leave_err = ca_leave_task(loop, task);
    }
    if (leave_err != NULL) {
        ca_error_set_context(leave_err, res);
        ca_decref(res);
        res = leave_err;
    }
    ca_decref(task);
    return res;
}

static ca_error *task_eager_start(ca_task *task) {
    ca_loop *loop = task->task_loop;
    ca_task *prev;
    ca_error *err = ca_swap_current_task(loop, task, &prev);
    if (err != NULL) return err;
    ca_register_task(task);
    ca_error *ctx_err = ca_context_enter(task->task_context);
    ca_error *retval = ctx_err != NULL ? ctx_err : task_step_impl(task, NULL);
    ca_task *cur;
    ca_error *swap_err = ca_swap_current_task(loop, prev, &cur);
    ca_decref(swap_err);
    if (ctx_err == NULL) ca_context_exit(task->task_context);
    if (task->task_state != CA_FUTURE_PENDING && task->task_coro != NULL) {
        /* Dropping the finished coroutine early is a measurable win (CPython). */
        ca_coro *coro = task->task_coro;
        task->task_coro = NULL;
        ca_decref(coro);
    }
    return retval;
}

/* MARK: - Construction */

static inline void close_coro(ca_coro *coro) {
    if (coro == NULL) return;
    if (ca_coro_check_fast(coro) && coro->co_state != CA_CORO_CLOSED) ca_coro_close(coro);
    ca_coro_decref(coro);
}

ca_error *ca_task_new(ca_loop *loop, ca_coro *coro, const ca_task_options *opts, ca_task **out) {
    *out = NULL;
    ca_task_options o = opts ? *opts : (ca_task_options){0};
    if (loop == NULL) loop = ca_tstate_get()->running_loop;
    if (loop == NULL) {
        close_coro(coro);
        return ca_error_new(&ca_RuntimeError, "no running event loop");
    }
    if (!ca_coro_check_fast(coro)) {
        ca_error *e = ca_error_format(&ca_TypeError, "a coroutine was expected, got %s",
                                      coro ? ((ca_object *)coro)->ob_type->tp_name : "None");
        ca_decref(coro);
        return e;
    }
    ca_task *t = ca_small_alloc(sizeof(ca_task));
    if (t == NULL) {
        close_coro(coro);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    memset(t, 0, sizeof *t);
    ca_object_init(t, &ca_TaskType);
    ca_future_init_head((ca_future *)t, loop);
    t->task_is_task = 1;
    t->task_coro = coro;
    t->task_context = o.context ? ca_incref(o.context) : ca_context_copy_current_inline();
    t->task_tid = ca_tstate_get()->thread_id; /* gettid(), cached */
    if (o.name != NULL) t->task_name = ca_strdup(o.name);
    else t->task_name_id = atomic_fetch_add_explicit(&task_name_counter, 1, memory_order_relaxed) + 1;
    if (t->task_context == NULL || (o.name != NULL && t->task_name == NULL)) {
        ca_decref(t);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    t->task_log_destroy_pending = 1;

    ca_error *err;
    if (o.eager_start > 0 && loop->running && ca_tstate_get()->running_loop == loop) {
        err = task_eager_start(t);
    } else {
        err = task_call_step_soon(t, NULL);
        if (err == NULL) ca_register_task(t);
    }
    if (err != NULL) {
        if (t->task_state == CA_FUTURE_PENDING) t->task_log_destroy_pending = 0;
        ca_decref(t);
        return err;
    }
    *out = t;
    return NULL;
}

ca_error *ca_eager_task_factory(ca_loop *loop, ca_coro *coro, const ca_task_options *opts, void *arg,
                                ca_task **out) {
    ca_task_options o = opts ? *opts : (ca_task_options){0};
    if (o.eager_start == 0) o.eager_start = 1;
    return ca_task_new(loop, coro, &o, out);
}

/* MARK: - Cancellation */

bool ca_task_cancel(ca_task *task, const char *msg) {
    task->task_log_tb = 0;
    if (task->task_state != CA_FUTURE_PENDING) return false;
    task->task_num_cancels_requested += 1;
    /* The "return False on a second cancel" lines stay commented out in
     * CPython too: repeated requests are counted and return True. */
    if (task->task_fut_waiter != NULL) {
        ca_future *waiter = ca_incref(task->task_fut_waiter);
        bool cancelled = ca_future_cancel(waiter, msg);
        ca_decref(waiter);
        /* Leave the waiter in place: it may be a task that ignores the cancel. */
        if (cancelled) return true;
    }
    task->task_must_cancel = 1;
    ca_future_set_cancel_message((ca_future *)task, msg);
    return true;
}

int ca_task_cancelling(const ca_task *task) { return task->task_num_cancels_requested; }

int ca_task_uncancel(ca_task *task) {
    if (task->task_num_cancels_requested > 0) {
        task->task_num_cancels_requested -= 1;
        if (task->task_num_cancels_requested == 0) task->task_must_cancel = 0;
    }
    return task->task_num_cancels_requested;
}

/* MARK: - Accessors */

const char *ca_task_get_name(ca_task *task) {
    if (task->task_name == NULL) {
        char buf[32];
        snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)task->task_name_id);
        task->task_name = ca_strdup(buf);
    }
    return task->task_name;
}

ca_error *ca_task_set_name(ca_task *task, const char *name) {
    char *copy = ca_strdup(name ? name : "None");
    if (copy == NULL) return ca_error_new(&ca_MemoryError, NULL);
    ca_free(task->task_name);
    task->task_name = copy;
    return NULL;
}

ca_coro *ca_task_get_coro(const ca_task *task) { return task->task_coro; }
ca_context *ca_task_get_context(const ca_task *task) { return task->task_context; }
ca_future *ca_task_fut_waiter(const ca_task *task) { return task->task_fut_waiter; }
bool ca_task_must_cancel(const ca_task *task) { return task->task_must_cancel; }

size_t ca_task_repr(ca_task *task, char *buf, size_t size) {
    ca_strbuf sb = {buf, size, 0};
    if (size > 0) buf[0] = '\0';
    const char *state = task->task_state == CA_FUTURE_PENDING
                            ? (task->task_num_cancels_requested > 0 ? "cancelling" : "pending")
                            : task->task_state == CA_FUTURE_CANCELLED ? "cancelled" : "finished";
    const char *name = ca_task_get_name(task);
    ca_strbuf_printf(&sb, "<Task %s name='%s'", state, name ? name : "?");
    if (task->task_coro != NULL) {
        ca_strbuf_printf(&sb, " coro=");
        ca_coro_repr(&sb, task->task_coro);
    }
    if (task->task_fut_waiter != NULL) {
        char wb[256];
        ca_future_repr(task->task_fut_waiter, wb, sizeof wb);
        ca_strbuf_printf(&sb, " wait_for=%s", wb);
    }
    ca_future_repr_info(&sb, (ca_future *)task, false);
    ca_strbuf_printf(&sb, ">");
    return sb.len;
}

/* MARK: - Destruction */

void ca_task_break_cycles(ca_loop *loop) {
    /* A pending task and the future it waits on hold each other (callback
     * and fut_waiter), and so do a pending task and what it is a part of: a
     * gather holds its children and its caller, and each child's done
     * callback (and awaited_by link) holds the outer future (shields are cut
     * by ca_shields_break_cycles). CPython's GC collects such cycles; we cut
     * them when the loop closes, after which nothing can complete these
     * tasks or run their callbacks. Collect first: releasing may free other
     * tasks. */
    ca_tstate *ts = ca_tstate_get();
    size_t n = 0;
    for (ca_llist_node *p = ts->tasks_head.next; p != &ts->tasks_head; p = p->next) {
        ca_task *t = task_of_node(p);
        if (t->task_loop == loop && t->task_state == CA_FUTURE_PENDING) n++;
    }
    if (n == 0) return;
    ca_task **victims = ca_malloc(n * sizeof(ca_task *));
    if (victims == NULL) return;
    size_t k = 0;
    for (ca_llist_node *p = ts->tasks_head.next; p != &ts->tasks_head && k < n; p = p->next) {
        ca_task *t = task_of_node(p);
        if (t->task_loop == loop && t->task_state == CA_FUTURE_PENDING) victims[k++] = ca_incref(t);
    }
    for (size_t i = 0; i < k; i++) {
        ca_task *t = victims[i];
        ca_future *waiter = t->task_fut_waiter;
        if (waiter != NULL) {
            t->task_fut_waiter = NULL;
            ca_future_remove_done_callback(waiter, task_wakeup, t);
            ca_future_discard_from_awaited_by(waiter, (ca_future *)t);
            ca_gather_break_cycles(waiter);
            ca_decref(waiter);
        }
        ca_future_drop_links((ca_future *)t);
    }
    /* The coroutines can never be resumed: close them now (GeneratorExit
     * at their await), so their frames release what they hold (the futures
     * and combinators they await, and any object whose own links lead back
     * to the task) instead of waiting for the task to die, which those very
     * objects may prevent. */
    for (size_t i = 0; i < k; i++) {
        ca_coro *coro = victims[i]->task_coro;
        if (coro != NULL && ca_coro_check(coro)) ca_coro_close(coro);
    }
    for (size_t i = 0; i < k; i++) ca_decref(victims[i]);
    ca_free(victims);
}

static void task_dealloc(ca_object *op) {
    ca_task *task = (ca_task *)op;
    if (task->task_state == CA_FUTURE_PENDING && task->task_log_destroy_pending && task->task_loop != NULL) {
        task->task_log_destroy_pending = 0;
        op->ob_refcnt = 1; /* the handler receives the task */
        ca_exception_context c = {.message = "Task was destroyed but it is pending!", .task = task};
        ca_loop_call_exception_handler(task->task_loop, &c);
        if (--op->ob_refcnt != 0) return;
    }
    if (CA_UNLIKELY(task->task_log_tb)) {
        ca_future_finalize((ca_future *)task);
        if (op->ob_refcnt > 0) return; /* resurrected by the exception handler */
    }
    ca_unregister_task_inline(task);
    CA_CLEAR(task->task_fut_waiter);
    close_coro(task->task_coro);
    task->task_coro = NULL;
    if (task->task_name != NULL) ca_free(task->task_name);
    ca_context *ctx = task->task_context;
    task->task_context = NULL;
    ca_context_decref(ctx);
    if (CA_LIKELY(ca_future_head_is_plain((ca_future *)task))) CA_CLEAR(task->task_loop); /* clear_head's fast path */
    else ca_future_clear_head((ca_future *)task);
    ca_small_free(task, sizeof(ca_task));
}
