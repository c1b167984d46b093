/*
 * debug.h — the debug offsets table: a versioned, self-describing map of the
 * core's memory layout that external tools (asyncio-inspect, gdb, profilers)
 * read to find every thread's tasks without running code in the process.
 *
 * CPython 3.14 publishes `_AsyncioDebug` (Modules/_asynciomodule.c) in an ELF
 * section of the `_asyncio` extension; we do the same with three changes:
 * the table carries its own header (cookie, version, sizes), every sub-table
 * starts with its own size so a reader can skip fields it does not know, and
 * the table points at a registry of live threads and loops (CPython reaches
 * those through `_PyRuntime`). The section is named CA_DEBUG_SECTION in
 * whatever binary links the core, executable or shared object.
 *
 * Every field is a uint64_t: an offset or size computed with offsetof/sizeof
 * (so it cannot drift from the structs), a small constant, or an address
 * (ca_debug_addr). docs/debug-offsets.md describes each field, the width of
 * the member it locates and how to walk the structures.
 */
#ifndef CASYNCIO_DEBUG_H
#define CASYNCIO_DEBUG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ELF section holding `ca_debug_offsets`. */
#define CA_DEBUG_SECTION ".casyncio_debug"
/** The table's first 8 bytes (no terminating NUL). */
#define CA_DEBUG_COOKIE "xdebugca"
/** Bumped when a field changes meaning or a sub-table moves. Appending
 *  fields at the end of a sub-table does not bump it: readers use the
 *  sub-table sizes. */
#define CA_DEBUG_VERSION 1

/** An address stored on 8 bytes whatever the pointer size. */
typedef union ca_debug_addr {
    const void *ptr;
    uint64_t u64;
} ca_debug_addr;

/** The header. `size` covers the whole table; sub-tables follow at
 *  `header_size`, in the order of ca_debug_offsets, each starting with its
 *  own `table_size`. */
typedef struct ca_debug_header {
    char cookie[8];            /* CA_DEBUG_COOKIE */
    uint32_t version;          /* CA_DEBUG_VERSION */
    uint32_t size;             /* sizeof(ca_debug_offsets) */
    uint32_t header_size;      /* sizeof(ca_debug_header) */
    uint8_t pointer_size;      /* sizeof(void *) */
    uint8_t byte_order;        /* 1: little endian, 2: big endian */
    uint16_t flags;            /* 0 (reserved) */
    ca_debug_addr self_addr;   /* the table's own address, to validate a read */
    ca_debug_addr registry;    /* the ca_debug_registry of this copy of the core */
} ca_debug_header;

/* Each sub-table starts with `table_size` (its own size in bytes) and `size`
 * (the size of the object it describes); the other fields are offsets
 * inside that object unless their comment says otherwise. */

/** ca_object: the header every core object starts with. */
typedef struct ca_debug_object_offsets {
    uint64_t table_size;
    uint64_t size;             /* sizeof(ca_object) */
    uint64_t ob_refcnt;        /* intptr_t */
    uint64_t ob_type;          /* const ca_type * */
} ca_debug_object_offsets;

/** ca_type, and the addresses of the types a reader classifies objects by
 *  (types are static and compared by address). */
typedef struct ca_debug_type_offsets {
    uint64_t table_size;
    uint64_t size;             /* sizeof(ca_type) */
    uint64_t tp_name;          /* const char *, NUL-terminated */
    uint64_t tp_basicsize;     /* size_t */
    uint64_t tp_base;          /* const ca_type *, NULL at the root */
    ca_debug_addr future_type; /* &ca_FutureType */
    ca_debug_addr task_type;   /* &ca_TaskType */
    ca_debug_addr coro_type;   /* &ca_CoroType: every coroutine type derives from it */
    ca_debug_addr cframe_type; /* &ca_CFrameType: kit coroutines */
    ca_debug_addr loop_type;   /* &ca_LoopType */
} ca_debug_type_offsets;

/** ca_future (the CA_FUTURE_HEAD shared by Future and Task). */
typedef struct ca_debug_future_offsets {
    uint64_t table_size;
    uint64_t size;             /* sizeof(ca_future) */
    uint64_t loop;             /* ca_loop * */
    uint64_t callback0;        /* ca_callback: fn (NULL: slot empty) first */
    uint64_t callbacks;        /* ca_callback_list *: callbacks 2..n */
    uint64_t callback_list_len;/* offset of `len` (size_t) in ca_callback_list */
    uint64_t exception;        /* ca_error * */
    uint64_t result;           /* ca_value (see value_* below) */
    uint64_t cancel_msg;       /* char *, NULL: none */
    uint64_t awaited_by;       /* NULL, one ca_future *, or a ca_ptrset * */
    uint64_t state;            /* uint8_t: 0 pending, 1 cancelled, 2 finished */
    uint64_t is_task;          /* uint8_t: 1 for a Task */
    uint64_t awaited_by_is_set;/* uint8_t: 1 when awaited_by is a ca_ptrset * */
    uint64_t flags;            /* uint8_t holding the log_tb / blocking bits */
    uint64_t log_tb_mask;      /* bit of `flags` (a constant) */
    uint64_t blocking_mask;    /* bit of `flags` (a constant) */
    uint64_t value_size;       /* sizeof(ca_value) */
    uint64_t value_kind;       /* uint32 enum: 0 none, 1 int, 2 double, 3 ptr, 4 object */
    uint64_t value_payload;    /* the union: int64 / double / {ptr, dtor} / ca_object * */
    uint64_t ptrset_size;      /* sizeof(ca_ptrset) */
    uint64_t ptrset_used;      /* size_t: live keys */
    uint64_t ptrset_mask;      /* size_t: slots - 1 */
    uint64_t ptrset_table;     /* void **: mask + 1 slots, NULL empty */
    uint64_t ptrset_dummy;     /* the value marking a deleted slot (a constant) */
} ca_debug_future_offsets;

/** ca_task (after the future head). */
typedef struct ca_debug_task_offsets {
    uint64_t table_size;
    uint64_t size;             /* sizeof(ca_task) */
    uint64_t name;             /* char *: NULL until set or formatted, then use name_id */
    uint64_t name_id;          /* uint64_t N of the automatic name "Task-N" */
    uint64_t coro;             /* ca_coro *, NULL after an eager task finished */
    uint64_t fut_waiter;       /* ca_future *: what the task is blocked on */
    uint64_t node;             /* ca_llist_node: the per-thread all-tasks list */
    uint64_t node_next;        /* offset of `next` inside ca_llist_node */
    uint64_t node_prev;        /* offset of `prev` inside ca_llist_node */
    uint64_t num_cancels_requested; /* int32_t: cancelling() */
    uint64_t flags;            /* uint8_t holding must_cancel */
    uint64_t must_cancel_mask; /* bit of `flags` (a constant) */
    uint64_t tid;              /* uint64_t: creating thread; 0 once orphaned */
    uint64_t context;          /* ca_context * */
} ca_debug_task_offsets;

/** ca_coro: the header of every coroutine (the "frame" a stack shows). */
typedef struct ca_debug_coro_offsets {
    uint64_t table_size;
    uint64_t size;             /* sizeof(ca_coro) */
    uint64_t name;             /* const char *: qualified name */
    uint64_t filename;         /* const char * */
    uint64_t firstlineno;      /* int32_t */
    uint64_t lineno;           /* int32_t: line of the current await, 0 when none */
    uint64_t awaiting;         /* ca_coro *: the coroutine this one awaits, or NULL */
    uint64_t state;            /* uint8_t: 0 created, 1 running, 2 suspended, 3 closed */
} ca_debug_coro_offsets;

/** ca_loop. Tasks are listed per thread (ca_debug_tstate_offsets), as in
 *  CPython 3.14; a loop's tasks are the listed tasks whose future `loop`
 *  is that loop. */
typedef struct ca_debug_loop_offsets {
    uint64_t table_size;
    uint64_t size;             /* sizeof(ca_loop) */
    uint64_t thread_id;        /* uint64_t: the thread running it, 0 when not running */
    uint64_t running;          /* bool */
    uint64_t closed;           /* bool */
    uint64_t debug;            /* bool */
    uint64_t current_task;     /* ca_task *: the task whose step runs now */
    uint64_t ready_len;        /* size_t: handles in the ready queue */
    uint64_t timer_count;      /* size_t: timer heap entries, cancelled included */
    uint64_t iterations;       /* uint64_t: _run_once calls */
    uint64_t backend_ops;      /* const ca_backend_ops *, NULL once closed */
    uint64_t backend_ops_name; /* offset of `name` (const char *) in ca_backend_ops */
    uint64_t registry_next;    /* ca_loop *: the next registered loop */
} ca_debug_loop_offsets;

/** ca_tstate: the per-thread state (a thread-local of each thread). */
typedef struct ca_debug_tstate_offsets {
    uint64_t table_size;
    uint64_t size;             /* sizeof(ca_tstate) */
    uint64_t running_loop;     /* ca_loop * */
    uint64_t running_task;     /* ca_task * */
    uint64_t tasks_head;       /* ca_llist_node: head of the circular all-tasks list */
    uint64_t thread_id;        /* uint64_t: gettid() */
} ca_debug_tstate_offsets;

/** ca_debug_registry: every thread that used the core and every live loop. */
typedef struct ca_debug_registry_offsets {
    uint64_t table_size;
    uint64_t size;             /* sizeof(ca_debug_registry) */
    uint64_t generation;       /* uint64_t: odd while a writer changes the lists */
    uint64_t threads;          /* ca_debug_thread *: first registered thread */
    uint64_t loops;            /* ca_loop *: first live loop (then loop.registry_next) */
    uint64_t orphans;          /* ca_llist_node: tasks whose thread exited */
    uint64_t thread_count;     /* uint64_t */
    uint64_t loop_count;       /* uint64_t */
    uint64_t thread_node_size; /* sizeof(ca_debug_thread) */
    uint64_t thread_node_next; /* ca_debug_thread * */
    uint64_t thread_node_tstate; /* ca_tstate * */
} ca_debug_registry_offsets;

/** The table. */
typedef struct ca_debug_offsets {
    ca_debug_header header;
    ca_debug_object_offsets object;
    ca_debug_type_offsets type;
    ca_debug_future_offsets future;
    ca_debug_task_offsets task;
    ca_debug_coro_offsets coro;
    ca_debug_loop_offsets loop;
    ca_debug_tstate_offsets tstate;
    ca_debug_registry_offsets registry;
} ca_debug_offsets;

/** The table of this copy of the core (it lives in CA_DEBUG_SECTION). */
extern ca_debug_offsets ca_debug_offsets_table;

/** The same table, for callers that cannot name a mutable global (Swift). */
const ca_debug_offsets *ca_debug_offsets_get(void);

/** Threads currently registered (for tests and diagnostics; a thread
 *  registers the first time it uses the core). */
uint64_t ca_debug_thread_count(void);

#ifdef __cplusplus
}
#endif
#endif
