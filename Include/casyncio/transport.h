/*
 * transport.h — asyncio's transports and protocols (Lib/asyncio/
 * transports.py, protocols.py, selector_events._SelectorSocketTransport)
 * and the TCP / Unix socket servers and clients built on them
 * (base_events.create_server / create_connection, Server).
 *
 * A protocol is a struct that embeds a ca_protocol, i.e. a pointer to its
 * table of callbacks; the transport calls them from the
 * loop's ready queue, never from inside the backend's poll. Callbacks
 * return NULL or an error (new reference) — the C spelling of "raise":
 * an error from connection_made, data_received, eof_received,
 * get_buffer or buffer_updated is a fatal error for the transport (it is
 * closed, connection_lost receives the error and the loop's exception
 * handler hears about it), as in _SelectorTransport._fatal_error.
 *
 * On io_uring a Protocol's transport keeps one multishot receive armed
 * whose completions land in buffers the kernel picks from the loop's
 * provided-buffer ring (data_received sees them in place; no SQE per
 * read); elsewhere, or when those buffers run out, it reads single-shot
 * into a buffer it owns. A BufferedProtocol is read into its own buffer
 * (get_buffer / buffer_updated). Written data is copied into a double write
 * buffer that goes to the kernel while the next writes accumulate. Steady
 * state allocates nothing.
 */
#ifndef CASYNCIO_TRANSPORT_H
#define CASYNCIO_TRANSPORT_H

#include <sys/socket.h>
#include <sys/uio.h>

#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ca_transport ca_transport;
typedef struct ca_server ca_server;
typedef struct ca_protocol ca_protocol;

/**
 * The callbacks of a protocol (protocols.Protocol / BufferedProtocol). Any
 * may be NULL (the base class's no-op). A BufferedProtocol sets get_buffer
 * and buffer_updated; data_received is then never called.
 */
typedef struct ca_protocol_ops {
    /** The connection is up. `transport` is borrowed and stays valid until
     *  connection_lost returns (ca_incref it to keep it longer). */
    struct ca_error *(*connection_made)(ca_protocol *self, ca_transport *transport);
    /** `len` bytes arrived; `data` is borrowed for the call only. */
    struct ca_error *(*data_received)(ca_protocol *self, const void *data, size_t len);
    /** BufferedProtocol: a buffer of at least one byte to read into
     *  (`sizehint` is the transport's preferred size). The buffer must stay
     *  valid until buffer_updated or connection_lost is called. */
    struct ca_error *(*get_buffer)(ca_protocol *self, size_t sizehint, void **buf, size_t *len);
    /** BufferedProtocol: `nbytes` bytes were written into the buffer. */
    struct ca_error *(*buffer_updated)(ca_protocol *self, size_t nbytes);
    /** The peer closed its side. Set *keep_open to keep the transport open
     *  for writing (half-close); it is closed otherwise. */
    struct ca_error *(*eof_received)(ca_protocol *self, bool *keep_open);
    /** The connection is gone: `exc` (borrowed) is NULL after a regular
     *  close or EOF, else why it was lost. Called exactly once after
     *  connection_made. Errors go to the exception handler. */
    struct ca_error *(*connection_lost)(ca_protocol *self, struct ca_error *exc);
    /** The transport's write buffer went over the high-water mark. */
    struct ca_error *(*pause_writing)(ca_protocol *self);
    /** ... and drained to the low-water mark. */
    struct ca_error *(*resume_writing)(ca_protocol *self);
    /** The transport is done with the protocol (after connection_lost, or
     *  when it could not start); free it here. May be NULL. */
    void (*release)(ca_protocol *self);
} ca_protocol_ops;

/** The header of every protocol: embed it in the protocol's struct (as the
 *  first member, the ca_protocol pointer is the struct's pointer). */
struct ca_protocol {
    const ca_protocol_ops *ops;
};

/** Makes the protocol for one connection (protocol_factory()); NULL means
 *  out of memory. The transport takes the returned protocol. */
typedef ca_protocol *(*ca_protocol_factory)(void *arg);

extern const ca_type ca_TransportType;
extern const ca_type ca_ServerType;

/* MARK: - Transports */

/**
 * write(data): queues a copy of `len` bytes. Nothing is written after
 * write_eof (RuntimeError "Cannot call write() after write_eof()"); after
 * the connection is lost writes are dropped (and counted, as asyncio does).
 * MemoryError when the buffer cannot grow. Pauses the protocol's writing
 * past the high-water mark.
 */
struct ca_error *ca_transport_write(ca_transport *t, const void *data, size_t len);

/** writelines(list): write() of each buffer, in order. */
struct ca_error *ca_transport_writelines(ca_transport *t, const struct iovec *iov, int iovcnt);

/** write_eof(): shuts down the write side once the buffer is flushed. */
struct ca_error *ca_transport_write_eof(ca_transport *t);

/** can_write_eof(): true for sockets. */
bool ca_transport_can_write_eof(const ca_transport *t);

/** close(): stops reading, flushes the write buffer, then closes the socket
 *  and calls connection_lost(NULL) from the ready queue. Idempotent. */
void ca_transport_close(ca_transport *t);

/** abort(): closes at once, discarding buffered data; connection_lost(NULL). */
void ca_transport_abort(ca_transport *t);

/** is_closing(). */
bool ca_transport_is_closing(const ca_transport *t);

/** pause_reading(): no data_received until resume_reading. Bytes the
 *  kernel delivered in the race are delivered on resume. No-op when closing
 *  or already paused. */
void ca_transport_pause_reading(ca_transport *t);

/** resume_reading(). No-op when closing or not paused. */
void ca_transport_resume_reading(ca_transport *t);

/** is_reading(). */
bool ca_transport_is_reading(const ca_transport *t);

/** The "None" of ca_transport_set_write_buffer_limits' arguments. */
static const int64_t CA_WRITE_LIMIT_DEFAULT = INT64_MIN; /* a constant Swift imports */

/**
 * set_write_buffer_limits(high, low), FlowControlMixin's rules: either may be
 * CA_WRITE_LIMIT_DEFAULT (Python's None): both default gives high 64 KiB;
 * high alone sets low to high // 4; low alone sets high to 4 * low. Any other
 * value, negative ones included, is taken as given, so a negative limit is
 * the ValueError "high (H) must be >= low (L) must be >= 0" (H and L as
 * derived), and the limits stay as they were. Pauses the protocol at once
 * when the buffer is already above the new high mark.
 */
struct ca_error *ca_transport_set_write_buffer_limits(ca_transport *t, int64_t high, int64_t low);

/** get_write_buffer_limits(): (low, high). */
void ca_transport_get_write_buffer_limits(const ca_transport *t, size_t *low, size_t *high);

/** get_write_buffer_size(): bytes queued and not yet accepted by the kernel. */
size_t ca_transport_get_write_buffer_size(const ca_transport *t);

/** get_extra_info('socket').fileno(): the socket, -1 once closed. */
int ca_transport_get_fd(const ca_transport *t);

/** get_extra_info('peername'): copies the peer's address; false when
 *  unknown (the socket is closed). */
bool ca_transport_get_peername(const ca_transport *t, struct sockaddr_storage *addr, socklen_t *len);
/** get_extra_info('sockname'): copies the local address; false when unknown. */
bool ca_transport_get_sockname(const ca_transport *t, struct sockaddr_storage *addr, socklen_t *len);

/** get_protocol() (borrowed). */
ca_protocol *ca_transport_get_protocol(const ca_transport *t);

/** set_protocol(p): the transport takes `p` and releases the old one. */
void ca_transport_set_protocol(ca_transport *t, ca_protocol *p);

/** The transport's loop (borrowed). */
ca_loop *ca_transport_get_loop(const ca_transport *t);

/* MARK: - Servers */

/** create_server options. Zero-initialise for asyncio's defaults. */
typedef struct ca_server_options {
    int backlog;              /* 0: 100 */
    bool no_reuse_address;    /* asyncio sets SO_REUSEADDR on POSIX unless told not to */
    bool reuse_port;          /* SO_REUSEPORT */
    bool no_start_serving;    /* start_serving=False */
} ca_server_options;

/**
 * create_server(protocol_factory, host, port): listens on every numeric
 * address `host` names (NULL: every local interface, IPv4 and IPv6; names
 * are not looked up: the loop thread never waits for DNS). Port 0 picks a
 * free port (ca_server_get_port). Synchronous: asyncio's coroutine only
 * awaits getaddrinfo. New reference in *out. Errors: OSError subclasses
 * from socket/bind/listen ("[Errno 98] Address already in use: bind
 * ('127.0.0.1', 8888)"), ValueError for a name, RuntimeError when the loop
 * is closed.
 */
struct ca_error *ca_loop_create_server(ca_loop *loop, ca_protocol_factory factory, void *arg, const char *host,
                                       uint16_t port, const ca_server_options *opts, ca_server **out);

/** create_unix_server(protocol_factory, path): as create_server on an
 *  AF_UNIX stream socket bound to `path` (a stale socket file there is
 *  removed first, as asyncio does). */
struct ca_error *ca_loop_create_unix_server(ca_loop *loop, ca_protocol_factory factory, void *arg,
                                            const char *path, const ca_server_options *opts, ca_server **out);

/** Server.start_serving(): starts accepting (no-op when serving). */
struct ca_error *ca_server_start_serving(ca_server *s);

/** Server.is_serving(). */
bool ca_server_is_serving(const ca_server *s);

/** Server.close(): stops listening and closes the listening sockets;
 *  existing connections stay open. */
void ca_server_close(ca_server *s);

/** Server.close_clients(): close() every connection the server accepted. */
void ca_server_close_clients(ca_server *s);
/** Server.abort_clients(): abort() every connection the server accepted. */
void ca_server_abort_clients(ca_server *s);

/** Server.wait_closed(): a future (new reference; NULL when out of memory)
 *  resolved once the server is closed and its last connection is gone. */
ca_future *ca_server_wait_closed(ca_server *s);

/** The port the first listening socket is bound to (0 for Unix sockets). */
uint16_t ca_server_get_port(const ca_server *s);

/** Server.sockets: copies up to `cap` listening fds; returns how many. */
size_t ca_server_get_fds(const ca_server *s, int *fds, size_t cap);

/** The number of live connections the server accepted. */
size_t ca_server_connection_count(const ca_server *s);

/* MARK: - Clients */

/**
 * create_connection(protocol_factory, host, port): connects to each address
 * in turn — an IP literal directly, a host name ("localhost") once
 * ca_loop_getaddrinfo resolved it on the default executor; the future resolves to the transport (OBJECT value) once
 * connection_made ran (the protocol: ca_transport_get_protocol). Cancelling
 * it cancels the connect and closes the socket. Errors (the future's):
 * ConnectionRefusedError "[Errno 111] Connection refused: Connect call
 * failed ('127.0.0.1', 1)", or OSError "Multiple exceptions: ..." when
 * every address failed differently; gaierror when the name does not resolve.
 * Cancelling during the lookup cancels it. Returned at once: ValueError
 * without a host, RuntimeError when the loop is closed, MemoryError.
 */
struct ca_error *ca_loop_create_connection(ca_loop *loop, ca_protocol_factory factory, void *arg,
                                           const char *host, uint16_t port, ca_future **out);

/** create_unix_connection(protocol_factory, path). */
struct ca_error *ca_loop_create_unix_connection(ca_loop *loop, ca_protocol_factory factory, void *arg,
                                                const char *path, ca_future **out);

/**
 * connect_accepted_socket / the transport of an already connected socket:
 * wraps `fd` (taken; made non-blocking) with a protocol from `factory`.
 * New reference in *out; connection_made runs from the ready queue.
 */
struct ca_error *ca_loop_connect_accepted_socket(ca_loop *loop, ca_protocol_factory factory, void *arg, int fd,
                                                 ca_transport **out);

#ifdef __cplusplus
}
#endif
#endif
