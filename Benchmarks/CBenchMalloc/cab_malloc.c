/*
 * cab_malloc.c — the counting malloc wrappers of cab_malloc.h.
 *
 * glibc documents replacing malloc by defining malloc, free, calloc and
 * realloc (plus the aligned variants) in the program; glibc keeps exporting
 * its own implementation as __libc_malloc and friends, which these forward
 * to. The counter is thread-local (initial-exec TLS of the executable, set
 * up before any code of the program runs), so no atomics are needed and a
 * measurement counts only its own thread.
 */
#include "cab_malloc.h"

#include <errno.h>
#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CAB_MALLOC_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CAB_MALLOC_SANITIZED 1
#endif

#ifndef CAB_MALLOC_SANITIZED

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *ptr);

static __thread uint64_t allocations __attribute__((tls_model("initial-exec")));

void *malloc(size_t size) {
    allocations++;
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    allocations++;
    return __libc_calloc(count, size);
}

void *realloc(void *ptr, size_t size) {
    void *p = __libc_realloc(ptr, size);
    if (p != ptr && p != NULL) allocations++;  /* a new block: realloc(NULL) or a move */
    return p;
}

void free(void *ptr) { __libc_free(ptr); }

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    allocations++;
    void *p = __libc_memalign(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
    allocations++;
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    allocations++;
    return __libc_memalign(alignment, size);
}

uint64_t cab_malloc_count(void) { return allocations; }

bool cab_malloc_counting(void) { return true; }

#else

uint64_t cab_malloc_count(void) { return 0; }

bool cab_malloc_counting(void) { return false; }

#endif
