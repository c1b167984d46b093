// asyncio's start_server for Swift: a C stream server whose accepted
// connections come out of an AsyncSequence instead of a callback.

import CAsyncio
import CAsyncioShim

#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP or Unix-domain stream server (`asyncio.Server` of
/// `start_server`) whose accepted connections are an `AsyncSequence`.
///
/// ```swift
/// let server = try await loop.startServer(host: "127.0.0.1", port: 8888)
/// for try await conn in server {
///     try loop.createTask {
///         while true {
///             let bytes = try await conn.read()
///             if bytes.isEmpty { break }
///             try conn.write(bytes)
///             try await conn.drain()
///         }
///         conn.close()
///     }
/// }
/// ```
///
/// The loop accepts connections as they come, whether or not anyone
/// iterates; each waits in the server until ``accept()`` (or the
/// iterator) takes it. ``close()`` stops listening, closes the connections
/// nobody took, and ends the sequence; connections already taken stay open.
/// Dropping the last reference closes the server too.
///
/// A server belongs to its loop's thread, like a ``TCPConnection``.
///
/// Safety of `@unchecked Sendable`: the stored properties are immutable;
/// the C server and the queue of accepted connections are confined to the
/// loop's thread (the methods check it), and `deinit` closes the server on
/// that thread.
public final class TCPServer: AsyncSequence, @unchecked Sendable, CustomStringConvertible {
    /// Each element is one accepted connection.
    public typealias Element = TCPConnection
    /// Iteration throws ``CancelledError``.
    public typealias Failure = any Error

    /// The C server (this object owns one reference).
    public let unsafeRaw: OpaquePointer
    /// The accepted connections waiting to be taken, shared with the C
    /// server's callback.
    let state: ServerState
    let loop: OpaquePointer

    init(unsafeTakingOwnershipOf raw: OpaquePointer, state: ServerState, loop: OpaquePointer) {
        unsafeRaw = raw
        self.state = state
        self.loop = loop
    }

    deinit {
        runOnLoopThread(loop, shutDownServer,
                        Unmanaged.passRetained(ServerShutdown(server: unsafeRaw, state: state)).toOpaque())
    }

    // MARK: Accepting

    /// The next accepted connection, waiting for one if none is there.
    ///
    /// Several tasks may wait at once; each connection goes to one of them.
    ///
    /// - Returns: the connection; `nil` once the server is closed.
    /// - Throws: ``CancelledError``.
    nonisolated(nonsending) public func accept() async throws -> TCPConnection? {
        checkConfined(loop: loop)
        // Stepped on the loop's thread when awaited from elsewhere: a wait
        // begun while the loop was idle ends while it runs, and the queue,
        // the waiter and the connection's wrapping are the loop's. The
        // state goes unretained: this server holds it, and the caller keeps
        // the server alive until the accept returns, after its last step.
        return try await Await.steps(loop: loop, (Unmanaged.passUnretained(state), loop)) { context, _ in
            try context.0._withUnsafeGuaranteedRef { try $0.acceptStep(loop: context.1) }
        } settle: { context, waiter in
            context.0._withUnsafeGuaranteedRef { $0.acceptWaited(waiter) }
        }
    }

    /// The iterator: ``accept()`` until the server is closed.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(server: self) }

    /// Steps through the accepted connections.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let server: TCPServer

        /// The next connection; `nil` once the server is closed.
        nonisolated(nonsending) public mutating func next() async throws -> TCPConnection? {
            try await server.accept()
        }

        /// `next()` from any isolation (`for try await` calls this).
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(any Error) -> TCPConnection? {
            try await server.accept()
        }
    }

    // MARK: State

    /// The port the first listening socket is bound to (0 for a Unix
    /// socket): the one the system picked when the server asked for port 0.
    public var port: UInt16 {
        checkConfined(loop: loop)
        return ca_server_get_port(unsafeRaw)
    }

    /// The addresses the server listens on (`[s.getsockname() for s in
    /// server.sockets]`); empty once closed.
    public var addresses: [SocketAddress] {
        checkConfined(loop: loop)
        var fds = [Int32](repeating: -1, count: 8)
        let n = Swift.min(ca_server_get_fds(unsafeRaw, &fds, fds.count), fds.count)
        return fds.prefix(n).compactMap { fd in
            SocketAddress.read { addr, len in
                addr.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, len) == 0 }
            }
        }
    }

    /// `is_serving()`.
    public var isServing: Bool {
        checkConfined(loop: loop)
        return ca_server_is_serving(unsafeRaw)
    }

    /// The connections the server accepted that are still open (taken from
    /// the sequence or not).
    public var connectionCount: Int {
        checkConfined(loop: loop)
        return ca_server_connection_count(unsafeRaw)
    }

    // MARK: Closing

    /// `close()`: stops listening and closes the listening sockets; closes
    /// the accepted connections nobody took, and ends the sequence (waiting
    /// ``accept()`` calls return `nil`). Connections already taken stay
    /// open. Idempotent.
    public func close() {
        checkConfined(loop: loop)
        ca_server_close(unsafeRaw)
        state.close()
    }

    /// `close_clients()`: ``TCPConnection/close()`` of every connection the
    /// server accepted.
    public func closeClients() {
        checkConfined(loop: loop)
        ca_server_close_clients(unsafeRaw)
    }

    /// `abort_clients()`: ``TCPConnection/abort()`` of every connection the
    /// server accepted.
    public func abortClients() {
        checkConfined(loop: loop)
        ca_server_abort_clients(unsafeRaw)
    }

    /// `wait_closed()`: waits until the server is closed and its last
    /// connection is gone.
    ///
    /// - Throws: ``CancelledError``.
    nonisolated(nonsending) public func waitClosed() async throws {
        checkConfined(loop: loop)
        guard let f = ca_server_wait_closed(unsafeRaw) else { throw AsyncioError(typeName: "MemoryError") }
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: loop) }
        try await Await.done(f)
    }

    /// `<TCPServer sockets=[('127.0.0.1', 8888)]>`.
    public var description: String {
        "<TCPServer sockets=[\(addresses.map(String.init(describing:)).joined(separator: ", "))]>"
    }
}

// MARK: - The queue of accepted connections

/// The connections a server accepted and nobody took yet, and the
/// ``TCPServer/accept()`` calls waiting for one. Loop thread only. The C
/// server owns one reference (its callback's argument), the TCPServer
/// another.
final class ServerState {
    /// Accepted StreamWriters (one reference each), oldest first.
    private var pending = FIFO<OpaquePointer>()
    /// Futures of waiting accept() calls (one reference each).
    private var waiters: [UnsafeMutablePointer<ca_future>] = []
    /// The server was closed: connections made from now on are closed.
    private(set) var closed = false

    deinit {
        for w in pending.remaining { closeAndRelease(w) }
        for f in waiters { ca_decref(UnsafeMutableRawPointer(f)) }
    }

    /// client_connected_cb: keeps `writer` for accept() and wakes the waiters.
    func connectionMade(_ writer: OpaquePointer) {
        if closed {
            ca_stream_writer_close(writer)
            return
        }
        ca_incref(UnsafeMutableRawPointer(writer))
        pending.append(writer)
        wakeWaiters()
    }

    /// A step of ``TCPServer/accept()``: the oldest accepted connection,
    /// `nil` once the server is closed, else a new waiter to wait on (kept
    /// in ``waiters``; the step's reference is the caller's).
    func acceptStep(loop: OpaquePointer) throws -> LoopStep<TCPConnection?> {
        if let writer = pending.popFirst() { return .done(TCPConnection(unsafeTakingOwnershipOf: writer)) }
        if closed { return .done(nil) }
        guard let waiter = ca_future_new(loop) else { throw AsyncioError(typeName: "MemoryError") }
        waiters.append(waiter)
        ca_incref(UnsafeMutableRawPointer(waiter))
        return .wait(waiter)
    }

    /// After an accept's wait on `waiter` (woken, cancelled or abandoned):
    /// drops it from the waiting list if it is still there, and the step's
    /// reference.
    func acceptWaited(_ waiter: UnsafeMutablePointer<ca_future>) {
        if let i = waiters.firstIndex(of: waiter) {
            waiters.remove(at: i)
            ca_decref(UnsafeMutableRawPointer(waiter))
        }
        ca_decref(UnsafeMutableRawPointer(waiter))
    }

    /// The server closed: closes what nobody took, wakes every waiter.
    func close() {
        if closed { return }
        closed = true
        for w in pending.removeAll() { closeAndRelease(w) }
        wakeWaiters()
    }

    private func wakeWaiters() {
        let woken = waiters
        waiters = []
        for f in woken {
            if f.pointee.fut_state == UInt8(CA_FUTURE_PENDING.rawValue) {
                if let err = ca_future_set_result(f, ca_none()) { ca_decref(UnsafeMutableRawPointer(err)) }
            }
            ca_decref(UnsafeMutableRawPointer(f))
        }
    }

    private func closeAndRelease(_ writer: OpaquePointer) {
        ca_stream_writer_close(writer)
        ca_decref(UnsafeMutableRawPointer(writer))
    }
}

/// A server's last reference and its state, on their way to the loop thread.
private final class ServerShutdown {
    let server: OpaquePointer
    let state: ServerState
    init(server: OpaquePointer, state: ServerState) {
        self.server = server
        self.state = state
    }
}

/// Closes a dropped server and releases it (loop thread).
private func shutDownServer(_ arg: UnsafeMutableRawPointer?) {
    let box = Unmanaged<ServerShutdown>.fromOpaque(arg!).takeRetainedValue()
    ca_server_close(box.server)
    box.state.close()
    ca_decref(UnsafeMutableRawPointer(box.server))
}

/// The C server's client_connected_cb: queues the connection; runs no task.
func serverConnectionMade(_ reader: OpaquePointer?, _ writer: OpaquePointer?,
                          _ arg: UnsafeMutableRawPointer?) -> UnsafeMutablePointer<ca_coro>? {
    Unmanaged<ServerState>.fromOpaque(arg!).takeUnretainedValue().connectionMade(writer!)
    return nil
}

/// Releases the C server's reference to its state.
func releaseServerState(_ arg: UnsafeMutableRawPointer?) {
    Unmanaged<ServerState>.fromOpaque(arg!).release()
}
