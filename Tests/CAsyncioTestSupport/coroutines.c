/*
 * coroutines.c — the small `async def`s the specification tests run, written
 * with the coroutine kit of coro.h. Each constructor returns a new reference
 * (NULL when out of memory); references passed in are documented per
 * function in casyncio_test_support.h.
 */
#include "casyncio_test_support.h"

#include <string.h>

static ca_future *take_future(ca_future **slot) {
    ca_future *f = *slot;
    *slot = NULL;
    return f;
}

static ca_coro *take_coro(ca_coro **slot) {
    ca_coro *c = *slot;
    *slot = NULL;
    return c;
}

/* Closes and releases a coroutine the frame still owns (never started). */
static void drop_coro(ca_coro **slot) {
    ca_coro *c = take_coro(slot);
    if (c == NULL) return;
    ca_coro_close(c);
    ca_decref(c);
}

void ts_report_clear(ts_report *r) { CA_CLEAR(r->error); }
void ts_task_seen_clear(ts_task_seen *s) { CA_CLEAR(s->current_error); }
void ts_spawn_seen_clear(ts_spawn_seen *s) { CA_CLEAR(s->create_error); }

/* MARK: - return / raise */

typedef struct return_int_frame {
    ca_cframe cf;
    int64_t v;
} return_int_frame;

CA_CORO_TYPE(return_int_type, return_int_frame, return_int, NULL);

CA_CORO_BODY(return_int, return_int_frame) {
    CA_BEGIN;
    CA_RETURN(ca_int(self->v));
    CA_END;
}

ca_coro *ts_coro_return_int(int64_t v) {
    return_int_frame *f = CA_CORO_NEW(return_int_type, return_int_frame);
    if (f == NULL) return NULL;
    f->v = v;
    return &f->cf.co;
}

typedef struct raise_frame {
    ca_cframe cf;
    ca_error *err;
} raise_frame;

static void raise_finalize(raise_frame *f) { CA_CLEAR(f->err); }

CA_CORO_TYPE(raise_type, raise_frame, raise_error, raise_finalize);

CA_CORO_BODY(raise_error, raise_frame) {
    CA_BEGIN;
    {
        ca_error *err = self->err;
        self->err = NULL;
        CA_RAISE(err);
    }
    CA_END;
}

ca_coro *ts_coro_raise(const ca_error_type *type, const char *msg) {
    raise_frame *f = CA_CORO_NEW(raise_type, raise_frame);
    if (f == NULL) return NULL;
    f->err = ca_error_new(type, msg);
    return &f->cf.co;
}

ca_coro *ts_coro_raise_cancelled(const char *msg) { return ts_coro_raise(&ca_CancelledError, msg); }

/* MARK: - Awaiting futures */

typedef struct await_frame {
    ca_cframe cf;
    ca_future *fut;
    ca_future *fut2;
    ca_error *err;
    ts_report *report;
    int64_t on_cancel;
    int64_t a;
    int line;
} await_frame;

static void await_finalize(await_frame *f) {
    CA_CLEAR(f->fut);
    CA_CLEAR(f->fut2);
    CA_CLEAR(f->err);
}

static await_frame *await_frame_new(const ca_cframe_type *type, ca_future *fut) {
    await_frame *f = (await_frame *)ca_cframe_new(type, sizeof(await_frame));
    if (f == NULL) return NULL;
    f->fut = ca_incref(fut);
    return f;
}

CA_CORO_TYPE(await_plus_one_type, await_frame, await_plus_one, await_finalize);

CA_CORO_BODY(await_plus_one, await_frame) {
    CA_BEGIN;
    self->line = __LINE__; CA_AWAIT(take_future(&self->fut));
    CA_RETURN(ca_int(CA_RESULT().u.i + 1));
    CA_END;
}

ca_coro *ts_coro_await_plus_one(ca_future *fut) {
    await_frame *f = await_frame_new(&await_plus_one_type, fut);
    return f != NULL ? &f->cf.co : NULL;
}

int ts_coro_await_plus_one_line(const ca_coro *coro) { return ((const await_frame *)coro)->line; }

CA_CORO_TYPE(await_catch_cancel_type, await_frame, await_catch_cancel, await_finalize);

CA_CORO_BODY(await_catch_cancel, await_frame) {
    CA_BEGIN;
    CA_AWAIT_TRY(take_future(&self->fut), self->err);
    if (self->err != NULL) {
        if (ca_error_matches(self->err, &ca_CancelledError)) {
            CA_CLEAR(self->err);
            CA_RETURN(ca_int(self->on_cancel));
        }
        {
            ca_error *err = self->err;
            self->err = NULL;
            CA_RAISE(err);
        }
    }
    CA_RETURN(ca_value_copy(&CA_RESULT()));
    CA_END;
}

ca_coro *ts_coro_await_catch_cancel(ca_future *fut, int64_t on_cancel) {
    await_frame *f = await_frame_new(&await_catch_cancel_type, fut);
    if (f == NULL) return NULL;
    f->on_cancel = on_cancel;
    return &f->cf.co;
}

CA_CORO_TYPE(await_report_type, await_frame, await_report, await_finalize);

CA_CORO_BODY(await_report, await_frame) {
    CA_BEGIN;
    self->report->ran = true;
    CA_AWAIT_TRY(take_future(&self->fut), self->err);
    if (self->err != NULL) {
        self->report->error = self->err;
        self->err = NULL;
        self->report->value = 7;
        CA_RETURN(ca_int(7));
    }
    self->report->finished = true;
    self->report->value = CA_RESULT().u.i + 1;
    CA_RETURN(ca_int(self->report->value));
    CA_END;
}

ca_coro *ts_coro_await_report(ca_future *fut, ts_report *report) {
    await_frame *f = await_frame_new(&await_report_type, fut);
    if (f == NULL) return NULL;
    f->report = report;
    return &f->cf.co;
}

CA_CORO_TYPE(await_twice_type, await_frame, await_twice, await_finalize);

CA_CORO_BODY(await_twice, await_frame) {
    CA_BEGIN;
    CA_AWAIT(take_future(&self->fut));
    self->a = CA_RESULT().u.i;
    CA_AWAIT(take_future(&self->fut2));
    CA_RETURN(ca_int(self->a + CA_RESULT().u.i));
    CA_END;
}

ca_coro *ts_coro_await_twice(ca_future *fut) {
    await_frame *f = await_frame_new(&await_twice_type, fut);
    if (f == NULL) return NULL;
    f->fut2 = ca_incref(fut);
    return &f->cf.co;
}

/* MARK: - Self-cancellation and bad awaits */

/* current_task().cancel(); NULL on success, else the error to raise. */
static ca_error *cancel_current_task(void) {
    ca_task *task = NULL;
    ca_error *err = ca_current_task(NULL, &task);
    if (err != NULL) return err;
    if (task == NULL) return ca_error_new(&ca_RuntimeError, "no current task");
    ca_task_cancel(task, NULL);
    return NULL;
}

typedef struct self_frame {
    ca_cframe cf;
    int64_t v;
    double delay;
    ca_future *inner;
    ca_future *me;
    ca_error *err;
    ts_report *report;
} self_frame;

static void self_finalize(self_frame *f) {
    CA_CLEAR(f->inner);
    CA_CLEAR(f->me);
    CA_CLEAR(f->err);
}

CA_CORO_TYPE(cancel_self_return_type, self_frame, cancel_self_then_return, self_finalize);

CA_CORO_BODY(cancel_self_then_return, self_frame) {
    CA_BEGIN;
    {
        ca_error *err = cancel_current_task();
        if (err != NULL) CA_RAISE(err);
    }
    CA_RETURN(ca_int(self->v));
    CA_END;
}

ca_coro *ts_coro_cancel_self_then_return(int64_t v) {
    self_frame *f = CA_CORO_NEW(cancel_self_return_type, self_frame);
    if (f == NULL) return NULL;
    f->v = v;
    return &f->cf.co;
}

CA_CORO_TYPE(cancel_self_sleep_type, self_frame, cancel_self_then_sleep, self_finalize);

CA_CORO_BODY(cancel_self_then_sleep, self_frame) {
    CA_BEGIN;
    self->report->ran = true;
    self->err = cancel_current_task();
    if (self->err != NULL) {
        ca_error *err = self->err;
        self->err = NULL;
        CA_RAISE(err);
    }
    CA_AWAIT_CORO(ca_sleep(self->delay, ca_none()));
    self->report->finished = true;
    CA_RETURN(ca_int(0));
    CA_END;
}

ca_coro *ts_coro_cancel_self_then_sleep(double delay, ts_report *report) {
    self_frame *f = CA_CORO_NEW(cancel_self_sleep_type, self_frame);
    if (f == NULL) return NULL;
    f->delay = delay;
    f->report = report;
    return &f->cf.co;
}

CA_CORO_TYPE(cancel_self_await_type, self_frame, cancel_self_then_await, self_finalize);

CA_CORO_BODY(cancel_self_then_await, self_frame) {
    CA_BEGIN;
    self->err = cancel_current_task();
    if (self->err != NULL) {
        ca_error *err = self->err;
        self->err = NULL;
        CA_RAISE(err);
    }
    CA_AWAIT(take_future(&self->inner));
    CA_RETURN(ca_value_copy(&CA_RESULT()));
    CA_END;
}

ca_coro *ts_coro_cancel_self_then_await(ca_future *inner) {
    self_frame *f = CA_CORO_NEW(cancel_self_await_type, self_frame);
    if (f == NULL) return NULL;
    f->inner = ca_incref(inner);
    return &f->cf.co;
}

CA_CORO_TYPE(await_self_type, self_frame, await_self, self_finalize);

CA_CORO_BODY(await_self, self_frame) {
    CA_BEGIN;
    {
        ca_task *task = NULL;
        ca_error *err = ca_current_task(NULL, &task);
        if (err != NULL) CA_RAISE(err);
        self->me = ca_incref(ts_task_future(task));
    }
    CA_AWAIT_TRY(take_future(&self->me), self->err);
    self->report->ran = true;
    self->report->error = self->err;
    self->err = NULL;
    CA_RETURN(ca_int(7));
    CA_END;
}

ca_coro *ts_coro_await_self(ts_report *report) {
    self_frame *f = CA_CORO_NEW(await_self_type, self_frame);
    if (f == NULL) return NULL;
    f->report = report;
    return &f->cf.co;
}

CA_CORO_TYPE(yield_raw_type, self_frame, yield_raw, self_finalize);

CA_CORO_BODY(yield_raw, self_frame) {
    CA_BEGIN;
    CA_YIELD_RAW_TRY(take_future(&self->inner), self->err);
    self->report->ran = true;
    self->report->error = self->err;
    self->err = NULL;
    CA_RETURN(ca_int(7));
    CA_END;
}

ca_coro *ts_coro_yield_raw(ca_future *fut, ts_report *report) {
    self_frame *f = CA_CORO_NEW(yield_raw_type, self_frame);
    if (f == NULL) return NULL;
    f->inner = ca_incref(fut);
    f->report = report;
    return &f->cf.co;
}

/* MARK: - sleep(0), current task, context variables */

typedef struct steps_frame {
    ca_cframe cf;
    int n;
    int i;
    ca_loop *loop;
    uint64_t *iterations;
    int64_t value;
    const ca_contextvar *var;
    ts_task_seen *seen;
} steps_frame;

CA_CORO_TYPE(sleep0_times_type, steps_frame, sleep0_times, NULL);

CA_CORO_BODY(sleep0_times, steps_frame) {
    CA_BEGIN;
    self->iterations[0] = ca_loop_iteration_count(self->loop);
    for (self->i = 0; self->i < self->n; self->i++) {
        CA_AWAIT_CORO(ca_sleep(0, ca_none()));
        self->iterations[self->i + 1] = ca_loop_iteration_count(self->loop);
    }
    CA_RETURN(ca_int(self->n));
    CA_END;
}

ca_coro *ts_coro_sleep0_times(int n, ca_loop *loop, uint64_t *iterations) {
    steps_frame *f = CA_CORO_NEW(sleep0_times_type, steps_frame);
    if (f == NULL) return NULL;
    f->n = n;
    f->loop = loop;
    f->iterations = iterations;
    return &f->cf.co;
}

CA_CORO_TYPE(sleep0_inline_times_type, steps_frame, sleep0_inline_times, NULL);

CA_CORO_BODY(sleep0_inline_times, steps_frame) {
    CA_BEGIN;
    self->iterations[0] = ca_loop_iteration_count(self->loop);
    for (self->i = 0; self->i < self->n; self->i++) {
        CA_AWAIT_SLEEP(0);
        self->iterations[self->i + 1] = ca_loop_iteration_count(self->loop);
    }
    CA_RETURN(ca_int(self->n));
    CA_END;
}

ca_coro *ts_coro_sleep0_inline_times(int n, ca_loop *loop, uint64_t *iterations) {
    steps_frame *f = CA_CORO_NEW(sleep0_inline_times_type, steps_frame);
    if (f == NULL) return NULL;
    f->n = n;
    f->loop = loop;
    f->iterations = iterations;
    return &f->cf.co;
}

CA_CORO_TYPE(count_yields_type, steps_frame, count_yields, NULL);

CA_CORO_BODY(count_yields, steps_frame) {
    CA_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        CA_YIELD();
    }
    CA_RETURN(ca_int(self->i));
    CA_END;
}

ca_coro *ts_coro_count_yields(int n) {
    steps_frame *f = CA_CORO_NEW(count_yields_type, steps_frame);
    if (f == NULL) return NULL;
    f->n = n;
    return &f->cf.co;
}

CA_CORO_TYPE(sleep0_then_return_type, steps_frame, sleep0_then_return, NULL);

CA_CORO_BODY(sleep0_then_return, steps_frame) {
    CA_BEGIN;
    CA_AWAIT_CORO(ca_sleep(0, ca_none()));
    CA_RETURN(ca_int(self->value));
    CA_END;
}

ca_coro *ts_coro_sleep0_then_return(int64_t v) {
    steps_frame *f = CA_CORO_NEW(sleep0_then_return_type, steps_frame);
    if (f == NULL) return NULL;
    f->value = v;
    return &f->cf.co;
}

CA_CORO_TYPE(record_task_type, steps_frame, record_task, NULL);

CA_CORO_BODY(record_task, steps_frame) {
    CA_BEGIN;
    {
        ts_task_seen *seen = self->seen;
        ca_task *tasks[64];
        size_t count = 0;
        seen->ran = true;
        seen->current_error = ca_current_task(NULL, &seen->current);
        ca_error *err = ca_all_tasks(NULL, tasks, 64, &count);
        if (err == NULL) {
            seen->all_tasks_count = count;
            for (size_t i = 0; i < count && i < 64; i++) {
                if (tasks[i] == seen->current) seen->in_all_tasks = true;
            }
        }
        ca_decref(err);
        seen->running_loop = ca_get_running_loop();
    }
    CA_RETURN(ca_int(0));
    CA_END;
}

ca_coro *ts_coro_record_task(ts_task_seen *seen) {
    steps_frame *f = CA_CORO_NEW(record_task_type, steps_frame);
    if (f == NULL) return NULL;
    f->seen = seen;
    return &f->cf.co;
}

CA_CORO_TYPE(set_var_then_yield_type, steps_frame, set_var_then_yield, NULL);

CA_CORO_BODY(set_var_then_yield, steps_frame) {
    CA_BEGIN;
    {
        ca_error *err = ca_contextvar_set(self->var, ca_int(self->value), NULL);
        if (err != NULL) CA_RAISE(err);
    }
    CA_AWAIT_CORO(ca_sleep(0, ca_none()));
    CA_RETURN(ca_int(ts_var_int(self->var)));
    CA_END;
}

ca_coro *ts_coro_set_var_then_yield(const ca_contextvar *var, int64_t value) {
    steps_frame *f = CA_CORO_NEW(set_var_then_yield_type, steps_frame);
    if (f == NULL) return NULL;
    f->var = var;
    f->value = value;
    return &f->cf.co;
}

CA_CORO_TYPE(read_var_type, steps_frame, read_var, NULL);

CA_CORO_BODY(read_var, steps_frame) {
    CA_BEGIN;
    CA_RETURN(ca_int(ts_var_int(self->var)));
    CA_END;
}

ca_coro *ts_coro_read_var(const ca_contextvar *var) {
    steps_frame *f = CA_CORO_NEW(read_var_type, steps_frame);
    if (f == NULL) return NULL;
    f->var = var;
    return &f->cf.co;
}

/* MARK: - Spawning and delegating */

typedef struct spawn_frame {
    ca_cframe cf;
    ca_loop *loop;
    ca_coro *child;
    int eager;
    ts_spawn_seen *seen;
    ca_future *task;
    ts_report *report;
} spawn_frame;

static void spawn_finalize(spawn_frame *f) {
    drop_coro(&f->child);
    CA_CLEAR(f->task);
}

CA_CORO_TYPE(spawn_type, spawn_frame, spawn, spawn_finalize);

CA_CORO_BODY(spawn, spawn_frame) {
    CA_BEGIN;
    {
        ca_task_options opts;
        memset(&opts, 0, sizeof opts);
        opts.eager_start = self->eager;
        ca_task *task = NULL;
        ca_error *err = ca_loop_create_task(self->loop, take_coro(&self->child), &opts, &task);
        if (err != NULL) {
            self->seen->create_error = err;
            CA_RETURN(ca_int(-1));
        }
        self->seen->task = task;
        self->seen->done_at_once = ca_future_done(ts_task_future(task));
        self->seen->coro_dropped = ca_task_get_coro(task) == NULL;
        if (self->seen->cvar != NULL) self->seen->var_after_create = ts_var_int(self->seen->cvar);
        self->task = ts_task_future(task);
    }
    CA_AWAIT(take_future(&self->task));
    CA_RETURN(ca_value_copy(&CA_RESULT()));
    CA_END;
}

ca_coro *ts_coro_spawn(ca_loop *loop, ca_coro *child, int eager, ts_spawn_seen *seen) {
    spawn_frame *f = CA_CORO_NEW(spawn_type, spawn_frame);
    if (f == NULL) {
        ca_coro_close(child);
        ca_decref(child);
        return NULL;
    }
    f->loop = loop;
    f->child = child;
    f->eager = eager;
    f->seen = seen;
    return &f->cf.co;
}

CA_CORO_TYPE(await_coro_type, spawn_frame, await_coro_plus_one, spawn_finalize);

CA_CORO_BODY(await_coro_plus_one, spawn_frame) {
    CA_BEGIN;
    CA_AWAIT_CORO(take_coro(&self->child));
    CA_RETURN(ca_int(CA_CORO_RESULT().u.i + 1));
    CA_END;
}

ca_coro *ts_coro_await_coro_plus_one(ca_coro *inner) {
    spawn_frame *f = CA_CORO_NEW(await_coro_type, spawn_frame);
    if (f == NULL) {
        ca_coro_close(inner);
        ca_decref(inner);
        return NULL;
    }
    f->child = inner;
    return &f->cf.co;
}

CA_CORO_TYPE(reenter_type, spawn_frame, reenter, spawn_finalize);

CA_CORO_BODY(reenter, spawn_frame) {
    CA_BEGIN;
    {
        ca_coro_result res;
        memset(&res, 0, sizeof res);
        ca_coro_status st = ca_coro_send(&self->cf.co, ca_none(), &res);
        self->report->ran = true;
        self->report->value = (int64_t)st;
        if (st == CA_CORO_RAISE) {
            self->report->error = res.error;
        } else if (st == CA_CORO_YIELD) {
            ca_decref(res.future);
        } else {
            ca_value_clear(&res.value);
        }
    }
    CA_RETURN(ca_int(7));
    CA_END;
}

ca_coro *ts_coro_reenter(ts_report *report) {
    spawn_frame *f = CA_CORO_NEW(reenter_type, spawn_frame);
    if (f == NULL) return NULL;
    f->report = report;
    return &f->cf.co;
}

typedef struct counter_frame {
    ca_cframe cf;
    int *counter;
} counter_frame;

static void counter_finalize(counter_frame *f) { (*f->counter)++; }

CA_CORO_TYPE(finalize_counter_type, counter_frame, finalize_counter, counter_finalize);

CA_CORO_BODY(finalize_counter, counter_frame) {
    CA_BEGIN;
    CA_RETURN(ca_int(0));
    CA_END;
}

ca_coro *ts_coro_finalize_counter(int *counter) {
    counter_frame *f = CA_CORO_NEW(finalize_counter_type, counter_frame);
    if (f == NULL) return NULL;
    f->counter = counter;
    return &f->cf.co;
}

/* MARK: - Allocation measurement */

typedef struct measure_frame {
    ca_cframe cf;
    ca_loop *loop;
    int warm;
    int n;
    int i;
    uint64_t start;
    int64_t *allocs;
    int64_t *checksum;
    ca_future *task;
    bool inline_sleep;
} measure_frame;

static void measure_finalize(measure_frame *f) { CA_CLEAR(f->task); }

CA_CORO_TYPE(sleep0_measure_type, measure_frame, sleep0_measure, measure_finalize);

CA_CORO_BODY(sleep0_measure, measure_frame) {
    CA_BEGIN;
    for (self->i = 0; self->i < self->warm + self->n; self->i++) {
        if (self->i == self->warm) self->start = ca_alloc_stats_get().allocs;
        if (self->inline_sleep) {
            CA_AWAIT_SLEEP(0);
        } else {
            CA_AWAIT_CORO(ca_sleep(0, ca_none()));
        }
    }
    *self->allocs = (int64_t)(ca_alloc_stats_get().allocs - self->start);
    CA_RETURN(ca_int(self->i));
    CA_END;
}

ca_coro *ts_coro_sleep0_measure(int warm, int n, bool inline_sleep, int64_t *allocs) {
    measure_frame *f = CA_CORO_NEW(sleep0_measure_type, measure_frame);
    if (f == NULL) return NULL;
    f->inline_sleep = inline_sleep;
    f->warm = warm;
    f->n = n;
    f->allocs = allocs;
    return &f->cf.co;
}

CA_CORO_TYPE(spawn_measure_type, measure_frame, spawn_measure, measure_finalize);

CA_CORO_BODY(spawn_measure, measure_frame) {
    CA_BEGIN;
    for (self->i = 0; self->i < self->warm + self->n; self->i++) {
        if (self->i == self->warm) self->start = ca_alloc_stats_get().allocs;
        {
            ca_task_options opts;
            memset(&opts, 0, sizeof opts);
            ca_task *task = NULL;
            ca_error *err = ca_loop_create_task(self->loop, ts_coro_return_int(self->i), &opts, &task);
            if (err != NULL) CA_RAISE(err);
            self->task = ts_task_future(task);
        }
        CA_AWAIT(take_future(&self->task));
        *self->checksum += CA_RESULT().u.i;
    }
    *self->allocs = (int64_t)(ca_alloc_stats_get().allocs - self->start);
    CA_RETURN(ca_int(self->i));
    CA_END;
}

ca_coro *ts_coro_spawn_measure(ca_loop *loop, int warm, int n, int64_t *allocs,
                               int64_t *checksum) {
    measure_frame *f = CA_CORO_NEW(spawn_measure_type, measure_frame);
    if (f == NULL) return NULL;
    f->loop = loop;
    f->warm = warm;
    f->n = n;
    f->allocs = allocs;
    f->checksum = checksum;
    return &f->cf.co;
}
