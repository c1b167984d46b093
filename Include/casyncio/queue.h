/*
 * queue.h — asyncio.Queue, LifoQueue and PriorityQueue (Lib/asyncio/queues.py),
 * with shutdown() and QueueShutDown as in CPython 3.13+.
 *
 * Items are ca_values owned by the queue between put and get: put takes the
 * caller's value, get hands it back. Storage is one array used as a ring
 * buffer (Queue), a stack (LifoQueue) or a binary heap (PriorityQueue); it
 * only grows, so put/get in steady state allocate nothing.
 *
 * PriorityQueue order: smallest first by a comparator given at creation.
 * The default comparator accepts INT and DOUBLE items and orders them
 * numerically (an INT and a DOUBLE compare by value; NaN compares equal to
 * everything); other kinds are refused with TypeError. Items that compare
 * equal come out in insertion order, as with heapq over (priority, count)
 * tuples — stricter than a bare heapq, which does not promise any order
 * among equal items.
 */
#ifndef CASYNCIO_QUEUE_H
#define CASYNCIO_QUEUE_H

#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ca_queue_kind {
    CA_QUEUE_FIFO = 0,     /* Queue */
    CA_QUEUE_LIFO = 1,     /* LifoQueue */
    CA_QUEUE_PRIORITY = 2, /* PriorityQueue */
} ca_queue_kind;

/** Orders PriorityQueue items: < 0 when a comes first, > 0 when b does, 0
 *  when they are equal (then insertion order decides). */
typedef int (*ca_queue_compare_fn)(const ca_value *a, const ca_value *b, void *arg);

/** One stored item; `seq` numbers the puts (the heap's tie-break). */
typedef struct ca_queue_entry {
    ca_value value;
    uint64_t seq;
} ca_queue_entry;

/** A queue. Read-only fields for tests and debuggers. */
typedef struct ca_queue {
    ca_object ob_base;
    ca_loop *loop;                /* bound on the first wait (strong) */
    int64_t maxsize;              /* <= 0: unbounded */
    ca_waiters getters;           /* _getters */
    ca_waiters putters;           /* _putters */
    int64_t unfinished_tasks;     /* _unfinished_tasks */
    ca_event *finished;           /* _finished (strong): set while unfinished_tasks is 0 */
    bool is_shutdown;             /* _is_shutdown */
    uint8_t kind;                 /* ca_queue_kind */
    ca_queue_entry *items;        /* _queue: item i is items[(head + i) & (cap - 1)] */
    size_t head;                  /* always 0 for LIFO and PRIORITY */
    size_t len;
    size_t cap;                   /* a power of two; 0 before the first put */
    uint64_t next_seq;
    ca_queue_compare_fn compare;  /* PRIORITY: NULL is the default numeric order */
    void *compare_arg;
} ca_queue;

extern const ca_type ca_QueueType;
extern const ca_type ca_LifoQueueType;     /* derives from ca_QueueType */
extern const ca_type ca_PriorityQueueType; /* derives from ca_QueueType */

/** Queue(maxsize): FIFO; maxsize <= 0 is unbounded. New reference; NULL
 *  when out of memory. */
ca_queue *ca_queue_new(int64_t maxsize);

/** LifoQueue(maxsize): the most recently put item comes out first. */
ca_queue *ca_lifo_queue_new(int64_t maxsize);

/** PriorityQueue(maxsize): the smallest item by `compare` (NULL: the
 *  default numeric order of this header's comment) comes out first;
 *  `arg` is passed to every comparison. */
ca_queue *ca_priority_queue_new(int64_t maxsize, ca_queue_compare_fn compare, void *arg);

/** The default PriorityQueue comparator (INT and DOUBLE by value). */
int ca_queue_default_compare(const ca_value *a, const ca_value *b, void *arg);

/** qsize(): the number of items in the queue. */
size_t ca_queue_qsize(const ca_queue *q);

/** maxsize: as given at creation (<= 0: unbounded). */
int64_t ca_queue_maxsize(const ca_queue *q);

/** empty(): true when no item is queued. */
bool ca_queue_empty(const ca_queue *q);

/** full(): true when maxsize > 0 and qsize() >= maxsize. */
bool ca_queue_full(const ca_queue *q);

/**
 * put_nowait(item): takes `item` in every case (released on error), stores
 * it, counts an unfinished task and wakes the first getter still waiting.
 * Errors: QueueShutDown after shutdown(); QueueFull; TypeError for a
 * non-numeric item in a PriorityQueue with the default comparator;
 * MemoryError when the storage cannot grow; the error of waking a getter
 * (the item then stays queued).
 */
struct ca_error *ca_queue_put_nowait(ca_queue *q, ca_value item);

/**
 * put(item): a coroutine (new reference; NULL when out of memory, `item`
 * then released) that waits in FIFO order while the queue is full, then
 * does put_nowait; returns None. `item` is taken. A putter woken but
 * cancelled before it runs passes the wake-up on. Errors: those of
 * put_nowait; QueueShutDown when shut down while waiting; CancelledError;
 * RuntimeError "no running event loop" / "... is bound to a different
 * event loop" when it has to wait.
 */
ca_coro *ca_queue_put(ca_queue *q, ca_value item);

/**
 * get_nowait(): moves the next item into *out (owned by the caller) and
 * wakes the first putter still waiting. On error *out is NONE. Errors:
 * QueueShutDown when empty after shutdown() (at once after
 * shutdown(immediate)); QueueEmpty; the error of waking a putter.
 */
struct ca_error *ca_queue_get_nowait(ca_queue *q, ca_value *out);

/**
 * get(): a coroutine (new reference; NULL when out of memory) that waits in
 * FIFO order while the queue is empty and returns the next item (owned by
 * the awaiter: CA_CORO_RESULT, or the task's result). A getter woken but
 * cancelled before it runs never takes an item and passes the wake-up on.
 * Errors: those of get_nowait; CancelledError; the loop binding errors of
 * ca_queue_put.
 */
ca_coro *ca_queue_get(ca_queue *q);

/* The two halves of one pass of get()'s loop, for CA_AWAIT_QUEUE_GET_TRY. */

/** Takes the next item into *out (owned) with *getter NULL, or queues a
 *  getter future and returns a new reference to it in *getter to await.
 *  Errors: QueueShutDown, the loop binding errors, the error of waking a
 *  putter, MemoryError. */
struct ca_error *ca_queue_get_begin(ca_queue *q, ca_value *out, ca_future **getter);
/** The bare `except:` around `await getter`: cancels and unqueues the
 *  getter and passes on a wake-up it cannot use. Takes and returns `err`. */
struct ca_error *ca_queue_get_abort(ca_queue *q, ca_future *getter, struct ca_error *err);
/** on_abandon hook: the same cleanup when the awaiting frame is closed. */
void ca_queue_get_abandon(ca_future *getter, void *queue);

/**
 * `try: *out = await q.get()` inside a kit body, without creating a
 * coroutine: get()'s own loop runs in the caller's frame, awaiting the same
 * getter futures in the same loop iterations. `q` and `out` must stay valid
 * across the suspension (frame fields: `self->q`, `&self->item`). Afterwards
 * `err_out` holds the error (owned) or NULL with the item in *out.
 */
#define CA_AWAIT_QUEUE_GET_TRY(q, out, err_out)                                   \
    do {                                                                        \
        for (;;) {                                                              \
            ca_future *ca__getter;                                              \
            (err_out) = ca_queue_get_begin((q), (out), &ca__getter);            \
            if ((err_out) != NULL || ca__getter == NULL) break;                 \
            ca__cf->on_abandon = ca_queue_get_abandon;                          \
            ca__cf->on_abandon_arg = (q);                                       \
            CA_AWAIT_TRY(ca__getter, (err_out));                                \
            ca__cf->on_abandon = NULL;                                          \
            if ((err_out) != NULL) {                                            \
                (err_out) = ca_queue_get_abort((q), ca__cf->awaited, (err_out)); \
                break;                                                          \
            }                                                                   \
        }                                                                       \
    } while (0)

/** `*out = await q.get()`: like CA_AWAIT_QUEUE_GET_TRY; an error propagates. */
#define CA_AWAIT_QUEUE_GET(q, out)                                              \
    do {                                                                        \
        struct ca_error *ca__qerr;                                              \
        CA_AWAIT_QUEUE_GET_TRY(q, out, ca__qerr);                               \
        if (ca__qerr != NULL) CA_RAISE(ca__qerr);                               \
    } while (0)

/**
 * task_done(): one item taken with get() is fully processed; join() returns
 * when every put item is. Errors: ValueError "task_done() called too many
 * times".
 */
struct ca_error *ca_queue_task_done(ca_queue *q);

/**
 * join(): a coroutine (new reference; NULL when out of memory) returning
 * None once every item put so far has been marked done; it does not suspend
 * when none is unfinished. Errors: CancelledError.
 */
ca_coro *ca_queue_join(ca_queue *q);

/**
 * shutdown(immediate): later puts raise QueueShutDown, gets raise it once
 * the queue is empty; every blocked put() and get() wakes to re-check. With
 * `immediate` the queue is emptied first (items released), the unfinished
 * count drops by the items removed and join() is released when it reaches
 * 0. Errors: the error of waking a waiter.
 */
struct ca_error *ca_queue_shutdown(ca_queue *q, bool immediate);

/** repr(): "<Queue at 0x... maxsize=0 _queue=[1, 2] _getters[1] _putters[1]
 *  tasks=2 shutdown>" (parts present only when non-empty / set); the class
 *  name is Queue, LifoQueue or PriorityQueue. Writes into buf (NUL-terminated
 *  when size > 0); returns the length needed. */
size_t ca_queue_repr(const ca_queue *q, char *buf, size_t size);

/** str(): as repr() without " at 0x...". */
size_t ca_queue_str(const ca_queue *q, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
