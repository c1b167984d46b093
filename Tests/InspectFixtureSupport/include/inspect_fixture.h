/*
 * inspect_fixture.h — task trees with a known shape, for asyncio-inspect's
 * tests (run in the inspect-fixture child process or in the test process).
 *
 * Each scenario builds its tasks, lets them settle until every task is
 * suspended, then calls `at_rest` from inside a task step of the main loop
 * (the "reporter" task, which is then its thread's running task): nothing
 * changes while it runs. When it returns the scenario releases its tasks and
 * tears down, except the cycle scenario (see if_run_cycle).
 */
#ifndef INSPECT_FIXTURE_H
#define INSPECT_FIXTURE_H

#include <casyncio/casyncio.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IF_MAX_ROLES 16

/** A task the scenario knows by role ("main", "alpha", ...). */
typedef struct if_role {
    const char *role;
    ca_task *task;       /* borrowed, alive while at_rest runs */
} if_role;

typedef struct if_scenario {
    if_role roles[IF_MAX_ROLES];
    int nroles;
    uint64_t main_thread;   /* gettid of the main loop's thread */
    uint64_t other_thread;  /* of the second loop's thread, 0 when none */
    ca_loop *main_loop;
    ca_loop *other_loop;
    ca_future *shared;      /* the plain future two tasks await, or NULL */
    size_t ntasks;          /* tasks the scenario created */
} if_scenario;

typedef void (*if_at_rest_fn)(const if_scenario *sc, void *arg);

/**
 * The tree: on the main loop, task "main" runs a TaskGroup with "alpha" and
 * "beta"; alpha gathers a coroutine (auto-named task) and task "delta"; the
 * gathered coroutine shields task "epsilon"; delta and beta (through the
 * coroutine beta_inner) await the same plain future. On a second thread a
 * second loop runs "remote-main" awaiting "remote-child". "reporter" is
 * the running task. Returns 0 when everything finished cleanly.
 */
int if_run_tree(if_at_rest_fn at_rest, void *arg);

/**
 * Two tasks awaiting each other ("cycle-a" -> "cycle-b" -> "cycle-a"). The
 * cycle cannot be undone (cancelling it recurses forever, as in CPython), so
 * this returns after at_rest without tearing down: call it in a process
 * that exits right after.
 */
int if_run_cycle(if_at_rest_fn at_rest, void *arg);

/** `n` tasks in a gather awaited by "main", each two coroutines deep, all
 *  waiting on one future (for `bench inspect`). */
int if_run_many(size_t n, if_at_rest_fn at_rest, void *arg);

/**
 * The scenario as one JSON line: pid, thread ids, and per role the task's
 * address, the name the inspector should show, its thread and its
 * coroutine stack outermost first ([name, file, line] read in-process; the
 * line is the first line when the coroutine records no await line, as for a
 * Swift body).
 */
void if_print_report(FILE *out, const if_scenario *sc);

/* MARK: - Parts of the Swift fixture (parts.c) */

/** A kit coroutine "c_waiter" awaiting `fut` (the frame keeps a reference).
 *  New reference; NULL when out of memory. */
ca_coro *if_waiter_new(ca_future *fut);

/** A kit coroutine "c_nested" awaiting the coroutine c_waiter(fut). New
 *  reference; NULL when out of memory. */
ca_coro *if_nested_waiter_new(ca_future *fut);

/** Appends a role (`role` must outlive the scenario; `task` is borrowed). */
void if_scenario_add_role(if_scenario *sc, const char *role, ca_task *task);

/** if_print_report to stdout, then waits for a line or EOF on stdin. */
void if_report_and_wait(const if_scenario *sc);

/* MARK: - Layout probes and orphans (probes.c) */

/** Where a bitfield lives: the byte offset in its struct and its bit. */
typedef struct if_bitfield {
    size_t offset;
    uint8_t mask;
} if_bitfield;

/** Found by setting the bit in a zeroed struct and looking for the byte
 *  that changed, so they reflect the compiler's layout, not a formula. */
if_bitfield if_probe_future_log_tb(void);
if_bitfield if_probe_future_blocking(void);
if_bitfield if_probe_task_must_cancel(void);

/** gettid() of the calling thread. */
uint64_t if_gettid(void);

/** Forks; the child reports (as its exit status) how many threads its
 *  registry lists, which must be 1: the forking thread. Returns that count,
 *  or -1 when fork failed. */
int if_registry_threads_after_fork(void);

/** pipe2(fds, O_CLOEXEC), which Swift's Glibc module does not export. */
int if_pipe_cloexec(int fds[2]);

/** Installs an exception handler that drops every report (tests that
 *  abandon pending tasks on purpose). */
void if_silence_loop(ca_loop *loop);

/** A pending task whose thread exited (it moved to the orphan list). */
typedef struct if_orphan {
    ca_loop *loop;
    ca_task *task;
    uint64_t thread_id;  /* of the thread that created it and exited */
} if_orphan;

/** Runs a thread that creates a loop and a task that never runs, then
 *  exits. Returns 0 on success. */
int if_make_orphan(if_orphan *out);

/** Closes the orphan's loop and drops the task (its "destroyed but
 *  pending" report is silenced). */
void if_release_orphan(if_orphan *o);

#ifdef __cplusplus
}
#endif
#endif
