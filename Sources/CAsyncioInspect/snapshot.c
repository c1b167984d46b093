/*
 * snapshot.c — walks the registry, the task lists, the coroutine chains and
 * the awaited_by sets of a target, as Modules/_remote_debugging_module.c
 * does for CPython (get_all_awaited_by): per thread, the tasks on its list
 * with their name, coroutine stack (innermost first) and awaiters; then the
 * orphaned tasks as thread 0.
 *
 * Nothing read from the target is trusted: a pointer is followed only once
 * aligned and non-NULL, an object only used once its type is the expected
 * one, a list node only once its back-link matches, and every walk stops at
 * a bound. On a live target the lists may change under us; a mismatch is
 * "torn" and the whole walk is retried with a fresh cache.
 */
#include "inspect_internal.h"

#include <casyncio/debug.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TABLE_SIZE 65536u
#define MAX_OBJECT_SIZE 65536u
#define MAX_TYPE_DEPTH 16

cai_limits cai_default_limits(void) {
    return (cai_limits){
        .max_threads = 4096,
        .max_loops = 4096,
        .max_tasks = 1u << 20,
        .max_depth = 1024,
        .max_awaiters = 1u << 16,
        .max_string = 1024,
        .retries = 8,
    };
}

/* MARK: - Small growable arrays and maps */

#define VEC_PUSH(ptr, len, cap, value, fail_label)                         \
    do {                                                                   \
        if ((len) == (cap)) {                                              \
            size_t ncap__ = (cap) ? (cap) * 2 : 64;                        \
            void *p__ = realloc((ptr), ncap__ * sizeof *(ptr));            \
            if (p__ == NULL) goto fail_label;                              \
            (ptr) = p__;                                                   \
            (cap) = ncap__;                                                \
        }                                                                  \
        (ptr)[(len)++] = (value);                                          \
    } while (0)

/* uint64 -> uint64 map, open addressing; key 0 is never stored. */
typedef struct u64map {
    uint64_t *keys;
    uint64_t *vals;
    size_t cap;
    size_t used;
} u64map;

static size_t u64map_slot(const u64map *m, uint64_t key) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (m->cap - 1);
}

static bool u64map_get(const u64map *m, uint64_t key, uint64_t *val) {
    if (m->cap == 0) return false;
    for (size_t j = u64map_slot(m, key);; j = (j + 1) & (m->cap - 1)) {
        if (m->keys[j] == 0) return false;
        if (m->keys[j] == key) {
            *val = m->vals[j];
            return true;
        }
    }
}

static int u64map_put(u64map *m, uint64_t key, uint64_t val) {
    if ((m->used + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 256;
        uint64_t *keys = calloc(ncap, sizeof *keys), *vals = calloc(ncap, sizeof *vals);
        if (keys == NULL || vals == NULL) {
            free(keys);
            free(vals);
            return ENOMEM;
        }
        u64map old = *m;
        m->keys = keys;
        m->vals = vals;
        m->cap = ncap;
        m->used = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.keys[i] != 0) u64map_put(m, old.keys[i], old.vals[i]);
        free(old.keys);
        free(old.vals);
    }
    size_t j = u64map_slot(m, key);
    while (m->keys[j] != 0 && m->keys[j] != key) j = (j + 1) & (m->cap - 1);
    if (m->keys[j] == 0) m->used++;
    m->keys[j] = key;
    m->vals[j] = val;
    return 0;
}

static void u64map_free(u64map *m) {
    free(m->keys);
    free(m->vals);
    *m = (u64map){0};
}

/* MARK: - The walk's state */

typedef struct walk {
    cai_reader *r;
    cai_limits lim;
    ca_debug_offsets t;     /* the target's table (fields it lacks are 0) */
    uint64_t table_addr;
    cai_snapshot *s;
    size_t cap_threads, cap_tasks, cap_frames, cap_awaiters, cap_loops, cap_strings;
    u64map strings;         /* remote char * -> offset + 1 in the pool */
    u64map types;           /* remote ca_type * -> kind bits (TYPE_*) */
    u64map chains;          /* remote task * -> (frames_start << 32 | frames_len) + 1 */
    u64map listed;          /* remote task * already on a list */
    uint8_t *obj;           /* scratch for one object */
    uint8_t *obj2;
    char *strbuf;
    char *err;
    size_t errlen;
} walk;

enum { TYPE_KNOWN = 1, TYPE_FUTURE = 2, TYPE_TASK = 4, TYPE_CORO = 8 };

static uint64_t get_u64(const uint8_t *obj, uint64_t off) {
    uint64_t v;
    memcpy(&v, obj + off, 8);
    return v;
}
static uint32_t get_u32(const uint8_t *obj, uint64_t off) {
    uint32_t v;
    memcpy(&v, obj + off, 4);
    return v;
}

static cai_status read_failed(walk *w, int e, uint64_t addr, const char *what) {
    return cai_fail(w->err, w->errlen, CAI_ERR_READ, "cannot read %s at 0x%llx: %s", what, (unsigned long long)addr,
                    strerror(e));
}

static bool plausible_ptr(uint64_t p, uint64_t align) {
    return p >= 4096 && p < (1ull << 56) && (p & (align - 1)) == 0;
}

/* Reads an object of `size` bytes into `buf` after checking the pointer. */
static cai_status read_object(walk *w, uint64_t addr, uint64_t size, uint8_t *buf, const char *what) {
    if (!plausible_ptr(addr, 8))
        return cai_fail(w->err, w->errlen, CAI_ERR_CORRUPT, "%s pointer 0x%llx is not a valid address", what,
                        (unsigned long long)addr);
    int e = cai_reader_read(w->r, addr, buf, (size_t)size);
    return e == 0 ? CAI_OK : read_failed(w, e, addr, what);
}

/* Interns the remote string at `addr` (cached by address). */
static cai_status intern_remote(walk *w, uint64_t addr, uint32_t *out, const char *what) {
    uint64_t v;
    if (u64map_get(&w->strings, addr, &v)) {
        *out = (uint32_t)(v - 1);
        return CAI_OK;
    }
    if (!plausible_ptr(addr, 1))
        return cai_fail(w->err, w->errlen, CAI_ERR_CORRUPT, "%s pointer 0x%llx is not a valid address", what,
                        (unsigned long long)addr);
    int e = cai_read_cstring(w->r, addr, w->strbuf, w->lim.max_string);
    if (e == ENAMETOOLONG)
        return cai_fail(w->err, w->errlen, CAI_ERR_CORRUPT, "%s at 0x%llx is longer than %u bytes", what,
                        (unsigned long long)addr, w->lim.max_string);
    if (e != 0) return read_failed(w, e, addr, what);
    cai_snapshot *s = w->s;
    size_t n = strlen(w->strbuf) + 1;
    if (s->strings_len + n > UINT32_MAX - 1) return cai_fail(w->err, w->errlen, CAI_ERR_LIMIT, "string pool full");
    while (s->strings_len + n > w->cap_strings) {
        size_t ncap = w->cap_strings ? w->cap_strings * 2 : 4096;
        char *p = realloc(s->strings, ncap);
        if (p == NULL) return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
        s->strings = p;
        w->cap_strings = ncap;
    }
    memcpy(s->strings + s->strings_len, w->strbuf, n);
    *out = (uint32_t)s->strings_len;
    s->strings_len += n;
    if (u64map_put(&w->strings, addr, (uint64_t)*out + 1) != 0)
        return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
    return CAI_OK;
}

static cai_status intern_local(walk *w, const char *str, uint32_t *out) {
    cai_snapshot *s = w->s;
    size_t n = strlen(str) + 1;
    while (s->strings_len + n > w->cap_strings) {
        size_t ncap = w->cap_strings ? w->cap_strings * 2 : 4096;
        char *p = realloc(s->strings, ncap);
        if (p == NULL) return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
        s->strings = p;
        w->cap_strings = ncap;
    }
    memcpy(s->strings + s->strings_len, str, n);
    *out = (uint32_t)s->strings_len;
    s->strings_len += n;
    return CAI_OK;
}

/* Classifies a type by walking its tp_base chain up to the known roots. */
static cai_status type_kind(walk *w, uint64_t type, unsigned *kind) {
    uint64_t v;
    if (u64map_get(&w->types, type, &v)) {
        *kind = (unsigned)v;
        return CAI_OK;
    }
    const ca_debug_type_offsets *to = &w->t.type;
    unsigned k = TYPE_KNOWN;
    uint64_t cur = type;
    uint8_t buf[256];
    if (to->size > sizeof buf) return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT, "ca_type larger than 256 bytes");
    for (int depth = 0; cur != 0; depth++) {
        if (depth == MAX_TYPE_DEPTH)
            return cai_fail(w->err, w->errlen, CAI_ERR_CORRUPT, "type 0x%llx has a base chain longer than %d",
                            (unsigned long long)type, MAX_TYPE_DEPTH);
        if (cur == to->task_type.u64) k |= TYPE_TASK | TYPE_FUTURE;
        if (cur == to->future_type.u64) k |= TYPE_FUTURE;
        if (cur == to->coro_type.u64) k |= TYPE_CORO;
        cai_status st = read_object(w, cur, to->size, buf, "type object");
        if (st != CAI_OK) return st;
        cur = get_u64(buf, to->tp_base);
    }
    if (u64map_put(&w->types, type, k) != 0) return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
    *kind = k;
    return CAI_OK;
}

/* MARK: - The table */

/* Copies each sub-table we know, by its own size: a newer core may append
 * fields (ignored), an older or foreign one lacks some (refused). */
static cai_status load_table(walk *w, uint64_t addr) {
    ca_debug_header h;
    int e = cai_reader_read(w->r, addr, &h, sizeof h);
    if (e != 0) return read_failed(w, e, addr, "debug offsets table");
    if (memcmp(h.cookie, CA_DEBUG_COOKIE, 8) != 0)
        return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT, "no debug offsets table at 0x%llx (bad cookie)",
                        (unsigned long long)addr);
    if (h.version != CA_DEBUG_VERSION)
        return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT,
                        "the process uses debug offsets format %u; this inspector reads format %u", h.version,
                        CA_DEBUG_VERSION);
    if (h.pointer_size != 8 || h.byte_order != 1)
        return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT, "only 64-bit little-endian processes are supported");
    if (h.self_addr.u64 != addr)
        return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT,
                        "the table at 0x%llx says it lives at 0x%llx (wrong load address?)",
                        (unsigned long long)addr, (unsigned long long)h.self_addr.u64);
    if (h.size > MAX_TABLE_SIZE || h.header_size < sizeof h || h.header_size > h.size)
        return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT, "debug offsets table has a bad size");
    uint8_t *raw = malloc(h.size);
    if (raw == NULL) return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
    e = cai_reader_read(w->r, addr, raw, h.size);
    if (e != 0) {
        free(raw);
        return read_failed(w, e, addr, "debug offsets table");
    }
    memset(&w->t, 0, sizeof w->t);
    w->t.header = h;
    struct {
        void *dst;
        size_t known;
    } subs[] = {
        {&w->t.object, sizeof w->t.object}, {&w->t.type, sizeof w->t.type},
        {&w->t.future, sizeof w->t.future}, {&w->t.task, sizeof w->t.task},
        {&w->t.coro, sizeof w->t.coro},     {&w->t.loop, sizeof w->t.loop},
        {&w->t.tstate, sizeof w->t.tstate}, {&w->t.registry, sizeof w->t.registry},
    };
    uint64_t pos = h.header_size;
    cai_status st = CAI_OK;
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        uint64_t ts;
        if (pos + 8 > h.size || (memcpy(&ts, raw + pos, 8), ts < subs[i].known || ts > h.size - pos)) {
            st = cai_fail(w->err, w->errlen, CAI_ERR_FORMAT, "debug offsets sub-table %zu is truncated", i);
            break;
        }
        memcpy(subs[i].dst, raw + pos, subs[i].known);
        pos += ts;
    }
    free(raw);
    if (st != CAI_OK) return st;
    /* every offset must fall inside its object, every object be sane */
    const ca_debug_offsets *t = &w->t;
    uint64_t sizes[] = {t->object.size, t->type.size, t->future.size, t->task.size, t->coro.size,
                        t->loop.size,   t->tstate.size, t->registry.size, t->registry.thread_node_size};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i] == 0 || sizes[i] > MAX_OBJECT_SIZE)
            return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT, "debug offsets table has a bad object size");
#define FIELD_OK(off, width, objsize) ((off) <= (objsize) && (width) <= (objsize) - (off))
    bool ok = FIELD_OK(t->object.ob_type, 8, t->object.size) && FIELD_OK(t->type.tp_base, 8, t->type.size) &&
              FIELD_OK(t->future.state, 1, t->future.size) && FIELD_OK(t->future.is_task, 1, t->future.size) &&
              FIELD_OK(t->future.awaited_by, 8, t->future.size) &&
              FIELD_OK(t->future.awaited_by_is_set, 1, t->future.size) &&
              FIELD_OK(t->future.loop, 8, t->future.size) && t->future.size <= t->task.size &&
              FIELD_OK(t->future.ptrset_used, 8, t->future.ptrset_size) &&
              FIELD_OK(t->future.ptrset_mask, 8, t->future.ptrset_size) &&
              FIELD_OK(t->future.ptrset_table, 8, t->future.ptrset_size) && t->future.ptrset_size <= MAX_OBJECT_SIZE &&
              FIELD_OK(t->task.name, 8, t->task.size) && FIELD_OK(t->task.name_id, 8, t->task.size) &&
              FIELD_OK(t->task.coro, 8, t->task.size) && FIELD_OK(t->task.fut_waiter, 8, t->task.size) &&
              FIELD_OK(t->task.node, 16, t->task.size) && (t->task.node_next == 0 || t->task.node_next == 8) &&
              (t->task.node_prev == 0 || t->task.node_prev == 8) && t->task.node_next != t->task.node_prev &&
              FIELD_OK(t->task.num_cancels_requested, 4, t->task.size) && FIELD_OK(t->task.flags, 1, t->task.size) &&
              FIELD_OK(t->coro.name, 8, t->coro.size) && FIELD_OK(t->coro.filename, 8, t->coro.size) &&
              FIELD_OK(t->coro.firstlineno, 4, t->coro.size) && FIELD_OK(t->coro.lineno, 4, t->coro.size) &&
              FIELD_OK(t->coro.awaiting, 8, t->coro.size) &&
              FIELD_OK(t->coro.state, 1, t->coro.size) && FIELD_OK(t->loop.thread_id, 8, t->loop.size) &&
              FIELD_OK(t->loop.current_task, 8, t->loop.size) && FIELD_OK(t->loop.ready_len, 8, t->loop.size) &&
              FIELD_OK(t->loop.timer_count, 8, t->loop.size) && FIELD_OK(t->loop.iterations, 8, t->loop.size) &&
              FIELD_OK(t->loop.backend_ops, 8, t->loop.size) && FIELD_OK(t->loop.registry_next, 8, t->loop.size) &&
              FIELD_OK(t->loop.running, 1, t->loop.size) && FIELD_OK(t->loop.closed, 1, t->loop.size) &&
              FIELD_OK(t->loop.debug, 1, t->loop.size) && t->loop.backend_ops_name <= 4096 &&
              FIELD_OK(t->tstate.running_loop, 8, t->tstate.size) &&
              FIELD_OK(t->tstate.running_task, 8, t->tstate.size) &&
              FIELD_OK(t->tstate.tasks_head, 16, t->tstate.size) && FIELD_OK(t->tstate.thread_id, 8, t->tstate.size) &&
              FIELD_OK(t->registry.generation, 8, t->registry.size) &&
              FIELD_OK(t->registry.threads, 8, t->registry.size) && FIELD_OK(t->registry.loops, 8, t->registry.size) &&
              FIELD_OK(t->registry.orphans, 16, t->registry.size) &&
              FIELD_OK(t->registry.thread_node_next, 8, t->registry.thread_node_size) &&
              FIELD_OK(t->registry.thread_node_tstate, 8, t->registry.thread_node_size);
#undef FIELD_OK
    if (!ok) return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT, "debug offsets table has an offset out of bounds");
    return CAI_OK;
}

/* MARK: - Coroutine stacks */

/* Appends the coroutine chain from `coro` (task_coro, then co_awaiting) to
 * the frames, innermost first, and returns where it starts. */
static cai_status coro_chain(walk *w, uint64_t coro, uint32_t *start, uint32_t *len) {
    cai_snapshot *s = w->s;
    const ca_debug_coro_offsets *co = &w->t.coro;
    size_t first = s->nframes;
    uint32_t depth = 0;
    while (coro != 0) {
        if (depth++ == w->lim.max_depth)
            return cai_fail(w->err, w->errlen, CAI_ERR_LIMIT, "await chain longer than %u coroutines (a cycle?)",
                            w->lim.max_depth);
        cai_status st = read_object(w, coro, co->size, w->obj2, "coroutine");
        if (st != CAI_OK) return st;
        unsigned kind;
        st = type_kind(w, get_u64(w->obj2, w->t.object.ob_type), &kind);
        if (st != CAI_OK) return st;
        if (!(kind & TYPE_CORO))
            return cai_fail(w->err, w->errlen, CAI_ERR_CORRUPT, "0x%llx is not a coroutine",
                            (unsigned long long)coro);
        if (w->obj2[co->state] == 3 /* closed: nothing left to show */) break;
        /* A coroutine that records no await line (a Swift body: its awaits
         * have none to give) shows its first line, as reprs do. */
        int32_t line = (int32_t)get_u32(w->obj2, co->lineno);
        if (line == 0) line = (int32_t)get_u32(w->obj2, co->firstlineno);
        cai_frame f = {CAI_NO_STRING, CAI_NO_STRING, line};
        uint64_t name = get_u64(w->obj2, co->name), file = get_u64(w->obj2, co->filename);
        uint64_t next = get_u64(w->obj2, co->awaiting);
        if (name != 0 && (st = intern_remote(w, name, &f.name, "coroutine name")) != CAI_OK) return st;
        if (file != 0 && (st = intern_remote(w, file, &f.filename, "coroutine file name")) != CAI_OK) return st;
        VEC_PUSH(s->frames, s->nframes, w->cap_frames, f, nomem);
        coro = next;
    }
    for (size_t i = first, j = s->nframes; i + 1 < j; i++, j--) { /* innermost first */
        cai_frame tmp = s->frames[i];
        s->frames[i] = s->frames[j - 1];
        s->frames[j - 1] = tmp;
    }
    if (s->nframes > UINT32_MAX) return cai_fail(w->err, w->errlen, CAI_ERR_LIMIT, "too many frames");
    *start = (uint32_t)first;
    *len = (uint32_t)(s->nframes - first);
    return CAI_OK;
nomem:
    return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
}

/* The stack of a task (memoized: a task awaited by several others, or
 * listed and awaiting, is read once). */
static cai_status task_chain(walk *w, uint64_t task, uint64_t coro, uint32_t *start, uint32_t *len) {
    uint64_t v;
    if (u64map_get(&w->chains, task, &v)) {
        v -= 1;
        *start = (uint32_t)(v >> 32);
        *len = (uint32_t)v;
        return CAI_OK;
    }
    cai_status st = coro_chain(w, coro, start, len);
    if (st != CAI_OK) return st;
    if (u64map_put(&w->chains, task, (((uint64_t)*start << 32) | *len) + 1) != 0)
        return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
    return CAI_OK;
}

/* MARK: - Awaiters */

static cai_status add_awaiter(walk *w, uint64_t addr) {
    const ca_debug_offsets *t = &w->t;
    cai_status st = read_object(w, addr, t->future.size, w->obj2, "awaiter");
    if (st != CAI_OK) return st;
    unsigned kind;
    st = type_kind(w, get_u64(w->obj2, t->object.ob_type), &kind);
    if (st != CAI_OK) return st;
    if (!(kind & TYPE_FUTURE))
        return cai_fail(w->err, w->errlen, CAI_ERR_CORRUPT, "awaiter 0x%llx is not a future",
                        (unsigned long long)addr);
    cai_awaiter a = {addr, 0, 0, w->obj2[t->future.is_task] ? 1 : 0};
    if (a.is_task) {
        if (!(kind & TYPE_TASK))
            return cai_fail(w->err, w->errlen, CAI_ERR_CORRUPT, "awaiter 0x%llx says it is a task but is not",
                            (unsigned long long)addr);
        st = read_object(w, addr, t->task.size, w->obj2, "awaiting task");
        if (st != CAI_OK) return st;
        st = task_chain(w, addr, get_u64(w->obj2, t->task.coro), &a.frames_start, &a.frames_len);
        if (st != CAI_OK) return st;
    }
    cai_snapshot *s = w->s;
    VEC_PUSH(s->awaiters, s->nawaiters, w->cap_awaiters, a, nomem);
    return CAI_OK;
nomem:
    return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
}

/* fut_awaited_by: one future, or a ca_ptrset of them. */
static cai_status awaiters_of(walk *w, uint64_t awaited_by, bool is_set) {
    const ca_debug_future_offsets *fo = &w->t.future;
    if (awaited_by == 0) return CAI_OK;
    if (!is_set) return add_awaiter(w, awaited_by);
    uint8_t set[256];
    if (fo->ptrset_size > sizeof set) return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT, "ca_ptrset too large");
    cai_status st = read_object(w, awaited_by, fo->ptrset_size, set, "awaited_by set");
    if (st != CAI_OK) return st;
    uint64_t used = get_u64(set, fo->ptrset_used), mask = get_u64(set, fo->ptrset_mask);
    uint64_t table = get_u64(set, fo->ptrset_table);
    if (mask >= w->lim.max_awaiters || ((mask + 1) & mask) != 0 || used > mask + 1)
        return cai_fail(w->err, w->errlen, CAI_ERR_CORRUPT, "awaited_by set 0x%llx has a bad size",
                        (unsigned long long)awaited_by);
    uint64_t *slots = malloc((size_t)(mask + 1) * 8);
    if (slots == NULL) return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
    st = read_object(w, table, (mask + 1) * 8, (uint8_t *)slots, "awaited_by set table");
    uint64_t seen = 0;
    for (uint64_t i = 0; st == CAI_OK && i <= mask && seen < used; i++) {
        if (slots[i] == 0 || slots[i] == fo->ptrset_dummy) continue;
        seen++;
        st = add_awaiter(w, slots[i]);
    }
    free(slots);
    return st;
}

/* MARK: - Tasks */

static cai_status add_task(walk *w, uint64_t addr, uint64_t thread_id, uint64_t running_task) {
    const ca_debug_offsets *t = &w->t;
    cai_snapshot *s = w->s;
    /* w->obj holds the task, read and type-checked by the list walk */
    cai_task task = {
        .addr = addr,
        .thread_id = thread_id,
        .loop = get_u64(w->obj, t->future.loop),
        .coro = get_u64(w->obj, t->task.coro),
        .fut_waiter = get_u64(w->obj, t->task.fut_waiter),
        .name_id = get_u64(w->obj, t->task.name_id),
        .cancel_requests = (int32_t)get_u32(w->obj, t->task.num_cancels_requested),
        .state = w->obj[t->future.state],
        .must_cancel = (w->obj[t->task.flags] & t->task.must_cancel_mask) ? 1 : 0,
        .running = addr == running_task,
    };
    uint64_t name = get_u64(w->obj, t->task.name);
    uint64_t awaited_by = get_u64(w->obj, t->future.awaited_by);
    bool is_set = w->obj[t->future.awaited_by_is_set] != 0;
    cai_status st;
    if (name != 0) {
        st = intern_remote(w, name, &task.name, "task name");
    } else {
        char buf[32];
        snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)task.name_id);
        st = intern_local(w, buf, &task.name);
    }
    if (st != CAI_OK) return st;
    st = task_chain(w, addr, task.coro, &task.frames_start, &task.frames_len);
    if (st != CAI_OK) return st;
    size_t first = s->nawaiters;
    st = awaiters_of(w, awaited_by, is_set);
    if (st != CAI_OK) return st;
    task.awaiters_start = (uint32_t)first;
    task.awaiters_len = (uint32_t)(s->nawaiters - first);
    VEC_PUSH(s->tasks, s->ntasks, w->cap_tasks, task, nomem);
    return CAI_OK;
nomem:
    return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
}

/* Walks the circular list at `head` (the address of its ca_llist_node). */
static cai_status walk_task_list(walk *w, uint64_t head, uint64_t thread_id, uint64_t running_task) {
    const ca_debug_task_offsets *to = &w->t.task;
    cai_snapshot *s = w->s;
    uint64_t node[2];
    int e = cai_reader_read(w->r, head, node, sizeof node);
    if (e != 0) return read_failed(w, e, head, "task list head");
    uint64_t prev = head;
    uint64_t cur = node[to->node_next / 8];
    if (cur == 0) return CAI_OK; /* never initialised: no task was ever registered */
    while (cur != head) {
        if (s->ntasks >= w->lim.max_tasks)
            return cai_fail(w->err, w->errlen, CAI_ERR_LIMIT, "more than %u tasks (a corrupted list?)",
                            w->lim.max_tasks);
        if (!plausible_ptr(cur, 8) || cur < to->node)
            return cai_fail(w->err, w->errlen, CAI_ERR_TORN, "task list of thread %llu has a bad link 0x%llx",
                            (unsigned long long)thread_id, (unsigned long long)cur);
        uint64_t task = cur - to->node, seen;
        if (u64map_get(&w->listed, task, &seen))
            return cai_fail(w->err, w->errlen, CAI_ERR_TORN, "task 0x%llx is listed twice",
                            (unsigned long long)task);
        if (u64map_put(&w->listed, task, 1) != 0) return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
        cai_status st = read_object(w, task, to->size, w->obj, "task");
        if (st != CAI_OK) return st == CAI_ERR_READ ? CAI_ERR_TORN : st;
        if (get_u64(w->obj, w->t.object.ob_type) != w->t.type.task_type.u64 || w->obj[w->t.future.is_task] != 1)
            return cai_fail(w->err, w->errlen, CAI_ERR_TORN, "0x%llx on the task list of thread %llu is not a Task",
                            (unsigned long long)task, (unsigned long long)thread_id);
        uint64_t next = get_u64(w->obj, to->node + to->node_next);
        uint64_t back = get_u64(w->obj, to->node + to->node_prev);
        if (back != prev)
            return cai_fail(w->err, w->errlen, CAI_ERR_TORN, "task list of thread %llu changed while being read",
                            (unsigned long long)thread_id);
        st = add_task(w, task, thread_id, running_task);
        if (st != CAI_OK) return st;
        prev = cur;
        cur = next;
    }
    return CAI_OK;
}

/* MARK: - Registry */

static cai_status walk_threads(walk *w, uint64_t reg, const uint8_t *regobj) {
    const ca_debug_offsets *t = &w->t;
    cai_snapshot *s = w->s;
    uint64_t node = get_u64(regobj, t->registry.threads);
    uint8_t nbuf[256], tsbuf[1024];
    if (t->registry.thread_node_size > sizeof nbuf || t->tstate.size > sizeof tsbuf)
        return cai_fail(w->err, w->errlen, CAI_ERR_FORMAT, "thread structures too large");
    for (uint32_t i = 0; node != 0; i++) {
        if (i == w->lim.max_threads)
            return cai_fail(w->err, w->errlen, CAI_ERR_LIMIT, "more than %u threads (a corrupted registry?)",
                            w->lim.max_threads);
        cai_status st = read_object(w, node, t->registry.thread_node_size, nbuf, "registry thread node");
        if (st != CAI_OK) return st;
        uint64_t ts = get_u64(nbuf, t->registry.thread_node_tstate);
        st = read_object(w, ts, t->tstate.size, tsbuf, "thread state");
        if (st != CAI_OK) return st;
        cai_thread th = {
            .tstate = ts,
            .thread_id = get_u64(tsbuf, t->tstate.thread_id),
            .running_loop = get_u64(tsbuf, t->tstate.running_loop),
            .running_task = get_u64(tsbuf, t->tstate.running_task),
            .tasks_start = (uint32_t)s->ntasks,
        };
        st = walk_task_list(w, ts + t->tstate.tasks_head, th.thread_id, th.running_task);
        if (st != CAI_OK) return st;
        th.tasks_len = (uint32_t)(s->ntasks - th.tasks_start);
        VEC_PUSH(s->threads, s->nthreads, w->cap_threads, th, nomem);
        node = get_u64(nbuf, t->registry.thread_node_next);
    }
    cai_thread orphans = {.tasks_start = (uint32_t)s->ntasks};
    cai_status st = walk_task_list(w, reg + t->registry.orphans, 0, 0);
    if (st != CAI_OK) return st;
    orphans.tasks_len = (uint32_t)(s->ntasks - orphans.tasks_start);
    if (orphans.tasks_len > 0) VEC_PUSH(s->threads, s->nthreads, w->cap_threads, orphans, nomem);
    return CAI_OK;
nomem:
    return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
}

static cai_status walk_loops(walk *w, const uint8_t *regobj) {
    const ca_debug_offsets *t = &w->t;
    cai_snapshot *s = w->s;
    uint64_t loop = get_u64(regobj, t->registry.loops);
    for (uint32_t i = 0; loop != 0; i++) {
        if (i == w->lim.max_loops)
            return cai_fail(w->err, w->errlen, CAI_ERR_LIMIT, "more than %u loops (a corrupted registry?)",
                            w->lim.max_loops);
        cai_status st = read_object(w, loop, t->loop.size, w->obj2, "loop");
        if (st != CAI_OK) return st;
        if (get_u64(w->obj2, t->object.ob_type) != t->type.loop_type.u64)
            return cai_fail(w->err, w->errlen, CAI_ERR_TORN, "0x%llx on the loop list is not a loop",
                            (unsigned long long)loop);
        cai_loop l = {
            .addr = loop,
            .thread_id = get_u64(w->obj2, t->loop.thread_id),
            .current_task = get_u64(w->obj2, t->loop.current_task),
            .ready = get_u64(w->obj2, t->loop.ready_len),
            .timers = get_u64(w->obj2, t->loop.timer_count),
            .iterations = get_u64(w->obj2, t->loop.iterations),
            .backend = CAI_NO_STRING,
            .running = w->obj2[t->loop.running] != 0,
            .closed = w->obj2[t->loop.closed] != 0,
            .debug = w->obj2[t->loop.debug] != 0,
        };
        uint64_t next = get_u64(w->obj2, t->loop.registry_next);
        uint64_t ops = get_u64(w->obj2, t->loop.backend_ops);
        if (ops != 0) {
            uint64_t name;
            if (!plausible_ptr(ops, 8)) return cai_fail(w->err, w->errlen, CAI_ERR_CORRUPT, "bad backend pointer");
            int e = cai_reader_read(w->r, ops + t->loop.backend_ops_name, &name, 8);
            if (e != 0) return read_failed(w, e, ops, "loop backend");
            st = intern_remote(w, name, &l.backend, "backend name");
            if (st != CAI_OK) return st;
        }
        VEC_PUSH(s->loops, s->nloops, w->cap_loops, l, nomem);
        loop = next;
    }
    return CAI_OK;
nomem:
    return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
}

static cai_status read_generation(walk *w, uint64_t reg, uint64_t *gen) {
    int e = cai_read_fresh(w->r, reg + w->t.registry.generation, gen, 8);
    return e == 0 ? CAI_OK : read_failed(w, e, reg, "registry");
}

static void snapshot_reset(walk *w) {
    cai_snapshot *s = w->s;
    s->nthreads = s->ntasks = s->nframes = s->nawaiters = s->nloops = s->strings_len = 0;
    u64map_free(&w->strings);
    u64map_free(&w->chains);
    u64map_free(&w->listed);
}

/* One attempt at a consistent view. */
static cai_status walk_once(walk *w) {
    cai_status st = load_table(w, w->table_addr);
    if (st != CAI_OK) return st;
    uint64_t reg = w->t.header.registry.u64;
    uint64_t gen0, gen1;
    st = read_generation(w, reg, &gen0);
    if (st != CAI_OK) return st;
    if (w->r->live && (gen0 & 1))
        return cai_fail(w->err, w->errlen, CAI_ERR_TORN, "the registry is being changed");
    uint8_t *regobj = malloc(w->t.registry.size);
    if (regobj == NULL) return cai_fail(w->err, w->errlen, CAI_ERR_NOMEM, "out of memory");
    st = read_object(w, reg, w->t.registry.size, regobj, "registry");
    if (st == CAI_OK) st = walk_threads(w, reg, regobj);
    if (st == CAI_OK) st = walk_loops(w, regobj);
    free(regobj);
    if (st != CAI_OK) return st;
    st = read_generation(w, reg, &gen1);
    if (st != CAI_OK) return st;
    if (w->r->live && gen1 != gen0)
        return cai_fail(w->err, w->errlen, CAI_ERR_TORN, "the registry changed while being read");
    return CAI_OK;
}

cai_status cai_snapshot_take(cai_reader *r, uint64_t table_addr, const cai_limits *limits, cai_snapshot **out,
                             char *err, size_t errlen) {
    *out = NULL;
    walk w = {.r = r, .lim = limits ? *limits : cai_default_limits(), .table_addr = table_addr, .err = err,
              .errlen = errlen};
    if (w.lim.retries == 0) w.lim.retries = 1;
    w.s = calloc(1, sizeof *w.s);
    w.obj = malloc(MAX_OBJECT_SIZE);
    w.obj2 = malloc(MAX_OBJECT_SIZE);
    w.strbuf = malloc((size_t)w.lim.max_string + 1);
    cai_status st = CAI_ERR_NOMEM;
    if (w.s == NULL || w.obj == NULL || w.obj2 == NULL || w.strbuf == NULL) {
        cai_fail(err, errlen, st, "out of memory");
        goto done;
    }
    w.s->table_addr = table_addr;
    for (uint32_t attempt = 1; attempt <= w.lim.retries; attempt++) {
        if (attempt > 1) {
            cai_reader_invalidate(r);
            snapshot_reset(&w);
            u64map_free(&w.types);
            struct timespec pause = {0, 1000000L * attempt}; /* let a writer finish */
            nanosleep(&pause, NULL);
        }
        st = walk_once(&w);
        w.s->attempts = attempt;
        bool transient = st == CAI_ERR_TORN || st == CAI_ERR_READ || st == CAI_ERR_CORRUPT;
        if (st == CAI_OK || !r->live || !transient) break;
    }
    if (st == CAI_OK) {
        w.s->version = w.t.header.version;
        *out = w.s;
        w.s = NULL;
    }
done:
    u64map_free(&w.strings);
    u64map_free(&w.types);
    u64map_free(&w.chains);
    u64map_free(&w.listed);
    free(w.obj);
    free(w.obj2);
    free(w.strbuf);
    cai_snapshot_free(w.s);
    return st;
}

void cai_snapshot_free(cai_snapshot *s) {
    if (s == NULL) return;
    free(s->threads);
    free(s->tasks);
    free(s->frames);
    free(s->awaiters);
    free(s->loops);
    free(s->strings);
    free(s);
}

const char *cai_snapshot_string(const cai_snapshot *s, uint32_t offset) {
    if (offset == CAI_NO_STRING || offset >= s->strings_len) return "";
    return s->strings + offset;
}
