/*
 * object.h — the object header every core object starts with, owned values,
 * and the allocator seam.
 *
 * Like PyObject_HEAD, every core object (future, task, handle, error,
 * coroutine, context, loop) starts with a ca_object: a reference count and a
 * pointer to a static type descriptor whose name a debugger can read.
 * Loop-owned objects are single-threaded, so reference counts are plain
 * integers: only call_soon_threadsafe and its relatives cross threads.
 */
#ifndef CASYNCIO_OBJECT_H
#define CASYNCIO_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ca_object ca_object;
typedef struct ca_type ca_type;

/** Static descriptor of an object type. Never freed; compared by address. */
struct ca_type {
    const char *tp_name;                 /* "Future", "Task", "Handle", ... */
    size_t tp_basicsize;                 /* sizeof the object struct */
    void (*tp_dealloc)(ca_object *self); /* called when the refcount drops to 0 */
    const ca_type *tp_base;              /* Task's base is Future; NULL at the root */
};

/** The header of every core object. */
struct ca_object {
    intptr_t ob_refcnt;
    const ca_type *ob_type;
};

/** Immortal objects (static singletons) carry this refcount and are never freed. */
#define CA_IMMORTAL_REFCNT ((intptr_t)1 << 60)

/** Frees an object whose refcount reached zero. Internal; use ca_decref. */
void ca_object_dealloc(ca_object *self);

/** Takes a new reference; NULL is accepted and ignored. */
static inline void *ca_incref(void *op) {
    if (op != NULL) ((ca_object *)op)->ob_refcnt++;
    return op;
}

/** Drops a reference, freeing the object at zero; NULL is accepted and ignored. */
static inline void ca_decref(void *op) {
    if (op != NULL && --((ca_object *)op)->ob_refcnt == 0) ca_object_dealloc((ca_object *)op);
}

/** Replaces *slot with NULL and drops the reference it held (Py_CLEAR). */
#define CA_CLEAR(slot)                  \
    do {                                \
        void *ca_clear_tmp_ = (slot);   \
        (slot) = NULL;                  \
        ca_decref(ca_clear_tmp_);       \
    } while (0)

/** True when `op`'s type is `type` or derives from it. */
bool ca_object_is_instance(const void *op, const ca_type *type);

/* MARK: - Values */

/**
 * The kinds a future's result (or a context variable's value) can hold.
 * NONE, INT and DOUBLE cost no allocation; PTR carries an optional destructor
 * run when the last holder drops it; OBJECT holds a counted reference.
 */
typedef enum ca_value_kind {
    CA_VALUE_NONE = 0,
    CA_VALUE_INT = 1,
    CA_VALUE_DOUBLE = 2,
    CA_VALUE_PTR = 3,
    CA_VALUE_OBJECT = 4,
} ca_value_kind;

/**
 * An owned value. Whoever holds a ca_value owns what it refers to: an OBJECT
 * value owns one reference, a PTR value owns the pointer when `dtor` is set.
 * Passing a value into a function that "takes" it transfers that ownership.
 */
typedef struct ca_value {
    ca_value_kind kind;
    union {
        int64_t i;
        double d;
        struct {
            void *p;
            void (*dtor)(void *p); /* NULL: the pointer is borrowed, never freed */
        } ptr;
        ca_object *obj;
    } u;
} ca_value;

static inline ca_value ca_none(void) { ca_value v = {CA_VALUE_NONE, {0}}; return v; }
static inline ca_value ca_int(int64_t i) { ca_value v = {CA_VALUE_INT, {0}}; v.u.i = i; return v; }
static inline ca_value ca_double(double d) { ca_value v = {CA_VALUE_DOUBLE, {0}}; v.u.d = d; return v; }
/** A pointer value; `dtor` (may be NULL) runs when the value is released. */
static inline ca_value ca_ptr(void *p, void (*dtor)(void *)) {
    ca_value v = {CA_VALUE_PTR, {0}}; v.u.ptr.p = p; v.u.ptr.dtor = dtor; return v;
}
/** An object value that steals the caller's reference to `o`. */
static inline ca_value ca_obj(void *o) { ca_value v = {CA_VALUE_OBJECT, {0}}; v.u.obj = (ca_object *)o; return v; }

/** Releases what an OBJECT or owning PTR value holds (ca_value_clear's slow path). */
void ca_value_release(ca_value *v);

/** Releases what `v` owns and resets it to NONE. */
static inline void ca_value_clear(ca_value *v) {
    if (v->kind >= CA_VALUE_PTR) ca_value_release(v);
    v->kind = CA_VALUE_NONE;
    v->u.i = 0;
}

/**
 * Returns a second owned copy of `v`: OBJECT values gain a reference; PTR
 * values with a destructor cannot be shared and are copied as borrowed
 * (dtor NULL) — the original keeps ownership.
 */
static inline ca_value ca_value_copy(const ca_value *v) {
    ca_value c = *v;
    if (c.kind == CA_VALUE_OBJECT) ca_incref(c.u.obj);
    else if (c.kind == CA_VALUE_PTR) c.u.ptr.dtor = NULL;
    return c;
}

/* MARK: - Allocator seam */

/**
 * Replaces the allocator every core allocation goes through (default: the C
 * library's). Call before creating any object. `realloc_fn` may be NULL only
 * if `malloc_fn`/`free_fn` are NULL too (restore the default).
 */
void ca_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                      void (*free_fn)(void *));

/** Per-thread allocation counters: calls into the underlying allocator. */
typedef struct ca_alloc_stats {
    uint64_t allocs;   /* malloc + realloc calls that obtained memory */
    uint64_t frees;
} ca_alloc_stats;

/** Returns the calling thread's counters (monotonic; subtract two readings). */
ca_alloc_stats ca_alloc_stats_get(void);

/** Allocates through the seam; counted. Returns NULL when out of memory. */
void *ca_malloc(size_t size);
void *ca_calloc(size_t n, size_t size);
void *ca_realloc(void *p, size_t size);
void ca_free(void *p);
/** Duplicates a NUL-terminated string through the seam (NULL gives NULL). */
char *ca_strdup(const char *s);

/**
 * Releases the calling thread's freelists (futures, tasks, handles, small
 * blocks) back to the allocator. Useful before a leak check or thread exit.
 */
void ca_freelists_clear(void);

#ifdef __cplusplus
}
#endif
#endif
