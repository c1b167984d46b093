/*
 * sleep.c — asyncio.sleep (Lib/asyncio/tasks.py), written with the kit.
 */
#include "internal.h"

#include <math.h>

typedef struct sleep_frame {
    ca_cframe cf;
    double delay;
    ca_value result;
    ca_handle *timer;
} sleep_frame;

static void sleep_finalize(sleep_frame *self) {
    ca_value_clear(&self->result);
    if (self->timer != NULL) {
        ca_handle_cancel(self->timer);
        CA_CLEAR(self->timer);
    }
}

/* futures._set_result_unless_cancelled */
static void set_result_unless_cancelled(void *arg) {
    ca_future *fut = arg;
    if (fut->fut_state != CA_FUTURE_PENDING) return;
    ca_decref(ca_future_set_result(fut, ca_none()));
}

static void release_future(void *arg) { ca_decref(arg); }

static int64_t delay_to_ns(double delay) {
    double ns = delay * 1e9;
    /* round, not truncate: 1.001 s is 1001000000 ns, not one short */
    return ns >= 4e18 ? (int64_t)4e18 : (int64_t)llround(ns);
}

CA_CORO_TYPE(sleep_type, sleep_frame, sleep, sleep_finalize);

CA_CORO_BODY(sleep, sleep_frame) {
    ca_error *err;
    ca_loop *loop;
    ca_future *fut;
    CA_BEGIN;
    if (self->delay <= 0) {
        CA_YIELD();
        CA_RETURN(ca_value_copy(&self->result));
    }
    if (isnan(self->delay)) CA_RAISE(ca_error_new(&ca_ValueError, "Invalid delay: NaN (not a number)"));
    err = ca_get_running_loop_checked(&loop);
    if (err != NULL) CA_RAISE(err);
    fut = ca_loop_create_future(loop);
    if (fut == NULL) CA_RAISE(ca_error_new(&ca_MemoryError, NULL));
    err = ca_loop_call_later(loop, delay_to_ns(self->delay), set_result_unless_cancelled, ca_incref(fut),
                             release_future, NULL, &self->timer);
    if (err != NULL) {
        ca_decref(fut);
        CA_RAISE(err);
    }
    CA_AWAIT_TRY(fut, err);
    /* finally: h.cancel() */
    ca_handle_cancel(self->timer);
    CA_CLEAR(self->timer);
    if (err != NULL) CA_RAISE(err);
    CA_RETURN(ca_value_copy(&self->result));
    CA_END;
}

ca_coro *ca_sleep(double delay, ca_value result) {
    sleep_frame *f = CA_CORO_NEW(sleep_type, sleep_frame);
    if (f == NULL) {
        ca_value_clear(&result);
        return NULL;
    }
    f->delay = delay;
    f->result = result;
    return &f->cf.co;
}
