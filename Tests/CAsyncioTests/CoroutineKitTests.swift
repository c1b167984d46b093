// The coroutine protocol (send / throw / close) and the C coroutine kit,
// driven directly without a task (issue 2 deliverable 4, notes §7 item 17).

import CAsyncio
import CAsyncioTestSupport
import Testing

/// One resumption's outcome, with the references it carried released.
struct Step: Equatable, CustomStringConvertible {
    enum Kind: Equatable { case yield, ret, raise }
    var kind: Kind
    var future: FuturePtr?
    var value: Int64?
    var error: String?
    var errorMessage: String?

    var description: String {
        switch kind {
        case .yield: return "YIELD(\(future.map { "\($0)" } ?? "bare"))"
        case .ret: return "RETURN(\(value.map { "\($0)" } ?? "-"))"
        case .raise: return "RAISE(\(error ?? "?"): \(errorMessage ?? "-"))"
        }
    }

    static func yielded(_ f: FuturePtr?) -> Step { Step(kind: .yield, future: f) }
    static func returned(_ v: Int64) -> Step { Step(kind: .ret, value: v) }
    static func raised(_ t: String, _ m: String? = nil) -> Step { Step(kind: .raise, error: t, errorMessage: m) }
}

private func step(_ status: ca_coro_status, _ res: inout ca_coro_result) -> Step {
    switch status {
    case CA_CORO_YIELD:
        let f = res.future
        decref(f)
        return .yielded(f)
    case CA_CORO_RETURN:
        let v = res.value.kind == CA_VALUE_INT ? res.value.u.i : nil
        ca_value_clear(&res.value)
        return Step(kind: .ret, value: v)
    default:
        let info = take(res.error)
        return .raised(info?.type ?? "?", info?.message)
    }
}

/// send(None) into `coro`.
func send(_ coro: CoroPtr) -> Step {
    var res = ca_coro_result()
    let st = ca_coro_send(coro, ca_none(), &res)
    return step(st, &res)
}

/// throw(error) into `coro` (the error stays owned by the caller).
func throwInto(_ coro: CoroPtr, _ e: ErrorPtr) -> (Step, ErrorPtr?) {
    var res = ca_coro_result()
    let st = ca_coro_throw(coro, e, &res)
    let raised = st == CA_CORO_RAISE ? res.error : nil
    return (step(st, &res), raised)
}

/// Closes and releases a coroutine.
func drop(_ coro: CoroPtr) {
    ca_coro_close(coro)
    decref(coro)
}

@Suite("Coroutine kit")
struct CoroutineKitTests {

    @Test("a coroutine that returns reports RETURN with its value")
    func returnReportsValue() throws {
        let coro = try #require(ts_coro_return_int(3))
        defer { decref(coro) }
        #expect(send(coro) == .returned(3))
    }

    @Test("a raising coroutine reports RAISE with its error")
    func raiseReportsError() throws {
        let coro = try #require(ts_coro_raise(errorType("ValueError"), "x"))
        defer { decref(coro) }
        #expect(send(coro) == .raised("ValueError", "x"))
    }

    @Test("a coroutine goes CREATED → SUSPENDED → CLOSED")
    func stateTransitions() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let coro = try #require(ts_coro_await_plus_one(f))
            defer { decref(coro) }
            #expect(coro.pointee.co_state == UInt8(CA_CORO_CREATED.rawValue))
            _ = send(coro)
            #expect(coro.pointee.co_state == UInt8(CA_CORO_SUSPENDED.rawValue))
            expectOK(ca_future_set_result(f, ca_int(1)))
            ca_future_set_blocking(f, false)
            #expect(send(coro) == .returned(2))
            #expect(coro.pointee.co_state == UInt8(CA_CORO_CLOSED.rawValue))
        }
    }

    @Test("awaiting a pending future yields that very future with its blocking flag set")
    func awaitPendingYieldsFuture() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let coro = try #require(ts_coro_await_plus_one(f))
            defer { drop(coro) }
            #expect(send(coro) == .yielded(f))
            #expect(ca_future_get_blocking(f))
        }
    }

    @Test("awaiting a done future does not suspend")
    func awaitDoneDoesNotSuspend() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(4)))
            let coro = try #require(ts_coro_await_plus_one(f))
            defer { decref(coro) }
            #expect(send(coro) == .returned(5))
        }
    }

    @Test("after the awaited future completes, send() resumes with its result")
    func resumeAfterCompletion() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let coro = try #require(ts_coro_await_plus_one(f))
            defer { decref(coro) }
            #expect(send(coro) == .yielded(f))
            expectOK(ca_future_set_result(f, ca_int(10)))
            ca_future_set_blocking(f, false)
            #expect(send(coro) == .returned(11))
        }
    }

    @Test("resuming while the awaited future is still pending raises RuntimeError \"await wasn't used with future\"")
    func resumeWhilePendingFails() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let coro = try #require(ts_coro_await_plus_one(f))
            defer { decref(coro) }
            #expect(send(coro) == .yielded(f))
            #expect(send(coro) == .raised("RuntimeError", "await wasn't used with future"))
        }
    }

    @Test("awaiting a future that is already done a second time does not yield again")
    func secondAwaitOfDoneFutureDoesNotYield() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let coro = try #require(ts_coro_await_twice(f))
            defer { decref(coro) }
            #expect(send(coro) == .yielded(f))
            expectOK(ca_future_set_result(f, ca_int(3)))
            ca_future_set_blocking(f, false)
            #expect(send(coro) == .returned(6))
        }
    }

    @Test("throw() at an await reaches the coroutine's try")
    func throwIsCaughtAtAwait() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let coro = try #require(ts_coro_await_catch_cancel(f, 42))
            defer { decref(coro) }
            #expect(send(coro) == .yielded(f))
            let e = makeError("CancelledError")
            defer { decref(e) }
            #expect(throwInto(coro, e).0 == .returned(42))
        }
    }

    @Test("an error thrown at a plain await propagates out as that same error")
    func throwPropagates() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let coro = try #require(ts_coro_await_plus_one(f))
            defer { decref(coro) }
            _ = send(coro)
            let e = makeError("ValueError", "thrown")
            defer { decref(e) }
            let (s, raised) = throwInto(coro, e)
            #expect(s == .raised("ValueError", "thrown"))
            #expect(raised == e)
        }
    }

    @Test("throw() into a coroutine that never started raises the error at once and closes it")
    func throwIntoCreated() throws {
        let finalized = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        defer { finalized.deallocate() }
        finalized.pointee = 0
        let coro = try #require(ts_coro_finalize_counter(finalized))
        defer { decref(coro) }
        let e = makeError("ValueError")
        defer { decref(e) }
        let (s, raised) = throwInto(coro, e)
        #expect(s == .raised("ValueError"))
        #expect(raised == e)
        #expect(coro.pointee.co_state == UInt8(CA_CORO_CLOSED.rawValue))
    }

    @Test("send() to a finished coroutine raises RuntimeError 'cannot reuse already awaited coroutine'")
    func sendToFinished() throws {
        let coro = try #require(ts_coro_return_int(1))
        defer { decref(coro) }
        _ = send(coro)
        #expect(send(coro) == .raised("RuntimeError", "cannot reuse already awaited coroutine"))
    }

    // CPython's gen_send_ex2 raises ValueError here (coro.h's comment says RuntimeError).
    @Test("send() into a running coroutine raises ValueError 'coroutine already executing'")
    func sendWhileRunning() throws {
        let report = UnsafeMutablePointer<ts_report>.allocate(capacity: 1)
        report.initialize(to: ts_report())
        defer { ts_report_clear(report); report.deallocate() }
        let coro = try #require(ts_coro_reenter(report))
        defer { decref(coro) }
        #expect(send(coro) == .returned(7))
        #expect(report.pointee.ran)
        #expect(report.pointee.value == Int64(CA_CORO_RAISE.rawValue))
        let err = report.pointee.error.map { ErrorInfo($0) }
        #expect(err?.type == "ValueError")
        #expect(err?.message == "coroutine already executing")
    }

    @Test("close() releases the future a suspended coroutine awaits")
    func closeReleasesAwaitedFuture() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let before = refcount(f)
            let coro = try #require(ts_coro_await_plus_one(f))
            defer { decref(coro) }
            _ = send(coro)
            #expect(refcount(f) > before)
            ca_coro_close(coro)
            #expect(refcount(f) == before)
            #expect(coro.pointee.co_state == UInt8(CA_CORO_CLOSED.rawValue))
        }
    }

    @Test("a finished coroutine no longer holds the future it awaited")
    func finishedCoroutineReleasesAwaited() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let before = refcount(f)
            let coro = try #require(ts_coro_await_plus_one(f))
            defer { decref(coro) }
            _ = send(coro)
            expectOK(ca_future_set_result(f, ca_int(1)))
            ca_future_set_blocking(f, false)
            #expect(send(coro) == .returned(2))
            #expect(refcount(f) == before)
        }
    }

    @Test("a coroutine carries its name, file and the line it is suspended at")
    func nameFileAndLine() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let coro = try #require(ts_coro_await_plus_one(f))
            defer { drop(coro) }
            #expect(String(cString: coro.pointee.co_name) == "await_plus_one")
            #expect(String(cString: coro.pointee.co_filename).hasSuffix("coroutines.c"))
            #expect(coro.pointee.co_firstlineno > 0)
            #expect(coro.pointee.co_lineno == 0)
            _ = send(coro)
            #expect(coro.pointee.co_lineno == ts_coro_await_plus_one_line(coro))
            #expect(coro.pointee.co_lineno > coro.pointee.co_firstlineno)
        }
    }

    @Test("awaiting a coroutine returns its return value")
    func awaitCoroutineReturnsValue() throws {
        let coro = try #require(ts_coro_await_coro_plus_one(ts_coro_return_int(4)))
        defer { decref(coro) }
        #expect(send(coro) == .returned(5))
    }

    @Test("a delegated await passes the inner coroutine's yield through and records co_awaiting")
    func delegatedAwaitYieldsThrough() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let inner = try #require(ts_coro_await_plus_one(f))
            let outer = try #require(ts_coro_await_coro_plus_one(inner))
            defer { decref(outer) }
            #expect(send(outer) == .yielded(f))
            #expect(outer.pointee.co_awaiting == inner)
            expectOK(ca_future_set_result(f, ca_int(1)))
            ca_future_set_blocking(f, false)
            #expect(send(outer) == .returned(3))
            #expect(outer.pointee.co_awaiting == nil)
        }
    }

    @Test("a bare yield reports YIELD without a future, and frame fields survive suspensions")
    func bareYieldsKeepFrameState() throws {
        let coro = try #require(ts_coro_count_yields(3))
        defer { decref(coro) }
        #expect(send(coro) == .yielded(nil))
        #expect(send(coro) == .yielded(nil))
        #expect(send(coro) == .yielded(nil))
        #expect(send(coro) == .returned(3))
    }

    @Test("sleep(0) as a coroutine yields once without a future, then returns its result")
    func sleepZeroCoroutine() throws {
        let coro = try #require(ca_sleep(0, ca_int(5)))
        defer { decref(coro) }
        #expect(send(coro) == .yielded(nil))
        #expect(send(coro) == .returned(5))
    }

    @Test("a frame's finalizer runs once when the coroutine is released")
    func finalizerRunsOnRelease() throws {
        let finalized = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        defer { finalized.deallocate() }
        finalized.pointee = 0
        let coro = try #require(ts_coro_finalize_counter(finalized))
        #expect(send(coro) == .returned(0))
        #expect(finalized.pointee == 0)
        decref(coro)
        #expect(finalized.pointee == 1)
    }

    @Test("ca_coro_check accepts kit coroutines and rejects futures")
    func coroCheck() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let coro = try #require(ts_coro_return_int(1))
            defer { decref(coro) }
            #expect(ca_coro_check(coro))
            #expect(!ca_coro_check(f))
        }
    }
}
