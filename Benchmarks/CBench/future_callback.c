/*
 * future_callback.c — workloads.md `future_callback`: batches of 1000 futures,
 * one done callback each, set_result(i) on each, then the loop runs until
 * every callback ran.
 */
#include "cab_internal.h"

typedef struct future_callback_state {
    ca_loop *loop;
    uint64_t count;                /* done callbacks that ran */
    ca_future *futs[CAB_BATCH];    /* the batch's futures (owned) */
} future_callback_state;

static void future_callback_done(ca_future *fut, void *arg) {
    ((future_callback_state *)arg)->count++;
}

/* set_result schedules the callbacks with call_soon, so one iteration
 * (stop() before run_forever()) must run all of them. */
static int future_callback_batch(void *state, size_t size, cab_result *out) {
    future_callback_state *st = state;
    uint64_t target = st->count + size;
    ca_error *err = NULL;
    const char *what = NULL;
    int rc = 0;

    for (size_t i = 0; i < size; i++) {
        st->futs[i] = ca_future_new(st->loop);
        if (st->futs[i] == NULL) {
            rc = cab_fail(out, "ca_future_new returned NULL");
            goto done;
        }
    }
    for (size_t i = 0; i < size && err == NULL; i++) {
        err = ca_future_add_done_callback(st->futs[i], future_callback_done, st, NULL, NULL);
        what = "ca_future_add_done_callback";
    }
    for (size_t i = 0; i < size && err == NULL; i++) {
        err = ca_future_set_result(st->futs[i], ca_int((int64_t)i));
        what = "ca_future_set_result";
    }
    if (err == NULL) {
        ca_loop_stop(st->loop);
        err = ca_loop_run_forever(st->loop);
        what = "ca_loop_run_forever";
    }
    if (err != NULL) {
        rc = cab_fail_error(out, what, err);
    } else if (st->count != target) {
        rc = cab_fail(out, "%llu of %zu done callbacks ran in one iteration",
                      (unsigned long long)(st->count + size - target), size);
    }
done:
    for (size_t i = 0; i < size; i++) CA_CLEAR(st->futs[i]);
    return rc;
}

int cab_run_future_callback(uint64_t n, cab_result *out) {
    future_callback_state st = {0};
    int rc = cab_setup(n, out, &st.loop);
    if (rc == 0) rc = cab_measure_batches(n, future_callback_batch, &st, out);
    cab_teardown(st.loop);
    return rc;
}
