// asyncio.TaskGroup (taskgroups.py 3.14): waiting for children, aborting on
// the first error, error groups, the owner's cancellation (notes §7 items 53–58).

import CAsyncio
import CAsyncioTestSupport
import Testing

private typealias GroupScript = UnsafeMutablePointer<ts_tg_script>

private func groupScript(_ t: TestLoop, body: ts_tg_body = TS_TG_NOTHING, sleep: Double = 0,
                         raise: String? = nil) -> GroupScript {
    let s = t.buffer(ts_tg_script.self)
    s.pointee.body = Int32(body.rawValue)
    s.pointee.body_sleep = sleep
    s.pointee.body_raise = raise.map { errorType($0) }
    return s
}

/// A child `sleep(delay); raise/return` (taken by the script).
private func addChild(_ s: GroupScript, _ delay: Double, _ value: Int64 = 0, raise: String? = nil,
                      _ msg: String? = nil, eager: Int32 = 0) {
    let type = raise.map { errorType($0) }
    let coro = msg.withOptionalCString { ts_cb_sleep_then(delay, value, type, $0) }
    ts_tg_add_child(s, coro, eager)
}

private func child(_ s: GroupScript, _ i: Int) -> TaskPtr { ts_tg_task(s, i)! }

/// Lets virtual time pass: runs a sleep(seconds) task to completion.
private func advance(_ t: TestLoop, _ seconds: Double) throws {
    let ticker = try t.task(ca_sleep(seconds, ca_none()))
    defer { decref(ticker) }
    t.runUntilComplete(ticker)
}

private func groupRepr(_ tg: UnsafeMutablePointer<ca_taskgroup>) -> String {
    var buf = [CChar](repeating: 0, count: 128)
    _ = ca_taskgroup_repr(tg, &buf, buf.count)
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

@Suite("TaskGroup")
struct TaskGroupTests {

    // MARK: - Normal exit (item 53)

    @Test("the block waits for every child, and each child's result is available afterwards")
    func groupWaitsForAllChildren() throws {
        try withLoop { t in
            let s = groupScript(t)
            addChild(s, 0.01, 1)
            addChild(s, 0.02, 2)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            #expect(t.runUntilComplete(owner) == nil)
            #expect(s.pointee.finished)
            #expect(t.time == 20 * nsPerMs)
            #expect(outcome(child(s, 0)) == .int(1))
            #expect(outcome(child(s, 1)) == .int(2))
        }
    }

    @Test("each child is recorded as awaited by the owner until it finishes")
    func childrenAwaitedByOwner() throws {
        try withLoop { t in
            let s = groupScript(t)
            addChild(s, 0.01, 1)
            addChild(s, 0.02, 2)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            t.runOnce()
            #expect(s.pointee.awaited_by_parent == 2)
            #expect(Comb.awaiters(fut(child(s, 0))) == [fut(owner)])
            t.runUntilComplete(owner)
            #expect(Comb.awaiters(fut(child(s, 0))).isEmpty)
            #expect(Comb.awaiters(fut(child(s, 1))).isEmpty)
        }
    }

    @Test("a child cancelled on its own is not an error: the block goes on and exits normally")
    func childCancelledAloneIsNotError() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP, sleep: 0.01)
            addChild(s, 0.1)
            addChild(s, 0.03, 5)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            try advance(t, 0.01)
            #expect(ca_task_cancel(child(s, 0), nil))
            #expect(t.runUntilComplete(owner) == nil)
            #expect(ca_future_cancelled(fut(child(s, 0))))
            #expect(outcome(child(s, 1)) == .int(5))
            #expect(t.time == 30 * nsPerMs)
        }
    }

    // MARK: - Failures (item 54)

    @Test("a child error cancels the siblings and the body, and the block raises an ExceptionGroup of that error")
    func childErrorAbortsGroup() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP, sleep: 1)
            addChild(s, 0.01, raise: "ValueError", "x")
            addChild(s, 1)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            let err = t.runUntilComplete(owner)
            #expect(err?.type == "ExceptionGroup")
            #expect(err?.message == "unhandled errors in a TaskGroup")
            #expect(Comb.text(s.pointee.error) == "ExceptionGroup[ValueError(\"x\")]")
            #expect(s.pointee.error?.pointee.suppress_context == true)
            #expect(Comb.text(s.pointee.body_error) == "CancelledError")
            #expect(ca_future_cancelled(fut(child(s, 1))))
            #expect(t.time == 10 * nsPerMs)
            #expect(!ca_future_cancelled(fut(owner)))
        }
    }

    @Test("an abort cancels the unfinished children in the order they were created")
    func abortCancelsInCreationOrder() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP, sleep: 1)
            addChild(s, 0.01, raise: "ValueError")
            for _ in 0..<3 { addChild(s, 1) }
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            t.runOnce()
            for i in 1...3 {
                expectOK(ca_future_add_done_callback(fut(child(s, i)), ts_probe_done, t.probe(Int64(i)), nil, nil))
            }
            t.runUntilComplete(owner)
            #expect(t.log == [1, 2, 3])
        }
    }

    @Test("an error raised by the body cancels the children and is raised inside an ExceptionGroup")
    func bodyErrorAbortsGroup() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP_THEN_RAISE, sleep: 0.01, raise: "ValueError")
            addChild(s, 1)
            addChild(s, 1)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            #expect(t.runUntilComplete(owner)?.type == "ExceptionGroup")
            #expect(Comb.text(s.pointee.error) == "ExceptionGroup[ValueError(\"body\")]")
            #expect(ca_future_cancelled(fut(child(s, 0))))
            #expect(ca_future_cancelled(fut(child(s, 1))))
        }
    }

    @Test("errors are collected in the order the children failed; children cancelled by the group are not errors")
    func errorsInFailureOrder() throws {
        try withLoop { t in
            let s = groupScript(t)
            addChild(s, 0.01, raise: "RuntimeError", "second")
            addChild(s, 0.005, raise: "ValueError", "first")
            ts_tg_add_child(s, ts_cb_raise_when_cancelled(0.05, 0.007, errorType("KeyError"), "third"), 0)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            t.runUntilComplete(owner)
            #expect(Comb.text(s.pointee.error) == "ExceptionGroup[ValueError(\"first\"),KeyError(\"third\")]")
            #expect(ca_future_cancelled(fut(child(s, 0))))
            #expect(t.time == 12 * nsPerMs)
        }
    }

    @Test("an eager child failing in its first step is done at once and aborts the group one iteration later")
    func eagerChildFailingAtOnceAbortsGroup() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP, sleep: 0.005)
            addChild(s, 0.01)
            addChild(s, -1, raise: "ValueError", "boom", eager: 1)
            addChild(s, 0.02, eager: 1)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            t.runOnce()
            #expect(Comb.state(child(s, 1)) == "exception ValueError(\"boom\")")
            #expect(s.pointee.body_error == nil)
            t.runUntilComplete(owner)
            #expect(Comb.text(s.pointee.error) == "ExceptionGroup[ValueError(\"boom\")]")
            #expect(ca_future_cancelled(fut(child(s, 0))))
            #expect(ca_future_cancelled(fut(child(s, 2))))
            #expect(t.time == 0)
        }
    }

    // MARK: - Cancelling the owner (item 55)

    @Test("cancelling the owner cancels every child and the block re-raises the CancelledError, not a group")
    func ownerCancelPropagatesCancelledError() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP, sleep: 0.2)
            addChild(s, 0.1)
            ts_tg_add_child(s, ts_cb_sleep_with_cleanup(0.101, 0.005, 0), 0)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            try advance(t, 0.01)
            #expect(ca_task_cancel(owner, "shutdown"))
            let err = t.runUntilComplete(owner)
            #expect(err?.type == "CancelledError")
            #expect(err?.message == "shutdown")
            #expect(Comb.text(s.pointee.error) == "CancelledError(\"shutdown\")")
            #expect(t.time == 15 * nsPerMs)
            #expect(ca_future_cancelled(fut(owner)))
            #expect(ca_future_cancelled(fut(child(s, 0))))
            #expect(ca_future_cancelled(fut(child(s, 1))))
        }
    }

    @Test("cancelling the owner while the block waits for its children at exit cancels them")
    func ownerCancelWhileWaitingAtExit() throws {
        try withLoop { t in
            let s = groupScript(t)
            addChild(s, 0.1)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            try advance(t, 0.01)
            _ = ca_task_cancel(owner, nil)
            #expect(t.runUntilComplete(owner)?.type == "CancelledError")
            #expect(ca_future_cancelled(fut(child(s, 0))))
            #expect(t.time == 10 * nsPerMs)
        }
    }

    @Test("a body answering the owner's cancellation with an error raises an ExceptionGroup of that error")
    func bodyConvertsOwnerCancelIntoError() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP_CONVERT, sleep: 0.1, raise: "ValueError")
            addChild(s, 0.1)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            try advance(t, 0.01)
            _ = ca_task_cancel(owner, nil)
            #expect(t.runUntilComplete(owner)?.type == "ExceptionGroup")
            #expect(Comb.text(s.pointee.error) == "ExceptionGroup[ValueError(\"body\")]")
            #expect(!ca_future_cancelled(fut(owner)))
        }
    }

    // MARK: - Base exceptions and nesting (item 56)

    @Test("KeyboardInterrupt raised by the body propagates bare once the children are cancelled")
    func keyboardInterruptFromBodyPropagatesBare() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_RAISE, raise: "KeyboardInterrupt")
            addChild(s, 1)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            let err = t.runUntilComplete(owner)
            #expect(err?.type == "KeyboardInterrupt")
            #expect(outcome(owner) == .error("KeyboardInterrupt", "body"))
            #expect(ca_future_cancelled(fut(child(s, 0))))
        }
    }

    @Test("a child's KeyboardInterrupt stops the loop, and the group then re-raises it bare")
    func keyboardInterruptFromChildPropagatesBare() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP, sleep: 1)
            addChild(s, 0.01, raise: "KeyboardInterrupt", "kb")
            addChild(s, 1)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            #expect(t.runUntilComplete(owner)?.type == "KeyboardInterrupt")
            #expect(!ca_future_done(fut(owner)))
            #expect(t.runUntilComplete(owner)?.type == "KeyboardInterrupt")
            #expect(outcome(owner) == .error("KeyboardInterrupt", "kb"))
            #expect(ca_future_cancelled(fut(child(s, 1))))
        }
    }

    @Test("a child's BaseException other than KeyboardInterrupt and SystemExit is raised in a BaseExceptionGroup")
    func otherBaseExceptionsAreGrouped() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP, sleep: 1)
            ts_tg_add_child(s, ts_cb_sleep_then(0.01, 0, ts_my_base_error(), "deep"), 0)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            #expect(t.runUntilComplete(owner)?.type == "BaseExceptionGroup")
            #expect(Comb.text(s.pointee.error) == "BaseExceptionGroup[MyBaseError(\"deep\")]")
        }
    }

    @Test("a failure in a nested group arrives in the outer group as a nested ExceptionGroup")
    func nestedGroupFailureIsNestedGroup() throws {
        try withLoop { t in
            let inner = groupScript(t)
            addChild(inner, 0.01, raise: "ValueError", "deep")
            let outer = groupScript(t, body: TS_TG_SLEEP, sleep: 1)
            addChild(outer, 0.1)
            ts_tg_add_child(outer, ts_cb_taskgroup(inner), 0)
            defer { ts_tg_script_clear(outer); ts_tg_script_clear(inner) }
            let owner = try t.task(ts_cb_taskgroup(outer))
            defer { decref(owner) }
            t.runUntilComplete(owner)
            #expect(Comb.text(outer.pointee.error) == "ExceptionGroup[ExceptionGroup[ValueError(\"deep\")]]")
            #expect(ca_future_cancelled(fut(child(outer, 0))))
            #expect(t.time == 10 * nsPerMs)
        }
    }

    // MARK: - Misuse (item 57)

    @Test("create_task before entering raises RuntimeError 'has not been entered' and closes the coroutine")
    func createTaskBeforeEnterFails() throws {
        let tg = try #require(ca_taskgroup_new())
        defer { decref(tg) }
        let coro = try #require(ts_cb_sleep_then(-1, 1, nil, nil))
        defer { decref(coro) }
        ca_incref(coro)
        var task: TaskPtr?
        let err = take(ca_taskgroup_create_task(tg, coro, nil, &task))
        #expect(err?.type == "RuntimeError")
        #expect(err?.message == "TaskGroup <TaskGroup> has not been entered")
        #expect(task == nil)
        #expect(coro.pointee.co_state == UInt8(CA_CORO_CLOSED.rawValue))
    }

    @Test("create_task after the block ended raises RuntimeError 'is finished' and closes the coroutine")
    func createTaskAfterExitFails() throws {
        try withLoop { t in
            let s = groupScript(t)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            #expect(t.runUntilComplete(owner) == nil)
            let coro = try #require(ts_cb_sleep_then(-1, 1, nil, nil))
            defer { decref(coro) }
            ca_incref(coro)
            var task: TaskPtr?
            let err = take(ca_taskgroup_create_task(s.pointee.tg, coro, nil, &task))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "TaskGroup <TaskGroup entered> is finished")
            #expect(coro.pointee.co_state == UInt8(CA_CORO_CLOSED.rawValue))
        }
    }

    @Test("create_task while the group is aborting raises RuntimeError 'is shutting down' and closes the coroutine")
    func createTaskWhileAbortingFails() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP_SPAWN_ON_CANCEL, sleep: 0.01)
            addChild(s, -1, raise: "ValueError", "boom")
            let late = try #require(ts_cb_sleep_then(-1, 1, nil, nil))
            defer { decref(late) }
            ca_incref(late)
            s.pointee.late = late
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            t.runUntilComplete(owner)
            #expect(Comb.text(s.pointee.error) == "ExceptionGroup[ValueError(\"boom\")]")
            #expect(Comb.text(s.pointee.late_error)
                    == "RuntimeError(\"TaskGroup <TaskGroup errors=1 cancelling> is shutting down\")")
            #expect(late.pointee.co_state == UInt8(CA_CORO_CLOSED.rawValue))
        }
    }

    @Test("entering a group twice raises RuntimeError 'has already been entered'")
    func enterTwiceFails() throws {
        try withLoop { t in
            let s = groupScript(t)
            s.pointee.enter_twice = true
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            #expect(t.runUntilComplete(owner) == nil)
            #expect(Comb.text(s.pointee.enter_twice_error)
                    == "RuntimeError(\"TaskGroup <TaskGroup entered> has already been entered\")")
        }
    }

    @Test("entering a group without a running loop raises RuntimeError")
    func enterOutsideLoopFails() throws {
        let tg = try #require(ca_taskgroup_new())
        defer { decref(tg) }
        let err = take(ca_taskgroup_enter(tg))
        #expect(err?.type == "RuntimeError")
        #expect(err?.message == "no running event loop")
    }

    // MARK: - The owner's cancel count (item 58)

    @Test("after a group aborted by a child error, the owner's cancelling() is back to its value before")
    func ownerCancellingRestored() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP, sleep: 1)
            addChild(s, 0.01, raise: "ValueError")
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            t.runUntilComplete(owner)
            #expect(s.pointee.cancelling_before == 0)
            #expect(s.pointee.cancelling_after == 0)
            #expect(!ca_task_must_cancel(owner))
        }
    }

    @Test("an outside cancel arriving while the group aborts stays pending after the ExceptionGroup")
    func outsideCancelDuringAbortStaysPending() throws {
        try withLoop { t in
            let s = groupScript(t, body: TS_TG_SLEEP, sleep: 0.1)
            addChild(s, 0.01, raise: "ValueError", "x")
            ts_tg_add_child(s, ts_cb_sleep_with_cleanup(0.1, 0.005, 0), 0)
            defer { ts_tg_script_clear(s) }
            let owner = try t.task(ts_cb_taskgroup(s))
            defer { decref(owner) }
            try advance(t, 0.012)
            #expect(ca_task_cancel(owner, "outer"))
            t.runUntilComplete(owner)
            #expect(Comb.text(s.pointee.error) == "ExceptionGroup[ValueError(\"x\")]")
            #expect(s.pointee.cancelling_after == 1)
            #expect(ca_task_must_cancel(owner))
            #expect(t.time == 15 * nsPerMs)
        }
    }

    // MARK: - repr

    @Test("repr shows the tasks, errors and state of the group")
    func reprs() throws {
        try withLoop { t in
            let fresh = try #require(ca_taskgroup_new())
            defer { decref(fresh) }
            #expect(groupRepr(fresh) == "<TaskGroup>")
            let ok = groupScript(t)
            let failed = groupScript(t, body: TS_TG_SLEEP, sleep: 1)
            addChild(failed, 0.01, raise: "ValueError")
            defer { ts_tg_script_clear(ok); ts_tg_script_clear(failed) }
            let t1 = try t.task(ts_cb_taskgroup(ok)), t2 = try t.task(ts_cb_taskgroup(failed))
            defer { decref(t1); decref(t2) }
            t.runOnce()
            #expect(groupRepr(failed.pointee.tg!) == "<TaskGroup tasks=1 entered>")
            t.runUntilComplete(t1)
            t.runUntilComplete(t2)
            #expect(groupRepr(ok.pointee.tg!) == "<TaskGroup entered>")
            #expect(groupRepr(failed.pointee.tg!) == "<TaskGroup cancelling>")
        }
    }
}
