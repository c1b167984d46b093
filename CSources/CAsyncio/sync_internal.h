/*
 * sync_internal.h — what sync.c and queue.c share: the waiter deque (also
 * the drain waiters of stream.c and the Server waiters of transport.c) and
 * the loop binding of mixins._LoopBoundMixin.
 */
#ifndef CASYNCIO_SYNC_INTERNAL_H
#define CASYNCIO_SYNC_INTERNAL_H

#include "internal.h"

/* MARK: - Waiter deque (collections.deque of futures) */

/** Slot i (0 = the head). */
static inline ca_future *ca_waiters_at(const ca_waiters *w, size_t i) {
    return w->items[(w->head + i) & (w->cap - 1)];
}

/** Doubles the capacity (the slow path of append). MemoryError. */
ca_error *ca_waiters_grow(ca_waiters *w);

/** append(fut): keeps a new reference. MemoryError when it cannot grow. */
static inline ca_error *ca_waiters_append(ca_waiters *w, ca_future *fut) {
    if (CA_UNLIKELY(w->len == w->cap)) {
        ca_error *err = ca_waiters_grow(w);
        if (err != NULL) return err;
    }
    w->items[(w->head + w->len) & (w->cap - 1)] = ca_incref(fut);
    w->len++;
    return NULL;
}

/** popleft(): the head's reference passes to the caller; NULL when empty. */
static inline ca_future *ca_waiters_popleft(ca_waiters *w) {
    if (w->len == 0) return NULL;
    ca_future *fut = w->items[w->head];
    w->head = (w->head + 1) & (w->cap - 1);
    w->len--;
    return fut;
}

/** remove(fut): drops the first occurrence and its reference; false when
 *  absent (deque.remove's ValueError, which every caller here ignores). */
bool ca_waiters_remove(ca_waiters *w, ca_future *fut);

/** Drops every reference and the storage. */
void ca_waiters_clear(ca_waiters *w);

/* MARK: - Loop binding */

/** The slow path of ca_sync_get_loop: first binding, or an error. */
ca_error *ca_sync_bind_loop(ca_loop **bound, const void *owner, ca_loop *running, ca_loop **out);

/**
 * _get_loop(): binds `*bound` to the running loop on first use and returns
 * it in *out. Errors: RuntimeError "no running event loop" (CPython would
 * fail later on None); RuntimeError "<repr of owner> is bound to a different
 * event loop".
 */
static inline ca_error *ca_sync_get_loop(ca_loop **bound, const void *owner, ca_loop **out) {
    ca_loop *running = ca_tstate_get()->running_loop;
    if (CA_LIKELY(running != NULL && running == *bound)) {
        *out = running;
        return NULL;
    }
    return ca_sync_bind_loop(bound, owner, running, out);
}

/** A new waiter future of the owner's loop (bound as by ca_sync_get_loop),
 *  appended to `w`; *out receives a reference of the caller's own. Errors:
 *  those of ca_sync_get_loop; MemoryError. Inline: a queue's get() makes
 *  one each time it waits. */
static CA_ALWAYS_INLINE ca_error *ca_waiters_enqueue(ca_loop **bound, const void *owner, ca_waiters *w,
                                                     ca_future **out) {
    ca_loop *loop;
    *out = NULL;
    ca_error *err = ca_sync_get_loop(bound, owner, &loop);
    if (err != NULL) return err;
    ca_future *fut = ca_future_new_inline(loop); /* loop.create_future() */
    if (CA_UNLIKELY(fut == NULL)) return ca_error_new(&ca_MemoryError, NULL);
    err = ca_waiters_append(w, fut);
    if (err != NULL) {
        ca_decref(fut);
        return err;
    }
    *out = fut;
    return NULL;
}

#endif
