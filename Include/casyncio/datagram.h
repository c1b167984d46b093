/*
 * datagram.h — UDP endpoints: loop.create_datagram_endpoint,
 * DatagramProtocol and DatagramTransport (Lib/asyncio/protocols.py,
 * selector_events._SelectorDatagramTransport).
 *
 * On io_uring every receive and send is one RECVMSG / SENDMSG SQE; on epoll
 * the same calls run when the socket is ready. The transport keeps one
 * receive armed into a buffer of `max_size` bytes; a datagram is handed to
 * datagram_received from the ready queue, then the receive is re-armed.
 * Datagrams given to sendto are copied and sent in order, one in flight.
 */
#ifndef CASYNCIO_DATAGRAM_H
#define CASYNCIO_DATAGRAM_H

#include <sys/socket.h>

#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ca_datagram_transport ca_datagram_transport;
typedef struct ca_datagram_protocol ca_datagram_protocol;

/**
 * The callbacks of a DatagramProtocol; any may be NULL. They run from the
 * ready queue. An error returned by one is reported to the loop's exception
 * handler (the transport goes on), except from connection_made, which
 * closes the transport.
 */
typedef struct ca_datagram_protocol_ops {
    /** The endpoint is ready; `transport` is borrowed until connection_lost
     *  returns (ca_incref it to keep it). */
    struct ca_error *(*connection_made)(ca_datagram_protocol *self, ca_datagram_transport *transport);
    /** One datagram of `len` bytes from `addr` (all borrowed for the call).
     *  A datagram longer than the transport's max_size arrives cut to it,
     *  as recvfrom(max_size) cuts it. */
    struct ca_error *(*datagram_received)(ca_datagram_protocol *self, const void *data, size_t len,
                                          const struct sockaddr *addr, socklen_t addrlen);
    /** A send or receive failed (`exc` borrowed): ConnectionRefusedError
     *  when an earlier datagram of a connected endpoint drew an ICMP port
     *  unreachable, and the like. The transport stays open. */
    struct ca_error *(*error_received)(ca_datagram_protocol *self, struct ca_error *exc);
    /** The transport is closed (`exc` NULL after close/abort). Exactly once
     *  after connection_made. */
    struct ca_error *(*connection_lost)(ca_datagram_protocol *self, struct ca_error *exc);
    /** The transport is done with the protocol; free it here (may be NULL). */
    void (*release)(ca_datagram_protocol *self);
} ca_datagram_protocol_ops;

/** The header of every datagram protocol (embed it first). */
struct ca_datagram_protocol {
    const ca_datagram_protocol_ops *ops;
};

extern const ca_type ca_DatagramTransportType;

/** create_datagram_endpoint options. Zero-initialise, then set addresses. */
typedef struct ca_datagram_endpoint_options {
    const char *local_host;   /* numeric; NULL: do not bind (the kernel picks on first send) */
    uint16_t local_port;
    const char *remote_host;  /* numeric; NULL: unconnected, sendto needs an address */
    uint16_t remote_port;
    int family;               /* AF_INET / AF_INET6; 0: from the addresses */
    bool reuse_port;          /* SO_REUSEPORT */
    bool allow_broadcast;     /* SO_BROADCAST */
    size_t max_size;          /* receive buffer; 0: 256 KiB, asyncio's max_size */
} ca_datagram_endpoint_options;

/**
 * create_datagram_endpoint(protocol, local_addr=, remote_addr=, family=,
 * reuse_port=, allow_broadcast=): a UDP socket bound and/or connected as
 * `opts` says, wrapped in a transport (new reference in *out) for the
 * protocol `protocol` (taken: released through its ops->release when the
 * transport is done, or at once on error). connection_made runs from the
 * ready queue. Synchronous: addresses are numeric (resolve names first
 * with ca_loop_getaddrinfo). Errors: ValueError (no address and no family,
 * a name, mixed families), OSError subclasses from socket/bind/connect
 * naming the address, RuntimeError "Event loop is closed", MemoryError.
 */
struct ca_error *ca_loop_create_datagram_endpoint(ca_loop *loop, ca_datagram_protocol *protocol,
                                                  const ca_datagram_endpoint_options *opts,
                                                  ca_datagram_transport **out);

/**
 * sendto(data, addr): queues a copy of `len` bytes for `addr` (NULL: the
 * connected peer). Errors: ValueError "Invalid address: must be None or
 * ('h', p)" for an address other than the peer of a connected endpoint,
 * ValueError when an unconnected endpoint gets none, MemoryError. After
 * close the datagram is dropped (asyncio counts and warns). Send failures
 * go to error_received.
 */
struct ca_error *ca_datagram_transport_sendto(ca_datagram_transport *t, const void *data, size_t len,
                                              const struct sockaddr *addr, socklen_t addrlen);

/** close(): stops receiving, sends what is queued, then closes the socket
 *  and calls connection_lost(NULL). Idempotent. */
void ca_datagram_transport_close(ca_datagram_transport *t);

/** abort(): closes at once, dropping queued datagrams; connection_lost(NULL). */
void ca_datagram_transport_abort(ca_datagram_transport *t);

/** is_closing(). */
bool ca_datagram_transport_is_closing(const ca_datagram_transport *t);

/** get_write_buffer_size(): bytes queued and not yet sent. */
size_t ca_datagram_transport_get_write_buffer_size(const ca_datagram_transport *t);

/** get_extra_info('socket').fileno(): -1 once closed. */
int ca_datagram_transport_get_fd(const ca_datagram_transport *t);

/** get_extra_info('sockname'): false when unknown (closed). */
bool ca_datagram_transport_get_sockname(const ca_datagram_transport *t, struct sockaddr_storage *addr,
                                        socklen_t *len);

/** get_extra_info('peername'): false when not connected or closed. */
bool ca_datagram_transport_get_peername(const ca_datagram_transport *t, struct sockaddr_storage *addr,
                                        socklen_t *len);

/** get_protocol() (borrowed). */
ca_datagram_protocol *ca_datagram_transport_get_protocol(const ca_datagram_transport *t);

#ifdef __cplusplus
}
#endif
#endif
