/*
 * run.c — one execution of one scenario (the reference's Run): the loop
 * with its virtual clock, declared objects and their names, the task log,
 * callbacks, idle detection, the final summary and the teardown.
 */
#include "conformance.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reference's limits (a run past them is a runaway scenario). */
#define MAX_ITERATIONS 100000
#define MAX_VIRTUAL_NS (1000000000LL * 1000000LL)
/* Where the far watch waits: just past the time limit. */
#define FAR_WATCH_NS (MAX_VIRTUAL_NS + 1)
/* Beyond every deadline the core can hold (it clamps them to 4e18 ns). */
#define END_WATCH_NS (INT64_MAX / 2)

typedef struct cbrec {
    run *r;
    const cbtag *tag;
} cbrec;

/* MARK: - Failures */

void run_fail(run *r, const char *fmt, ...) {
    if (r->abort_msg == NULL) {
        va_list ap;
        va_start(ap, fmt);
        char buf[512];
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        r->abort_msg = strdup(buf);
    }
    r->closed = true;
    if (r->loop != NULL) ca_loop_stop(r->loop);
}

/* MARK: - Names (object -> the first id declared for it) */

static size_t ptr_hash(const void *p) {
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (size_t)x;
}

int name_find(run *r, const void *obj) {
    if (r->names_cap == 0 || obj == NULL) return -1;
    for (size_t i = ptr_hash(obj) & (r->names_cap - 1);; i = (i + 1) & (r->names_cap - 1)) {
        if (r->names[i].obj == NULL) return -1;
        if (r->names[i].obj == obj) return r->names[i].slot;
    }
}

static void names_insert(name_entry *table, size_t cap, const void *obj, int slot) {
    size_t i = ptr_hash(obj) & (cap - 1);
    while (table[i].obj != NULL) i = (i + 1) & (cap - 1);
    table[i] = (name_entry){obj, slot};
}

void name_add(run *r, const void *obj, int slot) {
    if (obj == NULL || name_find(r, obj) >= 0) return;
    if ((r->names_used + 1) * 2 > r->names_cap) {
        size_t cap = r->names_cap ? r->names_cap * 2 : 64;
        name_entry *t = calloc(cap, sizeof *t);
        if (t == NULL) {
            run_fail(r, "out of memory");
            return;
        }
        for (size_t i = 0; i < r->names_cap; i++)
            if (r->names[i].obj != NULL) names_insert(t, cap, r->names[i].obj, r->names[i].slot);
        free(r->names);
        r->names = t;
        r->names_cap = cap;
    }
    /* The reference keeps every named object alive so no id is reused. */
    names_insert(r->names, r->names_cap, ca_incref((void *)obj), slot);
    r->names_used++;
}

/* MARK: - Declarations */

static const char *const KIND_NAMES[] = {
    [K_NONE] = "nothing", [K_FUTURE] = "future", [K_TASK] = "task", [K_GATHER] = "gather",
    [K_SHIELD] = "shield", [K_CORO] = "coro", [K_WAIT_FOR] = "wait_for", [K_WAIT] = "wait",
    [K_LOCK] = "lock", [K_EVENT] = "event", [K_CONDITION] = "condition", [K_SEMAPHORE] = "semaphore",
    [K_BOUNDED_SEMAPHORE] = "bounded_semaphore", [K_QUEUE] = "queue", [K_HANDLE] = "handle",
    [K_TIMEOUT] = "timeout", [K_TASKGROUP] = "taskgroup",
};

static bool summary_grow(run *r) {
    if (r->nsummary < r->capsummary) return true;
    size_t cap = r->capsummary ? r->capsummary * 2 : 16;
    int *s = realloc(r->summary, cap * sizeof *s);
    if (s == NULL) return false;
    r->summary = s;
    r->capsummary = cap;
    return true;
}

void summary_insert(run *r, size_t at, int slot) {
    if (!summary_grow(r)) {
        run_fail(r, "out of memory");
        return;
    }
    if (at > r->nsummary) at = r->nsummary;
    memmove(r->summary + at + 1, r->summary + at, (r->nsummary - at) * sizeof *r->summary);
    r->summary[at] = slot;
    r->nsummary++;
}

void declare(run *r, int slot, uint8_t kind, void *obj, bool summary) {
    if (r->decls[slot].kind != K_NONE) {
        ca_decref(obj);
        run_fail(r, "id '%s' declared twice", r->scn->ids[slot]);
        return;
    }
    r->decls[slot] = (decl){kind, obj};
    name_add(r, obj, slot);
    if (summary) summary_insert(r, r->nsummary, slot);
}

void *lookup(run *r, int slot, unsigned kinds, uint8_t *kind_out) {
    uint8_t kind = r->decls[slot].kind;
    if (kind == K_NONE) {
        run_fail(r, "unknown id '%s' (not declared yet?)", r->scn->ids[slot]);
        return NULL;
    }
    if (!(kinds & KIND_BIT(kind))) {
        run_fail(r, "'%s' is a %s, of the wrong kind for this op", r->scn->ids[slot], KIND_NAMES[kind]);
        return NULL;
    }
    if (kind_out != NULL) *kind_out = kind;
    return r->decls[slot].obj;
}

/* MARK: - Callbacks (one function object per tag: fn + the tag's record) */

static void soon_callback(void *arg) {
    cbrec *rec = arg;
    run *r = rec->r;
    if (r->closed) return;
    run_touch(r);
    emit(r, rec->tag->actor, "run");
    run_callback_body(r, rec->tag);
}

static void done_callback(ca_future *fut, void *arg) {
    cbrec *rec = arg;
    run *r = rec->r;
    if (r->closed) return;
    run_touch(r);
    const char *name = name_of(r, fut);
    sbuf st = {0};
    state_of(r, &st, fut);
    emit(r, rec->tag->actor, "done %s %s", name != NULL ? name : "?", st.p != NULL ? st.p : "");
    free(st.p);
    run_callback_body(r, rec->tag);
}

ca_done_fn done_callback_fn(void) { return done_callback; }
ca_callback_fn soon_callback_fn(void) { return soon_callback; }

void *callback_arg(run *r, int tag) { return &((cbrec *)r->cbrecs)[tag]; }

/* MARK: - Idle detection
 *
 * The run ends when nothing is ready and no live timer is left (SPEC 2.3),
 * where the loop would block forever. The core's loop has no idle hook, so
 * timers of ours watch for that moment:
 * - the near watch, due 1 ns after the clock at the time it is armed. Our
 *   code re-arms it whenever it runs. No timer of a valid scenario falls
 *   strictly between a jump point and 1 ns later (deadlines are whole
 *   milliseconds), so the first time the ready queue runs empty, the loop
 *   jumps to the near watch before anything else, and it runs alone in its
 *   iteration. If no other timer is left, the run is idle; the clock
 *   before the 1 ns jump is the idle time.
 * - the far watch, just past the time limit, armed when the near watch sees
 *   other timers (ca_loop_timer_count counts cancelled ones too). When it
 *   runs, nothing was live before the limit: with no timer left, the run
 *   was idle since our code last ran.
 * - the end watch, beyond every deadline, for timers left past the limit:
 *   if one is live, our code runs after the limit and the run is a
 *   runaway; if the end watch runs first, they were all cancelled.
 * The watches never run our code between scenario events and create nothing
 * at their shifted times, so every scenario event keeps its exact time.
 */

static void arm(run *r, int64_t when, ca_callback_fn fn, bool *armed) {
    if (*armed) return;
    ca_error *err = ca_loop_call_at(r->loop, when, fn, r, NULL, NULL, NULL);
    if (err != NULL) {
        ca_decref(err);
        run_fail(r, "cannot arm the idle watch");
        return;
    }
    *armed = true;
}

static void became_idle(run *r, int64_t ns) {
    r->idle = true;
    r->idle_ns = ns;
    ca_loop_stop(r->loop);
}

static void end_watch(void *arg) {
    run *r = arg;
    r->watch_iterations++;
    became_idle(r, r->last_ns);
}

static void far_watch(void *arg) {
    run *r = arg;
    r->far_armed = false;
    r->watch_iterations++;
    if (ca_loop_timer_count(r->loop) == 0) {
        became_idle(r, r->last_ns);
    } else {
        bool armed = false;
        arm(r, END_WATCH_NS, end_watch, &armed);
    }
}

static void near_watch(void *arg) {
    run *r = arg;
    r->near_armed = false;
    r->watch_iterations++;
    int64_t ns = ca_loop_time(r->loop) - 1;
    r->last_ns = ns;
    size_t others = ca_loop_timer_count(r->loop) - (r->far_armed ? 1 : 0);
    if (others == 0 && ca_loop_ready_count(r->loop) == 0) became_idle(r, ns);
    else arm(r, FAR_WATCH_NS, far_watch, &r->far_armed);
}

static void arm_near(run *r) { arm(r, ca_loop_time(r->loop) + 1, near_watch, &r->near_armed); }

/* Our code is running: the clock is at a scenario event. */
void run_touch(run *r) {
    if (r->closed) return;
    r->last_ns = ca_loop_time(r->loop);
    if (r->last_ns > MAX_VIRTUAL_NS) run_fail(r, "virtual time limit exceeded");
    else if (ca_loop_iteration_count(r->loop) - r->watch_iterations > MAX_ITERATIONS)
        run_fail(r, "more than %d loop iterations (runaway scenario)", MAX_ITERATIONS);
    else arm_near(r);
}

/* MARK: - The loop's hooks */

static ca_error *record_task(ca_loop *loop, ca_coro *coro, const ca_task_options *opts, void *arg, ca_task **out) {
    run *r = arg;
    ca_error *err = ca_task_new(loop, coro, opts, out);
    if (err != NULL) return err;
    if (r->ntasks == r->captasks) {
        size_t cap = r->captasks ? r->captasks * 2 : 16;
        ca_task **t = realloc(r->tasks, cap * sizeof *t);
        if (t == NULL) {
            run_fail(r, "out of memory");
            return NULL;
        }
        r->tasks = t;
        r->captasks = cap;
    }
    r->tasks[r->ntasks++] = ca_incref(*out);
    return NULL;
}

/* Errors asyncio routes to the handler are not part of the trace. */
static void quiet_handler(ca_loop *loop, const ca_exception_context *context, void *arg) {}
static void quiet_logger(ca_loop *loop, ca_log_level level, const char *message, void *arg) {}

/* MARK: - A run */

/* The task asyncio made for a coroutine (the reference's task_log search). */
static ca_task *task_of_coro(run *r, const void *coro) {
    for (size_t i = 0; i < r->ntasks; i++)
        if ((const void *)ca_task_get_coro(r->tasks[i]) == coro) return r->tasks[i];
    return NULL;
}

static void print_summary(run *r) {
    emit(r, "runner", "idle");
    for (size_t i = 0; i < r->nsummary && !r->closed; i++) {
        int slot = r->summary[i];
        const void *obj = r->decls[slot].obj;
        if (KIND_BIT(r->decls[slot].kind) & COROUTINE_KINDS) {
            obj = task_of_coro(r, obj);
            if (obj == NULL) continue;
        }
        sbuf st = {0};
        state_of(r, &st, obj);
        emit(r, "runner", "final %s %s", r->scn->ids[slot], st.p != NULL ? st.p : "");
        free(st.p);
    }
}

static void run_until_idle(run *r) {
    r->idle = false;
    arm_near(r);
    ca_error *err = ca_loop_run_forever(r->loop);
    if (err != NULL) {
        char what[256];
        ca_error_describe(err, what, sizeof what);
        ca_decref(err);
        run_fail(r, "the loop failed: %s", what);
    }
}

/* Silently cancels what is still pending and lets it unwind (the
 * reference's _cleanup), then releases everything. */
static void teardown(run *r) {
    r->closed = true;
    for (int round = 0; round < 5 && r->abort_msg == NULL; round++) {
        bool pending = false;
        for (size_t i = 0; i < r->ntasks; i++) {
            if (r->tasks[i]->task_state != CA_FUTURE_PENDING) continue;
            pending = true;
            ca_task_cancel(r->tasks[i], NULL);
        }
        /* Plain futures too: a pending child and its gather hold each other. */
        for (size_t i = 0; i < r->scn->nids; i++) {
            decl *d = &r->decls[i];
            if (!(KIND_BIT(d->kind) & (KIND_BIT(K_FUTURE) | KIND_BIT(K_GATHER) | KIND_BIT(K_SHIELD)))) continue;
            if (((ca_future *)d->obj)->fut_state != CA_FUTURE_PENDING) continue;
            pending = true;
            ca_future_cancel(d->obj, NULL);
        }
        if (!pending) break;
        run_until_idle(r);
    }
    ca_decref(ca_loop_close(r->loop));
    for (size_t i = 0; i < r->scn->nids; i++) CA_CLEAR(r->decls[i].obj);
    for (size_t i = 0; i < r->names_cap; i++) ca_decref((void *)r->names[i].obj);
    for (size_t i = 0; i < r->ntasks; i++) ca_decref(r->tasks[i]);
    CA_CLEAR(r->loop);
    free(r->decls);
    free(r->names);
    free(r->tasks);
    free(r->summary);
    free(r->cbrecs);
}

static int execute(scenario *scn, cconf_outcome *out) {
    run r = {0};
    r.scn = scn;
    r.decls = calloc(scn->nids, sizeof *r.decls);
    r.cbrecs = calloc(scn->ntags ? scn->ntags : 1, sizeof(cbrec));
    if (r.decls == NULL || r.cbrecs == NULL) {
        free(r.decls);
        free(r.cbrecs);
        out->message = strdup("out of memory");
        return CCONF_INVALID;
    }
    for (size_t i = 0; i < scn->ntags; i++) ((cbrec *)r.cbrecs)[i] = (cbrec){&r, &scn->tags[i]};

    /* No I/O happens: the light backend is enough. */
    ca_loop_config cfg = {.virtual_clock = true, .backend = CA_BACKEND_EPOLL};
    ca_error *err = ca_loop_new(&cfg, &r.loop);
    if (err != NULL) {
        char what[256];
        ca_error_describe(err, what, sizeof what);
        ca_decref(err);
        free(r.decls);
        free(r.cbrecs);
        size_t n = strlen(what) + 32;
        out->message = malloc(n);
        if (out->message != NULL) snprintf(out->message, n, "cannot create a loop: %s", what);
        return CCONF_INVALID;
    }
    ca_loop_set_exception_handler(r.loop, quiet_handler, &r);
    ca_loop_set_logger(r.loop, quiet_logger, NULL);
    ca_loop_set_task_factory(r.loop, record_task, &r);

    ca_coro *main_coro = interp_new(&r, "main", &scn->main);
    ca_task *main_task = NULL;
    ca_task_options opts = {.name = "main"};
    err = main_coro != NULL ? ca_loop_create_task(r.loop, main_coro, &opts, &main_task)
                            : ca_error_new(&ca_MemoryError, NULL);
    if (err != NULL) {
        ca_decref(err);
        run_fail(&r, "cannot create the main task");
    } else {
        declare(&r, 0, K_TASK, main_task, true);
        run_until_idle(&r);
        if (r.abort_msg == NULL && !r.idle) run_fail(&r, "the loop stopped before the run was idle");
        if (r.abort_msg == NULL) print_summary(&r);
    }
    teardown(&r);
    out->trace_len = r.out.len;
    out->trace = sb_take(&r.out);
    out->message = r.abort_msg;
    return r.abort_msg == NULL ? CCONF_OK : CCONF_INVALID;
}

/* MARK: - Entry points */

int cconf_run_json(const char *text, size_t len, cconf_outcome *out) {
    memset(out, 0, sizeof *out);
    char err[512] = "";
    jv *root = jv_parse(text, len, err, sizeof err);
    int status = CCONF_INVALID;
    if (root != NULL) {
        scenario scn;
        status = scenario_compile(root, &scn, err, sizeof err);
        if (status == CCONF_OK) status = execute(&scn, out);
        scenario_free(&scn);
    }
    if (out->trace == NULL) out->trace = strdup("");
    if (status != CCONF_OK && out->message == NULL) out->message = strdup(err);
    out->status = status;
    return status;
}

int cconf_check_json(const char *text, size_t len, cconf_outcome *out) {
    memset(out, 0, sizeof *out);
    char err[512] = "";
    jv *root = jv_parse(text, len, err, sizeof err);
    int status = CCONF_INVALID;
    if (root != NULL) {
        scenario scn;
        status = scenario_compile(root, &scn, err, sizeof err);
        scenario_free(&scn);
    }
    out->trace = strdup("");
    if (status != CCONF_OK) out->message = strdup(err);
    out->status = status;
    return status;
}

int cconf_run_file(const char *path, cconf_outcome *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    sbuf text = {0};
    if (f != NULL) {
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) sb_putn(&text, buf, n);
        bool failed = ferror(f) != 0;
        fclose(f);
        if (!failed) {
            int status = cconf_run_json(text.p != NULL ? text.p : "", text.len, out);
            free(text.p);
            return status;
        }
    }
    free(text.p);
    size_t n = strlen(path) + 32;
    out->message = malloc(n);
    if (out->message != NULL) snprintf(out->message, n, "%s: cannot read the file", path);
    out->trace = strdup("");
    out->status = CCONF_INVALID;
    return CCONF_INVALID;
}

void cconf_outcome_free(cconf_outcome *out) {
    free(out->trace);
    free(out->message);
    memset(out, 0, sizeof *out);
}
