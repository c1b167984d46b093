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

/// A call handed to a loop from another thread that must not be lost: `run`
/// runs on the loop's thread, or, when the loop never gets to it (it refuses
/// the call, or closes before it looked at what other threads sent it),
/// `dropped` runs with ``loopClosed`` on the thread that refused or closed.
/// Exactly one of the two runs, once. A refusal for want of memory reads as
/// the closed loop's error too: the release that reports it cannot tell the
/// two apart.
///
/// Safety of `@unchecked Sendable`: the posting thread only makes it and
/// hands it over; after that only the thread that runs the handle, then
/// drops it (the loop's, or the one closing or refusing), touches it, so
/// `ran` is written and read on one thread. The closures are `@Sendable`.
final class ThreadsafeCall: @unchecked Sendable {
    private let run: @Sendable () -> Void
    private let dropped: @Sendable (any Error) -> Void
    private var ran = false

    /// The error of a call the loop never ran: it closed.
    static var loopClosed: AsyncioError {
        AsyncioError(typeName: "RuntimeError", message: "Event loop is closed")
    }

    init(run: @escaping @Sendable () -> Void, dropped: @escaping @Sendable (any Error) -> Void) {
        self.run = run
        self.dropped = dropped
    }

    /// Hands the call to `loop` (`call_soon_threadsafe`).
    func post(to loop: OpaquePointer) {
        let arg = Unmanaged.passRetained(self).toOpaque()
        // On failure the release has run already, and with it `dropped`.
        if let err = ca_loop_call_soon_threadsafe(loop, { arg in
            Unmanaged<ThreadsafeCall>.fromOpaque(arg!)._withUnsafeGuaranteedRef { call in
                call.ran = true
                call.run()
            }
        }, arg, { arg in
            let call = Unmanaged<ThreadsafeCall>.fromOpaque(arg!).takeRetainedValue()
            if !call.ran { call.dropped(ThreadsafeCall.loopClosed) }
        }) {
            ca_decref(UnsafeMutableRawPointer(err))
        }
    }
}
