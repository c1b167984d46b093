// asyncio.timeout / asyncio.timeout_at scopes.

import CAsyncio
import CAsyncioShim

/// An entered timeout scope (`asyncio.Timeout`), handed to the body of
/// ``withTimeout(_:_:)`` and ``withTimeoutAt(_:_:)`` so it can move the
/// deadline.
///
/// Safety of `@unchecked Sendable`: the stored properties are immutable; the
/// C scope belongs to the task that entered it and is only used on its
/// loop's thread (the methods check it) and released there.
public final class TimeoutScope: @unchecked Sendable, CustomStringConvertible {
    /// The C scope (this wrapper owns one reference).
    public let unsafeRaw: UnsafeMutablePointer<ca_timeout>

    /// The loop of the task that enters the scope: the one running when it
    /// was made (the C scope keeps no loop of its own). Read here, not in
    /// `deinit` or a getter, which may run on another thread.
    let loop: OpaquePointer?

    init(_ raw: UnsafeMutablePointer<ca_timeout>) {
        unsafeRaw = raw
        loop = ca_get_running_loop()
    }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRaw), loop: loop)
    }

    /// `when()`: the deadline in seconds on the loop's clock, `nil` for none.
    public var when: Double? {
        checkConfined(loop: loop)
        let w = ca_timeout_when(unsafeRaw)
        return w == Int64.max ? nil : Double(w) / 1e9
    }

    /// `reschedule(when)`: moves the deadline (`nil` disables it); one in
    /// the past fires on the next iteration.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) when the scope is not
    ///   active any more.
    public func reschedule(_ when: Double?) throws {
        checkConfined(loop: loop)
        try ErrorBridge.check(ca_timeout_reschedule(unsafeRaw, when.map(nanoseconds) ?? Int64.max))
    }

    /// `expired()`: the deadline fired inside the scope.
    public var expired: Bool {
        checkConfined(loop: loop)
        return ca_timeout_expired(unsafeRaw)
    }

    /// `repr(timeout)`: `<Timeout [active] when=12.5>`.
    public var description: String {
        checkConfined(loop: loop)
        return reprString { ca_timeout_repr(unsafeRaw, $0, $1) }
    }
}

/// `async with asyncio.timeout(delay)`: runs `body` in the calling task; if
/// it has not finished `delay` seconds from now the task is cancelled and
/// the resulting ``CancelledError`` becomes ``TimeoutError``. `nil` sets no
/// deadline. Nested scopes and an outer cancellation behave as in asyncio
/// (a cancellation from elsewhere stays a ``CancelledError``).
///
/// ```swift
/// let data = try await timeout(1.5) { try await fetch() }
/// ```
///
/// - Throws: ``TimeoutError``; what `body` throws; ``AsyncioError``
///   (`RuntimeError`) outside a loop task.
nonisolated(nonsending) public func timeout<T>(_ delay: Double?,
                                              _ body: nonisolated(nonsending) () async throws -> T)
    async throws -> T {
    try await withTimeout(delay) { (_: TimeoutScope) in try await body() }
}

/// `async with asyncio.timeout(delay) as scope`: as ``timeout(_:_:)``,
/// handing `body` the scope so it can ``TimeoutScope/reschedule(_:)`` the
/// deadline.
///
/// ```swift
/// try await withTimeout(1) { scope in
///     try await connect()
///     try scope.reschedule(nil)  // connected: no deadline for the rest
///     try await serve()
/// }
/// ```
nonisolated(nonsending) public func withTimeout<T>(_ delay: Double?,
                                              _ body: nonisolated(nonsending) (TimeoutScope) async throws -> T)
    async throws -> T {
    var tm: UnsafeMutablePointer<ca_timeout>?
    try ErrorBridge.check(ca_timeout_new(timeoutSeconds(delay), &tm))
    return try await withTimeoutScope(TimeoutScope(tm!), body)
}

/// `async with asyncio.timeout_at(when)`: as ``timeout(_:_:)`` with an
/// absolute deadline, in seconds on the loop's clock (``EventLoop/time``).
nonisolated(nonsending) public func timeoutAt<T>(_ when: Double?,
                                                _ body: nonisolated(nonsending) () async throws -> T)
    async throws -> T {
    try await withTimeoutAt(when) { (_: TimeoutScope) in try await body() }
}

/// `async with asyncio.timeout_at(when) as scope`: as ``timeoutAt(_:_:)``,
/// handing `body` the scope.
nonisolated(nonsending) public func withTimeoutAt<T>(_ when: Double?,
                                                _ body: nonisolated(nonsending) (TimeoutScope) async throws -> T)
    async throws -> T {
    var tm: UnsafeMutablePointer<ca_timeout>?
    try ErrorBridge.check(ca_timeout_at_new(when.map(nanoseconds) ?? Int64.max, &tm))
    return try await withTimeoutScope(TimeoutScope(tm!), body)
}

/// `__aenter__`, the body, `__aexit__`.
nonisolated(nonsending) private func withTimeoutScope<T>(
    _ scope: TimeoutScope, _ body: nonisolated(nonsending) (TimeoutScope) async throws -> T
) async throws -> T {
    try ErrorBridge.check(ca_timeout_enter(scope.unsafeRaw))
    let outcome: Result<T, any Error>
    do {
        outcome = .success(try await body(scope))
    } catch {
        outcome = .failure(error)
    }
    var exc: UnsafeMutablePointer<ca_error>?
    if case .failure(let error) = outcome { exc = ErrorBridge.cError(error) }
    try ErrorBridge.check(ca_timeout_exit(scope.unsafeRaw, exc))
    return try outcome.get()
}
