// Helpers of the I/O specification tests: a real-clock loop on a chosen
// backend, runners with deadlines, and readers of bytes results. Every test
// of the I/O suite runs once per backend; an io_uring run on a machine
// that refuses io_uring is cancelled (skipped) with the reason printed.

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

/// The two backends the whole I/O suite runs on.
enum IOBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case uring
    case epoll

    var kind: ca_backend_kind { self == .uring ? CA_BACKEND_URING : CA_BACKEND_EPOLL }
    var name: String { self == .uring ? "io_uring" : "epoll" }
    var testDescription: String { name }
}

/// Cancels (skips) the running test with `reason`, printed so the log says why.
func skipTest(_ reason: String) throws -> Never {
    print("SKIPPED: \(reason)")
    try Test.cancel(Comment(rawValue: reason))
}

/// A loop on the real clock with one backend, plus what tests handed to C.
final class IOLoop {
    let loop: LoopPtr
    let backend: IOBackend
    private var cleanups: [() -> Void] = []

    init(_ backend: IOBackend, virtualClock: Bool = false) throws {
        self.backend = backend
        if backend == .uring {
            var why = [CChar](repeating: 0, count: 256)
            if !ts_io_uring_available(&why, why.count) {
                try skipTest("io_uring is not available here (\(cString(why)))")
            }
        }
        var out: LoopPtr?
        if let info = take(ts_io_loop_new(backend.kind, virtualClock, &out)) {
            throw TestFailure("ca_loop_new(\(backend.name)) failed: \(info)")
        }
        loop = try #require(out)
        #expect(String(cString: ca_loop_backend_name(loop)) == backend.name)
    }

    func finish() {
        if !ca_loop_is_running(loop) { _ = take(ca_loop_close(loop)) }
        decref(loop)
        for c in cleanups.reversed() { c() }
    }

    /// Memory C code may write into until the loop is gone.
    func buffer<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let raw = calloc(count, MemoryLayout<T>.stride)!
        cleanups.append { free(raw) }
        return raw.bindMemory(to: T.self, capacity: count)
    }

    /// Runs `body` once the loop is closed (servers, stats).
    func atExit(_ body: @escaping () -> Void) { cleanups.append(body) }

    func task(_ coro: CoroPtr?, sourceLocation: SourceLocation = #_sourceLocation) throws -> TaskPtr {
        var out: TaskPtr?
        if let info = take(ca_loop_create_task(loop, coro, nil, &out)) {
            throw TestFailure("create_task failed: \(info)")
        }
        return try #require(out, sourceLocation: sourceLocation)
    }

    /// run_until_complete with a deadline; nil on success.
    @discardableResult
    func run(_ f: FuturePtr, timeout: Double = 20) -> ErrorInfo? { take(ts_io_run_until(loop, f, timeout)) }
    @discardableResult
    func run(_ t: TaskPtr, timeout: Double = 20) -> ErrorInfo? { run(fut(t), timeout: timeout) }

    /// Runs until every task is done; fails the test on the deadline.
    func runAll(_ tasks: [TaskPtr], timeout: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) {
        var futs: [FuturePtr?] = tasks.map { fut($0) }
        let err = futs.withUnsafeMutableBufferPointer { take(ts_io_run_all(loop, $0.baseAddress, $0.count, timeout)) }
        if let err { Issue.record("runAll: \(err)", sourceLocation: sourceLocation) }
    }

    /// Runs the loop for `seconds` of real time.
    func runFor(_ seconds: Double) { expectOK(ts_io_run_for(loop, seconds), "run_for") }

    /// Runs in slices until `condition` holds or `timeout` passes; returns it.
    @discardableResult
    func runUntil(timeout: Double = 20, _ condition: () -> Bool) -> Bool {
        let deadline = now() + timeout
        while !condition() {
            if now() > deadline { return false }
            runFor(0.005)
        }
        return true
    }

    /// One iteration (call_soon(stop) + run_forever).
    func runOnce() {
        expectOK(ca_loop_call_soon(loop, ts_stop_loop, UnsafeMutableRawPointer(loop), nil, nil, nil), "call_soon")
        expectOK(ca_loop_run_forever(loop), "run_forever")
    }

    var stats: ca_io_stats {
        var s = ca_io_stats()
        ca_loop_io_stats(loop, &s)
        return s
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func withIOLoop<R>(_ backend: IOBackend, _ body: (IOLoop) throws -> R) throws -> R {
    let l = try IOLoop(backend)
    defer { l.finish() }
    return try body(l)
}

/// The bytes of a finished future's ca_bytes result.
func bytesResult(_ f: FuturePtr) -> [UInt8]? {
    var v = ca_none()
    if take(ca_future_result(f, &v)) != nil { return nil }
    var data: UnsafePointer<UInt8>?
    let n = ts_io_value_bytes(&v, &data)
    guard let data else { return v.kind == CA_VALUE_OBJECT ? [] : nil }
    return Array(UnsafeBufferPointer(start: data, count: n))
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A test-owned server: stats that outlive it, closed when the loop closes.
final class TestServer {
    let server: OpaquePointer
    let stats: UnsafeMutablePointer<ts_server_stats>
    var port: UInt16 { ca_server_get_port(server) }

    init(_ l: IOLoop, mode: ts_server_mode = TS_SERVER_ECHO, streams: Bool = false, unixPath: String? = nil,
         flood: UInt64 = 0, backlog: Int32 = 0) throws {
        let st = l.buffer(ts_server_stats.self)
        st.pointee.mode = Int32(mode.rawValue)
        st.pointee.flood_bytes = flood
        st.pointee.backlog = backlog
        stats = st
        var out: OpaquePointer?
        let err: ErrorPtr? = unixPath.withOptionalCString { path in
            streams ? ts_stream_server_start(l.loop, nil, path, st, &out)
                    : ts_server_start(l.loop, nil, path, st, &out)
        }
        if let info = take(err) { throw TestFailure("server start failed: \(info)") }
        server = try #require(out)
        let s = server
        l.atExit {
            ts_server_stats_clear(st)
            decref(s)
        }
    }

    var lastError: String { withUnsafeBytes(of: stats.pointee.last_error) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) } }
}

/// A temporary path for a Unix socket.
func unixSocketPath(_ tag: String) -> String {
    "/tmp/casyncio-\(getpid())-\(tag)-\(UInt32.random(in: 0...UInt32.max)).sock"
}

/// A tiny fault script (ts_fault_script) owned by the loop's cleanups.
@discardableResult
func faultScript(_ l: IOLoop, _ rules: [ts_fault_rule]) -> UnsafeMutablePointer<ts_fault_script> {
    let s = l.buffer(ts_fault_script.self)
    withUnsafeMutableBytes(of: &s.pointee.rules) { raw in
        let rp = raw.bindMemory(to: ts_fault_rule.self)
        for (i, r) in rules.enumerated() { rp[i] = r }
    }
    s.pointee.nrules = Int32(rules.count)
    ca_loop_set_io_fault_hook(l.loop, ts_fault_hook, s)
    return s
}

func rule(_ op: ca_io_opcode, skip: Int32 = 0, count: Int32 = 1, error: Int32 = 0, eof: Bool = false,
          maxLen: UInt32 = 0, sqFull: Bool = false) -> ts_fault_rule {
    var r = ts_fault_rule()
    r.opcode = Int32(op.rawValue)
    r.skip = skip
    r.count = count
    r.action.error = error
    r.action.eof = eof
    r.action.max_len = maxLen
    r.action.sq_full = sqFull
    return r
}

func fired(_ s: UnsafeMutablePointer<ts_fault_script>, _ i: Int) -> Int32 {
    withUnsafeBytes(of: &s.pointee.rules) { $0.bindMemory(to: ts_fault_rule.self)[i].fired }
}
