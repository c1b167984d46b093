// asyncio.Handle / TimerHandle: what callSoon, callLater and callAt return.

import CAsyncio
import CAsyncioShim

/// A scheduled callback (`asyncio.Handle`, or `TimerHandle` for
/// ``EventLoop/callLater(_:_:)`` and ``EventLoop/callAt(_:_:)``): cancel it
/// before it runs and it never does.
///
/// The handle also carries the Swift callback, so scheduling one costs a
/// single Swift object: the C handle holds it (its callback argument) until
/// the callback ran or was cancelled, and it holds the C handle.
///
/// Safety of `@unchecked Sendable`: `unsafeRaw` is written once, by the
/// scheduling call, before the handle is returned; `callback` is immutable
/// and `@Sendable`. The C handle belongs to one loop: ``cancel()`` checks it
/// runs on that loop's thread, and `deinit` releases the reference there.
public final class Handle: @unchecked Sendable {
    /// The C handle (this wrapper owns one reference).
    public private(set) var unsafeRaw: OpaquePointer!
    let callback: @Sendable () -> Void

    init(_ callback: @escaping @Sendable () -> Void) { self.callback = callback }

    /// Schedules `callback` with `schedule` (a `ca_loop_call_*` function
    /// given the C callback, its argument and release, and the handle slot).
    static func schedule(
        _ callback: @escaping @Sendable () -> Void,
        _ schedule: (ca_callback_fn, UnsafeMutableRawPointer, ca_release_fn,
                     UnsafeMutablePointer<OpaquePointer?>) -> UnsafeMutablePointer<ca_error>?
    ) throws -> Handle {
        let handle = Handle(callback)
        var h: OpaquePointer?
        // On error the C side already released the argument's reference.
        try ErrorBridge.check(schedule(runHandle, Unmanaged.passRetained(handle).toOpaque(), releaseHandle, &h))
        handle.unsafeRaw = h!
        return handle
    }

    deinit {
        if let raw = unsafeRaw {
            releaseOnLoop(UnsafeMutableRawPointer(raw), loop: ca_handle_get_loop(raw))
        }
    }

    /// `cancel()`: the callback will not run (a timer leaves the loop's heap
    /// lazily).
    public func cancel() {
        checkConfined(loop: ca_handle_get_loop(unsafeRaw))
        ca_handle_cancel(unsafeRaw)
    }

    /// `cancelled()`.
    public var isCancelled: Bool { ca_handle_cancelled(unsafeRaw) }

    /// `TimerHandle.when()`: the scheduled time in seconds on the loop's
    /// clock (0 for a handle of ``EventLoop/callSoon(_:)``).
    public var when: Double { Double(ca_handle_when(unsafeRaw)) / 1e9 }
}

/// The C callback of a handle: runs its Swift callback.
private func runHandle(_ arg: UnsafeMutableRawPointer?) {
    Unmanaged<Handle>.fromOpaque(arg!)._withUnsafeGuaranteedRef { $0.callback() }
}

/// The C handle is done with its argument.
private func releaseHandle(_ arg: UnsafeMutableRawPointer?) {
    Unmanaged<Handle>.fromOpaque(arg!).release()
}
