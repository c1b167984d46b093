// asyncio.sleep.

import CAsyncio
import CAsyncioShim

/// `asyncio.sleep(delay)`: suspends the calling task for `delay` seconds.
///
/// `sleep(0)` (or any delay ≤ 0) gives up exactly one loop iteration with
/// no timer and no allocation: the way for a task to let others run. This is
/// the loop-native replacement of `Task.yield()` (which, inside a task body,
/// is a foreign suspension) and `sleep(_:)` of `Task.sleep` (ditto).
/// Cancelling the task during the sleep throws ``CancelledError`` here.
///
/// - Throws: ``CancelledError``; ``AsyncioError`` (`ValueError`) for a NaN
///   delay, (`RuntimeError`) outside a running loop.
@inlinable
nonisolated(nonsending) public func sleep(_ delay: Double) async throws {
    if let c = Await.ownCoroutine {
        if delay <= 0 {
            try await Await.yieldOnce(c)
        } else {
            var v = try await Await.delegate(c, to: ca_sleep(delay, ca_none()))
            ca_value_clear(&v)
        }
        return
    }
    try await Await.coroutine(loop: nil, delay) { ca_sleep($0, ca_none()) }
}
