// The errors of streams and sockets: asyncio's IncompleteReadError and
// LimitOverrunError with their data, and what an OSError from the I/O layer
// says (its class as a Swift enum, the operation that failed).

import CAsyncio
import CAsyncioShim

#if canImport(Glibc)
import Glibc
#endif

/// `asyncio.IncompleteReadError`: the stream ended before a read got what
/// it needed (``TCPConnection/readExactly(_:)``, ``TCPConnection/readUntil(_:)``).
///
/// The bytes that did arrive are in ``partial``; they have been taken from
/// the stream.
public struct IncompleteReadError: AsyncioErrorProtocol, Equatable {
    /// The bytes read before the end of the stream.
    public var partial: [UInt8]
    /// How many bytes the read wanted (`nil` for a read up to a separator).
    public var expected: Int?
    /// asyncio's message: `"3 bytes read on a total of 10 expected bytes"`.
    public var message: String?
    /// The asyncio name, `"IncompleteReadError"`.
    public var typeName: String { "IncompleteReadError" }

    /// Creates the error with asyncio's message.
    public init(partial: [UInt8], expected: Int?) {
        self.partial = partial
        self.expected = expected
        message = "\(partial.count) bytes read on a total of \(expected.map(String.init) ?? "None") expected bytes"
    }
}

/// `asyncio.LimitOverrunError`: a read up to a separator found no separator
/// within the stream's limit (``TCPConnection/readUntil(_:)``). The data
/// stays buffered.
public struct LimitOverrunError: AsyncioErrorProtocol, Equatable {
    /// How many bytes are to be consumed (asyncio's `consumed`).
    public var consumed: Int
    /// The message, e.g. `"Separator is not found, and chunk exceed the limit"`.
    public var message: String?
    /// The asyncio name, `"LimitOverrunError"`.
    public var typeName: String { "LimitOverrunError" }

    /// Creates the error.
    public init(message: String?, consumed: Int) {
        self.message = message
        self.consumed = consumed
    }
}

// MARK: - What an OSError says

extension OSError {
    /// The subclass of `OSError` Python picks for an errno, as a Swift enum:
    /// what code usually switches on.
    public enum Kind: Sendable, Equatable {
        /// `ConnectionResetError` (`ECONNRESET`, or a connection lost while
        /// draining): the peer reset the connection.
        case connectionReset
        /// `ConnectionRefusedError` (`ECONNREFUSED`): nothing listens there.
        case connectionRefused
        /// `ConnectionAbortedError` (`ECONNABORTED`).
        case connectionAborted
        /// `BrokenPipeError` (`EPIPE`, `ESHUTDOWN`): writing to a connection
        /// the peer closed.
        case brokenPipe
        /// `ConnectionError` itself.
        case connection
        /// `FileNotFoundError` (`ENOENT`).
        case fileNotFound
        /// `FileExistsError` (`EEXIST`).
        case fileExists
        /// `PermissionError` (`EACCES`, `EPERM`).
        case permissionDenied
        /// `BlockingIOError` (`EAGAIN`, `EINPROGRESS`, ...).
        case blockingIO
        /// `InterruptedError` (`EINTR`).
        case interrupted
        /// Plain `OSError` or another subclass (see ``OSError/typeName``).
        case other
    }

    /// The subclass as a ``Kind``.
    public var kind: Kind {
        switch typeName {
        case "ConnectionResetError": return .connectionReset
        case "ConnectionRefusedError": return .connectionRefused
        case "ConnectionAbortedError": return .connectionAborted
        case "BrokenPipeError": return .brokenPipe
        case "ConnectionError": return .connection
        case "FileNotFoundError": return .fileNotFound
        case "FileExistsError": return .fileExists
        case "PermissionError": return .permissionDenied
        case "BlockingIOError": return .blockingIO
        case "InterruptedError": return .interrupted
        default: return .other
        }
    }

    /// The operation that failed, as the core names it in the message
    /// (`"[Errno 104] Connection reset by peer: recv"` → `"recv"`; for a
    /// connect, `"Connect call failed ('127.0.0.1', 1)"`); `nil` when the
    /// message names none.
    public var operation: String? {
        guard errno != 0, let message else { return nil }
        let prefix = "[Errno \(errno)] \(String(cString: strerror(errno))): "
        guard message.hasPrefix(prefix) else { return nil }
        return String(message.dropFirst(prefix.count))
    }
}

// MARK: - Bridging

/// A Swift error that knows its C form, for the errors whose C form carries
/// data in its payload (so the Swift error cannot ride there).
protocol CErrorConvertible: Error {
    /// A new C error equivalent to `self`.
    func makeCError() -> UnsafeMutablePointer<ca_error>
}

/// The C types of the stream errors (static, immutable, so shared freely).
private enum StreamErrorTypes {
    nonisolated(unsafe) static let incompleteRead = cas_error_type_named("IncompleteReadError")!
    nonisolated(unsafe) static let limitOverrun = cas_error_type_named("LimitOverrunError")!
}

extension IncompleteReadError: CErrorConvertible {
    func makeCError() -> UnsafeMutablePointer<ca_error> {
        let e = ca_error_new(StreamErrorTypes.incompleteRead, message)!
        if let b = partial.withUnsafeBytes({ ca_bytes_from($0.baseAddress, $0.count) }) {
            ca_value_clear(&e.pointee.payload)
            e.pointee.payload = cas_obj_value(UnsafeMutableRawPointer(b))
        }
        return e
    }
}

extension LimitOverrunError: CErrorConvertible {
    func makeCError() -> UnsafeMutablePointer<ca_error> {
        let e = ca_error_new(StreamErrorTypes.limitOverrun, message)!
        ca_value_clear(&e.pointee.payload)
        e.pointee.payload = ca_int(Int64(consumed))
        return e
    }
}

extension ErrorBridge {
    /// The Swift error for a C IncompleteReadError or LimitOverrunError
    /// (borrowed), with the data its payload carries; `nil` for other types.
    static func streamError(_ e: UnsafeMutablePointer<ca_error>, message: String?) -> (any Error)? {
        if ca_error_matches(e, StreamErrorTypes.incompleteRead) {
            var partial: [UInt8] = []
            let payload = e.pointee.payload
            if payload.kind == CA_VALUE_OBJECT, let obj = payload.u.obj, ca_bytes_check(obj) {
                let b = UnsafeMutableRawPointer(obj).assumingMemoryBound(to: ca_bytes.self)
                partial = Array(UnsafeBufferPointer(start: b.pointee.data, count: b.pointee.len))
            }
            var error = IncompleteReadError(partial: partial, expected: expectedCount(message))
            error.message = message
            return error
        }
        if ca_error_matches(e, StreamErrorTypes.limitOverrun) {
            let payload = e.pointee.payload
            return LimitOverrunError(message: message, consumed: payload.kind == CA_VALUE_INT ? Int(payload.u.i) : 0)
        }
        return nil
    }

    /// The expected count of asyncio's IncompleteReadError message
    /// ("N bytes read on a total of M expected bytes"; `nil` for "None").
    private static func expectedCount(_ message: String?) -> Int? {
        guard let message, let range = message.firstRange(of: "on a total of ") else { return nil }
        return Int(message[range.upperBound...].prefix { $0 != " " })
    }
}
