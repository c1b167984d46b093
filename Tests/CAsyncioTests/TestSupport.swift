// Swift helpers for the C API specification tests: a loop with a virtual
// clock and a recorder, running until complete, reading results and errors.

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

typealias LoopPtr = OpaquePointer
typealias HandlePtr = OpaquePointer
typealias ContextPtr = OpaquePointer
typealias FuturePtr = UnsafeMutablePointer<ca_future>
typealias TaskPtr = UnsafeMutablePointer<ca_task>
typealias CoroPtr = UnsafeMutablePointer<ca_coro>
typealias ErrorPtr = UnsafeMutablePointer<ca_error>
typealias ProbePtr = UnsafeMutablePointer<ts_probe>

// MARK: - References

func decref<T>(_ p: UnsafeMutablePointer<T>?) { ca_decref(p) }
func decref(_ p: OpaquePointer?) { ca_decref(p.map { UnsafeMutableRawPointer($0) }) }
func refcount<T>(_ p: UnsafeMutablePointer<T>) -> Int {
    p.withMemoryRebound(to: ca_object.self, capacity: 1) { $0.pointee.ob_refcnt }
}

func refcount(_ p: OpaquePointer) -> Int { UnsafeMutablePointer<ca_object>(p).pointee.ob_refcnt }

/// A task seen as its Future head.
func fut(_ task: TaskPtr) -> FuturePtr { ts_task_future(task) }

// MARK: - Errors

/// What an error said (type, message, errno, chain), copied out of the C object.
struct ErrorInfo: CustomStringConvertible {
    var type: String
    var message: String?
    var errNo: Int32
    var causeType: String?
    var contextType: String?
    var suppressContext: Bool

    init(_ e: ErrorPtr) {
        type = String(cString: e.pointee.type.pointee.name)
        message = e.pointee.message.map { String(cString: $0) }
        errNo = e.pointee.err_no
        causeType = e.pointee.cause.map { String(cString: $0.pointee.type.pointee.name) }
        contextType = e.pointee.context.map { String(cString: $0.pointee.type.pointee.name) }
        suppressContext = e.pointee.suppress_context
    }

    var description: String { message.map { "\(type): \($0)" } ?? type }
}

/// Reads and releases an error (nil stays nil).
func take(_ e: ErrorPtr?) -> ErrorInfo? {
    guard let e else { return nil }
    defer { decref(e) }
    return ErrorInfo(e)
}

/// The error type called `name` (built-in or a test type), by address.
func errorType(_ name: String) -> UnsafePointer<ca_error_type> {
    guard let t = ts_error_type(name) else { fatalError("unknown error type \(name)") }
    return t
}

func makeError(_ type: String, _ message: String? = nil) -> ErrorPtr {
    ca_error_new(errorType(type), message)
}

/// Records an issue when `e` is an error; always releases it.
func expectOK(_ e: ErrorPtr?, _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    if let info = take(e) {
        Issue.record("unexpected error \(what): \(info)", sourceLocation: sourceLocation)
    }
}

// MARK: - Values and results

/// The integer result of a finished future, or the error result() raised.
enum Outcome: Equatable, CustomStringConvertible {
    case int(Int64)
    case none
    case double(Double)
    case other
    case error(String, String?)

    var description: String {
        switch self {
        case .int(let i): return "int(\(i))"
        case .none: return "none"
        case .double(let d): return "double(\(d))"
        case .other: return "other"
        case .error(let t, let m): return "error(\(t): \(m ?? "-"))"
        }
    }
}

func outcome(_ f: FuturePtr) -> Outcome {
    var v = ca_none()
    if let err = take(ca_future_result(f, &v)) { return .error(err.type, err.message) }
    switch v.kind {
    case CA_VALUE_INT: return .int(v.u.i)
    case CA_VALUE_NONE: return .none
    case CA_VALUE_DOUBLE: return .double(v.u.d)
    default: return .other
    }
}

func outcome(_ t: TaskPtr) -> Outcome { outcome(fut(t)) }

// MARK: - Contexts

/// Runs `body` inside a new empty context, so context variables set by a test
/// never leak into the thread's context (tests share threads).
func withFreshContext<R>(_ body: (ContextPtr) throws -> R) rethrows -> R {
    let ctx = ca_context_new()!
    let err = ca_context_enter(ctx)
    precondition(err == nil, "cannot enter a fresh context")
    defer {
        ca_context_exit(ctx)
        decref(ctx)
    }
    return try body(ctx)
}

// MARK: - The test loop

/// A loop (virtual clock by default) plus everything a test hands to C by
/// pointer: a recorder, probes, exception and log recorders, context
/// variables. All of it lives until the loop is closed and released.
final class TestLoop {
    let loop: LoopPtr
    let rec: UnsafeMutablePointer<ts_recorder>
    private var probes: [ProbePtr] = []
    private var cleanups: [() -> Void] = []

    init(virtualClock: Bool = true, debug: Bool = false) throws {
        var cfg = ca_loop_config()
        cfg.virtual_clock = virtualClock
        cfg.debug = debug
        var out: LoopPtr?
        if let info = take(ca_loop_new(&cfg, &out)) {
            throw TestFailure("ca_loop_new failed: \(info)")
        }
        loop = try #require(out)
        rec = .allocate(capacity: 1)
        ts_recorder_init(rec, loop)
    }

    /// Closes and releases the loop, then frees what was handed to C.
    func finish() {
        if !ca_loop_is_running(loop) { _ = take(ca_loop_close(loop)) }
        for p in probes { ts_probe_clear(p) }
        decref(loop)
        for c in cleanups.reversed() { c() }
        for p in probes { p.deallocate() }
        rec.deallocate()
    }

    /// Leaves everything alive (a loop stuck on another thread after a failure).
    func abandon() { cleanups.removeAll() }

    // MARK: Recording

    func probe(_ value: Int64) -> ProbePtr {
        let p = ProbePtr.allocate(capacity: 1)
        ts_probe_init(p, rec, value)
        p.pointee.loop = loop
        probes.append(p)
        return p
    }

    /// The values recorded so far, in order.
    var log: [Int64] { (0..<rec.pointee.len).map { ts_recorder_value(rec, $0) } }
    var logIterations: [UInt64] { (0..<rec.pointee.len).map { ts_recorder_iteration(rec, $0) } }
    var logTimes: [Int64] { (0..<rec.pointee.len).map { ts_recorder_time(rec, $0) } }

    func excRecorder() -> UnsafeMutablePointer<ts_exc_recorder> {
        let r = calloc(1, MemoryLayout<ts_exc_recorder>.size)!.bindMemory(to: ts_exc_recorder.self, capacity: 1)
        cleanups.append { free(r) }
        return r
    }

    /// Installs a recording exception handler and returns its recorder.
    func recordExceptions() -> UnsafeMutablePointer<ts_exc_recorder> {
        let r = excRecorder()
        ca_loop_set_exception_handler(loop, ts_exc_handler, r)
        return r
    }

    /// Installs a recording logger and returns its recorder.
    func recordLogs() -> UnsafeMutablePointer<ts_log_recorder> {
        let r = calloc(1, MemoryLayout<ts_log_recorder>.size)!.bindMemory(to: ts_log_recorder.self, capacity: 1)
        cleanups.append { free(r) }
        ca_loop_set_logger(loop, ts_log_record, r)
        return r
    }

    func contextVar(_ name: String, default value: Int64? = nil) -> UnsafeMutablePointer<ca_contextvar> {
        let v = ts_contextvar_new(name, value != nil, value ?? 0)!
        cleanups.append { ts_contextvar_free(v) }
        return v
    }

    /// Memory C code may write into until the loop is gone.
    func buffer<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let raw = calloc(count, MemoryLayout<T>.stride)!
        cleanups.append { free(raw) }
        return raw.bindMemory(to: T.self, capacity: count)
    }

    // MARK: Scheduling

    /// call_soon(ts_probe_call, probe).
    func callSoon(_ p: ProbePtr, ctx: ContextPtr? = nil, release: Bool = false,
                  sourceLocation: SourceLocation = #_sourceLocation) {
        expectOK(ca_loop_call_soon(loop, ts_probe_call, p, release ? ts_probe_release : nil, ctx, nil),
                 "call_soon", sourceLocation: sourceLocation)
    }

    /// call_later(delay_ns, ts_probe_call, probe) returning the handle (owned).
    func callLater(_ delayNs: Int64, _ p: ProbePtr, sourceLocation: SourceLocation = #_sourceLocation) -> HandlePtr? {
        var h: HandlePtr?
        expectOK(ca_loop_call_later(loop, delayNs, ts_probe_call, p, ts_probe_release, nil, &h),
                 "call_later", sourceLocation: sourceLocation)
        return h
    }

    /// call_at(when_ns, ts_probe_call, probe) returning the handle (owned).
    func callAt(_ whenNs: Int64, _ p: ProbePtr, sourceLocation: SourceLocation = #_sourceLocation) -> HandlePtr? {
        var h: HandlePtr?
        expectOK(ca_loop_call_at(loop, whenNs, ts_probe_call, p, ts_probe_release, nil, &h),
                 "call_at", sourceLocation: sourceLocation)
        return h
    }

    // MARK: Running

    /// One iteration, as CPython's test_utils.run_once: call_soon(stop) + run_forever.
    func runOnce(sourceLocation: SourceLocation = #_sourceLocation) {
        expectOK(ca_loop_call_soon(loop, ts_stop_loop, UnsafeMutableRawPointer(loop), nil, nil, nil),
                 "call_soon(stop)", sourceLocation: sourceLocation)
        expectOK(ca_loop_run_forever(loop), "run_forever", sourceLocation: sourceLocation)
    }

    func run(iterations n: Int) { for _ in 0..<n { runOnce() } }

    /// Runs until a stop timer `ns` from now fires (instantly on a virtual clock).
    func runFor(_ ns: Int64, sourceLocation: SourceLocation = #_sourceLocation) {
        var h: HandlePtr?
        expectOK(ca_loop_call_later(loop, ns, ts_stop_loop, UnsafeMutableRawPointer(loop), nil, nil, &h),
                 "call_later(stop)", sourceLocation: sourceLocation)
        expectOK(ca_loop_run_forever(loop), "run_forever", sourceLocation: sourceLocation)
        if let h {
            ca_handle_cancel(h)
            decref(h)
        }
    }

    /// run_until_complete(f): nil on success, else the error it returned.
    @discardableResult
    func runUntilComplete(_ f: FuturePtr) -> ErrorInfo? { take(ca_loop_run_until_complete(loop, f)) }
    @discardableResult
    func runUntilComplete(_ t: TaskPtr) -> ErrorInfo? { runUntilComplete(fut(t)) }

    // MARK: Objects

    func future(sourceLocation: SourceLocation = #_sourceLocation) -> FuturePtr {
        guard let f = ca_future_new(loop) else { fatalError("ca_future_new returned NULL") }
        return f
    }

    /// create_task(coro) (owned), failing the test when creation fails.
    func task(_ coro: CoroPtr?, name: String? = nil, eager: Int32 = 0, context: ContextPtr? = nil,
              sourceLocation: SourceLocation = #_sourceLocation) throws -> TaskPtr {
        var out: TaskPtr?
        let err: ErrorPtr? = name.withOptionalCString { cname in
            var opts = ca_task_options()
            opts.name = cname
            opts.context = context
            opts.eager_start = eager
            return ca_loop_create_task(loop, coro, &opts, &out)
        }
        if let info = take(err) { throw TestFailure("create_task failed: \(info)") }
        return try #require(out, sourceLocation: sourceLocation)
    }

    var time: Int64 { ca_loop_time(loop) }
    var iterations: UInt64 { ca_loop_iteration_count(loop) }
}

/// Creates a TestLoop, runs `body`, then closes and releases everything.
func withLoop<R>(virtualClock: Bool = true, debug: Bool = false, _ body: (TestLoop) throws -> R) throws -> R {
    let t = try TestLoop(virtualClock: virtualClock, debug: debug)
    defer { t.finish() }
    return try body(t)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

extension Optional where Wrapped == String {
    func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
        switch self {
        case .some(let s): return try s.withCString { try body($0) }
        case .none: return try body(nil)
        }
    }
}

/// The NUL-terminated string in a C buffer.
func cString(_ buf: [CChar]) -> String {
    buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// repr() of a future or task as a Swift string.
func repr(_ f: FuturePtr) -> String {
    var buf = [CChar](repeating: 0, count: 1024)
    _ = ca_future_repr(f, &buf, buf.count)
    return cString(buf)
}

func repr(_ t: TaskPtr) -> String {
    var buf = [CChar](repeating: 0, count: 1024)
    _ = ca_task_repr(t, &buf, buf.count)
    return cString(buf)
}

let nsPerMs: Int64 = 1_000_000
let nsPerSecond: Int64 = 1_000_000_000
