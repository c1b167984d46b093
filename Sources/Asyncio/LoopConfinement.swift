// Work a deinit must do on its object's loop thread, wherever the last
// reference was dropped: core objects are loop-confined (plain reference
// counts, no locks), and a Swift wrapper may die on any thread.

import CAsyncio
import CAsyncioShim

/// Runs `body(arg)` where `loop`'s objects may be touched: at once when the
/// caller runs on the loop's thread or the loop is not running (nothing else
/// touches it then), else on the loop's thread through
/// `call_soon_threadsafe`. It runs exactly once even when the loop never gets
/// to it: `body` is also the handle's release (see `ca_loop_call_soon`), so
/// it runs when close drops the handle (the loop stopped before it looked at
/// what other threads sent it), or at once when the loop refuses the call
/// (it closed meanwhile).
///
/// For deinits that do more than drop one reference; ``releaseOnLoop(_:loop:)``
/// is the one-reference case.
@usableFromInline
func runOnLoopThread(_ loop: OpaquePointer, _ body: @escaping ca_callback_fn, _ arg: UnsafeMutableRawPointer?) {
    if cas_tls_get().pointee.loop != loop, ca_loop_is_running(loop), ca_get_running_loop() != loop {
        // On failure the release, `body`, has run already.
        if let err = ca_loop_call_soon_threadsafe(loop, body, arg, body) {
            ca_decref(UnsafeMutableRawPointer(err))
        }
        return
    }
    body(arg)
}

/// Hands `fn(arg)` to `loop` from a thread that may not touch it
/// (`call_soon_threadsafe`) and returns the loop's refusal, if any:
/// RuntimeError "Event loop is closed", or MemoryError when it has no
/// memory to take the call.
///
/// `release` runs exactly once: on the loop's thread after `fn`; on the
/// thread that drops the call when the loop never runs it
/// (``droppedCallError(_:)`` tells why); or at once, on this thread, when
/// the loop refuses it. The release alone cannot tell a refusal for want of
/// memory from a closed loop, so the hand-over is marked on this thread
/// (`cas_tls.handover`, as the loop's executor marks a job it hands over):
/// a release for which ``isRefusedHandOver(_:)`` holds leaves the report to
/// the caller, which has the loop's error.
func handOver(_ loop: OpaquePointer, _ fn: ca_callback_fn, _ arg: UnsafeMutableRawPointer,
              release: ca_release_fn) -> UnsafeMutablePointer<ca_error>? {
    let tls = cas_tls_get()
    let outer = tls.pointee.handover
    tls.pointee.handover = arg
    defer { tls.pointee.handover = outer }
    return ca_loop_call_soon_threadsafe(loop, fn, arg, release)
}

/// True in the release of `arg`'s hand-over (``handOver(_:_:_:release:)``)
/// when it runs because the loop refused the call: on the handing thread,
/// before the hand-over returns the refusal.
func isRefusedHandOver(_ arg: UnsafeMutableRawPointer?) -> Bool {
    cas_tls_get().pointee.handover == arg
}

/// Why `loop` dropped a call it had taken without running it, asked by the
/// call's release on the thread that drops it, which alone may read the
/// loop's state then: the thread closing the loop ("Event loop is closed"),
/// or the loop's own when it had no memory to schedule the call (it reports
/// the MemoryError to its exception handler too).
func droppedCallError(_ loop: OpaquePointer) -> AsyncioError {
    ca_loop_is_closed(loop) ? ThreadsafeCall.loopClosed : ThreadsafeCall.outOfMemory
}

/// A call handed to a loop from another thread that must not be lost: `run`
/// runs on the loop's thread, or, when the loop never gets to it, `dropped`
/// runs once with what kept it: on the posting thread with the loop's
/// refusal (it is closed, or has no memory to take the call), else on the
/// thread that drops it (``droppedCallError(_:)``). Exactly one of the two
/// runs, once.
///
/// Safety of `@unchecked Sendable`: the posting thread only makes it and
/// hands it over (`loop` is set before, and the loop's inbox orders that
/// write before the loop's reads); after that only the thread that runs the
/// handle, then drops it (the loop's, or the one closing it), touches it, or
/// the posting thread alone when the loop refused it, so `ran` is written
/// and read on one thread. The closures are `@Sendable`.
final class ThreadsafeCall: @unchecked Sendable {
    private let run: @Sendable () -> Void
    private let dropped: @Sendable (any Error) -> Void
    private var ran = false
    private var loop: OpaquePointer?

    /// The error of a call the loop never ran: it closed.
    static var loopClosed: AsyncioError {
        AsyncioError(typeName: "RuntimeError", message: "Event loop is closed")
    }

    /// The error of a call the loop had no memory for, as the core reports
    /// running out of memory (MemoryError, no message).
    static var outOfMemory: AsyncioError { AsyncioError(typeName: "MemoryError") }

    init(run: @escaping @Sendable () -> Void, dropped: @escaping @Sendable (any Error) -> Void) {
        self.run = run
        self.dropped = dropped
    }

    /// Hands the call to `loop` (``handOver(_:_:_:release:)``).
    func post(to loop: OpaquePointer) {
        self.loop = loop
        let arg = Unmanaged.passRetained(self).toOpaque()
        let refusal = handOver(loop, { arg in
            Unmanaged<ThreadsafeCall>.fromOpaque(arg!)._withUnsafeGuaranteedRef { call in
                call.ran = true
                call.run()
            }
        }, arg, release: { arg in
            let call = Unmanaged<ThreadsafeCall>.fromOpaque(arg!).takeRetainedValue()
            if !call.ran, !isRefusedHandOver(arg) { call.dropped(droppedCallError(call.loop!)) }
        })
        if let refusal { dropped(ErrorBridge.take(refusal)) }
    }
}
