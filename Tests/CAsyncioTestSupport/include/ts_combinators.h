/*
 * ts_combinators.h — C coroutines the combinator, timeout and task group
 * specification tests (CombinatorTests, TimeoutTests, TaskGroupTests) run.
 *
 * Each constructor returns a new reference (NULL when out of memory). What a
 * coroutine saw is written to a caller-allocated struct (zero it first) that
 * must outlive the coroutine; the *_clear functions release what it owns.
 */
#ifndef TS_COMBINATORS_H
#define TS_COMBINATORS_H

#include <casyncio/casyncio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A user error type deriving from BaseException but not Exception. */
extern const ca_error_type ts_MyBaseError;
/** &ts_MyBaseError, for Swift. */
const ca_error_type *ts_my_base_error(void);

/** The NaN that stands for "no timeout" (CA_NO_TIMEOUT) for Swift. */
double ts_no_timeout(void);

/** ca_callback_fn: `task.cancel()` for the ca_task `arg` (borrowed). */
void ts_cb_cancel_task(void *task);

/* MARK: - Children */

/**
 * `if delay >= 0: await sleep(delay)`, then `raise raise_type(msg)` when
 * raise_type is not NULL, else `return value` (`msg` is copied, up to 63
 * bytes). ts_cb_sleep_swallow_cancel: a CancelledError at the sleep is
 * swallowed and `cancel_value` returned (else -1).
 */
ca_coro *ts_cb_sleep_then(double delay, int64_t value, const ca_error_type *raise_type, const char *msg);
ca_coro *ts_cb_sleep_swallow_cancel(double delay, int64_t cancel_value);

/** `try: await sleep(delay) finally: await sleep(cleanup)`; raises what the
 *  first sleep raised; returns value. */
ca_coro *ts_cb_sleep_with_cleanup(double delay, double cleanup, int64_t value);

/** `try: await sleep(delay) except CancelledError: await sleep(cleanup);
 *  raise raise_type(msg)`; returns 0 when not cancelled. */
ca_coro *ts_cb_raise_when_cancelled(double delay, double cleanup, const ca_error_type *raise_type, const char *msg);

/** What ts_cb_await saw. */
typedef struct ts_await_seen {
    bool ran;
    bool finished;          /* the await returned a value */
    ca_value value;         /* that value (owned) */
    ca_error *error;        /* the error the await raised (owned) */
    uint64_t iteration;     /* loop iteration when the await completed */
} ts_await_seen;
void ts_await_seen_clear(ts_await_seen *s);

/**
 * `return await aw` for a future (CA_AWAIT) or a coroutine (CA_AWAIT_CORO;
 * `aw` is taken for a coroutine, a new reference is kept for a future),
 * recording the outcome in `seen` (may be NULL) before returning or raising.
 */
ca_coro *ts_cb_await(void *aw, ca_loop *loop, ts_await_seen *seen);

/** A coroutine that calls fn(arg) inside its task's first step, then
 *  returns 0: lets a test run code as "the current task". */
ca_coro *ts_cb_call_in_task(void (*fn)(void *arg), void *arg);

/* MARK: - Timeouts */

/** Which way a ts_cb_timeout body behaves. */
typedef enum ts_tm_body {
    TS_TM_SLEEP = 0,            /* await sleep(sleep) */
    TS_TM_SLEEP_SWALLOW = 1,    /* try: await sleep(sleep) except CancelledError: pass */
    TS_TM_SLEEP_CONVERT = 2,    /* try: await sleep(sleep) except CancelledError as e:
                                 *     raise ValueError("converted") (context e) */
    TS_TM_RAISE = 3,            /* raise ValueError("boom") */
    TS_TM_RESCHEDULE = 4,       /* reschedule(resched_at); await sleep(sleep) */
} ts_tm_body;

/** Script and record of ts_cb_timeout. */
typedef struct ts_tm_script {
    /* in */
    bool use_at;                /* timeout_at(at) instead of timeout(delay) */
    double delay;               /* seconds; ts_no_timeout() for None */
    int64_t at;                 /* loop ns; CA_NO_DEADLINE for None */
    int body;                   /* ts_tm_body */
    double sleep;
    int64_t resched_at;
    bool swallow_cancel_first;  /* cancel self and swallow it before entering */
    /* out */
    ca_timeout *tm;             /* the scope (owned) */
    ca_error *enter_error;      /* owned */
    ca_error *body_error;       /* error at the body's sleep (owned) */
    ca_error *reschedule_error; /* owned */
    ca_error *error;            /* the error leaving the block (owned); also raised */
    bool expired_in_body;       /* expired() right after the body's sleep */
    int cancelling_at_entry;
    int cancelling_after;
    bool finished;
} ts_tm_script;
void ts_tm_script_clear(ts_tm_script *s);

/** `async with timeout(...) as tm: <body>` driven by `s`; returns 0. */
ca_coro *ts_cb_timeout(ts_tm_script *s);

/** Record of ts_cb_nested_timeouts. */
typedef struct ts_nested_seen {
    ca_timeout *outer;          /* owned */
    ca_timeout *inner;          /* owned */
    ca_error *body_error;       /* owned */
    ca_error *inner_error;      /* the error leaving the inner block (owned) */
    ca_error *outer_error;      /* the error leaving the outer block (owned) */
} ts_nested_seen;
void ts_nested_seen_clear(ts_nested_seen *s);

/** `async with timeout(outer): async with timeout(inner): await sleep(sleep)`. */
ca_coro *ts_cb_nested_timeouts(double outer, double inner, double sleep, ts_nested_seen *s);

/* MARK: - Task groups */

#define TS_TG_MAX 8

/** What the body of ts_cb_taskgroup does after spawning its children. */
typedef enum ts_tg_body {
    TS_TG_NOTHING = 0,          /* falls off the end */
    TS_TG_SLEEP = 1,            /* await sleep(body_sleep) */
    TS_TG_SLEEP_THEN_RAISE = 2, /* await sleep(body_sleep); raise body_raise("body") */
    TS_TG_RAISE = 3,            /* raise body_raise("body") at once */
    TS_TG_SLEEP_SPAWN_ON_CANCEL = 4, /* try: await sleep(body_sleep) except CancelledError:
                                 *     tg.create_task(late) (recorded), then re-raise */
    TS_TG_SLEEP_CONVERT = 5,    /* try: await sleep(body_sleep) except CancelledError:
                                 *     raise body_raise("body") */
} ts_tg_body;

/** Script and record of ts_cb_taskgroup. */
typedef struct ts_tg_script {
    /* in */
    size_t nchildren;
    ca_coro *children[TS_TG_MAX];   /* taken by the body (create_task) */
    int eager[TS_TG_MAX];           /* eager_start per child */
    int body;                       /* ts_tg_body */
    double body_sleep;
    const ca_error_type *body_raise;
    ca_coro *late;                  /* TS_TG_SLEEP_SPAWN_ON_CANCEL's child (taken) */
    bool enter_twice;
    /* out */
    ca_taskgroup *tg;               /* owned */
    ca_task *tasks[TS_TG_MAX];      /* owned */
    ca_error *create_errors[TS_TG_MAX]; /* owned */
    ca_error *enter_twice_error;    /* owned */
    ca_error *late_error;           /* owned */
    ca_error *body_error;           /* the error at the body's sleep (owned) */
    ca_error *error;                /* what the block raised (owned); also raised */
    int cancelling_before;
    int cancelling_after;
    size_t awaited_by_parent;       /* children whose awaited_by held the owner, right after spawning */
    bool finished;                  /* the block ended and the coroutine went on */
} ts_tg_script;
void ts_tg_script_clear(ts_tg_script *s);

/** Appends a child (taken) to the script, started with eager_start `eager`. */
void ts_tg_add_child(ts_tg_script *s, ca_coro *child, int eager);
/** The i-th child task (borrowed; NULL when its creation failed). */
ca_task *ts_tg_task(const ts_tg_script *s, size_t i);
/** The error create_task returned for the i-th child (borrowed). */
ca_error *ts_tg_create_error(const ts_tg_script *s, size_t i);

/** `async with TaskGroup() as tg: <spawn children>; <body>` driven by `s`;
 *  returns 0 when the block ended without an error. */
ca_coro *ts_cb_taskgroup(ts_tg_script *s);

/* MARK: - Allocation and error chains */

/** `for i in range(warm + n): await sleep(delay)`; *allocs receives the
 *  allocations counted over the last n. */
ca_coro *ts_cb_sleep_measure(double delay, int warm, int n, int64_t *allocs);

/** The operations ts_cb_measure_op repeats. */
typedef enum ts_cb_op {
    TS_CB_OP_GATHER = 0,    /* await gather(task(return 1), task(return 2)) */
    TS_CB_OP_WAIT = 1,      /* await wait([task(return 1), task(return 2)]) */
    TS_CB_OP_WAIT_FOR = 2,  /* await wait_for(sleep(0), 1.0) */
    TS_CB_OP_TIMEOUT = 3,   /* async with timeout(1.0): await sleep(0) */
    TS_CB_OP_TASKGROUP = 4, /* async with TaskGroup() as tg: 2 x tg.create_task(return n) */
    TS_CB_OP_SHIELD = 5,    /* await shield(task(return 1)) */
} ts_cb_op;

/** `for i in range(warm + n): <op>`; *allocs receives the allocations
 *  counted over the last n; raises the first error an op raised. */
ca_coro *ts_cb_measure_op(int op, int warm, int n, int64_t *allocs);

/** What ts_cb_await_failing_twice saw. */
typedef struct ts_chain_seen {
    ca_error *first;            /* owned */
    ca_error *second;           /* owned */
} ts_chain_seen;
void ts_chain_seen_clear(ts_chain_seen *s);

/** `try: await t except e1: try: await t except e2: (e2.__context__ = e1)`:
 *  re-awaiting a failed task inside the handler of its own error. */
ca_coro *ts_cb_await_failing_twice(ca_future *t, ts_chain_seen *s);

#ifdef __cplusplus
}
#endif
#endif
