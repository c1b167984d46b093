// loop.getaddrinfo and the socket addresses the I/O layer hands around.

import CAsyncio
import CAsyncioShim
import Glibc

/// An IPv4 or IPv6 socket address, as Python's `('127.0.0.1', 80)` or
/// `('::1', 80, 0, 0)`.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// `AF_INET` or `AF_INET6`.
    public let family: Int32
    /// The numeric host, e.g. `"127.0.0.1"` or `"::1"`.
    public let host: String
    /// The port.
    public let port: UInt16
    /// The raw `sockaddr` bytes.
    let bytes: [UInt8]

    /// An address from a numeric host and a port.
    /// - Throws: ``AsyncioError`` (`ValueError`) when `host` is not an IP literal.
    public init(host: String, port: UInt16) throws {
        var storage = sockaddr_storage()
        var len: socklen_t = 0
        let ok = withUnsafeMutableBytes(of: &storage) { raw -> Bool in
            if raw.baseAddress!.withMemoryRebound(to: sockaddr_in.self, capacity: 1, { sin in
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = port.bigEndian
                return inet_pton(AF_INET, host, &sin.pointee.sin_addr) == 1
            }) {
                len = socklen_t(MemoryLayout<sockaddr_in>.size)
                return true
            }
            raw.copyBytes(from: [UInt8](repeating: 0, count: raw.count))
            return raw.baseAddress!.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = port.bigEndian
                len = socklen_t(MemoryLayout<sockaddr_in6>.size)
                return inet_pton(AF_INET6, host, &sin6.pointee.sin6_addr) == 1
            }
        }
        guard ok else { throw AsyncioError(typeName: "ValueError", message: "\(host) is not a numeric address") }
        self = withUnsafeBytes(of: &storage) { raw in
            SocketAddress(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), len)!
        }
    }

    /// Reads a C address; nil for families other than IPv4 and IPv6.
    init?(_ sa: UnsafePointer<sockaddr>, _ len: socklen_t) {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            let sin = UnsafeRawPointer(sa).assumingMemoryBound(to: sockaddr_in.self)
            var a = sin.pointee.sin_addr
            inet_ntop(AF_INET, &a, &text, socklen_t(text.count))
            port = UInt16(bigEndian: sin.pointee.sin_port)
            family = AF_INET
        case AF_INET6:
            let sin6 = UnsafeRawPointer(sa).assumingMemoryBound(to: sockaddr_in6.self)
            var a = sin6.pointee.sin6_addr
            inet_ntop(AF_INET6, &a, &text, socklen_t(text.count))
            port = UInt16(bigEndian: sin6.pointee.sin6_port)
            family = AF_INET6
        default:
            return nil
        }
        host = text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        bytes = Array(UnsafeRawBufferPointer(start: sa, count: Int(len)))
    }

    /// `host:port`, with IPv6 hosts in brackets.
    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { try body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
    }
}

/// One entry of ``EventLoop/getaddrinfo(_:_:family:type:proto:flags:)``:
/// Python's `(family, type, proto, canonname, sockaddr)`.
public struct AddressInfo: Sendable, Hashable {
    /// `AF_INET` or `AF_INET6`.
    public let family: Int32
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...
    public let socketType: Int32
    /// The protocol (`IPPROTO_TCP`, ...).
    public let proto: Int32
    /// The canonical name, with `AI_CANONNAME`.
    public let canonicalName: String?
    /// The address.
    public let address: SocketAddress
}

extension EventLoop {
    /// `await loop.getaddrinfo(host, port, family=, type=, proto=, flags=)`:
    /// resolves on the loop's default executor, so the loop never waits for
    /// DNS; IP literals are answered at once without a thread.
    ///
    /// - Throws: ``OSError`` with `typeName` `"gaierror"` and the `EAI_*`
    ///   code as `errno` when resolution fails; ``AsyncioError``
    ///   (`ValueError`) without host and port; ``CancelledError``.
    nonisolated(nonsending) public func getaddrinfo(
        _ host: String?, _ port: String?, family: Int32 = AF_UNSPEC, type: Int32 = 0, proto: Int32 = 0,
        flags: Int32 = 0
    ) async throws -> [AddressInfo] {
        checkConfined(loop: core.loop)
        var f: UnsafeMutablePointer<ca_future>?
        let loop = core.loop
        let err = host.withOptionalCString { h in
            port.withOptionalCString { p in ca_loop_getaddrinfo(loop, h, p, family, type, proto, flags, &f) }
        }
        try ErrorBridge.check(err)
        return try await awaitCFuture(f!) { v in
            guard v.pointee.kind == CA_VALUE_OBJECT, let obj = v.pointee.u.obj else { return [] }
            let list = UnsafeRawPointer(obj).assumingMemoryBound(to: ca_addrinfo_list.self)
            return (0..<list.pointee.count).compactMap { i -> AddressInfo? in
                let e = list.pointee.items[i]
                var storage = e.addr
                let address = withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress($0, e.addrlen) }
                }
                guard let address else { return nil }
                return AddressInfo(family: e.family, socketType: e.type, proto: e.proto,
                                   canonicalName: e.canonname.map { String(cString: $0) }, address: address)
            }
        }
    }
}

extension Optional where Wrapped == String {
    /// `withCString` that passes NULL for nil.
    func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
        guard let s = self else { return try body(nil) }
        return try s.withCString { try body($0) }
    }
}
