/*
 * recorders.c — callbacks that record what ran, when and in which context;
 * exception-handler and logger recorders; operations performed from inside a
 * running loop; error-type lookup for Swift.
 */
#include "casyncio_test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* MARK: - Error types */

CA_DEFINE_ERROR_TYPE(ts_MyError, "MyError", ca_ValueError);
CA_DEFINE_ERROR_TYPE(ts_MyStopIteration, "MyStopIteration", ca_StopIteration);

static const ca_error_type *const ts_known_types[] = {
    &ca_BaseException, &ca_Exception, &ca_CancelledError, &ca_KeyboardInterrupt,
    &ca_SystemExit, &ca_BaseExceptionGroup, &ca_ExceptionGroup, &ca_StopIteration,
    &ca_RuntimeError, &ca_RecursionError, &ca_ValueError, &ca_TypeError, &ca_KeyError,
    &ca_MemoryError, &ca_OSError, &ca_TimeoutError, &ca_ConnectionError, &ca_BrokenPipeError,
    &ca_ConnectionResetError, &ca_ConnectionRefusedError, &ca_ConnectionAbortedError,
    &ca_InvalidStateError, &ca_QueueEmpty, &ca_QueueFull, &ca_QueueShutDown,
    &ca_BrokenBarrierError, &ca_IncompleteReadError, &ca_LimitOverrunError, &ca_EOFError,
    &ts_MyError, &ts_MyStopIteration,
};

const ca_error_type *ts_error_type(const char *name) {
    for (size_t i = 0; i < sizeof ts_known_types / sizeof ts_known_types[0]; i++) {
        if (strcmp(ts_known_types[i]->name, name) == 0) return ts_known_types[i];
    }
    return NULL;
}

ca_error *ts_error_format_int(const ca_error_type *type, const char *prefix, int value) {
    return ca_error_format(type, "%s=%d", prefix, value);
}

void ts_count_dtor(void *p) { (*(int *)p)++; }

/* MARK: - Recorder and probes */

void ts_recorder_init(ts_recorder *rec, ca_loop *loop) {
    memset(rec, 0, sizeof *rec);
    rec->loop = loop;
}

void ts_recorder_append(ts_recorder *rec, int64_t value) {
    if (rec == NULL || rec->len >= TS_REC_CAP) return;
    rec->values[rec->len] = value;
    if (rec->loop != NULL) {
        rec->iterations[rec->len] = ca_loop_iteration_count(rec->loop);
        rec->times[rec->len] = ca_loop_time(rec->loop);
    }
    rec->len++;
}

int64_t ts_recorder_value(const ts_recorder *rec, size_t i) { return rec->values[i]; }
uint64_t ts_recorder_iteration(const ts_recorder *rec, size_t i) { return rec->iterations[i]; }
int64_t ts_recorder_time(const ts_recorder *rec, size_t i) { return rec->times[i]; }

void ts_probe_init(ts_probe *p, ts_recorder *rec, int64_t value) {
    memset(p, 0, sizeof *p);
    p->rec = rec;
    p->value = value;
    p->last_state = -1;
}

void ts_probe_clear(ts_probe *p) { CA_CLEAR(p->error); }

void ts_probe_call(void *arg) {
    ts_probe *p = arg;
    p->runs++;
    ts_recorder_append(p->rec, p->value);
}

void ts_probe_done(ca_future *fut, void *arg) {
    ts_probe *p = arg;
    p->runs++;
    p->last_future = fut;
    p->last_state = fut != NULL ? fut->fut_state : -1;
    ts_recorder_append(p->rec, p->value);
}

void ts_probe_release(void *arg) { ((ts_probe *)arg)->releases++; }

void ts_probe_schedule_next(void *arg) {
    ts_probe *p = arg;
    ts_probe_call(p);
    if (p->next != NULL && p->error == NULL) {
        ca_callback_fn fn = p->next->next != NULL ? ts_probe_schedule_next : ts_probe_call;
        p->error = ca_loop_call_soon(p->loop, fn, p->next, NULL, NULL, NULL);
    }
}

int64_t ts_var_int(const ca_contextvar *var) {
    ca_value v = ca_none();
    ca_error *err = ca_contextvar_get(var, NULL, &v);
    if (err != NULL) {
        ca_decref(err);
        return -1;
    }
    int64_t out = v.kind == CA_VALUE_INT ? v.u.i : -2;
    ca_value_clear(&v);
    return out;
}

void ts_probe_read_var(void *arg) {
    ts_probe *p = arg;
    p->runs++;
    ts_recorder_append(p->rec, ts_var_int(p->cvar));
}

void ts_probe_done_read_var(ca_future *fut, void *arg) {
    ((ts_probe *)arg)->last_future = fut;
    ts_probe_read_var(arg);
}

void ts_probe_set_var(void *arg) {
    ts_probe *p = arg;
    p->runs++;
    ca_error *err = ca_contextvar_set(p->cvar, ca_int(p->value), NULL);
    if (err != NULL && p->error == NULL) p->error = err;
    else ca_decref(err);
    ts_recorder_append(p->rec, ts_var_int(p->cvar));
}

void ts_probe_stop(void *arg) {
    ts_probe *p = arg;
    ts_probe_call(p);
    ca_loop_stop(p->loop);
}

void ts_stop_loop(void *loop) { ca_loop_stop(loop); }

void ts_busy_callback(void *arg) { ts_sleep_ns(*(int64_t *)arg); }

void ts_seq_call(void *arg) {
    ts_seq_arg *a = arg;
    ts_seq_state *st = a->st;
    if (a->value != st->next) st->errors++;
    st->next = a->value + 1;
    st->count++;
    if (a->then != NULL) {
        ca_error *err = ca_loop_call_soon(st->loop, ts_seq_call, a->then, NULL, NULL, NULL);
        if (err != NULL) {
            st->errors++;
            ca_decref(err);
        }
    }
}

ca_contextvar *ts_contextvar_new(const char *name, bool has_default, int64_t default_value) {
    ca_contextvar *var = calloc(1, sizeof *var);
    if (var == NULL) return NULL;
    var->name = strdup(name);
    var->has_default = has_default;
    var->default_value = has_default ? ca_int(default_value) : ca_none();
    return var;
}

void ts_contextvar_free(ca_contextvar *var) {
    if (var == NULL) return;
    free((char *)var->name);
    free(var);
}

/* MARK: - Exception handler and logger */

static void ts_copy_text(char *dst, const char *src) {
    snprintf(dst, TS_TEXT_CAP, "%s", src != NULL ? src : "");
}

void ts_exc_handler(ca_loop *loop, const ca_exception_context *context, void *arg) {
    ts_exc_recorder *r = arg;
    int i = r->count++;
    if (i >= TS_EXC_CAP) return;
    ts_exc_entry *e = &r->entries[i];
    memset(e, 0, sizeof *e);
    ts_copy_text(e->message, context->message);
    if (context->exception != NULL) {
        snprintf(e->exc_type, sizeof e->exc_type, "%s", context->exception->type->name);
        ts_copy_text(e->exc_message, ca_error_message(context->exception));
    }
    e->future = context->future;
    e->task = context->task;
    e->handle = context->handle;
}

const char *ts_exc_message(const ts_exc_recorder *r, int i) { return r->entries[i].message; }
const char *ts_exc_type(const ts_exc_recorder *r, int i) { return r->entries[i].exc_type; }
const void *ts_exc_future(const ts_exc_recorder *r, int i) { return r->entries[i].future; }
const void *ts_exc_task(const ts_exc_recorder *r, int i) { return r->entries[i].task; }

void ts_log_record(ca_loop *loop, ca_log_level level, const char *message, void *arg) {
    ts_log_recorder *r = arg;
    int i = r->count++;
    if (i >= TS_EXC_CAP) return;
    r->levels[i] = (int)level;
    ts_copy_text(r->messages[i], message);
}

const char *ts_log_message(const ts_log_recorder *r, int i) { return r->messages[i]; }
int ts_log_level(const ts_log_recorder *r, int i) { return r->levels[i]; }

/* MARK: - Inside a running loop */

void ts_inside_call(void *arg) {
    ts_inside *in = arg;
    in->ran = true;
    in->running_loop = ca_get_running_loop();
    in->checked_error = ca_get_running_loop_checked(&in->checked_loop);
    in->is_running = ca_loop_is_running(in->loop);
    ca_error *cerr = ca_current_task(in->loop, &in->current_task);
    ca_decref(cerr);
    switch (in->op) {
    case TS_OP_RUN_FOREVER:
        in->error = ca_loop_run_forever(in->loop);
        break;
    case TS_OP_RUN_UNTIL_COMPLETE:
        in->error = ca_loop_run_until_complete(in->loop, in->fut);
        break;
    case TS_OP_RUN_OTHER:
        in->error = ca_loop_run_forever(in->other);
        break;
    case TS_OP_CLOSE:
        in->error = ca_loop_close(in->loop);
        break;
    case TS_OP_CALL_SOON_FROM_THREAD:
        in->error = ts_call_soon_from_thread(in->loop);
        break;
    case TS_OP_CREATE_TASK_FROM_THREAD: {
        ca_coro *coro = in->coro;
        in->coro = NULL;
        in->error = ts_create_task_from_thread(in->loop, coro, &in->task);
        break;
    }
    case TS_OP_TASK_API: {
        ca_task *prev = NULL;
        in->enter_a_error = ca_enter_task(in->loop, in->task_a);
        ca_decref(ca_current_task(in->loop, &in->current_after_enter));
        in->enter_b_error = ca_enter_task(in->loop, in->task_b);
        in->leave_b_error = ca_leave_task(in->loop, in->task_b);
        in->leave_a_error = ca_leave_task(in->loop, in->task_a);
        ca_decref(ca_current_task(in->loop, &in->current_after_leave));
        in->swap_error = ca_swap_current_task(in->loop, in->task_a, &prev);
        in->swap_prev_first = prev;
        ca_decref(ca_swap_current_task(in->loop, NULL, &prev));
        in->swap_prev_second = prev;
        break;
    }
    case TS_OP_CREATE_EAGER_TASK: {
        ca_task_options opts = {0};
        opts.eager_start = 1;
        ca_coro *coro = in->coro;
        in->coro = NULL;
        in->error = ca_loop_create_task(in->loop, coro, &opts, &in->task);
        in->task_done_at_once = in->task != NULL && ca_future_done(ts_task_future(in->task));
        break;
    }
    default:
        break;
    }
    cerr = ca_current_task(in->loop, &in->current_task_after);
    ca_decref(cerr);
}

void ts_inside_clear(ts_inside *in) {
    CA_CLEAR(in->error);
    CA_CLEAR(in->enter_a_error);
    CA_CLEAR(in->enter_b_error);
    CA_CLEAR(in->leave_b_error);
    CA_CLEAR(in->leave_a_error);
    CA_CLEAR(in->swap_error);
    CA_CLEAR(in->checked_error);
    CA_CLEAR(in->task);
    if (in->coro != NULL) {
        ca_coro_close(in->coro);
        CA_CLEAR(in->coro);
    }
}

/* MARK: - Futures and factories */

ca_future *ts_uninit_future_new(void) {
    ca_future *fut = calloc(1, sizeof *fut);
    if (fut == NULL) return NULL;
    fut->ob_base.ob_refcnt = CA_IMMORTAL_REFCNT;
    fut->ob_base.ob_type = &ca_FutureType;
    return fut;
}

void ts_uninit_future_free(ca_future *fut) { free(fut); }

void ts_hostile_release(void *arg) {
    ts_hostile *h = arg;
    if (h->releases++ != 0) return;
    if (h->add_probe != NULL) h->error = ca_future_add_done_callback(h->fut, ts_probe_done, h->add_probe, NULL, NULL);
    if (h->remove_probe != NULL) h->removed = ca_future_remove_done_callback(h->fut, ts_probe_done, h->remove_probe);
}

void ts_hostile_done(ca_future *fut, void *arg) { (void)fut; (void)arg; }

void ts_hostile_clear(ts_hostile *h) { CA_CLEAR(h->error); }

ca_error *ts_counting_task_factory(ca_loop *loop, ca_coro *coro, const ca_task_options *opts,
                                   void *arg, ca_task **out) {
    (*(int *)arg)++;
    return ca_task_new(loop, coro, opts, out);
}

void ts_count_done(ca_future *fut, void *arg) { (*(int64_t *)arg)++; }
void ts_count_call(void *arg) { (*(int64_t *)arg)++; }
