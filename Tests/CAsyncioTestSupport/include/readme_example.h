/* readme_example.h — README.md's C example (Tests/CAsyncioTestSupport/readme_example.c). */
#ifndef README_EXAMPLE_H
#define README_EXAMPLE_H
#include <stdint.h>

/** Runs the README example on a virtual-clock loop: returns the worker's
 *  total (6) and stores the loop's final time in *elapsed_ns. */
int64_t readme_example(int64_t *elapsed_ns);

#endif
