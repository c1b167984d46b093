/*
 * backend.h — the I/O backend seam (internal). Small on purpose, like
 * Redis's ae.c: create, poll with a timeout, wake from any thread, close.
 * backend_uring.c and backend_epoll.c implement it side by side; the loop
 * picks one (io_uring unless refused, ASYNCIO_BACKEND=uring|epoll overrides).
 */
#ifndef CASYNCIO_BACKEND_H
#define CASYNCIO_BACKEND_H

#include <casyncio/loop.h>

typedef struct ca_backend ca_backend;

typedef struct ca_backend_ops {
    const char *name; /* "io_uring", "epoll" */
    /** Creates the backend (including its wake-up eventfd). OSError with errno
     *  on failure (ENOSYS/EPERM from io_uring_setup let the loop fall back). */
    ca_error *(*create)(ca_backend **out);
    /**
     * Waits until woken or `timeout_ns` passes (0: do not block; -1: block
     * until woken). Consumes pending wake-ups. Returns the number of events
     * it handled (wake-ups count), or an OSError for failures other than
     * EINTR/ETIME/EAGAIN (which return 0).
     */
    ca_error *(*poll)(ca_backend *b, int64_t timeout_ns, int *nevents);
    /** Wakes a poll in progress or the next one. Safe from any thread,
     *  async-signal-safe (one eventfd write). */
    void (*wake)(ca_backend *b);
    /** Releases everything the backend owns. */
    void (*close)(ca_backend *b);
} ca_backend_ops;

extern const ca_backend_ops ca_backend_uring_ops;
extern const ca_backend_ops ca_backend_epoll_ops;

/** Chooses and creates a backend for `kind`, honouring ASYNCIO_BACKEND for
 *  CA_BACKEND_AUTO and falling back from io_uring to epoll when io_uring is
 *  refused. Stores the ops and the instance. */
ca_error *ca_backend_open(ca_backend_kind kind, const ca_backend_ops **ops, ca_backend **out);

#endif
