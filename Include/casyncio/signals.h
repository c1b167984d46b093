/*
 * signals.h — loop.add_signal_handler / remove_signal_handler
 * (Lib/asyncio/unix_events.py) through a signalfd the loop reads.
 *
 * Adding a handler blocks the signal in the calling thread and adds it to
 * the loop's signalfd, which is watched like a reader; every signal read
 * from it schedules the handler with call_soon, in the context that was
 * current when the handler was added.
 *
 * The multi-threaded caveat: a signalfd only sees signals that are blocked
 * and pending for the thread reading it or for the whole process. A
 * signal sent to the process (kill(2), a terminal's Ctrl-C) goes to any
 * thread that does not block it, with its default action if that thread
 * does not expect it — so in a program with threads, block the signals the
 * loop handles in every thread (simplest: pthread_sigmask in main() before
 * starting any), or the handler may never run and the process may die.
 * The default executor's threads block every signal. Signals raised for
 * one thread (raise(3), pthread_kill) reach the loop only when that thread
 * runs the loop.
 *
 * The signalfd's read counts as I/O in flight, so a virtual-clock loop with
 * a handler installed waits for timers in real time (see loop.h).
 */
#ifndef CASYNCIO_SIGNALS_H
#define CASYNCIO_SIGNALS_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * add_signal_handler(sig, callback, *args): runs fn(arg) through call_soon
 * whenever `sig` arrives, replacing (and releasing) an earlier handler of
 * `sig`. A call already scheduled when the handler is removed or
 * replaced still runs, as asyncio's Handle does. `release` (may be NULL)
 * runs with `arg` on the loop thread once the handler is removed or
 * replaced (or the loop closes) and no call of it is pending any more, and
 * on error. Errors: ValueError "sig N out of range(1, 65)", TypeError for
 * a NULL fn, RuntimeError "sig 9 cannot be caught" for SIGKILL and SIGSTOP
 * (asyncio's message), RuntimeError "Event loop is closed", OSError from
 * signalfd, MemoryError.
 */
struct ca_error *ca_loop_add_signal_handler(ca_loop *loop, int sig, ca_callback_fn fn, void *arg,
                                            ca_release_fn release);

/**
 * remove_signal_handler(sig): *removed says whether a handler was
 * registered. The signal is unblocked again in the calling thread if
 * add_signal_handler blocked it, so it takes its default action again;
 * an instance that arrived before and was not read yet is discarded (as
 * asyncio drops a signal whose handler is gone) instead of taking that
 * action. Errors: ValueError for a signal out of range.
 */
struct ca_error *ca_loop_remove_signal_handler(ca_loop *loop, int sig, bool *removed);

#ifdef __cplusplus
}
#endif
#endif
