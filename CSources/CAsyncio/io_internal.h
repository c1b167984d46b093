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
typedef struct ca_executor ca_executor;
typedef struct ca_signals ca_signals;

/** What the loop keeps per fd number: one table (ca_io_loop.fds) for the
 *  whole I/O layer, grown by ca_io_fd_get. */
typedef struct ca_io_fd {
    io_fdinfo *info;        /* stash, accepted fds, reader/writer (io.c): NULL until needed, freed
                               when the fd is forgotten */
    uint32_t gen;           /* bumped each time the fd is forgotten (closed through the loop), so a
                               completion can tell it outlived its file */
    uint32_t file_busy;     /* file operations (file.c) not finished yet; outlives forgetting */
} ca_io_fd;

/** Per-loop I/O state (loop->io), created by the first I/O call. */
typedef struct ca_io_loop {
    ca_io_fd *fds;          /* indexed by fd; zero beyond nfds */
    size_t nfds;
    void *file_closing;     /* file.c's closes waiting for their fd's operations to finish */
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

/** Hands `op` to the backend and counts it in io_pending. The loop must be
 *  open. The completion comes through op->complete from a later poll. */
static inline void ca_io_submit(ca_loop *loop, ca_io_op *op) {
    op->loop = loop;
    loop->io_pending++;
    if (CA_UNLIKELY(loop->io != NULL && loop->io->fault != NULL)) ca_io_apply_fault(loop, op);
    loop->backend_ops->submit(loop->backend, op);
}

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

/** At loop close: runs the closes that still waited for file operations
 *  (file.c): their fds are closed at once. */
void ca_files_loop_closed(ca_loop *loop, ca_io_loop *io);

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
