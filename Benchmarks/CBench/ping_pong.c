/*
 * ping_pong.c — workloads.md `ping_pong`: two tasks and two unbounded
 * queues q1, q2. A does `q1.put_nowait(i); await q2.get()`, B does
 * `x = await q1.get(); q2.put_nowait(x)`. One op = one round trip.
 */
#include "cab_internal.h"

typedef struct ping_pong_frame {
    ca_cframe cf;
    ca_queue *q1;     /* strong */
    ca_queue *q2;     /* strong */
    uint64_t n;       /* round trips */
    uint64_t i;       /* round trips done, checked by the caller */
    int64_t sum;      /* A: sum of what came back, checked by the caller */
    ca_value item;    /* what the last get() returned (owned) */
} ping_pong_frame;

static void ping_pong_finalize(ping_pong_frame *self) {
    ca_value_clear(&self->item);
    CA_CLEAR(self->q1);
    CA_CLEAR(self->q2);
}

CA_CORO_TYPE(ping_pong_a_type, ping_pong_frame, ping_pong_a, ping_pong_finalize);

/* A: for i in range(n): q1.put_nowait(i); sum += await q2.get() */
CA_CORO_BODY(ping_pong_a, ping_pong_frame) {
    ca_error *err;
    CA_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        err = ca_queue_put_nowait(self->q1, ca_int((int64_t)self->i));
        if (err != NULL) CA_RAISE(err);
        CA_AWAIT_QUEUE_GET(self->q2, &self->item);
        self->sum += self->item.u.i;
        ca_value_clear(&self->item);
    }
    CA_END;
}

CA_CORO_TYPE(ping_pong_b_type, ping_pong_frame, ping_pong_b, ping_pong_finalize);

/* B: for _ in range(n): x = await q1.get(); q2.put_nowait(x) */
CA_CORO_BODY(ping_pong_b, ping_pong_frame) {
    ca_error *err;
    ca_value x;
    CA_BEGIN;
    for (self->i = 0; self->i < self->n; self->i++) {
        CA_AWAIT_QUEUE_GET(self->q1, &self->item);
        x = self->item;
        self->item = ca_none();
        err = ca_queue_put_nowait(self->q2, x);
        if (err != NULL) CA_RAISE(err);
    }
    CA_END;
}

static ping_pong_frame *ping_pong_frame_new(const ca_cframe_type *type, ca_queue *q1, ca_queue *q2, uint64_t n) {
    ping_pong_frame *f = (ping_pong_frame *)ca_cframe_new(type, sizeof(ping_pong_frame));
    if (f == NULL) return NULL;
    f->q1 = ca_incref(q1);
    f->q2 = ca_incref(q2);
    f->n = n;
    return f;
}

/* Runs `n` round trips between two fresh tasks; checks both ends. */
static int ping_pong_run_once(ca_loop *loop, ca_queue *q1, ca_queue *q2, uint64_t n, cab_meter *meter,
                              cab_result *out) {
    ping_pong_frame *a = ping_pong_frame_new(&ping_pong_a_type, q1, q2, n);
    ping_pong_frame *b = ping_pong_frame_new(&ping_pong_b_type, q1, q2, n);
    ca_task *ta = NULL, *tb = NULL;
    ca_error *err = NULL;
    int rc = 0;
    if (a == NULL || b == NULL) {
        rc = cab_fail(out, "ca_cframe_new returned NULL");
        goto done;
    }
    /* The frames stay alive after the tasks consumed them, to read the counts. */
    ca_incref(a);
    ca_incref(b);
    ca_task_options opts = {.eager_start = -1};
    err = ca_task_new(loop, &a->cf.co, &opts, &ta);
    if (err != NULL) ca_decref(b); /* the reference B's task would have taken */
    else err = ca_task_new(loop, &b->cf.co, &opts, &tb);
    if (err != NULL) {
        rc = cab_fail_error(out, "ca_task_new", err);
        goto done;
    }
    if (meter != NULL) cab_meter_start(meter);
    err = ca_loop_run_until_complete(loop, (ca_future *)ta);
    if (meter != NULL) cab_meter_stop(meter, n, out);
    if (err == NULL) err = ca_loop_run_until_complete(loop, (ca_future *)tb);
    if (err != NULL) {
        rc = cab_fail_error(out, "ping_pong task", err);
        goto done;
    }
    int64_t expected = (int64_t)n * (int64_t)(n - 1) / 2;
    if (a->i != n || b->i != n || a->sum != expected) {
        rc = cab_fail(out, "A finished %llu and B %llu of %llu round trips, sum %lld, expected %lld",
                      (unsigned long long)a->i, (unsigned long long)b->i, (unsigned long long)n,
                      (long long)a->sum, (long long)expected);
    }
done:
    ca_decref(ta);
    ca_decref(tb);
    ca_decref(a);
    ca_decref(b);
    return rc;
}

int cab_run_ping_pong(uint64_t n, cab_result *out) {
    ca_loop *loop;
    int rc = cab_setup(n, out, &loop);
    ca_queue *q1 = rc == 0 ? ca_queue_new(0) : NULL;
    ca_queue *q2 = rc == 0 ? ca_queue_new(0) : NULL;
    if (rc == 0 && (q1 == NULL || q2 == NULL)) rc = cab_fail(out, "ca_queue_new returned NULL");
    if (rc == 0) rc = ping_pong_run_once(loop, q1, q2, CAB_BATCH, NULL, out);
    if (rc == 0) {
        cab_meter meter;
        rc = ping_pong_run_once(loop, q1, q2, n, &meter, out);
    }
    ca_decref(q1);
    ca_decref(q2);
    cab_teardown(loop);
    return rc;
}
