/*
 * allocation_failures.c — the core's allocations failing on demand, one
 * thread at a time (ats_fail_core_allocations in asyncio_test_support.h).
 */
#include "asyncio_test_support.h"

#include <casyncio/object.h>
#include <stdlib.h>

/* Per thread: a test arms its own thread and no other. */
static _Thread_local unsigned failures_due;

static void *counting_down_malloc(size_t size) {
    if (failures_due > 0) {
        failures_due--;
        return NULL;
    }
    return malloc(size);
}

static void *counting_down_realloc(void *p, size_t size) {
    if (failures_due > 0) {
        failures_due--;
        return NULL;
    }
    return realloc(p, size);
}

/* The seam is process-wide and must be set before the core allocates
 * anything; a constructor runs before any test. The wrappers hand out and
 * take back the C library's own blocks, so a block allocated before (or,
 * in a test's forked child, freed after another allocator is set) is no
 * different. */
__attribute__((constructor)) static void install_counting_down_allocator(void) {
    ca_set_allocator(counting_down_malloc, counting_down_realloc, free);
}

void ats_fail_core_allocations(unsigned n) { failures_due = n; }
