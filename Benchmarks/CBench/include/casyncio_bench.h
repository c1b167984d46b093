/*
 * casyncio_bench.h — the benchmark workloads of ../shared/reference/workloads.md,
 * written against the public C API of the core.
 *
 * Each workload creates its own loop (real CLOCK_MONOTONIC clock), runs a
 * warm-up (at least two batches) so freelists, the ready queue and the timer
 * heap reach their steady-state size, then measures N operations: wall time from
 * CLOCK_MONOTONIC and the core's allocations (ca_alloc_stats_get deltas on
 * the calling thread). A workload also checks that the work was really done
 * (every callback ran, every result arrived) and fails when it was not, so a
 * wrong count never passes for a fast one.
 */
#ifndef CASYNCIO_BENCH_H
#define CASYNCIO_BENCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Operations per batch for the batched workloads (workloads.md). */
#define CAB_BATCH 1000

/** What one run of a workload measured. */
typedef struct cab_result {
    uint64_t n;           /* operations measured */
    uint64_t wall_ns;     /* wall time of the measured part */
    uint64_t allocs;      /* core allocations during the measured part */
    uint64_t frees;       /* core frees during the measured part */
    char backend[16];     /* the loop's I/O backend: "io_uring" or "epoll" */
    char error[256];      /* why the run failed, when it returned non-zero */
} cab_result;

/** Allocations per operation of a run (allocs / n). */
static inline double cab_allocs_per_op(const cab_result *r) {
    return r->n == 0 ? 0.0 : (double)r->allocs / (double)r->n;
}

/** Nanoseconds per operation of a run (wall_ns / n). */
static inline double cab_ns_per_op(const cab_result *r) {
    return r->n == 0 ? 0.0 : (double)r->wall_ns / (double)r->n;
}

/*
 * The workloads. Each runs `n` operations (n >= 1) on a fresh loop and fills
 * *out. Returns 0 on success; otherwise -1 with out->error describing the
 * failure (a core error, or a count that came out wrong).
 */

/** Batches of 1000: create futures, add one done callback to each, set_result(i)
 *  on each, run the loop until every callback ran. One op = one future. */
int cab_run_future_callback(uint64_t n, cab_result *out);

/** Batches of 1000: call_soon(cb) 1000 times, run the loop until drained.
 *  One op = one callback. */
int cab_run_call_soon(uint64_t n, cab_result *out);

/** A main task creates batches of 1000 tasks whose coroutine returns i at
 *  once, then awaits them all. One op = one task. */
int cab_run_task_spawn(uint64_t n, cab_result *out);

/** task_spawn with the loop's task factory set to ca_eager_task_factory. */
int cab_run_task_spawn_eager(uint64_t n, cab_result *out);

/** One task awaits ca_sleep(0) n times. One op = one sleep(0). */
int cab_run_sleep0(uint64_t n, cab_result *out);

/** call_later n callbacks with the workloads.md LCG delays in [0, 10 ms),
 *  cancel every other one, run until every live one fired, on the real
 *  clock. The warm-up is a full run of n timers, because the workload is a
 *  single batch of n, with every deadline passed before the loop runs (the
 *  largest ready queue a run can need). One op = one scheduled timer (wall / n). */
int cab_run_timers(uint64_t n, cab_result *out);

/** Two tasks and two unbounded queues: A puts i on q1 and awaits q2.get();
 *  B awaits q1.get() and puts it on q2. One op = one round trip. */
int cab_run_ping_pong(uint64_t n, cab_result *out);

/* MARK: - Registry */

typedef int (*cab_run_fn)(uint64_t n, cab_result *out);

/** One workload as the `bench` executable lists it. */
typedef struct cab_workload {
    const char *name;     /* "call_soon", ... as in workloads.md */
    const char *unit;     /* what one operation is: "callback", "future", ... */
    uint64_t default_n;   /* N of workloads.md */
    cab_run_fn run;
} cab_workload;

/** The workloads in workloads.md order; *count receives how many there are. */
const cab_workload *cab_workloads(size_t *count);

/** The workload called `name`, or NULL. */
const cab_workload *cab_workload_find(const char *name);

#ifdef __cplusplus
}
#endif

/* The TCP echo workload, which runs across processes (bench echo). */
#include "casyncio_echo.h"

#endif
