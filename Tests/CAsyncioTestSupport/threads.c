/*
 * threads.c — other threads poking a loop: call_soon_threadsafe stress, a
 * loop running on a thread of its own, and a cross-thread call_soon.
 */
#include "casyncio_test_support.h"

#include <pthread.h>
#include <unistd.h>
#include <sys/wait.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ts_sleep_ns(int64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int64_t ts_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* MARK: - call_soon_threadsafe stress */

typedef struct stress_state stress_state;

typedef struct stress_arg {
    stress_state *st;
    int thread;
    int seq;
} stress_arg;

typedef struct stress_thread {
    pthread_t th;
    stress_state *st;
    int index;
} stress_thread;

struct stress_state {
    ca_loop *loop;
    int nthreads;
    int per_thread;
    int64_t total;
    int64_t ran;               /* loop thread only */
    int *counts;               /* loop thread only */
    int *last_seq;             /* loop thread only */
    int64_t order_violations;  /* loop thread only */
    bool timed_out;            /* loop thread only */
    stress_arg *args;
    atomic_llong releases;
    atomic_llong post_errors;
};

static void stress_cb(void *arg) {
    stress_arg *a = arg;
    stress_state *st = a->st;
    st->counts[a->thread * st->per_thread + a->seq]++;
    if (a->seq <= st->last_seq[a->thread]) st->order_violations++;
    st->last_seq[a->thread] = a->seq;
    if (++st->ran == st->total) ca_loop_stop(st->loop);
}

static void stress_release(void *arg) {
    stress_arg *a = arg;
    atomic_fetch_add(&a->st->releases, 1);
}

static void stress_timeout(void *arg) {
    stress_state *st = arg;
    st->timed_out = true;
    ca_loop_stop(st->loop);
}

static void *stress_poster(void *arg) {
    stress_thread *t = arg;
    stress_state *st = t->st;
    for (int s = 0; s < st->per_thread; s++) {
        stress_arg *a = &st->args[t->index * st->per_thread + s];
        ca_error *err = ca_loop_call_soon_threadsafe(st->loop, stress_cb, a, stress_release);
        if (err != NULL) {
            atomic_fetch_add(&st->post_errors, 1);
            ca_decref(err);
        }
    }
    return NULL;
}

void ts_threadsafe_stress(ca_loop *loop, int nthreads, int per_thread, int64_t timeout_ns,
                          ts_stress_result *out) {
    stress_state st = {0};
    st.loop = loop;
    st.nthreads = nthreads;
    st.per_thread = per_thread;
    st.total = (int64_t)nthreads * per_thread;
    st.counts = calloc((size_t)st.total, sizeof *st.counts);
    st.last_seq = malloc((size_t)nthreads * sizeof *st.last_seq);
    st.args = calloc((size_t)st.total, sizeof *st.args);
    stress_thread *threads = calloc((size_t)nthreads, sizeof *threads);
    atomic_init(&st.releases, 0);
    atomic_init(&st.post_errors, 0);
    for (int t = 0; t < nthreads; t++) {
        st.last_seq[t] = -1;
        for (int s = 0; s < per_thread; s++) {
            st.args[t * per_thread + s] = (stress_arg){&st, t, s};
        }
    }

    ca_handle *timer = NULL;
    ca_error *err = ca_loop_call_later(loop, timeout_ns, stress_timeout, &st, NULL, NULL, &timer);
    ca_decref(err);
    for (int t = 0; t < nthreads; t++) {
        threads[t].st = &st;
        threads[t].index = t;
        pthread_create(&threads[t].th, NULL, stress_poster, &threads[t]);
    }
    err = ca_loop_run_forever(loop);
    ca_decref(err);
    for (int t = 0; t < nthreads; t++) pthread_join(threads[t].th, NULL);
    if (timer != NULL) {
        ca_handle_cancel(timer);
        ca_decref(timer);
    }
    /* Let anything still queued run (and be counted as a duplicate if it
     * ran before) so that no handle outlives `st`. */
    ca_loop_call_soon(loop, ts_stop_loop, loop, NULL, NULL, NULL);
    ca_decref(ca_loop_run_forever(loop));

    out->ran = st.ran;
    out->missing = 0;
    out->duplicated = 0;
    for (int64_t i = 0; i < st.total; i++) {
        if (st.counts[i] == 0) out->missing++;
        if (st.counts[i] > 1) out->duplicated++;
    }
    out->order_violations = st.order_violations;
    out->releases = atomic_load(&st.releases);
    out->post_errors = atomic_load(&st.post_errors);
    out->timed_out = st.timed_out;
    free(threads);
    free(st.args);
    free(st.last_seq);
    free(st.counts);
}

/* MARK: - A loop on its own thread */

struct ts_loop_thread {
    pthread_t th;
    ca_loop *loop;
    atomic_bool started;
    atomic_bool finished;
    ca_error *error;
};

static void loop_thread_started(void *arg) {
    ts_loop_thread *t = arg;
    atomic_store(&t->started, true);
}

static void *loop_thread_main(void *arg) {
    ts_loop_thread *t = arg;
    ca_error *err = ca_loop_call_soon(t->loop, loop_thread_started, t, NULL, NULL, NULL);
    if (err != NULL) {
        t->error = err;
        atomic_store(&t->started, true);
    } else {
        t->error = ca_loop_run_forever(t->loop);
    }
    atomic_store(&t->finished, true);
    return NULL;
}

ts_loop_thread *ts_loop_thread_start(ca_loop *loop) {
    ts_loop_thread *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    t->loop = loop;
    atomic_init(&t->started, false);
    atomic_init(&t->finished, false);
    if (pthread_create(&t->th, NULL, loop_thread_main, t) != 0) {
        free(t);
        return NULL;
    }
    int64_t deadline = ts_monotonic_ns() + 5000000000LL;
    while (!atomic_load(&t->started) && ts_monotonic_ns() < deadline) ts_sleep_ns(1000000);
    return t;
}

bool ts_loop_thread_join(ts_loop_thread *t, int64_t timeout_ns) {
    int64_t deadline = ts_monotonic_ns() + timeout_ns;
    while (!atomic_load(&t->finished)) {
        if (ts_monotonic_ns() >= deadline) return false;
        ts_sleep_ns(1000000);
    }
    pthread_join(t->th, NULL);
    return true;
}

ca_error *ts_loop_thread_take_error(ts_loop_thread *t) {
    ca_error *err = t->error;
    t->error = NULL;
    return err;
}

void ts_loop_thread_free(ts_loop_thread *t) {
    if (t == NULL) return;
    ca_decref(t->error);
    free(t);
}

/* MARK: - call_soon from the wrong thread */

typedef struct wrong_thread_call {
    ca_loop *loop;
    ca_error *error;
} wrong_thread_call;

static void noop_callback(void *arg) { (void)arg; }

static void *wrong_thread_main(void *arg) {
    wrong_thread_call *c = arg;
    c->error = ca_loop_call_soon(c->loop, noop_callback, NULL, NULL, NULL, NULL);
    return NULL;
}

ca_error *ts_call_soon_from_thread(ca_loop *loop) {
    wrong_thread_call c = {loop, NULL};
    pthread_t th;
    if (pthread_create(&th, NULL, wrong_thread_main, &c) != 0) return NULL;
    pthread_join(th, NULL);
    return c.error;
}

typedef struct wrong_thread_task {
    ca_loop *loop;
    ca_coro *coro;
    ca_task *task;
    ca_error *error;
} wrong_thread_task;

static void *wrong_thread_task_main(void *arg) {
    wrong_thread_task *c = arg;
    c->error = ca_task_new(c->loop, c->coro, NULL, &c->task);
    return NULL;
}

ca_error *ts_create_task_from_thread(ca_loop *loop, ca_coro *coro, ca_task **task) {
    wrong_thread_task c = {loop, coro, NULL, NULL};
    *task = NULL;
    pthread_t th;
    if (pthread_create(&th, NULL, wrong_thread_task_main, &c) != 0) return NULL;
    pthread_join(th, NULL);
    *task = c.task;
    return c.error;
}

/* MARK: - call_soon_threadsafe from a fresh thread */

typedef struct foreign_post {
    ca_loop *loop;
    ca_callback_fn fn;
    void *arg;
    ca_error *error;
} foreign_post;

static void *foreign_post_main(void *arg) {
    foreign_post *p = arg;
    p->error = ca_loop_call_soon_threadsafe(p->loop, p->fn, p->arg, NULL);
    return NULL;
}

ca_error *ts_call_soon_threadsafe_from_thread(ca_loop *loop, ca_callback_fn fn, void *arg) {
    foreign_post p = {loop, fn, arg, NULL};
    pthread_t th;
    if (pthread_create(&th, NULL, foreign_post_main, &p) != 0) {
        return ca_error_from_errno(&ca_OSError, 11, "pthread_create");
    }
    pthread_join(th, NULL);
    return p.error;
}

/* MARK: - Wake-up rounds */

typedef struct wake_state {
    ca_loop *loop;
    int posters;
    int rounds;
    pthread_barrier_t start;
    pthread_barrier_t done;
    atomic_llong ran;
} wake_state;

static void wake_count(void *arg) {
    wake_state *st = arg;
    atomic_fetch_add(&st->ran, 1);
}

static void wake_noop(void *arg) { (void)arg; }

static void *wake_poster(void *arg) {
    wake_state *st = arg;
    for (int r = 0; r < st->rounds; r++) {
        pthread_barrier_wait(&st->start);
        ca_decref(ca_loop_call_soon_threadsafe(st->loop, wake_count, st, NULL));
        pthread_barrier_wait(&st->done);
    }
    return NULL;
}

static bool wake_wait(wake_state *st, int64_t target, int64_t timeout_ns) {
    int64_t deadline = ts_monotonic_ns() + timeout_ns;
    while (atomic_load(&st->ran) < target) {
        if (ts_monotonic_ns() >= deadline) return false;
        ts_sleep_ns(20000);
    }
    return true;
}

void ts_wakeup_rounds(ca_loop *loop, int posters, int rounds, int64_t timeout_ns, ts_wakeup_result *out) {
    wake_state st;
    memset(&st, 0, sizeof st);
    st.loop = loop;
    st.posters = posters;
    st.rounds = rounds;
    atomic_init(&st.ran, 0);
    pthread_barrier_init(&st.start, NULL, (unsigned)posters + 1);
    pthread_barrier_init(&st.done, NULL, (unsigned)posters + 1);
    memset(out, 0, sizeof *out);

    ts_loop_thread *lt = ts_loop_thread_start(loop);
    pthread_t *threads = calloc((size_t)posters, sizeof *threads);
    for (int i = 0; i < posters; i++) pthread_create(&threads[i], NULL, wake_poster, &st);
    for (int r = 0; r < rounds; r++) {
        pthread_barrier_wait(&st.start);
        int64_t target = (int64_t)(r + 1) * posters;
        if (!wake_wait(&st, target, timeout_ns)) {
            out->stalls++;
            ca_decref(ca_loop_call_soon_threadsafe(loop, wake_noop, NULL, NULL));
            wake_wait(&st, target, 1000000000LL);
        }
        pthread_barrier_wait(&st.done);
        out->rounds++;
    }
    for (int i = 0; i < posters; i++) pthread_join(threads[i], NULL);
    free(threads);
    out->ran = atomic_load(&st.ran);
    ca_decref(ca_loop_call_soon_threadsafe(loop, ts_stop_loop, loop, NULL));
    out->loop_finished = lt != NULL && ts_loop_thread_join(lt, 5000000000LL);
    if (out->loop_finished) ts_loop_thread_free(lt);
    pthread_barrier_destroy(&st.start);
    pthread_barrier_destroy(&st.done);
}

/* MARK: - Blocks freed by a thread that exits */

static void *_Atomic watched_block;
static atomic_int watched_block_freed;

static void watching_free(void *p) {
    if (p != NULL && p == atomic_load(&watched_block)) atomic_store(&watched_block_freed, 1);
    free(p);
}

static void *drop_reference(void *obj) {
    ca_decref(obj);
    return NULL;
}

/* Runs `check` in a child process with the allocator seam watching frees
 * (the seam is process-wide: set it in a child of our own). `check` exits
 * 0 when the watched block was freed, 1 when not, 2 when it failed. */
static int in_watching_child(void (*check)(void *), void *arg) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        ca_set_allocator(malloc, realloc, watching_free);
        check(arg);
        _exit(2);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) > 1) return -1;
    return WEXITSTATUS(status) == 0 ? 1 : 0;
}

static void check_thread_that_only_frees(void *unused) {
    ca_error *e = ca_error_new(&ca_RuntimeError, "dropped on another thread");
    if (e == NULL) _exit(2);
    atomic_store(&watched_block, (void *)e);
    pthread_t t;
    if (pthread_create(&t, NULL, drop_reference, e) != 0) _exit(2);
    pthread_join(t, NULL); /* returns once its thread-exit hooks ran */
    _exit(atomic_load(&watched_block_freed) ? 0 : 1);
}

int ts_exiting_thread_returns_what_it_freed(void) { return in_watching_child(check_thread_that_only_frees, NULL); }

typedef struct late_free {
    ts_block_alloc_fn alloc;
    ts_block_free_fn release;
    pthread_key_t key;
    int round;
} late_free;

/* A thread-exit destructor that asks for a second round, so that it frees
 * the watched block after every destructor of the first round (the
 * freelists' exit hooks among them) has run, whatever the keys' order. */
static void late_free_destructor(void *arg) {
    late_free *lf = arg;
    if (++lf->round == 1) {
        (void)pthread_setspecific(lf->key, lf);
        return;
    }
    lf->release(atomic_load(&watched_block));
}

static void *free_late(void *arg) {
    late_free *lf = arg;
    lf->release(lf->alloc()); /* the thread's lists now have their exit hook */
    (void)pthread_setspecific(lf->key, lf);
    return NULL;
}

static void check_block_freed_after_exit_hooks(void *arg) {
    late_free *lf = arg;
    void *block = lf->alloc();
    if (block == NULL || pthread_key_create(&lf->key, late_free_destructor) != 0) _exit(2);
    atomic_store(&watched_block, block);
    pthread_t t;
    if (pthread_create(&t, NULL, free_late, lf) != 0) _exit(2);
    pthread_join(t, NULL);
    if (lf->round != 2) _exit(2);
    _exit(atomic_load(&watched_block_freed) ? 0 : 1);
}

void *ts_core_block_alloc(void) { return ca_error_new(&ca_RuntimeError, "freed late"); }
void ts_core_block_free(void *block) { ca_decref(block); }

int ts_block_freed_after_thread_exit_is_returned(ts_block_alloc_fn alloc, ts_block_free_fn release) {
    late_free lf = {.alloc = alloc, .release = release};
    return in_watching_child(check_block_freed_after_exit_hooks, &lf);
}

/* MARK: - Peeking at the inbox */

/* The loop's private layout, for this one look: the producers' end of the
 * inbox has moved past the consumer's last node once a push began. */
#include "../../CSources/CAsyncio/internal.h"

bool ts_loop_has_threadsafe_calls(ca_loop *loop) {
    return atomic_load_explicit(&loop->inbox_head, memory_order_acquire) != loop->inbox_tail;
}
