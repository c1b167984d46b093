// The await glue: how a Swift body waits for a loop future, gives up one
// loop iteration, or delegates to a C coroutine ("yield from"). Inside the
// body's own C task the wait is a yield of the C step; anywhere else (a
// plain Swift task, another thread) it is a done callback that resumes a
// continuation.

import CAsyncio
import CAsyncioShim

@usableFromInline
enum Await {
    /// The coroutine of the Swift-bodied task running this code, when this
    /// code runs inside its step (not in an `async let` child, a
    /// `Task.immediate` started by the body, or on another thread).
    @inlinable @inline(__always)
    static var ownCoroutine: CoroPtr? {
        guard let c = cas_tls_get().pointee.running, c.pointee.swift_task == cas_swift_task_current() else {
            return nil
        }
        return c
    }

    /// Throws what must be thrown before a loop await even starts: a
    /// cancellation deferred by a foreign suspension, or the GeneratorExit of
    /// a body its task abandoned.
    @usableFromInline
    static func checkDeferred(_ c: CoroPtr) throws {
        if let e = c.pointee.pending_exc {
            c.pointee.pending_exc = nil
            throw ErrorBridge.take(e)
        }
        if c.pointee.closing != 0 {
            throw ErrorBridge.take(ca_error_new(cas_GeneratorExitType(), nil))
        }
    }

    /// Suspends the body on `f` (pending), through its C task: the step
    /// yields `f`; the wake-up step resumes the body. Throws what the task
    /// threw in (a cancellation).
    @inline(__always)
    nonisolated(nonsending) static func suspend(_ c: CoroPtr, on f: UnsafeMutablePointer<ca_future>) async throws {
        try checkDeferred(c)
        if let e = await suspendRaw(c, on: f) { throw ErrorBridge.take(e) }
    }

    /// The suspension of ``suspend(_:on:)`` without the deferred check:
    /// returns what the task threw in (owned), or nil once `f` is done.
    @inlinable @inline(__always)
    nonisolated(nonsending) static func suspendRaw(_ c: CoroPtr, on f: UnsafeMutablePointer<ca_future>) async
        -> UnsafeMutablePointer<ca_error>? {
        await park { k in
            c.pointee.cont = k
            c.pointee.awaited = f
            ca_incref(UnsafeMutableRawPointer(f))
            cas_future_set_blocking(f)
        }
        let e = c.pointee.resume_exc
        c.pointee.resume_exc = nil
        return e
    }

    /// Suspends the body's Swift task, handing `record` its continuation
    /// (as the raw pointer `cas_coro.cont` holds); the step resumes it.
    ///
    /// The continuation is taken without first hopping to the caller's
    /// isolation (`withUnsafeContinuation(isolation:)` does, which is a
    /// `swift_task_switch` and a look-up of the task's executor preference
    /// under the task's status lock on every await): the closure only stores
    /// the pointer, so it may run wherever the caller runs. The caller hops
    /// back to its own isolation after the resumption as usual.
    @inlinable @inline(__always)
    nonisolated(nonsending) static func park(_ record: (UnsafeMutableRawPointer) -> Void) async {
        await _unsafeInheritExecutor_withUnsafeContinuation { (k: UnsafeContinuation<Void, Never>) in
            record(unsafeBitCast(k, to: UnsafeMutableRawPointer.self))
        }
    }

    /// A bare yield: gives up exactly one loop iteration (`sleep(0)`).
    @inlinable @inline(__always)
    nonisolated(nonsending) static func yieldOnce(_ c: CoroPtr) async throws {
        try checkDeferred(c)
        await park { k in
            c.pointee.cont = k
            c.pointee.bare_yield = 1
        }
        if let e = c.pointee.resume_exc {
            c.pointee.resume_exc = nil
            throw ErrorBridge.take(e)
        }
    }

    /// Runs the C coroutine `inner` (taken) to completion inside the body's
    /// task, as `await inner` (`yield from`) does: the first send happens
    /// now; while it is suspended the task's steps drive it directly and the
    /// body only resumes once it returned or raised. Returns its value (owned).
    @usableFromInline
    nonisolated(nonsending) static func delegate(_ c: CoroPtr, to inner: UnsafeMutablePointer<ca_coro>) async throws -> ca_value {
        do {
            try checkDeferred(c)
        } catch {
            ca_coro_close(inner)
            ca_decref(UnsafeMutableRawPointer(inner))
            throw error
        }
        var res = ca_coro_result()
        switch ca_coro_send(inner, ca_none(), &res) {
        case CA_CORO_RETURN:
            ca_decref(UnsafeMutableRawPointer(inner))
            return res.value
        case CA_CORO_RAISE:
            ca_decref(UnsafeMutableRawPointer(inner))
            throw ErrorBridge.take(res.error!)
        default:
            let yielded = res.future
            await park { k in
                c.pointee.cont = k
                c.pointee.co.co_awaiting = inner
                if let yielded {
                    c.pointee.awaited = yielded
                } else {
                    c.pointee.bare_yield = 1
                }
            }
            if let e = c.pointee.resume_exc {
                c.pointee.resume_exc = nil
                throw ErrorBridge.take(e)
            }
            let v = c.pointee.resume_value
            c.pointee.resume_value = ca_none()
            return v
        }
    }

    /// Awaits the C coroutine `make(context)` creates (a new reference),
    /// from the body's task when there is one, else as a task of its own on
    /// `loop`, and returns `read` of its value (a borrowed view).
    ///
    /// `make` and `read` run where `loop`'s objects may be touched: on the
    /// loop's thread (or while the loop is idle), `make` exactly once.
    /// Creating a coroutine touches the reference counts of the objects it
    /// works on (a lock, a queue...), and its value may hold a core object,
    /// whose count is not atomic either: from another thread the making is
    /// handed to the loop through `call_soon_threadsafe` with the task's
    /// creation, and `read` runs in the task's done callback, so only the
    /// Sendable `R` it makes comes back to this thread (nothing core-owned
    /// does). `make` gets what it works on as `context` rather than
    /// capturing it, so it is a bare function and awaiting allocates nothing
    /// for it; so is a `read` that captures nothing. A `read` that captures
    /// more has a context, allocated on every await, also inside the body's
    /// own task: ``coroutine(loop:_:reader:_:)`` takes such a reading.
    ///
    /// - Throws: the coroutine's error; what `read` throws; ``AsyncioError``
    ///   (`RuntimeError`) when no loop is given and none runs on this
    ///   thread, or the loop is closed.
    @usableFromInline
    nonisolated(nonsending) static func coroutine<Context, R: Sendable>(
        loop: OpaquePointer?, _ context: Context,
        _ make: @escaping (Context) -> UnsafeMutablePointer<ca_coro>?,
        read: @escaping @Sendable (ca_value) throws -> R
    ) async throws -> R {
        if let c = ownCoroutine {
            var v = try await delegate(c, to: try made(make(context)))
            defer { ca_value_clear(&v) }
            return try read(v)
        }
        let task = try await coroutineTask(loop: loop, context, make)
        return try await done(task.unsafeRaw) { _, v in try read(v) }
    }

    /// Awaits the C coroutine `make(context)` creates and returns
    /// `reader.read` of its value; as ``coroutine(loop:_:_:read:)``.
    ///
    /// Not `coroutine` with a capturing `read`: that closure's context (what
    /// it captured, and the metadata of the caller's generic types) would be
    /// allocated on every await, also inside the body's own task. Here the
    /// reading is a value, and a closure around it is formed only where the
    /// task is awaited from another thread (as ``coroutine(loop:_:as:_:)``
    /// does).
    @usableFromInline
    nonisolated(nonsending) static func coroutine<Context, Reader: CoroutineValueReader>(
        loop: OpaquePointer?, _ context: Context, reader: Reader,
        _ make: @escaping (Context) -> UnsafeMutablePointer<ca_coro>?
    ) async throws -> Reader.Output {
        if let c = ownCoroutine {
            var v = try await delegate(c, to: try made(make(context)))
            defer { ca_value_clear(&v) }
            return try reader.read(v)
        }
        let task = try await coroutineTask(loop: loop, context, make)
        return try await done(task.unsafeRaw) { _, v in try reader.read(v) }
    }

    /// Awaits the C coroutine `make(context)` creates and returns its value
    /// as an `R`; as ``coroutine(loop:_:_:read:)`` with the value decoded.
    ///
    /// Not `coroutine` with a decoding `read`: that closure, formed by the
    /// caller for a generic `R`, captures `R`'s metadata and would be
    /// allocated on every await, also inside the body's own task. Here the
    /// decoding closure is formed only where the task is awaited from
    /// another thread (as ``result(of:as:)`` does).
    @usableFromInline
    nonisolated(nonsending) static func coroutine<Context, R: Sendable>(
        loop: OpaquePointer?, _ context: Context, as: R.Type,
        _ make: @escaping (Context) -> UnsafeMutablePointer<ca_coro>?
    ) async throws -> R {
        if let c = ownCoroutine {
            var v = try await delegate(c, to: try made(make(context)))
            return try ValueCodec<R>.take(&v)
        }
        let task = try await coroutineTask(loop: loop, context, make)
        return try await result(of: task.unsafeRaw, as: R.self)
    }

    /// Awaits the C coroutine `make(context)` creates, for its completion
    /// alone: its value is dropped. As ``coroutine(loop:_:_:read:)``.
    @usableFromInline
    nonisolated(nonsending) static func coroutine<Context>(
        loop: OpaquePointer?, _ context: Context,
        _ make: @escaping (Context) -> UnsafeMutablePointer<ca_coro>?
    ) async throws {
        if let c = ownCoroutine {
            var v = try await delegate(c, to: try made(make(context)))
            ca_value_clear(&v)
            return
        }
        let task = try await coroutineTask(loop: loop, context, make)
        try await done(task.unsafeRaw)
    }

    /// The task of `make(context)` on `loop` (else the running loop), made
    /// on the loop's thread: the coroutine, awaited from outside the body's
    /// task.
    private nonisolated(nonsending) static func coroutineTask<Context>(
        loop: OpaquePointer?, _ context: Context,
        _ make: @escaping (Context) -> UnsafeMutablePointer<ca_coro>?
    ) async throws -> LoopTask<Never> {
        guard let loop = loop ?? LoopCore.current?.loop else {
            throw AsyncioError(typeName: "RuntimeError", message: "no running event loop")
        }
        return try await onLoop(loop, (loop, context, make)) { loop, context, make in
            try LoopTask<Never>.wrap(loop: loop, coro: try made(make(context)))
        }
    }

    /// True when this thread may touch `loop`'s objects directly: it runs
    /// `loop`, or `loop` is not running and this thread runs no loop (code
    /// setting up before a run, say). A thread running another loop hands
    /// the work over, as to a running loop.
    @inline(__always)
    static func mayTouch(_ loop: OpaquePointer) -> Bool {
        ca_get_running_loop() == loop || (!ca_loop_is_running(loop) && LoopCore.current == nil)
    }

    /// `make(context)`, run where `loop`'s objects may be touched: here when
    /// ``mayTouch(_:)``, else on the loop's thread (`call_soon_threadsafe`)
    /// while the caller waits. Making a core object touches the reference
    /// counts of what it works on, which are not atomic. `make` gets its
    /// inputs as `context` rather than capturing them, so on the direct path
    /// it is a bare function and nothing is allocated for it.
    ///
    /// - Throws: what `make` throws; ``AsyncioError``: `RuntimeError` when
    ///   the loop closes before it runs the call, or refuses it closed;
    ///   `MemoryError` when it has no memory to take or schedule the call.
    nonisolated(nonsending) static func onLoop<Context, T: Sendable>(
        _ loop: OpaquePointer, _ context: Context, _ make: @escaping (Context) throws -> T
    ) async throws -> T {
        if mayTouch(loop) { return try make(context) }
        let call = LoopCall(make: { try make(context) })
        return try await withUnsafeThrowingContinuation { (k: UnsafeContinuation<T, any Error>) in
            // When the loop never runs the call (it closes first, refuses
            // it, or has no memory for it), the waiter resumes with why.
            ThreadsafeCall(run: { k.resume(with: Result { try call.make() }) },
                           dropped: { k.resume(throwing: $0) }).post(to: loop)
        }
    }

    /// `coro`, or MemoryError when it could not be made.
    private static func made(_ coro: UnsafeMutablePointer<ca_coro>?) throws -> UnsafeMutablePointer<ca_coro> {
        guard let coro else { throw AsyncioError(typeName: "MemoryError") }
        return coro
    }

    // MARK: The callback path

    /// Waits for `f` to be done from outside its task's step: a done callback
    /// (registered on the loop thread, through call_soon_threadsafe from
    /// another thread) resumes the continuation with `read`'s outcome, which
    /// runs on the loop thread.
    nonisolated(nonsending) static func viaCallback<R: Sendable>(_ f: UnsafeMutablePointer<ca_future>,
                                         read: @escaping @Sendable (UnsafeMutablePointer<ca_future>) throws -> R)
        async throws -> R {
        let loop = f.pointee.fut_loop!
        let ref = FutureRef(f)
        return try await withUnsafeThrowingContinuation { (k: UnsafeContinuation<R, any Error>) in
            let waiter = CallbackWaiter(ref: ref, read: read, continuation: k)
            if mayTouch(loop) {
                waiter.arm()
            } else {
                // When the loop drops the request before it arms the waiter
                // (it closes first, or has no memory to schedule it), the
                // request's release resumes the task with why; when the loop
                // refuses it, this does (the waiter is the argument: no box
                // needed).
                let arg = Unmanaged.passRetained(waiter as CallbackWaiterBase).toOpaque()
                if let refusal = handOver(loop, armWaiter, arg, release: releaseArmRequest) {
                    waiter.abandon(ErrorBridge.take(refusal))
                }
            }
        }
    }
}

/// How ``Await/coroutine(loop:_:reader:_:)`` makes its outcome out of the
/// awaited coroutine's value: a value, where a `read` closure would capture
/// what the reading needs.
///
/// `read` runs where the loop's objects may be touched (the value may hold
/// core objects, whose reference counts are not atomic): from another
/// thread, the reader goes to the loop's thread with the done callback of
/// the coroutine's task, hence `Sendable`.
@usableFromInline
protocol CoroutineValueReader: Sendable {
    /// What comes back to the awaiting code.
    associatedtype Output: Sendable
    /// The outcome made from `value` (borrowed: the caller releases it).
    func read(_ value: ca_value) throws -> Output
}

/// Work handed to a loop's thread, which calls it (``Await/onLoop(_:_:_:)``).
///
/// Safety of `@unchecked Sendable`: `make` is called at most once, on the
/// loop's thread, while the thread that made this value waits for the
/// outcome (it is suspended in ``Await/onLoop(_:_:_:)``), so nothing it
/// captured is used by two threads at once.
struct LoopCall<T>: @unchecked Sendable {
    let make: () throws -> T
}

/// A future pointer that may cross threads.
///
/// Safety of `@unchecked Sendable`: the holder keeps a reference to the
/// future (the awaiting wrapper's), and the pointer is only dereferenced on
/// the loop thread, by the callbacks below.
struct FutureRef: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<ca_future>
    init(_ pointer: UnsafeMutablePointer<ca_future>) { self.pointer = pointer }
}

/// The non-generic part of a callback await, which the C callbacks see.
///
/// Safety of `@unchecked Sendable`: created on the awaiting thread, then
/// used only on the loop thread (arm, the done callback and its release),
/// or on the thread that drops the request when it never ran (its release
/// alone), or, when the loop refuses the request, on the awaiting thread
/// (the release, then the abandon, one after the other); `fired` makes
/// sure the continuation is resumed exactly once.
private class CallbackWaiterBase: @unchecked Sendable {
    let ref: FutureRef
    var fired = false
    /// Set by `armWaiter` (a request from another thread that ran).
    var armed = false

    init(ref: FutureRef) { self.ref = ref }

    /// On the loop thread: resumes at once when done, else adds the callback.
    final func arm() {
        let f = ref.pointer
        if f.pointee.fut_state != UInt8(CA_FUTURE_PENDING.rawValue) {
            finish()
            return
        }
        let arg = Unmanaged.passRetained(self).toOpaque()
        if let err = ca_future_add_done_callback(f, waiterDone, arg, waiterDropped, nil) {
            // The release ran already and ended the wait with why
            // (MemoryError: the loop is open).
            ca_decref(UnsafeMutableRawPointer(err))
        }
    }

    final func finish() {
        if fired { return }
        fired = true
        resume()
    }

    /// Ends the await with `error`, without the future's outcome: its
    /// callback was dropped without running, or never armed.
    final func abandon(_ error: any Error) {
        if fired { return }
        fired = true
        resume(throwing: error)
    }

    func resume() { fatalError("abstract") }
    func resume(throwing error: any Error) { fatalError("abstract") }
}

/// A callback await whose outcome is `read` from the done future.
///
/// Safety of `@unchecked Sendable`: as CallbackWaiterBase; `read` is
/// `@Sendable` and the continuation is resumed once (`fired`).
private final class CallbackWaiter<R: Sendable>: CallbackWaiterBase, @unchecked Sendable {
    let read: @Sendable (UnsafeMutablePointer<ca_future>) throws -> R
    let continuation: UnsafeContinuation<R, any Error>

    init(ref: FutureRef, read: @escaping @Sendable (UnsafeMutablePointer<ca_future>) throws -> R,
         continuation: UnsafeContinuation<R, any Error>) {
        self.read = read
        self.continuation = continuation
        super.init(ref: ref)
    }

    override func resume() { continuation.resume(with: Result { try read(ref.pointer) }) }
    override func resume(throwing error: any Error) { continuation.resume(throwing: error) }
}

/// Arms a waiter whose await was requested from another thread.
private func armWaiter(_ arg: UnsafeMutableRawPointer?) {
    Unmanaged<CallbackWaiterBase>.fromOpaque(arg!)._withUnsafeGuaranteedRef { waiter in
        waiter.armed = true
        waiter.arm()
    }
}

/// The request's release: after `armWaiter` ran, or in its place when the
/// loop dropped the request, which abandons the waiter with why; a refusal
/// is left to the handing thread (``Await/viaCallback(_:read:)``).
private func releaseArmRequest(_ arg: UnsafeMutableRawPointer?) {
    let waiter = Unmanaged<CallbackWaiterBase>.fromOpaque(arg!).takeRetainedValue()
    if !waiter.armed, !isRefusedHandOver(arg) {
        waiter.abandon(droppedCallError(waiter.ref.pointer.pointee.fut_loop))
    }
}

private func waiterDone(_ f: UnsafeMutablePointer<ca_future>?, _ arg: UnsafeMutableRawPointer?) {
    Unmanaged<CallbackWaiterBase>.fromOpaque(arg!).takeUnretainedValue().finish()
}

/// The done callback's release: after it ran, or in its place when the
/// loop dropped it unrun — on the thread closing the loop, or on the loop's
/// own when it had no memory to schedule it once the future was done
/// (``droppedCallError(_:)`` tells which), or at once when `arm` had no
/// memory to add it (MemoryError too: the loop is open).
private func waiterDropped(_ arg: UnsafeMutableRawPointer?) {
    let waiter = Unmanaged<CallbackWaiterBase>.fromOpaque(arg!).takeRetainedValue()
    if !waiter.fired { waiter.abandon(droppedCallError(waiter.ref.pointer.pointee.fut_loop)) }
}
