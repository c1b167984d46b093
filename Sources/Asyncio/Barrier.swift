// asyncio.Barrier.

import CAsyncio
import CAsyncioShim

/// `asyncio.Barrier`: tasks wait in ``wait()`` until `parties` of them are
/// there, then all go on together.
///
/// Safety of `@unchecked Sendable`: as ``Lock``.
public final class Barrier: @unchecked Sendable, CustomStringConvertible {
    /// The C barrier (this wrapper owns one reference).
    public let unsafeRaw: UnsafeMutablePointer<ca_barrier>

    /// Creates a barrier for `parties` tasks.
    /// - Throws: ``AsyncioError`` (`ValueError`) "parties must be >= 1".
    public init(parties: Int) throws {
        var out: UnsafeMutablePointer<ca_barrier>?
        try ErrorBridge.check(ca_barrier_new(Int64(parties), &out))
        unsafeRaw = out!
    }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRaw), loop: loop)
    }

    private var loop: OpaquePointer? { unsafeRaw.pointee.cond.pointee.loop }

    /// `wait()`: waits until `parties` tasks wait, then returns this task's
    /// index among them (0 to parties-1).
    /// - Throws: ``BrokenBarrierError`` when the barrier is (or gets) broken
    ///   or reset; ``CancelledError``.
    @discardableResult
    nonisolated(nonsending) public func wait() async throws -> Int {
        try await Await.coroutine(loop: loop, unsafeRaw, as: Int.self) { ca_barrier_wait($0) }
    }

    /// `reset()`: back to filling; tasks waiting get ``BrokenBarrierError``.
    nonisolated(nonsending) public func reset() async throws {
        try await Await.coroutine(loop: loop, unsafeRaw) { ca_barrier_reset($0) }
    }

    /// `abort()`: breaks the barrier until ``reset()``.
    nonisolated(nonsending) public func abort() async throws {
        try await Await.coroutine(loop: loop, unsafeRaw) { ca_barrier_abort($0) }
    }

    /// `parties`.
    public var parties: Int { Int(ca_barrier_parties(unsafeRaw)) }
    /// `n_waiting`.
    public var waiting: Int {
        checkConfined(loop: loop)
        return Int(ca_barrier_n_waiting(unsafeRaw))
    }
    /// `broken`.
    public var isBroken: Bool {
        checkConfined(loop: loop)
        return ca_barrier_broken(unsafeRaw)
    }

    /// `repr(barrier)`: `<asyncio.locks.Barrier object at 0x... [filling, waiters:2/5]>`.
    public var description: String {
        checkConfined(loop: loop)
        return reprString { ca_barrier_repr(unsafeRaw, $0, $1) }
    }
}
