/*
 * cab_internal.h — what the workload files share: the meter, the loop set-up
 * and the failure reports.
 */
#ifndef CAB_INTERNAL_H
#define CAB_INTERNAL_H

#include <casyncio/casyncio.h>

#include "casyncio_bench.h"

/** A measurement in progress: the clock and the allocation counters at its start. */
typedef struct cab_meter {
    uint64_t t0;
    ca_alloc_stats a0;
    uint64_t m0;
} cab_meter;

/** Starts measuring (read the clock last, so the counters are not timed). */
void cab_meter_start(cab_meter *m);
/** Stops measuring `n` operations and stores wall time and allocation deltas. */
void cab_meter_stop(const cab_meter *m, uint64_t n, cab_result *out);

/** Clears *out, checks n and creates a loop on the real clock. Returns 0 or
 *  -1 with out->error set. */
int cab_setup(uint64_t n, cab_result *out, ca_loop **loop);
/** Closes and releases a loop from cab_setup (NULL is ignored). */
void cab_teardown(ca_loop *loop);

/** Writes "what: Type: message" of `err` (borrowed) into buf[size]. */
void cab_describe_error(char *buf, size_t size, const char *what, const ca_error *err);
/** Records "what: Type: message" in out->error, releases `err` (taken) and
 *  returns -1. */
int cab_fail_error(cab_result *out, const char *what, ca_error *err);
/** Records a formatted failure in out->error and returns -1. */
int cab_fail(cab_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Batches of warm-up: two, because objects of one batch may still be alive
 *  while the next one starts, and the steady state must include that peak. */
#define CAB_WARMUP_BATCHES 2

/** One batch of a batched workload: `size` operations on `state`. */
typedef int (*cab_batch_fn)(void *state, size_t size, cab_result *out);

/** Runs CAB_WARMUP_BATCHES warm-up batches of CAB_BATCH, then measures `n`
 *  operations in batches of CAB_BATCH (the last one shorter). Stops at the
 *  first failure. */
int cab_measure_batches(uint64_t n, cab_batch_fn batch, void *state, cab_result *out);

/** The size of the batch that starts after `done` of `n` operations. */
static inline size_t cab_batch_size(uint64_t done, uint64_t n) {
    uint64_t left = n - done;
    return left < CAB_BATCH ? (size_t)left : CAB_BATCH;
}

/** The c-protocol echo server's protocol factory (echo.c): data_received -> write. */
ca_protocol *cab_echo_protocol_factory(void *arg);

#endif
