/*
 * cab_malloc.h — counts every malloc-family call of the process, per thread,
 * so the bench can report allocations per operation for the Swift layer too
 * (the Swift runtime allocates with malloc, which the core's ca_alloc_stats
 * cannot see).
 *
 * Linking this target into an executable replaces glibc's malloc, calloc,
 * realloc, posix_memalign, aligned_alloc and memalign with counting wrappers
 * that forward to glibc's own (__libc_malloc and friends); free is forwarded
 * uncounted. Under AddressSanitizer nothing is replaced (its own allocator
 * must see every call) and cab_malloc_counting() returns false.
 */
#ifndef CAB_MALLOC_H
#define CAB_MALLOC_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Allocations (malloc, calloc, realloc of NULL or growing to a new block,
 *  posix_memalign, aligned_alloc, memalign) made by the calling thread so far. */
uint64_t cab_malloc_count(void);

/** Whether the wrappers are in place (false under AddressSanitizer). */
bool cab_malloc_counting(void);

#ifdef __cplusplus
}
#endif
#endif
