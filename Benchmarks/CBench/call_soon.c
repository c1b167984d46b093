/*
 * call_soon.c — workloads.md `call_soon`: batches of 1000 call_soon(cb), then
 * the loop runs until drained.
 */
#include "cab_internal.h"

typedef struct call_soon_state {
    ca_loop *loop;
    uint64_t count; /* callbacks that ran */
} call_soon_state;

static void call_soon_cb(void *arg) {
    ((call_soon_state *)arg)->count++;
}

/* stop() before run_forever() runs exactly one iteration (base_events.py),
 * which must run every callback queued before it: a count that falls short
 * is a core bug, reported instead of waited for. */
static int call_soon_batch(void *state, size_t size, cab_result *out) {
    call_soon_state *st = state;
    uint64_t target = st->count + size;
    for (size_t i = 0; i < size; i++) {
        ca_error *err = ca_loop_call_soon(st->loop, call_soon_cb, st, NULL, NULL, NULL);
        if (err != NULL) return cab_fail_error(out, "ca_loop_call_soon", err);
    }
    ca_loop_stop(st->loop);
    ca_error *err = ca_loop_run_forever(st->loop);
    if (err != NULL) return cab_fail_error(out, "ca_loop_run_forever", err);
    if (st->count != target) {
        return cab_fail(out, "%llu of %zu callbacks ran in one iteration",
                        (unsigned long long)(st->count + size - target), size);
    }
    return 0;
}

int cab_run_call_soon(uint64_t n, cab_result *out) {
    call_soon_state st = {0};
    int rc = cab_setup(n, out, &st.loop);
    if (rc == 0) rc = cab_measure_batches(n, call_soon_batch, &st, out);
    cab_teardown(st.loop);
    return rc;
}
