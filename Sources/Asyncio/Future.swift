// asyncio.Future with a typed result: a Swift face for a C `ca_future`.

import CAsyncio
import CAsyncioShim

/// A typed `asyncio.Future`: a result of type `Value` (or an error) that
/// becomes available later, on one event loop.
///
/// `Future` wraps a C `ca_future`; a ``LoopTask`` is a `Future` too, as a
/// Task is a Future in asyncio. Awaiting ``value`` suspends until the
/// future is done and returns its result or throws its error
/// (``CancelledError`` when it was cancelled).
///
/// Results of type `Int`, `Int64`, `Int32`, `Bool`, `Double` and `Void` are
/// stored inline in the C future; other types are boxed.
///
/// A future belongs to its loop's thread: call its synchronous methods from
/// code running on the loop (task bodies, loop callbacks) or while the loop
/// is not running. `value` may be awaited from anywhere.
///
/// Safety of `@unchecked Sendable`: the wrapper's only stored property is
/// a pointer that does not change while anyone but the loop holds the
/// wrapper (the loop re-points only a wrapper it alone holds, on its own
/// thread: see ``DoneCallbackSlot``). The C future it points to is confined to the loop
/// thread: the mutating methods check that they run there (or that the
/// loop is not running), awaiting from another thread goes through
/// `call_soon_threadsafe`, and `deinit` releases the C reference on the loop
/// thread (see `releaseOnLoop`).
public class Future<Value: Sendable>: @unchecked Sendable, Hashable, CustomStringConvertible {
    /// The C future (this wrapper owns one reference).
    ///
    /// Constant for the wrapper's life as the caller sees it; only a wrapper
    /// that a done callback received and that nobody kept afterwards is
    /// pointed at another future, when the loop reuses it for a later
    /// callback (see ``DoneCallbackSlot``).
    public internal(set) final var unsafeRaw: UnsafeMutablePointer<ca_future>

    /// Wraps a C future, taking over the caller's reference.
    public init(unsafeTakingOwnershipOf raw: UnsafeMutablePointer<ca_future>) {
        unsafeRaw = raw
    }

    /// Wraps a C future, taking a new reference to it (call on its loop's
    /// thread, or while its loop is not running).
    public convenience init(unsafeRetaining raw: UnsafeMutablePointer<ca_future>) {
        ca_incref(UnsafeMutableRawPointer(raw))
        self.init(unsafeTakingOwnershipOf: raw)
    }

    /// Creates a pending future on `loop` (`loop.create_future()`).
    @inlinable
    public convenience init(loop: EventLoop) {
        guard let f = ca_future_new(loop.unsafeRaw) else { fatalError("out of memory creating a future") }
        self.init(unsafeTakingOwnershipOf: f)
    }

    deinit {
        // A wrapper kept for reuse holds no future.
        if unsafeRaw == spareFuturePlaceholder { return }
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRaw), loop: unsafeRaw.pointee.fut_loop)
    }

    // MARK: Awaiting

    /// The result, once the future is done: suspends until then.
    ///
    /// Throws the future's error, or ``CancelledError`` if it was cancelled.
    /// Inside a task body this is `await future` in asyncio: the task waits
    /// for the future through its C step (and cancelling the task cancels
    /// the future).
    nonisolated(nonsending) public final var value: Value {
        get async throws {
            try await Await.result(of: unsafeRaw, as: Value.self)
        }
    }

    // MARK: State

    /// The three states of a future.
    public enum State: String, Sendable {
        /// Not done yet.
        case pending = "PENDING"
        /// Cancelled.
        case cancelled = "CANCELLED"
        /// Done with a result or an error.
        case finished = "FINISHED"
    }

    /// The current state.
    public final var state: State {
        checkLoopThread()
        switch Int32(unsafeRaw.pointee.fut_state) {
        case Int32(CA_FUTURE_PENDING.rawValue): return .pending
        case Int32(CA_FUTURE_CANCELLED.rawValue): return .cancelled
        default: return .finished
        }
    }

    /// `done()`: finished with a result or an error, or cancelled.
    public final var isDone: Bool {
        checkLoopThread()
        return ca_future_done(unsafeRaw)
    }

    /// `cancelled()`.
    public final var isCancelled: Bool {
        checkLoopThread()
        return ca_future_cancelled(unsafeRaw)
    }

    /// `result()`: the result of a done future, without waiting.
    ///
    /// Throws the stored error, ``CancelledError`` when cancelled, or
    /// ``InvalidStateError`` ("Result is not set.") while pending.
    @inlinable
    public final func result() throws -> Value {
        checkLoopThread()
        return try readResult()
    }

    /// `exception()`: the error of a done future (`nil` when it has a
    /// result). Throws ``CancelledError`` when cancelled, or
    /// ``InvalidStateError`` while pending.
    public final func exception() throws -> (any Error)? {
        checkLoopThread()
        var e: UnsafeMutablePointer<ca_error>?
        try ErrorBridge.check(ca_future_exception(unsafeRaw, &e))
        return e.map { ErrorBridge.take($0) }
    }

    // MARK: Completing

    /// `set_result(value)`: marks the future done and schedules its
    /// callbacks. Throws ``InvalidStateError`` when it is already done.
    @inlinable
    public final func setResult(_ value: Value) throws {
        checkLoopThread()
        try ErrorBridge.check(ca_future_set_result(unsafeRaw, ValueCodec<Value>.encode(value)))
    }

    /// `set_exception(error)`: marks the future done with `error`, which
    /// comes back out of ``value`` as the same Swift error. Throws
    /// ``InvalidStateError`` when it is already done.
    public final func setException(_ error: any Error) throws {
        checkLoopThread()
        let e = ErrorBridge.cError(error)
        defer { ca_decref(UnsafeMutableRawPointer(e)) }
        try ErrorBridge.check(ca_future_set_exception(unsafeRaw, e))
    }

    /// `cancel(msg)`: cancels a pending future (for a task: requests its
    /// cancellation). Returns `false` when it was already done.
    @discardableResult
    public final func cancel(message: String? = nil) -> Bool {
        checkLoopThread()
        return ca_future_cancel(unsafeRaw, message)
    }

    /// `add_done_callback(fn)`: calls `callback` with this future on the
    /// loop (through `call_soon`) once it is done; at once (next iteration)
    /// if it is done already.
    @inlinable
    public final func addDoneCallback(_ callback: consuming @escaping @Sendable (Future<Value>) -> Void) {
        checkLoopThread()
        let slot = DoneCallbackSlot.make(consume callback)
        if let err = ca_future_add_done_callback(unsafeRaw, runDoneCallbackSlot, slot, releaseDoneCallbackSlot, nil) {
            ca_decref(UnsafeMutableRawPointer(err))
        }
    }

    // MARK: Identity

    /// Two wrappers are equal when they wrap the same C future.
    public static func == (a: Future, b: Future) -> Bool { a.unsafeRaw == b.unsafeRaw }

    /// Hashes the C future's address.
    public func hash(into hasher: inout Hasher) { hasher.combine(unsafeRaw) }

    /// `repr(future)`: `<Future pending>`, `<Future finished result=4>`, ...
    public var description: String {
        checkLoopThread()
        return reprString { ca_future_repr(unsafeRaw, $0, $1) }
    }

    // MARK: Internals

    @usableFromInline @inline(__always)
    final func readResult() throws -> Value {
        try Future.readResult(unsafeRaw)
    }

    @usableFromInline @inline(__always)
    static func readResult(_ f: UnsafeMutablePointer<ca_future>) throws -> Value {
        var v = ca_value()
        if let e = ca_future_result(f, &v) { throw ErrorBridge.take(e) }
        return try ValueCodec<Value>.decode(&v)
    }

    /// Points a wrapper the loop reuses at another future (see
    /// ``DoneCallbackSlot``); the reference moves with it.
    @usableFromInline @inline(__always)
    final func repoint(to f: UnsafeMutablePointer<ca_future>) {
        unsafeRaw = f
    }

    @usableFromInline @inline(__always)
    final func checkLoopThread() {
        checkConfined(loop: unsafeRaw.pointee.fut_loop)
    }
}

// MARK: - Done callbacks

/// A Swift done callback with an identity, retained by the C future until
/// it is dropped. `call` gets the C future and knows its result type: it
/// calls the caller's closure with a new wrapper of the future (the caller's
/// wrapper is not kept, so a pending future that nobody references does not
/// keep itself alive through its callback).
final class DoneCallbackBox: Sendable {
    let call: @Sendable (UnsafeMutablePointer<ca_future>) -> Void
    init(_ call: @escaping @Sendable (UnsafeMutablePointer<ca_future>) -> Void) { self.call = call }
}

private func doneCallbackTrampoline(_ f: UnsafeMutablePointer<ca_future>?, _ arg: UnsafeMutableRawPointer?) {
    Unmanaged<DoneCallbackBox>.fromOpaque(arg!).takeUnretainedValue().call(f!)
}

private func releaseDoneCallback(_ arg: UnsafeMutableRawPointer?) {
    Unmanaged<DoneCallbackBox>.fromOpaque(arg!).release()
}

/// A done callback registered as a closure, kept in a callback slot of the
/// shim (`cas_slot_alloc`) rather than in a box object, so registering one
/// allocates nothing in steady state. The slot holds two closures: the
/// caller's (first two words, wrapped in a ``Callback``) and an invoker that
/// knows its `Value` (last two) and calls it, or destroys it when given no
/// future. Where `addDoneCallback` is specialized for a concrete `Value`, the
/// invoker captures nothing, so it is a bare function pointer.
///
/// The callback receives a wrapper of the future of its own, not the
/// caller's (a pending future that nobody references must not keep itself
/// alive through its callback). When the callback did not keep that wrapper
/// (nobody holds it afterwards: one strong reference, no weak or unowned
/// one), the loop keeps it and points it at the next callback's future, so a
/// done callback allocates nothing in steady state either.
@usableFromInline
enum DoneCallbackSlot {
    /// Calls the slot's callback with the future (at most once), or destroys
    /// what the slot holds when the future is `nil`.
    @usableFromInline
    typealias Invoker = (UnsafeMutableRawPointer, UnsafeMutablePointer<ca_future>?) -> Void

    /// The caller's closure as the slot holds it: a struct keeps it in its
    /// own representation, where a bare function value stored through a
    /// generic pointer would be wrapped in a reabstraction thunk (an
    /// allocation).
    @usableFromInline
    struct Callback<Value: Sendable> {
        @usableFromInline let call: @Sendable (Future<Value>) -> Void
        @inlinable init(call: consuming @escaping @Sendable (Future<Value>) -> Void) { self.call = call }
        /// What a slot holds once its callback ran: a closure without
        /// context, which costs nothing to store or destroy.
        @inlinable static var ran: Callback { Callback(call: { _ in }) }
    }

    /// A slot holding `callback`, owned by the caller until `release`.
    @inlinable
    static func make<Value: Sendable>(_ callback: consuming @escaping @Sendable (Future<Value>) -> Void)
        -> UnsafeMutableRawPointer {
        assert(MemoryLayout<Callback<Value>>.size <= invokerOffset)
        assert(invokerOffset + MemoryLayout<Invoker>.size <= Int(CAS_SLOT_SIZE))
        guard let slot = cas_slot_alloc() else { fatalError("out of memory registering a done callback") }
        slot.bindMemory(to: Callback<Value>.self, capacity: 1).initialize(to: Callback(call: consume callback))
        let invoker: Invoker = { slot, f in
            let stored = slot.assumingMemoryBound(to: Callback<Value>.self)
            if let f {
                // Moved out, not called in place: calling through the slot
                // would retain and release the closure's context around the
                // call (two atomic operations).
                let call = stored.move().call
                stored.initialize(to: .ran)
                let wrapper = takeWrapper(of: f, as: Value.self)
                call(wrapper)
                keepWrapper(wrapper)
            } else {
                stored.deinitialize(count: 1)
            }
        }
        (slot + invokerOffset).bindMemory(to: Invoker.self, capacity: 1).initialize(to: invoker)
        return slot
    }

    /// Where the invoker lies: after the callback.
    @inlinable
    static var invokerOffset: Int { 2 * MemoryLayout<UnsafeRawPointer>.stride }

    /// Runs the slot's callback with `f`.
    @usableFromInline
    static func run(_ f: UnsafeMutablePointer<ca_future>, _ slot: UnsafeMutableRawPointer) {
        (slot + invokerOffset).assumingMemoryBound(to: Invoker.self).pointee(slot, f)
    }

    /// Destroys both closures and returns the slot.
    @usableFromInline
    static func release(_ slot: UnsafeMutableRawPointer) {
        let invoker = (slot + invokerOffset).assumingMemoryBound(to: Invoker.self)
        invoker.pointee(slot, nil)
        invoker.deinitialize(count: 1)
        cas_slot_free(slot)
    }

    /// A new reference to `f` in a wrapper of its own: the one the loop
    /// kept from an earlier callback when it is a `Future<Value>`, else a
    /// new one.
    @inlinable
    static func takeWrapper<Value: Sendable>(of f: UnsafeMutablePointer<ca_future>, as: Value.Type) -> Future<Value> {
        ca_incref(UnsafeMutableRawPointer(f))
        if let spare = LoopCore.takeSpareFuture(spareKey(Value.self)) {
            let wrapper = Unmanaged<Future<Value>>.fromOpaque(spare).takeRetainedValue()
            wrapper.repoint(to: f)
            return wrapper
        }
        return Future(unsafeTakingOwnershipOf: f)
    }

    /// After the callback (on the loop's thread): keeps `wrapper` for the
    /// next callback when nobody else holds it and this thread runs an
    /// EventLoop with no wrapper kept yet; otherwise it is released as usual.
    @inlinable
    static func keepWrapper<Value: Sendable>(_ wrapper: consuming Future<Value>) {
        var w = wrapper
        guard isKnownUniquelyReferenced(&w),
              cas_swift_no_weak_or_unowned(Unmanaged.passUnretained(w).toOpaque()) else { return }
        // Done callbacks run on the loop's thread: the future's reference is
        // dropped here. A wrapper the loop has no room for (it keeps one) is
        // released by keepSpareFuture, holding no future by then.
        let raw = w.unsafeRaw
        w.repoint(to: spareFuturePlaceholder)
        ca_decref(UnsafeMutableRawPointer(raw))
        LoopCore.keepSpareFuture(Unmanaged.passRetained(consume w).toOpaque(), spareKey(Value.self))
    }
}

/// The key a kept wrapper of `Future<Value>` is filed under: `Value`'s
/// metadata, which (unlike `Future<Value>`'s) needs no generic
/// instantiation to find. Only exact `Future<Value>` wrappers are kept, so
/// the value type identifies the class.
@inlinable @inline(__always)
func spareKey<Value>(_: Value.Type) -> ObjectIdentifier { ObjectIdentifier(Value.self as Any.Type) }

/// What a wrapper kept for reuse points at instead of a future (never
/// dereferenced: `deinit` checks for it).
@inlinable
var spareFuturePlaceholder: UnsafeMutablePointer<ca_future> { UnsafeMutablePointer(bitPattern: 0x10)! }

@usableFromInline
func runDoneCallbackSlot(_ f: UnsafeMutablePointer<ca_future>?, _ arg: UnsafeMutableRawPointer?) {
    DoneCallbackSlot.run(f!, arg!)
}

@usableFromInline
func releaseDoneCallbackSlot(_ arg: UnsafeMutableRawPointer?) {
    DoneCallbackSlot.release(arg!)
}

// MARK: - Loop confinement

/// Traps unless the caller runs on the thread running `loop`, or `loop` is
/// not running (then nothing else can touch it). The check reads the
/// loop's `running` flag, written only by the thread that runs it.
@inlinable @inline(__always)
func checkConfined(loop: OpaquePointer?) {
    guard let loop else { return }
    if cas_tls_get().pointee.loop == loop { return }
    precondition(!ca_loop_is_running(loop) || ca_get_running_loop() == loop,
                 "asyncio object used off its event loop's thread; use callSoonThreadsafe")
}

/// Drops a reference to a core object owned by `loop` where that is safe
/// (core reference counts are not atomic): see ``runOnLoopThread(_:_:_:)``.
@usableFromInline
func releaseOnLoop(_ object: UnsafeMutableRawPointer, loop: OpaquePointer?) {
    guard let loop, cas_tls_get().pointee.loop != loop, ca_loop_is_running(loop) else { return ca_decref(object) }
    runOnLoopThread(loop, { ca_decref($0) }, object)
}

/// A repr-style C string function's output as a Swift string.
func reprString(_ fill: (UnsafeMutablePointer<CChar>, Int) -> Int) -> String {
    var buf = [CChar](repeating: 0, count: 512)
    let needed = buf.withUnsafeMutableBufferPointer { fill($0.baseAddress!, $0.count) }
    if needed >= buf.count {
        buf = [CChar](repeating: 0, count: needed + 1)
        _ = buf.withUnsafeMutableBufferPointer { fill($0.baseAddress!, $0.count) }
    }
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

// MARK: - Done callbacks with an identity

/// A done callback with an identity, like a Python function object:
/// registering it twice registers it twice, and
/// ``Future/removeDoneCallback(_:)`` removes every registration of it
/// (`remove_done_callback(fn)`). Closures have no identity, so a callback
/// that may be removed is registered through one of these.
public final class DoneCallback<Value: Sendable>: Sendable {
    let box: DoneCallbackBox

    /// Wraps `callback`, called with the future once it is done.
    public init(_ callback: @escaping @Sendable (Future<Value>) -> Void) {
        box = DoneCallbackBox { f in callback(Future(unsafeRetaining: f)) }
    }
}

extension Future {
    /// `add_done_callback(fn)` for a callback with an identity; as
    /// ``addDoneCallback(_:)-(Future<Value>)->Void``.
    public final func addDoneCallback(_ callback: DoneCallback<Value>) {
        checkLoopThread()
        let arg = Unmanaged<DoneCallbackBox>.passRetained(callback.box).toOpaque()
        if let err = ca_future_add_done_callback(unsafeRaw, doneCallbackTrampoline, arg, releaseDoneCallback, nil) {
            ca_decref(UnsafeMutableRawPointer(err))
        }
    }

    /// `remove_done_callback(fn)`: removes every registration of `callback`
    /// that has not run yet; returns how many were removed.
    @discardableResult
    public final func removeDoneCallback(_ callback: DoneCallback<Value>) -> Int {
        checkLoopThread()
        let arg = Unmanaged<DoneCallbackBox>.passUnretained(callback.box).toOpaque()
        return ca_future_remove_done_callback(unsafeRaw, doneCallbackTrampoline, arg)
    }
}
