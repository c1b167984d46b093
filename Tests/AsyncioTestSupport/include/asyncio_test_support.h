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

#endif
