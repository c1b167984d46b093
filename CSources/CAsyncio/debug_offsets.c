/*
 * debug_offsets.c — the debug offsets table (debug.h) in its ELF section,
 * and the registry of threads, loops and orphaned tasks it points at
 * (CPython 3.14: GENERATE_DEBUG_SECTION(AsyncioDebug, ...) in
 * Modules/_asynciomodule.c, and the runtime's interpreter/thread lists).
 */
#include "debug_internal.h"

/* MARK: - The table */

#if defined(__has_attribute)
#if __has_attribute(retain)
#define CA_DEBUG_RETAIN __attribute__((retain)) /* survives --gc-sections */
#endif
#endif
#ifndef CA_DEBUG_RETAIN
#define CA_DEBUG_RETAIN
#endif

#define CA_DEBUG_SECTION_ATTR \
    __attribute__((section(CA_DEBUG_SECTION), used, aligned(16))) CA_DEBUG_RETAIN

/* The bitfields cannot be offsetof'ed: the flag bytes follow the last whole
 * member, and the test checks the bytes and masks against the compiler. */
#define CA_FUTURE_FLAGS_OFFSET (offsetof(ca_future, fut_awaited_by_is_set) + 1)
#define CA_TASK_FLAGS_OFFSET (offsetof(ca_task, task_awaited_by_is_set) + 2)

#define SUBTABLE(type) .table_size = sizeof(type)

ca_debug_registry ca_debug_registry_global = {
    .orphans = {&ca_debug_registry_global.orphans, &ca_debug_registry_global.orphans},
    .table = &ca_debug_offsets_table,
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

CA_DEBUG_SECTION_ATTR ca_debug_offsets ca_debug_offsets_table = {
    .header = {
        .cookie = {'x', 'd', 'e', 'b', 'u', 'g', 'c', 'a'},
        .version = CA_DEBUG_VERSION,
        .size = sizeof(ca_debug_offsets),
        .header_size = sizeof(ca_debug_header),
        .pointer_size = sizeof(void *),
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        .byte_order = 1,
#else
        .byte_order = 2,
#endif
        .self_addr = {.ptr = &ca_debug_offsets_table},
        .registry = {.ptr = &ca_debug_registry_global},
    },
    .object = {
        SUBTABLE(ca_debug_object_offsets),
        .size = sizeof(ca_object),
        .ob_refcnt = offsetof(ca_object, ob_refcnt),
        .ob_type = offsetof(ca_object, ob_type),
    },
    .type = {
        SUBTABLE(ca_debug_type_offsets),
        .size = sizeof(ca_type),
        .tp_name = offsetof(ca_type, tp_name),
        .tp_basicsize = offsetof(ca_type, tp_basicsize),
        .tp_base = offsetof(ca_type, tp_base),
        .future_type = {.ptr = &ca_FutureType},
        .task_type = {.ptr = &ca_TaskType},
        .coro_type = {.ptr = &ca_CoroType},
        .cframe_type = {.ptr = &ca_CFrameType},
        .loop_type = {.ptr = &ca_LoopType},
    },
    .future = {
        SUBTABLE(ca_debug_future_offsets),
        .size = sizeof(ca_future),
        .loop = offsetof(ca_future, fut_loop),
        .callback0 = offsetof(ca_future, fut_callback0),
        .callbacks = offsetof(ca_future, fut_callbacks),
        .callback_list_len = offsetof(ca_callback_list, len),
        .exception = offsetof(ca_future, fut_exception),
        .result = offsetof(ca_future, fut_result),
        .cancel_msg = offsetof(ca_future, fut_cancel_msg),
        .awaited_by = offsetof(ca_future, fut_awaited_by),
        .state = offsetof(ca_future, fut_state),
        .is_task = offsetof(ca_future, fut_is_task),
        .awaited_by_is_set = offsetof(ca_future, fut_awaited_by_is_set),
        .flags = CA_FUTURE_FLAGS_OFFSET,
        .log_tb_mask = 0x1,
        .blocking_mask = 0x2,
        .value_size = sizeof(ca_value),
        .value_kind = offsetof(ca_value, kind),
        .value_payload = offsetof(ca_value, u),
        .ptrset_size = sizeof(ca_ptrset),
        .ptrset_used = offsetof(ca_ptrset, used),
        .ptrset_mask = offsetof(ca_ptrset, mask),
        .ptrset_table = offsetof(ca_ptrset, table),
        .ptrset_dummy = (uint64_t)(uintptr_t)CA_PTRSET_DUMMY,
    },
    .task = {
        SUBTABLE(ca_debug_task_offsets),
        .size = sizeof(ca_task),
        .name = offsetof(ca_task, task_name),
        .name_id = offsetof(ca_task, task_name_id),
        .coro = offsetof(ca_task, task_coro),
        .fut_waiter = offsetof(ca_task, task_fut_waiter),
        .node = offsetof(ca_task, task_node),
        .node_next = offsetof(ca_llist_node, next),
        .node_prev = offsetof(ca_llist_node, prev),
        .num_cancels_requested = offsetof(ca_task, task_num_cancels_requested),
        .flags = CA_TASK_FLAGS_OFFSET,
        .must_cancel_mask = 0x1,
        .tid = offsetof(ca_task, task_tid),
        .context = offsetof(ca_task, task_context),
    },
    .coro = {
        SUBTABLE(ca_debug_coro_offsets),
        .size = sizeof(ca_coro),
        .name = offsetof(ca_coro, co_name),
        .filename = offsetof(ca_coro, co_filename),
        .firstlineno = offsetof(ca_coro, co_firstlineno),
        .lineno = offsetof(ca_coro, co_lineno),
        .awaiting = offsetof(ca_coro, co_awaiting),
        .state = offsetof(ca_coro, co_state),
    },
    .loop = {
        SUBTABLE(ca_debug_loop_offsets),
        .size = sizeof(ca_loop),
        .thread_id = offsetof(ca_loop, thread_id),
        .running = offsetof(ca_loop, running),
        .closed = offsetof(ca_loop, closed),
        .debug = offsetof(ca_loop, debug),
        .current_task = offsetof(ca_loop, current_task),
        .ready_len = offsetof(ca_loop, ready_len),
        .timer_count = offsetof(ca_loop, heap_len),
        .iterations = offsetof(ca_loop, iterations),
        .backend_ops = offsetof(ca_loop, backend_ops),
        .backend_ops_name = offsetof(ca_backend_ops, name),
        .registry_next = offsetof(ca_loop, registry_next),
    },
    .tstate = {
        SUBTABLE(ca_debug_tstate_offsets),
        .size = sizeof(ca_tstate),
        .running_loop = offsetof(ca_tstate, running_loop),
        .running_task = offsetof(ca_tstate, running_task),
        .tasks_head = offsetof(ca_tstate, tasks_head),
        .thread_id = offsetof(ca_tstate, thread_id),
    },
    .registry = {
        SUBTABLE(ca_debug_registry_offsets),
        .size = sizeof(ca_debug_registry),
        .generation = offsetof(ca_debug_registry, generation),
        .threads = offsetof(ca_debug_registry, threads),
        .loops = offsetof(ca_debug_registry, loops),
        .orphans = offsetof(ca_debug_registry, orphans),
        .thread_count = offsetof(ca_debug_registry, thread_count),
        .loop_count = offsetof(ca_debug_registry, loop_count),
        .thread_node_size = sizeof(ca_debug_thread),
        .thread_node_next = offsetof(ca_debug_thread, next),
        .thread_node_tstate = offsetof(ca_debug_thread, tstate),
    },
};

/* The published widths of the fields docs/debug-offsets.md describes; a
 * change here is a format change (bump CA_DEBUG_VERSION). */
_Static_assert(sizeof(((ca_future *)0)->fut_state) == 1, "future state is a byte");
_Static_assert(sizeof(((ca_task *)0)->task_num_cancels_requested) == 4, "cancel count is an int32");
_Static_assert(sizeof(((ca_task *)0)->task_name_id) == 8, "name id is a uint64");
_Static_assert(sizeof(((ca_coro *)0)->co_lineno) == 4, "line numbers are int32");
_Static_assert(sizeof(((ca_coro *)0)->co_state) == 1, "coroutine state is a byte");
_Static_assert(sizeof(((ca_tstate *)0)->thread_id) == 8, "thread ids are uint64");
_Static_assert(sizeof(((ca_loop *)0)->thread_id) == 8, "thread ids are uint64");
_Static_assert(sizeof(((ca_loop *)0)->running) == 1, "loop flags are bools");

const ca_debug_offsets *ca_debug_offsets_get(void) { return &ca_debug_offsets_table; }

/* MARK: - The registry */

static CA_TLS ca_debug_thread debug_thread;

static inline void registry_write_begin(ca_debug_registry *r) {
    pthread_mutex_lock(&r->lock);
    atomic_fetch_add_explicit(&r->generation, 1, memory_order_acq_rel);
}

static inline void registry_write_end(ca_debug_registry *r) {
    atomic_fetch_add_explicit(&r->generation, 1, memory_order_release);
    pthread_mutex_unlock(&r->lock);
}

/* Moves every task of `ts` to the end of the orphan list. Called with the
 * registry lock held. */
static void splice_orphans(ca_debug_registry *r, ca_tstate *ts) {
    ca_llist_node *head = &ts->tasks_head;
    if (head->next == NULL || head->next == head) return;
    for (ca_llist_node *n = head->next; n != head; n = n->next)
        ((ca_task *)((char *)n - offsetof(ca_task, task_node)))->task_tid = 0;
    ca_llist_node *first = head->next, *last = head->prev;
    ca_llist_node *tail = r->orphans.prev;
    first->prev = tail;
    tail->next = first;
    last->next = &r->orphans;
    r->orphans.prev = last;
    head->next = head->prev = head;
}

/* fork(): the child has only the forking thread. The other threads' states
 * stay mapped but will never run or exit, so their tasks become orphans and
 * their nodes leave the list, as they would at thread exit; the lock, held
 * across the fork, starts over. */
static void registry_prefork(void) { pthread_mutex_lock(&ca_debug_registry_global.lock); }
static void registry_postfork_parent(void) { pthread_mutex_unlock(&ca_debug_registry_global.lock); }
static void registry_postfork_child(void) {
    ca_debug_registry *r = &ca_debug_registry_global;
    pthread_mutex_init(&r->lock, NULL);
    for (ca_debug_thread *t = r->threads; t != NULL; t = t->next)
        if (t != &debug_thread) splice_orphans(r, t->tstate);
    r->threads = r->threads_tail = NULL;
    r->thread_count = 0;
    if (debug_thread.tstate != NULL) {
        debug_thread.next = debug_thread.prev = NULL;
        r->threads = r->threads_tail = &debug_thread;
        r->thread_count = 1;
    }
    atomic_store_explicit(&r->generation, (atomic_load_explicit(&r->generation, memory_order_relaxed) + 2) & ~1ull,
                          memory_order_release);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void registry_atfork(void) {
    (void)pthread_atfork(registry_prefork, registry_postfork_parent, registry_postfork_child);
}

void ca_debug_register_tstate(ca_tstate *ts) {
    ca_debug_registry *r = &ca_debug_registry_global;
    ca_debug_thread *t = &debug_thread;
    if (t->tstate != NULL) return;
    pthread_once(&atfork_once, registry_atfork);
    registry_write_begin(r);
    t->tstate = ts;
    t->next = NULL;
    t->prev = r->threads_tail;
    if (r->threads_tail != NULL) r->threads_tail->next = t;
    else r->threads = t;
    r->threads_tail = t;
    r->thread_count++;
    registry_write_end(r);
}

void ca_debug_unregister_tstate(ca_tstate *ts) {
    ca_debug_registry *r = &ca_debug_registry_global;
    ca_debug_thread *t = &debug_thread;
    registry_write_begin(r);
    splice_orphans(r, ts);
    if (t->tstate == ts) {
        if (t->prev != NULL) t->prev->next = t->next;
        else r->threads = t->next;
        if (t->next != NULL) t->next->prev = t->prev;
        else r->threads_tail = t->prev;
        t->next = t->prev = NULL;
        t->tstate = NULL;
        r->thread_count--;
    }
    registry_write_end(r);
}

void ca_debug_register_loop(ca_loop *loop) {
    ca_debug_registry *r = &ca_debug_registry_global;
    registry_write_begin(r);
    loop->registry_next = r->loops;
    r->loops = loop;
    r->loop_count++;
    registry_write_end(r);
}

void ca_debug_unregister_loop(ca_loop *loop) {
    ca_debug_registry *r = &ca_debug_registry_global;
    registry_write_begin(r);
    for (ca_loop **p = &r->loops; *p != NULL; p = &(*p)->registry_next) {
        if (*p == loop) {
            *p = loop->registry_next;
            loop->registry_next = NULL;
            r->loop_count--;
            break;
        }
    }
    registry_write_end(r);
}

void ca_debug_unlink_orphan(ca_task *task) {
    ca_debug_registry *r = &ca_debug_registry_global;
    registry_write_begin(r);
    ca_llist_node *n = &task->task_node;
    if (n->next != NULL) {
        n->prev->next = n->next;
        n->next->prev = n->prev;
        n->next = n->prev = NULL;
    }
    registry_write_end(r);
}

uint64_t ca_debug_thread_count(void) {
    ca_debug_registry *r = &ca_debug_registry_global;
    pthread_mutex_lock(&r->lock);
    uint64_t n = r->thread_count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

