/*
 * ts_datagram.h — a recording DatagramProtocol for the UDP specification
 * tests (Tests/CAsyncioTests/DatagramTests.swift).
 */
#ifndef TS_DATAGRAM_H
#define TS_DATAGRAM_H

#include <casyncio/casyncio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ts_dgram_stats {
    bool echo;                    /* in: send every datagram back to its sender */
    int made;
    int lost;
    int lost_with_error;
    int received;                 /* datagrams */
    int errors;                   /* error_received calls */
    uint64_t bytes;
    size_t last_len;
    uint8_t last_data[512];       /* the first bytes of the last datagram */
    struct sockaddr_storage last_addr;
    socklen_t last_addrlen;
    char last_error[160];         /* "Type: message" of the last error_received */
    ca_datagram_transport *transport; /* strong, from connection_made to connection_lost */
} ts_dgram_stats;

/** A protocol recording into `stats` (which must outlive it). */
ca_datagram_protocol *ts_dgram_protocol_new(ts_dgram_stats *stats);

/** create_datagram_endpoint with a recording protocol. */
ca_error *ts_dgram_endpoint(ca_loop *loop, ts_dgram_stats *stats, const ca_datagram_endpoint_options *opts,
                            ca_datagram_transport **out);

/** The port of a transport's local address (0 when unknown). */
uint16_t ts_dgram_local_port(const ca_datagram_transport *t);

/** The port in stats->last_addr. */
uint16_t ts_dgram_last_port(const ts_dgram_stats *stats);

/** sendto 127.0.0.1:port (or ::1 when `v6`). */
ca_error *ts_dgram_sendto_port(ca_datagram_transport *t, const void *data, size_t len, uint16_t port, bool v6);

/** A UDP port nothing listens on right now (bound, read, closed). */
uint16_t ts_dgram_free_port(void);

#ifdef __cplusplus
}
#endif
#endif
