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

#include <stdbool.h>
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
    uint64_t mallocs;     /* malloc-family calls of the measuring thread (Swift runtime
                             included), when mallocs_counted */
    bool mallocs_counted; /* the process links the counting wrappers (CBenchMalloc) */
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

/** The calling thread's malloc-family calls so far when the process links
 *  the counting wrappers of Benchmarks/CBenchMalloc (the bench does, tests do
 *  not), else 0. */
uint64_t cab_mallocs_now(void);
/** Whether cab_mallocs_now counts (the wrappers are linked and not replaced by a sanitizer). */
bool cab_mallocs_counted(void);

/* MARK: - Latency workloads */

/** CLOCK_MONOTONIC in nanoseconds (the loop's clock). */
uint64_t cab_now_ns(void);

/** A 64-bit store with release order and a load with acquire order, for the
 *  Swift side of the latency workloads (Swift has no C11 atomics of its own
 *  without a package). */
static inline void cab_atomic_store_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint64_t cab_atomic_load_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

/** Options of the latency workloads. Zero fields take the defaults noted. */
typedef struct cab_latency_options {
    uint64_t samples;      /* samples to record (>= 1); timer_lateness stops recording at this many */
    /* wakeup_latency */
    bool busy;             /* keep the loop busy with a stream of call_soon work */
    uint64_t pace_ns;      /* pause between one callback running and the next send (default 200 us, as the peers) */
    /* timer_lateness */
    int connections;       /* echo connections the client holds (default 50) */
    double warmup_s;       /* echo warm-up before recording (default 0.5 s) */
    double duration_s;     /* recording window (default 3 s) */
} cab_latency_options;

/** What a latency workload measured; the samples themselves go to the caller's array. */
typedef struct cab_latency_result {
    uint64_t count;          /* samples written */
    uint64_t echo_requests;  /* timer_lateness: round trips the echo client completed */
    double echo_rps;         /* timer_lateness: the client's requests per second */
    char backend[16];
    char error[256];
} cab_latency_result;

/**
 * wakeup_latency: a second thread sends `samples` callbacks with
 * ca_loop_call_soon_threadsafe, one at a time (it waits for each to run, then
 * pauses pace_ns, so samples never queue), each carrying its send time; the
 * callback stores now - send time in latencies_ns[i]. The loop idles in the
 * backend's wait between samples, or with `busy` runs a stream of call_soon
 * callbacks (16 self-re-queueing chains) the whole time. 1000 warm-up samples
 * are not recorded. `latencies_ns` holds `samples` entries (the caller's).
 * Returns 0, or -1 with out->error set.
 */
int cab_run_wakeup_latency(const cab_latency_options *opts, uint64_t *latencies_ns, cab_latency_result *out);

/**
 * timer_lateness: the loop serves `connections` echo connections (the
 * c-protocol server, data_received -> write) driven by cab_echo_client, 64-byte
 * messages, closed loop, running in a second thread of this process; on the
 * same loop 8 chains of call_at timers re-arm themselves with workloads.md
 * LCG delays in [0, 2 ms). While the client's window is open each firing
 * stores (CLOCK_MONOTONIC at the callback) - deadline in latencies_ns, up to
 * `samples` of them. Returns 0, or -1 with out->error set.
 */
int cab_run_timer_lateness(const cab_latency_options *opts, uint64_t *latencies_ns, cab_latency_result *out);

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
