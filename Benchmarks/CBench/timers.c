/*
 * timers.c — workloads.md `timers`: N call_later callbacks with LCG delays in
 * [0, 10 ms), every other one cancelled at once, the loop run on the real
 * clock until every live one fired.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "cab_internal.h"

/* Warm-up and measured run together take well under a second: one that has
 * not finished after this long has lost timers. */
#define TIMERS_WATCHDOG_NS (10 * 1000000000LL)

/* The LCG's delays are below 10 ms; the warm-up waits a little longer. */
#define TIMERS_ALL_DUE_NS (11 * 1000000LL)

typedef struct timers_state {
    ca_loop *loop;
    uint64_t fired;       /* live callbacks that ran */
    uint64_t live;        /* callbacks expected to run */
    bool cancelled_ran;   /* a cancelled callback ran */
    bool watchdog_fired;
    ca_handle **handles;  /* n handles (owned) */
} timers_state;

static void timers_live_fired(void *arg) {
    timers_state *st = arg;
    if (++st->fired == st->live) ca_loop_stop(st->loop);
}

static void timers_cancelled_fired(void *arg) {
    ((timers_state *)arg)->cancelled_ran = true;
}

static void timers_watchdog(void *arg) {
    timers_state *st = arg;
    st->watchdog_fired = true;
    ca_loop_stop(st->loop);
}

/* The workloads.md LCG: x0 = 1, then Knuth's MMIX constants mod 2^64;
 * delay_ms = ((x >> 33) mod 10000) / 1000, i.e. whole microseconds. */
static int64_t timers_next_delay_ns(uint64_t *x) {
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return (int64_t)((*x >> 33) % 10000) * 1000;
}

static void timers_sleep_ns(int64_t ns) {
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* One full run of `n` timers; measured when `meter` is not NULL. The warm-up
 * run (no meter) lets every deadline pass before the loop runs, so all live
 * timers fall due in one iteration and the ready queue reaches the largest
 * size a measured run can need: on the real clock, how many timers fall due
 * together otherwise depends on the machine's mood. */
static int timers_run_once(timers_state *st, uint64_t n, cab_meter *meter, cab_result *out) {
    ca_error *err;
    st->fired = 0;
    st->live = n - n / 2;
    st->cancelled_ran = false;
    st->watchdog_fired = false;
    int rc = 0;
    uint64_t x = 1;
    uint64_t scheduled = 0;

    if (meter != NULL) cab_meter_start(meter);
    for (; scheduled < n; scheduled++) {
        bool cancel = scheduled % 2 == 1;
        err = ca_loop_call_later(st->loop, timers_next_delay_ns(&x),
                                 cancel ? timers_cancelled_fired : timers_live_fired, st, NULL,
                                 NULL, &st->handles[scheduled]);
        if (err != NULL) {
            rc = cab_fail_error(out, "ca_loop_call_later", err);
            goto done;
        }
    }
    for (uint64_t i = 1; i < n; i += 2) ca_handle_cancel(st->handles[i]);
    if (meter == NULL) timers_sleep_ns(TIMERS_ALL_DUE_NS);
    err = ca_loop_run_forever(st->loop);
    if (meter != NULL) cab_meter_stop(meter, n, out);
    if (err != NULL) {
        rc = cab_fail_error(out, "ca_loop_run_forever", err);
    } else if (st->cancelled_ran) {
        rc = cab_fail(out, "a cancelled timer's callback ran");
    } else if (st->fired != st->live) {
        rc = cab_fail(out, "%llu of %llu live timers fired%s",
                      (unsigned long long)st->fired, (unsigned long long)st->live,
                      st->watchdog_fired ? " before the watchdog" : "");
    }
done:
    for (uint64_t i = 0; i < scheduled; i++) CA_CLEAR(st->handles[i]);
    return rc;
}

int cab_run_timers(uint64_t n, cab_result *out) {
    timers_state st = {0};
    ca_handle *watchdog = NULL;
    int rc = cab_setup(n, out, &st.loop);
    if (rc == 0) {
        /* One watchdog for both runs, so the heap holds the same extra entry
         * in the warm-up and in the measured run. */
        ca_error *err = ca_loop_call_later(st.loop, TIMERS_WATCHDOG_NS, timers_watchdog, &st,
                                           NULL, NULL, &watchdog);
        if (err != NULL) rc = cab_fail_error(out, "ca_loop_call_later(watchdog)", err);
    }
    if (rc == 0) {
        st.handles = calloc(n, sizeof *st.handles);
        if (st.handles == NULL) rc = cab_fail(out, "cannot allocate %llu handle slots",
                                              (unsigned long long)n);
    }
    if (rc == 0) rc = timers_run_once(&st, n, NULL, out);
    if (rc == 0) {
        cab_meter meter;
        rc = timers_run_once(&st, n, &meter, out);
    }
    free(st.handles);
    if (watchdog != NULL) ca_handle_cancel(watchdog);
    ca_decref(watchdog);
    cab_teardown(st.loop);
    return rc;
}
