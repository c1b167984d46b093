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
    fileprivate static func text(_ family: Int32, _ addr: UnsafeRawPointer, capacity: Int) -> String {
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

extension SocketAddress {
    /// An IP address from a numeric host (`"127.0.0.1"`, `"::1"`) and a port.
    ///
    /// Names are not looked up here; resolve them with
    /// ``EventLoop/getaddrinfo(_:_:family:type:proto:flags:)``.
    /// - Throws: ``AsyncioError`` (`ValueError`) when `host` is not an IP literal.
    public init(host: String, port: UInt16) throws {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            self = .ipv4(host: host, port: port)
        } else if inet_pton(AF_INET6, host, &v6) == 1 {
            // the canonical text, so equal addresses compare equal
            self = .ipv6(host: SocketAddress.text(AF_INET6, &v6, capacity: Int(INET6_ADDRSTRLEN)),
                         port: port, scopeID: 0)
        } else {
            throw AsyncioError(typeName: "ValueError", message: "\(host) is not a numeric address")
        }
    }

    /// Decodes a C socket address of `length` bytes; `nil` for a family
    /// other than AF_INET, AF_INET6 and AF_UNIX, or a length too long.
    init?(_ sa: UnsafePointer<sockaddr>, _ length: socklen_t) {
        guard Int(length) <= MemoryLayout<sockaddr_storage>.size else { return nil }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(length))) }
        guard let address = withUnsafePointer(to: &storage, { SocketAddress($0, length: length) }) else { return nil }
        self = address
    }

    /// `AF_INET`, `AF_INET6` or `AF_UNIX`.
    public var family: Int32 {
        switch self {
        case .ipv4: return AF_INET
        case .ipv6: return AF_INET6
        case .unix: return AF_UNIX
        }
    }

    /// Calls `body` with this address as a C `sockaddr` and its length.
    /// - Throws: ``AsyncioError`` (`ValueError`) for a host that is not an
    ///   IP literal of its family, or a Unix path too long for `sun_path`.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) throws -> R {
        var storage = sockaddr_storage()
        var length = socklen_t(0)
        var valid = true
        withUnsafeMutableBytes(of: &storage) { raw in
            switch self {
            case let .ipv4(host, port):
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = port.bigEndian
                valid = inet_pton(AF_INET, host, &sin.pointee.sin_addr) == 1
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
            case let .ipv6(host, port, scopeID):
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = port.bigEndian
                sin6.pointee.sin6_scope_id = scopeID
                valid = inet_pton(AF_INET6, host, &sin6.pointee.sin6_addr) == 1
                length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            case let .unix(path):
                let sun = raw.baseAddress!.assumingMemoryBound(to: sockaddr_un.self)
                sun.pointee.sun_family = sa_family_t(AF_UNIX)
                let offset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
                let bytes = Array(path.utf8)
                valid = bytes.count < MemoryLayout<sockaddr_un>.size - offset
                if valid { (raw.baseAddress! + offset).copyMemory(from: bytes, byteCount: bytes.count) }
                length = socklen_t(offset + bytes.count + 1)
            }
        }
        guard valid else {
            throw AsyncioError(typeName: "ValueError", message: "\(self) is not a valid socket address")
        }
        return try withUnsafePointer(to: &storage) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }
}
