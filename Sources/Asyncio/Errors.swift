// One Swift error type per asyncio error, and the bridge between Swift
// errors and the core's ca_error objects, both ways.

import CAsyncio
import CAsyncioShim

/// What every asyncio error of this module has: the Python exception name
/// and the message it was raised with.
public protocol AsyncioErrorProtocol: Error, CustomStringConvertible {
    /// The asyncio (Python) name of the error type, e.g. `"CancelledError"`.
    var typeName: String { get }
    /// The message, or `nil` when the error was raised without one.
    var message: String? { get }
}

extension AsyncioErrorProtocol {
    /// `"Type: message"`, or `"Type"` without a message, as Python prints it.
    public var description: String { message.map { "\(typeName): \($0)" } ?? typeName }
}

/// `asyncio.CancelledError`: the task or future was cancelled.
///
/// Thrown at the `await` of a cancelled task or future. A body that throws
/// it (or Swift's `CancellationError`) ends its task cancelled.
public struct CancelledError: AsyncioErrorProtocol, Equatable {
    /// The message given to `cancel(message:)`, if any.
    public var message: String?
    /// The asyncio name, `"CancelledError"`.
    public var typeName: String { "CancelledError" }
    /// Creates a cancellation error.
    public init(message: String? = nil) { self.message = message }
}

/// `TimeoutError`: a deadline passed (`timeout`, `waitFor`, `wait`, `asCompleted`).
public struct TimeoutError: AsyncioErrorProtocol, Equatable {
    /// The message, if any.
    public var message: String?
    /// The asyncio name, `"TimeoutError"`.
    public var typeName: String { "TimeoutError" }
    /// Creates a timeout error.
    public init(message: String? = nil) { self.message = message }
}

/// `asyncio.InvalidStateError`: an operation illegal in the future's state
/// (a second `setResult`, `result()` of a pending future).
public struct InvalidStateError: AsyncioErrorProtocol, Equatable {
    /// The message, if any.
    public var message: String?
    /// The asyncio name, `"InvalidStateError"`.
    public var typeName: String { "InvalidStateError" }
    /// Creates an invalid-state error.
    public init(message: String? = nil) { self.message = message }
}

/// `asyncio.QueueEmpty`: `getNowait()` on an empty queue.
public struct QueueEmpty: AsyncioErrorProtocol, Equatable {
    /// The message, if any.
    public var message: String?
    /// The asyncio name, `"QueueEmpty"`.
    public var typeName: String { "QueueEmpty" }
    /// Creates the error.
    public init(message: String? = nil) { self.message = message }
}

/// `asyncio.QueueFull`: `putNowait(_:)` on a full queue.
public struct QueueFull: AsyncioErrorProtocol, Equatable {
    /// The message, if any.
    public var message: String?
    /// The asyncio name, `"QueueFull"`.
    public var typeName: String { "QueueFull" }
    /// Creates the error.
    public init(message: String? = nil) { self.message = message }
}

/// `asyncio.QueueShutDown`: a put after `shutdown()`, or a get from a shut
/// down queue that is empty.
public struct QueueShutDown: AsyncioErrorProtocol, Equatable {
    /// The message, if any.
    public var message: String?
    /// The asyncio name, `"QueueShutDown"`.
    public var typeName: String { "QueueShutDown" }
    /// Creates the error.
    public init(message: String? = nil) { self.message = message }
}

/// `asyncio.BrokenBarrierError`: a `Barrier` was aborted or reset while
/// tasks waited in it.
public struct BrokenBarrierError: AsyncioErrorProtocol, Equatable {
    /// The message, if any.
    public var message: String?
    /// The asyncio name, `"BrokenBarrierError"`.
    public var typeName: String { "BrokenBarrierError" }
    /// Creates the error.
    public init(message: String? = nil) { self.message = message }
}

/// `OSError` and its subclasses (`ConnectionResetError`, ...), with errno.
public struct OSError: AsyncioErrorProtocol, Equatable {
    /// The C `errno` value (0 when none).
    public var errno: Int32
    /// The message, e.g. `"[Errno 104] Connection reset by peer"`.
    public var message: String?
    /// The Python class: `"OSError"`, `"ConnectionResetError"`, ...
    public var typeName: String
    /// Creates an OSError of class `typeName` (default `"OSError"`).
    public init(errno: Int32, message: String? = nil, typeName: String = "OSError") {
        self.errno = errno
        self.message = message
        self.typeName = typeName
    }
}

/// An `ExceptionGroup` (or `BaseExceptionGroup`): the errors a task group
/// collected from its children.
public struct ExceptionGroup: AsyncioErrorProtocol {
    /// The group's message, e.g. `"unhandled errors in a TaskGroup"`.
    public var message: String?
    /// The errors, each bridged back to its Swift type.
    public var errors: [any Error]
    /// `"ExceptionGroup"` or `"BaseExceptionGroup"`.
    public var typeName: String
    /// Creates a group.
    public init(message: String?, errors: [any Error], typeName: String = "ExceptionGroup") {
        self.message = message
        self.errors = errors
        self.typeName = typeName
    }
    /// `"Type: message (n sub-exceptions)"` as Python prints it.
    public var description: String {
        "\(typeName): \(message ?? "") (\(errors.count) sub-exception\(errors.count == 1 ? "" : "s"))"
    }
}

/// Any other error of the C core (`RuntimeError`, `ValueError`,
/// `TypeError`, ...), by its Python type name.
public struct AsyncioError: AsyncioErrorProtocol, Equatable {
    /// The Python type name, e.g. `"RuntimeError"`.
    public var typeName: String
    /// The message, if any.
    public var message: String?
    /// Creates an error of the named type.
    public init(typeName: String, message: String? = nil) {
        self.typeName = typeName
        self.message = message
    }
}

// MARK: - The bridge

/// The Swift object a ca_error's payload holds.
final class ErrorBox {
    let error: any Error
    init(_ error: any Error) { self.error = error }
}

@usableFromInline
enum ErrorBridge {
    /// A new ca_error for `error`. The Swift error rides in the payload, so
    /// `swiftError(_:)` gives back exactly `error`; its C type is the asyncio
    /// type it stands for (so the core's checks — "is it a CancelledError?"
    /// — see it), or SwiftError for an error of the application.
    @usableFromInline
    static func cError(_ error: any Error) -> UnsafeMutablePointer<ca_error> {
        let e: UnsafeMutablePointer<ca_error>
        var keepPayload = true
        switch error {
        case let x as CancelledError: e = ca_error_new(cas_CancelledError(), x.message)
        case is CancellationError:
            // Swift's own cancellation stands for asyncio's; it comes back
            // out as CancelledError.
            e = ca_error_new(cas_CancelledError(), nil)
            keepPayload = false
        case let x as TimeoutError: e = ca_error_new(cas_TimeoutError(), x.message)
        case let x as InvalidStateError: e = ca_error_new(cas_InvalidStateError(), x.message)
        case let x as QueueEmpty: e = ca_error_new(cas_QueueEmpty(), x.message)
        case let x as QueueFull: e = ca_error_new(cas_QueueFull(), x.message)
        case let x as QueueShutDown: e = ca_error_new(cas_QueueShutDown(), x.message)
        case let x as BrokenBarrierError: e = ca_error_new(cas_BrokenBarrierError(), x.message)
        case let x as OSError:
            e = ca_error_new(errorType(named: x.typeName) ?? cas_OSError(), x.message)
            e.pointee.err_no = x.errno
        case let x as ExceptionGroup:
            let children = x.errors.map { cError($0) }
            e = children.withUnsafeBufferPointer { buf in
                buf.withMemoryRebound(to: UnsafeMutablePointer<ca_error>?.self) {
                    ca_error_group_new(x.message, $0.baseAddress, $0.count)
                }
            }
            for c in children { ca_decref(UnsafeMutableRawPointer(c)) }
        case let x as AsyncioError: e = ca_error_new(errorType(named: x.typeName) ?? cas_Exception(), x.message)
        case let x as any CErrorConvertible:
            e = x.makeCError()
            keepPayload = false
        default: e = ca_error_new(cas_SwiftErrorType(), String(describing: error))
        }
        if keepPayload {
            cas_error_set_swift_payload(e, Unmanaged.passRetained(ErrorBox(error)).toOpaque())
        }
        return e
    }

    /// The Swift error for a ca_error (borrowed): the Swift error it carries,
    /// else the asyncio error type matching its C type.
    static func swiftError(_ e: UnsafeMutablePointer<ca_error>) -> any Error {
        if let p = cas_error_swift_payload(e) {
            return Unmanaged<ErrorBox>.fromOpaque(p).takeUnretainedValue().error
        }
        let message = e.pointee.message.map { String(cString: $0) }
        if e.pointee.children != nil || ca_error_matches(e, cas_BaseExceptionGroup()) {
            var errors: [any Error] = []
            for i in 0..<e.pointee.nchildren {
                if let child = e.pointee.children[i] { errors.append(swiftError(child)) }
            }
            return ExceptionGroup(message: message, errors: errors, typeName: typeName(e))
        }
        if ca_error_matches(e, cas_CancelledError()) { return CancelledError(message: message) }
        if ca_error_matches(e, cas_TimeoutError()) { return TimeoutError(message: message) }
        if ca_error_matches(e, cas_InvalidStateError()) { return InvalidStateError(message: message) }
        if ca_error_matches(e, cas_QueueEmpty()) { return QueueEmpty(message: message) }
        if ca_error_matches(e, cas_QueueFull()) { return QueueFull(message: message) }
        if ca_error_matches(e, cas_QueueShutDown()) { return QueueShutDown(message: message) }
        if ca_error_matches(e, cas_BrokenBarrierError()) { return BrokenBarrierError(message: message) }
        if ca_error_matches(e, cas_OSError()) {
            return OSError(errno: e.pointee.err_no, message: message, typeName: typeName(e))
        }
        if let stream = streamError(e, message: message) { return stream }
        return AsyncioError(typeName: typeName(e), message: message)
    }

    /// The Swift error for an owned ca_error, which is released.
    @usableFromInline
    static func take(_ e: UnsafeMutablePointer<ca_error>) -> any Error {
        defer { ca_decref(UnsafeMutableRawPointer(e)) }
        return swiftError(e)
    }

    /// Throws the Swift error for an owned ca_error, if any.
    @inlinable @inline(__always)
    static func check(_ e: UnsafeMutablePointer<ca_error>?) throws {
        if let e { throw take(e) }
    }

    private static func typeName(_ e: UnsafeMutablePointer<ca_error>) -> String {
        String(cString: e.pointee.type.pointee.name)
    }

    /// A built-in C error type by Python name.
    private static func errorType(named name: String) -> UnsafePointer<ca_error_type>? {
        cas_error_type_named(name)
    }
}
