/*
 * object.c — object deallocation, owned values, the allocator seam and the
 * per-thread freelists every hot-path object comes from.
 */
#include "internal.h"
#include "debug_internal.h"

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

void ca_value_release(ca_value *v) {
    if (v->kind == CA_VALUE_PTR) {
        if (v->u.ptr.dtor != NULL) v->u.ptr.dtor(v->u.ptr.p);
    } else if (v->kind == CA_VALUE_OBJECT) {
        ca_decref(v->u.obj);
    }
}

/* MARK: - Allocator seam */

static void *(*alloc_malloc)(size_t) = malloc;
static void *(*alloc_realloc)(void *, size_t) = realloc;
static void (*alloc_free)(void *) = free;
static CA_TLS ca_alloc_stats alloc_stats;

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

CA_TLS ca_small_lists ca_small;
static pthread_key_t small_key;
static pthread_once_t small_once = PTHREAD_ONCE_INIT;

void ca_context_thread_release(void);

/* Returns a list's blocks to the allocator and gives it room for `room`. */
static void small_list_drain(ca_small_block **head, uint32_t *list_room, uint32_t room) {
    ca_small_block *b = *head;
    while (b != NULL) {
        ca_small_block *next = b->next;
        ca_free(b);
        b = next;
    }
    *head = NULL;
    *list_room = room;
}

/* Every list of the thread, small ones with room for `room` blocks and
 * medium ones for `medium_room`. */
static void small_lists_drain(uint32_t room, uint32_t medium_room) {
    for (size_t c = 0; c < CA_SMALL_CLASSES; c++) small_list_drain(&ca_small.head[c], &ca_small.room[c], room);
    for (size_t c = 0; c < CA_MEDIUM_CLASSES; c++)
        small_list_drain(&ca_small.medium_head[c], &ca_small.medium_room[c], medium_room);
}

/* Blocks freed after this (by later thread-exit destructors) go straight
 * back to the allocator: the lists keep no room. */
static void small_thread_exit(void *unused) {
    ca_debug_unregister_tstate(&ca_ts);
    ca_context_thread_release();
    small_lists_drain(0, 0);
}
static void small_key_create(void) { (void)pthread_key_create(&small_key, small_thread_exit); }

/* The first pooled allocation or free of a thread registers the exit hook
 * that returns its lists (and contexts) to the allocator, and only then
 * gives the lists room. */
static void small_register(void) {
    if (ca_small.registered) return;
    pthread_once(&small_once, small_key_create);
    if (pthread_setspecific(small_key, &ca_small) != 0) return; /* unpooled, then */
    ca_small.registered = true;
    for (size_t c = 0; c < CA_SMALL_CLASSES; c++) ca_small.room[c] = CA_SMALL_LIST_CAP;
    for (size_t c = 0; c < CA_MEDIUM_CLASSES; c++) ca_small.medium_room[c] = CA_MEDIUM_LIST_CAP;
}

static size_t medium_class(size_t size) {
    size_t c = 0;
    while (((size_t)1 << (CA_MEDIUM_MIN_SHIFT + c)) < size) c++;
    return c;
}

void *ca_small_alloc_slow(size_t size) {
    if (size == 0 || size > CA_MEDIUM_MAX) return ca_malloc(size);
    small_register();
    if (size <= CA_SMALL_MAX) return ca_malloc((ca_small_class(size) + 1) * 16);
    size_t c = medium_class(size);
    ca_small_block *b = ca_small.medium_head[c];
    if (b != NULL) {
        ca_small.medium_head[c] = b->next;
        ca_small.medium_room[c]++;
        return b;
    }
    return ca_malloc((size_t)1 << (CA_MEDIUM_MIN_SHIFT + c));
}

void ca_small_free_slow(void *p, size_t size) {
    if (p == NULL) return;
    if (size != 0 && size <= CA_MEDIUM_MAX && !ca_small.registered) {
        small_register();
        if (ca_small.registered) {
            ca_small_free(p, size);
            return;
        }
    }
    if (size > CA_SMALL_MAX && size <= CA_MEDIUM_MAX) {
        size_t c = medium_class(size);
        if (ca_small.medium_room[c] != 0) {
            ca_small_block *b = p;
            b->next = ca_small.medium_head[c];
            ca_small.medium_head[c] = b;
            ca_small.medium_room[c]--;
            return;
        }
    }
    ca_free(p);
}

void ca_freelists_clear(void) {
    bool r = ca_small.registered;
    small_lists_drain(r ? CA_SMALL_LIST_CAP : 0, r ? CA_MEDIUM_LIST_CAP : 0);
}

/* MARK: - Thread state */

CA_TLS ca_tstate ca_ts;

uint64_t ca_thread_id(void) {
    static CA_TLS uint64_t tid;
    if (tid == 0) tid = (uint64_t)syscall(SYS_gettid);
    return tid;
}

void ca_tstate_init(ca_tstate *ts) {
    small_register();
    ts->tasks_head.next = &ts->tasks_head;
    ts->tasks_head.prev = &ts->tasks_head;
    ts->thread_id = ca_thread_id();
    ts->initialised = true;
    ca_debug_register_tstate(ts);
}
