// UDP for Swift: a DatagramSocket over the C core's datagram transport
// (create_datagram_endpoint), with async receive and send(to:).

import CAsyncio
import CAsyncioShim
import Glibc

/// One datagram and who sent it.
public struct Datagram: Sendable, Hashable {
    /// The bytes (cut to the socket's `maxSize`, as `recvfrom` cuts them).
    public let data: [UInt8]
    /// The sender's address.
    public let sender: SocketAddress
}

/// A UDP socket on the running loop: `loop.create_datagram_endpoint` with
/// a protocol that queues what arrives for ``receive()``.
///
/// ```swift
/// let server = try DatagramSocket(local: ("127.0.0.1", 0))
/// let client = try DatagramSocket(remote: ("127.0.0.1", server.localAddress!.port))
/// try client.send(Array("ping".utf8))
/// let d = try await server.receive()
/// try server.send(d.data, to: d.sender)
/// ```
///
/// Errors the kernel reports (an ICMP port unreachable on a connected
/// socket: ``OSError`` `ConnectionRefusedError`) are thrown by the next
/// ``receive()``. Call ``close()`` when done; a socket dropped without it
/// is closed by `deinit` (asyncio closes a transport the garbage collector
/// finds unclosed), after the datagrams already queued went out.
///
/// Safety of `@unchecked Sendable`: `transport` is written only by `init`,
/// and every method checks that it runs on the loop's thread; `deinit`
/// closes the transport on that thread. What the C callbacks write lives
/// in a ``DatagramInbox`` touched on the loop thread only.
public final class DatagramSocket: @unchecked Sendable {
    private let loop: OpaquePointer
    private var transport: OpaquePointer?
    /// What arrives, held by the C protocol (not by this object, so that a
    /// socket nobody holds is deinitialised and closes its transport).
    private let inbox: DatagramInbox

    /// Creates a UDP endpoint on the running loop: bound to `local` and/or
    /// connected to `remote` (numeric hosts).
    ///
    /// - Parameters:
    ///   - maxSize: the largest datagram received whole (default 256 KiB).
    ///   - reusePort: `SO_REUSEPORT`.
    /// - Throws: ``OSError`` from socket/bind/connect; ``AsyncioError``
    ///   (`ValueError`) for names or no address; (`RuntimeError`) off a loop.
    public init(local: (host: String, port: UInt16)? = nil, remote: (host: String, port: UInt16)? = nil,
                reusePort: Bool = false, maxSize: Int = 0) throws {
        loop = try runningCLoop()
        inbox = DatagramInbox(loop: loop)
        let owner = Unmanaged.passRetained(inbox).toOpaque()
        guard let proto = cas_dgram_protocol_new(owner, datagramCallbacks) else {
            Unmanaged<DatagramInbox>.fromOpaque(owner).release()
            throw AsyncioError(typeName: "MemoryError")
        }
        var out: OpaquePointer?
        let l = loop
        let localHost: String? = local?.host, remoteHost: String? = remote?.host
        let err = localHost.withOptionalCString { lh in
            remoteHost.withOptionalCString { rh in
                Self.create(l, proto, lh, local?.port ?? 0, rh, remote?.port ?? 0, reusePort, maxSize, &out)
            }
        }
        try ErrorBridge.check(err) // on error the protocol was released, and `owner` with it
        transport = out
    }

    private static func create(_ loop: OpaquePointer, _ proto: UnsafeMutablePointer<ca_datagram_protocol>,
                               _ lh: UnsafePointer<CChar>?, _ lp: UInt16, _ rh: UnsafePointer<CChar>?, _ rp: UInt16,
                               _ reusePort: Bool, _ maxSize: Int,
                               _ out: inout OpaquePointer?) -> UnsafeMutablePointer<ca_error>? {
        var o = ca_datagram_endpoint_options()
        o.local_host = lh
        o.local_port = lp
        o.remote_host = rh
        o.remote_port = rp
        o.reuse_port = reusePort
        o.max_size = maxSize
        return ca_loop_create_datagram_endpoint(loop, proto, &o, &out)
    }

    deinit {
        guard let t = transport else { return }
        runOnLoopThread(loop, closeAndReleaseDatagramTransport, UnsafeMutableRawPointer(t))
    }

    /// The bound address (`get_extra_info('sockname')`), nil once closed.
    public var localAddress: SocketAddress? {
        checkConfined(loop: loop)
        guard let t = transport else { return nil }
        return SocketAddress.read { ca_datagram_transport_get_sockname(t, $0, $1) }
    }

    /// The next datagram; suspends until one arrives.
    /// - Throws: the error the kernel reported since the last receive
    ///   (``OSError``); ``AsyncioError`` (`RuntimeError`) once closed, or
    ///   while another task waits in `receive()`; ``CancelledError``.
    nonisolated(nonsending) public func receive() async throws -> Datagram {
        checkConfined(loop: loop)
        return try await inbox.receive()
    }

    /// `transport.sendto(data, addr)`: queues a datagram for `address`
    /// (nil: the connected peer).
    /// - Throws: ``AsyncioError`` (`ValueError`) for a missing, foreign or
    ///   malformed address (a host that is not an IP literal); send failures
    ///   come back through ``receive()``.
    public func send(_ bytes: [UInt8], to address: SocketAddress? = nil) throws {
        checkConfined(loop: loop)
        guard let t = transport else { return }
        let err = try bytes.withUnsafeBytes { data in
            if let address {
                return try address.withSockaddr {
                    ca_datagram_transport_sendto(t, data.baseAddress, data.count, $0, $1)
                }
            }
            return ca_datagram_transport_sendto(t, data.baseAddress, data.count, nil, 0)
        }
        try ErrorBridge.check(err)
    }

    /// Closes the socket after the queued datagrams went out. Idempotent.
    public func close() {
        checkConfined(loop: loop)
        if let t = transport { ca_datagram_transport_close(t) }
    }
}

/// Closes a datagram transport and drops a reference to it (loop thread).
private func closeAndReleaseDatagramTransport(_ arg: UnsafeMutableRawPointer?) {
    ca_datagram_transport_close(OpaquePointer(arg!))
    ca_decref(arg)
}

/// The receiving side of a ``DatagramSocket``: the datagrams and errors the
/// C protocol's callbacks deliver, and the one receive waiting for them.
/// The protocol holds it until `connection_lost`.
///
/// Safety of `@unchecked Sendable`: every field is touched only where the
/// loop's objects may be: on the loop's thread (the C callbacks, which run
/// from its ready queue; the steps of `receive()`), or by the thread that
/// calls `receive()` while the loop is idle, which runs its first step at
/// once (see ``Await/steps(loop:_:_:settle:)``).
final class DatagramInbox: @unchecked Sendable {
    private let loop: OpaquePointer
    private var queue = FIFO<Datagram>()
    private var waiter: UnsafeMutablePointer<ca_future>?
    private var pendingError: (any Error)?
    private var lost = false

    init(loop: OpaquePointer) { self.loop = loop }

    deinit { dropWaiter() }

    /// ``DatagramSocket/receive()``; stepped on the loop's thread when
    /// awaited from elsewhere: a wait begun while the loop was idle ends
    /// while it runs, and the queue and the waiter are the loop's.
    nonisolated(nonsending) func receive() async throws -> Datagram {
        // Unretained: the receiving caller keeps the socket, which holds
        // this inbox, alive until the receive returns, after its last step;
        // a retained one would cost a retain and a release per wait.
        try await Await.steps(loop: loop, Unmanaged.passUnretained(self)) { inbox, _ in
            try inbox._withUnsafeGuaranteedRef { try $0.receiveStep() }
        } settle: { inbox, f in
            inbox._withUnsafeGuaranteedRef { $0.receiveWaited(f) }
        }
    }

    /// A step of ``receive()``: the error to throw, the oldest datagram, or
    /// a new waiter to wait on (the step's reference is the caller's).
    private func receiveStep() throws -> LoopStep<Datagram> {
        if let e = pendingError {
            pendingError = nil
            throw e
        }
        if let d = queue.popFirst() { return .done(d) }
        if lost { throw AsyncioError(typeName: "RuntimeError", message: "the DatagramSocket is closed") }
        // One waiter at a time, as StreamReader._wait_for_data: a second
        // would replace the first, which would then never wake.
        if waiter != nil {
            throw AsyncioError(
                typeName: "RuntimeError",
                message: "receive() called while another task is already waiting for a datagram")
        }
        guard let f = ca_future_new(loop) else { throw AsyncioError(typeName: "MemoryError") }
        waiter = ca_incref(UnsafeMutableRawPointer(f)).assumingMemoryBound(to: ca_future.self)
        return .wait(f)
    }

    /// After a receive's wait on `f`: forgets it if nothing woke it (the
    /// wait was cancelled or abandoned), and drops the step's reference.
    private func receiveWaited(_ f: UnsafeMutablePointer<ca_future>) {
        if waiter == f { dropWaiter() }
        ca_decref(UnsafeMutableRawPointer(f))
    }

    // MARK: Callbacks (loop thread)

    private func wake() {
        guard let w = waiter else { return }
        waiter = nil
        if ca_future_done(w) == false { ca_decref(UnsafeMutableRawPointer(ca_future_set_result(w, ca_none()))) }
        ca_decref(UnsafeMutableRawPointer(w))
    }

    private func dropWaiter() {
        if let w = waiter { ca_decref(UnsafeMutableRawPointer(w)) }
        waiter = nil
    }

    fileprivate func received(_ data: UnsafeRawPointer?, _ len: Int, _ addr: UnsafePointer<sockaddr>?, _ alen: socklen_t) {
        guard let addr, let sender = SocketAddress(addr, alen) else { return }
        let bytes = data.map { Array(UnsafeRawBufferPointer(start: $0, count: len)) } ?? []
        queue.append(Datagram(data: bytes, sender: sender))
        wake()
    }

    fileprivate func errorReceived(_ exc: UnsafeMutablePointer<ca_error>) {
        ca_incref(UnsafeMutableRawPointer(exc))
        pendingError = ErrorBridge.take(exc)
        wake()
    }

    fileprivate func connectionLost() {
        lost = true
        wake()
    }
}

/// The shim protocol's callbacks: one table for every socket, never written
/// after its initialisation (hence `nonisolated(unsafe)`).
nonisolated(unsafe) private let datagramCallbacks: UnsafeMutablePointer<cas_dgram_callbacks> = {
    let p = UnsafeMutablePointer<cas_dgram_callbacks>.allocate(capacity: 1)
    p.initialize(to: datagramCallbackTable)
    return p
}()

private let datagramCallbackTable = cas_dgram_callbacks(
    received: { owner, data, len, addr, alen in
        Unmanaged<DatagramInbox>.fromOpaque(owner!)._withUnsafeGuaranteedRef { $0.received(data, len, addr, alen) }
    },
    error: { owner, exc in
        Unmanaged<DatagramInbox>.fromOpaque(owner!)._withUnsafeGuaranteedRef { $0.errorReceived(exc!) }
    },
    lost: { owner, _ in
        Unmanaged<DatagramInbox>.fromOpaque(owner!)._withUnsafeGuaranteedRef { $0.connectionLost() }
    },
    release: { owner in
        Unmanaged<DatagramInbox>.fromOpaque(owner!).release()
    }
)
