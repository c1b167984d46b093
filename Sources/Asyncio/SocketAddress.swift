// Socket addresses as Swift values: what asyncio's get_extra_info('peername')
// and ('sockname') return.

#if canImport(Glibc)
import Glibc
#endif

/// The address of a socket: IPv4 or IPv6 with a port, or a Unix-domain
/// path (asyncio's `peername` / `sockname` tuples).
public enum SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// An IPv4 address in dotted form (`"127.0.0.1"`) and a port.
    case ipv4(host: String, port: UInt16)
    /// An IPv6 address in its textual form (`"::1"`), a port and a scope id.
    case ipv6(host: String, port: UInt16, scopeID: UInt32)
    /// A Unix-domain socket path (empty for an unnamed socket).
    case unix(path: String)

    /// The port of an IP address; `nil` for a Unix socket.
    public var port: UInt16? {
        switch self {
        case let .ipv4(_, port), let .ipv6(_, port, _): return port
        case .unix: return nil
        }
    }

    /// The host of an IP address; `nil` for a Unix socket.
    public var host: String? {
        switch self {
        case let .ipv4(host, _), let .ipv6(host, _, _): return host
        case .unix: return nil
        }
    }

    /// Python's tuple form: `('127.0.0.1', 8888)`, `('::1', 8888, 0, 0)`, or the path.
    public var description: String {
        switch self {
        case let .ipv4(host, port): return "('\(host)', \(port))"
        case let .ipv6(host, port, scope): return "('\(host)', \(port), 0, \(scope))"
        case let .unix(path): return "'\(path)'"
        }
    }

    /// Decodes a C socket address of `length` bytes; `nil` for a family
    /// other than AF_INET, AF_INET6 and AF_UNIX.
    init?(_ storage: UnsafePointer<sockaddr_storage>, length: socklen_t) {
        let raw = UnsafeRawPointer(storage)
        switch Int32(storage.pointee.ss_family) {
        case AF_INET:
            let sin = raw.assumingMemoryBound(to: sockaddr_in.self)
            var addr = sin.pointee.sin_addr
            self = .ipv4(host: SocketAddress.text(AF_INET, &addr, capacity: Int(INET_ADDRSTRLEN)),
                         port: UInt16(bigEndian: sin.pointee.sin_port))
        case AF_INET6:
            let sin6 = raw.assumingMemoryBound(to: sockaddr_in6.self)
            var addr = sin6.pointee.sin6_addr
            self = .ipv6(host: SocketAddress.text(AF_INET6, &addr, capacity: Int(INET6_ADDRSTRLEN)),
                         port: UInt16(bigEndian: sin6.pointee.sin6_port), scopeID: sin6.pointee.sin6_scope_id)
        case AF_UNIX:
            let offset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
            let count = max(0, Int(length) - offset)
            let bytes = UnsafeRawBufferPointer(start: raw + offset, count: count)
            self = .unix(path: String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))
        default:
            return nil
        }
    }

    /// inet_ntop of `addr` in family `family`.
    private static func text(_ family: Int32, _ addr: UnsafeRawPointer, capacity: Int) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: capacity) { buf in
            guard inet_ntop(family, addr, buf.baseAddress, socklen_t(capacity)) != nil else { return "?" }
            return String(cString: buf.baseAddress!)
        }
    }

    /// The address a socket-address getter fills in (`getpeername`-like);
    /// `nil` when it fails.
    static func read(_ get: (UnsafeMutablePointer<sockaddr_storage>, UnsafeMutablePointer<socklen_t>) -> Bool)
        -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        guard get(&storage, &length) else { return nil }
        return withUnsafePointer(to: &storage) { SocketAddress($0, length: length) }
    }
}
