// asyncio.wait, wait_for, shield and as_completed, typed.

import CAsyncio
import CAsyncioShim

/// `return_when` of ``wait(_:timeout:returnWhen:)``.
public enum ReturnWhen: Sendable {
    /// Return once every future is done (`ALL_COMPLETED`).
    case allCompleted
    /// Return as soon as one future is done (`FIRST_COMPLETED`).
    case firstCompleted
    /// Return when one future ends with an error, or all are done
    /// (`FIRST_EXCEPTION`).
    case firstException

    var raw: Int32 {
        switch self {
        case .allCompleted: return Int32(CA_ALL_COMPLETED.rawValue)
        case .firstCompleted: return Int32(CA_FIRST_COMPLETED.rawValue)
        case .firstException: return Int32(CA_FIRST_EXCEPTION.rawValue)
        }
    }
}

/// The `timeout` argument of the C combinators: seconds, NaN for none
/// (`CA_NO_TIMEOUT`). `CA_NO_DEADLINE` is `INT64_MAX` (a macro Swift cannot
/// import), spelled `Int64.max` here.
func timeoutSeconds(_ t: Double?) -> Double { t ?? Double.nan }

// MARK: - wait

/// `asyncio.wait(futures, timeout=, return_when=)`: waits until
/// `returnWhen` holds or `timeout` seconds pass, and returns the futures
/// split into done and pending (each in argument order, repeated futures
/// once). It never cancels anything and never throws a child's error.
///
/// - Throws: ``AsyncioError`` (`ValueError`) for an empty array;
///   ``CancelledError``.
nonisolated(nonsending) public func wait<T: Sendable>(_ futures: [Future<T>], timeout: Double? = nil,
                                                     returnWhen: ReturnWhen = .allCompleted) async throws
    -> (done: [Future<T>], pending: [Future<T>]) {
    let pointers = rawFutures(futures)
    // Not `futures.first`: an unspecialized generic read of a collection
    // allocates its accessor's frame.
    return try await Await.coroutine(loop: futures.isEmpty ? nil : futures[0].unsafeRaw.pointee.fut_loop,
                                     (pointers, timeoutSeconds(timeout), returnWhen.raw),
                                     reader: WaitSets(futures: futures)) { context in
        context.0.withUnsafeBufferPointer { ca_wait($0.baseAddress, $0.count, context.1, context.2) }
    }
}

/// The outcome of ``wait(_:timeout:returnWhen:)``: the done and pending sets
/// of the C coroutine's value, as the caller's futures. The sets hold
/// references to the futures: they are read, and released, on the loop's
/// thread.
private struct WaitSets<T: Sendable>: CoroutineValueReader {
    let futures: [Future<T>]

    /// Each set lists its futures in argument order, a repeated one once
    /// (at its first place): one walk through the arguments finds both, with
    /// no table from pointers to futures to build.
    func read(_ value: ca_value) -> (done: [Future<T>], pending: [Future<T>]) {
        let sets = UnsafeMutableRawPointer(value.u.obj!).assumingMemoryBound(to: ca_wait_sets.self)
        let ndone = sets.pointee.ndone, npending = sets.pointee.npending
        var done: [Future<T>] = [], pending: [Future<T>] = []
        done.reserveCapacity(ndone)
        pending.reserveCapacity(npending)
        for i in futures.indices {
            let f = futures[i].unsafeRaw
            if done.count < ndone, ca_wait_sets_done(sets, done.count) == f {
                done.append(futures[i])
            } else if pending.count < npending, ca_wait_sets_pending(sets, pending.count) == f {
                pending.append(futures[i])
            }
        }
        return (done, pending)
    }
}

// MARK: - wait_for

/// `asyncio.wait_for(future, timeout)`: the future's result, or
/// ``TimeoutError`` once `timeout` seconds pass — the future is then
/// cancelled. `nil` waits forever; `timeout <= 0` checks once.
///
/// - Throws: ``TimeoutError``; the future's error; ``CancelledError``.
nonisolated(nonsending) public func waitFor<T: Sendable>(_ future: Future<T>, timeout: Double?) async throws -> T {
    defer { withExtendedLifetime(future) {} }
    return try await Await.coroutine(loop: future.unsafeRaw.pointee.fut_loop,
                                     (UnsafeMutableRawPointer(future.unsafeRaw), timeoutSeconds(timeout)),
                                     as: T.self) { ca_wait_for($0.0, $0.1) }
}

/// `asyncio.wait_for(body(), timeout)` for a Swift `async` body: runs it
/// inline in the calling task under a ``timeout(_:_:)`` scope.
///
/// - Throws: ``TimeoutError`` when the deadline passes; what `body` throws.
nonisolated(nonsending) public func waitFor<T>(timeout delay: Double?,
                                              _ body: nonisolated(nonsending) () async throws -> T) async throws
    -> T {
    try await timeout(delay, body)
}

// MARK: - shield

/// `asyncio.shield(future)`: a future that follows `future`, whose
/// cancellation does not cancel `future` (while cancelling `future`
/// cancels it). A done future is returned as is.
///
/// ```swift
/// let result = try await shield(task).value
/// ```
public func shield<T: Sendable>(_ future: Future<T>) throws -> Future<T> {
    future.checkLoopThread()
    var out: UnsafeMutablePointer<ca_future>?
    try ErrorBridge.check(ca_shield(UnsafeMutableRawPointer(future.unsafeRaw), &out))
    if out == future.unsafeRaw {
        ca_decref(UnsafeMutableRawPointer(out))
        return future
    }
    return Future(unsafeTakingOwnershipOf: out!)
}

// MARK: - as_completed

/// `asyncio.as_completed(futures, timeout=)`: the futures in the order
/// they complete, as an `AsyncSequence` (3.13's `async for`).
///
/// ```swift
/// for try await done in asCompleted(tasks) {
///     print(try done.result())
/// }
/// ```
///
/// After `timeout` seconds every further step throws ``TimeoutError``.
/// - Throws: ``AsyncioError`` (`RuntimeError`) without a running loop.
public func asCompleted<T: Sendable>(_ futures: [Future<T>], timeout: Double? = nil) throws -> AsCompleted<T> {
    try AsCompleted(futures, timeout: timeout)
}

/// The sequence ``asCompleted(_:timeout:)`` returns: each element is one of
/// the input futures, done.
///
/// Safety of `@unchecked Sendable`: the C iterator is confined to its
/// loop's thread (its steps run there) and released there.
public final class AsCompleted<T: Sendable>: AsyncSequence, @unchecked Sendable {
    /// Each element is an input future, once done.
    public typealias Element = Future<T>
    /// Steps throw ``TimeoutError`` or ``CancelledError``.
    public typealias Failure = any Error

    let iterator: OpaquePointer
    let byPointer: [UnsafeMutablePointer<ca_future>: Future<T>]
    let loop: OpaquePointer?

    init(_ futures: [Future<T>], timeout: Double?) throws {
        var byPointer: [UnsafeMutablePointer<ca_future>: Future<T>] = [:]
        for f in futures { byPointer[f.unsafeRaw] = f }
        self.byPointer = byPointer
        let pointers = rawFutures(futures)
        let loop = ca_get_running_loop() ?? futures.first?.unsafeRaw.pointee.fut_loop
        self.loop = loop
        checkConfined(loop: loop)
        var out: OpaquePointer?
        try ErrorBridge.check(pointers.withUnsafeBufferPointer {
            ca_as_completed(loop, $0.baseAddress, $0.count, timeoutSeconds(timeout), &out)
        })
        iterator = out!
    }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(iterator), loop: loop)
    }

    /// How many futures are still to come.
    public var remaining: Int {
        checkConfined(loop: loop)
        return ca_as_completed_remaining(iterator)
    }

    /// The iterator.
    public func makeAsyncIterator() -> Iterator { Iterator(sequence: self) }

    /// Steps through the futures as they complete.
    public struct Iterator: AsyncIteratorProtocol {
        let sequence: AsCompleted<T>

        /// The next future to complete, or `nil` when all came.
        nonisolated(nonsending) public mutating func next() async throws -> Future<T>? {
            let sequence = self.sequence
            do {
                // The future comes back as a reference: it is looked up (or
                // wrapped), and the reference dropped, on the loop's thread.
                // `read` captures the sequence alone, a class instance (T's
                // metadata comes from its class), which Swift uses as the
                // closure's context: a step allocates nothing for it. More
                // captures would cost a context per step; see
                // Await.coroutine(loop:_:reader:_:).
                return try await Await.coroutine(loop: sequence.loop, sequence.iterator) {
                    ca_as_completed_anext($0)
                } read: { v in
                    let f = UnsafeMutableRawPointer(v.u.obj!).assumingMemoryBound(to: ca_future.self)
                    return sequence.byPointer[f] ?? Future(unsafeRetaining: f)
                }
            } catch let e as AsyncioError where e.typeName == "StopAsyncIteration" {
                return nil
            }
        }

        /// `next()` from any isolation (`for try await` calls this).
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(any Error) -> Future<T>? {
            try await next()
        }
    }
}
