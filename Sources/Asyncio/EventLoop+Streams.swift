// The loop's stream API for Swift: start_server / open_connection for TCP
// and Unix sockets.

import CAsyncio
import CAsyncioShim

extension EventLoop {
    // MARK: Servers

    /// `asyncio.start_server(host=, port=)`: listens on `host`:`port` and
    /// returns the server, whose accepted connections are an `AsyncSequence`
    /// of ``TCPConnection``.
    ///
    /// - Parameters:
    ///   - host: a numeric IPv4 or IPv6 address (`"127.0.0.1"`, `"::1"`);
    ///     `nil` listens on every interface, IPv4 and IPv6. Names are not
    ///     looked up: the loop's thread never waits for DNS.
    ///   - port: the port; 0 lets the system pick one (``TCPServer/port``).
    ///   - backlog: the listen queue's length.
    ///   - reuseAddress: `SO_REUSEADDR`, on by default as in asyncio.
    ///   - reusePort: `SO_REUSEPORT`.
    ///   - limit: each connection's buffer limit (asyncio's `limit`, 64 KiB):
    ///     reading pauses past twice as much unread data, and
    ///     ``TCPConnection/readUntil(_:)`` fails past it.
    /// - Throws: ``OSError`` from socket, bind or listen (`"[Errno 98]
    ///   Address already in use: ..."`); ``AsyncioError`` (`ValueError`) for
    ///   a host name or a bad argument, (`RuntimeError`) when the loop is
    ///   closed.
    nonisolated(nonsending) public func startServer(host: String? = nil, port: UInt16 = 0, backlog: Int = 100,
                                                    reuseAddress: Bool = true, reusePort: Bool = false,
                                                    limit: Int = 65536) async throws -> TCPServer {
        try startStreamServer(host: host, port: port, path: nil, backlog: backlog, reuseAddress: reuseAddress,
                              reusePort: reusePort, limit: limit)
    }

    /// `asyncio.start_unix_server(path=)`: as
    /// ``startServer(host:port:backlog:reuseAddress:reusePort:limit:)`` on a
    /// Unix-domain stream socket bound to `path` (a stale socket file there
    /// is removed first; closing the server removes it).
    ///
    /// - Throws: ``OSError`` from socket, bind or listen; ``AsyncioError``
    ///   (`ValueError`) for an empty or too long path.
    nonisolated(nonsending) public func startUnixServer(path: String, backlog: Int = 100,
                                                        limit: Int = 65536) async throws -> TCPServer {
        try startStreamServer(host: nil, port: 0, path: path, backlog: backlog, reuseAddress: true, reusePort: false,
                              limit: limit)
    }

    // MARK: Clients

    /// `asyncio.open_connection(host, port)`: connects and returns the
    /// connection.
    ///
    /// - Parameters:
    ///   - host: an IPv4 or IPv6 address, or a host name, which is resolved
    ///     with getaddrinfo on the default executor's threads (never on the
    ///     loop's thread); the addresses are tried in order.
    ///   - port: the port.
    ///   - limit: the connection's buffer limit (see
    ///     ``startServer(host:port:backlog:reuseAddress:reusePort:limit:)``).
    /// - Throws: ``OSError`` (`.connectionRefused` when nothing listens,
    ///   with the address in the message); ``CancelledError`` (cancelling
    ///   the task cancels the lookup or the connect); ``AsyncioError``
    ///   (`gaierror`) when the name does not resolve.
    nonisolated(nonsending) public func openConnection(host: String, port: UInt16,
                                                       limit: Int = 65536) async throws -> TCPConnection {
        let limit = try checkedLimit(limit)
        checkConfined(loop: core.loop)
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(host.withCString { ca_open_connection(core.loop, $0, port, limit, &out) })
        return try await EventLoop.connection(of: out!)
    }

    /// `asyncio.open_unix_connection(path)`: connects to a Unix-domain
    /// stream socket.
    ///
    /// - Throws: ``OSError`` (`.fileNotFound` when there is no socket at
    ///   `path`, `.connectionRefused` when nothing listens on it);
    ///   ``CancelledError``; ``AsyncioError`` (`ValueError`) for an empty
    ///   or too long path.
    nonisolated(nonsending) public func openUnixConnection(path: String,
                                                           limit: Int = 65536) async throws -> TCPConnection {
        let limit = try checkedLimit(limit)
        checkConfined(loop: core.loop)
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(path.withCString { ca_open_unix_connection(core.loop, $0, limit, &out) })
        return try await EventLoop.connection(of: out!)
    }

    // MARK: Internals

    private nonisolated func startStreamServer(host: String?, port: UInt16, path: String?, backlog: Int,
                                               reuseAddress: Bool, reusePort: Bool, limit: Int) throws -> TCPServer {
        let limit = try checkedLimit(limit)
        guard backlog > 0, backlog <= Int(Int32.max) else {
            throw AsyncioError(typeName: "ValueError", message: "backlog must be positive")
        }
        checkConfined(loop: core.loop)
        var opts = ca_server_options()
        opts.backlog = Int32(backlog)
        opts.no_reuse_address = !reuseAddress
        opts.reuse_port = reusePort
        let state = ServerState()
        let arg = Unmanaged.passRetained(state).toOpaque()
        var out: OpaquePointer?
        let loop = core.loop
        // On an error, releaseServerState has already run.
        let err: UnsafeMutablePointer<ca_error>?
        if let path {
            err = path.withCString {
                ca_start_unix_server_owning(loop, serverConnectionMade, arg, releaseServerState, $0, limit, &opts, &out)
            }
        } else {
            err = host.withOptionalCString {
                ca_start_server_owning(loop, serverConnectionMade, arg, releaseServerState, $0, port, limit, &opts,
                                       &out)
            }
        }
        try ErrorBridge.check(err)
        return TCPServer(unsafeTakingOwnershipOf: out!, state: state, loop: loop)
    }

    /// Waits for an open_connection future (taken) and wraps its writer.
    nonisolated(nonsending) private static func connection(of f: UnsafeMutablePointer<ca_future>) async throws
        -> TCPConnection {
        // Released where the loop allows: an await begun while the loop was
        // idle resumes on whatever thread the caller runs on.
        let loop = f.pointee.fut_loop
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: loop) }
        return try await Await.done(f) { _, v in
            TCPConnection(unsafeTakingOwnershipOf: OpaquePointer(ca_incref(UnsafeMutableRawPointer(v.u.obj!))))
        }
    }
}

/// A stream limit as the C API takes it.
private func checkedLimit(_ limit: Int) throws -> Int {
    guard limit > 0 else { throw AsyncioError(typeName: "ValueError", message: "limit must be positive") }
    return limit
}
