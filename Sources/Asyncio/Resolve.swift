// loop.getaddrinfo: names to socket addresses, off the loop thread.

import CAsyncio
import CAsyncioShim
import Glibc

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
        var out: UnsafeMutablePointer<ca_future>?
        let loop = core.loop
        let err = host.withOptionalCString { h in
            port.withOptionalCString { p in ca_loop_getaddrinfo(loop, h, p, family, type, proto, flags, &out) }
        }
        try ErrorBridge.check(err)
        let f = out!
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: loop) }
        return try await Await.done(f) { _, v in
            guard v.kind == CA_VALUE_OBJECT, let obj = v.u.obj else { return [] }
            let list = UnsafeRawPointer(obj).assumingMemoryBound(to: ca_addrinfo_list.self)
            return (0..<list.pointee.count).compactMap { i -> AddressInfo? in
                let e = list.pointee.items[i]
                var storage = e.addr
                guard let address = SocketAddress(&storage, length: e.addrlen) else { return nil }
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
