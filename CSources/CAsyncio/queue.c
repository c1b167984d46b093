/*
 * queue.c — Queue, LifoQueue and PriorityQueue, mirroring
 * Lib/asyncio/queues.py (3.14, with shutdown); put/get/join are kit
 * coroutines. `_init`/`_put`/`_get` become one array used as a ring buffer,
 * a stack or a heap, so steady-state traffic allocates nothing.
 */
#include "sync_internal.h"

#include <math.h>
#include <string.h>

static ca_error *memory_error(void) { return ca_error_new(&ca_MemoryError, NULL); }

static void queue_dealloc(ca_object *op);

const ca_type ca_QueueType = {"Queue", sizeof(ca_queue), queue_dealloc, NULL};
const ca_type ca_LifoQueueType = {"LifoQueue", sizeof(ca_queue), NULL, &ca_QueueType};
const ca_type ca_PriorityQueueType = {"PriorityQueue", sizeof(ca_queue), NULL, &ca_QueueType};

/* MARK: - Storage (_init, _put, _get) */

static inline ca_queue_entry *entry_at(const ca_queue *q, size_t i) {
    return &q->items[(q->head + i) & (q->cap - 1)];
}

static ca_error *storage_grow(ca_queue *q) {
    size_t cap = q->cap != 0 ? q->cap * 2 : 8;
    ca_queue_entry *items = ca_malloc(cap * sizeof *items);
    if (items == NULL) return memory_error();
    for (size_t i = 0; i < q->len; i++) items[i] = *entry_at(q, i);
    ca_free(q->items);
    q->items = items;
    q->head = 0;
    q->cap = cap;
    return NULL;
}

static int default_order(const ca_value *a, const ca_value *b) {
    if (a->kind == CA_VALUE_INT && b->kind == CA_VALUE_INT) return (a->u.i > b->u.i) - (a->u.i < b->u.i);
    if (a->kind == CA_VALUE_DOUBLE && b->kind == CA_VALUE_DOUBLE) return (a->u.d > b->u.d) - (a->u.d < b->u.d);
    /* Mixed: compare exactly, without rounding the integer to a double. */
    bool flip = a->kind == CA_VALUE_DOUBLE;
    int64_t i = flip ? b->u.i : a->u.i;
    double d = flip ? a->u.d : b->u.d;
    int r;
    if (isnan(d)) r = 0;
    else if (d >= 9223372036854775808.0) r = -1;
    else if (d < -9223372036854775808.0) r = 1;
    else {
        double fl = floor(d);
        int64_t di = (int64_t)fl;
        if (i != di) r = i < di ? -1 : 1;
        else r = fl < d ? -1 : 0;
    }
    return flip ? -r : r;
}

int ca_queue_default_compare(const ca_value *a, const ca_value *b, void *arg) { return default_order(a, b); }

static inline bool is_numeric(const ca_value *v) { return v->kind == CA_VALUE_INT || v->kind == CA_VALUE_DOUBLE; }

/* heapq's order over (item, count): equal items leave in insertion order. */
static inline bool entry_less(const ca_queue *q, const ca_queue_entry *a, const ca_queue_entry *b) {
    int c = q->compare != NULL ? q->compare(&a->value, &b->value, q->compare_arg) : default_order(&a->value, &b->value);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

static void heap_sift_up(ca_queue *q, size_t pos) {
    ca_queue_entry e = q->items[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!entry_less(q, &e, &q->items[parent])) break;
        q->items[pos] = q->items[parent];
        pos = parent;
    }
    q->items[pos] = e;
}

static void heap_sift_down(ca_queue *q, size_t pos) {
    ca_queue_entry e = q->items[pos];
    size_t n = q->len;
    for (;;) {
        size_t child = 2 * pos + 1;
        if (child >= n) break;
        if (child + 1 < n && entry_less(q, &q->items[child + 1], &q->items[child])) child++;
        if (!entry_less(q, &q->items[child], &e)) break;
        q->items[pos] = q->items[child];
        pos = child;
    }
    q->items[pos] = e;
}

/* _put(item): takes the item (released on error). */
static ca_error *queue_put(ca_queue *q, ca_value item) {
    if (q->len == q->cap) {
        ca_error *err = storage_grow(q);
        if (err != NULL) {
            ca_value_clear(&item);
            return err;
        }
    }
    ca_queue_entry *slot = entry_at(q, q->len);
    slot->value = item;
    slot->seq = q->next_seq++;
    q->len++;
    if (q->kind == CA_QUEUE_PRIORITY) heap_sift_up(q, q->len - 1);
    return NULL;
}

/* _get(): the next item; the queue is not empty. */
static inline __attribute__((always_inline)) ca_value queue_get(ca_queue *q) {
    ca_value v;
    switch (q->kind) {
    case CA_QUEUE_LIFO:
        v = entry_at(q, q->len - 1)->value;
        q->len--;
        break;
    case CA_QUEUE_PRIORITY:
        v = q->items[0].value;
        q->len--;
        if (q->len > 0) {
            q->items[0] = q->items[q->len];
            heap_sift_down(q, 0);
        }
        break;
    default:
        v = q->items[q->head].value;
        q->head = (q->head + 1) & (q->cap - 1);
        q->len--;
        break;
    }
    return v;
}

/* MARK: - Construction */

static ca_queue *queue_new(const ca_type *type, ca_queue_kind kind, int64_t maxsize) {
    ca_queue *q = ca_small_alloc(sizeof *q);
    if (q == NULL) return NULL;
    memset(q, 0, sizeof *q);
    ca_object_init(q, type);
    q->maxsize = maxsize;
    q->kind = (uint8_t)kind;
    q->finished = ca_event_new();
    if (q->finished == NULL) {
        ca_decref(q);
        return NULL;
    }
    ca_decref(ca_event_set(q->finished)); /* no waiters yet: cannot fail */
    return q;
}

ca_queue *ca_queue_new(int64_t maxsize) { return queue_new(&ca_QueueType, CA_QUEUE_FIFO, maxsize); }
ca_queue *ca_lifo_queue_new(int64_t maxsize) { return queue_new(&ca_LifoQueueType, CA_QUEUE_LIFO, maxsize); }

ca_queue *ca_priority_queue_new(int64_t maxsize, ca_queue_compare_fn compare, void *arg) {
    ca_queue *q = queue_new(&ca_PriorityQueueType, CA_QUEUE_PRIORITY, maxsize);
    if (q == NULL) return NULL;
    q->compare = compare;
    q->compare_arg = arg;
    return q;
}

static void queue_dealloc(ca_object *op) {
    ca_queue *q = (ca_queue *)op;
    for (size_t i = 0; i < q->len; i++) ca_value_clear(&entry_at(q, i)->value);
    ca_free(q->items);
    ca_waiters_clear(&q->getters);
    ca_waiters_clear(&q->putters);
    CA_CLEAR(q->finished);
    CA_CLEAR(q->loop);
    ca_small_free(q, sizeof *q);
}

/* MARK: - State */

size_t ca_queue_qsize(const ca_queue *q) { return q->len; }
int64_t ca_queue_maxsize(const ca_queue *q) { return q->maxsize; }
bool ca_queue_empty(const ca_queue *q) { return q->len == 0; }
bool ca_queue_full(const ca_queue *q) { return q->maxsize > 0 && (int64_t)q->len >= q->maxsize; }

/* _wakeup_next: wake up the next waiter (if any) that isn't cancelled.
 * Inline in put_nowait, where every item that finds a getter comes. */
static CA_ALWAYS_INLINE ca_error *queue_wakeup_next_inline(ca_waiters *waiters) {
    while (waiters->len > 0) {
        ca_future *waiter = ca_waiters_popleft(waiters);
        ca_error *err = NULL;
        bool woke = waiter->fut_state == CA_FUTURE_PENDING;
        if (woke) err = ca_future_set_none_result(waiter);
        ca_decref(waiter);
        if (woke) return err;
    }
    return NULL;
}

static ca_error *queue_wakeup_next(ca_waiters *waiters) { return queue_wakeup_next_inline(waiters); }

/* Wakes every waiter so each re-checks the queue (shutdown). */
static ca_error *queue_wakeup_all(ca_waiters *waiters) {
    while (waiters->len > 0) {
        ca_future *waiter = ca_waiters_popleft(waiters);
        ca_error *err = NULL;
        if (waiter->fut_state == CA_FUTURE_PENDING) err = ca_future_set_none_result(waiter);
        ca_decref(waiter);
        if (err != NULL) return err;
    }
    return NULL;
}

/* MARK: - put / get without waiting */

ca_error *ca_queue_put_nowait(ca_queue *q, ca_value item) {
    ca_error *err = NULL;
    if (q->is_shutdown) err = ca_error_new(&ca_QueueShutDown, NULL);
    else if (ca_queue_full(q)) err = ca_error_new(&ca_QueueFull, NULL);
    else if (q->kind == CA_QUEUE_PRIORITY && q->compare == NULL && !is_numeric(&item))
        err = ca_error_new(&ca_TypeError, "PriorityQueue items must be INT or DOUBLE without a comparator");
    if (err != NULL) {
        ca_value_clear(&item);
        return err;
    }
    err = queue_put(q, item);
    if (err != NULL) return err;
    q->unfinished_tasks += 1;
    q->finished->value = false; /* _finished.clear() */
    return queue_wakeup_next_inline(&q->getters);
}

/* get_nowait(), inlined into get()'s loop (ca_queue_get_begin). */
static inline __attribute__((always_inline)) ca_error *queue_get_nowait(ca_queue *q, ca_value *out) {
    *out = ca_none();
    if (q->len == 0) {
        if (q->is_shutdown) return ca_error_new(&ca_QueueShutDown, NULL);
        return ca_error_new(&ca_QueueEmpty, NULL);
    }
    ca_value item = queue_get(q);
    ca_error *err = q->putters.len != 0 ? queue_wakeup_next(&q->putters) : NULL;
    if (err != NULL) {
        ca_value_clear(&item);
        return err;
    }
    *out = item;
    return NULL;
}

ca_error *ca_queue_get_nowait(ca_queue *q, ca_value *out) { return queue_get_nowait(q, out); }

/* MARK: - put / get */

/* The bare `except:` around `await putter` / `await getter`: the waiter is
 * cancelled just in case, removed if still queued (put_nowait, get_nowait or
 * shutdown may have popped it), and a wake-up it received but cannot use is
 * passed on. `err` is the pending error (taken and returned). */
static ca_error *queue_abandon_waiter(ca_waiters *waiters, ca_future *waiter, bool can_proceed, ca_error *err) {
    ca_future_cancel(waiter, NULL);
    ca_waiters_remove(waiters, waiter);
    if (can_proceed && waiter->fut_state != CA_FUTURE_CANCELLED) {
        ca_error *werr = queue_wakeup_next(waiters);
        if (werr != NULL) {
            if (err != NULL) {
                ca_error_set_context(werr, err);
                ca_decref(err);
            }
            err = werr;
        }
    }
    return err;
}

typedef struct queue_frame {
    ca_cframe cf;
    ca_queue *q;
    ca_future *waiter;  /* our getter / putter while queued */
    ca_value item;      /* put: the item until it is stored (owned) */
} queue_frame;

/* An abandoned get() unqueues its getter through the kit's on_abandon hook
 * (ca_queue_get_abandon), before this runs. */
static void queue_get_finalize(queue_frame *self) {
    ca_value_clear(&self->item);
    CA_CLEAR(self->q);
}

static void queue_put_finalize(queue_frame *self) {
    if (self->waiter != NULL) {
        ca_decref(queue_abandon_waiter(&self->q->putters, self->waiter, !ca_queue_full(self->q), NULL));
        CA_CLEAR(self->waiter);
    }
    ca_value_clear(&self->item);
    CA_CLEAR(self->q);
}

static queue_frame *queue_frame_new(const ca_cframe_type *type, ca_queue *q) {
    queue_frame *f = (queue_frame *)ca_cframe_new(type, sizeof(queue_frame));
    if (f != NULL) f->q = ca_incref(q);
    return f;
}

CA_CORO_TYPE(queue_get_type, queue_frame, queue_get_coro, queue_get_finalize);

ca_error *ca_queue_get_begin(ca_queue *q, ca_value *out, ca_future **getter) {
    *getter = NULL;
    *out = ca_none();
    if (q->len != 0) return queue_get_nowait(q, out);
    if (q->is_shutdown) return ca_error_new(&ca_QueueShutDown, NULL);
    ca_future *w = NULL;
    ca_error *err = ca_waiters_enqueue(&q->loop, q, &q->getters, &w);
    if (err != NULL) return err;
    *getter = w;
    return NULL;
}

ca_error *ca_queue_get_abort(ca_queue *q, ca_future *getter, ca_error *err) {
    /* We were woken up by put_nowait() but cannot take the item: the next
     * getter in line takes it. */
    return queue_abandon_waiter(&q->getters, getter, q->len != 0, err);
}

void ca_queue_get_abandon(ca_future *getter, void *queue) {
    /* GeneratorExit reaching the bare except */
    ca_decref(ca_queue_get_abort(queue, getter, NULL));
}

CA_CORO_BODY(queue_get_coro, queue_frame) {
    ca_error *err;
    CA_BEGIN;
    CA_AWAIT_QUEUE_GET_TRY(self->q, &self->item, err);
    if (err != NULL) CA_RAISE(err);
    {
        ca_value item = self->item; /* moved out: the frame no longer owns it */
        self->item = ca_none();
        CA_RETURN(item);
    }
    CA_END;
}

ca_coro *ca_queue_get(ca_queue *q) {
    queue_frame *f = queue_frame_new(&queue_get_type, q);
    return f != NULL ? &f->cf.co : NULL;
}

CA_CORO_TYPE(queue_put_type, queue_frame, queue_put_coro, queue_put_finalize);

CA_CORO_BODY(queue_put_coro, queue_frame) {
    ca_error *err;
    ca_value item;
    CA_BEGIN;
    while (ca_queue_full(self->q)) {
        if (self->q->is_shutdown) CA_RAISE(ca_error_new(&ca_QueueShutDown, NULL));
        err = ca_waiters_enqueue(&self->q->loop, self->q, &self->q->putters, &self->waiter);
        if (err != NULL) CA_RAISE(err);
        CA_AWAIT_TRY(ca_incref(self->waiter), err);
        if (err != NULL) {
            /* We were woken up by get_nowait() but cannot use the slot. */
            err = queue_abandon_waiter(&self->q->putters, self->waiter, !ca_queue_full(self->q), err);
            CA_CLEAR(self->waiter);
            CA_RAISE(err);
        }
        CA_CLEAR(self->waiter);
    }
    item = self->item;
    self->item = ca_none();
    err = ca_queue_put_nowait(self->q, item);
    if (err != NULL) CA_RAISE(err);
    CA_END;
}

ca_coro *ca_queue_put(ca_queue *q, ca_value item) {
    queue_frame *f = queue_frame_new(&queue_put_type, q);
    if (f == NULL) {
        ca_value_clear(&item);
        return NULL;
    }
    f->item = item;
    return &f->cf.co;
}

/* MARK: - task_done / join / shutdown */

ca_error *ca_queue_task_done(ca_queue *q) {
    if (q->unfinished_tasks <= 0) return ca_error_new(&ca_ValueError, "task_done() called too many times");
    q->unfinished_tasks -= 1;
    if (q->unfinished_tasks == 0) return ca_event_set(q->finished);
    return NULL;
}

static void queue_join_finalize(queue_frame *self) { CA_CLEAR(self->q); }

CA_CORO_TYPE(queue_join_type, queue_frame, queue_join, queue_join_finalize);

CA_CORO_BODY(queue_join, queue_frame) {
    CA_BEGIN;
    if (self->q->unfinished_tasks > 0) {
        CA_AWAIT_CORO(ca_event_wait(self->q->finished));
    }
    CA_END;
}

ca_coro *ca_queue_join(ca_queue *q) {
    queue_frame *f = queue_frame_new(&queue_join_type, q);
    return f != NULL ? &f->cf.co : NULL;
}

ca_error *ca_queue_shutdown(ca_queue *q, bool immediate) {
    q->is_shutdown = true;
    if (immediate) {
        while (q->len > 0) {
            ca_value v = queue_get(q);
            ca_value_clear(&v);
            if (q->unfinished_tasks > 0) q->unfinished_tasks -= 1;
        }
        if (q->unfinished_tasks == 0) {
            ca_error *err = ca_event_set(q->finished);
            if (err != NULL) return err;
        }
    }
    /* All getters need to re-check queue-empty to raise QueueShutDown. */
    ca_error *err = queue_wakeup_all(&q->getters);
    if (err != NULL) return err;
    return queue_wakeup_all(&q->putters);
}

/* MARK: - repr / str */

static size_t queue_format(const ca_queue *q, bool with_address, char *buf, size_t size) {
    ca_strbuf sb = {buf, size, 0};
    if (size > 0) buf[0] = '\0';
    ca_strbuf_printf(&sb, "<%s", q->ob_base.ob_type->tp_name);
    if (with_address) ca_strbuf_printf(&sb, " at %p", (const void *)q);
    ca_strbuf_printf(&sb, " maxsize=%lld", (long long)q->maxsize);
    if (q->len > 0) {
        ca_strbuf_printf(&sb, " _queue=[");
        for (size_t i = 0; i < q->len; i++) {
            if (i > 0) ca_strbuf_printf(&sb, ", ");
            ca_value_repr(&sb, &entry_at(q, i)->value);
        }
        ca_strbuf_printf(&sb, "]");
    }
    if (q->getters.len > 0) ca_strbuf_printf(&sb, " _getters[%zu]", q->getters.len);
    if (q->putters.len > 0) ca_strbuf_printf(&sb, " _putters[%zu]", q->putters.len);
    if (q->unfinished_tasks != 0) ca_strbuf_printf(&sb, " tasks=%lld", (long long)q->unfinished_tasks);
    if (q->is_shutdown) ca_strbuf_printf(&sb, " shutdown");
    ca_strbuf_printf(&sb, ">");
    return sb.len;
}

size_t ca_queue_repr(const ca_queue *q, char *buf, size_t size) { return queue_format(q, true, buf, size); }
size_t ca_queue_str(const ca_queue *q, char *buf, size_t size) { return queue_format(q, false, buf, size); }
