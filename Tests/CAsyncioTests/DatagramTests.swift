// UDP endpoints (create_datagram_endpoint, DatagramProtocol,
// DatagramTransport) as asyncio's _SelectorDatagramTransport behaves, on
// both backends: RECVMSG/SENDMSG SQEs on io_uring, readiness on epoll.

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

@Suite("I/O: datagrams")
struct DatagramTests {

    /// A recording endpoint whose transport is closed and released with the loop.
    final class Endpoint {
        let stats: UnsafeMutablePointer<ts_dgram_stats>
        let transport: OpaquePointer
        var port: UInt16 { ts_dgram_local_port(transport) }

        init(_ l: IOLoop, local: String? = "127.0.0.1", localPort: UInt16 = 0, remote: String? = nil,
             remotePort: UInt16 = 0, echo: Bool = false, maxSize: Int = 0, reusePort: Bool = false) throws {
            let st = l.buffer(ts_dgram_stats.self)
            st.pointee.echo = echo
            stats = st
            var out: OpaquePointer?
            let err: ErrorPtr? = local.withOptionalCString { lh in
                remote.withOptionalCString { rh in
                    var o = ca_datagram_endpoint_options()
                    o.local_host = lh
                    o.local_port = localPort
                    o.remote_host = rh
                    o.remote_port = remotePort
                    o.max_size = maxSize
                    o.reuse_port = reusePort
                    return ts_dgram_endpoint(l.loop, st, &o, &out)
                }
            }
            if let info = take(err) { throw TestFailure("create_datagram_endpoint failed: \(info)") }
            transport = try #require(out)
            let (t, s) = (transport, stats)
            l.atExit {
                decref(s.pointee.transport)
                decref(t)
            }
        }

        var lastData: [UInt8] {
            withUnsafeBytes(of: stats.pointee.last_data) { Array($0.prefix(min(stats.pointee.last_len, 512))) }
        }
        var lastError: String {
            withUnsafeBytes(of: stats.pointee.last_error) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        }

        func send(_ s: String) -> ErrorInfo? { take(ca_datagram_transport_sendto(transport, s, s.utf8.count, nil, 0)) }
        func send(_ s: String, to port: UInt16, v6: Bool = false) -> ErrorInfo? {
            take(ts_dgram_sendto_port(transport, s, s.utf8.count, port, v6))
        }

        func close(_ l: IOLoop) {
            ca_datagram_transport_close(transport)
            #expect(l.runUntil(timeout: 5) { stats.pointee.lost == 1 })
        }
    }

    @Test("a datagram goes to a connected endpoint's peer and the echo comes back from it",
          arguments: IOBackend.allCases)
    func roundTrip(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let server = try Endpoint(l, echo: true)
            let client = try Endpoint(l, local: nil, remote: "127.0.0.1", remotePort: server.port)
            #expect(l.runUntil(timeout: 5) { client.stats.pointee.made == 1 && server.stats.pointee.made == 1 })
            #expect(client.send("hello") == nil)
            #expect(l.runUntil(timeout: 5) { client.stats.pointee.received == 1 })
            #expect(client.lastData == bytes("hello"))
            #expect(ts_dgram_last_port(client.stats) == server.port)
            #expect(server.stats.pointee.received == 1)
            #expect(ts_dgram_last_port(server.stats) == client.port)
            var peer = sockaddr_storage(), len = socklen_t(0)
            #expect(ca_datagram_transport_get_peername(client.transport, &peer, &len))
            #expect(!ca_datagram_transport_get_peername(server.transport, &peer, &len))
            client.close(l)
            server.close(l)
            #expect(client.stats.pointee.lost_with_error == 0)
            #expect(ca_datagram_transport_get_fd(client.transport) == -1)
            #expect(ca_loop_io_pending(l.loop) == 0)
        }
    }

    @Test("an unconnected endpoint sends with sendto(addr) and refuses sendto without one",
          arguments: IOBackend.allCases)
    func sendtoWithoutRemote(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let server = try Endpoint(l, echo: true)
            let client = try Endpoint(l)
            #expect(client.send("no address")?.type == "ValueError")
            #expect(client.send("ping", to: server.port) == nil)
            #expect(l.runUntil(timeout: 5) { client.stats.pointee.received == 1 })
            #expect(client.lastData == bytes("ping"))
            #expect(ts_dgram_last_port(client.stats) == server.port)
            client.close(l)
            server.close(l)
        }
    }

    @Test("a connected endpoint refuses another address, as asyncio does")
    func connectedRefusesOtherAddress() throws {
        try withIOLoop(.epoll) { l in
            let server = try Endpoint(l)
            let client = try Endpoint(l, local: nil, remote: "127.0.0.1", remotePort: server.port)
            let err = client.send("x", to: server.port &+ 1)
            #expect(err?.type == "ValueError")
            #expect(err?.message?.hasPrefix("Invalid address: must be None or ('127.0.0.1', ") == true)
            #expect(client.send("x", to: server.port) == nil, "the peer's own address is accepted")
            client.close(l)
            server.close(l)
        }
    }

    @Test("ICMP port unreachable reaches a connected endpoint as error_received(ConnectionRefusedError)",
          arguments: IOBackend.allCases)
    func refusedGoesToErrorReceived(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let port = ts_dgram_free_port()
            let client = try Endpoint(l, local: nil, remote: "127.0.0.1", remotePort: port)
            #expect(l.runUntil(timeout: 5) { client.stats.pointee.made == 1 })
            // the first datagram draws the ICMP error; the next operation reports it
            #expect(l.runUntil(timeout: 5) {
                _ = client.send("anyone?")
                l.runFor(0.005)
                return client.stats.pointee.errors > 0
            })
            #expect(client.lastError.hasPrefix("ConnectionRefusedError: [Errno 111] Connection refused"))
            #expect(!ca_datagram_transport_is_closing(client.transport), "the endpoint stays open")
            client.close(l)
            #expect(client.stats.pointee.lost_with_error == 0)
        }
    }

    @Test("a datagram longer than max_size arrives cut to max_size; a 65,507-byte one arrives whole by default",
          arguments: IOBackend.allCases)
    func truncation(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let small = try Endpoint(l, maxSize: 100)
            let big = try Endpoint(l)
            let client = try Endpoint(l)
            let payload = [UInt8](repeating: 0x61, count: 300)
            var addrLoop: [UInt8] = payload
            expectOK(ts_dgram_sendto_port(client.transport, &addrLoop, 300, small.port, false))
            #expect(l.runUntil(timeout: 5) { small.stats.pointee.received == 1 })
            #expect(small.stats.pointee.last_len == 100)
            #expect(small.stats.pointee.errors == 0)

            var large = [UInt8](repeating: 0x62, count: 65_507)
            expectOK(ts_dgram_sendto_port(client.transport, &large, large.count, big.port, false))
            #expect(l.runUntil(timeout: 5) { big.stats.pointee.received == 1 })
            #expect(big.stats.pointee.last_len == 65_507)
            #expect(big.stats.pointee.bytes == 65_507)
            for e in [small, big, client] { e.close(l) }
        }
    }

    @Test("close() sends every queued datagram first, then calls connection_lost(None) once",
          arguments: IOBackend.allCases)
    func closeFlushesPendingSends(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let server = try Endpoint(l)
            let client = try Endpoint(l, local: nil, remote: "127.0.0.1", remotePort: server.port)
            #expect(l.runUntil(timeout: 5) { client.stats.pointee.made == 1 })
            for i in 0..<20 { #expect(client.send("datagram \(i)") == nil) }
            #expect(ca_datagram_transport_get_write_buffer_size(client.transport) > 0)
            ca_datagram_transport_close(client.transport)
            #expect(ca_datagram_transport_is_closing(client.transport))
            #expect(client.send("after close") == nil, "dropped silently, as asyncio does")
            #expect(l.runUntil(timeout: 5) { client.stats.pointee.lost == 1 && server.stats.pointee.received == 20 })
            #expect(server.stats.pointee.received == 20)
            #expect(server.lastData == bytes("datagram 19"))
            #expect(client.stats.pointee.lost_with_error == 0)
            #expect(ca_datagram_transport_get_write_buffer_size(client.transport) == 0)
            l.runFor(0.01)
            #expect(client.stats.pointee.lost == 1)
            server.close(l)
        }
    }

    @Test("abort() drops queued datagrams and calls connection_lost(None)", arguments: IOBackend.allCases)
    func abortDrops(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let server = try Endpoint(l)
            let client = try Endpoint(l, local: nil, remote: "127.0.0.1", remotePort: server.port)
            #expect(l.runUntil(timeout: 5) { client.stats.pointee.made == 1 })
            for i in 0..<20 { #expect(client.send("datagram \(i)") == nil) }
            ca_datagram_transport_abort(client.transport)
            #expect(l.runUntil(timeout: 5) { client.stats.pointee.lost == 1 })
            l.runFor(0.02)
            #expect(server.stats.pointee.received <= 1)
            #expect(ca_loop_io_pending(l.loop) > 0, "the server's receive is still armed")
            server.close(l)
            #expect(ca_loop_io_pending(l.loop) == 0)
        }
    }

    @Test("IPv6 endpoints work like IPv4 ones", arguments: IOBackend.allCases)
    func ipv6(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let server = try Endpoint(l, local: "::1", echo: true)
            let client = try Endpoint(l, local: "::1")
            #expect(client.send("six", to: server.port, v6: true) == nil)
            #expect(l.runUntil(timeout: 5) { client.stats.pointee.received == 1 })
            #expect(client.lastData == bytes("six"))
            #expect(client.stats.pointee.last_addr.ss_family == sa_family_t(AF_INET6))
            client.close(l)
            server.close(l)
        }
    }

    @Test("reuse_port lets two endpoints bind one port; without it the second bind fails with EADDRINUSE")
    func reusePort() throws {
        try withIOLoop(.epoll) { l in
            let a = try Endpoint(l, reusePort: true)
            let b = try Endpoint(l, localPort: a.port, reusePort: true)
            #expect(b.port == a.port)
            let stats = l.buffer(ts_dgram_stats.self)
            var o = ca_datagram_endpoint_options()
            var out: OpaquePointer?
            let err: ErrorInfo? = "127.0.0.1".withCString { h in
                o.local_host = h
                o.local_port = a.port
                return take(ts_dgram_endpoint(l.loop, stats, &o, &out))
            }
            #expect(err?.errNo == EADDRINUSE)
            #expect(err?.message?.hasSuffix("error while attempting to bind on address ('127.0.0.1', \(a.port))") == true)
            #expect(out == nil)
            a.close(l)
            b.close(l)
        }
    }

    @Test("create_datagram_endpoint without any address or family raises ValueError")
    func noAddress() throws {
        try withIOLoop(.epoll) { l in
            let stats = l.buffer(ts_dgram_stats.self)
            var o = ca_datagram_endpoint_options()
            var out: OpaquePointer?
            #expect(take(ts_dgram_endpoint(l.loop, stats, &o, &out))?.type == "ValueError")
            #expect(out == nil)
        }
    }
}
