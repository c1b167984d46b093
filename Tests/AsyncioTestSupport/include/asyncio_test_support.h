/*
 * asyncio_test_support.h — C helpers for the Swift layer's tests
 * (Tests/AsyncioTests) that Swift cannot reach through the Glibc module.
 */
#ifndef ASYNCIO_TEST_SUPPORT_H
#define ASYNCIO_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>

/** glibc's malloc_trim(0): gives the memory malloc keeps cached back to the
 *  system, so the resident set size measures what is in use. */
void ats_malloc_trim(void);

/** The resident set size of the process in bytes (/proc/self/statm). */
size_t ats_resident_bytes(void);

/** True when this code was built with AddressSanitizer, whose quarantine
 *  keeps freed memory resident (so RSS says nothing about leaks). */
bool ats_address_sanitizer(void);

/**
 * Makes the next `n` allocations of the C core on the calling thread fail,
 * as when memory runs out: ca_malloc and ca_realloc return NULL, without
 * calling the C library. 0 disarms. Other threads allocate as usual, so a
 * test provokes an out-of-memory path of its own while the suite runs on.
 *
 * The core's allocator seam (ca_set_allocator) is set, when the test process
 * starts and before any core object exists, to wrappers of the C library's
 * malloc, realloc and free that count these failures down.
 */
void ats_fail_core_allocations(unsigned n);

#endif
