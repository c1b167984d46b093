/*
 * sync_support.c — the script interpreter of ts_sync.h: one kit coroutine
 * that awaits or calls the sync and queue API op by op and logs outcomes.
 */
#include "ts_sync.h"

#include <stdio.h>
#include <string.h>

typedef struct script_frame {
    ca_cframe cf;
    ts_sync_op *ops;       /* owned copy */
    size_t n;
    size_t pc;
    size_t rep_begin;      /* REPEAT body [rep_begin, rep_end) */
    size_t rep_end;
    int64_t rep_left;      /* passes still to run, 0: not repeating */
    ts_sync_log *log;
    ca_value last;         /* the latest value an op produced (owned) */
    bool last_op_none;     /* the last op run produced None */
    ca_error *err;
} script_frame;

static void script_finalize(script_frame *self) {
    ca_free(self->ops);
    ca_value_clear(&self->last);
    CA_CLEAR(self->err);
}

static int32_t current_cancelling(void) {
    ca_task *task = NULL;
    ca_error *err = ca_current_task(NULL, &task);
    ca_decref(err);
    return task != NULL ? ca_task_cancelling(task) : -1;
}

static void script_record(script_frame *self, const ts_sync_op *op, const ca_value *value, const ca_error *err) {
    ts_sync_log *log = self->log;
    if (log == NULL || ((op->flags & TS_SYNC_QUIET) && err == NULL)) return;
    if (log->len >= TS_SYNC_LOG_CAP) {
        log->dropped++;
        return;
    }
    ts_sync_entry *e = &log->entries[log->len++];
    memset(e, 0, sizeof *e);
    e->tag = op->tag;
    e->kind = op->kind;
    e->value_kind = (int32_t)value->kind;
    if (value->kind == CA_VALUE_INT) e->value = value->u.i;
    else if (value->kind == CA_VALUE_DOUBLE) e->value = (int64_t)value->u.d;
    if (err != NULL) {
        snprintf(e->error, sizeof e->error, "%s", err->type->name);
        snprintf(e->message, sizeof e->message, "%s", ca_error_message(err));
    }
    if (log->loop != NULL) {
        e->iteration = ca_loop_iteration_count(log->loop);
        e->time = ca_loop_time(log->loop);
    }
    e->cancelling = current_cancelling();
}

bool ts_sync_flag_set(void *arg) { return *(const int64_t *)arg != 0; }

static ca_value put_value(script_frame *self, const ts_sync_op *op) {
    return (op->flags & TS_SYNC_LAST) ? ca_value_copy(&self->last) : ca_int(op->arg);
}

/* The coroutine an awaiting op awaits, or NULL (with *is_async false) for a
 * synchronous op. */
static ca_coro *script_coro(script_frame *self, const ts_sync_op *op, bool *is_async) {
    *is_async = true;
    switch (op->kind) {
    case TS_SYNC_LOCK_ACQUIRE: return ca_lock_acquire(op->target);
    case TS_SYNC_EVENT_WAIT: return ca_event_wait(op->target);
    case TS_SYNC_COND_ACQUIRE: return ca_condition_acquire(op->target);
    case TS_SYNC_COND_WAIT: return ca_condition_wait(op->target);
    case TS_SYNC_COND_WAIT_FOR: return ca_condition_wait_for(op->target, ts_sync_flag_set, op->aux);
    case TS_SYNC_SEM_ACQUIRE: return ca_semaphore_acquire(op->target);
    case TS_SYNC_BARRIER_WAIT: return ca_barrier_wait(op->target);
    case TS_SYNC_BARRIER_RESET: return ca_barrier_reset(op->target);
    case TS_SYNC_BARRIER_ABORT: return ca_barrier_abort(op->target);
    case TS_SYNC_PUT: return ca_queue_put(op->target, put_value(self, op));
    case TS_SYNC_GET: return ca_queue_get(op->target);
    case TS_SYNC_JOIN: return ca_queue_join(op->target);
    case TS_SYNC_SLEEP: return ca_sleep((double)op->arg / 1e9, ca_none());
    default:
        *is_async = false;
        return NULL;
    }
}

/* Runs a synchronous op; its value goes to *value (owned). */
static ca_error *script_sync(script_frame *self, const ts_sync_op *op, ca_value *value) {
    *value = ca_none();
    switch (op->kind) {
    case TS_SYNC_LOCK_RELEASE: return ca_lock_release(op->target);
    case TS_SYNC_EVENT_SET: return ca_event_set(op->target);
    case TS_SYNC_EVENT_CLEAR: ca_event_clear(op->target); return NULL;
    case TS_SYNC_COND_RELEASE: return ca_condition_release(op->target);
    case TS_SYNC_COND_NOTIFY: return ca_condition_notify(op->target, (size_t)op->arg);
    case TS_SYNC_COND_NOTIFY_ALL: return ca_condition_notify_all(op->target);
    case TS_SYNC_SEM_RELEASE: return ca_semaphore_release(op->target);
    case TS_SYNC_PUT_NOWAIT: return ca_queue_put_nowait(op->target, put_value(self, op));
    case TS_SYNC_GET_NOWAIT: return ca_queue_get_nowait(op->target, value);
    case TS_SYNC_TASK_DONE: return ca_queue_task_done(op->target);
    case TS_SYNC_SHUTDOWN: return ca_queue_shutdown(op->target, op->arg != 0);
    case TS_SYNC_CANCEL: *value = ca_int(ca_task_cancel(op->target, NULL)); return NULL;
    case TS_SYNC_ALLOCS: *value = ca_int((int64_t)ca_alloc_stats_get().allocs); return NULL;
    default: return NULL; /* MARK */
    }
}

/* Moves pc past the op just run, looping a REPEAT body. */
static void script_advance(script_frame *self) {
    self->pc++;
    if (self->rep_left > 0 && self->pc == self->rep_end) {
        if (--self->rep_left > 0) self->pc = self->rep_begin;
    }
}

CA_CORO_TYPE(script_type, script_frame, script_body, script_finalize);

CA_CORO_BODY(script_body, script_frame) {
    const ts_sync_op *op;
    ca_coro *coro;
    ca_value value;
    bool is_async;
    CA_BEGIN;
    while (self->pc < self->n) {
        op = &self->ops[self->pc];
        if (op->kind == TS_SYNC_REPEAT) {
            self->rep_begin = self->pc + 1;
            self->rep_end = self->rep_begin + (size_t)op->tag;
            self->rep_left = op->arg;
            self->pc = op->arg > 0 ? self->rep_begin : self->rep_end;
            continue;
        }
        coro = script_coro(self, op, &is_async);
        if (is_async) {
            CA_AWAIT_CORO_TRY(coro, self->err);
            op = &self->ops[self->pc];
            value = CA_CORO_RESULT();
            CA_CORO_RESULT() = ca_none();
        } else {
            self->err = script_sync(self, op, &value);
        }
        script_record(self, op, &value, self->err);
        self->last_op_none = value.kind == CA_VALUE_NONE;
        if (value.kind != CA_VALUE_NONE || op->kind == TS_SYNC_GET || op->kind == TS_SYNC_GET_NOWAIT) {
            ca_value_clear(&self->last);
            self->last = value;
        }
        if (self->err != NULL) {
            if (!(op->flags & TS_SYNC_CATCH)) {
                ca_error *err = self->err;
                self->err = NULL;
                CA_RAISE(err);
            }
            CA_CLEAR(self->err);
        }
        script_advance(self);
    }
    if (!self->last_op_none) {
        ca_value result = self->last;
        self->last = ca_none();
        CA_RETURN(result);
    }
    CA_END;
}

ca_coro *ts_sync_script(const ts_sync_op *ops, size_t n, ts_sync_log *log) {
    script_frame *f = CA_CORO_NEW(script_type, script_frame);
    if (f == NULL) return NULL;
    f->ops = ca_malloc((n > 0 ? n : 1) * sizeof *ops);
    if (f->ops == NULL) {
        ca_decref(f);
        return NULL;
    }
    if (n > 0) memcpy(f->ops, ops, n * sizeof *ops);
    f->n = n;
    f->log = log;
    return &f->cf.co;
}

int64_t ts_sync_log_tag(const ts_sync_log *log, size_t i) { return log->entries[i].tag; }
int64_t ts_sync_log_value(const ts_sync_log *log, size_t i) { return log->entries[i].value; }
int32_t ts_sync_log_value_kind(const ts_sync_log *log, size_t i) { return log->entries[i].value_kind; }
const char *ts_sync_log_error(const ts_sync_log *log, size_t i) { return log->entries[i].error; }
const char *ts_sync_log_message(const ts_sync_log *log, size_t i) { return log->entries[i].message; }
uint64_t ts_sync_log_iteration(const ts_sync_log *log, size_t i) { return log->entries[i].iteration; }
int64_t ts_sync_log_time(const ts_sync_log *log, size_t i) { return log->entries[i].time; }
int32_t ts_sync_log_cancelling(const ts_sync_log *log, size_t i) { return log->entries[i].cancelling; }

int ts_sync_compare_mod10(const ca_value *a, const ca_value *b, void *arg) {
    int64_t x = a->u.i % 10, y = b->u.i % 10;
    return (x > y) - (x < y);
}

void ts_sync_count_release(void *p) { (*(int64_t *)p)++; }
