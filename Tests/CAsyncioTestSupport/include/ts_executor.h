/*
 * ts_executor.h — jobs for the default executor's specification tests
 * (Tests/CAsyncioTests/ExecutorTests.swift): jobs that add, fail, or wait
 * at a gate the test opens, each counting its runs and releases.
 */
#ifndef TS_EXECUTOR_H
#define TS_EXECUTOR_H

#include <casyncio/casyncio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a test job reads and writes; shared with worker threads, so the
 *  counters are atomic (read them with the accessors). */
typedef struct ts_job {
    int64_t a, b;          /* ts_job_add: the result is a + b */
    int gate;              /* ts_job_gated waits until it is non-zero */
    int started;           /* ts_job_gated calls that reached the gate */
    int runs;              /* jobs that ran */
    int releases;          /* releases seen (loop thread) */
    uint64_t worker_tid;   /* the thread the last job ran on */
    const ca_contextvar *var; /* ts_job_record_var: the variable to read */
    int64_t seen;          /* ts_job_record_var: its value (ts_var_int) */
    int runs_after_release; /* ts_job_count_run: runs that came after a release */
    ca_loop *loop;         /* ts_job_remove_signal_handler: the loop */
    int signo;             /* ts_job_remove_signal_handler: the signal */
} ts_job;

/** Result a + b (INT), records the thread. */
ca_error *ts_job_add(void *arg, ca_value *result);
/** Raises ValueError "job failed". */
ca_error *ts_job_fail(void *arg, ca_value *result);
/** Waits until the gate opens, then a + b. */
ca_error *ts_job_gated(void *arg, ca_value *result);
/** A release that counts. */
void ts_job_release(void *arg);

void ts_job_open_gate(ts_job *job);
int ts_job_runs(const ts_job *job);
/** How many ts_job_gated calls are running (waiting at the gate or past it). */
int ts_job_started(const ts_job *job);
/** The calling thread's id, to compare with worker_tid. */
uint64_t ts_thread_self(void);

/** Fills `out` with "family/type/addr" strings of a ca_addrinfo_list held
 *  in a done future's result, separated by '|'; returns the entry count,
 *  or -1 when the future holds no list. */
int ts_addrinfo_describe(ca_future *fut, char *out, size_t size);

/** Blocks `signo` in the calling thread (for signal handler tests). */
int ts_block_signal(int signo);
/** Unblocks `signo` in the calling thread. */
int ts_unblock_signal(int signo);
/** raise(signo). */
int ts_raise(int signo);

#ifdef __cplusplus
}
#endif
#endif

#ifndef TS_SIGNAL_HELPERS
#define TS_SIGNAL_HELPERS
#ifdef __cplusplus
extern "C" {
#endif
/** A loop callback storing ts_var_int(job->var) in job->seen and counting the run. */
void ts_job_record_var(void *arg);
/** A loop callback counting its calls in ((ts_job *)arg)->runs. */
void ts_job_count_run(void *arg);
/** Whether `signo` is blocked in the calling thread. */
bool ts_signal_blocked(int signo);
/** A loop callback removing the handler of job->signo on job->loop and
 *  counting the run. */
void ts_job_remove_signal_handler(void *arg);
/** Installs a process-wide handler for `signo` that counts deliveries;
 *  0 or -errno. */
int ts_signal_count_start(int signo);
/** Restores the disposition ts_signal_count_start replaced; returns the
 *  deliveries counted. */
int ts_signal_count_stop(int signo);
#ifdef __cplusplus
}
#endif
#endif

#ifndef TS_FD_COUNT
#define TS_FD_COUNT
#ifdef __cplusplus
extern "C" {
#endif
/** How many of this process's fds are open on `path` (/proc/self/fd). */
int ts_fds_open_on(const char *path);

/** 1 when a thread of this process is blocked in read(2) on `fd` (from
 *  /proc/self/task/[tid]/syscall), 0 when none is, -1 when the kernel does not
 *  tell. Lets a test wait for a worker to be inside the call instead of
 *  sleeping a guessed time. */
int ts_thread_in_read(int fd);
#ifdef __cplusplus
}
#endif
#endif

#ifndef TS_LATER
#define TS_LATER
#ifdef __cplusplus
extern "C" {
#endif
/** Waits ((ts_job *)arg)->b milliseconds of real time, then a + b. */
ca_error *ts_job_slow(void *arg, ca_value *result);
/** Writes `len` bytes of `data` (copied) to `fd` from a detached thread
 *  after `delay_ms` of real time. 0, or -errno when no thread started. */
int ts_write_later(int fd, const void *data, size_t len, int delay_ms);
#ifdef __cplusplus
}
#endif
#endif
