// asyncio.gather, typed: over a parameter pack and over arrays.

import CAsyncio
import CAsyncioShim

/// `asyncio.gather(*futures)`: waits for every future (or task) and returns
/// their results in argument order, typed.
///
/// ```swift
/// let (user, count) = try await gather(fetchUser, countItems)
/// ```
///
/// The first error (or cancellation) of a child is thrown; the other children
/// keep running. Cancelling the gather (cancelling the awaiting task)
/// cancels every child.
///
/// - Throws: the first child's error; ``CancelledError``.
nonisolated(nonsending) public func gather<each T: Sendable>(_ futures: repeat Future<each T>) async throws
    -> (repeat each T) {
    var children: [UnsafeMutableRawPointer?] = []
    for f in repeat each futures { children.append(UnsafeMutableRawPointer(f.unsafeRaw)) }
    let gathering = try await startGather(children, returnExceptions: false)
    defer { withExtendedLifetime((repeat each futures)) {} }
    return try await Await.done(gathering.unsafeRaw) { f, _ in
        let list = ca_result_list_of(f)!
        var i = 0
        return (repeat try resultItem(list, &i, as: (each T).self))
    }
}

/// `asyncio.gather(*futures)` over an array: the results in array order.
///
/// - Throws: the first child's error; ``CancelledError``.
nonisolated(nonsending) public func gather<T: Sendable>(_ futures: [Future<T>]) async throws -> [T] {
    let gathering = try await startGather(rawFutures(futures), returnExceptions: false)
    defer { withExtendedLifetime(futures) {} }
    return try await Await.done(gathering.unsafeRaw) { f, _ in
        let list = ca_result_list_of(f)!
        var results: [T] = []
        results.reserveCapacity(list.pointee.len)
        var i = 0
        while i < list.pointee.len {
            results.append(try resultItem(list, &i, as: T.self))
        }
        return results
    }
}

/// `asyncio.gather(*futures, return_exceptions=True)`: every child's outcome
/// in array order; an error (a cancelled child gives ``CancelledError``)
/// takes its place instead of being thrown.
///
/// - Throws: ``CancelledError`` when the gather itself is cancelled.
nonisolated(nonsending) public func gatherReturningExceptions<T: Sendable>(_ futures: [Future<T>]) async throws
    -> [Result<T, any Error>] {
    let gathering = try await startGather(rawFutures(futures), returnExceptions: true)
    defer { withExtendedLifetime(futures) {} }
    return try await Await.done(gathering.unsafeRaw) { f, _ in
        let list = ca_result_list_of(f)!
        return (0..<list.pointee.len).map { i in
            if let e = ca_result_list_error(list, i) { return .failure(ErrorBridge.swiftError(e)) }
            return Result { try ValueCodec<T>.decode(ca_result_list_item(list, i)) }
        }
    }
}

/// The C futures of `futures`. A loop over the indices, not `map`: in this
/// module's unspecialized generic code, `map` reads each element through
/// the protocol's `subscript.read` coroutine, a malloc per element.
func rawFutures<T>(_ futures: [Future<T>]) -> [UnsafeMutableRawPointer?] {
    var children: [UnsafeMutableRawPointer?] = []
    children.reserveCapacity(futures.count)
    for i in futures.indices { children.append(UnsafeMutableRawPointer(futures[i].unsafeRaw)) }
    return children
}

/// Starts a gather of `children` on ``gatherLoop(_:)``, from any thread:
/// on another thread than the loop's, the loop makes it (the gather takes
/// references to the children and adds done callbacks to them).
nonisolated(nonsending) func startGather(_ children: [UnsafeMutableRawPointer?], returnExceptions: Bool) async throws
    -> Future<Void> {
    guard let loop = gatherLoop(children) else {
        return try makeGather(on: nil, children, returnExceptions: returnExceptions)
    }
    return try await Await.onLoop(loop, (loop, children, returnExceptions)) { loop, children, returnExceptions in
        try makeGather(on: loop, children, returnExceptions: returnExceptions)
    }
}

/// The loop a gather of `children` belongs to: the running loop, else the
/// first child's.
func gatherLoop(_ children: [UnsafeMutableRawPointer?]) -> OpaquePointer? {
    ca_get_running_loop()
        ?? children.first.flatMap { $0 }.map { $0.assumingMemoryBound(to: ca_future.self).pointee.fut_loop }
}

/// `ca_gather` of `children` on `loop` (on its thread, or while it is idle).
func makeGather(on loop: OpaquePointer?, _ children: [UnsafeMutableRawPointer?], returnExceptions: Bool) throws
    -> Future<Void> {
    var out: UnsafeMutablePointer<ca_future>?
    try ErrorBridge.check(children.withUnsafeBufferPointer {
        ca_gather(loop, $0.baseAddress, $0.count, returnExceptions, &out)
    })
    return Future(unsafeTakingOwnershipOf: out!)
}

@inline(__always)
private func resultItem<U>(_ list: UnsafeMutablePointer<ca_result_list>, _ i: inout Int, as: U.Type) throws -> U {
    defer { i += 1 }
    return try ValueCodec<U>.decode(ca_result_list_item(list, i))
}

// MARK: - gather as a future

/// `asyncio.gather(*futures, return_exceptions=)` as the future itself,
/// without awaiting it: it can be awaited later, cancelled, or handed to
/// another combinator. Its outcome is read with
/// ``gatheredResults(_:as:)`` once it is done.
///
/// - Throws: ``AsyncioError`` when the gather cannot be created.
public func gatherFuture<T: Sendable>(_ futures: [Future<T>], returnExceptions: Bool = false) throws -> Future<Void> {
    defer { withExtendedLifetime(futures) {} }
    let children = rawFutures(futures)
    let loop = gatherLoop(children)
    checkConfined(loop: loop)
    return try makeGather(on: loop, children, returnExceptions: returnExceptions)
}

/// The children's outcomes of a done gather (from ``gatherFuture(_:returnExceptions:)``),
/// in argument order. Throws the gather's own error (or ``CancelledError``,
/// ``InvalidStateError`` while pending) as `result()` would.
public func gatheredResults<T: Sendable, U: Sendable>(_ gathering: Future<U>, as: T.Type = T.self) throws
    -> [Result<T, any Error>] {
    gathering.checkLoopThread()
    var v = ca_value()
    if let e = ca_future_result(gathering.unsafeRaw, &v) { throw ErrorBridge.take(e) }  // borrowed view
    guard let list = ca_result_list_of(gathering.unsafeRaw) else { return [] }
    return (0..<list.pointee.len).map { i in
        if let e = ca_result_list_error(list, i) { return .failure(ErrorBridge.swiftError(e)) }
        return Result { try ValueCodec<T>.decode(ca_result_list_item(list, i)) }
    }
}
