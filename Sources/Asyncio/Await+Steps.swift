// An operation that waits for loop futures between synchronous steps on
// loop-confined state (a server's accept, a datagram receive, a stream
// read). Inside the body's own task the waits are awaits of its C step; from
// anywhere else every step, and the cleanup after every wait, runs on the
// loop's thread, driven by done callbacks, and only the outcome comes back.

import CAsyncio
import CAsyncioShim

/// What one step of an ``Await/steps(loop:_:_:settle:)`` operation came to.
enum LoopStep<R> {
    /// The operation is over, with this outcome.
    case done(R)
    /// It waits until this future is done, then steps again. The step hands
    /// the operation one reference to it, which the operation's `settle`
    /// drops.
    case wait(UnsafeMutablePointer<ca_future>)
}

extension Await {
    /// Runs `step(context, afterWait)` until it is ``LoopStep/done(_:)``;
    /// after each wait it asked for, `settle(context, future)` undoes the
    /// wait (and drops the step's reference to the future), then the
    /// future's error, or ``CancelledError``, is thrown, or else the next
    /// step runs, told so (`afterWait`: what the code after an `await` in
    /// CPython would not check again, a step need not either).
    ///
    /// Inside the body's own task this is a loop of plain awaits of its C
    /// step, and nothing is allocated. Anywhere else (a plain Swift task,
    /// another thread) `step` and `settle` run where `loop`'s objects may be
    /// touched: here while ``mayTouch(_:)``, else on the loop's thread
    /// (`call_soon_threadsafe`), and every later step in the done callback of
    /// the future the previous one waits for, on the loop's thread. Only the
    /// Sendable `R` comes back to the awaiting thread, which may be resumed
    /// while the loop runs: an await begun while the loop was idle touches
    /// nothing loop-confined after it. `step` and `settle` get what they
    /// work on as `context` rather than capturing it, so on the body's path
    /// they are bare functions and nothing is allocated for them. Make
    /// `context` of pointers (a raw C object, an `Unmanaged` reference the
    /// caller keeps alive) rather than class references: the body's task
    /// keeps it across each wait, and a class reference there costs a
    /// retain and a release per await.
    ///
    /// - Throws: what `step` throws; a waited-for future's error;
    ///   ``CancelledError``; ``AsyncioError`` (`RuntimeError`) when the loop
    ///   closes before it runs a step or the callback of a done wait.
    @inline(__always)
    nonisolated(nonsending) static func steps<Context, R: Sendable>(
        loop: OpaquePointer, _ context: Context,
        _ step: @escaping (Context, _ afterWait: Bool) throws -> LoopStep<R>,
        settle: @escaping (Context, UnsafeMutablePointer<ca_future>) -> Void
    ) async throws -> R {
        if let c = ownCoroutine {
            var afterWait = false
            while true {
                switch try step(context, afterWait) {
                case .done(let r):
                    return r
                case .wait(let f):
                    defer { settle(context, f) }
                    if f.pointee.fut_state == UInt8(CA_FUTURE_PENDING.rawValue) {
                        try await suspend(c, on: f)
                    }
                    try checkOutcome(f)
                    afterWait = true
                }
            }
        }
        return try await stepsOnLoop(loop, context, step, settle)
    }

    /// Throws the error of the done future `f` (borrowed), or
    /// ``CancelledError`` when it was cancelled.
    @inline(__always)
    static func checkOutcome(_ f: UnsafeMutablePointer<ca_future>) throws {
        var v = ca_value()
        if let e = ca_future_result(f, &v) { throw ErrorBridge.take(e) }
    }

    /// ``steps(loop:_:_:settle:)`` outside the body's task: the steps run
    /// on the loop's thread (here while the loop may be touched from here),
    /// the awaiting task waits for their outcome.
    private nonisolated(nonsending) static func stepsOnLoop<Context, R: Sendable>(
        _ loop: OpaquePointer, _ context: Context,
        _ step: @escaping (Context, Bool) throws -> LoopStep<R>,
        _ settle: @escaping (Context, UnsafeMutablePointer<ca_future>) -> Void
    ) async throws -> R {
        try await withUnsafeThrowingContinuation { (k: UnsafeContinuation<R, any Error>) in
            // Made inside the closure, so that no reference to it stays in
            // the awaiting task: its last reference goes on the loop's
            // thread, and with it `context`.
            let operation = SteppedOperation(context, step, settle, k)
            if mayTouch(loop) {
                operation.next()
            } else {
                ThreadsafeCall(run: { operation.next() }, dropped: { operation.finish(.failure($0)) }).post(to: loop)
            }
        }
    }
}

/// The non-generic face of a ``SteppedOperation``, which the C callbacks see.
///
/// Safety of `@unchecked Sendable`: see ``SteppedOperation``.
private class SteppedOperationBase: @unchecked Sendable {
    /// The future of a wait is done (its callback runs, on the loop's thread).
    func waited(for f: UnsafeMutablePointer<ca_future>) { fatalError("abstract") }
    /// A wait's callback was dropped without running: the loop closed, or
    /// had no memory to add it or, once the future was done, to schedule it.
    func abandoned(_ f: UnsafeMutablePointer<ca_future>) { fatalError("abstract") }
}

/// An ``Await/steps(loop:_:_:settle:)`` operation run outside the body's
/// task.
///
/// Safety of `@unchecked Sendable`: the awaiting thread makes it and hands
/// it over: to the loop's thread, or it runs the first step itself while
/// the loop may be touched from there (idle, and nothing else touches it),
/// before it suspends. From then on only the loop's thread touches it (its
/// steps, and the done callbacks of its waits, one at a time), or the thread
/// closing the loop when a callback is dropped unrun, while the awaiting
/// task is suspended on `continuation`, which is resumed once (`finished`)
/// with the Sendable `R`. So `context` and the closures, which need not be
/// Sendable, are never used by two threads, nor by the awaiting one.
private final class SteppedOperation<Context, R: Sendable>: SteppedOperationBase, @unchecked Sendable {
    private let context: Context
    private let step: (Context, Bool) throws -> LoopStep<R>
    private let settle: (Context, UnsafeMutablePointer<ca_future>) -> Void
    private let continuation: UnsafeContinuation<R, any Error>
    private var finished = false
    /// The next step comes after a wait.
    private var afterWait = false

    init(_ context: Context, _ step: @escaping (Context, Bool) throws -> LoopStep<R>,
         _ settle: @escaping (Context, UnsafeMutablePointer<ca_future>) -> Void,
         _ continuation: UnsafeContinuation<R, any Error>) {
        self.context = context
        self.step = step
        self.settle = settle
        self.continuation = continuation
    }

    /// Runs the next step: finishes with its outcome, or waits as it asks.
    func next() {
        let f: UnsafeMutablePointer<ca_future>
        do {
            switch try step(context, afterWait) {
            case .done(let r): return finish(.success(r))
            case .wait(let waited): f = waited
            }
        } catch {
            return finish(.failure(error))
        }
        let arg = Unmanaged.passRetained(StepWait(self, f)).toOpaque()
        if let err = ca_future_add_done_callback(f, stepWaitDone, arg, stepWaitReleased, nil) {
            // The release ran already: the wait was abandoned, with why
            // (MemoryError: the loop is open).
            ca_decref(UnsafeMutableRawPointer(err))
        }
    }

    override func waited(for f: UnsafeMutablePointer<ca_future>) {
        var v = ca_value()
        let e = ca_future_result(f, &v)
        settle(context, f)
        if let e { return finish(.failure(ErrorBridge.take(e))) }
        afterWait = true
        next()
    }

    override func abandoned(_ f: UnsafeMutablePointer<ca_future>) {
        settle(context, f)
        finish(.failure(droppedCallError(f.pointee.fut_loop)))
    }

    func finish(_ outcome: Result<R, any Error>) {
        if finished { return }
        finished = true
        continuation.resume(with: outcome)
    }
}

/// One wait of a ``SteppedOperation``: the argument of its done callback,
/// which the callback's release reads to tell a callback that ran from one
/// dropped unrun. (The operation cannot tell: by the time a wait's release
/// runs, the step its callback ran may have begun the next wait.)
private final class StepWait {
    let operation: SteppedOperationBase
    let future: UnsafeMutablePointer<ca_future>
    var ran = false

    init(_ operation: SteppedOperationBase, _ future: UnsafeMutablePointer<ca_future>) {
        self.operation = operation
        self.future = future
    }
}

private func stepWaitDone(_ f: UnsafeMutablePointer<ca_future>?, _ arg: UnsafeMutableRawPointer?) {
    Unmanaged<StepWait>.fromOpaque(arg!)._withUnsafeGuaranteedRef { wait in
        wait.ran = true
        wait.operation.waited(for: wait.future)
    }
}

private func stepWaitReleased(_ arg: UnsafeMutableRawPointer?) {
    let wait = Unmanaged<StepWait>.fromOpaque(arg!).takeRetainedValue()
    if !wait.ran { wait.operation.abandoned(wait.future) }
}
