// Combinators of tasks.py: ensure_future, gather, shield, wait, wait_for,
// as_completed, and sleep's allocation count (notes §7 items 34–42, 45).

import CAsyncio
import CAsyncioTestSupport
import Testing

// MARK: - Helpers shared by the combinator, timeout and task group tests

/// Renderings in the conformance traces' style, and small conversions.
enum Comb {
    /// `Name`, `Name("msg")` or `Group[member,...]`.
    static func text(_ e: UnsafePointer<ca_error>?) -> String {
        guard let e else { return "nil" }
        let name = String(cString: e.pointee.type.pointee.name)
        if e.pointee.nchildren > 0, let children = e.pointee.children {
            let members = (0..<e.pointee.nchildren).map { text(UnsafePointer(children[$0])) }
            return "\(name)[\(members.joined(separator: ","))]"
        }
        guard let m = e.pointee.message else { return name }
        return "\(name)(\"\(String(cString: m))\")"
    }

    static func text(_ e: ErrorPtr?) -> String { text(UnsafePointer(e)) }

    static func text(_ v: UnsafePointer<ca_value>) -> String {
        switch v.pointee.kind {
        case CA_VALUE_NONE: return "None"
        case CA_VALUE_INT: return "\(v.pointee.u.i)"
        case CA_VALUE_DOUBLE: return "\(v.pointee.u.d)"
        case CA_VALUE_OBJECT:
            guard let o = v.pointee.u.obj else { return "None" }
            if String(cString: o.pointee.ob_type.pointee.tp_name) == "Error" {
                return text(UnsafeRawPointer(o).assumingMemoryBound(to: ca_error.self))
            }
            return "<\(String(cString: o.pointee.ob_type.pointee.tp_name))>"
        default: return "<pointer>"
        }
    }

    /// The items of the result list `f` finished with, or nil.
    static func list(_ f: FuturePtr) -> [String]? {
        guard let l = ca_result_list_of(f) else { return nil }
        return (0..<l.pointee.len).map { text(ca_result_list_item(l, $0)) }
    }

    /// The state as the traces print it, without consuming anything.
    static func state(_ f: FuturePtr) -> String {
        switch Int32(f.pointee.fut_state) {
        case Int32(CA_FUTURE_PENDING.rawValue): return "pending"
        case Int32(CA_FUTURE_CANCELLED.rawValue): return "cancelled"
        default:
            if let e = f.pointee.fut_exception { return "exception \(text(e))" }
            return withUnsafePointer(to: f.pointee.fut_result) { "result \(text($0))" }
        }
    }

    static func state(_ t: TaskPtr) -> String { state(fut(t)) }

    static func raw(_ f: FuturePtr) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(f) }
    static func raw(_ t: TaskPtr) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(t) }
    static func raw(_ c: CoroPtr) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(c) }

    /// The (done, pending) futures of a task that ran a wait() coroutine.
    static func waitSets(_ t: TaskPtr) -> (done: [FuturePtr], pending: [FuturePtr])? {
        let f = fut(t)
        guard f.pointee.fut_state == UInt8(CA_FUTURE_FINISHED.rawValue), f.pointee.fut_exception == nil,
              f.pointee.fut_result.kind == CA_VALUE_OBJECT, let o = f.pointee.fut_result.u.obj,
              ca_wait_sets_check(o) else { return nil }
        let ws = UnsafeMutableRawPointer(o).assumingMemoryBound(to: ca_wait_sets.self)
        let done = (0..<ws.pointee.ndone).map { ca_wait_sets_done(ws, $0)! }
        let pending = (0..<ws.pointee.npending).map { ca_wait_sets_pending(ws, $0)! }
        return (done, pending)
    }

    /// Who awaits `f`, per its awaited_by.
    static func awaiters(_ f: FuturePtr) -> [FuturePtr] {
        var out = [FuturePtr?](repeating: nil, count: 8)
        let n = ca_future_get_awaited_by(f, &out, 8)
        return out.prefix(n).compactMap { $0 }
    }

    static func timeoutRepr(_ tm: UnsafeMutablePointer<ca_timeout>) -> String {
        var buf = [CChar](repeating: 0, count: 128)
        _ = ca_timeout_repr(tm, &buf, buf.count)
        return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    static let noTimeout = ts_no_timeout()

    /// set_exception(type(msg)) on `f`, releasing the error afterwards.
    static func setException(_ f: FuturePtr, _ type: String, _ msg: String? = nil,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        let e = makeError(type, msg)
        defer { decref(e) }
        expectOK(ca_future_set_exception(f, e), "set_exception", sourceLocation: sourceLocation)
    }
}

/// Runs Swift code inside the first step of a task (as "the current task").
final class CombInTask {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }

    static func run(_ t: TestLoop, _ body: @escaping () -> Void) throws {
        let box = Unmanaged.passRetained(CombInTask(body))
        defer { box.release() }
        let task = try t.task(ts_cb_call_in_task({ arg in
            Unmanaged<CombInTask>.fromOpaque(arg!).takeUnretainedValue().body()
        }, box.toOpaque()))
        defer { decref(task) }
        t.runUntilComplete(task)
    }
}

extension TestLoop {
    /// A task running `ts_cb_sleep_then(delay, value, raise, msg)`.
    func child(_ delay: Double, _ value: Int64 = 0, raise: String? = nil, _ msg: String? = nil) throws -> TaskPtr {
        let type = raise.map { errorType($0) }
        return try task(msg.withOptionalCString { ts_cb_sleep_then(delay, value, type, $0) })
    }

    /// gather(*aws) on this loop (owned), failing the test on an error.
    func gather(_ aws: [UnsafeMutableRawPointer?], returnExceptions: Bool = false,
                sourceLocation: SourceLocation = #_sourceLocation) throws -> FuturePtr {
        var out: FuturePtr?
        if let e = take(ca_gather(loop, aws, aws.count, returnExceptions, &out)) {
            throw TestFailure("gather failed: \(e)")
        }
        return try #require(out, sourceLocation: sourceLocation)
    }
}

/// Whether ca_future_cancel dispatches to _GatheringFuture.cancel (the core
/// hook described in the report of issue 3); the gather cancellation tests
/// need it.
let gatherCancelHookInstalled: Bool = {
    var cfg = ca_loop_config()
    cfg.virtual_clock = true
    var loop: OpaquePointer?
    guard ca_loop_new(&cfg, &loop) == nil, let loop else { return false }
    defer {
        ca_decref(ca_loop_close(loop))
        ca_decref(UnsafeMutableRawPointer(loop))
    }
    let f = ca_future_new(loop)!
    defer { ca_decref(f) }
    var out: FuturePtr?
    var aws: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(f)]
    guard ca_gather(loop, &aws, 1, false, &out) == nil, let g = out else { return false }
    defer { ca_decref(g) }
    _ = ca_future_cancel(g, nil)
    let dispatched = ca_future_cancelled(f) && !ca_future_cancelled(g)
    _ = ca_future_cancel(f, nil) // lets the gather's callback go, so nothing keeps the loop alive
    return dispatched
}()

@Suite("Combinators")
struct CombinatorTests {

    // MARK: - sleep (item 34)

    @Test("sleep(delay > 0) in a task allocates nothing per call in steady state")
    func sleepWithDelayAllocatesNothing() throws {
        try withLoop { t in
            let allocs = t.buffer(Int64.self)
            let task = try t.task(ts_cb_sleep_measure(0.001, 1_000, 10_000, allocs))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            #expect(outcome(task) == .int(10_000))
            #expect(allocs.pointee == 0, "\(allocs.pointee) allocations for 10000 sleeps")
        }
    }

    // MARK: - ensure_future (item 42)

    @Test("ensure_future returns a future or a task unchanged")
    func ensureFutureReturnsFutureUnchanged() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            var out: FuturePtr?
            expectOK(ca_ensure_future(Comb.raw(f), t.loop, &out))
            #expect(out == f)
            decref(out)
        }
    }

    @Test("ensure_future wraps a coroutine in a task that runs it")
    func ensureFutureWrapsCoroutine() throws {
        try withLoop { t in
            let coro = ts_cb_sleep_then(-1, 4, nil, nil)!
            defer { decref(coro) }
            var out: FuturePtr?
            expectOK(ca_ensure_future(Comb.raw(coro), t.loop, &out))
            let f = try #require(out)
            defer { decref(f) }
            #expect(ca_task_check(f))
            t.runUntilComplete(f)
            #expect(outcome(f) == .int(4))
        }
    }

    @Test("ensure_future of a future with another loop raises ValueError")
    func ensureFutureOtherLoopIsValueError() throws {
        try withLoop { t in
            try withLoop { other in
                let f = other.future()
                defer { decref(f) }
                var out: FuturePtr?
                let err = take(ca_ensure_future(Comb.raw(f), t.loop, &out))
                #expect(err?.type == "ValueError")
                #expect(err?.message == "The future belongs to a different loop than the one specified as the loop argument")
                #expect(out == nil)
            }
        }
    }

    @Test("ensure_future of something that is not awaitable raises TypeError")
    func ensureFutureNonAwaitableIsTypeError() throws {
        try withLoop { t in
            var tm: UnsafeMutablePointer<ca_timeout>?
            expectOK(ca_timeout_at_new(Int64.max, &tm))
            defer { decref(tm) }
            var out: FuturePtr?
            let err = take(ca_ensure_future(UnsafeMutableRawPointer(tm!), t.loop, &out))
            #expect(err?.type == "TypeError")
            #expect(err?.message == "An asyncio.Future, a coroutine or an awaitable is required")
        }
    }

    // MARK: - gather (items 35–37)

    @Test("gather's results follow the argument order, not the completion order")
    func gatherResultsInArgumentOrder() throws {
        try withLoop { t in
            let a = try t.child(0.03, 1), b = try t.child(0.01, 2), c = try t.child(0.02, 3)
            defer { [a, b, c].forEach { decref($0) } }
            let g = try t.gather([Comb.raw(a), Comb.raw(b), Comb.raw(c)])
            defer { decref(g) }
            #expect(t.runUntilComplete(g) == nil)
            #expect(Comb.list(g) == ["1", "2", "3"])
        }
    }

    @Test("gather wraps coroutine arguments in tasks")
    func gatherWrapsCoroutines() throws {
        try withLoop { t in
            let c1 = ts_cb_sleep_then(0.02, 10, nil, nil)!, c2 = ts_cb_sleep_then(0.01, 20, nil, nil)!
            defer { decref(c1); decref(c2) }
            let g = try t.gather([Comb.raw(c1), Comb.raw(c2)])
            defer { decref(g) }
            #expect(t.runUntilComplete(g) == nil)
            #expect(Comb.list(g) == ["10", "20"])
        }
    }

    @Test("a repeated argument is one child whose result fills every position")
    func gatherDeduplicatesArguments() throws {
        try withLoop { t in
            let coro = ts_cb_sleep_then(0.01, 7, nil, nil)!
            defer { decref(coro) }
            let f = t.future()
            defer { decref(f) }
            let g = try t.gather([Comb.raw(coro), Comb.raw(f), Comb.raw(coro), Comb.raw(f)])
            defer { decref(g) }
            expectOK(ca_future_set_result(f, ca_int(1)))
            #expect(t.runUntilComplete(g) == nil)
            // A second task for the same coroutine would have failed with
            // "cannot reuse already awaited coroutine".
            #expect(Comb.list(g) == ["7", "1", "7", "1"])
        }
    }

    @Test("repeated arguments among more than 16 share one child each and fill every position, in order")
    func gatherDeduplicatesManyArguments() throws {
        // Above 16 arguments gather finds the repeats with a hash table
        // rather than by comparing every pair.
        try withLoop { t in
            let fs = (0..<20).map { _ in t.future() }
            defer { fs.forEach { decref($0) } }
            let order = (0..<40).map { ($0 * 7) % 20 }
            let g = try t.gather(order.map { Comb.raw(fs[$0]) }, returnExceptions: true)
            defer { decref(g) }
            // One done callback per distinct child.
            #expect(fs.allSatisfy { ca_future_get_callbacks($0, nil, 0) == 1 })
            for (i, f) in fs.enumerated() {
                if i == 3 { _ = ca_future_cancel(f, "c") }
                else if i == 5 { Comb.setException(f, "ValueError", "v") }
                else { expectOK(ca_future_set_result(f, ca_int(Int64(i)))) }
            }
            #expect(t.runUntilComplete(g) == nil)
            #expect(Comb.list(g) == order.map { $0 == 3 ? "CancelledError(\"c\")" : $0 == 5 ? "ValueError(\"v\")" : "\($0)" })
        }
    }

    @Test("gather() without arguments is an already done future with an empty list")
    func gatherWithoutArgumentsIsDone() throws {
        try withLoop { t in
            let g = try t.gather([])
            defer { decref(g) }
            #expect(ca_future_done(g))
            #expect(Comb.list(g) == [])
        }
    }

    @Test("gather() without arguments and without a loop raises RuntimeError")
    func gatherWithoutArgumentsOrLoopIsRuntimeError() {
        var out: FuturePtr?
        let err = take(ca_gather(nil, nil, 0, false, &out))
        #expect(err?.type == "RuntimeError")
        #expect(out == nil)
    }

    @Test("a gather whose children are all done is done when gather returns")
    func gatherOfDoneChildrenIsDoneAtOnce() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(1)))
            let g = try t.gather([Comb.raw(f), Comb.raw(f)])
            defer { decref(g) }
            #expect(ca_future_done(g))
            #expect(Comb.list(g) == ["1", "1"])
        }
    }

    @Test("an already failed child fails the gather at once while a pending sibling keeps running")
    func gatherOfFailedChildFailsAtOnce() throws {
        try withLoop { t in
            let e = t.future(), p = t.future()
            defer { decref(e); decref(p) }
            Comb.setException(e, "ValueError", "early")
            let g = try t.gather([Comb.raw(p), Comb.raw(e)])
            defer { decref(g) }
            #expect(Comb.state(g) == "exception ValueError(\"early\")")
            #expect(!ca_future_done(p))
            expectOK(ca_future_set_result(p, ca_int(2)))
            t.runOnce()
            #expect(outcome(g) == .error("ValueError", "early"))
        }
    }

    @Test("without return_exceptions the first error fails the gather and the other children keep running")
    func gatherPropagatesFirstError() throws {
        try withLoop { t in
            let a = try t.child(0.01, raise: "ValueError", "a"), b = try t.child(0.02, 2)
            defer { decref(a); decref(b) }
            let g = try t.gather([Comb.raw(a), Comb.raw(b)])
            defer { decref(g) }
            let err = t.runUntilComplete(g)
            #expect(err?.type == "ValueError")
            #expect(err?.message == "a")
            #expect(t.time == 10 * nsPerMs)
            #expect(!ca_future_done(fut(b)))
            t.runUntilComplete(b)
            #expect(outcome(b) == .int(2))
        }
    }

    @Test("a cancelled child fails the gather with its CancelledError; the gather itself is not cancelled")
    func gatherCancelledChildFailsGather() throws {
        try withLoop { t in
            let f = t.future(), other = t.future()
            defer { decref(f); decref(other) }
            let g = try t.gather([Comb.raw(f), Comb.raw(other)])
            defer { decref(g) }
            #expect(ca_future_cancel(f, "x"))
            t.runOnce()
            #expect(!ca_future_cancelled(g))
            #expect(outcome(g) == .error("CancelledError", "x"))
            #expect(!ca_future_done(other))
        }
    }

    @Test("with return_exceptions errors and cancellations are returned in the list")
    func gatherReturnExceptionsCollects() throws {
        try withLoop { t in
            let a = try t.child(0.01, raise: "ValueError", "a")
            let b = try t.child(0.05, 2)
            let f = t.future()
            let c = try t.child(0.02, 3)
            defer { decref(a); decref(b); decref(f); decref(c) }
            let g = try t.gather([Comb.raw(a), Comb.raw(b), Comb.raw(f), Comb.raw(c)], returnExceptions: true)
            defer { decref(g) }
            _ = ca_task_cancel(b, "tm")
            _ = ca_future_cancel(f, "fm")
            #expect(t.runUntilComplete(g) == nil)
            // A cancelled task no longer has a message; a cancelled future keeps it.
            #expect(Comb.list(g) == ["ValueError(\"a\")", "CancelledError(\"\")", "CancelledError(\"fm\")", "3"])
        }
    }

    @Test("gather of futures of different loops raises ValueError")
    func gatherOfDifferentLoopsIsValueError() throws {
        try withLoop { t in
            try withLoop { other in
                let f = t.future(), g = other.future()
                defer { decref(f); decref(g) }
                var out: FuturePtr?
                var aws: [UnsafeMutableRawPointer?] = [Comb.raw(f), Comb.raw(g)]
                let err = take(ca_gather(nil, &aws, 2, false, &out))
                #expect(err?.type == "ValueError")
                #expect(out == nil)
            }
        }
    }

    @Test("the task calling gather is recorded as awaiting each pending child until it reports")
    func gatherRecordsAwaitedBy() throws {
        try withLoop { t in
            let f = t.future(), done = t.future()
            defer { decref(f); decref(done) }
            expectOK(ca_future_set_result(done, ca_none()))
            nonisolated(unsafe) var gathered: FuturePtr?
            nonisolated(unsafe) var current: TaskPtr?
            try CombInTask.run(t) {
                var out: FuturePtr?
                var aws: [UnsafeMutableRawPointer?] = [Comb.raw(f), Comb.raw(done)]
                expectOK(ca_gather(nil, &aws, 2, false, &out))
                gathered = out
                _ = take(ca_current_task(nil, &current))
            }
            defer { decref(gathered) }
            let me = try #require(current)
            #expect(Comb.awaiters(f) == [fut(me)])
            #expect(Comb.awaiters(done).isEmpty)
            expectOK(ca_future_set_result(f, ca_none()))
            t.runOnce()
            #expect(Comb.awaiters(f).isEmpty)
        }
    }

    @Test("cancel() on a gather cancels its children and the gather fails with CancelledError",
          .enabled(if: gatherCancelHookInstalled, "needs ca_future_cancel to dispatch to _GatheringFuture.cancel"))
    func gatherCancelCancelsChildren() throws {
        try withLoop { t in
            let a = try t.child(0.05, 1), b = try t.child(0.06, 2)
            defer { decref(a); decref(b) }
            let g = try t.gather([Comb.raw(a), Comb.raw(b)])
            defer { decref(g) }
            t.runOnce()
            #expect(ca_future_cancel(g, "stop"))
            #expect(!ca_future_done(g))
            #expect(ca_gather_cancel_requested(g))
            let err = t.runUntilComplete(g)
            #expect(err?.type == "CancelledError")
            #expect(ca_future_cancelled(fut(a)))
            #expect(ca_future_cancelled(fut(b)))
            #expect(!ca_future_cancelled(g))
        }
    }

    @Test("a cancelled gather raises CancelledError even with return_exceptions, taken from its last child",
          .enabled(if: gatherCancelHookInstalled, "needs ca_future_cancel to dispatch to _GatheringFuture.cancel"))
    func gatherCancelWithReturnExceptionsStillRaises() throws {
        try withLoop { t in
            let a = try t.child(0.05), b = try t.child(-1, 7), c = try t.child(0.06)
            defer { decref(a); decref(b); decref(c) }
            let g1 = try t.gather([Comb.raw(a), Comb.raw(b)], returnExceptions: true)
            let g2 = try t.gather([Comb.raw(b), Comb.raw(c)], returnExceptions: true)
            defer { decref(g1); decref(g2) }
            t.runUntilComplete(b)
            t.runOnce()
            #expect(ca_future_cancel(g1, "m1"))
            #expect(ca_future_cancel(g2, "m2"))
            t.runUntilComplete(g1)
            t.runUntilComplete(g2)
            #expect(Comb.state(g1) == "exception CancelledError")
            #expect(Comb.state(g2) == "exception CancelledError(\"m2\")")
        }
    }

    @Test("cancel() on a gather whose children are all done returns false and the results still arrive",
          .enabled(if: gatherCancelHookInstalled, "needs ca_future_cancel to dispatch to _GatheringFuture.cancel"))
    func gatherCancelAfterChildrenDoneReturnsFalse() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let g = try t.gather([Comb.raw(f)])
            defer { decref(g) }
            expectOK(ca_future_set_result(f, ca_int(5)))
            #expect(!ca_future_done(g))
            #expect(!ca_future_cancel(g, nil))
            t.runOnce()
            #expect(Comb.list(g) == ["5"])
            #expect(!ca_future_cancel(g, nil))
        }
    }

    @Test("cancelling the task awaiting a gather cancels the gather's children",
          .enabled(if: gatherCancelHookInstalled, "needs ca_future_cancel to dispatch to _GatheringFuture.cancel"))
    func gatherAwaiterCancelCancelsChildren() throws {
        try withLoop { t in
            let a = try t.child(0.05), b = try t.child(0.06)
            defer { decref(a); decref(b) }
            let g = try t.gather([Comb.raw(a), Comb.raw(b)])
            defer { decref(g) }
            let waiter = try t.task(ts_cb_await(Comb.raw(g), t.loop, nil))
            defer { decref(waiter) }
            t.runOnce()
            #expect(ca_task_cancel(waiter, "bye"))
            let err = t.runUntilComplete(waiter)
            #expect(err?.type == "CancelledError")
            #expect(ca_future_cancelled(fut(waiter)))
            #expect(ca_future_cancelled(fut(a)))
            #expect(ca_future_cancelled(fut(b)))
        }
    }

    // MARK: - shield (item 38)

    @Test("cancelling the future shield() returned does not cancel the inner task")
    func shieldOuterCancelLeavesInnerRunning() throws {
        try withLoop { t in
            let inner = try t.child(0.01, 5)
            defer { decref(inner) }
            var out: FuturePtr?
            expectOK(ca_shield(Comb.raw(inner), &out))
            let outer = try #require(out)
            defer { decref(outer) }
            #expect(outer != fut(inner))
            #expect(ca_future_cancel(outer, nil))
            t.runUntilComplete(inner)
            #expect(outcome(inner) == .int(5))
            #expect(ca_future_cancelled(outer))
        }
    }

    /// Blocks `body` leaves allocated (allocations minus frees) when it works
    /// on a fresh virtual-clock loop whose last reference is dropped after it;
    /// measured on a second round, the first paying the thread's one-time state.
    private func outstandingBlocks(_ body: (OpaquePointer) throws -> Void) throws -> Int64 {
        func round() throws -> Int64 {
            ca_freelists_clear()
            let before = ca_alloc_stats_get()
            var cfg = ca_loop_config()
            cfg.virtual_clock = true
            var made: OpaquePointer?
            try #require(ca_loop_new(&cfg, &made) == nil)
            let loop = try #require(made)
            try body(loop)
            ca_decref(UnsafeMutableRawPointer(loop))
            ca_freelists_clear()
            let after = ca_alloc_stats_get()
            return Int64(after.allocs - before.allocs) - Int64(after.frees - before.frees)
        }
        _ = try round()
        return try round()
    }

    @Test("shield() on a closed loop returns a pending outer untied from the inner, and nothing keeps the loop alive")
    func shieldOnClosedLoopLeavesNoCycle() throws {
        let left = try outstandingBlocks { loop in
            let inner = try #require(ca_future_new(loop))
            ca_decref(ca_loop_close(loop))
            var out: FuturePtr?
            expectOK(ca_shield(Comb.raw(inner), &out))
            let outer = try #require(out)
            #expect(outer != inner)
            #expect(!ca_future_done(outer))
            #expect(ca_future_get_callbacks(outer, nil, 0) == 0)
            #expect(ca_future_get_callbacks(inner, nil, 0) == 0)
            ca_decref(outer)
            ca_decref(inner)
        }
        #expect(left == 0)
    }

    @Test("a shield nobody awaits, left pending with its inner future, is untied by close and frees the loop")
    func shieldNobodyAwaitsIsUntiedAtClose() throws {
        // No task waits on the outer, so only the loop can find the pair.
        let left = try outstandingBlocks { loop in
            let inner = try #require(ca_future_new(loop))
            var out: FuturePtr?
            expectOK(ca_shield(Comb.raw(inner), &out))
            let outer = try #require(out)
            ca_decref(outer)
            ca_decref(inner) // outer and inner still hold each other
            ca_decref(ca_loop_close(loop))
        }
        #expect(left == 0)
    }

    @Test("shield() of a done future returns that future")
    func shieldOfDoneFutureReturnsIt() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(1)))
            var out: FuturePtr?
            expectOK(ca_shield(Comb.raw(f), &out))
            #expect(out == f)
            decref(out)
        }
    }

    @Test("the shielded future's result and exception reach the outer future")
    func shieldForwardsOutcome() throws {
        try withLoop { t in
            let f1 = t.future(), f2 = t.future()
            defer { decref(f1); decref(f2) }
            var o1: FuturePtr?, o2: FuturePtr?
            expectOK(ca_shield(Comb.raw(f1), &o1))
            expectOK(ca_shield(Comb.raw(f2), &o2))
            defer { decref(o1); decref(o2) }
            expectOK(ca_future_set_result(f1, ca_int(3)))
            Comb.setException(f2, "ValueError", "bad")
            t.runOnce()
            #expect(outcome(o1!) == .int(3))
            #expect(outcome(o2!) == .error("ValueError", "bad"))
        }
    }

    @Test("cancelling the inner future cancels the outer one")
    func shieldInnerCancelCancelsOuter() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            var out: FuturePtr?
            expectOK(ca_shield(Comb.raw(f), &out))
            defer { decref(out) }
            #expect(ca_future_cancel(f, nil))
            t.runOnce()
            #expect(ca_future_cancelled(out!))
        }
    }

    @Test("a task cancelled while awaiting shield(inner) raises CancelledError and the inner task finishes")
    func shieldAwaiterCancelledInnerContinues() throws {
        try withLoop { t in
            let inner = try t.child(0.03, 8)
            defer { decref(inner) }
            var out: FuturePtr?
            expectOK(ca_shield(Comb.raw(inner), &out))
            defer { decref(out) }
            let waiter = try t.task(ts_cb_await(Comb.raw(out!), t.loop, nil))
            defer { decref(waiter) }
            t.runOnce()
            _ = ca_task_cancel(waiter, nil)
            #expect(t.runUntilComplete(waiter)?.type == "CancelledError")
            #expect(!ca_future_done(fut(inner)))
            t.runUntilComplete(inner)
            #expect(outcome(inner) == .int(8))
        }
    }

    @Test("an error of a shielded future whose outer was cancelled goes to the exception handler")
    func shieldLogsErrorAfterOuterCancelled() throws {
        try withLoop { t in
            let rec = t.recordExceptions()
            let f = t.future()
            defer { decref(f) }
            var out: FuturePtr?
            expectOK(ca_shield(Comb.raw(f), &out))
            defer { decref(out) }
            _ = ca_future_cancel(out!, nil)
            t.runOnce()
            Comb.setException(f, "ValueError", "late")
            t.runOnce()
            #expect(rec.pointee.count == 1)
            #expect(String(cString: ts_exc_message(rec, 0)) == "ValueError exception in shielded future")
            #expect(String(cString: ts_exc_type(rec, 0)) == "ValueError")
        }
    }

    @Test("the task calling shield is recorded as awaiting the inner future")
    func shieldRecordsAwaitedBy() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            nonisolated(unsafe) var outer: FuturePtr?
            nonisolated(unsafe) var current: TaskPtr?
            try CombInTask.run(t) {
                expectOK(ca_shield(Comb.raw(f), &outer))
                _ = take(ca_current_task(nil, &current))
            }
            defer { decref(outer) }
            #expect(Comb.awaiters(f) == [fut(try #require(current))])
            expectOK(ca_future_set_result(f, ca_none()))
            t.runOnce()
            #expect(Comb.awaiters(f).isEmpty)
        }
    }

    // MARK: - wait (item 39)

    private func waitTask(_ t: TestLoop, _ fs: [UnsafeMutableRawPointer?], timeout: Double = Comb.noTimeout,
                          _ returnWhen: ca_return_when = CA_ALL_COMPLETED) throws -> TaskPtr {
        try t.task(ca_wait(fs, fs.count, timeout, Int32(returnWhen.rawValue)))
    }

    @Test("wait() on no futures raises ValueError")
    func waitEmptyIsValueError() throws {
        try withLoop { t in
            let w = try waitTask(t, [])
            defer { decref(w) }
            let err = t.runUntilComplete(w)
            #expect(err?.type == "ValueError")
            #expect(err?.message == "Set of Tasks/Futures is empty.")
        }
    }

    @Test("wait() with an unknown return_when raises ValueError")
    func waitBadReturnWhenIsValueError() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let w = try t.task(ca_wait([Comb.raw(f)], 1, Comb.noTimeout, 7))
            defer { decref(w) }
            let err = t.runUntilComplete(w)
            #expect(err?.type == "ValueError")
            #expect(err?.message == "Invalid return_when value: 7")
        }
    }

    @Test("wait() rejects coroutines with TypeError")
    func waitRejectsCoroutines() throws {
        try withLoop { t in
            let coro = ts_cb_sleep_then(-1, 1, nil, nil)!
            defer { decref(coro) }
            let w = try waitTask(t, [Comb.raw(coro)])
            defer { decref(w) }
            let err = t.runUntilComplete(w)
            #expect(err?.type == "TypeError")
            #expect(err?.message == "Passing coroutines is forbidden, use tasks explicitly.")
        }
    }

    @Test("wait(ALL_COMPLETED) returns once every future is done")
    func waitAllCompleted() throws {
        try withLoop { t in
            let a = try t.child(0.01, 1), b = try t.child(0.02, 2)
            defer { decref(a); decref(b) }
            let w = try waitTask(t, [Comb.raw(a), Comb.raw(b)])
            defer { decref(w) }
            #expect(t.runUntilComplete(w) == nil)
            let sets = try #require(Comb.waitSets(w))
            #expect(sets.done == [fut(a), fut(b)])
            #expect(sets.pending.isEmpty)
            #expect(t.time == 20 * nsPerMs)
        }
    }

    @Test("wait(FIRST_COMPLETED) returns once one future is done and cancels nothing")
    func waitFirstCompleted() throws {
        try withLoop { t in
            let a = try t.child(0.02, 1), b = try t.child(0.01, 2)
            defer { decref(a); decref(b) }
            let w = try waitTask(t, [Comb.raw(a), Comb.raw(b)], CA_FIRST_COMPLETED)
            defer { decref(w) }
            #expect(t.runUntilComplete(w) == nil)
            let sets = try #require(Comb.waitSets(w))
            #expect(sets.done == [fut(b)])
            #expect(sets.pending == [fut(a)])
            #expect(t.time == 10 * nsPerMs)
            t.runUntilComplete(a)
            #expect(outcome(a) == .int(1))
        }
    }

    @Test("wait(FIRST_EXCEPTION) returns at the first error")
    func waitFirstException() throws {
        try withLoop { t in
            let a = try t.child(0.01, 1), b = try t.child(0.02, raise: "ValueError", "b"), c = try t.child(0.03, 3)
            defer { decref(a); decref(b); decref(c) }
            let w = try waitTask(t, [Comb.raw(a), Comb.raw(b), Comb.raw(c)], CA_FIRST_EXCEPTION)
            defer { decref(w) }
            #expect(t.runUntilComplete(w) == nil)
            let sets = try #require(Comb.waitSets(w))
            #expect(sets.done == [fut(a), fut(b)])
            #expect(sets.pending == [fut(c)])
            #expect(t.time == 20 * nsPerMs)
            t.runUntilComplete(c)
        }
    }

    @Test("wait(FIRST_EXCEPTION) without any error waits for every future")
    func waitFirstExceptionWithoutErrorWaitsForAll() throws {
        try withLoop { t in
            let a = try t.child(0.01, 1), b = try t.child(0.02, 2)
            defer { decref(a); decref(b) }
            let w = try waitTask(t, [Comb.raw(a), Comb.raw(b)], CA_FIRST_EXCEPTION)
            defer { decref(w) }
            #expect(t.runUntilComplete(w) == nil)
            #expect(Comb.waitSets(w)?.pending.isEmpty == true)
            #expect(t.time == 20 * nsPerMs)
        }
    }

    @Test("wait() with a timeout returns the pending futures without raising or cancelling them")
    func waitTimeoutReturnsPending() throws {
        try withLoop { t in
            let a = try t.child(0.05, 1)
            defer { decref(a) }
            let w = try waitTask(t, [Comb.raw(a)], timeout: 0.01)
            defer { decref(w) }
            #expect(t.runUntilComplete(w) == nil)
            let sets = try #require(Comb.waitSets(w))
            #expect(sets.done.isEmpty)
            #expect(sets.pending == [fut(a)])
            #expect(t.time == 10 * nsPerMs)
            #expect(!ca_future_cancelled(fut(a)))
            t.runUntilComplete(a)
            #expect(outcome(a) == .int(1))
        }
    }

    @Test("wait() on futures that are already done still takes two loop iterations")
    func waitOnDoneFuturesSuspends() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(1)))
            let direct = t.buffer(ts_await_seen.self), viaWait = t.buffer(ts_await_seen.self)
            defer { ts_await_seen_clear(direct); ts_await_seen_clear(viaWait) }
            let w = ca_wait([Comb.raw(f)], 1, Comb.noTimeout, Int32(CA_ALL_COMPLETED.rawValue))!
            let t1 = try t.task(ts_cb_await(Comb.raw(f), t.loop, direct))
            let t2 = try t.task(ts_cb_await(Comb.raw(w), t.loop, viaWait))
            defer { decref(t1); decref(t2) }
            t.runUntilComplete(t2)
            #expect(direct.pointee.finished && viaWait.pointee.finished)
            #expect(viaWait.pointee.iteration == direct.pointee.iteration + 2)
        }
    }

    @Test("wait() repeats a future given twice only once")
    func waitDeduplicates() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(1)))
            let w = try waitTask(t, [Comb.raw(f), Comb.raw(f)])
            defer { decref(w) }
            t.runUntilComplete(w)
            #expect(Comb.waitSets(w)?.done == [f])
        }
    }

    @Test("cancelling a task in wait() leaves the futures running and removes its callbacks")
    func waitCancelledLeavesFuturesRunning() throws {
        try withLoop { t in
            let a = try t.child(0.05, 1)
            defer { decref(a) }
            let w = try waitTask(t, [Comb.raw(a)])
            defer { decref(w) }
            t.runOnce()
            t.runOnce()
            #expect(ca_future_get_callbacks(fut(a), nil, 0) == 1)
            _ = ca_task_cancel(w, nil)
            #expect(t.runUntilComplete(w)?.type == "CancelledError")
            #expect(!ca_future_cancelled(fut(a)))
            #expect(ca_future_get_callbacks(fut(a), nil, 0) == 0)
            t.runUntilComplete(a)
        }
    }

    @Test("a task in wait() is recorded as awaiting each future until it completes")
    func waitRecordsAwaitedBy() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let w = try waitTask(t, [Comb.raw(f)])
            defer { decref(w) }
            t.runOnce()
            #expect(Comb.awaiters(f) == [fut(w)])
            expectOK(ca_future_set_result(f, ca_none()))
            t.runUntilComplete(w)
            #expect(Comb.awaiters(f).isEmpty)
        }
    }

    // MARK: - wait_for (item 40)

    @Test("wait_for returns the result when the awaitable completes before the timeout")
    func waitForCompletesBeforeTimeout() throws {
        try withLoop { t in
            let inner = try t.child(0.01, 5)
            defer { decref(inner) }
            let w = try t.task(ca_wait_for(Comb.raw(inner), 1.0))
            defer { decref(w) }
            #expect(t.runUntilComplete(w) == nil)
            #expect(outcome(w) == .int(5))
            #expect(t.time == 10 * nsPerMs)
            t.runOnce()
            #expect(t.time == 10 * nsPerMs, "the deadline's timer was cancelled")
        }
    }

    @Test("wait_for cancels the awaited task and raises TimeoutError caused by its CancelledError")
    func waitForTimeoutCancelsInner() throws {
        try withLoop { t in
            let inner = try t.child(1.0, 5)
            defer { decref(inner) }
            let w = try t.task(ca_wait_for(Comb.raw(inner), 0.02))
            defer { decref(w) }
            let err = t.runUntilComplete(w)
            #expect(err?.type == "TimeoutError")
            #expect(err?.causeType == "CancelledError")
            #expect(t.time == 20 * nsPerMs)
            #expect(ca_future_cancelled(fut(inner)))
            #expect(ca_task_cancelling(w) == 0)
        }
    }

    @Test("wait_for(timeout <= 0) returns the result of a done future")
    func waitForZeroTimeoutDoneFuture() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(7)))
            let w = try t.task(ca_wait_for(Comb.raw(f), 0))
            defer { decref(w) }
            #expect(t.runUntilComplete(w) == nil)
            #expect(outcome(w) == .int(7))
        }
    }

    @Test("wait_for(timeout <= 0) cancels a pending future and raises TimeoutError from its CancelledError")
    func waitForZeroTimeoutCancelsPending() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let w = try t.task(ca_wait_for(Comb.raw(f), -1))
            defer { decref(w) }
            let err = t.runUntilComplete(w)
            #expect(err?.type == "TimeoutError")
            #expect(err?.causeType == "CancelledError")
            #expect(ca_future_cancelled(f))
            #expect(t.time == 0)
        }
    }

    @Test("wait_for(coroutine, 0) never starts the coroutine")
    func waitForZeroTimeoutNeverStartsCoroutine() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let seen = t.buffer(ts_await_seen.self)
            defer { ts_await_seen_clear(seen) }
            let coro = ts_cb_await(Comb.raw(f), t.loop, seen)!
            defer { decref(coro) }
            let w = try t.task(ca_wait_for(Comb.raw(coro), 0))
            defer { decref(w) }
            #expect(t.runUntilComplete(w)?.type == "TimeoutError")
            #expect(!seen.pointee.ran)
        }
    }

    @Test("wait_for returns the value of an awaited task that swallows the cancellation")
    func waitForInnerSwallowsCancel() throws {
        try withLoop { t in
            let inner = try t.task(ts_cb_sleep_swallow_cancel(1.0, 42))
            defer { decref(inner) }
            let w = try t.task(ca_wait_for(Comb.raw(inner), 0.02))
            defer { decref(w) }
            #expect(t.runUntilComplete(w) == nil)
            #expect(outcome(w) == .int(42))
            #expect(ca_task_cancelling(w) == 0)
        }
    }

    @Test("wait_for without a timeout awaits the future directly")
    func waitForNoTimeout() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let w = try t.task(ca_wait_for(Comb.raw(f), Comb.noTimeout))
            defer { decref(w) }
            t.runOnce()
            t.runOnce()
            #expect(!ca_future_done(fut(w)))
            #expect(ca_task_fut_waiter(w) == f)
            expectOK(ca_future_set_result(f, ca_int(3)))
            t.runUntilComplete(w)
            #expect(outcome(w) == .int(3))
        }
    }

    @Test("wait_for runs a coroutine inline in the caller's task")
    func waitForCoroutineRunsInline() throws {
        try withLoop { t in
            nonisolated(unsafe) var inside: TaskPtr?
            let box = Unmanaged.passRetained(CombInTask { _ = take(ca_current_task(nil, &inside)) })
            defer { box.release() }
            let coro = ts_cb_call_in_task({ arg in
                Unmanaged<CombInTask>.fromOpaque(arg!).takeUnretainedValue().body()
            }, box.toOpaque())!
            defer { decref(coro) }
            let w = try t.task(ca_wait_for(Comb.raw(coro), 1.0))
            defer { decref(w) }
            #expect(t.runUntilComplete(w) == nil)
            #expect(inside == w)
        }
    }

    @Test("cancelling the caller of wait_for cancels the awaited task with the caller's message")
    func waitForOuterCancelCancelsInner() throws {
        try withLoop { t in
            let inner = try t.task(ts_cb_sleep_with_cleanup(0.1, 0.003, 0))
            defer { decref(inner) }
            let w = try t.task(ca_wait_for(Comb.raw(inner), 0.5))
            defer { decref(w) }
            t.runOnce()
            t.runOnce()
            #expect(ca_task_cancel(w, "from main"))
            let err = t.runUntilComplete(w)
            #expect(err?.type == "CancelledError")
            #expect(err?.message == "from main")
            #expect(ca_future_cancelled(fut(inner)))
            #expect(t.time == 3 * nsPerMs)
        }
    }

    // MARK: - as_completed (item 41)

    private func asCompleted(_ t: TestLoop, _ aws: [UnsafeMutableRawPointer?],
                             timeout: Double = Comb.noTimeout) throws -> OpaquePointer {
        var out: OpaquePointer?
        if let e = take(ca_as_completed(t.loop, aws, aws.count, timeout, &out)) {
            throw TestFailure("as_completed failed: \(e)")
        }
        return try #require(out)
    }

    /// Runs the coroutine of one __next__ step as a task and returns its outcome.
    private func nextStep(_ t: TestLoop, _ it: OpaquePointer) throws -> Outcome? {
        var coro: CoroPtr?
        if let e = take(ca_as_completed_next(it, &coro)) {
            return e.type == "StopIteration" ? nil : .error(e.type, e.message)
        }
        let step = try t.task(coro)
        defer { decref(step) }
        t.runUntilComplete(step)
        return outcome(step)
    }

    @Test("as_completed yields the results in completion order")
    func asCompletedInCompletionOrder() throws {
        try withLoop { t in
            let a = try t.child(0.03, 1), b = try t.child(0.01, 2), c = try t.child(0.02, 3)
            defer { [a, b, c].forEach { decref($0) } }
            let it = try asCompleted(t, [Comb.raw(a), Comb.raw(b), Comb.raw(c)])
            defer { decref(it) }
            #expect(ca_as_completed_remaining(it) == 3)
            var results: [Outcome] = []
            while let r = try nextStep(t, it) { results.append(r) }
            #expect(results == [.int(2), .int(3), .int(1)])
        }
    }

    @Test("as_completed's async iteration yields the input tasks themselves")
    func asCompletedAsyncYieldsInputTasks() throws {
        try withLoop { t in
            let a = try t.child(0.02, 1), b = try t.child(0.01, 2)
            defer { decref(a); decref(b) }
            let it = try asCompleted(t, [Comb.raw(a), Comb.raw(b)])
            defer { decref(it) }
            var yielded: [UnsafeMutablePointer<ca_object>?] = []
            for _ in 0..<2 {
                let step = try t.task(ca_as_completed_anext(it))
                defer { decref(step) }
                #expect(t.runUntilComplete(step) == nil)
                yielded.append(fut(step).pointee.fut_result.u.obj)
            }
            #expect(yielded == [UnsafeMutableRawPointer(b), UnsafeMutableRawPointer(a)].map {
                $0.assumingMemoryBound(to: ca_object.self)
            })
            let end = try t.task(ca_as_completed_anext(it))
            defer { decref(end) }
            #expect(t.runUntilComplete(end)?.type == "StopAsyncIteration")
        }
    }

    @Test("after its timeout as_completed raises TimeoutError for every step left, then stops")
    func asCompletedTimeout() throws {
        try withLoop { t in
            let a = try t.child(0.01, 1), b = try t.child(0.5, 2), c = try t.child(0.6, 3)
            defer { [a, b, c].forEach { decref($0) } }
            let it = try asCompleted(t, [Comb.raw(a), Comb.raw(b), Comb.raw(c)], timeout: 0.1)
            defer { decref(it) }
            #expect(try nextStep(t, it) == .int(1))
            #expect(try nextStep(t, it) == .error("TimeoutError", nil))
            #expect(t.time == 100 * nsPerMs)
            #expect(try nextStep(t, it) == .error("TimeoutError", nil))
            #expect(try nextStep(t, it) == nil)
            #expect(!ca_future_cancelled(fut(b)))
            t.runUntilComplete(c)
        }
    }

    @Test("as_completed's steps raise the error of a failed awaitable")
    func asCompletedRaisesErrors() throws {
        try withLoop { t in
            let a = try t.child(0.01, raise: "ValueError", "x")
            defer { decref(a) }
            let it = try asCompleted(t, [Comb.raw(a)])
            defer { decref(it) }
            #expect(try nextStep(t, it) == .error("ValueError", "x"))
        }
    }

    // MARK: - Error chains (item 45)

    @Test("re-awaiting a failed task inside the handler of its own error does not chain the error to itself")
    func reawaitingFailedTaskMakesNoCycle() throws {
        try withLoop { t in
            let failing = try t.child(-1, raise: "ValueError", "x")
            defer { decref(failing) }
            t.runUntilComplete(failing)
            let seen = t.buffer(ts_chain_seen.self)
            defer { ts_chain_seen_clear(seen) }
            let task = try t.task(ts_cb_await_failing_twice(fut(failing), seen))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            #expect(seen.pointee.first == seen.pointee.second)
            #expect(seen.pointee.second?.pointee.context == nil)
        }
    }
}

// MARK: - Allocations per operation

@Suite("Combinator allocations")
struct CombinatorAllocationTests {
    private func allocations(_ op: ts_cb_op) throws -> Int64 {
        try withLoop { t in
            let allocs = t.buffer(Int64.self)
            let task = try t.task(ts_cb_measure_op(Int32(op.rawValue), 1_000, 5_000, allocs))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            return allocs.pointee
        }
    }

    @Test("await gather(two tasks) allocates nothing per operation in steady state")
    func gatherSteadyState() throws { #expect(try allocations(TS_CB_OP_GATHER) == 0) }

    @Test("await wait(two tasks) allocates nothing per operation in steady state")
    func waitSteadyState() throws { #expect(try allocations(TS_CB_OP_WAIT) == 0) }

    @Test("await wait_for(coroutine, timeout) allocates nothing per operation in steady state")
    func waitForSteadyState() throws { #expect(try allocations(TS_CB_OP_WAIT_FOR) == 0) }

    @Test("a timeout block allocates nothing per operation in steady state")
    func timeoutSteadyState() throws { #expect(try allocations(TS_CB_OP_TIMEOUT) == 0) }

    @Test("a TaskGroup block with two children allocates nothing per operation in steady state")
    func taskGroupSteadyState() throws { #expect(try allocations(TS_CB_OP_TASKGROUP) == 0) }

    @Test("await shield(task) allocates nothing per operation in steady state")
    func shieldSteadyState() throws { #expect(try allocations(TS_CB_OP_SHIELD) == 0) }
}
