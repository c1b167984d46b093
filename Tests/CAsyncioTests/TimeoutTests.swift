// asyncio.timeout / timeout_at (timeouts.py): deadlines, nesting,
// rescheduling, reprs and error conversion (notes §7 items 46–52).

import CAsyncio
import CAsyncioTestSupport
import Testing

private typealias ScriptPtr = UnsafeMutablePointer<ts_tm_script>

/// Runs `async with timeout(...)` driven by a script in a new task until it
/// is done; returns the task (owned) and what the task's result() raised.
private func runScript(_ t: TestLoop, _ s: ScriptPtr) throws -> (TaskPtr, ErrorInfo?) {
    let task = try t.task(ts_cb_timeout(s))
    return (task, t.runUntilComplete(task))
}

private func script(_ t: TestLoop, delay: Double = Comb.noTimeout, at: Int64? = nil, body: ts_tm_body = TS_TM_SLEEP,
                    sleep: Double = 0) -> ScriptPtr {
    let s = t.buffer(ts_tm_script.self)
    s.pointee.delay = delay
    if let at {
        s.pointee.use_at = true
        s.pointee.at = at
    }
    s.pointee.body = Int32(body.rawValue)
    s.pointee.sleep = sleep
    return s
}

private func state(_ tm: UnsafeMutablePointer<ca_timeout>?) -> String {
    tm.map { String(cString: ca_timeout_state_name($0)) } ?? "nil"
}

@Suite("Timeout")
struct TimeoutTests {

    // MARK: - Expiry (items 46, 50)

    @Test("timeout(0.01) around sleep(10) raises TimeoutError caused by the CancelledError, and expired() is true")
    func timeoutExpires() throws {
        try withLoop { t in
            let s = script(t, delay: 0.01, sleep: 10)
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err?.type == "TimeoutError")
            #expect(err?.message == nil)
            #expect(err?.causeType == "CancelledError")
            #expect(err?.contextType == "CancelledError")
            #expect(err?.suppressContext == true)
            #expect(Comb.text(s.pointee.body_error) == "CancelledError")
            #expect(s.pointee.expired_in_body)
            #expect(ca_timeout_expired(s.pointee.tm))
            #expect(state(s.pointee.tm) == "expired")
            #expect(t.time == 10 * nsPerMs)
            #expect(s.pointee.cancelling_after == 0)
            #expect(!ca_future_cancelled(fut(task)))
        }
    }

    @Test("a timeout whose deadline does not pass exits normally, finished and not expired")
    func timeoutNotReached() throws {
        try withLoop { t in
            let s = script(t, delay: 1.0, sleep: 0.01)
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err == nil)
            #expect(!ca_timeout_expired(s.pointee.tm))
            #expect(state(s.pointee.tm) == "finished")
            t.runOnce()
            #expect(t.time == 10 * nsPerMs, "the deadline's timer was cancelled at exit")
        }
    }

    @Test("timeout(0) fires on the next iteration, even around sleep(0)")
    func timeoutZeroFiresAroundSleepZero() throws {
        try withLoop { t in
            let s = script(t, delay: 0, sleep: 0)
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err?.type == "TimeoutError")
            #expect(Comb.text(s.pointee.body_error) == "CancelledError")
            #expect(t.time == 0)
        }
    }

    @Test("a negative delay fires on the next iteration")
    func timeoutNegativeDelayFiresAtOnce() throws {
        try withLoop { t in
            let s = script(t, delay: -5, sleep: 1)
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err?.type == "TimeoutError")
            #expect(t.time == 0)
        }
    }

    @Test("timeout_at(when) fires at that loop time")
    func timeoutAtFiresAtDeadline() throws {
        try withLoop { t in
            let s = script(t, at: 25 * nsPerMs, sleep: 10)
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err?.type == "TimeoutError")
            #expect(t.time == 25 * nsPerMs)
            #expect(ca_timeout_when(s.pointee.tm) == 25 * nsPerMs)
        }
    }

    // MARK: - Nesting (item 47)

    @Test("nested timeouts with equal deadlines: the inner block sees CancelledError, only the outer raises TimeoutError")
    func nestedEqualDeadlinesConvertOnce() throws {
        try withLoop { t in
            let s = t.buffer(ts_nested_seen.self)
            defer { ts_nested_seen_clear(s) }
            let task = try t.task(ts_cb_nested_timeouts(0.01, 0.01, 10, s))
            defer { decref(task) }
            #expect(t.runUntilComplete(task)?.type == "TimeoutError")
            #expect(Comb.text(s.pointee.body_error) == "CancelledError")
            #expect(Comb.text(s.pointee.inner_error) == "CancelledError")
            #expect(Comb.text(s.pointee.outer_error) == "TimeoutError")
            #expect(ca_timeout_expired(s.pointee.inner))
            #expect(ca_timeout_expired(s.pointee.outer))
            #expect(ca_task_cancelling(task) == 0)
        }
    }

    @Test("nested timeouts: a shorter inner deadline converts in the inner block and the outer passes it on")
    func nestedInnerFiresFirst() throws {
        try withLoop { t in
            let s = t.buffer(ts_nested_seen.self)
            defer { ts_nested_seen_clear(s) }
            let task = try t.task(ts_cb_nested_timeouts(1.0, 0.01, 10, s))
            defer { decref(task) }
            #expect(t.runUntilComplete(task)?.type == "TimeoutError")
            #expect(Comb.text(s.pointee.inner_error) == "TimeoutError")
            #expect(s.pointee.outer_error == s.pointee.inner_error)
            #expect(ca_timeout_expired(s.pointee.inner))
            #expect(!ca_timeout_expired(s.pointee.outer))
        }
    }

    @Test("nested timeouts: a shorter outer deadline passes through the inner block as CancelledError")
    func nestedOuterFiresFirst() throws {
        try withLoop { t in
            let s = t.buffer(ts_nested_seen.self)
            defer { ts_nested_seen_clear(s) }
            let task = try t.task(ts_cb_nested_timeouts(0.01, 1.0, 10, s))
            defer { decref(task) }
            #expect(t.runUntilComplete(task)?.type == "TimeoutError")
            #expect(Comb.text(s.pointee.inner_error) == "CancelledError")
            #expect(Comb.text(s.pointee.outer_error) == "TimeoutError")
            #expect(!ca_timeout_expired(s.pointee.inner))
            #expect(ca_timeout_expired(s.pointee.outer))
        }
    }

    // MARK: - No deadline and reschedule (item 48)

    @Test("timeout(None) never fires and when() is None")
    func timeoutNoneNeverFires() throws {
        try withLoop { t in
            let s = script(t, delay: Comb.noTimeout, sleep: 10)
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err == nil)
            #expect(ca_timeout_when(s.pointee.tm) == Int64.max)
            #expect(!ca_timeout_expired(s.pointee.tm))
            #expect(t.time == 10 * nsPerSecond)
        }
    }

    @Test("timeout_at(None) never fires")
    func timeoutAtNoneNeverFires() throws {
        try withLoop { t in
            let s = script(t, at: Int64.max, sleep: 3)
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err == nil)
            #expect(state(s.pointee.tm) == "finished")
        }
    }

    @Test("reschedule() moves the deadline")
    func rescheduleMovesDeadline() throws {
        try withLoop { t in
            let s = script(t, delay: 0.01, body: TS_TM_RESCHEDULE, sleep: 1)
            s.pointee.resched_at = 50 * nsPerMs
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(s.pointee.reschedule_error == nil)
            #expect(err?.type == "TimeoutError")
            #expect(t.time == 50 * nsPerMs)
            #expect(ca_timeout_when(s.pointee.tm) == 50 * nsPerMs)
        }
    }

    @Test("reschedule(None) disables the deadline")
    func rescheduleNoneDisables() throws {
        try withLoop { t in
            let s = script(t, delay: 0.01, body: TS_TM_RESCHEDULE, sleep: 0.1)
            s.pointee.resched_at = Int64.max
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err == nil)
            #expect(!ca_timeout_expired(s.pointee.tm))
            #expect(t.time == 100 * nsPerMs)
        }
    }

    @Test("reschedule() into the past fires on the next iteration")
    func rescheduleIntoPastFiresAtOnce() throws {
        try withLoop { t in
            let s = script(t, delay: Comb.noTimeout, body: TS_TM_RESCHEDULE, sleep: 10)
            s.pointee.resched_at = -1
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err?.type == "TimeoutError")
            #expect(t.time == 0)
        }
    }

    @Test("reschedule() before entering raises RuntimeError 'Timeout has not been entered'")
    func rescheduleBeforeEnterIsRuntimeError() throws {
        var tm: UnsafeMutablePointer<ca_timeout>?
        expectOK(ca_timeout_at_new(Int64.max, &tm))
        defer { decref(tm) }
        let err = take(ca_timeout_reschedule(tm, 5))
        #expect(err?.type == "RuntimeError")
        #expect(err?.message == "Timeout has not been entered")
    }

    @Test("reschedule() after the block raises RuntimeError 'Cannot change state of <state> Timeout'")
    func rescheduleAfterExitIsRuntimeError() throws {
        try withLoop { t in
            let done = script(t, delay: 1.0, sleep: 0)
            let fired = script(t, delay: 0, sleep: 1)
            defer { ts_tm_script_clear(done); ts_tm_script_clear(fired) }
            let (t1, _) = try runScript(t, done)
            let (t2, _) = try runScript(t, fired)
            defer { decref(t1); decref(t2) }
            let e1 = take(ca_timeout_reschedule(done.pointee.tm, 5))
            let e2 = take(ca_timeout_reschedule(fired.pointee.tm, 5))
            #expect(e1?.type == "RuntimeError")
            #expect(e1?.message == "Cannot change state of finished Timeout")
            #expect(e2?.message == "Cannot change state of expired Timeout")
        }
    }

    // MARK: - Other errors and outside cancellation (item 49)

    @Test("an error raised in the block propagates unchanged and expired() stays false")
    func foreignErrorPassesThrough() throws {
        try withLoop { t in
            let s = script(t, delay: 1.0, body: TS_TM_RAISE)
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err?.type == "ValueError")
            #expect(err?.message == "boom")
            #expect(err?.contextType == nil)
            #expect(!ca_timeout_expired(s.pointee.tm))
            #expect(state(s.pointee.tm) == "finished")
        }
    }

    @Test("a cancel from outside before the deadline propagates as CancelledError")
    func externalCancelBeforeDeadlinePropagates() throws {
        try withLoop { t in
            let s = script(t, delay: 1.0, sleep: 10)
            defer { ts_tm_script_clear(s) }
            let task = try t.task(ts_cb_timeout(s))
            defer { decref(task) }
            t.runOnce()
            #expect(ca_task_cancel(task, "ext"))
            let err = t.runUntilComplete(task)
            #expect(err?.type == "CancelledError")
            #expect(err?.message == "ext")
            #expect(!ca_timeout_expired(s.pointee.tm))
            #expect(ca_future_cancelled(fut(task)))
        }
    }

    @Test("a second cancel request arriving with the deadline wins: CancelledError propagates")
    func externalCancelWinsOverTimeout() throws {
        try withLoop { t in
            let s = script(t, delay: 0.02, sleep: 10)
            defer { ts_tm_script_clear(s) }
            let task = try t.task(ts_cb_timeout(s))
            defer { decref(task) }
            // Queued before the timeout's own timer, so it runs first in the same iteration.
            expectOK(ca_loop_call_later(t.loop, 20 * nsPerMs, ts_cb_cancel_task, UnsafeMutableRawPointer(task),
                                        nil, nil, nil))
            let err = t.runUntilComplete(task)
            #expect(err?.type == "CancelledError")
            #expect(ca_timeout_expired(s.pointee.tm))
            #expect(s.pointee.cancelling_after == 1)
        }
    }

    @Test("an error raised from the CancelledError after expiry gets a TimeoutError inserted in its context chain")
    func expiredBlockInsertsTimeoutErrorInContext() throws {
        try withLoop { t in
            let s = script(t, delay: 0.01, body: TS_TM_SLEEP_CONVERT, sleep: 10)
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(err?.type == "ValueError")
            #expect(err?.message == "converted")
            #expect(err?.contextType == "TimeoutError")
            let te = try #require(s.pointee.error?.pointee.context)
            #expect(Comb.text(te.pointee.context) == "CancelledError")
            #expect(te.pointee.cause == te.pointee.context)
            #expect(!te.pointee.suppress_context)
        }
    }

    @Test("for an ExceptionGroup the TimeoutError is inserted into the group's and each member's chain")
    func expiredBlockInsertsIntoGroupMembers() throws {
        try withLoop { t in
            var tm: UnsafeMutablePointer<ca_timeout>?
            expectOK(ca_timeout_at_new(0, &tm))
            defer { decref(tm) }
            try CombInTask.run(t) { expectOK(ca_timeout_enter(tm)) }
            t.runOnce()
            #expect(ca_timeout_expired(tm))
            let cancelled = makeError("CancelledError")
            let member = makeError("ValueError", "m")
            ca_error_set_context(member, cancelled)
            var members: [ErrorPtr?] = [member]
            let group = ca_error_group_new("g", &members, 1)!
            ca_error_set_context(group, cancelled)
            decref(member)
            decref(cancelled)
            let out = try #require(ca_timeout_exit(tm, group))
            defer { decref(out) }
            #expect(out == group)
            #expect(Comb.text(out.pointee.context) == "TimeoutError")
            #expect(Comb.text(out.pointee.children[0]!.pointee.context) == "TimeoutError")
            #expect(Comb.text(out.pointee.children[0]!.pointee.context!.pointee.context) == "CancelledError")
        }
    }

    // MARK: - Cancel-count baseline (item 52)

    @Test("a timeout entered after the task swallowed a cancel still raises TimeoutError")
    func baselineTakenAtEntry() throws {
        try withLoop { t in
            let s = script(t, delay: 0, sleep: 0.01)
            s.pointee.swallow_cancel_first = true
            defer { ts_tm_script_clear(s) }
            let (task, err) = try runScript(t, s)
            defer { decref(task) }
            #expect(s.pointee.cancelling_at_entry == 1)
            #expect(err?.type == "TimeoutError")
            #expect(s.pointee.cancelling_after == 1)
        }
    }

    // MARK: - Errors of misuse

    @Test("entering a timeout twice raises RuntimeError 'Timeout has already been entered'")
    func enterTwiceIsRuntimeError() throws {
        try withLoop { t in
            var tm: UnsafeMutablePointer<ca_timeout>?
            expectOK(ca_timeout_at_new(Int64.max, &tm))
            defer { decref(tm) }
            nonisolated(unsafe) var second: ErrorInfo?
            try CombInTask.run(t) {
                expectOK(ca_timeout_enter(tm))
                second = take(ca_timeout_enter(tm))
                expectOK(ca_timeout_exit(tm, nil))
            }
            #expect(second?.type == "RuntimeError")
            #expect(second?.message == "Timeout has already been entered")
        }
    }

    @Test("entering a timeout without a running loop raises RuntimeError")
    func enterOutsideLoopIsRuntimeError() {
        var tm: UnsafeMutablePointer<ca_timeout>?
        expectOK(ca_timeout_at_new(Int64.max, &tm))
        defer { decref(tm) }
        let err = take(ca_timeout_enter(tm))
        #expect(err?.type == "RuntimeError")
        #expect(state(tm) == "created")
    }

    @Test("timeout(delay) without a running loop raises RuntimeError 'no running event loop'")
    func timeoutOutsideLoopIsRuntimeError() {
        var tm: UnsafeMutablePointer<ca_timeout>?
        let err = take(ca_timeout_new(1.0, &tm))
        #expect(err?.type == "RuntimeError")
        #expect(err?.message == "no running event loop")
        #expect(tm == nil)
    }

    @Test("exiting a timeout that was never entered returns RuntimeError with the body's error as context")
    func exitWithoutEnterIsRuntimeError() {
        var tm: UnsafeMutablePointer<ca_timeout>?
        expectOK(ca_timeout_at_new(Int64.max, &tm))
        defer { decref(tm) }
        let err = take(ca_timeout_exit(tm, makeError("ValueError", "body")))
        #expect(err?.type == "RuntimeError")
        #expect(err?.message == "Timeout has not been entered")
        #expect(err?.contextType == "ValueError")
    }

    // MARK: - repr (item 51)

    @Test("repr shows the state, and the deadline in seconds while active")
    func reprs() throws {
        try withLoop { t in
            var at: UnsafeMutablePointer<ca_timeout>?, none: UnsafeMutablePointer<ca_timeout>?
            expectOK(ca_timeout_at_new(12_500_000_000, &at))
            expectOK(ca_timeout_at_new(Int64.max, &none))
            defer { decref(at); decref(none) }
            #expect(Comb.timeoutRepr(at!) == "<Timeout [created]>")
            nonisolated(unsafe) var active: [String] = []
            try CombInTask.run(t) {
                expectOK(ca_timeout_enter(at))
                expectOK(ca_timeout_enter(none))
                active = [Comb.timeoutRepr(at!), Comb.timeoutRepr(none!)]
                expectOK(ca_timeout_exit(none, nil))
                expectOK(ca_timeout_exit(at, nil))
            }
            #expect(active == ["<Timeout [active] when=12.5>", "<Timeout [active] when=None>"])
            #expect(Comb.timeoutRepr(at!) == "<Timeout [finished]>")
            let s = script(t, delay: 0.01, sleep: 1)
            defer { ts_tm_script_clear(s) }
            let (task, _) = try runScript(t, s)
            defer { decref(task) }
            #expect(Comb.timeoutRepr(s.pointee.tm!) == "<Timeout [expired]>")
        }
    }
}
