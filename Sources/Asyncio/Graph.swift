// asyncio.graph (3.14): the async call graph of a task or future, captured
// from inside the process, over the C core's graph.h.

import CAsyncio
import CAsyncioShim

/// A future or task whose call graph can be captured: every ``Future``
/// (so every ``LoopTask``) and ``AnyLoopTask``.
public protocol CallGraphSubject {
    /// The C future (a C task is one).
    var unsafeRawFuture: UnsafeMutablePointer<ca_future> { get }
}

extension Future: CallGraphSubject {
    /// The C future (``unsafeRaw``).
    public var unsafeRawFuture: UnsafeMutablePointer<ca_future> { unsafeRaw }
}

extension AnyLoopTask: CallGraphSubject {
    /// The C task, as the future it is.
    public var unsafeRawFuture: UnsafeMutablePointer<ca_future> {
        UnsafeMutableRawPointer(unsafeRawTask).assumingMemoryBound(to: ca_future.self)
    }
}

/// `asyncio.graph.FrameCallGraphEntry`: one coroutine of a task's stack.
///
/// Python's entry holds a frame; a coroutine of the core has no frame, so
/// the entry holds what a frame would show. For a C coroutine of the kit
/// that is its function, file and the line of the await it is suspended at.
/// For a Swift body it is the `function:`, `file:` and `line:` its task was
/// created with (by default the creating function and line): Swift awaits
/// record no line.
public struct FrameCallGraphEntry: Sendable, Hashable {
    /// The coroutine's name (`co_name`).
    public var name: String
    /// Its source file (`co_filename`).
    public var filename: String
    /// The line of its current await, or its first line when it records none.
    public var lineno: Int

    /// An entry with these values.
    public init(name: String, filename: String, lineno: Int) {
        self.name = name
        self.filename = filename
        self.lineno = lineno
    }
}

/// `asyncio.graph.FutureCallGraph`: a future or task, its coroutine stack
/// (innermost first), and the graphs of the futures awaiting it.
///
/// Safety of `Sendable`: the task wrapper is `Sendable` (it releases its C
/// reference on the loop's thread); the rest are values.
public struct FutureCallGraph: Sendable {
    /// The address of the future or task (`id()` in the formatted text).
    public var id: UInt
    /// The task, when the node is a task (it keeps it alive); `nil` for a
    /// plain future, which the graph does not keep.
    public var task: AnyLoopTask?
    /// The coroutines of the task, innermost first (empty for a future).
    public var callStack: [FrameCallGraphEntry]
    /// The graphs of the tasks and futures awaiting this one
    /// (`awaited_by`).
    public var awaitedBy: [FutureCallGraph]
}

/// `asyncio.capture_call_graph(future=None, *, depth=1, limit=None)`: the
/// async call graph of `future`, or of the current task when it is `nil`.
///
/// Call it on the loop's thread (inside a task body or a loop callback), or
/// while the future's loop is not running.
///
/// - Parameters:
///   - future: the future or task; `nil` for the task running this code.
///   - depth: for the current task, how many coroutines of its stack to
///     skip, plus one (C has no frames of the capture itself to skip; 1
///     keeps the caller's coroutine).
///   - limit: keep at most `abs(limit)` entries of each stack: a positive
///     limit the outermost, a negative one the innermost; `0` keeps the
///     awaiters only; `nil` keeps every entry.
/// - Returns: the graph, or `nil` when `future` is `nil` and no task runs.
/// - Throws: ``AsyncioError`` `RuntimeError` when `future` is `nil` outside
///   a running loop, or when the awaiters form a cycle; `MemoryError`.
public func captureCallGraph(_ future: (any CallGraphSubject)? = nil, depth: Int = 1,
                             limit: Int? = nil) throws -> FutureCallGraph? {
    let raw = try rawSubject(future)
    var out: UnsafeMutablePointer<ca_future_call_graph>?
    try ErrorBridge.check(ca_capture_call_graph(raw, clampedDepth(depth), rawLimit(limit), &out))
    guard let out else { return nil }
    defer { ca_future_call_graph_free(out) }
    return FutureCallGraph(out)
}

/// `asyncio.format_call_graph(future=None, *, depth=1, limit=None)`: the
/// graph as text, as Python prints it, with no trailing newline; `""` when
/// `future` is `nil` and no task runs.
///
/// ```text
/// * Task(name='worker', id=0x55d0c0a8e2d0)
///   + Call stack:
///   |   File 'App/Worker.swift', line 12, in async start()
///   + Awaited by:
///       * Task(name='main', id=0x55d0c0a8e5a0)
/// ```
///
/// A Swift body's line is where its task was created (see
/// ``FrameCallGraphEntry``). Parameters and errors: as
/// ``captureCallGraph(_:depth:limit:)``.
public func formatCallGraph(_ future: (any CallGraphSubject)? = nil, depth: Int = 1,
                            limit: Int? = nil) throws -> String {
    let raw = try rawSubject(future)
    var out: UnsafeMutablePointer<CChar>?
    try ErrorBridge.check(ca_format_call_graph(raw, clampedDepth(depth), rawLimit(limit), &out))
    defer { ca_free(out) }
    return String(cString: out!)
}

/// `asyncio.print_call_graph(future=None, *, depth=1, limit=None)`: prints
/// ``formatCallGraph(_:depth:limit:)``'s text and a newline to standard
/// output. Parameters and errors: as ``captureCallGraph(_:depth:limit:)``.
public func printCallGraph(_ future: (any CallGraphSubject)? = nil, depth: Int = 1,
                           limit: Int? = nil) throws {
    print(try formatCallGraph(future, depth: depth, limit: limit))
}

/// `asyncio.print_call_graph(future, file=output, ...)`: writes
/// ``formatCallGraph(_:depth:limit:)``'s text and a newline to `output`.
public func printCallGraph(_ future: (any CallGraphSubject)? = nil, depth: Int = 1, limit: Int? = nil,
                           to output: inout some TextOutputStream) throws {
    print(try formatCallGraph(future, depth: depth, limit: limit), to: &output)
}

// MARK: - From the C graph

/// The C future of `future` (nil: the current task), checked to be used on
/// its loop's thread.
private func rawSubject(_ future: (any CallGraphSubject)?) throws -> UnsafeMutableRawPointer? {
    guard let future else { return nil }
    let f = future.unsafeRawFuture
    checkConfined(loop: f.pointee.fut_loop)
    return UnsafeMutableRawPointer(f)
}

private func clampedDepth(_ depth: Int) -> Int32 { Int32(clamping: depth) }

/// `limit=None` is CA_CALL_GRAPH_NO_LIMIT (INT_MIN), which a clamped
/// integer limit never reaches.
private func rawLimit(_ limit: Int?) -> Int32 {
    guard let limit else { return Int32(CA_CALL_GRAPH_NO_LIMIT) }
    return Int32(clamping: max(limit, Int(Int32.min) + 1))
}

extension FutureCallGraph {
    /// Copies a captured C graph (on the loop's thread: the task wrappers
    /// take references).
    init(_ g: UnsafeMutablePointer<ca_future_call_graph>) {
        let node = g.pointee
        let f = node.future!
        id = UInt(bitPattern: f)
        task = f.pointee.fut_is_task != 0
            ? AnyLoopTask(unsafeRetaining: UnsafeMutableRawPointer(f).assumingMemoryBound(to: ca_task.self))
            : nil
        callStack = (0..<node.call_stack_len).map { i in
            let e = node.call_stack[i]
            return FrameCallGraphEntry(name: e.name.map { String(cString: $0) } ?? "",
                                       filename: e.filename.map { String(cString: $0) } ?? "",
                                       lineno: Int(e.lineno))
        }
        awaitedBy = (0..<node.awaited_by_len).map { FutureCallGraph(node.awaited_by[$0]!) }
    }
}
