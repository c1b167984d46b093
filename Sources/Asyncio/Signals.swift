// loop.add_signal_handler / remove_signal_handler.

import CAsyncio
import CAsyncioShim

extension EventLoop {
    /// `loop.add_signal_handler(signal, handler)`: runs `handler` on the
    /// loop (a callback of its ready queue, never in signal context) each
    /// time `signal` arrives; replaces an earlier handler of that signal.
    ///
    /// The signal is blocked in the calling thread and read from a
    /// signalfd. In a program with several threads, block the signal in all
    /// of them (for example in `main` before starting any), or a signal sent
    /// to the process may go to another thread and take its default action.
    ///
    /// - Throws: ``AsyncioError`` (`ValueError`) for a signal out of range,
    ///   (`RuntimeError`) for `SIGKILL`/`SIGSTOP` or a closed loop;
    ///   ``OSError`` from `signalfd`.
    public nonisolated func addSignalHandler(_ signal: Int32, _ handler: @escaping @Sendable () -> Void) throws {
        checkConfined(loop: core.loop)
        let box = CallbackBox.make(handler)
        try ErrorBridge.check(ca_loop_add_signal_handler(core.loop, signal, runCallbackBox, box, releaseCallbackBox))
    }

    /// `loop.remove_signal_handler(signal)`: `true` when a handler was
    /// removed. The signal gets back the mask it had before.
    /// - Throws: ``AsyncioError`` (`ValueError`) for a signal out of range.
    @discardableResult
    public nonisolated func removeSignalHandler(_ signal: Int32) throws -> Bool {
        checkConfined(loop: core.loop)
        var removed = false
        try ErrorBridge.check(ca_loop_remove_signal_handler(core.loop, signal, &removed))
        return removed
    }
}
