// asyncio's event loop for Swift: owns a C loop, runs Swift bodies as C
// tasks, and is the executor their code resumes on.

import CAsyncio
import CAsyncioShim

/// An asyncio event loop: a C `ca_loop` plus the Swift executors that keep
/// Swift code on its thread.
///
/// ``run(debug:virtualClock:function:file:line:_:)`` is `asyncio.run`:
///
/// ```swift
/// let answer = try EventLoop.run {
///     try await sleep(0.01)
///     return 42
/// }
/// ```
///
/// The loop runs on the thread that calls ``run(debug:virtualClock:function:file:line:_:)``,
/// ``runUntilComplete(_:)`` or ``runForever()``; its futures, tasks and
/// callbacks belong to that thread while it runs. Only
/// ``callSoonThreadsafe(_:)`` and ``stopThreadsafe()`` may be called from
/// other threads while it runs.
///
/// `EventLoop` is an actor whose executor is the loop (a
/// `SerialExecutor`), and a `TaskExecutor`: every task body has the loop as
/// its task-executor preference, so Swift code in it — nonisolated, or
/// isolated to this actor through an `isolated EventLoop` parameter —
/// resumes on the loop thread, inside its C task's step.
public actor EventLoop: SerialExecutor, TaskExecutor {
    /// The Swift side of the loop (executors, foreign-suspension registry).
    @usableFromInline nonisolated let core: LoopCore

    /// Creates a loop (`asyncio.new_event_loop()`).
    ///
    /// - Parameters:
    ///   - virtualClock: time jumps to the next deadline whenever nothing is
    ///     ready, so timers fire at once (deterministic tests).
    ///   - debug: asyncio's debug mode (slow-callback reports, thread checks).
    ///   - backend: the I/O backend (default: io_uring where the kernel
    ///     allows it, else epoll; `ASYNCIO_BACKEND=uring|epoll` overrides).
    /// - Throws: ``OSError`` when the I/O backend cannot be set up.
    public init(virtualClock: Bool = false, debug: Bool = false, backend: Backend = .automatic) throws {
        var config = ca_loop_config()
        config.virtual_clock = virtualClock
        config.debug = debug
        config.backend = backend.kind
        var out: OpaquePointer?
        try ErrorBridge.check(ca_loop_new(&config, &out))
        core = LoopCore(loop: out!)
        core.bind(self)
    }

    deinit {
        if !ca_loop_is_closed(core.loop) && !ca_loop_is_running(core.loop) {
            withLoopWindow(core) { _ = ca_loop_close(core.loop).map { ca_decref(UnsafeMutableRawPointer($0)) } }
        }
    }

    /// The loop an EventLoop runs on the calling thread
    /// (`asyncio.get_running_loop()`, `nil` instead of an error).
    public static var current: EventLoop? { LoopCore.current?.executor }

    /// The C loop (borrowed: valid while this object lives).
    public nonisolated var unsafeRaw: OpaquePointer { core.loop }

    // MARK: Executors

    /// The loop's serial executor: this actor's isolation.
    public nonisolated var unownedExecutor: UnownedSerialExecutor { core.serialUnowned }

    /// Runs `job` on the loop: the task-executor role. A job of a task body
    /// that is being resumed runs inside the body's C step; any other job
    /// runs as a callback of the loop's next iteration.
    public nonisolated func enqueue(_ job: consuming ExecutorJob) {
        core.enqueue(UnownedJob(job), serialRole: false)
    }

    /// The loop as a serial executor (a separate object, so the runtime's
    /// two enqueue roles stay apart).
    public nonisolated func asUnownedSerialExecutor() -> UnownedSerialExecutor { core.serialUnowned }

    /// The loop as a task executor: the preference of every task body, so
    /// their code resumes on the loop thread.
    public nonisolated func asUnownedTaskExecutor() -> UnownedTaskExecutor { core.taskUnowned }

    /// Traps unless called on the thread running this loop.
    public nonisolated func checkIsolated() { core.serial.checkIsolated() }

    // MARK: asyncio.run

    /// `asyncio.run(main())`: creates a loop, runs `main` as its main task
    /// until it completes, cancels the tasks still pending, closes the loop
    /// and returns `main`'s result (or throws its error).
    ///
    /// The calling thread runs the loop until then: call it from a thread of
    /// your own (the main thread, a dedicated one), not from code running on
    /// Swift's cooperative thread pool, whose threads it would hold.
    ///
    /// - Parameters:
    ///   - debug: asyncio's debug mode.
    ///   - virtualClock: see ``init(virtualClock:debug:backend:)``.
    ///   - function: the name the coroutine gets in reprs and the inspector
    ///     (default: the calling function).
    ///   - file: the file reprs show for it (default: the caller's).
    ///   - line: its first line (default: the caller's).
    ///   - main: the body of the main task.
    /// - Throws: what `main` throws; ``AsyncioError`` (`RuntimeError`) when
    ///   a loop already runs on this thread.
    public static func run<T: Sendable>(debug: Bool = false, virtualClock: Bool = false,
                                        function: StaticString = #function, file: StaticString = #fileID,
                                        line: UInt = #line,
                                        _ main: @escaping TaskBody<T>) throws -> T {
        if ca_get_running_loop() != nil {
            throw AsyncioError(typeName: "RuntimeError",
                               message: "asyncio.run() cannot be called from a running event loop")
        }
        let loop = try EventLoop(virtualClock: virtualClock, debug: debug)
        defer {
            loop.cancelAllTasks()
            try? loop.close()
        }
        let task = try loop.createTask(function: function, file: file, line: line, main)
        return try loop.runUntilComplete(task)
    }

    /// `_cancel_all_tasks`: cancels what is still pending and runs the loop
    /// until those tasks are done; errors other than cancellation go to the
    /// loop's exception handler.
    nonisolated func cancelAllTasks() {
        if ca_loop_is_closed(core.loop) { return }
        var count = 0
        ca_decref(ca_all_tasks(core.loop, nil, 0, &count).map { UnsafeMutableRawPointer($0) })
        if count == 0 { return }
        var tasks = [UnsafeMutablePointer<ca_task>?](repeating: nil, count: count)
        ca_decref(ca_all_tasks(core.loop, &tasks, count, &count).map { UnsafeMutableRawPointer($0) })
        let pending = tasks.prefix(count).compactMap { $0 }
        for t in pending {
            ca_incref(UnsafeMutableRawPointer(t))
            _ = ca_task_cancel(t, nil)
        }
        defer { for t in pending { ca_decref(UnsafeMutableRawPointer(t)) } }
        var gathering: UnsafeMutablePointer<ca_future>?
        let aws = pending.map { UnsafeMutableRawPointer($0) as UnsafeMutableRawPointer? }
        let err = aws.withUnsafeBufferPointer { ca_gather(core.loop, $0.baseAddress, $0.count, true, &gathering) }
        if let err {
            ca_decref(UnsafeMutableRawPointer(err))
            return
        }
        let g = Future<Void>(unsafeTakingOwnershipOf: gathering!)
        _ = try? withLoopWindow(core) { try ErrorBridge.check(ca_loop_run_until_complete(core.loop, g.unsafeRaw)) }
        for t in pending where !ca_future_cancelled(UnsafeMutableRawPointer(t).assumingMemoryBound(to: ca_future.self)) {
            var e: UnsafeMutablePointer<ca_error>?
            let f = UnsafeMutableRawPointer(t).assumingMemoryBound(to: ca_future.self)
            ca_decref(ca_future_exception(f, &e).map { UnsafeMutableRawPointer($0) })
            guard let e else { continue }
            var context = ca_exception_context()
            "unhandled exception during asyncio.run() shutdown".withCString { msg in
                context.message = msg
                context.exception = e
                context.task = t
                ca_loop_call_exception_handler(core.loop, &context)
            }
            ca_decref(UnsafeMutableRawPointer(e))
        }
    }

    // MARK: Running

    /// `run_until_complete(future)`: runs the loop until `future` is done
    /// and returns its result, or throws its error.
    ///
    /// - Throws: the future's error; ``AsyncioError`` (`RuntimeError`) when
    ///   the loop is closed, already running, or stopped before the future
    ///   completed.
    @discardableResult
    public nonisolated func runUntilComplete<T>(_ future: Future<T>) throws -> T {
        try withLoopWindow(core) { try ErrorBridge.check(ca_loop_run_until_complete(core.loop, future.unsafeRaw)) }
        return try future.result()
    }

    /// Runs `body` as a task of this loop until it completes
    /// (`run_until_complete(create_task(body()))`).
    ///
    /// - Parameters:
    ///   - function: the name the coroutine gets in reprs and the inspector
    ///     (default: the calling function).
    ///   - file: the file reprs show for it (default: the caller's).
    ///   - line: its first line (default: the caller's).
    ///   - body: the coroutine.
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws; the errors of ``runUntilComplete(_:)``.
    @discardableResult
    public nonisolated func runUntilComplete<T: Sendable>(function: StaticString = #function,
                                                         file: StaticString = #fileID, line: UInt = #line,
                                                         _ body: @escaping TaskBody<T>) throws -> T {
        try runUntilComplete(createTask(function: function, file: file, line: line, body))
    }

    /// `run_forever()`: runs iterations until ``stop()``.
    public nonisolated func runForever() throws {
        try withLoopWindow(core) { try ErrorBridge.check(ca_loop_run_forever(core.loop)) }
    }

    /// `stop()`: the current iteration completes, then the run returns.
    public nonisolated func stop() {
        checkConfined(loop: core.loop)
        ca_loop_stop(core.loop)
    }

    /// `stop()` from any thread.
    public nonisolated func stopThreadsafe() throws {
        try ErrorBridge.check(ca_loop_stop_threadsafe(core.loop))
    }

    /// `close()`: drops pending callbacks and timers and releases the I/O
    /// backend; tasks still pending are destroyed (their bodies unwind with
    /// `GeneratorExit` thrown at their await). Idempotent.
    ///
    /// A body suspended outside the loop (`Task.sleep`, another actor) is
    /// cancelled (Swift cancellation) and unwinds when it comes back: its
    /// loop awaits throw `GeneratorExit`. When it comes back before `close()`
    /// (while the loop stops, say), `close()` runs it then; one that comes
    /// back later has no executor left to run on and stays suspended, so
    /// let such tasks finish before closing the loop.
    ///
    /// Unlike CPython's, it waits for a default-executor job already running
    /// on a worker thread (``runInExecutor(_:)``, file operations on the epoll
    /// backend), whose buffers are in use there: a job that never returns
    /// keeps `close()` from returning. Jobs still queued are dropped.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) while the loop runs.
    public nonisolated func close() throws {
        try withLoopWindow(core) { try ErrorBridge.check(ca_loop_close(core.loop)) }
    }

    /// `is_running()`.
    public nonisolated var isRunning: Bool { ca_loop_is_running(core.loop) }
    /// `is_closed()`.
    public nonisolated var isClosed: Bool { ca_loop_is_closed(core.loop) }

    /// asyncio's debug mode.
    public nonisolated var isDebug: Bool {
        checkConfined(loop: core.loop)
        return ca_loop_get_debug(core.loop)
    }

    /// Turns asyncio's debug mode on or off.
    public nonisolated func setDebug(_ enabled: Bool) {
        checkConfined(loop: core.loop)
        ca_loop_set_debug(core.loop, enabled)
    }

    // MARK: Time

    /// `time()`: the loop's clock in seconds (virtual time in
    /// virtual-clock mode).
    public nonisolated var time: Double { Double(ca_loop_time(core.loop)) / 1e9 }

    /// The loop's clock in nanoseconds, the core's own unit.
    public nonisolated var timeNanoseconds: Int64 { ca_loop_time(core.loop) }

    // MARK: Callbacks

    /// `call_soon(callback)`: runs `callback` on the loop at its next
    /// iteration, after what is already scheduled.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) when the loop is closed.
    @discardableResult
    public nonisolated func callSoon(_ callback: consuming @escaping @Sendable () -> Void) throws -> Handle {
        checkConfined(loop: core.loop)
        let loop = core.loop
        return try Handle.schedule(on: core, consume callback) { fn, arg, release, out in
            ca_loop_call_soon(loop, fn, arg, release, nil, out)
        }
    }

    /// `call_later(delay, callback)`: runs `callback` once `delay` seconds
    /// have passed.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) when the loop is closed.
    @discardableResult
    public nonisolated func callLater(_ delay: Double, _ callback: consuming @escaping @Sendable () -> Void) throws -> Handle {
        checkConfined(loop: core.loop)
        let loop = core.loop
        return try Handle.schedule(on: core, consume callback) { fn, arg, release, out in
            ca_loop_call_later(loop, nanoseconds(delay), fn, arg, release, nil, out)
        }
    }

    /// `call_at(when, callback)`: runs `callback` once ``time`` reaches
    /// `when` (seconds on the loop's clock).
    /// - Throws: ``AsyncioError`` (`RuntimeError`) when the loop is closed.
    @discardableResult
    public nonisolated func callAt(_ when: Double, _ callback: consuming @escaping @Sendable () -> Void) throws -> Handle {
        checkConfined(loop: core.loop)
        let loop = core.loop
        return try Handle.schedule(on: core, consume callback) { fn, arg, release, out in
            ca_loop_call_at(loop, nanoseconds(when), fn, arg, release, nil, out)
        }
    }

    /// `call_soon_threadsafe(callback)`: safe from any thread; wakes the
    /// loop. The callback runs on the loop thread.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) when the loop is closed.
    public nonisolated func callSoonThreadsafe(_ callback: @escaping @Sendable () -> Void) throws {
        let box = CallbackBox.make(callback)
        try ErrorBridge.check(ca_loop_call_soon_threadsafe(core.loop, runCallbackBox, box, releaseCallbackBox))
    }

    // MARK: Futures and tasks

    /// `create_future()`: a pending future of this loop.
    @inlinable
    public final nonisolated func createFuture<T: Sendable>(of type: T.Type = T.self) -> Future<T> {
        Future(loop: self)
    }

    /// `create_task(body())`: a task running `body` on this loop.
    ///
    /// - Parameters:
    ///   - name: the task's name (default `"Task-N"`).
    ///   - eagerStart: `true` runs the body's first step now, inside this
    ///     call, as `eager_start=True`; `nil` lets the loop's task factory
    ///     decide.
    ///   - function: the name the coroutine gets in reprs and the inspector
    ///     (default: the calling function).
    ///   - file: the file reprs show for it (default: the caller's).
    ///   - line: its first line (default: the caller's).
    ///   - body: the coroutine.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) when the loop is closed.
    @discardableResult @inlinable
    public nonisolated func createTask<T: Sendable>(name: String? = nil, eagerStart: Bool? = nil,
                                                   function: StaticString = #function,
                                                   file: StaticString = #fileID, line: UInt = #line,
                                                   _ body: @escaping TaskBody<T>) throws
        -> LoopTask<T> {
        checkConfined(loop: core.loop)
        return try LoopTask.create(core: core, name: name, eagerStart: eagerStart, function: function,
                                   file: file, line: line, body: body)
    }

    /// How many times a task body of this loop suspended outside the loop
    /// (see ``LoopTask``'s "Suspending outside the loop"). Loop thread.
    public nonisolated var foreignSuspensionCount: Int {
        checkConfined(loop: core.loop)
        return core.foreignSuspensions
    }
}

// MARK: - Running windows

/// Runs `body` with the thread's windows pointing at `core` (what the
/// executors and the await glue read), restoring them afterwards.
@discardableResult
func withLoopWindow<R>(_ core: LoopCore, _ body: () throws -> R) rethrows -> R {
    let tls = cas_tls_get()
    let previousCore = tls.pointee.core
    let previousLoop = tls.pointee.loop
    tls.pointee.core = core.opaque
    tls.pointee.loop = core.loop
    defer {
        tls.pointee.core = previousCore
        tls.pointee.loop = previousLoop
    }
    return try body()
}

/// Seconds as loop nanoseconds, saturating.
func nanoseconds(_ seconds: Double) -> Int64 {
    let ns = (seconds * 1e9).rounded()
    if ns >= 9.2e18 { return Int64.max }
    if ns <= -9.2e18 { return Int64.min }
    return Int64(ns)
}

// MARK: - Callback boxes

/// A Swift callback retained by a loop handle until the handle is done.
final class CallbackBox {
    let call: @Sendable () -> Void
    init(_ call: @escaping @Sendable () -> Void) { self.call = call }

    static func make(_ call: @escaping @Sendable () -> Void) -> UnsafeMutableRawPointer {
        Unmanaged.passRetained(CallbackBox(call)).toOpaque()
    }
}

func runCallbackBox(_ arg: UnsafeMutableRawPointer?) {
    Unmanaged<CallbackBox>.fromOpaque(arg!)._withUnsafeGuaranteedRef { $0.call() }
}

func releaseCallbackBox(_ arg: UnsafeMutableRawPointer?) {
    Unmanaged<CallbackBox>.fromOpaque(arg!).release()
}
