// Awaiting a raw C future (a Future's value, a C task's outcome, an
// executor job, a file operation, a gather): the one wait every such caller
// goes through. (A wait between steps on loop-confined state, as an accept's
// or a stream read's, goes through Await+Steps.swift.)

import CAsyncio
import CAsyncioShim

extension Await {
    /// Waits until `f` (borrowed: the caller keeps it alive) is done, then
    /// returns `read(f, result)` with its result (a borrowed view, valid while
    /// `f` lives); throws its error instead, or ``CancelledError`` when it was
    /// cancelled. `read` runs on the loop thread.
    ///
    /// Inside the body's own task this is a plain await of its C step
    /// (nothing allocated); elsewhere a done callback. Always inlined: an
    /// async call costs a frame from the task allocator, and stream reads
    /// wait through here.
    @inline(__always)
    nonisolated(nonsending) static func done<R: Sendable>(
        _ f: UnsafeMutablePointer<ca_future>,
        read: @escaping @Sendable (UnsafeMutablePointer<ca_future>, ca_value) throws -> R
    ) async throws -> R {
        if let c = ownCoroutine {
            if f.pointee.fut_state == UInt8(CA_FUTURE_PENDING.rawValue) {
                try await suspend(c, on: f)
            }
            return try readDone(f, read)
        }
        return try await viaCallback(f) { f in try readDone(f, read) }
    }

    /// Waits until `f` (borrowed) is done and returns its result as an `R`
    /// (``Future/value``); as ``done(_:read:)`` with the result decoded.
    ///
    /// Not `done` with a decoding `read`: that closure, formed by the caller
    /// for a generic `R`, captures `R`'s metadata and would be allocated on
    /// every await, also inside the body's own task. Here the decoding
    /// closure is formed only on the callback path.
    @inline(__always)
    nonisolated(nonsending) static func result<R: Sendable>(of f: UnsafeMutablePointer<ca_future>, as: R.Type)
        async throws -> R {
        if let c = ownCoroutine {
            if f.pointee.fut_state == UInt8(CA_FUTURE_PENDING.rawValue) {
                try await suspend(c, on: f)
            }
            return try Future<R>.readResult(f)
        }
        return try await viaCallback(f) { f in try Future<R>.readResult(f) }
    }

    /// Waits until `f` (borrowed) is done; throws its error, or
    /// ``CancelledError`` when it was cancelled. As ``done(_:read:)``.
    @inline(__always)
    nonisolated(nonsending) static func done(_ f: UnsafeMutablePointer<ca_future>) async throws {
        try await done(f) { _, _ in () }
    }

    /// The outcome of the done future `f`: `read` of its result, or its error
    /// thrown.
    @inline(__always)
    private static func readDone<R>(_ f: UnsafeMutablePointer<ca_future>,
                                    _ read: (UnsafeMutablePointer<ca_future>, ca_value) throws -> R) throws -> R {
        var v = ca_value()
        if let e = ca_future_result(f, &v) { throw ErrorBridge.take(e) }
        return try read(f, v)
    }
}
