/*
 * casyncio_shim_datagram.h — a DatagramProtocol whose callbacks reach a
 * Swift object (DatagramSocket): the protocol struct carries the object's
 * retained pointer, and four plain functions do the calls.
 */
#ifndef CASYNCIO_SHIM_DATAGRAM_H
#define CASYNCIO_SHIM_DATAGRAM_H

#include <casyncio/casyncio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Where a shim protocol's callbacks go; `owner` is the Swift object. */
typedef struct cas_dgram_callbacks {
    void (*received)(void *owner, const void *data, size_t len, const struct sockaddr *addr, socklen_t addrlen);
    void (*error)(void *owner, ca_error *exc);
    void (*lost)(void *owner, ca_error *exc);
    void (*release)(void *owner);
} cas_dgram_callbacks;

/** A protocol forwarding to `cb` with `owner` (both borrowed until
 *  release, which the transport calls once it is done). NULL: memory. */
ca_datagram_protocol *cas_dgram_protocol_new(void *owner, const cas_dgram_callbacks *cb);

#ifdef __cplusplus
}
#endif
#endif
