// asyncio.Task for Swift `async` bodies: a C `ca_task` whose coroutine is
// the Swift body.

import CAsyncio
import CAsyncioShim

/// A task of an event loop running a Swift `async` body: `asyncio.Task`.
///
/// The task is a C task of the core, and the body is its coroutine: each
/// step of the C task runs the body until it awaits a loop future (which the
/// step waits for), gives up an iteration (``sleep(_:)`` with 0), returns or
/// throws. So cancellation, ``cancelling``, ``uncancel()``, the task's name,
/// the current task and what the task waits for are the C core's, as for a
/// task of a C coroutine; debuggers and the inspector see both alike.
///
/// Create one with ``EventLoop/createTask(name:eagerStart:function:file:line:_:)``
/// or ``createTask(name:eagerStart:function:file:line:_:)``; await its
/// ``Future/value`` for the body's result. A `LoopTask` is a ``Future``.
///
/// The name `LoopTask` keeps Swift's own `Task` visible.
///
/// ### Suspending outside the loop
///
/// A body should wait on loop awaitables: futures, tasks, ``sleep(_:)``,
/// the combinators and the synchronization primitives of this module.
/// Anything else it awaits — `Task.sleep`, a call into an actor with its own
/// executor, the result of an `async let` child, a continuation resumed by
/// other code — is a *foreign suspension*. It is allowed: while it lasts
/// the C task waits on a private future (shown as `SwiftSuspension` in
/// reprs), and when the Swift task is ready to go on, its job is handed back
/// to the C task, whose next step runs it, so the body still only runs
/// inside its own steps. Two things differ from a loop await: it costs
/// more (a few extra loop callbacks), and cancellation cannot interrupt it
/// the asyncio way. Cancelling the task then also cancels the Swift task
/// (`Task.isCancelled` becomes and stays true, so `Task.sleep` throws
/// `CancellationError`), and the ``CancelledError`` is raised at the body's
/// next loop await. ``EventLoop/foreignSuspensionCount`` counts them.
///
/// Safety of `@unchecked Sendable`: as ``Future``.
public final class LoopTask<Value: Sendable>: Future<Value>, @unchecked Sendable {
    /// The C task (the wrapper owns one reference).
    public var unsafeRawTask: UnsafeMutablePointer<ca_task> {
        UnsafeMutableRawPointer(unsafeRaw).assumingMemoryBound(to: ca_task.self)
    }

    /// Wraps a C task, taking over the caller's reference.
    public init(unsafeTakingOwnershipOf task: UnsafeMutablePointer<ca_task>) {
        super.init(unsafeTakingOwnershipOf: UnsafeMutableRawPointer(task).assumingMemoryBound(to: ca_future.self))
    }

    /// Wraps a C task, taking a new reference.
    public convenience init(unsafeRetaining task: UnsafeMutablePointer<ca_task>) {
        ca_incref(UnsafeMutableRawPointer(task))
        self.init(unsafeTakingOwnershipOf: task)
    }

    // MARK: Creation

    /// Creates the C task of a Swift body on `core`'s loop (through the
    /// loop's task factory). Inlinable, as the whole creation path: compiled
    /// for the caller's concrete `Value`, it finds its types' metadata in
    /// place rather than in the runtime's generic caches.
    @inlinable
    static func create(core: LoopCore, name: String?, eagerStart: Bool?, function: StaticString,
                       file: StaticString, line: UInt,
                       body: @escaping TaskBody<Value>) throws -> LoopTask<Value> {
        let c = SwiftCoroutine.make(core: core, name: function, file: file, line: line, body: body)
        return try create(coro: c, { coro, opts, out in ca_loop_create_task(core.loop, coro, opts, out) },
                          named: name, eagerStart: eagerStart)
    }

    /// Hands a coroutine (taken) to `spawn`, the C function that creates its
    /// task (`ca_loop_create_task`, `ca_taskgroup_create_task`, ...).
    @inlinable
    static func create(coro c: CoroPtr,
                       _ spawn: (UnsafeMutablePointer<ca_coro>, UnsafePointer<ca_task_options>,
                                 UnsafeMutablePointer<UnsafeMutablePointer<ca_task>?>) -> UnsafeMutablePointer<ca_error>?,
                       named name: String?, eagerStart: Bool?) throws -> LoopTask<Value> {
        var opts = ca_task_options()
        opts.eager_start = eagerStart.map { $0 ? 1 : -1 } ?? 0
        var out: UnsafeMutablePointer<ca_task>?
        let coro = UnsafeMutableRawPointer(c).assumingMemoryBound(to: ca_coro.self)
        let err: UnsafeMutablePointer<ca_error>?
        if let name {
            err = name.withCString { cname in
                opts.name = cname
                return spawn(coro, &opts, &out)
            }
        } else {
            err = spawn(coro, &opts, &out)
        }
        try ErrorBridge.check(err)
        return LoopTask(unsafeTakingOwnershipOf: out!)
    }

    // MARK: Cancellation

    /// `cancelling()`: how many cancellation requests are pending.
    public var cancelling: Int {
        checkLoopThread()
        return Int(ca_task_cancelling(unsafeRawTask))
    }

    /// `uncancel()`: withdraws one cancellation request; returns how many
    /// remain. At zero an undelivered request is dropped.
    @discardableResult
    public func uncancel() -> Int {
        checkLoopThread()
        return Int(ca_task_uncancel(unsafeRawTask))
    }

    // MARK: Names

    /// The task's name: the one given at creation, else `"Task-N"`.
    public var name: String {
        checkLoopThread()
        return ca_task_get_name(unsafeRawTask).map { String(cString: $0) } ?? ""
    }

    /// `set_name(name)`.
    public func setName(_ name: String) {
        checkLoopThread()
        ca_decref(ca_task_set_name(unsafeRawTask, name).map { UnsafeMutableRawPointer($0) })
    }

    /// This task, type-erased (what ``currentTask()`` returns).
    public var erased: AnyLoopTask {
        checkLoopThread()
        return AnyLoopTask(unsafeRetaining: unsafeRawTask)
    }

    /// `repr(task)`: `<Task pending name='Task-1' coro=<main() running at
    /// main.swift:3> wait_for=<Future pending ...>>`.
    public override var description: String {
        checkLoopThread()
        return reprString { ca_task_repr(unsafeRawTask, $0, $1) }
    }
}

// MARK: - A task of a C coroutine, awaited from anywhere

extension LoopTask where Value == Never {
    /// A task for the C coroutine `coro` (taken) on `loop`.
    static func wrap(loop: OpaquePointer, coro: UnsafeMutablePointer<ca_coro>) throws -> LoopTask<Never> {
        var out: UnsafeMutablePointer<ca_task>?
        try ErrorBridge.check(ca_loop_create_task(loop, coro, nil, &out))
        return LoopTask(unsafeTakingOwnershipOf: out!)
    }
}

// MARK: - Any task

/// A task of an event loop without a typed result: what ``currentTask()``
/// and ``allTasks()`` return, for any C task (a Swift body or a C
/// coroutine).
///
/// Safety of `@unchecked Sendable`: as ``Future``.
public final class AnyLoopTask: @unchecked Sendable, Hashable, CustomStringConvertible {
    /// The C task (this wrapper owns one reference).
    public let unsafeRawTask: UnsafeMutablePointer<ca_task>

    /// Wraps a C task, taking a new reference.
    public init(unsafeRetaining task: UnsafeMutablePointer<ca_task>) {
        ca_incref(UnsafeMutableRawPointer(task))
        unsafeRawTask = task
    }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRawTask), loop: unsafeRawTask.pointee.task_loop)
    }

    /// The task's name.
    public var name: String {
        checkLoopThread()
        return ca_task_get_name(unsafeRawTask).map { String(cString: $0) } ?? ""
    }
    /// `done()`.
    public var isDone: Bool {
        checkLoopThread()
        return ca_future_done(future)
    }
    /// `cancelled()`.
    public var isCancelled: Bool {
        checkLoopThread()
        return ca_future_cancelled(future)
    }
    /// `cancelling()`.
    public var cancelling: Int {
        checkLoopThread()
        return Int(ca_task_cancelling(unsafeRawTask))
    }

    /// `cancel(msg)`; `false` when the task is done.
    @discardableResult
    public func cancel(message: String? = nil) -> Bool {
        checkLoopThread()
        return ca_task_cancel(unsafeRawTask, message)
    }

    /// `uncancel()`; returns the requests left.
    @discardableResult
    public func uncancel() -> Int {
        checkLoopThread()
        return Int(ca_task_uncancel(unsafeRawTask))
    }

    /// The typed task, when the caller knows the result type.
    public func typed<Value: Sendable>(as type: Value.Type = Value.self) -> LoopTask<Value> {
        checkLoopThread()
        return LoopTask(unsafeRetaining: unsafeRawTask)
    }

    /// Traps off the task's loop thread while the loop runs, as ``Future``'s
    /// members do: the C task is confined to that thread.
    private func checkLoopThread() {
        checkConfined(loop: unsafeRawTask.pointee.task_loop)
    }

    private var future: UnsafeMutablePointer<ca_future> {
        UnsafeMutableRawPointer(unsafeRawTask).assumingMemoryBound(to: ca_future.self)
    }

    /// Equal when both wrap the same C task.
    public static func == (a: AnyLoopTask, b: AnyLoopTask) -> Bool { a.unsafeRawTask == b.unsafeRawTask }
    /// Hashes the C task's address.
    public func hash(into hasher: inout Hasher) { hasher.combine(unsafeRawTask) }
    /// `repr(task)`.
    public var description: String {
        checkLoopThread()
        return reprString { ca_task_repr(unsafeRawTask, $0, $1) }
    }
}

/// `asyncio.current_task()`: the task running on the calling thread's loop,
/// or `nil` outside any task (a loop callback, a plain Swift task).
public func currentTask() -> AnyLoopTask? {
    guard ca_get_running_loop() != nil else { return nil }
    var t: UnsafeMutablePointer<ca_task>?
    if let e = ca_current_task(nil, &t) { ca_decref(UnsafeMutableRawPointer(e)) }
    return t.map { AnyLoopTask(unsafeRetaining: $0) }
}

/// `asyncio.all_tasks()`: the unfinished tasks of the calling thread's
/// running loop (empty when no loop runs here).
public func allTasks() -> [AnyLoopTask] {
    guard ca_get_running_loop() != nil else { return [] }
    var count = 0
    if let e = ca_all_tasks(nil, nil, 0, &count) { ca_decref(UnsafeMutableRawPointer(e)) }
    var tasks = [UnsafeMutablePointer<ca_task>?](repeating: nil, count: count)
    if let e = ca_all_tasks(nil, &tasks, count, &count) { ca_decref(UnsafeMutableRawPointer(e)) }
    return tasks.prefix(count).compactMap { $0.map { AnyLoopTask(unsafeRetaining: $0) } }
}

/// `asyncio.create_task(body())`: a task running `body` on the calling
/// thread's running loop.
///
/// - Parameters:
///   - name: the task's name (default `"Task-N"`).
///   - eagerStart: `true` runs the first step inside this call; `nil` lets
///     the loop's task factory decide.
///   - function: the name the coroutine gets in reprs and the inspector
///     (default: the calling function).
///   - file: the file reprs show for it (default: the caller's).
///   - line: its first line (default: the caller's).
///   - body: the coroutine.
/// - Throws: ``AsyncioError`` (`RuntimeError`) when no loop runs on this
///   thread, or it is closed.
@discardableResult @inlinable
public func createTask<T: Sendable>(name: String? = nil, eagerStart: Bool? = nil,
                                    function: StaticString = #function, file: StaticString = #fileID,
                                    line: UInt = #line,
                                    _ body: @escaping TaskBody<T>) throws -> LoopTask<T> {
    guard let core = LoopCore.current, ca_get_running_loop() == core.loop else {
        throw AsyncioError(typeName: "RuntimeError", message: "no running event loop")
    }
    return try LoopTask.create(core: core, name: name, eagerStart: eagerStart, function: function, file: file,
                               line: line, body: body)
}
