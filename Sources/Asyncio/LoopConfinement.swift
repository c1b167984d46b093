// Work a deinit must do on its object's loop thread, wherever the last
// reference was dropped: core objects are loop-confined (plain reference
// counts, no locks), and a Swift wrapper may die on any thread.

import CAsyncio
import CAsyncioShim

/// Runs `body(arg)` where `loop`'s objects may be touched: at once when the
/// caller runs on the loop's thread or the loop is not running (nothing else
/// touches it then), else on the loop's thread through
/// `call_soon_threadsafe`. When the loop refuses the call (it closed
/// meanwhile, so nothing will run it any more) it runs at once too.
///
/// For deinits that do more than drop one reference; ``releaseOnLoop(_:loop:)``
/// is the one-reference case.
@usableFromInline
func runOnLoopThread(_ loop: OpaquePointer, _ body: @escaping ca_callback_fn, _ arg: UnsafeMutableRawPointer?) {
    if cas_tls_get().pointee.loop != loop, ca_loop_is_running(loop), ca_get_running_loop() != loop {
        guard let err = ca_loop_call_soon_threadsafe(loop, body, arg, nil) else { return }
        ca_decref(UnsafeMutableRawPointer(err))
    }
    body(arg)
}
