/*
 * combinators_internal.h — helpers shared by combinators.c, timeout.c and
 * taskgroup.c; not part of the public API.
 */
#ifndef CASYNCIO_COMBINATORS_INTERNAL_H
#define CASYNCIO_COMBINATORS_INTERNAL_H

#include "internal.h"


/** Seconds (a Python float delay) to loop nanoseconds, rounded to the
 *  nearest nanosecond and clamped to +-4e18. */
int64_t ca_seconds_to_ns(double seconds);

/** RuntimeError "no running event loop", as events.get_running_loop(). */
ca_error *ca_no_running_loop(void);

#endif
