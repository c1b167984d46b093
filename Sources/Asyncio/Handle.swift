// asyncio.Handle / TimerHandle: what callSoon, callLater and callAt return.

import CAsyncio
import CAsyncioShim

/// A scheduled callback (`asyncio.Handle`, or `TimerHandle` for
/// ``EventLoop/callLater(_:_:)`` and ``EventLoop/callAt(_:_:)``): cancel it
/// before it runs and it never does.
///
/// The handle also carries the Swift callback, so scheduling one costs at
/// most a single Swift object: the C handle holds it (its callback argument)
/// until the callback ran or was cancelled, and it holds the C handle. A
/// handle that nobody else holds by then (the caller discarded the result of
/// ``EventLoop/callSoon(_:)``, say) is kept by its loop and reused for a later
/// callback, so fire-and-forget scheduling allocates nothing in steady state.
///
/// Safety of `@unchecked Sendable`: `unsafeRaw` and `callback` are written
/// by the scheduling call before the handle is returned, and again only when
/// the handle is recycled, which happens only once no one but the loop holds
/// it (a strong reference count of one and no weak or unowned reference,
/// checked on the loop's thread); the
/// callback is `@Sendable`. The C handle belongs to one loop: ``cancel()``
/// checks it runs on that loop's thread, and `deinit` releases the
/// reference there.
public final class Handle: @unchecked Sendable {
    /// The C handle (this wrapper owns one reference).
    public private(set) var unsafeRaw: OpaquePointer!
    fileprivate var callback: @Sendable () -> Void

    /// While the handle is spare (it has no C handle), its `unsafeRaw` links
    /// to the next spare handle of the loop's list: no extra stored property,
    /// so a handle stays as small as before recycling. Whoever takes a
    /// handle off the list sets this to `nil` first (`deinit` would release
    /// a link as a C handle).
    var nextSpare: UnsafeMutableRawPointer? {
        get { unsafeRaw.map { UnsafeMutableRawPointer($0) } }
        set { unsafeRaw = newValue.map { OpaquePointer($0) } }
    }

    private init(_ callback: consuming @escaping @Sendable () -> Void) { self.callback = callback }

    /// Schedules `callback` with `schedule` (a `ca_loop_call_*` function
    /// given the C callback, its argument and release, and the handle slot),
    /// on a recycled handle of `core` when it has one.
    static func schedule(
        on core: LoopCore,
        _ callback: consuming @escaping @Sendable () -> Void,
        _ schedule: (ca_callback_fn, UnsafeMutableRawPointer, ca_release_fn,
                     UnsafeMutablePointer<OpaquePointer?>) -> UnsafeMutablePointer<ca_error>?
    ) throws -> Handle {
        let handle: Handle
        let arg: UnsafeMutableRawPointer
        if let spare = core.spareHandles {
            // The list's reference becomes the C handle's; the caller gets
            // a new one.
            handle = Unmanaged<Handle>.fromOpaque(spare).takeUnretainedValue()
            core.spareHandles = handle.nextSpare
            core.spareHandleCount -= 1
            handle.nextSpare = nil
            handle.callback = consume callback
            arg = spare
        } else {
            handle = Handle(consume callback)
            arg = Unmanaged.passRetained(handle).toOpaque()
        }
        var h: OpaquePointer?
        // On error the C side already released the argument's reference.
        try ErrorBridge.check(schedule(runHandle, arg, releaseHandle, &h))
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
    public var isCancelled: Bool {
        checkConfined(loop: ca_handle_get_loop(unsafeRaw))
        return ca_handle_cancelled(unsafeRaw)
    }

    /// `TimerHandle.when()`: the scheduled time in seconds on the loop's
    /// clock (0 for a handle of ``EventLoop/callSoon(_:)``).
    public var when: Double {
        checkConfined(loop: ca_handle_get_loop(unsafeRaw))
        return Double(ca_handle_when(unsafeRaw)) / 1e9
    }

    /// The C handle is done with the callback (it ran, was cancelled, or
    /// its loop dropped it): keeps the handle for reuse when the reference
    /// the C handle held was the last one and this thread runs the loop.
    fileprivate static func release(_ arg: UnsafeMutableRawPointer) {
        let handle = Unmanaged<Handle>.fromOpaque(arg)
        guard let current = cas_tls_get().pointee.core, isUniquelyReferenced(arg),
              cas_swift_no_weak_or_unowned(arg) else {
            handle.release()
            return
        }
        let kept = Unmanaged<LoopCore>.fromOpaque(current)._withUnsafeGuaranteedRef { core in
            handle._withUnsafeGuaranteedRef { h in
                guard let raw = h.unsafeRaw, core.loop == ca_handle_get_loop(raw),
                      core.spareHandleCount < LoopCore.spareHandleLimit else { return false }
                h.callback = noCallback
                // The loop still holds the C handle while it runs or drops
                // it (the caller of this release), so this is not the last
                // reference.
                ca_decref(UnsafeMutableRawPointer(raw))
                // The C handle's reference to `h` becomes the list's.
                h.nextSpare = core.spareHandles
                core.spareHandles = arg
                core.spareHandleCount += 1
                return true
            }
        }
        if !kept { handle.release() }
    }
}

/// Whether the reference `arg` stands for is the only strong one, checked
/// without taking another (which would make the count two).
private func isUniquelyReferenced(_ arg: UnsafeMutableRawPointer) -> Bool {
    var reference = arg
    return withUnsafeMutablePointer(to: &reference) { slot in
        UnsafeMutableRawPointer(slot).withMemoryRebound(to: Handle.self, capacity: 1) {
            isKnownUniquelyReferenced(&$0.pointee)
        }
    }
}

/// What a handle holds once its callback ran (a closure without context:
/// storing or dropping it touches no reference count).
private let noCallback: @Sendable () -> Void = {}

/// The C callback of a handle: runs its Swift callback, moved out of the
/// handle for the call and back afterwards. Called in place, the closure's
/// context would be retained and released around the call (two atomic
/// operations per callback). Put back, it lives as long as before: until
/// the handle is reused or released (as asyncio's Handle keeps its
/// callback), not freed in the middle of the loop's run.
private func runHandle(_ arg: UnsafeMutableRawPointer?) {
    Unmanaged<Handle>.fromOpaque(arg!)._withUnsafeGuaranteedRef { h in
        // Not `swap`: unspecialized (a debug build), it would box both
        // closures to pass them generically.
        let callback = h.callback
        h.callback = noCallback
        callback()
        h.callback = callback
    }
}

/// The C handle is done with its argument.
private func releaseHandle(_ arg: UnsafeMutableRawPointer?) {
    Handle.release(arg!)
}
