/*
 * debug_internal.h — the registry behind the debug offsets table and the
 * hooks the rest of the core calls (debug_offsets.c).
 *
 * A reader outside the process cannot find thread-locals, so every thread
 * that uses the core and every loop is entered in one global registry the
 * table points at. Writers (thread start/exit, loop creation/destruction,
 * orphaned tasks) take a mutex and bump `generation` to an odd value while
 * they change the lists, like a seqlock: a reader that sees the same even
 * value before and after its walk saw a consistent registry. Task lists are
 * not covered (registering a task stays lock-free); readers validate those
 * links themselves.
 */
#ifndef CASYNCIO_DEBUG_INTERNAL_H
#define CASYNCIO_DEBUG_INTERNAL_H

#include <casyncio/debug.h>
#include <pthread.h>

#include "internal.h"

/** A registered thread. It lives in the thread's own thread-local storage,
 *  so registering allocates nothing. */
typedef struct ca_debug_thread {
    struct ca_debug_thread *next;
    struct ca_debug_thread *prev;
    ca_tstate *tstate;
} ca_debug_thread;

typedef struct ca_debug_registry {
    _Atomic uint64_t generation;   /* even when stable, odd while being changed */
    ca_debug_thread *threads;      /* registration order */
    ca_loop *loops;                /* newest first, linked by ca_loop.registry_next */
    ca_llist_node orphans;         /* circular list of tasks whose thread exited */
    uint64_t thread_count;
    uint64_t loop_count;
    /* not published */
    ca_debug_thread *threads_tail;
    const ca_debug_offsets *table; /* keeps the table referenced (--gc-sections) */
    pthread_mutex_t lock;
} ca_debug_registry;

extern ca_debug_registry ca_debug_registry_global;

/** Enters the calling thread's state; call once ts is initialised
 *  (end of ca_tstate_init). */
void ca_debug_register_tstate(ca_tstate *ts);

/**
 * Removes a thread's state at thread exit (small_thread_exit, before the
 * thread-locals go away). Tasks still on its list are moved to the orphan
 * list, their task_tid set to 0: the list head is about to be freed with
 * the thread, and another thread may still own and finish those tasks
 * (CPython splices them onto the interpreter's list the same way).
 */
void ca_debug_unregister_tstate(ca_tstate *ts);

/** Enters a new loop (ca_loop_new) / removes it (loop_dealloc). */
void ca_debug_register_loop(ca_loop *loop);
void ca_debug_unregister_loop(ca_loop *loop);

#endif
