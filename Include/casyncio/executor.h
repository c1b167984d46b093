/*
 * executor.h — loop.run_in_executor(None, fn) on the loop's default
 * executor (a small thread pool the loop owns), shutdown_default_executor,
 * and loop.getaddrinfo, which resolves names on that pool so the loop
 * thread never waits for DNS (Lib/asyncio/base_events.py).
 *
 * The pool starts its first thread with the first job and grows while jobs
 * wait and no thread is idle, up to min(32, CPUs + 4) threads, as
 * concurrent.futures.ThreadPoolExecutor does. Its threads block every
 * signal (so signal handlers installed with ca_loop_add_signal_handler see
 * them). Results come back through the thread-safe inbox: a job's future
 * is resolved on the loop thread. ca_loop_close joins the threads, after
 * the jobs already running have returned; jobs that had not started are
 * dropped.
 */
#ifndef CASYNCIO_EXECUTOR_H
#define CASYNCIO_EXECUTOR_H

#include <sys/socket.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A job for the executor, run on one of its threads. It stores its result
 * in *result (an owned value; NONE when left alone) and returns NULL, or
 * returns an error (new reference), which becomes the future's exception.
 * It must not touch loop-owned objects (futures, tasks, handles): their
 * reference counts are not atomic.
 */
typedef struct ca_error *(*ca_executor_fn)(void *arg, ca_value *result);

/**
 * run_in_executor(None, fn, arg): runs fn(arg, &result) on the default
 * executor; the returned future (new reference in *out) resolves to the
 * result on the loop thread. Cancelling the future before a thread picked
 * the job up skips the job; once it runs it finishes and its result is
 * dropped. `release` (may be NULL) runs with `arg` on the loop thread once
 * the job is done with it (or skipped, or dropped at close), and on error.
 * Errors: RuntimeError "Event loop is closed", RuntimeError "Executor
 * shutdown has been called", OSError from pthread_create when no thread
 * could be started, MemoryError.
 */
struct ca_error *ca_loop_run_in_executor(ca_loop *loop, ca_executor_fn fn, void *arg, ca_release_fn release,
                                         ca_future **out);

/**
 * shutdown_default_executor(): lets the jobs already queued finish, then
 * stops the threads; the future (new reference) resolves to None once every
 * thread has been joined. Later run_in_executor calls raise RuntimeError.
 * Idempotent. Errors: RuntimeError "Event loop is closed", MemoryError.
 */
struct ca_error *ca_loop_shutdown_default_executor(ca_loop *loop, ca_future **out);

/**
 * The most threads the default executor may start (ThreadPoolExecutor's
 * max_workers; default min(32, CPUs + 4)). Threads already running stay.
 * ValueError unless 1 <= n <= 32; RuntimeError "Event loop is closed";
 * MemoryError.
 */
struct ca_error *ca_loop_set_executor_max_threads(ca_loop *loop, unsigned n);

/** Threads the default executor runs now (tests). */
size_t ca_loop_executor_threads(const ca_loop *loop);

/* MARK: - getaddrinfo */

/** socket.gaierror: an OSError whose err_no is the EAI_* code (negative on
 *  glibc) and whose message is "[Errno -2] Name or service not known". */
extern const ca_error_type ca_gaierror;

/** One entry of a getaddrinfo result: (family, type, proto, canonname,
 *  sockaddr). */
typedef struct ca_addrinfo {
    int family;
    int type;
    int proto;
    char *canonname;   /* owned; NULL unless AI_CANONNAME asked for it */
    struct sockaddr_storage addr;
    socklen_t addrlen;
} ca_addrinfo;

/** getaddrinfo's list, in the resolver's order; a refcounted object. */
typedef struct ca_addrinfo_list {
    ca_object ob_base;
    size_t count;
    ca_addrinfo *items; /* owned */
} ca_addrinfo_list;

extern const ca_type ca_AddrInfoListType;

/**
 * getaddrinfo(host, port, family=, type=, proto=, flags=): resolves on the
 * default executor; the future (new reference in *out) resolves to a
 * ca_addrinfo_list (OBJECT value). Numeric hosts with a numeric or NULL
 * port (and a NULL host) are resolved on the loop thread without a thread
 * hop, as asyncio's _ipaddr_info does; the future is then already done.
 * `host` and `port` are copied. Errors of the future: ca_gaierror with the
 * EAI code (EAI_SYSTEM: the OSError subclass of errno). Returned at once:
 * ValueError when both host and port are NULL, RuntimeError "Event loop is
 * closed", the run_in_executor errors, MemoryError.
 */
struct ca_error *ca_loop_getaddrinfo(ca_loop *loop, const char *host, const char *port, int family, int type,
                                     int proto, int flags, ca_future **out);

/** A gaierror for EAI code `code` (EAI_SYSTEM: an OSError subclass from
 *  `sys_errno`). New reference. */
struct ca_error *ca_error_from_gai(int code, int sys_errno);

#ifdef __cplusplus
}
#endif
#endif
