/*
 * ts_sync.h — a tiny script interpreter the Lock / Event / Condition /
 * Semaphore / Barrier / Queue specification tests drive the C API with.
 *
 * A script is an array of ops run by one kit coroutine (usually as a task):
 * each op acquires, waits, puts, gets, ... on a primitive, and its outcome
 * (value or error, loop iteration, time, cancelling()) is appended to a
 * shared log, so a test reads the interleaving of several tasks the way
 * CPython's tests read their `result` lists. Nothing here keeps global
 * state; tests may run in parallel on different threads.
 */
#ifndef TS_SYNC_H
#define TS_SYNC_H

#include <casyncio/casyncio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ts_sync_kind {
    TS_SYNC_MARK = 0,           /* records `tag` and nothing else */
    TS_SYNC_LOCK_ACQUIRE = 1,   /* await lock.acquire() */
    TS_SYNC_LOCK_RELEASE = 2,   /* lock.release() */
    TS_SYNC_EVENT_WAIT = 3,     /* await event.wait() */
    TS_SYNC_EVENT_SET = 4,
    TS_SYNC_EVENT_CLEAR = 5,
    TS_SYNC_COND_ACQUIRE = 6,   /* await cond.acquire() */
    TS_SYNC_COND_RELEASE = 7,
    TS_SYNC_COND_WAIT = 8,      /* await cond.wait() */
    TS_SYNC_COND_WAIT_FOR = 9,  /* await cond.wait_for(lambda: *(int64_t *)aux != 0) */
    TS_SYNC_COND_NOTIFY = 10,   /* cond.notify(arg) */
    TS_SYNC_COND_NOTIFY_ALL = 11,
    TS_SYNC_SEM_ACQUIRE = 12,   /* await sem.acquire() */
    TS_SYNC_SEM_RELEASE = 13,
    TS_SYNC_BARRIER_WAIT = 14,  /* await barrier.wait() -> index */
    TS_SYNC_BARRIER_RESET = 15, /* await barrier.reset() */
    TS_SYNC_BARRIER_ABORT = 16, /* await barrier.abort() */
    TS_SYNC_PUT = 17,           /* await q.put(arg) (TS_SYNC_LAST: the last value) */
    TS_SYNC_PUT_NOWAIT = 18,    /* q.put_nowait(arg) (TS_SYNC_LAST: the last value) */
    TS_SYNC_GET = 19,           /* await q.get() */
    TS_SYNC_GET_NOWAIT = 20,
    TS_SYNC_JOIN = 21,          /* await q.join() */
    TS_SYNC_TASK_DONE = 22,
    TS_SYNC_SHUTDOWN = 23,      /* q.shutdown(immediate=arg != 0) */
    TS_SYNC_SLEEP = 24,         /* await sleep(arg nanoseconds); 0 is one bare yield */
    TS_SYNC_CANCEL = 25,        /* target (a task).cancel() */
    TS_SYNC_ALLOCS = 26,        /* records the thread's allocation count as the value */
    TS_SYNC_REPEAT = 27,        /* runs the next `tag` ops `arg` times (one level, no nesting) */
} ts_sync_kind;

/* Op flags */
#define TS_SYNC_CATCH 1  /* an error is recorded and the script goes on (else it raises) */
#define TS_SYNC_QUIET 2  /* nothing is recorded unless the op fails */
#define TS_SYNC_LAST 4   /* PUT / PUT_NOWAIT: put the value the last op produced */

typedef struct ts_sync_op {
    int32_t kind;        /* ts_sync_kind */
    int32_t flags;
    void *target;        /* the primitive, queue or task (borrowed; must outlive the script) */
    void *aux;           /* COND_WAIT_FOR: the int64_t flag the predicate reads */
    int64_t arg;
    int64_t tag;         /* copied into the log entry; REPEAT: the body length */
} ts_sync_op;

#define TS_SYNC_LOG_CAP 256
#define TS_SYNC_TEXT 96

/** One completed op. */
typedef struct ts_sync_entry {
    int64_t tag;
    int32_t kind;
    int32_t value_kind;          /* ca_value_kind of the op's value */
    int64_t value;               /* INT value (a DOUBLE is truncated) */
    char error[40];              /* error type name, "" on success */
    char message[TS_SYNC_TEXT];  /* its message, "" when none */
    uint64_t iteration;          /* ca_loop_iteration_count when the op completed */
    int64_t time;                /* ca_loop_time then */
    int32_t cancelling;          /* current task's cancelling() then (-1: no task) */
} ts_sync_entry;

/** A log shared by the scripts of one test. Zero it, then set `loop`. */
typedef struct ts_sync_log {
    ca_loop *loop;
    size_t len;
    size_t dropped;              /* entries that did not fit */
    ts_sync_entry entries[TS_SYNC_LOG_CAP];
} ts_sync_log;

/**
 * A coroutine (new reference; NULL when out of memory) running the `n` ops
 * (copied) and logging into `log`. Returns the value of the last op run
 * (None for ops that produce none). An op without
 * TS_SYNC_CATCH that fails ends the script with its error.
 */
ca_coro *ts_sync_script(const ts_sync_op *ops, size_t n, ts_sync_log *log);

/** Entry accessors for Swift (i < log->len). */
int64_t ts_sync_log_tag(const ts_sync_log *log, size_t i);
int64_t ts_sync_log_value(const ts_sync_log *log, size_t i);
int32_t ts_sync_log_value_kind(const ts_sync_log *log, size_t i);
const char *ts_sync_log_error(const ts_sync_log *log, size_t i);
const char *ts_sync_log_message(const ts_sync_log *log, size_t i);
uint64_t ts_sync_log_iteration(const ts_sync_log *log, size_t i);
int64_t ts_sync_log_time(const ts_sync_log *log, size_t i);
int32_t ts_sync_log_cancelling(const ts_sync_log *log, size_t i);

/** A ca_predicate_fn: true when the int64_t at `arg` is not 0. */
bool ts_sync_flag_set(void *arg);

/** INT items compare by their last decimal digit only (11, 21 and 31 are
 *  equal): a comparator unlike the default order, with ties, for
 *  PriorityQueue tests. */
int ts_sync_compare_mod10(const ca_value *a, const ca_value *b, void *arg);

/** A ca_value destructor that increments the int64_t at `p`. */
void ts_sync_count_release(void *p);

#ifdef __cplusplus
}
#endif
#endif
