/*
 * sleep0.c — workloads.md `sleep0`: one task awaits sleep(0) N times.
 */
#include "cab_internal.h"

typedef struct sleep0_frame {
    ca_cframe cf;
    uint64_t n;   /* sleeps to await */
    uint64_t i;   /* sleeps awaited so far, checked by the caller */
} sleep0_frame;

CA_CORO_TYPE(sleep0_main_type, sleep0_frame, sleep0_main, NULL);

CA_CORO_BODY(sleep0_main, sleep0_frame) {
    CA_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        CA_AWAIT_SLEEP(0);
    }
    CA_END;
}

/* Runs one task that awaits sleep(0) `n` times. */
static int sleep0_task_run(ca_loop *loop, uint64_t n, cab_meter *meter, cab_result *out) {
    sleep0_frame *frame = CA_CORO_NEW(sleep0_main_type, sleep0_frame);
    if (frame == NULL) return cab_fail(out, "ca_cframe_new returned NULL");
    frame->n = n;
    /* The frame stays alive after the task consumed it, to read the count. */
    ca_incref(frame);

    ca_task *task = NULL;
    ca_task_options opts = {0};
    ca_error *err = ca_task_new(loop, &frame->cf.co, &opts, &task);
    int rc = 0;
    if (err != NULL) {
        rc = cab_fail_error(out, "ca_task_new", err);
        goto done;
    }
    if (meter != NULL) cab_meter_start(meter);
    err = ca_loop_run_until_complete(loop, (ca_future *)task);
    if (meter != NULL) cab_meter_stop(meter, n, out);
    if (err != NULL) {
        rc = cab_fail_error(out, "sleep0 task", err);
    } else if (frame->i != n) {
        rc = cab_fail(out, "the task finished after %llu of %llu sleeps",
                      (unsigned long long)frame->i, (unsigned long long)n);
    }
done:
    ca_decref(task);
    ca_decref(frame);
    return rc;
}

int cab_run_sleep0(uint64_t n, cab_result *out) {
    ca_loop *loop;
    int rc = cab_setup(n, out, &loop);
    /* Two warm-up tasks: what the previous task leaves behind until the
     * loop lets go of it is part of the steady state too. */
    for (int i = 0; rc == 0 && i < 2; i++) rc = sleep0_task_run(loop, CAB_BATCH, NULL, out);
    if (rc == 0) {
        cab_meter meter;
        rc = sleep0_task_run(loop, n, &meter, out);
    }
    cab_teardown(loop);
    return rc;
}
