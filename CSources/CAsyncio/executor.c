/*
 * executor.c — the loop's default executor (run_in_executor(None, ...),
 * concurrent.futures.ThreadPoolExecutor's part in base_events.py) and
 * shutdown_default_executor.
 *
 * A job is a Future subclass. The loop thread owns its object header and
 * future fields; a worker thread touches only fn/arg/result/error, and only
 * between taking the job off the queue and putting it on the done list,
 * both under the executor's mutex. Finished jobs are delivered in batches:
 * the worker that finds the done list empty posts one call_soon_threadsafe,
 * and that callback resolves every job finished meanwhile. Jobs count in
 * loop->io_pending while queued or running, so the loop (virtual clock
 * included) waits in the backend for them instead of assuming it is idle.
 */
#include "executor_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define EXECUTOR_MAX_THREADS_CAP 32

enum { JOB_QUEUED = 0, JOB_RUNNING = 1, JOB_DONE = 2, JOB_DROPPED = 3 };

typedef struct ex_job {
    ca_future fut;
    struct ex_job *next;        /* queue or done list (under the mutex) */
    ca_executor_fn fn;
    void *arg;
    ca_release_fn release;      /* runs on the loop thread */
    ca_value result;            /* written by the worker */
    ca_error *error;            /* written by the worker */
    int state;                  /* JOB_* (under the mutex) */
} ex_job;

struct ca_executor {
    ca_loop *loop;              /* borrowed: the executor lives inside loop->io */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ex_job *q_head, *q_tail;    /* waiting for a thread (each holds a reference) */
    size_t q_len;
    ex_job *done_head, *done_tail; /* finished, waiting for the loop thread */
    bool delivery_posted;       /* a deliver callback is queued in the inbox */
    bool shutdown;              /* no more jobs; threads leave once the queue is empty */
    unsigned idle;              /* threads waiting for a job */
    unsigned running;           /* threads started and not yet exited */
    unsigned nthreads;          /* threads started and not yet joined (loop thread) */
    unsigned max_threads;
    pthread_t threads[EXECUTOR_MAX_THREADS_CAP];
    ca_future *shutdown_waiter; /* shutdown_default_executor's future (loop thread) */
};

static bool ex_job_cancel(ca_future *fut, const char *msg);
static void ex_job_dealloc(ca_object *op);

static const ca_future_type ex_job_type = {
    .ft_base = {"Future", sizeof(ex_job), ex_job_dealloc, &ca_FutureType},
    .ft_cancel = ex_job_cancel,
};

static void ex_job_dealloc(ca_object *op) {
    ex_job *j = (ex_job *)op;
    if (CA_UNLIKELY(j->fut.fut_log_tb)) {
        ca_future_finalize(&j->fut);
        if (op->ob_refcnt > 0) return;
    }
    ca_value_clear(&j->result);
    CA_CLEAR(j->error);
    if (j->release != NULL) j->release(j->arg);
    ca_future_clear_head(&j->fut);
    ca_free(j);
}

/** Runs the job's release now that no thread will use `arg` again. */
static void ex_job_release_arg(ex_job *j) {
    ca_release_fn release = j->release;
    j->release = NULL;
    if (release != NULL) release(j->arg);
}

/* MARK: - Workers */

static void ex_deliver(void *arg);

/** Puts a finished job on the done list and, when the list was empty,
 *  asks the loop thread to collect. Called with the mutex held. */
static void ex_finish_locked(ca_executor *ex, ex_job *j, bool *post) {
    j->state = JOB_DONE;
    j->next = NULL;
    if (ex->done_tail) ex->done_tail->next = j;
    else ex->done_head = j;
    ex->done_tail = j;
    *post = !ex->delivery_posted;
    ex->delivery_posted = true;
}

static void *ex_worker(void *arg) {
    ca_executor *ex = arg;
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        while (ex->q_head == NULL && !ex->shutdown) {
            ex->idle++;
            pthread_cond_wait(&ex->cv, &ex->mu);
            ex->idle--;
        }
        ex_job *j = ex->q_head;
        if (j == NULL) break; /* shut down and nothing left to run */
        ex->q_head = j->next;
        if (ex->q_head == NULL) ex->q_tail = NULL;
        ex->q_len--;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&ex->mu);

        ca_value result = ca_none();
        ca_error *err = j->fn(j->arg, &result);

        pthread_mutex_lock(&ex->mu);
        j->result = result;
        j->error = err;
        bool post = false;
        ex_finish_locked(ex, j, &post);
        if (post) {
            pthread_mutex_unlock(&ex->mu);
            /* after close nobody collects: the loop's close joins us and
             * frees the done list itself */
            ca_decref(ca_loop_call_soon_threadsafe(ex->loop, ex_deliver, ex, NULL));
            pthread_mutex_lock(&ex->mu);
        }
    }
    bool last = --ex->running == 0;
    pthread_mutex_unlock(&ex->mu);
    if (last) ca_decref(ca_loop_call_soon_threadsafe(ex->loop, ex_deliver, ex, NULL));
    return NULL;
}

/** Starts one more thread with every signal blocked, so process signals go
 *  to the threads that expect them. Mutex held. */
static ca_error *ex_spawn_locked(ca_executor *ex) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&ex->threads[ex->nthreads], NULL, ex_worker, ex);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) return ca_error_from_errno(&ca_OSError, rc, "pthread_create");
    ex->nthreads++;
    ex->running++;
    return NULL;
}

/* MARK: - The loop side */

/** Joins the threads once none is running any more (loop thread). */
static void ex_join_exited(ca_executor *ex) {
    for (unsigned i = 0; i < ex->nthreads; i++) pthread_join(ex->threads[i], NULL);
    ex->nthreads = 0;
}

/** Resolves a finished job's future and drops the executor's reference. */
static void ex_job_resolve(ca_loop *loop, ex_job *j) {
    loop->io_pending--;
    if (j->fut.fut_state == CA_FUTURE_PENDING) {
        if (j->error != NULL) {
            ca_decref(ca_future_set_exception_impl(&j->fut, j->error));
        } else {
            ca_value v = j->result;
            j->result = ca_none();
            ca_decref(ca_future_set_result_impl(&j->fut, v));
        }
    }
    ex_job_release_arg(j);
    ca_decref(j);
}

static void ex_deliver(void *arg) {
    ca_executor *ex = arg;
    ca_loop *loop = ex->loop;
    pthread_mutex_lock(&ex->mu);
    ex_job *j = ex->done_head;
    ex->done_head = ex->done_tail = NULL;
    ex->delivery_posted = false;
    bool all_exited = ex->shutdown && ex->running == 0;
    pthread_mutex_unlock(&ex->mu);
    while (j != NULL) {
        ex_job *next = j->next;
        ex_job_resolve(loop, j);
        j = next;
    }
    if (all_exited && ex->nthreads > 0) ex_join_exited(ex);
    if (all_exited && ex->shutdown_waiter != NULL) {
        ca_future *w = ex->shutdown_waiter;
        ex->shutdown_waiter = NULL;
        if (w->fut_state == CA_FUTURE_PENDING) ca_decref(ca_future_set_result_impl(w, ca_none()));
        ca_decref(w);
    }
}

/** Takes a queued job off the queue (the future was cancelled before a
 *  thread took it). Returns whether it was still queued. */
static bool ex_unqueue(ca_executor *ex, ex_job *j) {
    bool found = false;
    pthread_mutex_lock(&ex->mu);
    if (j->state == JOB_QUEUED) {
        ex_job **pp = &ex->q_head, *prev = NULL;
        while (*pp != NULL && *pp != j) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp == j) {
            *pp = j->next;
            if (ex->q_tail == j) ex->q_tail = prev;
            ex->q_len--;
            j->state = JOB_DROPPED;
            found = true;
        }
    }
    pthread_mutex_unlock(&ex->mu);
    return found;
}

static bool ex_job_cancel(ca_future *fut, const char *msg) {
    if (!ca_future_cancel_impl(fut, msg)) return false;
    ca_loop *loop = fut->fut_loop;
    ca_executor *ex = loop->io != NULL ? loop->io->executor : NULL;
    if (ex != NULL && ex_unqueue(ex, (ex_job *)fut)) {
        loop->io_pending--;
        ex_job_release_arg((ex_job *)fut);
        ca_decref(fut); /* the queue's reference */
    }
    return true;
}

static unsigned ex_default_max_threads(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long n = (cpus > 0 ? cpus : 1) + 4;
    return n > EXECUTOR_MAX_THREADS_CAP ? EXECUTOR_MAX_THREADS_CAP : (unsigned)n;
}

static ca_executor *ex_get(ca_loop *loop) {
    ca_io_loop *io = ca_io_loop_get(loop);
    if (io == NULL) return NULL;
    if (io->executor != NULL) return io->executor;
    ca_executor *ex = ca_calloc(1, sizeof *ex);
    if (ex == NULL) return NULL;
    ex->loop = loop;
    ex->max_threads = ex_default_max_threads();
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->cv, NULL);
    io->executor = ex;
    return ex;
}

ca_error *ca_loop_run_in_executor(ca_loop *loop, ca_executor_fn fn, void *arg, ca_release_fn release,
                                  ca_future **out) {
    *out = NULL;
    ca_error *err = NULL;
    ca_executor *ex = NULL;
    if (loop->closed) err = ca_error_new(&ca_RuntimeError, "Event loop is closed");
    else if (fn == NULL) err = ca_error_new(&ca_TypeError, "fn must not be NULL");
    else if ((ex = ex_get(loop)) == NULL) err = ca_error_new(&ca_MemoryError, NULL);
    else if (ex->shutdown) err = ca_error_new(&ca_RuntimeError, "Executor shutdown has been called");
    if (err != NULL) {
        if (release != NULL) release(arg);
        return err;
    }
    ex_job *j = ca_calloc(1, sizeof *j);
    if (j == NULL) {
        if (release != NULL) release(arg);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    ca_object_init(j, &ex_job_type.ft_base);
    ca_future_init_head(&j->fut, loop);
    j->fn = fn;
    j->arg = arg;
    j->release = release;
    j->result = ca_none();

    pthread_mutex_lock(&ex->mu);
    ca_incref(j); /* the queue's reference, dropped on delivery */
    j->next = NULL;
    if (ex->q_tail) ex->q_tail->next = j;
    else ex->q_head = j;
    ex->q_tail = j;
    ex->q_len++;
    if (ex->q_len > ex->idle && ex->nthreads < ex->max_threads) {
        err = ex_spawn_locked(ex);
        if (err != NULL && ex->running > 0) CA_CLEAR(err); /* the threads there will get to it */
    }
    if (err != NULL) {
        /* no thread at all to run it: take it back */
        ex->q_head = ex->q_tail = NULL;
        ex->q_len = 0;
        pthread_mutex_unlock(&ex->mu);
        ca_decref(j);
        ca_decref(j);
        return err;
    }
    pthread_cond_signal(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
    loop->io_pending++;
    *out = &j->fut;
    return NULL;
}

ca_error *ca_loop_shutdown_default_executor(ca_loop *loop, ca_future **out) {
    *out = NULL;
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    ca_executor *ex = ex_get(loop);
    ca_future *f = ca_future_new(loop);
    if (ex == NULL || f == NULL) {
        ca_decref(f);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    pthread_mutex_lock(&ex->mu);
    ex->shutdown = true;
    bool none_running = ex->running == 0;
    pthread_cond_broadcast(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
    if (none_running) {
        /* the last thread's own notice has been delivered or is queued;
         * join what exited and answer now */
        if (ex->nthreads > 0) ex_join_exited(ex);
        ca_decref(ca_future_set_result_impl(f, ca_none()));
    } else if (ex->shutdown_waiter != NULL) {
        /* a second call waits for the same threads */
        ca_decref(f);
        f = ca_incref(ex->shutdown_waiter);
        *out = f;
        return NULL;
    } else {
        ex->shutdown_waiter = ca_incref(f);
    }
    *out = f;
    return NULL;
}

ca_error *ca_loop_set_executor_max_threads(ca_loop *loop, unsigned n) {
    if (n < 1 || n > EXECUTOR_MAX_THREADS_CAP)
        return ca_error_format(&ca_ValueError, "max_workers must be between 1 and %d", EXECUTOR_MAX_THREADS_CAP);
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    ca_executor *ex = ex_get(loop);
    if (ex == NULL) return ca_error_new(&ca_MemoryError, NULL);
    pthread_mutex_lock(&ex->mu);
    ex->max_threads = n;
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

size_t ca_loop_executor_threads(const ca_loop *loop) {
    ca_executor *ex = loop->io != NULL ? loop->io->executor : NULL;
    if (ex == NULL) return 0;
    pthread_mutex_lock(&ex->mu);
    size_t n = ex->running;
    pthread_mutex_unlock(&ex->mu);
    return n;
}

void ca_executor_loop_closed(ca_loop *loop, ca_executor *ex) {
    if (ex == NULL) return;
    pthread_mutex_lock(&ex->mu);
    ex->shutdown = true;
    ex_job *queued = ex->q_head;
    ex->q_head = ex->q_tail = NULL;
    ex->q_len = 0;
    pthread_cond_broadcast(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
    /* jobs already running finish first: their buffers are in use */
    ex_join_exited(ex);
    ex_job *lists[2] = {queued, ex->done_head};
    ex->done_head = ex->done_tail = NULL;
    for (int i = 0; i < 2; i++) {
        for (ex_job *j = lists[i]; j != NULL;) {
            ex_job *next = j->next;
            ex_job_release_arg(j);
            ca_decref(j);
            j = next;
        }
    }
    CA_CLEAR(ex->shutdown_waiter);
    pthread_cond_destroy(&ex->cv);
    pthread_mutex_destroy(&ex->mu);
    ca_free(ex);
}
