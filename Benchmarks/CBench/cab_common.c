/*
 * cab_common.c — the meter, loop set-up and failure reports the workloads share.
 */
#include "cab_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The counting malloc wrappers (Benchmarks/CBenchMalloc), when the process links them. */
extern uint64_t cab_malloc_count(void) __attribute__((weak));
extern bool cab_malloc_counting(void) __attribute__((weak));

uint64_t cab_mallocs_now(void) { return cab_malloc_count != NULL ? cab_malloc_count() : 0; }

bool cab_mallocs_counted(void) { return cab_malloc_counting != NULL && cab_malloc_counting(); }

uint64_t cab_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cab_meter_start(cab_meter *m) {
    m->a0 = ca_alloc_stats_get();
    m->m0 = cab_mallocs_now();
    m->t0 = cab_now_ns();
}

void cab_meter_stop(const cab_meter *m, uint64_t n, cab_result *out) {
    uint64_t t1 = cab_now_ns();
    uint64_t m1 = cab_mallocs_now();
    ca_alloc_stats a1 = ca_alloc_stats_get();
    out->n = n;
    out->mallocs = m1 - m->m0;
    out->mallocs_counted = cab_mallocs_counted();
    out->wall_ns = t1 - m->t0;
    out->allocs = a1.allocs - m->a0.allocs;
    out->frees = a1.frees - m->a0.frees;
}

int cab_setup(uint64_t n, cab_result *out, ca_loop **loop) {
    memset(out, 0, sizeof *out);
    *loop = NULL;
    if (n == 0) return cab_fail(out, "N must be at least 1");
    ca_loop_config config = {0};
    ca_error *err = ca_loop_new(&config, loop);
    if (err != NULL) return cab_fail_error(out, "ca_loop_new", err);
    const char *backend = ca_loop_backend_name(*loop);
    snprintf(out->backend, sizeof out->backend, "%s", backend != NULL ? backend : "?");
    return 0;
}

void cab_teardown(ca_loop *loop) {
    if (loop == NULL) return;
    ca_decref(ca_loop_close(loop));
    ca_decref(loop);
}

void cab_describe_error(char *buf, size_t size, const char *what, const ca_error *err) {
    char desc[200];
    ca_error_describe(err, desc, sizeof desc);
    snprintf(buf, size, "%s: %s", what, desc);
}

int cab_fail_error(cab_result *out, const char *what, ca_error *err) {
    cab_describe_error(out->error, sizeof out->error, what, err);
    ca_decref(err);
    return -1;
}

int cab_fail(cab_result *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    return -1;
}

int cab_measure_batches(uint64_t n, cab_batch_fn batch, void *state, cab_result *out) {
    int rc = 0;
    for (int i = 0; rc == 0 && i < CAB_WARMUP_BATCHES; i++) rc = batch(state, CAB_BATCH, out);
    if (rc != 0) return rc;
    cab_meter m;
    cab_meter_start(&m);
    for (uint64_t done = 0; rc == 0 && done < n;) {
        size_t size = cab_batch_size(done, n);
        rc = batch(state, size, out);
        done += size;
    }
    cab_meter_stop(&m, n, out);
    return rc;
}
