// asyncio.TaskGroup whose children are Swift bodies.

import CAsyncio
import CAsyncioShim

/// `asyncio.TaskGroup`: tasks created in it are awaited when the
/// ``withLoopTaskGroup(_:)`` body ends; the first child to fail cancels the
/// others and the owner, and every child error comes out together as an
/// ``ExceptionGroup``.
///
/// Unlike the children of Swift's own task groups, these children are loop
/// tasks (C tasks): they have names, show up in ``allTasks()`` and can be
/// cancelled one by one.
///
/// Safety of `@unchecked Sendable`: the pointer is immutable; the C group
/// is used on its loop's thread only (the methods check it).
public final class LoopTaskGroup: @unchecked Sendable, CustomStringConvertible {
    /// The C task group (this wrapper owns one reference).
    public let unsafeRaw: UnsafeMutablePointer<ca_taskgroup>

    init(_ raw: UnsafeMutablePointer<ca_taskgroup>) { unsafeRaw = raw }

    deinit {
        releaseOnLoop(UnsafeMutableRawPointer(unsafeRaw), loop: unsafeRaw.pointee.loop)
    }

    /// `create_task(body())`: a child task of the group.
    ///
    /// - Parameters:
    ///   - name: the task's name (default `"Task-N"`).
    ///   - eagerStart: `true` runs the first step inside this call.
    ///   - function: the name the coroutine gets in reprs and the inspector
    ///     (default: the calling function).
    ///   - file: the file reprs show for it (default: the caller's).
    ///   - line: its first line (default: the caller's).
    ///   - body: the coroutine.
    /// - Throws: ``AsyncioError`` (`RuntimeError`) when the group is not
    ///   entered, finished or shutting down.
    @discardableResult @inlinable
    public func createTask<T: Sendable>(name: String? = nil, eagerStart: Bool? = nil,
                                        function: StaticString = #function, file: StaticString = #fileID,
                                        line: UInt = #line,
                                        _ body: @escaping TaskBody<T>) throws -> LoopTask<T> {
        checkConfined(loop: unsafeRaw.pointee.loop)
        guard let core = LoopCore.current else {
            throw AsyncioError(typeName: "RuntimeError", message: "no running event loop")
        }
        let c = SwiftCoroutine.make(core: core, name: function, file: file, line: line, body: body)
        let tg = unsafeRaw
        return try LoopTask.create(coro: c, { coro, opts, out in ca_taskgroup_create_task(tg, coro, opts, out) },
                                   named: name, eagerStart: eagerStart)
    }

    /// `repr(group)`: `<TaskGroup tasks=2 errors=1 cancelling>`.
    public var description: String {
        checkConfined(loop: unsafeRaw.pointee.loop)
        return reprString { ca_taskgroup_repr(unsafeRaw, $0, $1) }
    }
}

/// `async with asyncio.TaskGroup() as group`: runs `body` with a new group,
/// then waits for every child.
///
/// ```swift
/// try await withLoopTaskGroup { group in
///     for url in urls { try group.createTask { try await fetch(url) } }
/// }
/// ```
///
/// - Throws: an ``ExceptionGroup`` of the children's errors (and the body's);
///   ``CancelledError`` when the owner was cancelled from outside;
///   what `body` throws when no child failed.
nonisolated(nonsending) public func withLoopTaskGroup<R>(
    _ body: nonisolated(nonsending) (LoopTaskGroup) async throws -> R
) async throws -> R {
    guard let raw = ca_taskgroup_new() else { throw AsyncioError(typeName: "MemoryError") }
    let group = LoopTaskGroup(raw)
    try ErrorBridge.check(ca_taskgroup_enter(raw))
    let outcome: Result<R, any Error>
    do {
        outcome = .success(try await body(group))
    } catch {
        outcome = .failure(error)
    }
    let failure: (any Error)? = if case .failure(let error) = outcome { error } else { nil }
    try await Await.coroutine(loop: raw.pointee.loop, (raw, failure)) { context in
        ca_taskgroup_exit(context.0, context.1.map { ErrorBridge.cError($0) })
    }
    return try outcome.get()
}
