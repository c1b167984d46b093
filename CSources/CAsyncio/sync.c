/*
 * sync.c — Lock, Event, Condition, Semaphore, BoundedSemaphore and Barrier,
 * mirroring Lib/asyncio/locks.py (3.14) line by line; the waiting methods
 * are kit coroutines. Also the waiter deque and the loop binding that
 * queue.c shares (sync_internal.h).
 */
#include "sync_internal.h"

#include <stdio.h>
#include <string.h>

static ca_error *memory_error(void) { return ca_error_new(&ca_MemoryError, NULL); }

/* `raise new` while `pending` propagates: new.__context__ = pending. Takes
 * both references and returns the one that wins. */
static ca_error *raise_over(ca_error *pending, ca_error *new_err) {
    if (pending == NULL) return new_err;
    if (new_err == NULL) return pending;
    if (new_err != pending) ca_error_set_context(new_err, pending);
    ca_decref(pending);
    return new_err;
}

static inline bool future_done(const ca_future *fut) { return fut->fut_state != CA_FUTURE_PENDING; }
static inline bool future_cancelled(const ca_future *fut) { return fut->fut_state == CA_FUTURE_CANCELLED; }

/* MARK: - Waiter deque */

ca_error *ca_waiters_grow(ca_waiters *w) {
    size_t cap = w->cap != 0 ? w->cap * 2 : 4;
    ca_future **items = ca_malloc(cap * sizeof *items);
    if (items == NULL) return memory_error();
    for (size_t i = 0; i < w->len; i++) items[i] = ca_waiters_at(w, i);
    ca_free(w->items);
    w->items = items;
    w->head = 0;
    w->cap = cap;
    return NULL;
}

bool ca_waiters_remove(ca_waiters *w, ca_future *fut) {
    size_t mask = w->cap - 1;
    size_t i = 0;
    while (i < w->len && w->items[(w->head + i) & mask] != fut) i++;
    if (i == w->len) return false;
    /* Close the gap from the shorter side; the head is the common case. */
    if (i < w->len / 2) {
        for (size_t j = i; j > 0; j--) w->items[(w->head + j) & mask] = w->items[(w->head + j - 1) & mask];
        w->head = (w->head + 1) & mask;
    } else {
        for (size_t j = i; j + 1 < w->len; j++) w->items[(w->head + j) & mask] = w->items[(w->head + j + 1) & mask];
    }
    w->len--;
    ca_decref(fut);
    return true;
}

void ca_waiters_clear(ca_waiters *w) {
    while (w->len > 0) ca_decref(ca_waiters_popleft(w));
    ca_free(w->items);
    *w = (ca_waiters){0};
}

static bool waiters_all_cancelled(const ca_waiters *w) {
    for (size_t i = 0; i < w->len; i++)
        if (!future_cancelled(ca_waiters_at(w, i))) return false;
    return true;
}

/* MARK: - Loop binding (mixins._LoopBoundMixin) */

static size_t owner_repr(const void *owner, char *buf, size_t size) {
    const ca_type *t = ((const ca_object *)owner)->ob_type;
    if (t == &ca_LockType) return ca_lock_repr(owner, buf, size);
    if (t == &ca_EventType) return ca_event_repr(owner, buf, size);
    if (t == &ca_ConditionType) return ca_condition_repr(owner, buf, size);
    if (ca_object_is_instance(owner, &ca_SemaphoreType)) return ca_semaphore_repr(owner, buf, size);
    if (ca_object_is_instance(owner, &ca_QueueType)) return ca_queue_repr(owner, buf, size);
    return (size_t)snprintf(buf, size, "<%s object at %p>", t->tp_name, owner);
}

ca_error *ca_sync_bind_loop(ca_loop **bound, const void *owner, ca_loop *loop, ca_loop **out) {
    *out = NULL;
    if (*bound == NULL) {
        if (loop == NULL) return ca_error_new(&ca_RuntimeError, "no running event loop");
        *bound = ca_incref(loop);
    }
    if (loop != *bound) {
        char rb[256];
        owner_repr(owner, rb, sizeof rb);
        return ca_error_format(&ca_RuntimeError, "%s is bound to a different event loop", rb);
    }
    *out = loop;
    return NULL;
}

/* "<asyncio.locks.Name object at 0x... [extra]>" */
static size_t locks_repr(const void *self, const char *name, const char *state, const ca_waiters *w,
                         char *buf, size_t size) {
    ca_strbuf sb = {buf, size, 0};
    if (size > 0) buf[0] = '\0';
    ca_strbuf_printf(&sb, "<asyncio.locks.%s object at %p [%s", name, self, state);
    if (w != NULL && w->len > 0) ca_strbuf_printf(&sb, ", waiters:%zu", w->len);
    ca_strbuf_printf(&sb, "]>");
    return sb.len;
}

/* MARK: - Lock */

static void lock_dealloc(ca_object *op) {
    ca_lock *lock = (ca_lock *)op;
    ca_waiters_clear(&lock->waiters);
    CA_CLEAR(lock->loop);
    ca_small_free(lock, sizeof *lock);
}

const ca_type ca_LockType = {"Lock", sizeof(ca_lock), lock_dealloc, NULL};

ca_lock *ca_lock_new(void) {
    ca_lock *lock = ca_small_alloc(sizeof *lock);
    if (lock == NULL) return NULL;
    memset(lock, 0, sizeof *lock);
    ca_object_init(lock, &ca_LockType);
    return lock;
}

bool ca_lock_locked(const ca_lock *lock) { return lock->locked; }

/* _wake_up_first: ensure that the first waiter will wake up. */
static ca_error *lock_wake_up_first(ca_lock *lock) {
    if (lock->waiters.len == 0) return NULL;
    ca_future *fut = ca_waiters_at(&lock->waiters, 0);
    /* .done() means that the waiter is already set to wake up. */
    if (future_done(fut)) return NULL;
    return ca_future_set_result(fut, ca_int(1));
}

typedef struct lock_acquire_frame {
    ca_cframe cf;
    ca_lock *lock;
    ca_future *fut;   /* our waiter while queued */
} lock_acquire_frame;

static void lock_acquire_finalize(lock_acquire_frame *self) {
    /* Abandoned while queued: the `finally` that removes the waiter. */
    if (self->fut != NULL) ca_waiters_remove(&self->lock->waiters, self->fut);
    CA_CLEAR(self->fut);
    CA_CLEAR(self->lock);
}

CA_CORO_TYPE(lock_acquire_type, lock_acquire_frame, lock_acquire, lock_acquire_finalize);

CA_CORO_BODY(lock_acquire, lock_acquire_frame) {
    ca_error *err;
    CA_BEGIN;
    /* Fair scheduling: jumping the queue if all are cancelled is an optimization. */
    if (!self->lock->locked && waiters_all_cancelled(&self->lock->waiters)) {
        self->lock->locked = true;
        CA_RETURN(ca_int(1));
    }
    err = ca_waiters_enqueue(&self->lock->loop, self->lock, &self->lock->waiters, &self->fut);
    if (err != NULL) CA_RAISE(err);
    CA_AWAIT_TRY(ca_incref(self->fut), err);
    ca_waiters_remove(&self->lock->waiters, self->fut);
    CA_CLEAR(self->fut);
    if (err != NULL) {
        /* If the lock is not claimed (or about to be claimed by us) and a
         * task is queued, make sure the task at the head will run. */
        if (ca_error_matches(err, &ca_CancelledError) && !self->lock->locked)
            err = raise_over(err, lock_wake_up_first(self->lock));
        CA_RAISE(err);
    }
    self->lock->locked = true;
    CA_RETURN(ca_int(1));
    CA_END;
}

ca_coro *ca_lock_acquire(ca_lock *lock) {
    lock_acquire_frame *f = CA_CORO_NEW(lock_acquire_type, lock_acquire_frame);
    if (f == NULL) return NULL;
    f->lock = ca_incref(lock);
    return &f->cf.co;
}

ca_error *ca_lock_release(ca_lock *lock) {
    if (!lock->locked) return ca_error_new(&ca_RuntimeError, "Lock is not acquired.");
    lock->locked = false;
    return lock_wake_up_first(lock);
}

size_t ca_lock_repr(const ca_lock *lock, char *buf, size_t size) {
    return locks_repr(lock, "Lock", lock->locked ? "locked" : "unlocked", &lock->waiters, buf, size);
}

/* MARK: - Event */

static void event_dealloc(ca_object *op) {
    ca_event *event = (ca_event *)op;
    ca_waiters_clear(&event->waiters);
    CA_CLEAR(event->loop);
    ca_small_free(event, sizeof *event);
}

const ca_type ca_EventType = {"Event", sizeof(ca_event), event_dealloc, NULL};

ca_event *ca_event_new(void) {
    ca_event *event = ca_small_alloc(sizeof *event);
    if (event == NULL) return NULL;
    memset(event, 0, sizeof *event);
    ca_object_init(event, &ca_EventType);
    return event;
}

bool ca_event_is_set(const ca_event *event) { return event->value; }

ca_error *ca_event_set(ca_event *event) {
    if (event->value) return NULL;
    event->value = true;
    /* set_result only schedules callbacks, so the deque cannot change here. */
    for (size_t i = 0; i < event->waiters.len; i++) {
        ca_future *fut = ca_waiters_at(&event->waiters, i);
        if (future_done(fut)) continue;
        ca_error *err = ca_future_set_result(fut, ca_int(1));
        if (err != NULL) return err;
    }
    return NULL;
}

void ca_event_clear(ca_event *event) { event->value = false; }

typedef struct event_wait_frame {
    ca_cframe cf;
    ca_event *event;
    ca_future *fut;
} event_wait_frame;

static void event_wait_finalize(event_wait_frame *self) {
    if (self->fut != NULL) ca_waiters_remove(&self->event->waiters, self->fut);
    CA_CLEAR(self->fut);
    CA_CLEAR(self->event);
}

CA_CORO_TYPE(event_wait_type, event_wait_frame, event_wait, event_wait_finalize);

CA_CORO_BODY(event_wait, event_wait_frame) {
    ca_error *err;
    CA_BEGIN;
    if (self->event->value) CA_RETURN(ca_int(1));
    err = ca_waiters_enqueue(&self->event->loop, self->event, &self->event->waiters, &self->fut);
    if (err != NULL) CA_RAISE(err);
    CA_AWAIT_TRY(ca_incref(self->fut), err);
    ca_waiters_remove(&self->event->waiters, self->fut);
    CA_CLEAR(self->fut);
    if (err != NULL) CA_RAISE(err);
    CA_RETURN(ca_int(1));
    CA_END;
}

ca_coro *ca_event_wait(ca_event *event) {
    event_wait_frame *f = CA_CORO_NEW(event_wait_type, event_wait_frame);
    if (f == NULL) return NULL;
    f->event = ca_incref(event);
    return &f->cf.co;
}

size_t ca_event_repr(const ca_event *event, char *buf, size_t size) {
    return locks_repr(event, "Event", event->value ? "set" : "unset", &event->waiters, buf, size);
}

/* MARK: - Condition */

static void condition_dealloc(ca_object *op) {
    ca_condition *cond = (ca_condition *)op;
    ca_waiters_clear(&cond->waiters);
    CA_CLEAR(cond->lock);
    CA_CLEAR(cond->loop);
    ca_small_free(cond, sizeof *cond);
}

const ca_type ca_ConditionType = {"Condition", sizeof(ca_condition), condition_dealloc, NULL};

ca_condition *ca_condition_new(ca_lock *lock) {
    ca_lock *l = lock != NULL ? ca_incref(lock) : ca_lock_new();
    if (l == NULL) return NULL;
    ca_condition *cond = ca_small_alloc(sizeof *cond);
    if (cond == NULL) {
        ca_decref(l);
        return NULL;
    }
    memset(cond, 0, sizeof *cond);
    ca_object_init(cond, &ca_ConditionType);
    cond->lock = l;
    return cond;
}

bool ca_condition_locked(const ca_condition *cond) { return cond->lock->locked; }
ca_coro *ca_condition_acquire(ca_condition *cond) { return ca_lock_acquire(cond->lock); }
ca_error *ca_condition_release(ca_condition *cond) { return ca_lock_release(cond->lock); }

/* _notify(n): no lock check, so wait() can pass a notification on. */
static ca_error *condition_notify_impl(ca_condition *cond, size_t n) {
    size_t idx = 0;
    for (size_t i = 0; i < cond->waiters.len && idx < n; i++) {
        ca_future *fut = ca_waiters_at(&cond->waiters, i);
        if (future_done(fut)) continue;
        idx++;
        ca_error *err = ca_future_set_result(fut, ca_int(0));
        if (err != NULL) return err;
    }
    return NULL;
}

ca_error *ca_condition_notify(ca_condition *cond, size_t n) {
    if (!cond->lock->locked) return ca_error_new(&ca_RuntimeError, "cannot notify on un-acquired lock");
    return condition_notify_impl(cond, n);
}

ca_error *ca_condition_notify_all(ca_condition *cond) { return ca_condition_notify(cond, cond->waiters.len); }

typedef struct condition_wait_frame {
    ca_cframe cf;
    ca_condition *cond;
    ca_future *fut;       /* our waiter while queued */
    ca_error *err;        /* the error pending through the `finally` (owned) */
    ca_error *cancelled;  /* the latest CancelledError while re-acquiring (owned) */
} condition_wait_frame;

static void condition_wait_finalize(condition_wait_frame *self) {
    if (self->fut != NULL) ca_waiters_remove(&self->cond->waiters, self->fut);
    CA_CLEAR(self->fut);
    CA_CLEAR(self->err);
    CA_CLEAR(self->cancelled);
    CA_CLEAR(self->cond);
}

CA_CORO_TYPE(condition_wait_type, condition_wait_frame, condition_wait, condition_wait_finalize);

CA_CORO_BODY(condition_wait, condition_wait_frame) {
    ca_error *err;
    ca_loop *loop;
    CA_BEGIN;
    if (!self->cond->lock->locked) CA_RAISE(ca_error_new(&ca_RuntimeError, "cannot wait on un-acquired lock"));
    err = ca_sync_get_loop(&self->cond->loop, self->cond, &loop);
    if (err != NULL) CA_RAISE(err);
    self->fut = ca_loop_create_future(loop);
    if (self->fut == NULL) CA_RAISE(memory_error());
    err = ca_lock_release(self->cond->lock);
    if (err != NULL) CA_RAISE(err);
    self->err = ca_waiters_append(&self->cond->waiters, self->fut);
    if (self->err == NULL) {
        CA_AWAIT_TRY(ca_incref(self->fut), self->err);
        ca_waiters_remove(&self->cond->waiters, self->fut);
    }
    CA_CLEAR(self->fut);
    /* finally: must re-acquire the lock even if the wait is cancelled. Only
     * CancelledError is retried, so no other error can make us spin. */
    for (;;) {
        CA_AWAIT_CORO_TRY(ca_lock_acquire(self->cond->lock), err);
        if (err == NULL) break;
        if (!ca_error_matches(err, &ca_CancelledError)) {
            /* escapes the `finally`, replacing what was pending */
            CA_CLEAR(self->cancelled);
            self->err = raise_over(self->err, err);
            break;
        }
        CA_CLEAR(self->cancelled);
        self->cancelled = err;
    }
    if (self->cancelled != NULL) {
        /* Re-raise the most recent CancelledError instance. */
        self->err = raise_over(self->err, self->cancelled);
        self->cancelled = NULL;
    }
    if (self->err == NULL) CA_RETURN(ca_int(1));
    /* except BaseException: this task may have been notified already; make
     * sure another one is (a spurious wake-up is allowed). */
    err = raise_over(self->err, condition_notify_impl(self->cond, 1));
    self->err = NULL;
    CA_RAISE(err);
    CA_END;
}

ca_coro *ca_condition_wait(ca_condition *cond) {
    condition_wait_frame *f = CA_CORO_NEW(condition_wait_type, condition_wait_frame);
    if (f == NULL) return NULL;
    f->cond = ca_incref(cond);
    return &f->cf.co;
}

typedef struct condition_wait_for_frame {
    ca_cframe cf;
    ca_condition *cond;
    ca_predicate_fn pred;
    void *arg;
} condition_wait_for_frame;

static void condition_wait_for_finalize(condition_wait_for_frame *self) { CA_CLEAR(self->cond); }

CA_CORO_TYPE(condition_wait_for_type, condition_wait_for_frame, condition_wait_for, condition_wait_for_finalize);

CA_CORO_BODY(condition_wait_for, condition_wait_for_frame) {
    CA_BEGIN;
    while (!self->pred(self->arg)) {
        CA_AWAIT_CORO(ca_condition_wait(self->cond));
    }
    CA_RETURN(ca_int(1));
    CA_END;
}

ca_coro *ca_condition_wait_for(ca_condition *cond, ca_predicate_fn pred, void *arg) {
    condition_wait_for_frame *f = CA_CORO_NEW(condition_wait_for_type, condition_wait_for_frame);
    if (f == NULL) return NULL;
    f->cond = ca_incref(cond);
    f->pred = pred;
    f->arg = arg;
    return &f->cf.co;
}

size_t ca_condition_repr(const ca_condition *cond, char *buf, size_t size) {
    return locks_repr(cond, "Condition", cond->lock->locked ? "locked" : "unlocked", &cond->waiters, buf, size);
}

/* MARK: - Semaphore and BoundedSemaphore */

static void semaphore_dealloc(ca_object *op) {
    ca_semaphore *sem = (ca_semaphore *)op;
    ca_waiters_clear(&sem->waiters);
    CA_CLEAR(sem->loop);
    ca_small_free(sem, sizeof *sem);
}

const ca_type ca_SemaphoreType = {"Semaphore", sizeof(ca_semaphore), semaphore_dealloc, NULL};
const ca_type ca_BoundedSemaphoreType = {"BoundedSemaphore", sizeof(ca_semaphore), NULL, &ca_SemaphoreType};

static ca_error *semaphore_new(const ca_type *type, int64_t value, ca_semaphore **out) {
    *out = NULL;
    if (value < 0) return ca_error_new(&ca_ValueError, "Semaphore initial value must be >= 0");
    ca_semaphore *sem = ca_small_alloc(sizeof *sem);
    if (sem == NULL) return memory_error();
    memset(sem, 0, sizeof *sem);
    ca_object_init(sem, type);
    sem->value = value;
    sem->bound_value = value;
    *out = sem;
    return NULL;
}

ca_error *ca_semaphore_new(int64_t value, ca_semaphore **out) {
    return semaphore_new(&ca_SemaphoreType, value, out);
}

ca_error *ca_bounded_semaphore_new(int64_t value, ca_semaphore **out) {
    return semaphore_new(&ca_BoundedSemaphoreType, value, out);
}

bool ca_semaphore_locked(const ca_semaphore *sem) {
    /* Due to state, or FIFO rules (must allow others to run first). */
    return sem->value == 0 || !waiters_all_cancelled(&sem->waiters);
}

/* _wake_up_next: wake up the first waiter that isn't done. */
static bool semaphore_wake_up_next(ca_semaphore *sem, ca_error **err) {
    for (size_t i = 0; i < sem->waiters.len; i++) {
        ca_future *fut = ca_waiters_at(&sem->waiters, i);
        if (future_done(fut)) continue;
        sem->value -= 1;
        *err = ca_future_set_result(fut, ca_int(1));
        /* `fut` is now done() and not cancelled(). */
        return true;
    }
    return false;
}

typedef struct semaphore_acquire_frame {
    ca_cframe cf;
    ca_semaphore *sem;
    ca_future *fut;
} semaphore_acquire_frame;

static void semaphore_acquire_finalize(semaphore_acquire_frame *self) {
    if (self->fut != NULL) ca_waiters_remove(&self->sem->waiters, self->fut);
    CA_CLEAR(self->fut);
    CA_CLEAR(self->sem);
}

CA_CORO_TYPE(semaphore_acquire_type, semaphore_acquire_frame, semaphore_acquire, semaphore_acquire_finalize);

CA_CORO_BODY(semaphore_acquire, semaphore_acquire_frame) {
    ca_error *err;
    CA_BEGIN;
    if (!ca_semaphore_locked(self->sem)) {
        /* Maintain FIFO, wait for others to start even if value > 0. */
        self->sem->value -= 1;
        CA_RETURN(ca_int(1));
    }
    err = ca_waiters_enqueue(&self->sem->loop, self->sem, &self->sem->waiters, &self->fut);
    if (err != NULL) CA_RAISE(err);
    CA_AWAIT_TRY(ca_incref(self->fut), err);
    ca_waiters_remove(&self->sem->waiters, self->fut);
    if (err != NULL && ca_error_matches(err, &ca_CancelledError) && future_done(self->fut) &&
        !future_cancelled(self->fut)) {
        /* _wake_up_next() counted us, but we are not acquiring: undo it. */
        self->sem->value += 1;
    }
    CA_CLEAR(self->fut);
    /* finally: new waiters may have queued behind FIFO; wake as many as allowed. */
    while (self->sem->value > 0) {
        ca_error *werr = NULL;
        if (!semaphore_wake_up_next(self->sem, &werr)) break; /* no-one to wake up */
        if (werr != NULL) {
            err = raise_over(err, werr);
            break;
        }
    }
    if (err != NULL) CA_RAISE(err);
    CA_RETURN(ca_int(1));
    CA_END;
}

ca_coro *ca_semaphore_acquire(ca_semaphore *sem) {
    semaphore_acquire_frame *f = CA_CORO_NEW(semaphore_acquire_type, semaphore_acquire_frame);
    if (f == NULL) return NULL;
    f->sem = ca_incref(sem);
    return &f->cf.co;
}

ca_error *ca_semaphore_release(ca_semaphore *sem) {
    if (sem->ob_base.ob_type == &ca_BoundedSemaphoreType && sem->value >= sem->bound_value)
        return ca_error_new(&ca_ValueError, "BoundedSemaphore released too many times");
    sem->value += 1;
    ca_error *err = NULL;
    semaphore_wake_up_next(sem, &err);
    return err;
}

size_t ca_semaphore_repr(const ca_semaphore *sem, char *buf, size_t size) {
    char state[48];
    if (ca_semaphore_locked(sem)) snprintf(state, sizeof state, "locked");
    else snprintf(state, sizeof state, "unlocked, value:%lld", (long long)sem->value);
    return locks_repr(sem, sem->ob_base.ob_type->tp_name, state, &sem->waiters, buf, size);
}

/* MARK: - Barrier */

static void barrier_dealloc(ca_object *op) {
    ca_barrier *b = (ca_barrier *)op;
    CA_CLEAR(b->cond);
    ca_small_free(b, sizeof *b);
}

const ca_type ca_BarrierType = {"Barrier", sizeof(ca_barrier), barrier_dealloc, NULL};

ca_error *ca_barrier_new(int64_t parties, ca_barrier **out) {
    *out = NULL;
    if (parties < 1) return ca_error_new(&ca_ValueError, "parties must be >= 1");
    ca_barrier *b = ca_small_alloc(sizeof *b);
    if (b == NULL) return memory_error();
    memset(b, 0, sizeof *b);
    ca_object_init(b, &ca_BarrierType);
    b->cond = ca_condition_new(NULL);
    if (b->cond == NULL) {
        ca_decref(b);
        return memory_error();
    }
    b->parties = parties;
    b->state = CA_BARRIER_FILLING;
    *out = b;
    return NULL;
}

int64_t ca_barrier_parties(const ca_barrier *barrier) { return barrier->parties; }

int64_t ca_barrier_n_waiting(const ca_barrier *barrier) {
    return barrier->state == CA_BARRIER_FILLING ? barrier->count : 0;
}

bool ca_barrier_broken(const ca_barrier *barrier) { return barrier->state == CA_BARRIER_BROKEN; }

/* _block()'s predicate: not draining or resetting. */
static bool barrier_may_enter(void *arg) {
    const ca_barrier *b = arg;
    return b->state != CA_BARRIER_DRAINING && b->state != CA_BARRIER_RESETTING;
}

/* _wait()'s predicate: filling has ended. */
static bool barrier_filled(void *arg) { return ((const ca_barrier *)arg)->state != CA_BARRIER_FILLING; }

/* _exit(): the last task out of the barrier wakes the tasks waiting for it
 * to drain. */
static ca_error *barrier_exit(ca_barrier *b) {
    if (b->count != 0) return NULL;
    if (b->state == CA_BARRIER_RESETTING || b->state == CA_BARRIER_DRAINING) b->state = CA_BARRIER_FILLING;
    return ca_condition_notify_all(b->cond);
}

typedef struct barrier_frame {
    ca_cframe cf;
    ca_barrier *barrier;
    ca_error *err;    /* pending through `finally` / `__aexit__` (owned) */
    int64_t index;
} barrier_frame;

static void barrier_frame_finalize(barrier_frame *self) {
    CA_CLEAR(self->err);
    CA_CLEAR(self->barrier);
}

static barrier_frame *barrier_frame_new(const ca_cframe_type *type, ca_barrier *barrier) {
    barrier_frame *f = (barrier_frame *)ca_cframe_new(type, sizeof(barrier_frame));
    if (f != NULL) f->barrier = ca_incref(barrier);
    return f;
}

CA_CORO_TYPE(barrier_wait_type, barrier_frame, barrier_wait, barrier_frame_finalize);

CA_CORO_BODY(barrier_wait, barrier_frame) {
    ca_error *err;
    CA_BEGIN;
    /* async with self._cond: */
    CA_AWAIT_CORO(ca_condition_acquire(self->barrier->cond));
    /* _block(): wait while the barrier drains or resets. */
    CA_AWAIT_CORO_TRY(ca_condition_wait_for(self->barrier->cond, barrier_may_enter, self->barrier), self->err);
    if (self->err == NULL && self->barrier->state == CA_BARRIER_BROKEN)
        self->err = ca_error_new(&ca_BrokenBarrierError, "Barrier aborted");
    if (self->err == NULL) {
        self->index = self->barrier->count;
        self->barrier->count += 1;
        if (self->index + 1 == self->barrier->parties) {
            /* _release(): drain; tasks arriving now wait for the end of it. */
            self->barrier->state = CA_BARRIER_DRAINING;
            self->err = ca_condition_notify_all(self->barrier->cond);
        } else {
            /* _wait(): until filling ends; broken or reset raise. */
            CA_AWAIT_CORO_TRY(ca_condition_wait_for(self->barrier->cond, barrier_filled, self->barrier), self->err);
            if (self->err == NULL && (self->barrier->state == CA_BARRIER_BROKEN ||
                                      self->barrier->state == CA_BARRIER_RESETTING))
                self->err = ca_error_new(&ca_BrokenBarrierError, "Abort or reset of barrier");
        }
        /* finally: leave, waking tasks waiting for the barrier to drain. */
        self->barrier->count -= 1;
        self->err = raise_over(self->err, barrier_exit(self->barrier));
    }
    /* __aexit__ */
    self->err = raise_over(self->err, ca_condition_release(self->barrier->cond));
    if (self->err != NULL) {
        err = self->err;
        self->err = NULL;
        CA_RAISE(err);
    }
    CA_RETURN(ca_int(self->index));
    CA_END;
}

ca_coro *ca_barrier_wait(ca_barrier *barrier) {
    barrier_frame *f = barrier_frame_new(&barrier_wait_type, barrier);
    return f != NULL ? &f->cf.co : NULL;
}

CA_CORO_TYPE(barrier_reset_type, barrier_frame, barrier_reset, barrier_frame_finalize);

CA_CORO_BODY(barrier_reset, barrier_frame) {
    ca_error *err;
    CA_BEGIN;
    CA_AWAIT_CORO(ca_condition_acquire(self->barrier->cond));
    if (self->barrier->count > 0) {
        /* Tasks are inside: they raise BrokenBarrierError on their way out. */
        if (self->barrier->state != CA_BARRIER_RESETTING) self->barrier->state = CA_BARRIER_RESETTING;
    } else {
        self->barrier->state = CA_BARRIER_FILLING;
    }
    err = ca_condition_notify_all(self->barrier->cond);
    err = raise_over(err, ca_condition_release(self->barrier->cond));
    if (err != NULL) CA_RAISE(err);
    CA_END;
}

ca_coro *ca_barrier_reset(ca_barrier *barrier) {
    barrier_frame *f = barrier_frame_new(&barrier_reset_type, barrier);
    return f != NULL ? &f->cf.co : NULL;
}

CA_CORO_TYPE(barrier_abort_type, barrier_frame, barrier_abort, barrier_frame_finalize);

CA_CORO_BODY(barrier_abort, barrier_frame) {
    ca_error *err;
    CA_BEGIN;
    CA_AWAIT_CORO(ca_condition_acquire(self->barrier->cond));
    self->barrier->state = CA_BARRIER_BROKEN;
    err = ca_condition_notify_all(self->barrier->cond);
    err = raise_over(err, ca_condition_release(self->barrier->cond));
    if (err != NULL) CA_RAISE(err);
    CA_END;
}

ca_coro *ca_barrier_abort(ca_barrier *barrier) {
    barrier_frame *f = barrier_frame_new(&barrier_abort_type, barrier);
    return f != NULL ? &f->cf.co : NULL;
}

size_t ca_barrier_repr(const ca_barrier *barrier, char *buf, size_t size) {
    static const char *const names[] = {"filling", "draining", "resetting", "broken"};
    char state[64];
    if (barrier->state == CA_BARRIER_BROKEN) {
        snprintf(state, sizeof state, "broken");
    } else {
        snprintf(state, sizeof state, "%s, waiters:%lld/%lld", names[barrier->state],
                 (long long)ca_barrier_n_waiting(barrier), (long long)barrier->parties);
    }
    return locks_repr(barrier, "Barrier", state, NULL, buf, size);
}
