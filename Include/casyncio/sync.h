/*
 * sync.h — asyncio's synchronization primitives (Lib/asyncio/locks.py):
 * Lock, Event, Condition, Semaphore, BoundedSemaphore and Barrier.
 *
 * Each primitive is a refcounted core object used on one loop's thread.
 * What may wait (acquire, wait, Barrier's reset/abort) is a kit coroutine:
 * await it with CA_AWAIT_CORO from another kit coroutine or run it as a
 * task. As in CPython, a fast path that applies (a free lock with no
 * uncancelled waiter queued, a set event, ...) returns without suspending,
 * so it costs no loop iteration.
 *
 * Waiters queue FIFO as futures of the loop the primitive binds to on its
 * first wait (mixins._LoopBoundMixin). Nobody barges past a waiter that was
 * woken but has not run yet, and a waiter cancelled after its wake-up passes
 * the wake-up on (`_wake_up_first`, `_wake_up_next`, `Condition._notify`).
 *
 * Python's True / False travel as INT values 1 / 0.
 */
#ifndef CASYNCIO_SYNC_H
#define CASYNCIO_SYNC_H

#include "coro.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A FIFO of waiter futures (the `collections.deque` of locks.py): a ring
 * buffer of owned references whose capacity only grows, so waiting in
 * steady state allocates nothing. Slot i is items[(head + i) & (cap - 1)].
 */
typedef struct ca_waiters {
    ca_future **items;
    size_t head;
    size_t len;
    size_t cap; /* a power of two; 0 before the first waiter */
} ca_waiters;

/* MARK: - Lock */

/** asyncio.Lock. Read-only fields for tests and debuggers. */
typedef struct ca_lock {
    ca_object ob_base;
    ca_loop *loop;       /* bound on the first wait (strong), NULL until then */
    ca_waiters waiters;  /* _waiters */
    bool locked;         /* _locked */
} ca_lock;

extern const ca_type ca_LockType;

/** Lock(): a new unlocked lock (new reference; NULL when out of memory). */
ca_lock *ca_lock_new(void);

/** locked(). */
bool ca_lock_locked(const ca_lock *lock);

/**
 * acquire(): a coroutine (new reference; NULL when out of memory) returning
 * INT 1. It does not suspend when the lock is free and every queued waiter
 * is cancelled. Otherwise it queues a waiter and suspends until release()
 * hands it the lock; cancelled, it passes the wake-up on and raises the
 * CancelledError. Errors: RuntimeError "no running event loop" or "<repr>
 * is bound to a different event loop" when it has to wait; MemoryError.
 */
ca_coro *ca_lock_acquire(ca_lock *lock);

/**
 * release(): unlocks and wakes the first waiter that is not done yet.
 * Errors: RuntimeError "Lock is not acquired." when unlocked; the error of
 * waking the waiter (RuntimeError "Event loop is closed").
 */
struct ca_error *ca_lock_release(ca_lock *lock);

/** repr(): "<asyncio.locks.Lock object at 0x... [locked, waiters:1]>".
 *  Writes into buf (NUL-terminated when size > 0); returns the length needed. */
size_t ca_lock_repr(const ca_lock *lock, char *buf, size_t size);

/* MARK: - Event */

/** asyncio.Event. */
typedef struct ca_event {
    ca_object ob_base;
    ca_loop *loop;       /* bound on the first wait (strong) */
    ca_waiters waiters;  /* _waiters */
    bool value;          /* _value */
} ca_event;

extern const ca_type ca_EventType;

/** Event(): a new clear event (new reference; NULL when out of memory). */
ca_event *ca_event_new(void);

/** is_set(). */
bool ca_event_is_set(const ca_event *event);

/**
 * set(): sets the flag and wakes every waiter (no-op when already set).
 * Errors: the error of waking a waiter (RuntimeError "Event loop is closed").
 */
struct ca_error *ca_event_set(ca_event *event);

/** clear(): resets the flag; waiters already woken still return. */
void ca_event_clear(ca_event *event);

/**
 * wait(): a coroutine (new reference; NULL when out of memory) returning
 * INT 1 once the flag is set; it does not suspend when the flag is set
 * already. Errors: CancelledError; the loop binding errors of
 * ca_lock_acquire; MemoryError.
 */
ca_coro *ca_event_wait(ca_event *event);

/** repr(): "<asyncio.locks.Event object at 0x... [unset, waiters:2]>". */
size_t ca_event_repr(const ca_event *event, char *buf, size_t size);

/* MARK: - Condition */

/** asyncio.Condition. */
typedef struct ca_condition {
    ca_object ob_base;
    ca_loop *loop;       /* bound on the first wait (strong) */
    ca_lock *lock;       /* _lock (strong) */
    ca_waiters waiters;  /* _waiters */
} ca_condition;

extern const ca_type ca_ConditionType;

/** A predicate for ca_condition_wait_for; called with the lock held. */
typedef bool (*ca_predicate_fn)(void *arg);

/**
 * Condition(lock): `lock` NULL creates a new Lock, otherwise a new
 * reference to it is kept. Returns a new reference; NULL when out of memory.
 */
ca_condition *ca_condition_new(ca_lock *lock);

/** locked(): the underlying lock's. */
bool ca_condition_locked(const ca_condition *cond);

/** acquire(): ca_lock_acquire on the underlying lock (a new coroutine
 *  reference; NULL when out of memory). */
ca_coro *ca_condition_acquire(ca_condition *cond);

/** release(): ca_lock_release on the underlying lock, with its errors. */
struct ca_error *ca_condition_release(ca_condition *cond);

/**
 * wait(): a coroutine (new reference; NULL when out of memory) that
 * releases the lock, waits to be notified, re-acquires the lock and
 * returns INT 1. The lock is re-acquired even when the wait is cancelled;
 * a cancellation that arrives while re-acquiring is held back until the
 * lock is obtained, then the most recent CancelledError is raised. Whenever
 * wait() raises, it passes a notification on to the next waiter (3.13+).
 * Errors: RuntimeError "cannot wait on un-acquired lock"; CancelledError;
 * the loop binding errors of ca_lock_acquire; MemoryError.
 */
ca_coro *ca_condition_wait(ca_condition *cond);

/**
 * wait_for(predicate): a coroutine (new reference; NULL when out of memory)
 * that calls pred(arg) and waits until it returns true; returns INT 1.
 * A predicate already true does not suspend and needs no lock. Errors: those
 * of ca_condition_wait.
 */
ca_coro *ca_condition_wait_for(ca_condition *cond, ca_predicate_fn pred, void *arg);

/**
 * notify(n): wakes up to `n` waiters that are not woken yet, in FIFO order;
 * each then re-acquires the lock. Errors: RuntimeError "cannot notify on
 * un-acquired lock"; the error of waking a waiter.
 */
struct ca_error *ca_condition_notify(ca_condition *cond, size_t n);

/** notify_all(): notify(len(waiters)). Errors: those of ca_condition_notify. */
struct ca_error *ca_condition_notify_all(ca_condition *cond);

/** repr(): "<asyncio.locks.Condition object at 0x... [unlocked, waiters:1]>". */
size_t ca_condition_repr(const ca_condition *cond, char *buf, size_t size);

/* MARK: - Semaphore and BoundedSemaphore */

/** asyncio.Semaphore and asyncio.BoundedSemaphore (type ca_BoundedSemaphoreType). */
typedef struct ca_semaphore {
    ca_object ob_base;
    ca_loop *loop;       /* bound on the first wait (strong) */
    ca_waiters waiters;  /* _waiters */
    int64_t value;       /* _value */
    int64_t bound_value; /* BoundedSemaphore's _bound_value (the initial value) */
} ca_semaphore;

extern const ca_type ca_SemaphoreType;
extern const ca_type ca_BoundedSemaphoreType; /* derives from ca_SemaphoreType */

/**
 * Semaphore(value): a new reference in *out. Errors: ValueError "Semaphore
 * initial value must be >= 0"; MemoryError.
 */
struct ca_error *ca_semaphore_new(int64_t value, ca_semaphore **out);

/** BoundedSemaphore(value): as ca_semaphore_new, release() checks the bound. */
struct ca_error *ca_bounded_semaphore_new(int64_t value, ca_semaphore **out);

/** locked(): true when acquire() would wait: the value is 0, or some queued
 *  waiter is not cancelled (FIFO: others go first even if value > 0). */
bool ca_semaphore_locked(const ca_semaphore *sem);

/**
 * acquire(): a coroutine (new reference; NULL when out of memory) that
 * decrements the value, first waiting in FIFO order when locked(); returns
 * INT 1. Errors: CancelledError (a wake-up it received is passed on); the
 * loop binding errors of ca_lock_acquire; MemoryError.
 */
ca_coro *ca_semaphore_acquire(ca_semaphore *sem);

/**
 * release(): increments the value and wakes the first waiter not woken yet.
 * Errors: ValueError "BoundedSemaphore released too many times" (bounded,
 * value already at the initial value); the error of waking a waiter.
 */
struct ca_error *ca_semaphore_release(ca_semaphore *sem);

/** repr(): "<asyncio.locks.Semaphore object at 0x... [unlocked, value:1]>",
 *  "[locked, waiters:2]"; BoundedSemaphore names its class. */
size_t ca_semaphore_repr(const ca_semaphore *sem, char *buf, size_t size);

/* MARK: - Barrier */

/** _BarrierState */
typedef enum ca_barrier_state {
    CA_BARRIER_FILLING = 0,
    CA_BARRIER_DRAINING = 1,
    CA_BARRIER_RESETTING = 2,
    CA_BARRIER_BROKEN = 3,
} ca_barrier_state;

/** asyncio.Barrier. */
typedef struct ca_barrier {
    ca_object ob_base;
    ca_condition *cond;  /* _cond (strong): notifies every task when the state changes */
    int64_t parties;     /* _parties */
    int64_t count;       /* _count: tasks inside wait() */
    uint8_t state;       /* ca_barrier_state */
} ca_barrier;

extern const ca_type ca_BarrierType;

/**
 * Barrier(parties): a new reference in *out. Errors: ValueError "parties
 * must be >= 1"; MemoryError.
 */
struct ca_error *ca_barrier_new(int64_t parties, ca_barrier **out);

/**
 * wait(): a coroutine (new reference; NULL when out of memory) that waits
 * until `parties` tasks are waiting, then returns this task's INT index,
 * unique among them, from 0 to parties-1. Tasks arriving while the barrier
 * drains or resets wait for it to fill again. Errors: BrokenBarrierError
 * "Barrier aborted" (broken on entry) or "Abort or reset of barrier"
 * (broken or reset while waiting); CancelledError; MemoryError.
 */
ca_coro *ca_barrier_wait(ca_barrier *barrier);

/**
 * reset(): a coroutine (new reference; NULL when out of memory) returning
 * None that puts the barrier back to filling; tasks waiting in it get
 * BrokenBarrierError. Waits only for the barrier's internal lock.
 */
ca_coro *ca_barrier_reset(ca_barrier *barrier);

/**
 * abort(): a coroutine (new reference; NULL when out of memory) returning
 * None that breaks the barrier: current and later wait() calls raise
 * BrokenBarrierError until reset().
 */
ca_coro *ca_barrier_abort(ca_barrier *barrier);

/** parties: the number of tasks needed to trip the barrier. */
int64_t ca_barrier_parties(const ca_barrier *barrier);

/** n_waiting: the tasks waiting in the barrier while it fills, else 0. */
int64_t ca_barrier_n_waiting(const ca_barrier *barrier);

/** broken: true after abort() until reset(). */
bool ca_barrier_broken(const ca_barrier *barrier);

/** repr(): "<asyncio.locks.Barrier object at 0x... [filling, waiters:2/5]>",
 *  or "[broken]". */
size_t ca_barrier_repr(const ca_barrier *barrier, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
