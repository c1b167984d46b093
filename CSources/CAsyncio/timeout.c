/*
 * timeout.c — asyncio.Timeout, timeout() and timeout_at(), mirroring
 * Lib/asyncio/timeouts.py (3.14). Deadlines are integer loop nanoseconds
 * instead of float seconds, so a deadline reached by two routes is equal.
 */
#include "combinators_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void timeout_dealloc(ca_object *op);
const ca_type ca_TimeoutType = {"Timeout", sizeof(ca_timeout), timeout_dealloc, NULL};

static const char *const state_names[] = {"created", "active", "expiring", "expired", "finished"};

const char *ca_timeout_state_name(const ca_timeout *tm) { return state_names[tm->state]; }

static ca_error *timeout_alloc(int64_t when, ca_timeout **out) {
    ca_timeout *tm = ca_small_alloc(sizeof *tm);
    if (tm == NULL) {
        *out = NULL;
        return ca_error_new(&ca_MemoryError, NULL);
    }
    memset(tm, 0, sizeof *tm);
    ca_object_init(tm, &ca_TimeoutType);
    tm->state = CA_TIMEOUT_CREATED;
    tm->when = when;
    *out = tm;
    return NULL;
}

ca_error *ca_timeout_new(double delay, ca_timeout **out) {
    *out = NULL;
    ca_loop *loop = ca_get_running_loop();
    if (loop == NULL) return ca_no_running_loop();
    return timeout_alloc(isnan(delay) ? CA_NO_DEADLINE : ca_loop_time(loop) + ca_seconds_to_ns(delay), out);
}

ca_error *ca_timeout_at_new(int64_t when, ca_timeout **out) { return timeout_alloc(when, out); }

int64_t ca_timeout_when(const ca_timeout *tm) { return tm->when; }

bool ca_timeout_expired(const ca_timeout *tm) {
    return tm->state == CA_TIMEOUT_EXPIRING || tm->state == CA_TIMEOUT_EXPIRED;
}

static void timeout_drop_handler(ca_timeout *tm) {
    if (tm->timeout_handler == NULL) return;
    ca_handle_cancel(tm->timeout_handler);
    CA_CLEAR(tm->timeout_handler);
}

/* _on_timeout: the deadline passed inside the scope. */
static void timeout_on_timeout(void *arg) {
    ca_timeout *tm = arg;
    if (tm->state != CA_TIMEOUT_ENTERED) return;
    ca_task_cancel(tm->task, NULL);
    tm->state = CA_TIMEOUT_EXPIRING;
    /* drop the reference early */
    CA_CLEAR(tm->timeout_handler);
}

ca_error *ca_timeout_reschedule(ca_timeout *tm, int64_t when) {
    if (tm->state != CA_TIMEOUT_ENTERED) {
        if (tm->state == CA_TIMEOUT_CREATED) return ca_error_new(&ca_RuntimeError, "Timeout has not been entered");
        return ca_error_format(&ca_RuntimeError, "Cannot change state of %s Timeout", ca_timeout_state_name(tm));
    }
    tm->when = when;
    timeout_drop_handler(tm);
    if (when == CA_NO_DEADLINE) return NULL;
    ca_loop *loop;
    ca_error *err = ca_get_running_loop_checked(&loop);
    if (err != NULL) return err;
    if (when <= ca_loop_time(loop))
        return ca_loop_call_soon(loop, timeout_on_timeout, ca_incref(tm), ca_release_object, NULL,
                                 &tm->timeout_handler);
    return ca_loop_call_at(loop, when, timeout_on_timeout, ca_incref(tm), ca_release_object, NULL,
                           &tm->timeout_handler);
}

size_t ca_timeout_repr(const ca_timeout *tm, char *buf, size_t size) {
    char when[48] = "";
    if (tm->state == CA_TIMEOUT_ENTERED) {
        if (tm->when == CA_NO_DEADLINE) {
            snprintf(when, sizeof when, " when=None");
        } else {
            /* repr(round(when, 3)): drop trailing zeros, keep one decimal. */
            int len = snprintf(when, sizeof when, " when=%.3f", (double)tm->when / 1e9);
            while (len > 0 && when[len - 1] == '0' && when[len - 2] != '.') when[--len] = '\0';
        }
    }
    int n = snprintf(buf, size, "<Timeout [%s]%s>", ca_timeout_state_name(tm), when);
    return n < 0 ? 0 : (size_t)n;
}

ca_error *ca_timeout_enter(ca_timeout *tm) {
    if (tm->state != CA_TIMEOUT_CREATED) return ca_error_new(&ca_RuntimeError, "Timeout has already been entered");
    ca_task *task;
    ca_error *err = ca_current_task(NULL, &task);
    if (err != NULL) return err;
    if (task == NULL) return ca_error_new(&ca_RuntimeError, "Timeout should be used inside a task");
    tm->state = CA_TIMEOUT_ENTERED;
    tm->task = ca_incref(task);
    tm->cancelling = ca_task_cancelling(task);
    return ca_timeout_reschedule(tm, tm->when);
}

/* _insert_timeout_error: puts a TimeoutError in front of the first
 * CancelledError of exc's context chain. */
static void insert_timeout_error(ca_error *exc) {
    for (; exc->context != NULL; exc = exc->context) {
        if (!ca_error_matches(exc->context, &ca_CancelledError)) continue;
        ca_error *te = ca_error_new(&ca_TimeoutError, NULL);
        ca_error_set_context(te, exc->context);
        ca_error_set_cause(te, exc->context);
        /* `te.__cause__ = ...` by assignment leaves __suppress_context__
         * False; only `raise ... from` sets it. */
        if (te->type == &ca_TimeoutError) te->suppress_context = false;
        ca_error_set_context(exc, te);
        ca_decref(te);
        return;
    }
}

ca_error *ca_timeout_exit(ca_timeout *tm, ca_error *exc) {
    if (tm->state != CA_TIMEOUT_ENTERED && tm->state != CA_TIMEOUT_EXPIRING) {
        ca_error *err = ca_error_new(&ca_RuntimeError, tm->state == CA_TIMEOUT_CREATED
                                                           ? "Timeout has not been entered"
                                                           : "Timeout has already been exited");
        ca_error_set_context(err, exc);
        ca_decref(exc);
        return err;
    }
    timeout_drop_handler(tm);
    ca_task *task = tm->task;
    tm->task = NULL; /* the scope is over: do not keep the task (and its frame) alive */
    if (tm->state == CA_TIMEOUT_EXPIRING) {
        tm->state = CA_TIMEOUT_EXPIRED;
        if (ca_task_uncancel(task) <= tm->cancelling && exc != NULL) {
            /* Since there are no new cancel requests, we're handling this. */
            if (ca_error_matches(exc, &ca_CancelledError)) {
                ca_error *te = ca_error_new(&ca_TimeoutError, NULL);
                ca_error_set_context(te, exc);
                ca_error_set_cause(te, exc);
                ca_decref(exc);
                exc = te;
            } else {
                insert_timeout_error(exc);
                if (ca_error_matches(exc, &ca_ExceptionGroup)) {
                    for (size_t i = 0; i < exc->nchildren; i++) insert_timeout_error(exc->children[i]);
                }
            }
        }
    } else {
        tm->state = CA_TIMEOUT_EXITED;
    }
    ca_decref(task);
    return exc;
}

static void timeout_dealloc(ca_object *op) {
    ca_timeout *tm = (ca_timeout *)op;
    timeout_drop_handler(tm);
    CA_CLEAR(tm->task);
    ca_small_free(tm, sizeof *tm);
}
