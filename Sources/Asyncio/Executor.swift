// loop.run_in_executor(None, fn) and shutdown_default_executor: blocking
// work on the loop's own thread pool, its result back on the loop.

import CAsyncio
import CAsyncioShim

extension EventLoop {
    /// `await loop.run_in_executor(None, body)`: runs `body` on the loop's
    /// default executor (a small thread pool the loop owns) and returns its
    /// result on the loop thread.
    ///
    /// Call it from code running on the loop (a task body). Cancelling the
    /// waiting task before a thread took the job skips it; a job already
    /// running finishes and its result is dropped. `body` must not touch
    /// loop-confined objects (futures, tasks, sockets of the loop).
    ///
    /// - Throws: what `body` throws; ``CancelledError``; ``AsyncioError``
    ///   (`RuntimeError`) after ``shutdownDefaultExecutor()`` or on a closed loop.
    nonisolated(nonsending) public func runInExecutor<T: Sendable>(
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        checkConfined(loop: core.loop)
        let job = DefaultExecutorJob(body)
        let arg = Unmanaged.passRetained(job as DefaultExecutorJobBase).toOpaque()
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_run_in_executor(core.loop, runExecutorJob, arg, releaseExecutorJob, &out))
        let f = out!
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: core.loop) }
        try await Await.done(f)
        return try job.result!.get()
    }

    /// `await loop.shutdown_default_executor()`: lets queued jobs finish,
    /// then joins the pool's threads; later ``runInExecutor(_:)`` calls
    /// throw `RuntimeError`.
    nonisolated(nonsending) public func shutdownDefaultExecutor() async throws {
        checkConfined(loop: core.loop)
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_shutdown_default_executor(core.loop, &out))
        let f = out!
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: core.loop) }
        try await Await.done(f)
    }
}

/// A job of the default executor, type-erased for the C trampoline.
class DefaultExecutorJobBase {
    func run() {}
}

/// Safety of `@unchecked Sendable`: `result` is written once, by the one
/// worker thread that runs the job, and read on the loop thread only after
/// the job's future resolved; the executor's mutex orders the two.
final class DefaultExecutorJob<T>: DefaultExecutorJobBase, @unchecked Sendable {
    let body: @Sendable () throws -> T
    var result: Result<T, any Error>?
    init(_ body: @escaping @Sendable () throws -> T) { self.body = body }
    override func run() { result = Result { try body() } }
}

private func runExecutorJob(_ arg: UnsafeMutableRawPointer?,
                            _ result: UnsafeMutablePointer<ca_value>?) -> UnsafeMutablePointer<ca_error>? {
    Unmanaged<DefaultExecutorJobBase>.fromOpaque(arg!)._withUnsafeGuaranteedRef { $0.run() }
    return nil
}

private func releaseExecutorJob(_ arg: UnsafeMutableRawPointer?) {
    Unmanaged<DefaultExecutorJobBase>.fromOpaque(arg!).release()
}

/// The running loop's C loop, or `RuntimeError` as get_running_loop() raises.
func runningCLoop() throws -> OpaquePointer {
    var loop: OpaquePointer?
    try ErrorBridge.check(ca_get_running_loop_checked(&loop))
    return loop!
}
