/*
 * ops.c — the ops that never suspend (SPEC 5.1, 5.2 and `log`), shared by
 * bodies and callbacks: declarations print nothing unless they fail,
 * synchronous ops print one line and never propagate an error.
 */
#include "conformance.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MARK: - Helpers */

/* Milliseconds to loop nanoseconds, clamped as the core clamps seconds. */
int64_t ms_to_ns(int64_t ms) {
    const int64_t limit = 4000000000000LL; /* 4e18 ns */
    return (ms > limit ? limit : ms < -limit ? -limit : ms) * 1000000;
}

static double ms_to_seconds(const jv *ms) { return ms == NULL || ms->kind == JV_NULL ? CA_NO_TIMEOUT : (double)ms->i / 1000; }

static long long ns_to_ms(int64_t ns) { return llround((double)ns / 1e6); }

static int64_t field_int(const op *o, field f, int64_t fallback) { return o->f[f] != NULL ? o->f[f]->i : fallback; }

static bool field_bool(const op *o, field f) { return o->f[f] != NULL && o->f[f]->b; }

static bool field_is(const op *o, field f, const char *s) { return o->f[f] != NULL && strcmp(o->f[f]->s, s) == 0; }

/* `<label> -> <value>` */
static void ok_line(actx *cx, const op *o, const char *text) { emit(cx->r, cx->actor, "%s -> %s", o->label, text); }

/* `<label> !> <error>`; takes the error. */
static void err_line(actx *cx, const op *o, ca_error *err) {
    sbuf sb = {0};
    fmt_err(cx->r, &sb, err);
    emit(cx->r, cx->actor, "%s !> %s", o->label, sb.p != NULL ? sb.p : "");
    free(sb.p);
    ca_decref(err);
}

static void outcome_line(actx *cx, const op *o, ca_error *err, const char *text) {
    if (err != NULL) err_line(cx, o, err);
    else ok_line(cx, o, text);
}

static const char *boolean(bool b) { return b ? "true" : "false"; }

static void int_line(actx *cx, const op *o, long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    ok_line(cx, o, buf);
}

static void value_line(actx *cx, const op *o, const ca_value *v) {
    sbuf sb = {0};
    fmt_val(cx->r, &sb, v);
    ok_line(cx, o, sb.p != NULL ? sb.p : "");
    free(sb.p);
}

/* MARK: - The PriorityQueue order: Python's `<` on scenario values */

static int sign(int64_t d) { return (d > 0) - (d < 0); }

static int compare_jv(const jv *a, const jv *b) {
    bool an = a->kind == JV_INT || a->kind == JV_BOOL, bn = b->kind == JV_INT || b->kind == JV_BOOL;
    if (an && bn) return sign((a->kind == JV_BOOL ? a->b : a->i) - (b->kind == JV_BOOL ? b->b : b->i));
    if (a->kind == JV_STR && b->kind == JV_STR) return strcmp(a->s, b->s);
    if (a->kind == JV_LIST && b->kind == JV_LIST) {
        for (size_t i = 0; i < a->len && i < b->len; i++) {
            int c = compare_jv(a->items[i], b->items[i]);
            if (c != 0) return c;
        }
        return sign((int64_t)a->len - (int64_t)b->len);
    }
    /* Python raises TypeError here; the corpus never mixes kinds */
    return 0;
}

int compare_values(const ca_value *a, const ca_value *b, void *arg) {
    if (a->kind != CA_VALUE_OBJECT || b->kind != CA_VALUE_OBJECT) return 0;
    return compare_jv((const jv *)a->u.obj, (const jv *)b->u.obj);
}

/* MARK: - Declarations */

static sig decl_failed(actx *cx, const op *o, ca_error *err) {
    err_line(cx, o, err);
    return S_NEXT;
}

/* The awaitables of `items`, borrowed; NULL after a failed lookup. */
static void **lookup_items(run *r, const op *o) {
    void **items = calloc(o->nitems ? o->nitems : 1, sizeof *items);
    if (items == NULL) {
        run_fail(r, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < o->nitems; i++) {
        items[i] = lookup(r, o->items[i], AWAITABLE_KINDS, NULL);
        if (items[i] == NULL) {
            free(items);
            return NULL;
        }
    }
    return items;
}

static sig op_spawn(actx *cx, const op *o) {
    run *r = cx->r;
    int id = o->slot[F_ID];
    ca_taskgroup *group = NULL;
    if (o->f[F_GROUP] != NULL) {
        group = lookup(r, o->slot[F_GROUP], KIND_BIT(K_TASKGROUP), NULL);
        if (group == NULL) return S_ABORT;
    }
    ca_coro *coro = interp_new(r, r->scn->ids[id], &o->body);
    if (coro == NULL) {
        run_fail(r, "out of memory");
        return S_ABORT;
    }
    /* An eager task runs its first step before the spawn can declare its
     * id: name it through its coroutine meanwhile (the reference does). */
    name_add(r, coro, id);
    size_t slot = r->nsummary;
    ca_task_options opts = {
        .name = o->f[F_NAME] != NULL ? o->f[F_NAME]->s : r->scn->ids[id],
        .eager_start = field_bool(o, F_EAGER) ? 1 : 0,
    };
    ca_task *task;
    ca_error *err = group != NULL ? ca_taskgroup_create_task(group, coro, &opts, &task)
                                  : ca_loop_create_task(r->loop, coro, &opts, &task);
    if (err != NULL) return decl_failed(cx, o, err);
    declare(r, id, K_TASK, task, false);
    summary_insert(r, slot, id);
    return S_NEXT;
}

static sig op_gather(actx *cx, const op *o) {
    void **items = lookup_items(cx->r, o);
    if (items == NULL) return S_ABORT;
    ca_future *outer;
    ca_error *err = ca_gather(NULL, items, o->nitems, field_bool(o, F_RETURN_EXCEPTIONS), &outer);
    free(items);
    if (err != NULL) return decl_failed(cx, o, err);
    declare(cx->r, o->slot[F_ID], K_GATHER, outer, true);
    return S_NEXT;
}

static sig op_wait(actx *cx, const op *o) {
    void **items = lookup_items(cx->r, o);
    if (items == NULL) return S_ABORT;
    int when = field_is(o, F_RETURN_WHEN, "FIRST_COMPLETED")   ? CA_FIRST_COMPLETED
               : field_is(o, F_RETURN_WHEN, "FIRST_EXCEPTION") ? CA_FIRST_EXCEPTION
                                                                : CA_ALL_COMPLETED;
    ca_coro *coro = ca_wait(items, o->nitems, ms_to_seconds(o->f[F_TIMEOUT]), when);
    free(items);
    if (coro == NULL) return decl_failed(cx, o, ca_error_new(&ca_MemoryError, NULL));
    declare(cx->r, o->slot[F_ID], K_WAIT, coro, true);
    return S_NEXT;
}

static sig op_queue(actx *cx, const op *o) {
    int64_t maxsize = field_int(o, F_MAXSIZE, 0);
    ca_queue *q = field_is(o, F_KIND, "lifo")       ? ca_lifo_queue_new(maxsize)
                  : field_is(o, F_KIND, "priority") ? ca_priority_queue_new(maxsize, compare_values, NULL)
                                                    : ca_queue_new(maxsize);
    if (q == NULL) return decl_failed(cx, o, ca_error_new(&ca_MemoryError, NULL));
    declare(cx->r, o->slot[F_ID], K_QUEUE, q, false);
    return S_NEXT;
}

static sig op_schedule(actx *cx, const op *o) {
    run *r = cx->r;
    ca_handle *h = NULL;
    ca_handle **out = o->f[F_ID] != NULL ? &h : NULL;
    void *arg = callback_arg(r, o->tag);
    ca_error *err;
    if (o->code == OP_CALL_SOON)
        err = ca_loop_call_soon(r->loop, soon_callback_fn(), arg, NULL, NULL, out);
    else if (o->code == OP_CALL_LATER)
        err = ca_loop_call_later(r->loop, ms_to_ns(o->f[F_DELAY]->i), soon_callback_fn(), arg, NULL, NULL, out);
    else
        err = ca_loop_call_at(r->loop, ms_to_ns(o->f[F_AT]->i), soon_callback_fn(), arg, NULL, NULL, out);
    if (err != NULL) {
        ca_decref(err);
        run_fail(r, "%s failed", o->label);
        return S_ABORT;
    }
    if (h != NULL) declare(r, o->slot[F_ID], K_HANDLE, h, false);
    return S_NEXT;
}

/* MARK: - Synchronous ops on futures and tasks */

static sig op_future_sync(actx *cx, const op *o) {
    run *r = cx->r;
    uint8_t kind;
    unsigned kinds = FUTURE_KINDS;
    if (o->code == OP_CANCEL || o->code == OP_CANCELLED) kinds |= KIND_BIT(K_HANDLE);
    if (o->code == OP_UNCANCEL || o->code == OP_CANCELLING || o->code == OP_GET_NAME) kinds = KIND_BIT(K_TASK);
    void *obj = lookup(r, o->slot[F_TARGET], kinds, &kind);
    if (obj == NULL) return S_ABORT;
    ca_future *fut = obj;
    switch (o->code) {
    case OP_SET_RESULT:
        outcome_line(cx, o, ca_future_set_result(fut, jv_value(o->f[F_VALUE])), "null");
        break;
    case OP_SET_EXCEPTION: {
        ca_error *exc = make_error(o);
        outcome_line(cx, o, ca_future_set_exception(fut, exc), "null");
        ca_decref(exc);
        break;
    }
    case OP_CANCEL:
        if (kind == K_HANDLE) {
            ca_handle_cancel(obj);
            ok_line(cx, o, "null");
        } else {
            ok_line(cx, o, boolean(ca_future_cancel(fut, o->msg)));
        }
        break;
    case OP_UNCANCEL: int_line(cx, o, ca_task_uncancel(obj)); break;
    case OP_CANCELLING: int_line(cx, o, ca_task_cancelling(obj)); break;
    case OP_DONE: ok_line(cx, o, boolean(ca_future_done(fut))); break;
    case OP_CANCELLED:
        ok_line(cx, o, boolean(kind == K_HANDLE ? ca_handle_cancelled(obj) : ca_future_cancelled(fut)));
        break;
    case OP_RESULT: {
        ca_value v;
        ca_error *err = ca_future_result(fut, &v);
        if (err != NULL) err_line(cx, o, err);
        else value_line(cx, o, &v);
        break;
    }
    case OP_EXCEPTION: {
        ca_error *exc = NULL;
        ca_error *err = ca_future_exception(fut, &exc);
        if (err != NULL) {
            err_line(cx, o, err);
        } else if (exc == NULL) {
            ok_line(cx, o, "null");
        } else {
            sbuf sb = {0};
            fmt_err(r, &sb, exc);
            ok_line(cx, o, sb.p);
            free(sb.p);
            ca_decref(exc);
        }
        break;
    }
    case OP_GET_NAME: {
        const char *name = ca_task_get_name(obj);
        jv s = {.kind = JV_STR, .s = (char *)name, .len = name != NULL ? strlen(name) : 0};
        sbuf sb = {0};
        fmt_jv(&sb, &s);
        ok_line(cx, o, sb.p);
        free(sb.p);
        break;
    }
    case OP_REMOVE_DONE_CALLBACK:
        int_line(cx, o, (long long)ca_future_remove_done_callback(fut, done_callback_fn(), callback_arg(r, o->tag)));
        break;
    default: break;
    }
    return S_NEXT;
}

/* MARK: - Synchronous ops on primitives and queues */

ca_error *release_lock_like(void *obj, uint8_t kind) {
    if (kind == K_LOCK) return ca_lock_release(obj);
    if (kind == K_CONDITION) return ca_condition_release(obj);
    return ca_semaphore_release(obj);
}

static sig op_primitive_sync(actx *cx, const op *o) {
    run *r = cx->r;
    uint8_t kind;
    unsigned kinds = o->code == OP_RELEASE || o->code == OP_LOCKED          ? LOCKLIKE_KINDS
                     : o->code == OP_NOTIFY || o->code == OP_NOTIFY_ALL      ? KIND_BIT(K_CONDITION)
                     : o->code >= OP_EVENT_SET && o->code <= OP_IS_SET       ? KIND_BIT(K_EVENT)
                     : o->code >= OP_PUT_NOWAIT && o->code <= OP_SHUTDOWN    ? KIND_BIT(K_QUEUE)
                     : o->code == OP_WHEN                                    ? KIND_BIT(K_TIMEOUT) | KIND_BIT(K_HANDLE)
                                                                             : KIND_BIT(K_TIMEOUT);
    void *obj = lookup(r, o->slot[F_TARGET], kinds, &kind);
    if (obj == NULL) return S_ABORT;
    switch (o->code) {
    case OP_RELEASE: outcome_line(cx, o, release_lock_like(obj, kind), "null"); break;
    case OP_LOCKED:
        ok_line(cx, o, boolean(kind == K_LOCK ? ca_lock_locked(obj)
                               : kind == K_CONDITION ? ca_condition_locked(obj)
                                                     : ca_semaphore_locked(obj)));
        break;
    case OP_EVENT_SET: outcome_line(cx, o, ca_event_set(obj), "null"); break;
    case OP_EVENT_CLEAR:
        ca_event_clear(obj);
        ok_line(cx, o, "null");
        break;
    case OP_IS_SET: ok_line(cx, o, boolean(ca_event_is_set(obj))); break;
    case OP_NOTIFY: {
        int64_t n = field_int(o, F_N, 1);
        outcome_line(cx, o, ca_condition_notify(obj, n > 0 ? (size_t)n : 0), "null");
        break;
    }
    case OP_NOTIFY_ALL: outcome_line(cx, o, ca_condition_notify_all(obj), "null"); break;
    case OP_PUT_NOWAIT: outcome_line(cx, o, ca_queue_put_nowait(obj, jv_value(o->f[F_VALUE])), "null"); break;
    case OP_GET_NOWAIT: {
        ca_value v;
        ca_error *err = ca_queue_get_nowait(obj, &v);
        if (err != NULL) err_line(cx, o, err);
        else value_line(cx, o, &v);
        ca_value_clear(&v);
        break;
    }
    case OP_TASK_DONE: outcome_line(cx, o, ca_queue_task_done(obj), "null"); break;
    case OP_QSIZE: int_line(cx, o, (long long)ca_queue_qsize(obj)); break;
    case OP_EMPTY: ok_line(cx, o, boolean(ca_queue_empty(obj))); break;
    case OP_FULL: ok_line(cx, o, boolean(ca_queue_full(obj))); break;
    case OP_SHUTDOWN: outcome_line(cx, o, ca_queue_shutdown(obj, field_bool(o, F_IMMEDIATE)), "null"); break;
    case OP_RESCHEDULE: {
        int64_t when = o->f[F_DELAY] != NULL ? ca_loop_time(r->loop) + ms_to_ns(o->f[F_DELAY]->i)
                       : o->f[F_AT]->kind == JV_NULL ? CA_NO_DEADLINE
                                                     : ms_to_ns(o->f[F_AT]->i);
        outcome_line(cx, o, ca_timeout_reschedule(obj, when), "null");
        break;
    }
    case OP_WHEN: {
        int64_t when;
        if (kind == K_HANDLE) {
            if (!ca_object_is_instance(obj, &ca_TimerHandleType)) {
                run_fail(r, "'%s' is not a timer handle", r->scn->ids[o->slot[F_TARGET]]);
                return S_ABORT;
            }
            when = ca_handle_when(obj);
        } else {
            when = ca_timeout_when(obj);
        }
        if (when == CA_NO_DEADLINE) ok_line(cx, o, "null");
        else int_line(cx, o, ns_to_ms(when));
        break;
    }
    case OP_EXPIRED: ok_line(cx, o, boolean(ca_timeout_expired(obj))); break;
    default: break;
    }
    return S_NEXT;
}

/* MARK: - Dispatch */

static sig op_declare_primitive(actx *cx, const op *o) {
    run *r = cx->r;
    int id = o->slot[F_ID];
    ca_error *err = NULL;
    switch (o->code) {
    case OP_LOCK: {
        ca_lock *lock = ca_lock_new();
        if (lock == NULL) return decl_failed(cx, o, ca_error_new(&ca_MemoryError, NULL));
        declare(r, id, K_LOCK, lock, false);
        break;
    }
    case OP_EVENT: {
        ca_event *event = ca_event_new();
        if (event == NULL) return decl_failed(cx, o, ca_error_new(&ca_MemoryError, NULL));
        declare(r, id, K_EVENT, event, false);
        break;
    }
    case OP_CONDITION: {
        ca_lock *lock = NULL;
        if (o->f[F_LOCK] != NULL) {
            lock = lookup(r, o->slot[F_LOCK], KIND_BIT(K_LOCK), NULL);
            if (lock == NULL) return S_ABORT;
        }
        ca_condition *cond = ca_condition_new(lock);
        if (cond == NULL) return decl_failed(cx, o, ca_error_new(&ca_MemoryError, NULL));
        declare(r, id, K_CONDITION, cond, false);
        break;
    }
    case OP_SEMAPHORE:
    case OP_BOUNDED_SEMAPHORE: {
        ca_semaphore *sem;
        int64_t value = field_int(o, F_VALUE, 1);
        err = o->code == OP_SEMAPHORE ? ca_semaphore_new(value, &sem) : ca_bounded_semaphore_new(value, &sem);
        if (err != NULL) return decl_failed(cx, o, err);
        declare(r, id, o->code == OP_SEMAPHORE ? K_SEMAPHORE : K_BOUNDED_SEMAPHORE, sem, false);
        break;
    }
    default: break;
    }
    return S_NEXT;
}

sig exec_simple_op(actx *cx, const op *o) {
    run *r = cx->r;
    switch (o->code) {
    case OP_FUTURE: {
        ca_future *f = ca_loop_create_future(r->loop);
        if (f == NULL) return decl_failed(cx, o, ca_error_new(&ca_MemoryError, NULL));
        declare(r, o->slot[F_ID], K_FUTURE, f, true);
        break;
    }
    case OP_SPAWN: return op_spawn(cx, o);
    case OP_CORO: {
        ca_coro *coro = interp_new(r, r->scn->ids[o->slot[F_ID]], &o->body);
        if (coro == NULL) return decl_failed(cx, o, ca_error_new(&ca_MemoryError, NULL));
        declare(r, o->slot[F_ID], K_CORO, coro, true);
        break;
    }
    case OP_GATHER: return op_gather(cx, o);
    case OP_SHIELD: {
        void *item = lookup(r, o->slot[F_ITEM], AWAITABLE_KINDS, NULL);
        if (item == NULL) return S_ABORT;
        ca_future *outer;
        ca_error *err = ca_shield(item, &outer);
        if (err != NULL) return decl_failed(cx, o, err);
        declare(r, o->slot[F_ID], K_SHIELD, outer, true);
        break;
    }
    case OP_WAIT_FOR: {
        void *item = lookup(r, o->slot[F_ITEM], AWAITABLE_KINDS, NULL);
        if (item == NULL) return S_ABORT;
        ca_coro *coro = ca_wait_for(item, ms_to_seconds(o->f[F_TIMEOUT]));
        if (coro == NULL) return decl_failed(cx, o, ca_error_new(&ca_MemoryError, NULL));
        declare(r, o->slot[F_ID], K_WAIT_FOR, coro, true);
        break;
    }
    case OP_WAIT: return op_wait(cx, o);
    case OP_LOCK:
    case OP_EVENT:
    case OP_CONDITION:
    case OP_SEMAPHORE:
    case OP_BOUNDED_SEMAPHORE: return op_declare_primitive(cx, o);
    case OP_QUEUE: return op_queue(cx, o);
    case OP_CALL_SOON:
    case OP_CALL_LATER:
    case OP_CALL_AT: return op_schedule(cx, o);
    case OP_ADD_DONE_CALLBACK: {
        ca_future *fut = lookup(r, o->slot[F_TARGET], FUTURE_KINDS, NULL);
        if (fut == NULL) return S_ABORT;
        ca_error *err = ca_future_add_done_callback(fut, done_callback_fn(), callback_arg(r, o->tag), NULL, NULL);
        if (err != NULL) {
            ca_decref(err);
            run_fail(r, "add_done_callback failed");
            return S_ABORT;
        }
        break;
    }
    case OP_SET_RESULT:
    case OP_SET_EXCEPTION:
    case OP_CANCEL:
    case OP_UNCANCEL:
    case OP_CANCELLING:
    case OP_DONE:
    case OP_CANCELLED:
    case OP_RESULT:
    case OP_EXCEPTION:
    case OP_GET_NAME:
    case OP_REMOVE_DONE_CALLBACK: return op_future_sync(cx, o);
    case OP_CURRENT_TASK: {
        ca_task *t = NULL;
        ca_decref(ca_current_task(r->loop, &t));
        if (t == NULL) {
            ok_line(cx, o, "null");
        } else {
            sbuf sb = {0};
            fmt_ref(r, &sb, t);
            ok_line(cx, o, sb.p);
            free(sb.p);
        }
        break;
    }
    case OP_ALL_TASKS: {
        size_t n = 0;
        ca_decref(ca_all_tasks(r->loop, NULL, 0, &n));
        ca_task **tasks = calloc(n ? n : 1, sizeof *tasks);
        if (tasks == NULL) {
            run_fail(r, "out of memory");
            return S_ABORT;
        }
        ca_decref(ca_all_tasks(r->loop, tasks, n, &n));
        sbuf sb = {0};
        fmt_task_set(r, &sb, tasks, n);
        ok_line(cx, o, sb.p);
        free(sb.p);
        free(tasks);
        break;
    }
    case OP_LOG: emit(r, cx->actor, "log %s", o->f[F_MSG]->s); break;
    default: return op_primitive_sync(cx, o);
    }
    return r->abort_msg != NULL ? S_ABORT : S_NEXT;
}

void run_callback_body(run *r, const cbtag *tag) {
    actx cx = {r, tag->actor};
    for (size_t i = 0; i < tag->body.n && !r->closed; i++)
        if (exec_simple_op(&cx, &tag->body.ops[i]) == S_ABORT) return;
}
