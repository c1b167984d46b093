/*
 * datagram_support.c — the recording DatagramProtocol of ts_datagram.h.
 */
#include "ts_datagram.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ts_dgram_protocol {
    ca_datagram_protocol base;
    ts_dgram_stats *stats;
} ts_dgram_protocol;

static ca_error *p_made(ca_datagram_protocol *self, ca_datagram_transport *t) {
    ts_dgram_stats *s = ((ts_dgram_protocol *)self)->stats;
    s->made++;
    s->transport = ca_incref(t);
    return NULL;
}

static ca_error *p_received(ca_datagram_protocol *self, const void *data, size_t len, const struct sockaddr *addr,
                            socklen_t addrlen) {
    ts_dgram_stats *s = ((ts_dgram_protocol *)self)->stats;
    s->received++;
    s->bytes += len;
    s->last_len = len;
    memcpy(s->last_data, data, len < sizeof s->last_data ? len : sizeof s->last_data);
    memcpy(&s->last_addr, addr, addrlen);
    s->last_addrlen = addrlen;
    if (s->echo && s->transport != NULL) return ca_datagram_transport_sendto(s->transport, data, len, addr, addrlen);
    return NULL;
}

static ca_error *p_error(ca_datagram_protocol *self, ca_error *exc) {
    ts_dgram_stats *s = ((ts_dgram_protocol *)self)->stats;
    s->errors++;
    ca_error_describe(exc, s->last_error, sizeof s->last_error);
    return NULL;
}

static ca_error *p_lost(ca_datagram_protocol *self, ca_error *exc) {
    ts_dgram_stats *s = ((ts_dgram_protocol *)self)->stats;
    s->lost++;
    if (exc != NULL) s->lost_with_error++;
    CA_CLEAR(s->transport);
    return NULL;
}

static void p_release(ca_datagram_protocol *self) { free(self); }

static const ca_datagram_protocol_ops p_ops = {
    .connection_made = p_made,
    .datagram_received = p_received,
    .error_received = p_error,
    .connection_lost = p_lost,
    .release = p_release,
};

ca_datagram_protocol *ts_dgram_protocol_new(ts_dgram_stats *stats) {
    ts_dgram_protocol *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->base.ops = &p_ops;
    p->stats = stats;
    return &p->base;
}

ca_error *ts_dgram_endpoint(ca_loop *loop, ts_dgram_stats *stats, const ca_datagram_endpoint_options *opts,
                            ca_datagram_transport **out) {
    return ca_loop_create_datagram_endpoint(loop, ts_dgram_protocol_new(stats), opts, out);
}

static uint16_t port_of(const struct sockaddr_storage *a) {
    if (a->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (a->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return 0;
}

uint16_t ts_dgram_local_port(const ca_datagram_transport *t) {
    struct sockaddr_storage a;
    socklen_t len;
    return ca_datagram_transport_get_sockname(t, &a, &len) ? port_of(&a) : 0;
}

uint16_t ts_dgram_last_port(const ts_dgram_stats *stats) { return port_of(&stats->last_addr); }

ca_error *ts_dgram_sendto_port(ca_datagram_transport *t, const void *data, size_t len, uint16_t port, bool v6) {
    struct sockaddr_storage a = {0};
    socklen_t alen;
    if (v6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        in6->sin6_addr = in6addr_loopback;
        alen = sizeof *in6;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&a;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        alen = sizeof *in;
    }
    return ca_datagram_transport_sendto(t, data, len, (struct sockaddr *)&a, alen);
}

uint16_t ts_dgram_free_port(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&in, sizeof in) == 0 && getsockname(fd, (struct sockaddr *)&in, &len) == 0)
        port = ntohs(in.sin_port);
    if (fd >= 0) close(fd);
    return port;
}
