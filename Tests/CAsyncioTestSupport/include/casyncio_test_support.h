/*
 * casyncio_test_support.h — C coroutines, callbacks and recorders that the
 * Swift specification tests (Tests/CAsyncioTests) drive the C API with.
 *
 * Everything here is test scaffolding: recorders are plain structs the
 * caller allocates, callbacks append to them, and the coroutines are small
 * `async def`s written with the kit of coro.h. Nothing keeps global mutable
 * state, so tests may run in parallel on different threads.
 */
#ifndef CASYNCIO_TEST_SUPPORT_H
#define CASYNCIO_TEST_SUPPORT_H

#include <casyncio/casyncio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MARK: - Error types */

/** A user-defined error type deriving from ValueError ("MyError"). */
extern const ca_error_type ts_MyError;
/** A user-defined StopIteration subclass ("MyStopIteration"). */
extern const ca_error_type ts_MyStopIteration;

/** The error type called `name` (built-in or one of the test types above),
 *  or NULL when unknown. Lets Swift reach the types by address. */
const ca_error_type *ts_error_type(const char *name);

/** ca_error_format(type, fmt, value) — the variadic call Swift cannot make. */
ca_error *ts_error_format_int(const ca_error_type *type, const char *prefix, int value);

/** A ca_value destructor for tests: increments the int that `p` points to. */
void ts_count_dtor(void *p);

/* MARK: - Recording callbacks */

#define TS_REC_CAP 1024

/** An append-only log of values, stamped with the loop's iteration and time. */
typedef struct ts_recorder {
    ca_loop *loop;                    /* borrowed; may be NULL (no stamps) */
    size_t len;
    int64_t values[TS_REC_CAP];
    uint64_t iterations[TS_REC_CAP];
    int64_t times[TS_REC_CAP];
} ts_recorder;

void ts_recorder_init(ts_recorder *rec, ca_loop *loop);
void ts_recorder_append(ts_recorder *rec, int64_t value);
int64_t ts_recorder_value(const ts_recorder *rec, size_t i);
uint64_t ts_recorder_iteration(const ts_recorder *rec, size_t i);
int64_t ts_recorder_time(const ts_recorder *rec, size_t i);

/**
 * The argument of the recording callbacks: appends `value` to `rec` when it
 * runs. Counts runs and releases so tests can check "exactly once".
 */
typedef struct ts_probe {
    ts_recorder *rec;
    int64_t value;
    int runs;
    int releases;
    ca_future *last_future;       /* done callbacks: the future passed in (borrowed) */
    int last_state;               /* that future's state when the callback ran */
    const ca_contextvar *cvar;    /* ts_probe_read_var: the variable to read */
    struct ts_probe *next;        /* ts_probe_schedule_next: scheduled with call_soon */
    ca_loop *loop;                /* ts_probe_schedule_next / ts_probe_stop */
    ca_error *error;              /* an error one of the probe's own calls returned (owned) */
} ts_probe;

void ts_probe_init(ts_probe *p, ts_recorder *rec, int64_t value);
/** Releases what the probe owns (its error). */
void ts_probe_clear(ts_probe *p);

/** ca_callback_fn: records the probe's value. */
void ts_probe_call(void *arg);
/** ca_done_fn: records the probe's value, the future and its state. */
void ts_probe_done(ca_future *fut, void *arg);
/** ca_release_fn: counts the release. */
void ts_probe_release(void *arg);
/** ca_callback_fn: records, then call_soon(next) on `loop` — with
 *  ts_probe_schedule_next again when `next` has a next of its own (a chain),
 *  else with ts_probe_call. */
void ts_probe_schedule_next(void *arg);
/** ca_callback_fn: records the int value of `cvar` in the current context
 *  (-1 when unset, -2 when not an int). */
void ts_probe_read_var(void *arg);
/** ca_done_fn variant of ts_probe_read_var. */
void ts_probe_done_read_var(ca_future *fut, void *arg);
/** ca_callback_fn: records, then stops `loop`. */
void ts_probe_stop(void *arg);
/** ca_callback_fn: sets `cvar` to the probe's value in the current context,
 *  then records it. */
void ts_probe_set_var(void *arg);
/** ca_callback_fn: ca_loop_stop(arg). */
void ts_stop_loop(void *loop);
/** ca_callback_fn: sleeps `*(int64_t *)arg` nanoseconds of wall time. */
void ts_busy_callback(void *arg);

/** Checks that callbacks run in a given sequence (ts_seq_call). */
typedef struct ts_seq_state {
    ca_loop *loop;
    int64_t next;                 /* the value expected next */
    int64_t count;
    int64_t errors;               /* callbacks that ran out of sequence */
} ts_seq_state;

typedef struct ts_seq_arg {
    ts_seq_state *st;
    int64_t value;
    struct ts_seq_arg *then;      /* scheduled with call_soon when this one runs */
} ts_seq_arg;

/** ca_callback_fn: checks `value` is the expected next one, then schedules `then`. */
void ts_seq_call(void *arg);

/** The int value of `var` in the current context; -1 unset, -2 not an int. */
int64_t ts_var_int(const ca_contextvar *var);

/** A context variable with a heap-allocated name (free with ts_contextvar_free
 *  once no context can hold it any more). */
ca_contextvar *ts_contextvar_new(const char *name, bool has_default, int64_t default_value);
void ts_contextvar_free(ca_contextvar *var);

/* MARK: - Exception handler and logger recorders */

#define TS_EXC_CAP 16
#define TS_TEXT_CAP 512

typedef struct ts_exc_entry {
    char message[TS_TEXT_CAP];
    char exc_type[64];            /* "" when the context has no exception */
    char exc_message[TS_TEXT_CAP];
    const void *future;
    const void *task;
    const void *handle;
} ts_exc_entry;

typedef struct ts_exc_recorder {
    int count;                    /* calls, including those beyond the capacity */
    ts_exc_entry entries[TS_EXC_CAP];
} ts_exc_recorder;

/** ca_exception_handler_fn recording into the ts_exc_recorder `arg`. */
void ts_exc_handler(ca_loop *loop, const ca_exception_context *context, void *arg);
const char *ts_exc_message(const ts_exc_recorder *r, int i);
const char *ts_exc_type(const ts_exc_recorder *r, int i);
const void *ts_exc_future(const ts_exc_recorder *r, int i);
const void *ts_exc_task(const ts_exc_recorder *r, int i);

typedef struct ts_log_recorder {
    int count;
    int levels[TS_EXC_CAP];
    char messages[TS_EXC_CAP][TS_TEXT_CAP];
} ts_log_recorder;

/** ca_log_fn recording into the ts_log_recorder `arg`. */
void ts_log_record(ca_loop *loop, ca_log_level level, const char *message, void *arg);
const char *ts_log_message(const ts_log_recorder *r, int i);
int ts_log_level(const ts_log_recorder *r, int i);

/* MARK: - Doing things from inside a running loop */

typedef enum ts_op {
    TS_OP_OBSERVE = 0,            /* record running loop, is_running, current task */
    TS_OP_RUN_FOREVER = 1,        /* ca_loop_run_forever(loop) */
    TS_OP_RUN_UNTIL_COMPLETE = 2, /* ca_loop_run_until_complete(loop, fut) */
    TS_OP_RUN_OTHER = 3,          /* ca_loop_run_forever(other) */
    TS_OP_CLOSE = 4,              /* ca_loop_close(loop) */
    TS_OP_CALL_SOON_FROM_THREAD = 5, /* ca_loop_call_soon(loop) from a new thread, joined */
    TS_OP_CREATE_EAGER_TASK = 6,  /* create_task(coro, eager_start=1) from a callback */
    TS_OP_TASK_API = 7,           /* enter/leave/swap_current_task with task_a and task_b */
    TS_OP_CREATE_TASK_FROM_THREAD = 8, /* ca_task_new(loop, coro) from a new thread, joined */
} ts_op;

/** The argument of ts_inside_call: what to do and what was seen. */
typedef struct ts_inside {
    ca_loop *loop;
    ca_loop *other;
    ca_future *fut;               /* borrowed */
    ca_coro *coro;                /* TS_OP_CREATE_EAGER_TASK: taken when run */
    int op;                       /* ts_op */
    bool ran;
    ca_error *error;              /* the operation's error (owned) */
    ca_loop *running_loop;        /* ca_get_running_loop() */
    ca_loop *checked_loop;        /* ca_get_running_loop_checked() */
    ca_error *checked_error;      /* its error (owned) */
    bool is_running;              /* ca_loop_is_running(loop) */
    ca_task *current_task;        /* ca_current_task(loop) before the op (borrowed) */
    ca_task *current_task_after;  /* ca_current_task(loop) after the op (borrowed) */
    ca_task *task;                /* TS_OP_CREATE_EAGER_TASK: the task (owned) */
    bool task_done_at_once;
    /* TS_OP_TASK_API: enter(a), enter(b), leave(b), leave(a), swap(a), swap(NULL) */
    ca_task *task_a;              /* borrowed */
    ca_task *task_b;              /* borrowed */
    ca_error *enter_a_error;      /* owned, each */
    ca_task *current_after_enter; /* current task right after enter(a) */
    ca_error *enter_b_error;
    ca_error *leave_b_error;
    ca_error *leave_a_error;
    ca_task *current_after_leave;
    ca_error *swap_error;
    ca_task *swap_prev_first;     /* what swap(a) returned */
    ca_task *swap_prev_second;    /* what swap(NULL) returned */
} ts_inside;

/** ca_callback_fn performing `((ts_inside *)arg)->op`. */
void ts_inside_call(void *arg);
/** Releases the errors and task a ts_inside holds. */
void ts_inside_clear(ts_inside *in);

/* MARK: - Threads */

/** What ts_threadsafe_stress observed. */
typedef struct ts_stress_result {
    int64_t ran;                  /* callbacks run */
    int64_t missing;              /* posted callbacks that never ran */
    int64_t duplicated;           /* callbacks that ran more than once */
    int64_t order_violations;     /* a thread's callbacks ran out of posting order */
    int64_t releases;             /* arg_release calls */
    int64_t post_errors;          /* call_soon_threadsafe failures */
    bool timed_out;               /* the safety timer stopped the loop */
} ts_stress_result;

/**
 * Starts `nthreads` threads that each post `per_thread` callbacks with
 * ca_loop_call_soon_threadsafe, runs `loop` (a real-clock loop) on the
 * calling thread until all ran or `timeout_ns` passed, joins the threads.
 */
void ts_threadsafe_stress(ca_loop *loop, int nthreads, int per_thread, int64_t timeout_ns,
                          ts_stress_result *out);

/** What ts_wakeup_rounds observed. */
typedef struct ts_wakeup_result {
    int64_t rounds;               /* rounds completed */
    int64_t stalls;               /* rounds whose callbacks did not all run within the timeout */
    int64_t ran;                  /* callbacks run */
    bool loop_finished;           /* the loop thread stopped at the end */
} ts_wakeup_result;

/**
 * Runs `loop` (real clock, nothing else scheduled) on a thread of its own;
 * for each of `rounds` rounds, `posters` threads post one callback each at
 * the same moment with call_soon_threadsafe while the loop is idle, and the
 * caller waits up to `timeout_ns` for all of them to run (a stall is
 * counted, and the loop nudged, when they do not). Stops the loop at the end.
 */
void ts_wakeup_rounds(ca_loop *loop, int posters, int rounds, int64_t timeout_ns, ts_wakeup_result *out);

/** A loop running ca_loop_run_forever on a thread of its own. */
typedef struct ts_loop_thread ts_loop_thread;

/** Starts the thread and waits until the loop ran its first callback. */
ts_loop_thread *ts_loop_thread_start(ca_loop *loop);
/** Waits up to `timeout_ns` for run_forever to return; true (and the thread
 *  joined) when it did. On false the thread is left running. */
bool ts_loop_thread_join(ts_loop_thread *t, int64_t timeout_ns);
/** The error run_forever returned (owned by the caller after this call). */
ca_error *ts_loop_thread_take_error(ts_loop_thread *t);
/** Frees a joined ts_loop_thread. */
void ts_loop_thread_free(ts_loop_thread *t);

/** Calls ca_loop_call_soon(loop, <no-op>) from a new thread, joins it and
 *  returns the error that call returned. */
ca_error *ts_call_soon_from_thread(ca_loop *loop);
/** ca_task_new(loop, coro (taken)) from a new thread, joined; its error, and
 *  in *task the task made (owned; NULL on error). */
ca_error *ts_create_task_from_thread(ca_loop *loop, ca_coro *coro, ca_task **task);

/**
 * In a child process: a pooled block (an error object) made on this thread
 * and freed by a new thread that allocates nothing itself — is it back with
 * the allocator once that thread has exited? 1 yes, 0 no, -1 the check
 * itself failed.
 */
int ts_exiting_thread_returns_what_it_freed(void);

typedef void *(*ts_block_alloc_fn)(void);
typedef void (*ts_block_free_fn)(void *block);

/**
 * In a child process: a block `alloc` made on this thread, handed to `release`
 * on a new thread by a thread-exit destructor that runs after the thread's
 * first round of destructors (its freelists' exit hooks) — is it back with
 * the allocator once that thread has exited? 1 yes, 0 no (kept by lists
 * nobody will return any more), -1 the check itself failed.
 */
int ts_block_freed_after_thread_exit_is_returned(ts_block_alloc_fn alloc, ts_block_free_fn release);

/** A pooled block of the core (an error object) and its release, for
 *  ts_block_freed_after_thread_exit_is_returned. */
void *ts_core_block_alloc(void);
void ts_core_block_free(void *block);

/**
 * True when another thread has handed `loop` a call (call_soon_threadsafe)
 * that the loop has not taken yet. Call on the loop's thread.
 */
bool ts_loop_has_threadsafe_calls(ca_loop *loop);

/** Calls ca_loop_call_soon_threadsafe(loop, fn, arg, NULL) from a new
 *  thread, joins it and returns the error that call returned. */
ca_error *ts_call_soon_threadsafe_from_thread(ca_loop *loop, ca_callback_fn fn, void *arg);

/** Sleeps `ns` nanoseconds of wall time. */
void ts_sleep_ns(int64_t ns);
/** CLOCK_MONOTONIC in nanoseconds. */
int64_t ts_monotonic_ns(void);

/* MARK: - Futures and factories */

/** A callback-argument release that re-enters the future it was registered
 *  on: the first time it runs it adds ts_probe_done(add_probe) to `fut` and
 *  removes ts_probe_done(remove_probe) from it. */
typedef struct ts_hostile {
    ca_future *fut;               /* borrowed */
    ts_probe *add_probe;          /* may be NULL */
    ts_probe *remove_probe;       /* may be NULL */
    int releases;
    size_t removed;               /* what the nested remove returned */
    ca_error *error;              /* what the nested add returned (owned) */
} ts_hostile;
/** ca_release_fn for a ts_hostile argument. */
void ts_hostile_release(void *arg);
/** ca_done_fn to register with a ts_hostile argument (records nothing). */
void ts_hostile_done(ca_future *fut, void *arg);
/** Releases the error a ts_hostile holds. */
void ts_hostile_clear(ts_hostile *h);

/** A zeroed Future whose initialisation never ran (loop NULL, immortal).
 *  Free with ts_uninit_future_free. */
ca_future *ts_uninit_future_new(void);
void ts_uninit_future_free(ca_future *fut);

/** A ca_task_factory_fn that counts its calls in `*(int *)arg` and creates
 *  a plain Task. */
ca_error *ts_counting_task_factory(ca_loop *loop, ca_coro *coro, const ca_task_options *opts,
                                   void *arg, ca_task **out);

/** A task as a future (Task's head is Future's). */
static inline ca_future *ts_task_future(ca_task *task) { return (ca_future *)task; }

/* MARK: - Coroutines */

/** What a coroutine saw: an error it caught (owned), a value, a flag. */
typedef struct ts_report {
    bool ran;
    bool finished;
    int64_t value;
    ca_error *error;
    int line;
} ts_report;
void ts_report_clear(ts_report *r);

/** What ts_coro_record_task saw while it ran. */
typedef struct ts_task_seen {
    bool ran;
    ca_task *current;             /* current_task() (borrowed) */
    ca_error *current_error;      /* its error (owned) */
    bool in_all_tasks;            /* current task listed by all_tasks() */
    size_t all_tasks_count;
    ca_loop *running_loop;
} ts_task_seen;
void ts_task_seen_clear(ts_task_seen *s);

/** What ts_coro_spawn saw. */
typedef struct ts_spawn_seen {
    ca_task *task;                /* the child task (borrowed, for identity) */
    bool done_at_once;            /* done when create_task returned */
    bool coro_dropped;            /* get_coro() NULL when create_task returned */
    const ca_contextvar *cvar;    /* when set: read in the creator right after create_task */
    int64_t var_after_create;     /* its value there (-1 unset) */
    ca_error *create_error;       /* create_task's error (owned) */
} ts_spawn_seen;
void ts_spawn_seen_clear(ts_spawn_seen *s);

/** `return v` */
ca_coro *ts_coro_return_int(int64_t v);
/** `raise type(msg)` */
ca_coro *ts_coro_raise(const ca_error_type *type, const char *msg);
/** `return (await fut) + 1` (fut: an int result; a new reference is kept). */
ca_coro *ts_coro_await_plus_one(ca_future *fut);
/** `try: return await fut except CancelledError: return on_cancel` */
ca_coro *ts_coro_await_catch_cancel(ca_future *fut, int64_t on_cancel);
/** `try: await fut except BaseException as e: report.error = e`; returns 7
 *  after catching, else the result + 1. */
ca_coro *ts_coro_await_report(ca_future *fut, ts_report *report);
/** `current_task().cancel(); return v` */
ca_coro *ts_coro_cancel_self_then_return(int64_t v);
/** `current_task().cancel(); await sleep(delay)`; report->finished when the
 *  sleep returned normally. */
ca_coro *ts_coro_cancel_self_then_sleep(double delay, ts_report *report);
/** `current_task().cancel(); return await inner` */
ca_coro *ts_coro_cancel_self_then_await(ca_future *inner);
/** `try: await current_task() except BaseException as e: report.error = e`;
 *  returns 7. */
ca_coro *ts_coro_await_self(ts_report *report);
/** `yield fut` without the blocking flag; catches and reports the error
 *  thrown back; returns 7. */
ca_coro *ts_coro_yield_raw(ca_future *fut, ts_report *report);
/** `for i in range(n): await sleep(0)`, storing the loop's iteration count
 *  before the first and after each sleep in iterations[0..n]. Returns n. */
ca_coro *ts_coro_sleep0_times(int n, ca_loop *loop, uint64_t *iterations);
/** The same with CA_AWAIT_SLEEP(0) (the inline bare yield). */
ca_coro *ts_coro_sleep0_inline_times(int n, ca_loop *loop, uint64_t *iterations);
/** Records current_task(), all_tasks() and the running loop into `seen`;
 *  returns 0. */
ca_coro *ts_coro_record_task(ts_task_seen *seen);
/** `var.set(value); await sleep(0); return var.get()` (-1 if unset). */
ca_coro *ts_coro_set_var_then_yield(const ca_contextvar *var, int64_t value);
/** `return var.get()` (-1 if unset). */
ca_coro *ts_coro_read_var(const ca_contextvar *var);
/** `t = loop.create_task(child, eager_start=eager); seen...; return await t` */
ca_coro *ts_coro_spawn(ca_loop *loop, ca_coro *child, int eager, ts_spawn_seen *seen);
/** `return (await inner_coro) + 1` (inner taken). */
ca_coro *ts_coro_await_coro_plus_one(ca_coro *inner);
/** Sends into itself while running; reports the error; returns 7. */
ca_coro *ts_coro_reenter(ts_report *report);
/** `for i in range(n): yield` (bare yields); returns the count kept in the frame. */
ca_coro *ts_coro_count_yields(int n);
/** `return 0`; the frame's finalizer increments *counter. */
ca_coro *ts_coro_finalize_counter(int *counter);
/** `a = await fut; b = await fut; return a + b` */
ca_coro *ts_coro_await_twice(ca_future *fut);
/** `await sleep(0); return v` */
ca_coro *ts_coro_sleep0_then_return(int64_t v);
/** `raise CancelledError(msg)` without anyone calling cancel(). */
ca_coro *ts_coro_raise_cancelled(const char *msg);
/** The source line of the await in a ts_coro_await_plus_one coroutine
 *  (recorded by the body just before it suspends; 0 before that). */
int ts_coro_await_plus_one_line(const ca_coro *coro);

/* MARK: - Allocation measurement */

/** `for i in range(warm + n): await sleep(0)` — with CA_AWAIT_SLEEP(0) when
 *  `inline_sleep`, else by awaiting the ca_sleep(0) coroutine; *allocs
 *  receives the allocations counted over the last n. */
ca_coro *ts_coro_sleep0_measure(int warm, int n, bool inline_sleep, int64_t *allocs);
/** `for i in range(warm + n): checksum += await loop.create_task(return_int(i))`;
 *  *allocs receives the allocations counted over the last n. */
ca_coro *ts_coro_spawn_measure(ca_loop *loop, int warm, int n, int64_t *allocs,
                               int64_t *checksum);

/** Counting done callback / plain callback: increments *(int64_t *)arg. */
void ts_count_done(ca_future *fut, void *arg);
void ts_count_call(void *arg);

#ifdef __cplusplus
}
#endif
#endif
