/*
 * executor_internal.h — what the loop's close and the I/O files need from
 * the default executor (executor.c).
 */
#ifndef CASYNCIO_EXECUTOR_INTERNAL_H
#define CASYNCIO_EXECUTOR_INTERNAL_H

#include "io_internal.h"

#include <casyncio/executor.h>

/** At loop close (after the inbox is discarded, so no delivery can run):
 *  drops the jobs not started, joins the threads once the running jobs
 *  returned, releases every job and frees the executor. */
void ca_executor_loop_closed(ca_loop *loop, ca_executor *ex);

#endif
