/*
 * datagram_shim.c — the forwarding DatagramProtocol of
 * casyncio_shim_datagram.h.
 */
#include "casyncio_shim_datagram.h"

#include <stdlib.h>

typedef struct cas_dgram_protocol {
    ca_datagram_protocol base;
    void *owner;
    const cas_dgram_callbacks *cb;
} cas_dgram_protocol;

static ca_error *shim_received(ca_datagram_protocol *self, const void *data, size_t len,
                               const struct sockaddr *addr, socklen_t addrlen) {
    cas_dgram_protocol *p = (cas_dgram_protocol *)self;
    p->cb->received(p->owner, data, len, addr, addrlen);
    return NULL;
}

static ca_error *shim_error(ca_datagram_protocol *self, ca_error *exc) {
    cas_dgram_protocol *p = (cas_dgram_protocol *)self;
    p->cb->error(p->owner, exc);
    return NULL;
}

static ca_error *shim_lost(ca_datagram_protocol *self, ca_error *exc) {
    cas_dgram_protocol *p = (cas_dgram_protocol *)self;
    p->cb->lost(p->owner, exc);
    return NULL;
}

static void shim_release(ca_datagram_protocol *self) {
    cas_dgram_protocol *p = (cas_dgram_protocol *)self;
    p->cb->release(p->owner);
    free(p);
}

static const ca_datagram_protocol_ops shim_ops = {
    .datagram_received = shim_received,
    .error_received = shim_error,
    .connection_lost = shim_lost,
    .release = shim_release,
};

ca_datagram_protocol *cas_dgram_protocol_new(void *owner, const cas_dgram_callbacks *cb) {
    cas_dgram_protocol *p = malloc(sizeof *p);
    if (p == NULL) return NULL;
    p->base.ops = &shim_ops;
    p->owner = owner;
    p->cb = cb;
    return &p->base;
}
