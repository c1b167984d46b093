/*
 * fixture.c — the scenarios of inspect_fixture.h, written with the coroutine
 * kit. Every await sits on its own line: the inspector shows that line.
 */
#include "inspect_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* MARK: - Shared state of a run */

typedef struct run_state {
    if_scenario sc;
    if_at_rest_fn at_rest;
    void *arg;
    ca_future *gate;              /* main loop: opened at teardown */
    ca_future *shared;            /* the future delta and beta await */
    ca_taskgroup *tg;
    _Atomic(ca_loop *) other_loop;
    ca_future *other_gate;        /* second loop's, touched on its thread only */
    atomic_int other_ready;       /* the second loop is at rest */
    atomic_ullong other_thread;
    size_t many;                  /* if_run_many's n */
    int failures;
} run_state;

static run_state *run; /* one scenario per process at a time */

static uint64_t gettid_u64(void) { return (uint64_t)syscall(SYS_gettid); }

static void add_role(const char *role, ca_task *task) { if_scenario_add_role(&run->sc, role, task); }

static void check(ca_error *err) {
    if (err == NULL) return;
    fprintf(stderr, "inspect-fixture: unexpected error: %s\n", ca_error_message(err));
    run->failures++;
    ca_decref(err);
}

static ca_task *current_task(void) {
    ca_task *t = NULL;
    check(ca_current_task(NULL, &t));
    return t;
}

static ca_task *spawn(ca_loop *loop, ca_coro *coro, const char *name) {
    ca_task_options opts = {.name = name};
    ca_task *t = NULL;
    check(ca_loop_create_task(loop, coro, &opts, &t));
    run->sc.ntasks++;
    return t;
}

/* MARK: - The tree's leaves */

typedef struct leaf_frame {
    ca_cframe cf;
    ca_future *fut; /* what to await (a new reference, taken by the await) */
} leaf_frame;

/* epsilon: shielded by the gathered coroutine; waits for the gate. */
CA_CORO_TYPE(epsilon_type, leaf_frame, epsilon_body, NULL);
CA_CORO_BODY(epsilon_body, leaf_frame) {
    CA_BEGIN;
    CA_AWAIT(ca_incref(run->gate));
    CA_END;
}

/* delta: one of the two tasks awaiting the shared future. */
CA_CORO_TYPE(delta_type, leaf_frame, delta_body, NULL);
CA_CORO_BODY(delta_body, leaf_frame) {
    CA_BEGIN;
    CA_AWAIT(ca_incref(run->shared));
    CA_END;
}

/* beta_inner: the other one, one coroutine below its task. */
CA_CORO_TYPE(beta_inner_type, leaf_frame, beta_inner, NULL);
CA_CORO_BODY(beta_inner, leaf_frame) {
    CA_BEGIN;
    CA_AWAIT(ca_incref(run->shared));
    CA_END;
}

CA_CORO_TYPE(beta_type, leaf_frame, beta_body, NULL);
CA_CORO_BODY(beta_body, leaf_frame) {
    CA_BEGIN;
    CA_AWAIT_CORO(ca_cframe_new(&beta_inner_type, sizeof(leaf_frame)));
    CA_END;
}

/* MARK: - gather and shield */

typedef struct gamma_frame {
    ca_cframe cf;
    ca_task *epsilon;
    ca_future *shielded;
} gamma_frame;

static void gamma_finalize(gamma_frame *f) {
    CA_CLEAR(f->epsilon);
    CA_CLEAR(f->shielded);
}

/* The coroutine alpha gathers (gather wraps it in an auto-named task). */
CA_CORO_TYPE(gamma_type, gamma_frame, gamma_body, gamma_finalize);
CA_CORO_BODY(gamma_body, gamma_frame) {
    CA_BEGIN;
    self->epsilon = spawn(ca_get_running_loop(), ca_cframe_new(&epsilon_type, sizeof(leaf_frame)), "epsilon");
    add_role("epsilon", self->epsilon);
    add_role("gathered", current_task());
    check(ca_shield(self->epsilon, &self->shielded));
    CA_AWAIT(ca_incref(self->shielded));
    CA_END;
}

typedef struct alpha_frame {
    ca_cframe cf;
    ca_task *delta;
    ca_future *gathering;
} alpha_frame;

static void alpha_finalize(alpha_frame *f) {
    CA_CLEAR(f->delta);
    CA_CLEAR(f->gathering);
}

CA_CORO_TYPE(alpha_type, alpha_frame, alpha_body, alpha_finalize);
CA_CORO_BODY(alpha_body, alpha_frame) {
    CA_BEGIN;
    self->delta = spawn(ca_get_running_loop(), ca_cframe_new(&delta_type, sizeof(leaf_frame)), "delta");
    add_role("delta", self->delta);
    {
        ca_coro *gathered = ca_cframe_new(&gamma_type, sizeof(gamma_frame));
        void *aws[2] = {gathered, self->delta};
        check(ca_gather(NULL, aws, 2, false, &self->gathering));
        ca_decref(gathered);
        run->sc.ntasks++;
    }
    CA_AWAIT(ca_incref(self->gathering));
    CA_END;
}

/* MARK: - main: a TaskGroup */

typedef struct main_frame {
    ca_cframe cf;
    ca_task *alpha;
    ca_task *beta;
    ca_error *err;
} main_frame;

static void main_finalize(main_frame *f) {
    CA_CLEAR(f->alpha);
    CA_CLEAR(f->beta);
    CA_CLEAR(f->err);
}

CA_CORO_TYPE(main_type, main_frame, main_body, main_finalize);
CA_CORO_BODY(main_body, main_frame) {
    CA_BEGIN;
    run->tg = ca_taskgroup_new();
    check(ca_taskgroup_enter(run->tg));
    {
        ca_task_options a = {.name = "alpha"}, b = {.name = "beta"};
        check(ca_taskgroup_create_task(run->tg, ca_cframe_new(&alpha_type, sizeof(alpha_frame)), &a, &self->alpha));
        check(ca_taskgroup_create_task(run->tg, ca_cframe_new(&beta_type, sizeof(leaf_frame)), &b, &self->beta));
        run->sc.ntasks += 2;
        add_role("alpha", self->alpha);
        add_role("beta", self->beta);
    }
    CA_AWAIT_CORO_TRY(ca_taskgroup_exit(run->tg, NULL), self->err);
    if (self->err != NULL) {
        ca_error *e = self->err;
        self->err = NULL;
        CA_RAISE(e);
    }
    CA_END;
}

/* MARK: - The second loop's thread */

CA_CORO_TYPE(remote_child_type, leaf_frame, remote_child, NULL);
CA_CORO_BODY(remote_child, leaf_frame) {
    CA_BEGIN;
    CA_AWAIT(ca_incref(run->other_gate));
    CA_END;
}

typedef struct remote_main_frame {
    ca_cframe cf;
    ca_task *child;
} remote_main_frame;

static void remote_main_finalize(remote_main_frame *f) { CA_CLEAR(f->child); }

static void other_at_rest(void *arg) { atomic_store(&run->other_ready, 1); }

CA_CORO_TYPE(remote_main_type, remote_main_frame, remote_main, remote_main_finalize);
CA_CORO_BODY(remote_main, remote_main_frame) {
    CA_BEGIN;
    self->child = spawn(ca_get_running_loop(), ca_cframe_new(&remote_child_type, sizeof(leaf_frame)), "remote-child");
    add_role("remote-child", self->child);
    /* runs after the child's first step, when both are suspended */
    check(ca_loop_call_later(ca_get_running_loop(), 1000000, other_at_rest, NULL, NULL, NULL, NULL));
    CA_AWAIT(ca_incref(self->child));
    CA_END;
}

static void *other_thread_main(void *unused) {
    ca_loop *loop = NULL;
    check(ca_loop_new(NULL, &loop));
    atomic_store(&run->other_thread, gettid_u64());
    run->other_gate = ca_loop_create_future(loop);
    ca_task *t = spawn(loop, ca_cframe_new(&remote_main_type, sizeof(remote_main_frame)), "remote-main");
    add_role("remote-main", t);
    atomic_store(&run->other_loop, loop);
    check(ca_loop_run_until_complete(loop, (ca_future *)t));
    ca_decref(t);
    CA_CLEAR(run->other_gate);
    check(ca_loop_close(loop));
    ca_decref(loop);
    return NULL;
}

static void open_other_gate(void *unused) { check(ca_future_set_result(run->other_gate, ca_none())); }

/* MARK: - The reporter */

typedef struct reporter_frame {
    ca_cframe cf;
    int spins;
} reporter_frame;

static bool at_rest_ready(void) {
    return run->other_loop == NULL || atomic_load(&run->other_ready) != 0;
}

CA_CORO_TYPE(reporter_type, reporter_frame, reporter, NULL);
CA_CORO_BODY(reporter, reporter_frame) {
    CA_BEGIN;
    /* a few iterations let every task reach its await; then wait for the
     * other thread (a sleep, so the loop does not spin) */
    for (self->spins = 0; self->spins < 16; self->spins++) {
        CA_YIELD();
    }
    while (!at_rest_ready()) {
        CA_AWAIT_SLEEP(0.001);
    }
    run->sc.other_thread = atomic_load(&run->other_thread);
    run->sc.other_loop = atomic_load(&run->other_loop);
    run->at_rest(&run->sc, run->arg);
    CA_END;
}

static ca_task *start_reporter(ca_loop *loop) {
    ca_task *t = spawn(loop, ca_cframe_new(&reporter_type, sizeof(reporter_frame)), "reporter");
    add_role("reporter", t);
    return t;
}

/* MARK: - if_run_tree */

static void run_begin(run_state *st, if_at_rest_fn at_rest, void *arg) {
    memset(st, 0, sizeof *st);
    run = st;
    st->at_rest = at_rest;
    st->arg = arg;
    st->sc.main_thread = gettid_u64();
    (void)ca_get_running_loop(); /* registers this thread first: the inspector lists threads in that order */
}

int if_run_tree(if_at_rest_fn at_rest, void *arg) {
    run_state st;
    run_begin(&st, at_rest, arg);
    ca_loop *loop = NULL;
    check(ca_loop_new(NULL, &loop));
    if (loop == NULL) return 1;
    st.sc.main_loop = loop;
    st.gate = ca_loop_create_future(loop);
    st.shared = ca_loop_create_future(loop);
    st.sc.shared = st.shared;

    pthread_t other;
    if (pthread_create(&other, NULL, other_thread_main, NULL) != 0) return 1;
    /* Until the other loop is at rest its tasks spawn and record roles in
     * st.sc, as this thread is about to: wait (ThreadSanitizer saw the
     * two threads write the role list at once). */
    while (atomic_load(&st.other_ready) == 0) usleep(100);

    ca_task *main_task = spawn(loop, ca_cframe_new(&main_type, sizeof(main_frame)), "main");
    add_role("main", main_task);
    ca_task *reporter_task = start_reporter(loop);

    check(ca_loop_run_until_complete(loop, (ca_future *)reporter_task));

    /* teardown: open every gate and let the tree finish */
    check(ca_future_set_result(st.gate, ca_none()));
    check(ca_future_set_result(st.shared, ca_none()));
    check(ca_loop_run_until_complete(loop, (ca_future *)main_task));
    check(ca_loop_call_soon_threadsafe(atomic_load(&st.other_loop), open_other_gate, NULL, NULL));
    pthread_join(other, NULL);

    ca_decref(main_task);
    ca_decref(reporter_task);
    CA_CLEAR(st.tg);
    CA_CLEAR(st.gate);
    CA_CLEAR(st.shared);
    check(ca_loop_close(loop));
    ca_decref(loop);
    run = NULL;
    return st.failures == 0 ? 0 : 1;
}

/* MARK: - if_run_cycle */

typedef struct cycle_frame {
    ca_cframe cf;
    ca_task **other;
} cycle_frame;

static ca_task *cycle_a, *cycle_b;

CA_CORO_TYPE(cycle_type, cycle_frame, cycle_body, NULL);
CA_CORO_BODY(cycle_body, cycle_frame) {
    CA_BEGIN;
    CA_YIELD(); /* both tasks exist before either awaits */
    CA_AWAIT(ca_incref(*self->other));
    CA_END;
}

int if_run_cycle(if_at_rest_fn at_rest, void *arg) {
    static run_state st; /* outlives the call: the tasks are never torn down */
    run_begin(&st, at_rest, arg);
    ca_loop *loop = NULL;
    check(ca_loop_new(NULL, &loop));
    if (loop == NULL) return 1;
    st.sc.main_loop = loop;
    cycle_frame *a = (cycle_frame *)ca_cframe_new(&cycle_type, sizeof(cycle_frame));
    cycle_frame *b = (cycle_frame *)ca_cframe_new(&cycle_type, sizeof(cycle_frame));
    a->other = &cycle_b;
    b->other = &cycle_a;
    cycle_a = spawn(loop, &a->cf.co, "cycle-a");
    cycle_b = spawn(loop, &b->cf.co, "cycle-b");
    add_role("cycle-a", cycle_a);
    add_role("cycle-b", cycle_b);
    ca_task *reporter_task = start_reporter(loop);
    check(ca_loop_run_until_complete(loop, (ca_future *)reporter_task));
    return st.failures == 0 ? 0 : 1;
}

/* MARK: - if_run_many */

CA_CORO_TYPE(many_leaf_type, leaf_frame, many_leaf, NULL);
CA_CORO_BODY(many_leaf, leaf_frame) {
    CA_BEGIN;
    CA_AWAIT(ca_incref(run->gate));
    CA_END;
}

CA_CORO_TYPE(many_worker_type, leaf_frame, many_worker, NULL);
CA_CORO_BODY(many_worker, leaf_frame) {
    CA_BEGIN;
    CA_AWAIT_CORO(ca_cframe_new(&many_leaf_type, sizeof(leaf_frame)));
    CA_END;
}

typedef struct many_main_frame {
    ca_cframe cf;
    ca_future *gathering;
} many_main_frame;

static void many_main_finalize(many_main_frame *f) { CA_CLEAR(f->gathering); }

CA_CORO_TYPE(many_main_type, many_main_frame, many_main, many_main_finalize);
CA_CORO_BODY(many_main, many_main_frame) {
    CA_BEGIN;
    {
        size_t n = run->many;
        void **aws = calloc(n ? n : 1, sizeof *aws);
        for (size_t i = 0; i < n; i++) aws[i] = ca_cframe_new(&many_worker_type, sizeof(leaf_frame));
        check(ca_gather(NULL, aws, n, false, &self->gathering));
        for (size_t i = 0; i < n; i++) ca_decref(aws[i]);
        free(aws);
        run->sc.ntasks += n;
    }
    CA_AWAIT(ca_incref(self->gathering));
    CA_END;
}

int if_run_many(size_t n, if_at_rest_fn at_rest, void *arg) {
    run_state st;
    run_begin(&st, at_rest, arg);
    st.many = n;
    ca_loop *loop = NULL;
    check(ca_loop_new(NULL, &loop));
    if (loop == NULL) return 1;
    st.sc.main_loop = loop;
    st.gate = ca_loop_create_future(loop);
    ca_task *main_task = spawn(loop, ca_cframe_new(&many_main_type, sizeof(many_main_frame)), "main");
    add_role("main", main_task);
    ca_task *reporter_task = start_reporter(loop);
    check(ca_loop_run_until_complete(loop, (ca_future *)reporter_task));
    check(ca_future_set_result(st.gate, ca_none()));
    check(ca_loop_run_until_complete(loop, (ca_future *)main_task));
    ca_decref(main_task);
    ca_decref(reporter_task);
    CA_CLEAR(st.gate);
    check(ca_loop_close(loop));
    ca_decref(loop);
    run = NULL;
    return st.failures == 0 ? 0 : 1;
}

/* MARK: - The report */

static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; s != NULL && *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        if ((unsigned char)*s < 0x20) fprintf(out, "\\u%04x", (unsigned char)*s);
        else fputc(*s, out);
    }
    fputc('"', out);
}

void if_print_report(FILE *out, const if_scenario *sc) {
    fprintf(out, "{\"pid\":%d,\"main_thread\":%llu,\"other_thread\":%llu,\"shared\":\"%p\",\"tasks\":%zu,\"roles\":{",
            (int)getpid(), (unsigned long long)sc->main_thread, (unsigned long long)sc->other_thread,
            (void *)sc->shared, sc->ntasks);
    for (int i = 0; i < sc->nroles; i++) {
        ca_task *t = sc->roles[i].task;
        if (i > 0) fputc(',', out);
        json_string(out, sc->roles[i].role);
        fprintf(out, ":{\"addr\":\"%p\",\"name\":", (void *)t);
        /* the name as stored: formatting "Task-N" here would change it */
        if (t->task_name != NULL) {
            json_string(out, t->task_name);
        } else {
            char buf[32];
            snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)t->task_name_id);
            json_string(out, buf);
        }
        fprintf(out, ",\"thread\":%llu,\"waiting_on\":\"%p\",\"frames\":[", (unsigned long long)t->task_tid,
                (void *)t->task_fut_waiter);
        int k = 0;
        for (ca_coro *c = t->task_coro; c != NULL && c->co_state != CA_CORO_CLOSED; c = c->co_awaiting) {
            if (k++ > 0) fputc(',', out);
            fputc('[', out);
            json_string(out, c->co_name);
            fputc(',', out);
            json_string(out, c->co_filename);
            fprintf(out, ",%d]", c->co_lineno != 0 ? c->co_lineno : c->co_firstlineno);
        }
        fputs("]}", out);
    }
    fputs("}}\n", out);
    fflush(out);
}
