/*
 * support.c — see asyncio_test_support.h.
 */
#include "asyncio_test_support.h"

#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

void ats_malloc_trim(void) { (void)malloc_trim(0); }

size_t ats_resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

bool ats_address_sanitizer(void) {
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}
