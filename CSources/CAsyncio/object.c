/*
 * object.c — object deallocation, owned values, the allocator seam and the
 * per-thread freelists every hot-path object comes from.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* MARK: - Objects */

void ca_object_dealloc(ca_object *self) {
    const ca_type *t = self->ob_type;
    while (t != NULL && t->tp_dealloc == NULL) t = t->tp_base;
    if (t != NULL) t->tp_dealloc(self);
}

bool ca_object_is_instance(const void *op, const ca_type *type) {
    if (op == NULL) return false;
    for (const ca_type *t = ((const ca_object *)op)->ob_type; t != NULL; t = t->tp_base)
        if (t == type) return true;
    return false;
}

/* MARK: - Values */

void ca_value_clear(ca_value *v) {
    switch (v->kind) {
    case CA_VALUE_PTR:
        if (v->u.ptr.dtor != NULL) v->u.ptr.dtor(v->u.ptr.p);
        break;
    case CA_VALUE_OBJECT:
        ca_decref(v->u.obj);
        break;
    default:
        break;
    }
    *v = ca_none();
}

ca_value ca_value_copy(const ca_value *v) {
    ca_value c = *v;
    if (c.kind == CA_VALUE_OBJECT) ca_incref(c.u.obj);
    else if (c.kind == CA_VALUE_PTR) c.u.ptr.dtor = NULL;
    return c;
}

/* MARK: - Allocator seam */

static void *(*alloc_malloc)(size_t) = malloc;
static void *(*alloc_realloc)(void *, size_t) = realloc;
static void (*alloc_free)(void *) = free;
static _Thread_local ca_alloc_stats alloc_stats;

void ca_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                      void (*free_fn)(void *)) {
    if (malloc_fn == NULL || realloc_fn == NULL || free_fn == NULL) {
        alloc_malloc = malloc;
        alloc_realloc = realloc;
        alloc_free = free;
        return;
    }
    alloc_malloc = malloc_fn;
    alloc_realloc = realloc_fn;
    alloc_free = free_fn;
}

ca_alloc_stats ca_alloc_stats_get(void) { return alloc_stats; }

void *ca_malloc(size_t size) {
    void *p = alloc_malloc(size ? size : 1);
    if (p != NULL) alloc_stats.allocs++;
    return p;
}

void *ca_calloc(size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    void *p = ca_malloc(n * size);
    if (p != NULL) memset(p, 0, n * size);
    return p;
}

void *ca_realloc(void *p, size_t size) {
    void *q = alloc_realloc(p, size ? size : 1);
    if (q != NULL) alloc_stats.allocs++;
    return q;
}

void ca_free(void *p) {
    if (p == NULL) return;
    alloc_stats.frees++;
    alloc_free(p);
}

char *ca_strdup(const char *s) {
    if (s == NULL) return NULL;
    size_t n = strlen(s) + 1;
    char *d = ca_malloc(n);
    if (d != NULL) memcpy(d, s, n);
    return d;
}

/* MARK: - Small-block freelists
 *
 * Size classes of 16 bytes up to CA_SMALL_MAX. Each thread keeps its own
 * lists, so the loop thread's hot paths take no lock; a block freed on
 * another thread simply joins that thread's list. Lists are bounded so a
 * burst does not pin memory forever, and are released at thread exit. */

#define SMALL_CLASSES (CA_SMALL_MAX / 16)
#define SMALL_LIST_CAP 65536

typedef struct small_block { struct small_block *next; } small_block;

typedef struct small_lists {
    small_block *head[SMALL_CLASSES];
    uint32_t count[SMALL_CLASSES];
    bool registered;
} small_lists;

static _Thread_local small_lists small;
static pthread_key_t small_key;
static pthread_once_t small_once = PTHREAD_ONCE_INIT;

void ca_context_thread_release(void);

static void small_thread_exit(void *unused) {
    ca_context_thread_release();
    ca_freelists_clear();
}
static void small_key_create(void) { (void)pthread_key_create(&small_key, small_thread_exit); }

static inline size_t small_class(size_t size) { return (size + 15) / 16 - 1; }

void *ca_small_alloc(size_t size) {
    if (size > CA_SMALL_MAX || size == 0) return ca_malloc(size);
    size_t c = small_class(size);
    small_block *b = small.head[c];
    if (CA_LIKELY(b != NULL)) {
        small.head[c] = b->next;
        small.count[c]--;
        return b;
    }
    if (!small.registered) {
        pthread_once(&small_once, small_key_create);
        (void)pthread_setspecific(small_key, &small);
        small.registered = true;
    }
    return ca_malloc((c + 1) * 16);
}

void ca_small_free(void *p, size_t size) {
    if (p == NULL) return;
    if (size > CA_SMALL_MAX || size == 0) {
        ca_free(p);
        return;
    }
    size_t c = small_class(size);
    if (small.count[c] >= SMALL_LIST_CAP) {
        ca_free(p);
        return;
    }
    small_block *b = p;
    b->next = small.head[c];
    small.head[c] = b;
    small.count[c]++;
}

void ca_freelists_clear(void) {
    for (size_t c = 0; c < SMALL_CLASSES; c++) {
        small_block *b = small.head[c];
        while (b != NULL) {
            small_block *next = b->next;
            ca_free(b);
            b = next;
        }
        small.head[c] = NULL;
        small.count[c] = 0;
    }
}

/* MARK: - Thread state */

_Thread_local ca_tstate ca_ts;

uint64_t ca_thread_id(void) {
    static _Thread_local uint64_t tid;
    if (tid == 0) tid = (uint64_t)syscall(SYS_gettid);
    return tid;
}

void ca_tstate_init(ca_tstate *ts) {
    if (!small.registered) {
        pthread_once(&small_once, small_key_create);
        (void)pthread_setspecific(small_key, &small);
        small.registered = true;
    }
    ts->tasks_head.next = &ts->tasks_head;
    ts->tasks_head.prev = &ts->tasks_head;
    ts->thread_id = ca_thread_id();
    ts->initialised = true;
}
