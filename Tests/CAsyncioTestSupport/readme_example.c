/*
 * readme_example.c — the example of README.md's "The C API" section,
 * verbatim, so the build proves it compiles and ReadmeExampleTests runs it.
 */
#include <casyncio/casyncio.h>

#include "readme_example.h"

/* async def worker(jobs):
 *     total = 0
 *     while (job := await jobs.get()) >= 0:
 *         await asyncio.sleep(0.001)
 *         total += job
 *     return total */
typedef struct worker_frame {
    ca_cframe cf; /* the kit's part comes first */
    ca_queue *jobs;
    ca_value job;
    int64_t total;
} worker_frame;

static void worker_finalize(worker_frame *self) {
    ca_value_clear(&self->job);
    CA_CLEAR(self->jobs);
}

CA_CORO_TYPE(worker_type, worker_frame, worker, worker_finalize);

CA_CORO_BODY(worker, worker_frame) {
    CA_BEGIN;
    for (;;) {
        CA_AWAIT_QUEUE_GET(self->jobs, &self->job);
        if (self->job.u.i < 0) break;
        CA_AWAIT_SLEEP(0.001);
        self->total += self->job.u.i;
    }
    CA_RETURN(ca_int(self->total));
    CA_END;
}

int64_t readme_example(int64_t *elapsed_ns) {
    ca_loop *loop;
    ca_loop_config config = {.virtual_clock = true};
    ca_error *err = ca_loop_new(&config, &loop);
    if (err != NULL) {
        ca_decref(err);
        return -1;
    }
    ca_queue *jobs = ca_queue_new(0);
    for (int64_t job = 1; job <= 3; job++) ca_decref(ca_queue_put_nowait(jobs, ca_int(job)));
    ca_decref(ca_queue_put_nowait(jobs, ca_int(-1)));

    worker_frame *w = CA_CORO_NEW(worker_type, worker_frame);
    w->jobs = ca_incref(jobs);
    ca_task *task = NULL;
    int64_t total = -1;
    err = ca_loop_create_task(loop, &w->cf.co, NULL, &task); /* takes the coroutine */
    if (err == NULL) err = ca_loop_run_until_complete(loop, (ca_future *)task);
    if (err == NULL) {
        ca_value result; /* borrowed from the task */
        err = ca_future_result((ca_future *)task, &result);
        if (err == NULL) total = result.u.i;
    }
    *elapsed_ns = ca_loop_time(loop);
    ca_decref(err);
    ca_decref(task);
    ca_decref(jobs);
    ca_decref(ca_loop_close(loop));
    ca_decref(loop);
    return total;
}
