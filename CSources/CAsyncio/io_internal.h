/*
 * io_internal.h — what io.c, transport.c and stream.c share: the loop's
 * I/O state, submission through the fault hook, and small helpers.
 */
#ifndef CASYNCIO_IO_INTERNAL_H
#define CASYNCIO_IO_INTERNAL_H

#include "internal.h"

#include <errno.h>
#include <stddef.h>

#include <casyncio/io.h>
#include <casyncio/stream.h>
#include <casyncio/transport.h>

#define CA_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

typedef struct io_fdinfo io_fdinfo;
typedef struct ca_io_idle ca_io_idle;
typedef struct ca_executor ca_executor;
typedef struct ca_signals ca_signals;

/** What the loop keeps per fd number: one table (ca_io_loop.fds) for the
 *  whole I/O layer, grown by ca_io_fd_get. */
typedef struct ca_io_fd {
    io_fdinfo *info;        /* stash, accepted fds, reader/writer (io.c): NULL until needed, freed
                               when the fd is forgotten */
    ca_io_idle *idle;       /* waiting for inflight to fall to 0, newest first (ca_io_when_idle) */
    uint32_t gen;           /* bumped each time the fd is forgotten (closed through the loop), so a
                               completion can tell it outlived its file */
    uint32_t inflight;      /* what may still use the fd number: ops submitted and not finally
                               completed, and executor jobs (ca_io_fd_hold); outlives forgetting */
    uint8_t close_pending;  /* ca_io_close_when_idle: forget and close it at 0 */
} ca_io_fd;

/** A wait for an fd to have nothing in flight (ca_io_when_idle), embedded
 *  in its owner, which keeps itself alive until `fn` ran. */
struct ca_io_idle {
    ca_io_idle *next;
    /* Called once, with the loop (possibly closed, then loop->io is NULL). */
    void (*fn)(ca_io_idle *w, ca_loop *loop, int fd);
};

/** Per-loop I/O state (loop->io), created by the first I/O call. */
typedef struct ca_io_loop {
    ca_io_fd *fds;          /* indexed by fd; zero beyond nfds */
    size_t nfds;
    ca_io_fault_fn fault;
    void *fault_arg;
    uint64_t race_kept;
    uint64_t faults;
    ca_transport *transports; /* open transports (borrowed list heads), for close */
    ca_executor *executor;    /* the default executor (executor.c), NULL until first used */
    ca_signals *signals;      /* signal handlers (signal.c), NULL until first added */
} ca_io_loop;

/** loop->io, creating it on first use; NULL when out of memory. */
ca_io_loop *ca_io_loop_get(ca_loop *loop);

/** Applies the fault hook to `op` (the slow path of ca_io_submit). */
void ca_io_apply_fault(ca_loop *loop, ca_io_op *op);

/** The entry of `fd` (fd >= 0), growing the table; NULL when out of
 *  memory. */
static inline ca_io_fd *ca_io_fd_get(ca_io_loop *io, int fd) {
    if (CA_UNLIKELY((size_t)fd >= io->nfds)) {
        ca_io_fd *t = ca_fd_table_grow(io->fds, &io->nfds, sizeof *t, fd);
        if (t == NULL) return NULL;
        io->fds = t;
    }
    return &io->fds[fd];
}

/** The entry of `fd` when the table reaches it, else NULL (every field of
 *  an fd beyond the table is zero). Never grows it. */
static inline ca_io_fd *ca_io_fd_find(const ca_loop *loop, int fd) {
    ca_io_loop *io = loop->io;
    return io != NULL && fd >= 0 && (size_t)fd < io->nfds ? &io->fds[fd] : NULL;
}

/** The generation of `fd` (0 until first forgotten). */
static inline uint32_t ca_io_fd_gen(const ca_loop *loop, int fd) {
    const ca_io_fd *e = ca_io_fd_find(loop, fd);
    return e != NULL ? e->gen : 0;
}

/** The slow path of ca_io_submit's count: creates the loop's I/O state or
 *  grows the table; out of memory the op completes with -ENOMEM without
 *  touching the fd (and is not counted). */
void ca_io_count_slow(ca_loop *loop, ca_io_op *op);

/** Hands `op` to the backend and counts it in io_pending and in its fd's
 *  inflight. The loop must be open. The completion comes through
 *  op->complete from a later poll. */
static inline void ca_io_submit(ca_loop *loop, ca_io_op *op) {
    op->loop = loop;
    loop->io_pending++;
    ca_io_loop *io = loop->io;
    if (CA_LIKELY(io != NULL && (size_t)op->fd < io->nfds)) { /* (a negative fd is never below) */
        io->fds[op->fd].inflight++;
        op->flags |= CA_IO_F_COUNTED;
    } else if (op->fd >= 0) {
        ca_io_count_slow(loop, op);
        io = loop->io;
    }
    if (CA_UNLIKELY(io != NULL && io->fault != NULL)) ca_io_apply_fault(loop, op);
    loop->backend_ops->submit(loop->backend, op);
}

/** Counts one more user of `fd` that is no op (an executor job). False
 *  when out of memory. Pair with ca_io_fd_release. */
bool ca_io_fd_hold(ca_loop *loop, int fd);

/** The slow path of ca_io_fd_release: runs what waited for `fd` to be idle. */
void ca_io_fd_went_idle(ca_loop *loop, int fd);

/** Ends a hold (or a counted op, from ca_io_dispatch, where the table
 *  always exists): at 0 the waits registered with ca_io_when_idle run,
 *  then a ca_io_close_when_idle. */
static inline void ca_io_fd_release_in(ca_loop *loop, ca_io_loop *io, int fd) {
    ca_io_fd *e = &io->fds[fd];
    if (--e->inflight == 0 && CA_UNLIKELY(e->idle != NULL || e->close_pending)) ca_io_fd_went_idle(loop, fd);
}

static inline void ca_io_fd_release(ca_loop *loop, int fd) {
    if (CA_LIKELY(loop->io != NULL)) ca_io_fd_release_in(loop, loop->io, fd); /* (gone once the loop closed) */
}

/** Whether anything is in flight on `fd`. */
static inline bool ca_io_fd_busy(const ca_loop *loop, int fd) {
    const ca_io_fd *e = ca_io_fd_find(loop, fd);
    return e != NULL && e->inflight > 0;
}

/** Runs w->fn once nothing is in flight on `fd`: at once when nothing is
 *  (or the loop is closed), else right after the last op's owner has seen
 *  its final completion (or the last hold's release), before the loop
 *  looks at anything else; at loop close at the latest. The caller keeps
 *  `w` and whatever fn needs alive until then. */
void ca_io_when_idle(ca_loop *loop, int fd, ca_io_idle *w, void (*fn)(ca_io_idle *w, ca_loop *loop, int fd));

/** Forgets and closes `fd` (taken) once nothing is in flight on it: an op
 *  the kernel or a thread still holds could otherwise act on whatever
 *  file reuses the number. At once when nothing is; at loop close at the
 *  latest. On a closed loop the fd is closed without being forgotten. */
void ca_io_close_when_idle(ca_loop *loop, int fd);

/** Asks the backend to end `op` early (its completion still comes). */
static inline void ca_io_cancel(ca_loop *loop, ca_io_op *op) {
    if (op->state == CA_IO_OP_INFLIGHT && loop->backend != NULL) loop->backend_ops->cancel(loop->backend, op);
}

/** Errors a socket operation retries rather than reports: a signal, a
 *  spurious wake-up. ENOBUFS/ENOMEM are retried too, after a pause. */
static inline bool ca_io_transient(int32_t res) { return res == -EINTR || res == -EAGAIN || res == -EWOULDBLOCK; }
static inline bool ca_io_short_of_memory(int32_t res) { return res == -ENOBUFS || res == -ENOMEM; }

/** The pause before retrying after ENOBUFS/ENOMEM. */
#define CA_IO_RETRY_DELAY_NS (1000 * 1000)

/** Takes up to `max` bytes kept from a cancelled receive on `fd` (a new
 *  reference in *out, NULL when none). */
ca_error *ca_io_stash_take(ca_loop *loop, int fd, size_t max, ca_bytes **out);

/** Keeps `len` bytes received by a cancelled receive on `fd`. */
void ca_io_stash_put(ca_loop *loop, int fd, const void *data, size_t len);

/** Formats a sockaddr as Python prints addresses: ('127.0.0.1', 8888),
 *  ('::1', 8888, 0, 0), or the path of a Unix socket. */
void ca_io_format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/** Resolves a numeric host (NULL: every local address, "" counted as
 *  NULL) and port into at most `cap` addresses, IPv4 first. Returns the
 *  count, or an error: ValueError for a name (names are not looked up: the
 *  loop thread never blocks on DNS), else getaddrinfo's failure as
 *  ca_error_from_gai makes it (gaierror, or OSError for EAI_SYSTEM). */
ca_error *ca_io_resolve_numeric(const char *host, uint16_t port, bool passive, struct sockaddr_storage *addrs,
                                socklen_t *lens, size_t cap, size_t *count);

/** Whether `host` parses as an IPv4 or IPv6 literal of `family`
 *  (AF_UNSPEC: either; NULL counts as numeric) without DNS or files: what
 *  base_events._ipaddr_info answers on the loop thread (resolver.c). */
bool ca_io_host_is_numeric(const char *host, int family);

/* MARK: - Transports (transport.c) */

/** Creates a socket transport on a connected, non-blocking `fd` (taken)
 *  for `protocol` (taken), schedules connection_made and starts reading.
 *  `server` (may be NULL) is attached. `waiter` (may be NULL) gets the
 *  transport as its result once connection_made ran. */
ca_error *ca_transport_new_socket(ca_loop *loop, int fd, ca_protocol *protocol, ca_server *server,
                                  ca_future *waiter, ca_transport **out);

/** At loop close, after the backend is drained: closes the sockets of the
 *  transports still open and drops what they hold (their protocols are
 *  released; connection_lost is not called on a closed loop). */
void ca_transports_loop_closed(ca_loop *loop);

/** Server bookkeeping used by transport.c. */
void ca_server_attach(ca_server *s, ca_transport *t);
void ca_server_detach(ca_server *s, ca_transport *t);
/** Makes the server release its factory argument when it is freed. */
void ca_server_set_factory_release(ca_server *s, ca_release_fn release);

#endif
