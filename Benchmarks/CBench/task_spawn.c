/*
 * task_spawn.c — workloads.md `task_spawn` and `task_spawn_eager`: a main
 * task creates batches of 1000 tasks whose coroutine returns i at once, then
 * awaits all of them; the eager variant sets ca_eager_task_factory.
 */
#include "cab_internal.h"

/* MARK: - The child: `async def child(i): return i` */

typedef struct task_spawn_child_frame {
    ca_cframe cf;
    int64_t i;
} task_spawn_child_frame;

CA_CORO_TYPE(task_spawn_child_type, task_spawn_child_frame, task_spawn_child, NULL);

/* Returns before its first await, so it needs no CA_BEGIN/CA_END. */
CA_CORO_BODY(task_spawn_child, task_spawn_child_frame) {
    CA_RETURN(ca_int(self->i));
}

/* MARK: - The main coroutine */

typedef struct task_spawn_main_frame {
    ca_cframe cf;
    ca_loop *loop;
    uint64_t n;                  /* tasks to spawn */
    uint64_t done;               /* tasks spawned and awaited so far */
    size_t batch;                /* size of the current batch */
    size_t i;                    /* the task being awaited */
    int64_t sum;                 /* sum of the results, checked by the caller */
    ca_task *tasks[CAB_BATCH];   /* the current batch (owned until awaited) */
} task_spawn_main_frame;

static void task_spawn_main_finalize(task_spawn_main_frame *self) {
    for (size_t i = 0; i < CAB_BATCH; i++) CA_CLEAR(self->tasks[i]);
}

CA_CORO_TYPE(task_spawn_main_type, task_spawn_main_frame, task_spawn_main,
             task_spawn_main_finalize);

/* create_task(child(i)) through the loop, so the task factory applies. */
static ca_error *task_spawn_one(task_spawn_main_frame *self, size_t i) {
    static const ca_task_options defaults = {0};
    task_spawn_child_frame *child = CA_CORO_NEW(task_spawn_child_type, task_spawn_child_frame);
    if (child == NULL) return ca_error_new(&ca_MemoryError, NULL);
    child->i = (int64_t)i;
    return ca_loop_create_task(self->loop, &child->cf.co, &defaults, &self->tasks[i]);
}

CA_CORO_BODY(task_spawn_main, task_spawn_main_frame) {
    CA_BEGIN;
    while (self->done < self->n) {
        self->batch = cab_batch_size(self->done, self->n);
        for (size_t i = 0; i < self->batch; i++) {
            ca_error *err = task_spawn_one(self, i);
            if (err != NULL) CA_RAISE(err);
        }
        /* await gather(*tasks) */
        {
            ca_future *gathering = NULL;
            ca_error *err = ca_gather(self->loop, (void *const *)self->tasks, self->batch, false, &gathering);
            for (size_t i = 0; i < self->batch; i++) CA_CLEAR(self->tasks[i]);
            if (err != NULL) CA_RAISE(err);
            CA_AWAIT(gathering);
        }
        {
            const ca_result_list *results = (const ca_result_list *)CA_RESULT().u.obj;
            for (size_t i = 0; i < results->len; i++) self->sum += ca_result_list_item(results, i)->u.i;
        }
        self->done += self->batch;
    }
    CA_END;
}

/* MARK: - The run */

/* Spawns and awaits `n` tasks from one main task; checks every result. */
static int task_spawn_main_run(ca_loop *loop, uint64_t n, cab_meter *meter, cab_result *out) {
    task_spawn_main_frame *frame = CA_CORO_NEW(task_spawn_main_type, task_spawn_main_frame);
    if (frame == NULL) return cab_fail(out, "ca_cframe_new returned NULL");
    frame->loop = loop;
    frame->n = n;
    /* The frame stays alive after the task consumed it, to read the sum. */
    ca_incref(frame);

    ca_task *main_task = NULL;
    ca_task_options opts = {.eager_start = -1};
    ca_error *err = ca_task_new(loop, &frame->cf.co, &opts, &main_task);
    int rc = 0;
    if (err != NULL) {
        rc = cab_fail_error(out, "ca_task_new(main)", err);
        goto done;
    }
    if (meter != NULL) cab_meter_start(meter);
    err = ca_loop_run_until_complete(loop, (ca_future *)main_task);
    if (meter != NULL) cab_meter_stop(meter, n, out);
    if (err != NULL) {
        rc = cab_fail_error(out, "main task", err);
        goto done;
    }
    int64_t expected = 0;
    for (uint64_t done = 0; done < n;) {
        size_t size = cab_batch_size(done, n);
        expected += (int64_t)size * (int64_t)(size - 1) / 2;
        done += size;
    }
    if (frame->done != n || frame->sum != expected) {
        rc = cab_fail(out, "%llu of %llu tasks awaited, sum of results %lld, expected %lld",
                      (unsigned long long)frame->done, (unsigned long long)n,
                      (long long)frame->sum, (long long)expected);
    }
done:
    ca_decref(main_task);
    ca_decref(frame);
    return rc;
}

static int task_spawn_run(uint64_t n, bool eager, cab_result *out) {
    ca_loop *loop;
    int rc = cab_setup(n, out, &loop);
    if (rc == 0 && eager) ca_loop_set_task_factory(loop, ca_eager_task_factory, NULL);
    /* Two warm-up main tasks: what the previous main task leaves behind
     * until the loop lets go of it is part of the steady state too. */
    for (int i = 0; rc == 0 && i < 2; i++) {
        rc = task_spawn_main_run(loop, CAB_WARMUP_BATCHES * CAB_BATCH, NULL, out);
    }
    if (rc == 0) {
        cab_meter meter;
        rc = task_spawn_main_run(loop, n, &meter, out);
    }
    cab_teardown(loop);
    return rc;
}

int cab_run_task_spawn(uint64_t n, cab_result *out) {
    return task_spawn_run(n, false, out);
}

int cab_run_task_spawn_eager(uint64_t n, cab_result *out) {
    return task_spawn_run(n, true, out);
}
