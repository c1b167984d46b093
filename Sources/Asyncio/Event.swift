// asyncio.Event.

import CAsyncio
import CAsyncioShim

/// `asyncio.Event`: a flag tasks can wait for. ``set()`` wakes every
/// waiter; ``wait()`` returns at once while the flag is set.
///
/// Safety of `@unchecked Sendable`: as ``Lock``.
public final class Event: @unchecked Sendable, CustomStringConvertible {
    /// The C event (this wrapper owns one reference).
    public let unsafeRaw: UnsafeMutablePointer<ca_event>

    /// Creates a clear event.
    public init() {
        guard let e = ca_event_new() else { fatalError("out of memory creating an event") }
        unsafeRaw = e
    }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRaw), loop: unsafeRaw.pointee.loop)
    }

    /// `is_set()`.
    public var isSet: Bool {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return ca_event_is_set(unsafeRaw)
    }

    /// `set()`: sets the flag and wakes every waiter.
    public func set() throws {
        checkConfined(loop: unsafeRaw.pointee.loop)
        try ErrorBridge.check(ca_event_set(unsafeRaw))
    }

    /// `clear()`: resets the flag.
    public func clear() {
        checkConfined(loop: unsafeRaw.pointee.loop)
        ca_event_clear(unsafeRaw)
    }

    /// `wait()`: returns once the flag is set.
    /// - Throws: ``CancelledError``.
    nonisolated(nonsending) public func wait() async throws {
        try await Await.coroutine(loop: unsafeRaw.pointee.loop, unsafeRaw) { ca_event_wait($0) }
    }

    /// `repr(event)`: `<asyncio.locks.Event object at 0x... [unset, waiters:2]>`.
    public var description: String {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return reprString { ca_event_repr(unsafeRaw, $0, $1) }
    }
}
