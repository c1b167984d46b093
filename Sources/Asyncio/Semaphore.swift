// asyncio.Semaphore and asyncio.BoundedSemaphore.

import CAsyncio
import CAsyncioShim

/// `asyncio.Semaphore`: a counter tasks decrement with ``acquire()``
/// (waiting, FIFO, while it is 0) and increment with ``release()``.
///
/// Safety of `@unchecked Sendable`: as ``Lock``.
public class Semaphore: @unchecked Sendable, CustomStringConvertible {
    /// The C semaphore (this wrapper owns one reference).
    public let unsafeRaw: UnsafeMutablePointer<ca_semaphore>

    /// Creates a semaphore with `value` permits.
    /// - Throws: ``AsyncioError`` (`ValueError`) for a negative value.
    public convenience init(value: Int = 1) throws {
        var out: UnsafeMutablePointer<ca_semaphore>?
        try ErrorBridge.check(ca_semaphore_new(Int64(value), &out))
        self.init(raw: out!)
    }

    init(raw: UnsafeMutablePointer<ca_semaphore>) { unsafeRaw = raw }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRaw), loop: unsafeRaw.pointee.loop)
    }

    /// `locked()`: ``acquire()`` would wait.
    public final var isLocked: Bool {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return ca_semaphore_locked(unsafeRaw)
    }

    /// The current value (`_value`).
    public final var value: Int {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return Int(unsafeRaw.pointee.value)
    }

    /// `acquire()`: takes a permit, waiting while none is free.
    /// - Throws: ``CancelledError``.
    nonisolated(nonsending) public final func acquire() async throws {
        try await Await.coroutine(loop: unsafeRaw.pointee.loop, unsafeRaw) { ca_semaphore_acquire($0) }
    }

    /// `release()`: returns a permit and wakes the first waiter.
    /// - Throws: ``AsyncioError`` (`ValueError`) "BoundedSemaphore released
    ///   too many times" for a ``BoundedSemaphore``.
    public final func release() throws {
        checkConfined(loop: unsafeRaw.pointee.loop)
        try ErrorBridge.check(ca_semaphore_release(unsafeRaw))
    }

    /// `async with semaphore`: runs `body` holding a permit.
    nonisolated(nonsending) public final func withPermit<R>(_ body: nonisolated(nonsending) () async throws -> R)
        async throws -> R {
        try await acquire()
        defer { try? release() }
        return try await body()
    }

    /// `repr(semaphore)`: `<asyncio.locks.Semaphore object at 0x... [unlocked, value:1]>`.
    public final var description: String {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return reprString { ca_semaphore_repr(unsafeRaw, $0, $1) }
    }
}

/// `asyncio.BoundedSemaphore`: a ``Semaphore`` whose ``Semaphore/release()``
/// throws when it would exceed the initial value.
///
/// Safety of `@unchecked Sendable`: as ``Lock``.
public final class BoundedSemaphore: Semaphore, @unchecked Sendable {
    /// Creates a bounded semaphore with `value` permits.
    /// - Throws: ``AsyncioError`` (`ValueError`) for a negative value.
    public init(value: Int = 1) throws {
        var out: UnsafeMutablePointer<ca_semaphore>?
        try ErrorBridge.check(ca_bounded_semaphore_new(Int64(value), &out))
        super.init(raw: out!)
    }
}
