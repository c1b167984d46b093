/*
 * combinator_support.c — the coroutines of ts_combinators.h, written with the
 * coroutine kit: children for gather/wait/TaskGroup tests, `async with
 * timeout(...)` and `async with TaskGroup()` bodies driven by a script.
 */
#include "ts_combinators.h"

#include <math.h>
#include <stdio.h>

CA_DEFINE_ERROR_TYPE(ts_MyBaseError, "MyBaseError", ca_BaseException);

const ca_error_type *ts_my_base_error(void) { return &ts_MyBaseError; }

double ts_no_timeout(void) { return CA_NO_TIMEOUT; }

static ca_error *take_error(ca_error **slot) {
    ca_error *e = *slot;
    *slot = NULL;
    return e;
}

static ca_error *current_task_of(ca_task **out) {
    ca_error *err = ca_current_task(NULL, out);
    if (err == NULL && *out == NULL) err = ca_error_new(&ca_RuntimeError, "no current task");
    return err;
}

void ts_cb_cancel_task(void *task) { ca_task_cancel(task, NULL); }

/* MARK: - Children */

typedef struct child_frame {
    ca_cframe cf;
    double delay;
    double cleanup;
    int64_t value;
    const ca_error_type *raise_type;
    char msg[64];               /* a copy: Swift strings do not outlive the call */
    bool has_msg;
    bool swallow;
    ca_error *err;
} child_frame;

static void child_finalize(child_frame *f) { CA_CLEAR(f->err); }

CA_CORO_TYPE(sleep_then_type, child_frame, sleep_then, child_finalize);

CA_CORO_BODY(sleep_then, child_frame) {
    CA_BEGIN;
    if (self->delay >= 0) {
        CA_AWAIT_CORO_TRY(ca_sleep(self->delay, ca_none()), self->err);
        if (self->err != NULL) {
            if (self->swallow && ca_error_matches(self->err, &ca_CancelledError)) {
                CA_CLEAR(self->err);
                CA_RETURN(ca_int(self->value));
            }
            CA_RAISE(take_error(&self->err));
        }
    }
    if (self->raise_type != NULL) CA_RAISE(ca_error_new(self->raise_type, self->has_msg ? self->msg : NULL));
    CA_RETURN(ca_int(self->swallow ? -1 : self->value));
    CA_END;
}

ca_coro *ts_cb_sleep_then(double delay, int64_t value, const ca_error_type *raise_type, const char *msg) {
    child_frame *f = CA_CORO_NEW(sleep_then_type, child_frame);
    if (f == NULL) return NULL;
    f->delay = delay;
    f->value = value;
    f->raise_type = raise_type;
    if (msg != NULL) {
        snprintf(f->msg, sizeof f->msg, "%s", msg);
        f->has_msg = true;
    }
    return &f->cf.co;
}

ca_coro *ts_cb_sleep_swallow_cancel(double delay, int64_t cancel_value) {
    child_frame *f = CA_CORO_NEW(sleep_then_type, child_frame);
    if (f == NULL) return NULL;
    f->delay = delay;
    f->value = cancel_value;
    f->swallow = true;
    return &f->cf.co;
}

CA_CORO_TYPE(sleep_with_cleanup_type, child_frame, sleep_with_cleanup, child_finalize);

CA_CORO_BODY(sleep_with_cleanup, child_frame) {
    ca_error *cleanup_err;
    CA_BEGIN;
    CA_AWAIT_CORO_TRY(ca_sleep(self->delay, ca_none()), self->err);
    /* finally: */
    CA_AWAIT_CORO_TRY(ca_sleep(self->cleanup, ca_none()), cleanup_err);
    if (cleanup_err != NULL) {
        CA_CLEAR(self->err);
        CA_RAISE(cleanup_err);
    }
    if (self->err != NULL) CA_RAISE(take_error(&self->err));
    CA_RETURN(ca_int(self->value));
    CA_END;
}

ca_coro *ts_cb_sleep_with_cleanup(double delay, double cleanup, int64_t value) {
    child_frame *f = CA_CORO_NEW(sleep_with_cleanup_type, child_frame);
    if (f == NULL) return NULL;
    f->delay = delay;
    f->cleanup = cleanup;
    f->value = value;
    return &f->cf.co;
}

CA_CORO_TYPE(raise_when_cancelled_type, child_frame, raise_when_cancelled, child_finalize);

CA_CORO_BODY(raise_when_cancelled, child_frame) {
    CA_BEGIN;
    CA_AWAIT_CORO_TRY(ca_sleep(self->delay, ca_none()), self->err);
    if (self->err == NULL) CA_RETURN(ca_int(0));
    if (!ca_error_matches(self->err, &ca_CancelledError)) CA_RAISE(take_error(&self->err));
    CA_AWAIT_CORO(ca_sleep(self->cleanup, ca_none()));
    {
        ca_error *err = ca_error_new(self->raise_type, self->has_msg ? self->msg : NULL);
        ca_error_set_context(err, self->err);
        CA_RAISE(err);
    }
    CA_END;
}

ca_coro *ts_cb_raise_when_cancelled(double delay, double cleanup, const ca_error_type *raise_type, const char *msg) {
    child_frame *f = CA_CORO_NEW(raise_when_cancelled_type, child_frame);
    if (f == NULL) return NULL;
    f->delay = delay;
    f->cleanup = cleanup;
    f->raise_type = raise_type;
    if (msg != NULL) {
        snprintf(f->msg, sizeof f->msg, "%s", msg);
        f->has_msg = true;
    }
    return &f->cf.co;
}

/* MARK: - Awaiting anything */

void ts_await_seen_clear(ts_await_seen *s) {
    ca_value_clear(&s->value);
    CA_CLEAR(s->error);
}

typedef struct await_frame {
    ca_cframe cf;
    ca_object *aw;
    ca_loop *loop;
    ts_await_seen *seen;
    ca_error *err;
} await_frame;

static void await_finalize(await_frame *f) {
    CA_CLEAR(f->aw);
    CA_CLEAR(f->err);
}

CA_CORO_TYPE(await_any_type, await_frame, await_any, await_finalize);

CA_CORO_BODY(await_any, await_frame) {
    ca_value value;
    ca_object *aw;
    CA_BEGIN;
    if (self->seen != NULL) self->seen->ran = true;
    aw = self->aw;
    self->aw = NULL;
    if (ca_coro_check(aw)) {
        CA_AWAIT_CORO_TRY(aw, self->err);
        value = CA_CORO_RESULT();
        CA_CORO_RESULT() = ca_none();
    } else {
        CA_AWAIT_TRY(aw, self->err);
        value = self->err == NULL ? ca_value_copy(&CA_RESULT()) : ca_none();
    }
    if (self->seen != NULL) {
        self->seen->iteration = ca_loop_iteration_count(self->loop);
        if (self->err != NULL) {
            self->seen->error = ca_incref(self->err);
        } else {
            self->seen->finished = true;
            self->seen->value = ca_value_copy(&value);
        }
    }
    if (self->err != NULL) CA_RAISE(take_error(&self->err));
    CA_RETURN(value);
    CA_END;
}

ca_coro *ts_cb_await(void *aw, ca_loop *loop, ts_await_seen *seen) {
    await_frame *f = CA_CORO_NEW(await_any_type, await_frame);
    if (f == NULL) return NULL;
    f->aw = ca_coro_check(aw) ? aw : ca_incref(aw);
    f->loop = loop;
    f->seen = seen;
    return &f->cf.co;
}

typedef struct call_frame {
    ca_cframe cf;
    void (*fn)(void *arg);
    void *arg;
} call_frame;

CA_CORO_TYPE(call_in_task_type, call_frame, call_in_task, NULL);

CA_CORO_BODY(call_in_task, call_frame) {
    CA_BEGIN;
    self->fn(self->arg);
    CA_RETURN(ca_int(0));
    CA_END;
}

ca_coro *ts_cb_call_in_task(void (*fn)(void *arg), void *arg) {
    call_frame *f = CA_CORO_NEW(call_in_task_type, call_frame);
    if (f == NULL) return NULL;
    f->fn = fn;
    f->arg = arg;
    return &f->cf.co;
}

/* MARK: - Timeouts */

void ts_tm_script_clear(ts_tm_script *s) {
    CA_CLEAR(s->tm);
    CA_CLEAR(s->enter_error);
    CA_CLEAR(s->body_error);
    CA_CLEAR(s->reschedule_error);
    CA_CLEAR(s->error);
}

typedef struct timeout_frame {
    ca_cframe cf;
    ts_tm_script *s;
    ca_error *err;
} timeout_frame;

static void timeout_finalize(timeout_frame *f) { CA_CLEAR(f->err); }

CA_CORO_TYPE(timeout_body_type, timeout_frame, timeout_body, timeout_finalize);

CA_CORO_BODY(timeout_body, timeout_frame) {
    ts_tm_script *s = self->s;
    ca_task *me;
    ca_error *err;
    CA_BEGIN;
    err = current_task_of(&me);
    if (err != NULL) CA_RAISE(err);
    if (s->swallow_cancel_first) {
        ca_task_cancel(me, NULL);
        CA_AWAIT_CORO_TRY(ca_sleep(0.01, ca_none()), err);
        ca_decref(err);
        ca_decref(ca_current_task(NULL, &me));
    }
    s->cancelling_at_entry = ca_task_cancelling(me);
    err = s->use_at ? ca_timeout_at_new(s->at, &s->tm) : ca_timeout_new(s->delay, &s->tm);
    if (err == NULL) err = ca_timeout_enter(s->tm);
    if (err != NULL) {
        s->enter_error = ca_incref(err);
        CA_RAISE(err);
    }
    switch (s->body) {
    case TS_TM_RAISE:
        self->err = ca_error_new(&ca_ValueError, "boom");
        break;
    case TS_TM_RESCHEDULE:
        s->reschedule_error = ca_timeout_reschedule(s->tm, s->resched_at);
        break;
    default:
        break;
    }
    if (s->body != TS_TM_RAISE) {
        CA_AWAIT_CORO_TRY(ca_sleep(s->sleep, ca_none()), self->err);
        s->expired_in_body = ca_timeout_expired(s->tm);
        s->body_error = ca_incref(self->err);
        if (self->err != NULL && ca_error_matches(self->err, &ca_CancelledError)) {
            if (s->body == TS_TM_SLEEP_SWALLOW) {
                CA_CLEAR(self->err);
            } else if (s->body == TS_TM_SLEEP_CONVERT) {
                err = ca_error_new(&ca_ValueError, "converted");
                ca_error_set_context(err, self->err);
                CA_CLEAR(self->err);
                self->err = err;
            }
        }
    }
    err = ca_timeout_exit(s->tm, take_error(&self->err));
    ca_decref(ca_current_task(NULL, &me));
    s->cancelling_after = ca_task_cancelling(me);
    s->finished = true;
    if (err != NULL) {
        s->error = ca_incref(err);
        CA_RAISE(err);
    }
    CA_RETURN(ca_int(0));
    CA_END;
}

ca_coro *ts_cb_timeout(ts_tm_script *s) {
    timeout_frame *f = CA_CORO_NEW(timeout_body_type, timeout_frame);
    if (f == NULL) return NULL;
    f->s = s;
    return &f->cf.co;
}

void ts_nested_seen_clear(ts_nested_seen *s) {
    CA_CLEAR(s->outer);
    CA_CLEAR(s->inner);
    CA_CLEAR(s->body_error);
    CA_CLEAR(s->inner_error);
    CA_CLEAR(s->outer_error);
}

typedef struct nested_frame {
    ca_cframe cf;
    double outer;
    double inner;
    double sleep;
    ts_nested_seen *s;
} nested_frame;

CA_CORO_TYPE(nested_timeouts_type, nested_frame, nested_timeouts, NULL);

CA_CORO_BODY(nested_timeouts, nested_frame) {
    ts_nested_seen *s = self->s;
    ca_error *err;
    CA_BEGIN;
    err = ca_timeout_new(self->outer, &s->outer);
    if (err == NULL) err = ca_timeout_enter(s->outer);
    if (err == NULL) err = ca_timeout_new(self->inner, &s->inner);
    if (err == NULL) err = ca_timeout_enter(s->inner);
    if (err != NULL) CA_RAISE(err);
    CA_AWAIT_CORO_TRY(ca_sleep(self->sleep, ca_none()), err);
    s->body_error = ca_incref(err);
    err = ca_timeout_exit(s->inner, err);
    s->inner_error = ca_incref(err);
    err = ca_timeout_exit(s->outer, err);
    s->outer_error = ca_incref(err);
    if (err != NULL) CA_RAISE(err);
    CA_RETURN(ca_int(0));
    CA_END;
}

ca_coro *ts_cb_nested_timeouts(double outer, double inner, double sleep, ts_nested_seen *s) {
    nested_frame *f = CA_CORO_NEW(nested_timeouts_type, nested_frame);
    if (f == NULL) return NULL;
    f->outer = outer;
    f->inner = inner;
    f->sleep = sleep;
    f->s = s;
    return &f->cf.co;
}

/* MARK: - Task groups */

void ts_tg_script_clear(ts_tg_script *s) {
    for (size_t i = 0; i < TS_TG_MAX; i++) {
        if (s->children[i] != NULL) {
            ca_coro_close(s->children[i]);
            CA_CLEAR(s->children[i]);
        }
        CA_CLEAR(s->tasks[i]);
        CA_CLEAR(s->create_errors[i]);
    }
    if (s->late != NULL) {
        ca_coro_close(s->late);
        CA_CLEAR(s->late);
    }
    CA_CLEAR(s->tg);
    CA_CLEAR(s->enter_twice_error);
    CA_CLEAR(s->late_error);
    CA_CLEAR(s->body_error);
    CA_CLEAR(s->error);
}

void ts_tg_add_child(ts_tg_script *s, ca_coro *child, int eager) {
    if (s->nchildren == TS_TG_MAX) {
        ca_coro_close(child);
        ca_decref(child);
        return;
    }
    s->eager[s->nchildren] = eager;
    s->children[s->nchildren++] = child;
}

ca_task *ts_tg_task(const ts_tg_script *s, size_t i) { return i < TS_TG_MAX ? s->tasks[i] : NULL; }
ca_error *ts_tg_create_error(const ts_tg_script *s, size_t i) { return i < TS_TG_MAX ? s->create_errors[i] : NULL; }

typedef struct tg_frame {
    ca_cframe cf;
    ts_tg_script *s;
    ca_error *err;
} tg_frame;

static void tg_finalize(tg_frame *f) { CA_CLEAR(f->err); }

/* Creates the script's children in the group. */
static void tg_spawn_children(ts_tg_script *s, ca_task *me) {
    for (size_t i = 0; i < s->nchildren; i++) {
        ca_coro *child = s->children[i];
        s->children[i] = NULL;
        ca_task_options opts = {.eager_start = s->eager[i]};
        s->create_errors[i] = ca_taskgroup_create_task(s->tg, child, &opts, &s->tasks[i]);
        if (s->tasks[i] == NULL) continue;
        ca_future *awaiters[4];
        size_t n = ca_future_get_awaited_by((ca_future *)s->tasks[i], awaiters, 4);
        for (size_t k = 0; k < n && k < 4; k++)
            if (awaiters[k] == (ca_future *)me) s->awaited_by_parent++;
    }
}

CA_CORO_TYPE(taskgroup_body_type, tg_frame, taskgroup_body, tg_finalize);

CA_CORO_BODY(taskgroup_body, tg_frame) {
    ts_tg_script *s = self->s;
    ca_task *me;
    ca_error *err;
    CA_BEGIN;
    err = current_task_of(&me);
    if (err != NULL) CA_RAISE(err);
    s->cancelling_before = ca_task_cancelling(me);
    s->tg = ca_taskgroup_new();
    if (s->tg == NULL) CA_RAISE(ca_error_new(&ca_MemoryError, NULL));
    err = ca_taskgroup_enter(s->tg);
    if (err != NULL) CA_RAISE(err);
    if (s->enter_twice) s->enter_twice_error = ca_taskgroup_enter(s->tg);
    tg_spawn_children(s, me);

    if (s->body == TS_TG_RAISE) {
        self->err = ca_error_new(s->body_raise, "body");
    } else if (s->body != TS_TG_NOTHING) {
        CA_AWAIT_CORO_TRY(ca_sleep(s->body_sleep, ca_none()), self->err);
        s->body_error = ca_incref(self->err);
        if (self->err == NULL && s->body == TS_TG_SLEEP_THEN_RAISE) self->err = ca_error_new(s->body_raise, "body");
        if (self->err != NULL && s->body == TS_TG_SLEEP_CONVERT) {
            err = ca_error_new(s->body_raise, "body");
            ca_error_set_context(err, self->err);
            CA_CLEAR(self->err);
            self->err = err;
        }
        if (self->err != NULL && s->body == TS_TG_SLEEP_SPAWN_ON_CANCEL) {
            ca_task *late = NULL;
            ca_coro *coro = s->late;
            s->late = NULL;
            s->late_error = ca_taskgroup_create_task(s->tg, coro, NULL, &late);
            ca_decref(late);
        }
    }

    CA_AWAIT_CORO_TRY(ca_taskgroup_exit(s->tg, take_error(&self->err)), err);
    ca_decref(ca_current_task(NULL, &me));
    s->cancelling_after = ca_task_cancelling(me);
    s->finished = true;
    if (err != NULL) {
        s->error = ca_incref(err);
        CA_RAISE(err);
    }
    CA_RETURN(ca_int(0));
    CA_END;
}

ca_coro *ts_cb_taskgroup(ts_tg_script *s) {
    tg_frame *f = CA_CORO_NEW(taskgroup_body_type, tg_frame);
    if (f == NULL) return NULL;
    f->s = s;
    return &f->cf.co;
}

/* MARK: - Allocation and error chains */

typedef struct measure_frame {
    ca_cframe cf;
    double delay;
    int warm;
    int n;
    int i;
    int64_t *allocs;
    uint64_t before;
} measure_frame;

CA_CORO_TYPE(sleep_measure_type, measure_frame, sleep_measure, NULL);

CA_CORO_BODY(sleep_measure, measure_frame) {
    CA_BEGIN;
    for (self->i = 0; self->i < self->warm + self->n; self->i++) {
        if (self->i == self->warm) self->before = ca_alloc_stats_get().allocs;
        CA_AWAIT_CORO(ca_sleep(self->delay, ca_none()));
    }
    *self->allocs = (int64_t)(ca_alloc_stats_get().allocs - self->before);
    CA_RETURN(ca_int(self->n));
    CA_END;
}

ca_coro *ts_cb_sleep_measure(double delay, int warm, int n, int64_t *allocs) {
    measure_frame *f = CA_CORO_NEW(sleep_measure_type, measure_frame);
    if (f == NULL) return NULL;
    f->delay = delay;
    f->warm = warm;
    f->n = n;
    f->allocs = allocs;
    return &f->cf.co;
}

typedef struct op_frame {
    ca_cframe cf;
    int op;
    int warm;
    int n;
    int i;
    int64_t *allocs;
    uint64_t before;
    ca_task *a;
    ca_task *b;
    ca_timeout *tm;
    ca_taskgroup *tg;
    ca_error *err;
} op_frame;

static void op_finalize(op_frame *f) {
    CA_CLEAR(f->a);
    CA_CLEAR(f->b);
    CA_CLEAR(f->tm);
    CA_CLEAR(f->tg);
    CA_CLEAR(f->err);
}

/* Creates the two children `return 1` and `return 2`. */
static ca_error *op_spawn_children(op_frame *self) {
    ca_loop *loop = ca_get_running_loop();
    ca_error *err = ca_loop_create_task(loop, ts_cb_sleep_then(-1, 1, NULL, NULL), NULL, &self->a);
    if (err == NULL) err = ca_loop_create_task(loop, ts_cb_sleep_then(-1, 2, NULL, NULL), NULL, &self->b);
    return err;
}

CA_CORO_TYPE(measure_op_type, op_frame, measure_op, op_finalize);

CA_CORO_BODY(measure_op, op_frame) {
    ca_error *err;
    ca_future *outer;
    ca_coro *inner;
    CA_BEGIN;
    for (self->i = 0; self->i < self->warm + self->n; self->i++) {
        if (self->i == self->warm) self->before = ca_alloc_stats_get().allocs;
        if (self->op == TS_CB_OP_GATHER) {
            err = op_spawn_children(self);
            if (err == NULL) {
                void *aws[2] = {self->a, self->b};
                err = ca_gather(NULL, aws, 2, false, &outer);
            }
            if (err != NULL) CA_RAISE(err);
            CA_AWAIT(outer);
        } else if (self->op == TS_CB_OP_WAIT) {
            err = op_spawn_children(self);
            if (err != NULL) CA_RAISE(err);
            {
                void *fs[2] = {self->a, self->b};
                inner = ca_wait(fs, 2, CA_NO_TIMEOUT, CA_ALL_COMPLETED);
            }
            CA_AWAIT_CORO(inner);
        } else if (self->op == TS_CB_OP_WAIT_FOR) {
            inner = ca_sleep(0, ca_none());
            {
                ca_coro *w = ca_wait_for(inner, 1.0);
                ca_decref(inner);
                inner = w;
            }
            CA_AWAIT_CORO(inner);
        } else if (self->op == TS_CB_OP_TIMEOUT) {
            err = ca_timeout_new(1.0, &self->tm);
            if (err == NULL) err = ca_timeout_enter(self->tm);
            if (err != NULL) CA_RAISE(err);
            CA_AWAIT_CORO_TRY(ca_sleep(0, ca_none()), err);
            err = ca_timeout_exit(self->tm, err);
            CA_CLEAR(self->tm);
            if (err != NULL) CA_RAISE(err);
        } else if (self->op == TS_CB_OP_TASKGROUP) {
            self->tg = ca_taskgroup_new();
            err = self->tg != NULL ? ca_taskgroup_enter(self->tg) : ca_error_new(&ca_MemoryError, NULL);
            if (err == NULL) err = ca_taskgroup_create_task(self->tg, ts_cb_sleep_then(-1, 1, NULL, NULL), NULL, &self->a);
            if (err == NULL) err = ca_taskgroup_create_task(self->tg, ts_cb_sleep_then(-1, 2, NULL, NULL), NULL, &self->b);
            if (err != NULL) CA_RAISE(err);
            CA_AWAIT_CORO_TRY(ca_taskgroup_exit(self->tg, NULL), err);
            CA_CLEAR(self->tg);
            if (err != NULL) CA_RAISE(err);
        } else {
            err = op_spawn_children(self);
            if (err == NULL) err = ca_shield(self->a, &outer);
            if (err != NULL) CA_RAISE(err);
            CA_AWAIT(outer);
        }
        CA_CLEAR(self->a);
        CA_CLEAR(self->b);
    }
    *self->allocs = (int64_t)(ca_alloc_stats_get().allocs - self->before);
    CA_RETURN(ca_int(self->n));
    CA_END;
}

ca_coro *ts_cb_measure_op(int op, int warm, int n, int64_t *allocs) {
    op_frame *f = CA_CORO_NEW(measure_op_type, op_frame);
    if (f == NULL) return NULL;
    f->op = op;
    f->warm = warm;
    f->n = n;
    f->allocs = allocs;
    return &f->cf.co;
}

void ts_chain_seen_clear(ts_chain_seen *s) {
    CA_CLEAR(s->first);
    CA_CLEAR(s->second);
}

typedef struct chain_frame {
    ca_cframe cf;
    ca_future *t;
    ts_chain_seen *s;
} chain_frame;

static void chain_finalize(chain_frame *f) { CA_CLEAR(f->t); }

CA_CORO_TYPE(await_failing_twice_type, chain_frame, await_failing_twice, chain_finalize);

CA_CORO_BODY(await_failing_twice, chain_frame) {
    ca_error *err;
    CA_BEGIN;
    CA_AWAIT_TRY(ca_incref(self->t), err);
    self->s->first = err;
    if (err == NULL) CA_RETURN(ca_int(0));
    CA_AWAIT_TRY(ca_incref(self->t), err);
    /* raised inside the handler of `first`: Python chains it as context */
    ca_error_set_context(err, self->s->first);
    self->s->second = err;
    CA_RETURN(ca_int(1));
    CA_END;
}

ca_coro *ts_cb_await_failing_twice(ca_future *t, ts_chain_seen *s) {
    chain_frame *f = CA_CORO_NEW(await_failing_twice_type, chain_frame);
    if (f == NULL) return NULL;
    f->t = ca_incref(t);
    f->s = s;
    return &f->cf.co;
}
