// asyncio.Queue, LifoQueue and PriorityQueue, typed: a Swift face for a C
// `ca_queue`.

import CAsyncio
import CAsyncioShim

/// A typed asyncio queue: `asyncio.Queue` (FIFO), `LifoQueue` or
/// `PriorityQueue`, with asyncio's semantics — `get()` waits while the
/// queue is empty, `put(_:)` while it is full (`maxsize > 0`), waiters are
/// served in FIFO order, and `shutdown()` (3.13) wakes them all.
///
/// ```swift
/// let q = AsyncQueue<Int>()
/// try q.putNowait(1)
/// let x = try await q.get()
/// ```
///
/// `Int`, `Double` (and the other inline types of ``Future``) are stored
/// without allocation. A queue binds to the loop of its first waiter.
///
/// Safety of `@unchecked Sendable`: the stored properties are immutable (the
/// pointer, and an encoder closure that captures nothing); the C queue is
/// confined to its loop's thread (the operations check it) and the wrapper
/// releases it there.
public final class AsyncQueue<Element: Sendable>: @unchecked Sendable, CustomStringConvertible {
    /// The C queue (this wrapper owns one reference).
    public let unsafeRaw: UnsafeMutablePointer<ca_queue>
    /// How a priority queue of non-inline `Comparable` items boxes them so
    /// the C heap can order them; `nil` otherwise.
    @usableFromInline let boxEncoder: ((Element) -> ca_value)?

    /// The order items come out in.
    public enum Kind: Sendable {
        /// First in, first out (`asyncio.Queue`).
        case fifo
        /// Last in, first out (`asyncio.LifoQueue`).
        case lifo
    }

    /// Creates a FIFO or LIFO queue holding at most `maxsize` items
    /// (`maxsize <= 0`: unbounded).
    public init(maxsize: Int = 0, kind: Kind = .fifo) {
        let q = kind == .fifo ? ca_queue_new(Int64(maxsize)) : ca_lifo_queue_new(Int64(maxsize))
        guard let q else { fatalError("out of memory creating a queue") }
        unsafeRaw = q
        boxEncoder = nil
    }

    private init(raw: UnsafeMutablePointer<ca_queue>, boxEncoder: ((Element) -> ca_value)?) {
        unsafeRaw = raw
        self.boxEncoder = boxEncoder
    }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRaw), loop: unsafeRaw.pointee.loop)
    }

    // MARK: Putting

    /// `put_nowait(item)`.
    /// - Throws: ``QueueFull``; ``QueueShutDown`` after ``shutdown(immediate:)``.
    @inlinable
    public func putNowait(_ item: Element) throws {
        checkConfined(loop: unsafeRaw.pointee.loop)
        try ErrorBridge.check(ca_queue_put_nowait(unsafeRaw, encode(item)))
    }

    /// `put(item)`: waits (FIFO among putters) while the queue is full.
    /// - Throws: ``QueueShutDown``; ``CancelledError``.
    nonisolated(nonsending) public func put(_ item: Element) async throws {
        if Await.ownCoroutine != nil, !ca_queue_full(unsafeRaw) {
            return try putNowait(item)
        }
        try await Await.coroutine(loop: unsafeRaw.pointee.loop, (self, item)) {
            ca_queue_put($0.0.unsafeRaw, $0.0.encode($0.1))
        }
    }

    // MARK: Getting

    /// `get_nowait()`.
    /// - Throws: ``QueueEmpty``; ``QueueShutDown`` when shut down and empty.
    public func getNowait() throws -> Element {
        checkConfined(loop: unsafeRaw.pointee.loop)
        var v = ca_value()
        try ErrorBridge.check(ca_queue_get_nowait(unsafeRaw, &v))
        return try ValueCodec<Element>.take(&v)
    }

    /// `get()`: the next item, waiting (FIFO among getters) while the queue
    /// is empty.
    /// - Throws: ``QueueShutDown`` once shut down and empty; ``CancelledError``.
    @inlinable @inline(__always)
    nonisolated(nonsending) public func get() async throws -> Element {
        guard let c = Await.ownCoroutine else { return try await getAsTask() }
        if unsafeRaw.pointee.len > 0 { return try getNowait() }
        // Inside the body's own task, get()'s loop runs here, as
        // CA_AWAIT_QUEUE_GET runs it in a C body: the same getter futures,
        // awaited in the same loop iterations, without a coroutine to
        // delegate to.
        try Await.checkDeferred(c)
        while true {
            var v = ca_value()
            var getter: UnsafeMutablePointer<ca_future>?
            try ErrorBridge.check(ca_queue_get_begin(unsafeRaw, &v, &getter))
            guard let g = getter else { return try ValueCodec<Element>.take(&v) }
            if let e = await Await.suspendRaw(c, on: g) {
                // The bare `except:` around `await getter`.
                let err = ca_queue_get_abort(unsafeRaw, g, e)
                ca_decref(UnsafeMutableRawPointer(g))
                throw ErrorBridge.take(err!)
            }
            ca_decref(UnsafeMutableRawPointer(g))
        }
    }

    // MARK: Joining

    /// `task_done()`: one item taken with `get()` is fully processed.
    /// - Throws: ``AsyncioError`` (`ValueError`) when called too many times.
    public func taskDone() throws {
        checkConfined(loop: unsafeRaw.pointee.loop)
        try ErrorBridge.check(ca_queue_task_done(unsafeRaw))
    }

    /// get() outside the body's own task: its coroutine as a task of the
    /// loop, the item decoded there. Out of line, so that get(), inlined
    /// into every caller, stays the body's fast path.
    @usableFromInline
    nonisolated(nonsending) func getAsTask() async throws -> Element {
        try await Await.coroutine(loop: unsafeRaw.pointee.loop, unsafeRaw, as: Element.self) { ca_queue_get($0) }
    }

    /// `join()`: waits until every item put so far was marked done.
    nonisolated(nonsending) public func join() async throws {
        try await Await.coroutine(loop: unsafeRaw.pointee.loop, unsafeRaw) { ca_queue_join($0) }
    }

    /// `shutdown(immediate)`: later puts throw ``QueueShutDown``, gets once
    /// the queue is empty; blocked putters and getters wake. `immediate`
    /// drops the queued items first.
    public func shutdown(immediate: Bool = false) throws {
        checkConfined(loop: unsafeRaw.pointee.loop)
        try ErrorBridge.check(ca_queue_shutdown(unsafeRaw, immediate))
    }

    // MARK: State

    /// `qsize()`.
    public var count: Int {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return ca_queue_qsize(unsafeRaw)
    }
    /// `empty()`.
    public var isEmpty: Bool {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return ca_queue_empty(unsafeRaw)
    }
    /// `full()`.
    public var isFull: Bool {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return ca_queue_full(unsafeRaw)
    }
    /// `maxsize` (<= 0: unbounded).
    public var maxsize: Int { Int(ca_queue_maxsize(unsafeRaw)) }
    /// `repr(queue)`: `<Queue at 0x... maxsize=0 _queue=[1, 2] tasks=2>`.
    public var description: String {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return reprString { ca_queue_repr(unsafeRaw, $0, $1) }
    }

    @inlinable @inline(__always)
    func encode(_ item: Element) -> ca_value {
        if let boxEncoder { return boxEncoder(item) }
        return ValueCodec<Element>.encode(item)
    }
}

extension AsyncQueue where Element: Comparable {
    /// `asyncio.PriorityQueue(maxsize)`: the smallest item comes out first;
    /// equal items in insertion order.
    public static func priority(maxsize: Int = 0) -> AsyncQueue<Element> {
        let inline = ValueCodec<Element>.isInline
        guard let q = ca_priority_queue_new(Int64(maxsize), inline ? nil : compareBoxes, nil) else {
            fatalError("out of memory creating a queue")
        }
        let encoder: ((Element) -> ca_value)? = inline ? nil : { item in
            ValueCodec<Element>.encodeBox(ComparableBox(item))
        }
        return AsyncQueue(raw: q, boxEncoder: encoder)
    }
}

// MARK: - Priority queues of boxed values

/// Boxes with an order, for priority queues of non-inline `Comparable`
/// elements: the C comparator calls back into Swift through the box.
final class ComparableBox<T: Comparable>: ValueBox<T> {
    override func compare(to other: AnyValueBox) -> Int32 {
        let b = unsafeDowncast(other, to: ComparableBox<T>.self)
        return value < b.value ? -1 : (b.value < value ? 1 : 0)
    }
}

/// The C comparator of boxed priority items.
private func compareBoxes(_ a: UnsafePointer<ca_value>?, _ b: UnsafePointer<ca_value>?,
                          _ arg: UnsafeMutableRawPointer?) -> Int32 {
    guard let a, let b, a.pointee.kind == CA_VALUE_OBJECT, b.pointee.kind == CA_VALUE_OBJECT else { return 0 }
    let ba = UnsafeMutableRawPointer(a.pointee.u.obj!).assumingMemoryBound(to: cas_box.self)
    let bb = UnsafeMutableRawPointer(b.pointee.u.obj!).assumingMemoryBound(to: cas_box.self)
    let x = Unmanaged<AnyValueBox>.fromOpaque(ba.pointee.object).takeUnretainedValue()
    let y = Unmanaged<AnyValueBox>.fromOpaque(bb.pointee.object).takeUnretainedValue()
    return x.compare(to: y)
}
