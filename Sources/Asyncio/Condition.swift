// asyncio.Condition.

import CAsyncio
import CAsyncioShim

/// `asyncio.Condition`: a lock plus a way to wait for a notification while
/// giving the lock up. ``wait()`` re-acquires the lock before it returns,
/// even when cancelled.
///
/// Safety of `@unchecked Sendable`: as ``Lock``.
public final class Condition: @unchecked Sendable, CustomStringConvertible {
    /// The C condition (this wrapper owns one reference).
    public let unsafeRaw: UnsafeMutablePointer<ca_condition>

    /// Creates a condition over `lock` (a new lock when `nil`).
    public init(lock: Lock? = nil) {
        guard let c = ca_condition_new(lock?.unsafeRaw) else { fatalError("out of memory creating a condition") }
        unsafeRaw = c
    }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRaw), loop: unsafeRaw.pointee.loop)
    }

    /// `locked()`: the underlying lock's.
    public var isLocked: Bool {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return ca_condition_locked(unsafeRaw)
    }

    /// `acquire()`: the underlying lock's.
    nonisolated(nonsending) public func acquire() async throws {
        try await Await.coroutine(loop: unsafeRaw.pointee.loop, unsafeRaw) { ca_condition_acquire($0) }
    }

    /// `release()`: the underlying lock's.
    public func release() throws {
        checkConfined(loop: unsafeRaw.pointee.loop)
        try ErrorBridge.check(ca_condition_release(unsafeRaw))
    }

    /// `async with condition`: runs `body` holding the lock.
    nonisolated(nonsending) public func withLock<R>(_ body: nonisolated(nonsending) () async throws -> R)
        async throws -> R {
        try await acquire()
        defer { try? release() }
        return try await body()
    }

    /// `wait()`: releases the lock, waits for a notification, re-acquires.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) "cannot wait on un-acquired
    ///   lock"; ``CancelledError`` (the lock is held again all the same).
    nonisolated(nonsending) public func wait() async throws {
        try await Await.coroutine(loop: unsafeRaw.pointee.loop, unsafeRaw) { ca_condition_wait($0) }
    }

    /// `wait_for(predicate)`: waits until `predicate()` (called with the
    /// lock held, on the loop thread) returns true.
    nonisolated(nonsending) public func waitFor(_ predicate: @escaping @Sendable () -> Bool) async throws {
        let box = Unmanaged.passRetained(PredicateBox(predicate))
        defer { box.release() }
        try await Await.coroutine(loop: unsafeRaw.pointee.loop, (unsafeRaw, box.toOpaque())) {
            ca_condition_wait_for($0.0, callPredicate, $0.1)
        }
    }

    /// `notify(n)`: wakes up to `n` waiters.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) "cannot notify on
    ///   un-acquired lock".
    public func notify(_ n: Int = 1) throws {
        checkConfined(loop: unsafeRaw.pointee.loop)
        try ErrorBridge.check(ca_condition_notify(unsafeRaw, n))
    }

    /// `notify_all()`.
    public func notifyAll() throws {
        checkConfined(loop: unsafeRaw.pointee.loop)
        try ErrorBridge.check(ca_condition_notify_all(unsafeRaw))
    }

    /// `repr(condition)`.
    public var description: String {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return reprString { ca_condition_repr(unsafeRaw, $0, $1) }
    }
}

final class PredicateBox {
    let predicate: @Sendable () -> Bool
    init(_ predicate: @escaping @Sendable () -> Bool) { self.predicate = predicate }
}

private func callPredicate(_ arg: UnsafeMutableRawPointer?) -> Bool {
    Unmanaged<PredicateBox>.fromOpaque(arg!).takeUnretainedValue().predicate()
}
