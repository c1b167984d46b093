// asyncio.Lock.

import CAsyncio
import CAsyncioShim

/// `asyncio.Lock`: a mutual-exclusion lock for tasks of one loop. Waiters
/// acquire it in FIFO order; a waiter cancelled after being woken passes the
/// wake-up on.
///
/// ```swift
/// try await lock.withLock { try await update() }
/// ```
///
/// Safety of `@unchecked Sendable`: the pointer is immutable; the C lock is
/// used on its loop's thread only (the methods check it) and released there.
public final class Lock: @unchecked Sendable, CustomStringConvertible {
    /// The C lock (this wrapper owns one reference).
    public let unsafeRaw: UnsafeMutablePointer<ca_lock>

    /// Creates an unlocked lock.
    public init() {
        guard let l = ca_lock_new() else { fatalError("out of memory creating a lock") }
        unsafeRaw = l
    }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRaw), loop: unsafeRaw.pointee.loop)
    }

    /// `locked()`.
    public var isLocked: Bool {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return ca_lock_locked(unsafeRaw)
    }

    /// `acquire()`: takes the lock, waiting while another task holds it.
    /// - Throws: ``CancelledError``.
    nonisolated(nonsending) public func acquire() async throws {
        try await Await.coroutine(loop: unsafeRaw.pointee.loop, unsafeRaw) { ca_lock_acquire($0) }
    }

    /// `release()`: unlocks and wakes the first waiter.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) "Lock is not acquired.".
    public func release() throws {
        checkConfined(loop: unsafeRaw.pointee.loop)
        try ErrorBridge.check(ca_lock_release(unsafeRaw))
    }

    /// `async with lock`: runs `body` holding the lock.
    nonisolated(nonsending) public func withLock<R>(_ body: nonisolated(nonsending) () async throws -> R)
        async throws -> R {
        try await acquire()
        defer { try? release() }
        return try await body()
    }

    /// `repr(lock)`: `<asyncio.locks.Lock object at 0x... [locked, waiters:1]>`.
    public var description: String {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return reprString { ca_lock_repr(unsafeRaw, $0, $1) }
    }
}
