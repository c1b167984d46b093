// Task: stepping, awaiting, cancellation, names, eager start, current and
// all tasks, sleep (notes §2, §7 items 20–34, 43–44).

import CAsyncio
import CAsyncioTestSupport
import Testing

@Suite("Task")
struct TaskTests {

    // MARK: - Running coroutines

    @Test("a task finishes with its coroutine's return value")
    func taskReturnsValue() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(5))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            #expect(ca_future_done(fut(task)))
            #expect(!ca_future_cancelled(fut(task)))
            #expect(outcome(task) == .int(5))
        }
    }

    @Test("a task's first step runs on the next loop iteration, not inside create_task")
    func firstStepIsScheduled() throws {
        try withLoop { t in
            let seen = t.buffer(ts_task_seen.self)
            defer { ts_task_seen_clear(seen) }
            let task = try t.task(ts_coro_record_task(seen))
            defer { decref(task) }
            #expect(!seen.pointee.ran)
            t.runOnce()
            #expect(seen.pointee.ran)
            #expect(ca_future_done(fut(task)))
        }
    }

    @Test("an error raised by the coroutine becomes the task's exception")
    func coroutineErrorBecomesTaskException() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_raise(errorType("ValueError"), "boom"))
            defer { decref(task) }
            let err = t.runUntilComplete(task)
            #expect(err?.type == "ValueError")
            #expect(err?.message == "boom")
            #expect(outcome(task) == .error("ValueError", "boom"))
            #expect(!ca_future_cancelled(fut(task)))
        }
    }

    @Test("a coroutine ending with CancelledError cancels its task even without cancel()")
    func coroutineCancelledErrorCancelsTask() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_raise_cancelled("inner"))
            defer { decref(task) }
            let err = t.runUntilComplete(task)
            #expect(ca_future_cancelled(fut(task)))
            #expect(err?.type == "CancelledError")
            #expect(err?.message == "inner")
        }
    }

    @Test("a task awaiting another task resumes with that task's result")
    func taskAwaitsTask() throws {
        try withLoop { t in
            let inner = try t.task(ts_coro_return_int(4))
            defer { decref(inner) }
            let outer = try t.task(ts_coro_await_plus_one(fut(inner)))
            defer { decref(outer) }
            #expect(t.runUntilComplete(outer) == nil)
            #expect(outcome(outer) == .int(5))
        }
    }

    @Test("a task blocked on a future resumes with its result once it is set")
    func taskResumesWhenFutureIsSet() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f))
            defer { decref(task) }
            t.run(iterations: 3)
            #expect(!ca_future_done(fut(task)))
            #expect(ca_task_fut_waiter(task) == f)
            expectOK(ca_future_set_result(f, ca_int(10)))
            #expect(t.runUntilComplete(task) == nil)
            #expect(outcome(task) == .int(11))
        }
    }

    @Test("the task that takes over a wait clears the future's blocking flag")
    func taskClearsBlockingFlag() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f))
            defer { decref(task) }
            t.runOnce()
            #expect(ca_task_fut_waiter(task) == f)
            #expect(!ca_future_get_blocking(f))
            _ = ca_future_cancel(f, nil)
            t.runUntilComplete(task)
        }
    }

    @Test("a waiting task is recorded in the future's awaited_by, and forgotten after the wake-up")
    func awaitedByTracksWaitingTask() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f))
            defer { decref(task) }
            t.runOnce()
            var out: [FuturePtr?] = [nil, nil]
            #expect(ca_future_get_awaited_by(f, &out, 2) == 1)
            #expect(out[0] == fut(task))
            expectOK(ca_future_set_result(f, ca_int(1)))
            t.runUntilComplete(task)
            #expect(ca_future_get_awaited_by(f, nil, 0) == 0)
        }
    }

    @Test("a task's done callbacks run after it finished")
    func taskDoneCallbacks() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            let p = t.probe(9)
            expectOK(ca_future_add_done_callback(fut(task), ts_probe_done, p, nil, nil))
            t.run(iterations: 2)
            #expect(p.pointee.runs == 1)
            #expect(p.pointee.last_future == fut(task))
            #expect(p.pointee.last_state == Int32(CA_FUTURE_FINISHED.rawValue))
        }
    }

    @Test("a task whose first done callback was removed runs the callbacks added after it, in order, when it ends")
    func taskDoneCallbacksAfterRemovedFirst() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            let ps = (1...3).map { t.probe(Int64($0)) }
            for p in ps { expectOK(ca_future_add_done_callback(fut(task), ts_probe_done, p, ts_probe_release, nil)) }
            #expect(ca_future_remove_done_callback(fut(task), ts_probe_done, ps[0]) == 1)
            t.run(iterations: 2)
            #expect(t.log == [2, 3])
            #expect(ps.map { $0.pointee.releases } == [1, 1, 1])
        }
    }

    // MARK: - Bad awaits (item 20)

    @Test("awaiting a future of another loop throws RuntimeError '... attached to a different loop' into the coroutine")
    func awaitingForeignFutureFails() throws {
        try withLoop { t in
            try withLoop { other in
                let g = other.future()
                defer { decref(g) }
                let report = t.buffer(ts_report.self)
                defer { ts_report_clear(report) }
                let task = try t.task(ts_coro_await_report(g, report))
                defer { decref(task) }
                #expect(t.runUntilComplete(task) == nil)
                let err = report.pointee.error.map { ErrorInfo($0) }
                #expect(err?.type == "RuntimeError")
                #expect(err?.message?.hasPrefix("Task ") == true)
                #expect(err?.message?.contains("got Future") == true)
                #expect(err?.message?.hasSuffix("attached to a different loop") == true)
                #expect(outcome(task) == .int(7))
            }
        }
    }

    @Test("a task awaiting itself gets RuntimeError 'Task cannot await on itself'")
    func awaitingItselfFails() throws {
        try withLoop { t in
            let report = t.buffer(ts_report.self)
            defer { ts_report_clear(report) }
            let task = try t.task(ts_coro_await_self(report))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            let err = report.pointee.error.map { ErrorInfo($0) }
            #expect(err?.type == "RuntimeError")
            #expect(err?.message?.hasPrefix("Task cannot await on itself") == true)
            #expect(outcome(task) == .int(7))
        }
    }

    @Test("yielding a future without the blocking flag gets RuntimeError 'yield was used instead of yield from'")
    func yieldWithoutBlockingFails() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let report = t.buffer(ts_report.self)
            defer { ts_report_clear(report) }
            let task = try t.task(ts_coro_yield_raw(f, report))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            let err = report.pointee.error.map { ErrorInfo($0) }
            #expect(err?.type == "RuntimeError")
            #expect(err?.message?.hasPrefix("yield was used instead of yield from in task") == true)
            #expect(ca_future_get_callbacks(f, nil, 0) == 0)
        }
    }

    // MARK: - Creation (items 21–22)

    @Test("Task(non-coroutine) raises TypeError, releases the object and logs nothing")
    func nonCoroutineIsTypeError() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let f = t.future()
            defer { decref(f) }
            let before = refcount(f)
            _ = ca_incref(f)
            var out: TaskPtr?
            var opts = ca_task_options()
            let err = take(ca_task_new(t.loop, CoroPtr(OpaquePointer(f)), &opts, &out))
            #expect(err?.type == "TypeError")
            #expect(err?.message?.hasPrefix("a coroutine was expected, got") == true)
            #expect(out == nil)
            #expect(refcount(f) == before)
            t.runOnce()
            #expect(exc.pointee.count == 0)
        }
    }

    @Test("create_task on a closed loop fails with 'Event loop is closed' and releases the coroutine")
    func createTaskOnClosedLoop() throws {
        try withLoop { t in
            expectOK(ca_loop_close(t.loop))
            let finalized = t.buffer(Int32.self)
            var out: TaskPtr?
            var opts = ca_task_options()
            let err = take(ca_loop_create_task(t.loop, ts_coro_finalize_counter(finalized), &opts, &out))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Event loop is closed")
            #expect(out == nil)
            #expect(finalized.pointee == 1)
        }
    }

    @Test("Task() without a loop and with no running loop raises RuntimeError and closes the coroutine")
    func taskWithoutLoop() throws {
        let finalized = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        defer { finalized.deallocate() }
        finalized.pointee = 0
        var out: TaskPtr?
        var opts = ca_task_options()
        let err = take(ca_task_new(nil, ts_coro_finalize_counter(finalized), &opts, &out))
        #expect(err?.type == "RuntimeError")
        #expect(out == nil)
        #expect(finalized.pointee == 1)
    }

    @Test("automatic names Task-N strictly increase")
    func automaticNamesIncrease() throws {
        try withLoop { t in
            let a = try t.task(ts_coro_return_int(1))
            let b = try t.task(ts_coro_return_int(2))
            defer { decref(a); decref(b) }
            let na = String(cString: ca_task_get_name(a))
            let nb = String(cString: ca_task_get_name(b))
            #expect(na.hasPrefix("Task-"))
            #expect(nb.hasPrefix("Task-"))
            let ia = Int(na.dropFirst(5)), ib = Int(nb.dropFirst(5))
            #expect(ia != nil && ib != nil && ib! > ia!)
            t.run(iterations: 2)
        }
    }

    @Test("a name given at creation is the task's name")
    func explicitName() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1), name: "worker")
            defer { decref(task) }
            #expect(String(cString: ca_task_get_name(task)) == "worker")
            t.runUntilComplete(task)
        }
    }

    @Test("set_name() keeps a copy of the name")
    func setNameCopies() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            var buf: [CChar] = Array("renamed".utf8CString)
            expectOK(ca_task_set_name(task, &buf))
            buf[0] = CChar(UInt8(ascii: "X"))
            #expect(String(cString: ca_task_get_name(task)) == "renamed")
            t.runUntilComplete(task)
        }
    }

    @Test("get_coro() returns the coroutine and get_context() the given context")
    func getCoroAndContext() throws {
        try withLoop { t in
            let ctx = ca_context_new()!
            defer { decref(ctx) }
            let coro = ts_coro_return_int(1)!
            let task = try t.task(coro, context: ctx)
            defer { decref(task) }
            #expect(ca_task_get_coro(task) == coro)
            #expect(ca_task_get_context(task) == ctx)
            t.runUntilComplete(task)
        }
    }

    // MARK: - repr (item 23)

    @Test("repr of a pending task is '<Task pending name=...'")
    func reprPending() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1), name: "n")
            defer { decref(task) }
            #expect(repr(task).hasPrefix("<Task pending name='n'"))
            t.runUntilComplete(task)
        }
    }

    @Test("repr of a task whose cancel has not landed yet says 'cancelling'")
    func reprCancelling() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1), name: "n")
            defer { decref(task) }
            #expect(ca_task_cancel(task, nil))
            #expect(repr(task).hasPrefix("<Task cancelling name='n'"))
            t.runUntilComplete(task)
        }
    }

    @Test("repr of a cancelled task says 'cancelled'")
    func reprCancelled() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1), name: "n")
            defer { decref(task) }
            _ = ca_task_cancel(task, nil)
            t.runUntilComplete(task)
            #expect(repr(task).hasPrefix("<Task cancelled name='n'"))
        }
    }

    @Test("repr of a finished task shows its result")
    func reprFinished() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(5), name: "n")
            defer { decref(task) }
            t.runUntilComplete(task)
            let r = repr(task)
            #expect(r.hasPrefix("<Task finished name='n'"))
            #expect(r.contains("result=5"))
        }
    }

    @Test("repr of a blocked task shows wait_for=<the future>")
    func reprWaitFor() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f), name: "n")
            defer { decref(task) }
            t.runOnce()
            #expect(repr(task).contains("wait_for=<Future pending"))
            _ = ca_future_cancel(f, nil)
            t.runUntilComplete(task)
        }
    }

    // MARK: - Cancellation (items 24–29, 32)

    @Test("two cancel() calls on a pending task both return true and cancelling() counts both")
    func twoCancelsAreCounted() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            #expect(ca_task_cancelling(task) == 0)
            #expect(ca_task_cancel(task, nil))
            #expect(ca_task_cancel(task, nil))
            #expect(ca_task_cancelling(task) == 2)
            t.runUntilComplete(task)
            #expect(ca_future_cancelled(fut(task)))
        }
    }

    @Test("cancel() on a finished task returns false")
    func cancelFinishedTaskReturnsFalse() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            t.runUntilComplete(task)
            #expect(!ca_task_cancel(task, nil))
            #expect(ca_task_cancelling(task) == 0)
            #expect(outcome(task) == .int(1))
        }
    }

    @Test("cancel() does not mark the task cancelled before the cancellation lands")
    func cancelIsNotImmediate() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            #expect(ca_task_cancel(task, nil))
            #expect(!ca_future_cancelled(fut(task)))
            #expect(!ca_future_done(fut(task)))
            #expect(ca_task_must_cancel(task))
            t.runUntilComplete(task)
            #expect(ca_future_cancelled(fut(task)))
        }
    }

    @Test("a task cancelled before its first step never runs its body")
    func cancelBeforeFirstStep() throws {
        try withLoop { t in
            let seen = t.buffer(ts_task_seen.self)
            defer { ts_task_seen_clear(seen) }
            let task = try t.task(ts_coro_record_task(seen))
            defer { decref(task) }
            _ = ca_task_cancel(task, "early")
            let err = t.runUntilComplete(task)
            #expect(!seen.pointee.ran)
            #expect(err?.type == "CancelledError")
            #expect(err?.message == "early")
        }
    }

    @Test("a second cancel(msg) before the first one lands replaces the message")
    func secondCancelMessageWins() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            _ = ca_task_cancel(task, "first")
            _ = ca_task_cancel(task, "second")
            let err = t.runUntilComplete(task)
            #expect(err?.type == "CancelledError")
            #expect(err?.message == "second")
        }
    }

    @Test("uncancel() to zero withdraws an undelivered cancel and the task finishes with its result")
    func uncancelToZeroWithdrawsCancel() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(5))
            defer { decref(task) }
            _ = ca_task_cancel(task, nil)
            #expect(ca_task_must_cancel(task))
            #expect(ca_task_uncancel(task) == 0)
            #expect(!ca_task_must_cancel(task))
            #expect(t.runUntilComplete(task) == nil)
            #expect(!ca_future_cancelled(fut(task)))
            #expect(outcome(task) == .int(5))
        }
    }

    @Test("uncancel() above zero keeps the pending cancel")
    func uncancelAboveZeroKeepsCancel() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(5))
            defer { decref(task) }
            _ = ca_task_cancel(task, nil)
            _ = ca_task_cancel(task, nil)
            #expect(ca_task_uncancel(task) == 1)
            #expect(ca_task_must_cancel(task))
            t.runUntilComplete(task)
            #expect(ca_future_cancelled(fut(task)))
        }
    }

    @Test("uncancel() on a finished task leaves its outcome alone")
    func uncancelFinishedTask() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(5))
            defer { decref(task) }
            t.runUntilComplete(task)
            #expect(ca_task_uncancel(task) == 0)
            #expect(!ca_future_cancelled(fut(task)))
            #expect(outcome(task) == .int(5))
        }
    }

    @Test("a task that catches CancelledError and returns a value ends not cancelled")
    func catchingCancelledErrorFinishesNormally() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_catch_cancel(f, 42))
            defer { decref(task) }
            t.runOnce()
            #expect(ca_task_cancel(task, nil))
            #expect(t.runUntilComplete(task) == nil)
            #expect(!ca_future_cancelled(fut(task)))
            #expect(outcome(task) == .int(42))
            #expect(ca_task_cancelling(task) == 1)
        }
    }

    @Test("cancelling a task blocked on a future cancels that future at once")
    func cancelPropagatesToWaiter() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f))
            defer { decref(task) }
            t.runOnce()
            #expect(ca_task_cancel(task, nil))
            #expect(ca_future_cancelled(f))
            #expect(!ca_task_must_cancel(task))
            t.runUntilComplete(task)
        }
    }

    @Test("the task's fut_waiter is cleared once the cancellation is delivered")
    func futWaiterClearedAfterCancel() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f))
            defer { decref(task) }
            t.runOnce()
            #expect(ca_task_fut_waiter(task) == f)
            _ = ca_task_cancel(task, nil)
            t.runUntilComplete(task)
            #expect(ca_task_fut_waiter(task) == nil)
            #expect(ca_future_cancelled(fut(task)))
        }
    }

    @Test("cancelling the awaited future cancels the task")
    func cancellingInnerFutureCancelsTask() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f))
            defer { decref(task) }
            t.runOnce()
            _ = ca_future_cancel(f, nil)
            t.runUntilComplete(task)
            #expect(ca_future_cancelled(fut(task)))
            #expect(ca_task_cancelling(task) == 0)
        }
    }

    @Test("cancelling a task whose awaited task swallows the cancellation lets it finish with that task's result")
    func swallowedCancelOfAwaitedTask() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let inner = try t.task(ts_coro_await_catch_cancel(f, 42))
            let outer = try t.task(ts_coro_await_plus_one(fut(inner)))
            defer { decref(inner); decref(outer) }
            t.run(iterations: 2)
            #expect(ca_task_fut_waiter(outer) == fut(inner))
            #expect(ca_task_cancel(outer, nil))
            #expect(!ca_task_must_cancel(outer))
            #expect(t.runUntilComplete(outer) == nil)
            #expect(outcome(outer) == .int(43))
            #expect(!ca_future_cancelled(fut(outer)))
            #expect(ca_task_cancelling(outer) == 1)
            #expect(ca_task_cancelling(inner) == 1)
        }
    }

    @Test("a task that cancelled itself is cancelled at once by a following sleep(100)")
    func selfCancelThenSleep() throws {
        try withLoop { t in
            let report = t.buffer(ts_report.self)
            defer { ts_report_clear(report) }
            let start = t.time
            let task = try t.task(ts_coro_cancel_self_then_sleep(100, report))
            defer { decref(task) }
            t.runUntilComplete(task)
            #expect(report.pointee.ran)
            #expect(!report.pointee.finished)
            #expect(ca_future_cancelled(fut(task)))
            #expect(t.time - start < nsPerSecond)
        }
    }

    @Test("a task that cancels itself and then returns still ends cancelled")
    func selfCancelThenReturn() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_cancel_self_then_return(5))
            defer { decref(task) }
            t.runUntilComplete(task)
            #expect(ca_future_cancelled(fut(task)))
            #expect(outcome(task) == .error("CancelledError", nil))
        }
    }

    @Test("a task that cancels itself and awaits a nested task cancels the nested task and what it awaits")
    func selfCancelThenAwaitNested() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let inner = try t.task(ts_coro_await_plus_one(f))
            defer { decref(inner) }
            let outer = try t.task(ts_coro_cancel_self_then_await(fut(inner)))
            defer { decref(outer) }
            t.runUntilComplete(outer)
            #expect(ca_future_cancelled(fut(outer)))
            #expect(ca_future_cancelled(fut(inner)))
            #expect(ca_future_cancelled(f))
        }
    }

    @Test("cancel(msg) reaches the awaiting coroutine as CancelledError(msg)")
    func cancelMessageReachesCoroutine() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let report = t.buffer(ts_report.self)
            defer { ts_report_clear(report) }
            let task = try t.task(ts_coro_await_report(f, report))
            defer { decref(task) }
            t.runOnce()
            _ = ca_task_cancel(task, "stop now")
            t.runUntilComplete(task)
            let err = report.pointee.error.map { ErrorInfo($0) }
            #expect(err?.type == "CancelledError")
            #expect(err?.message == "stop now")
        }
    }

    @Test("a cancelled task's result() raises CancelledError(msg) with no extra wrapping")
    func cancelledTaskResultCarriesMessage() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f))
            defer { decref(task) }
            t.runOnce()
            _ = ca_task_cancel(task, "m")
            let err = t.runUntilComplete(task)
            #expect(err?.type == "CancelledError")
            #expect(err?.message == "m")
            #expect(err?.contextType == nil)
        }
    }

    @Test("the CancelledError a coroutine raised is handed out once; later result() calls build CancelledError(cancel message)")
    func savedCancelledErrorIsHandedOutOnce() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_raise_cancelled("inner"))
            defer { decref(task) }
            t.run(iterations: 2)
            #expect(ca_future_cancelled(fut(task)))
            #expect(outcome(task) == .error("CancelledError", "inner"))
            #expect(outcome(task) == .error("CancelledError", nil))
        }
    }

    @Test("cancel() without a message gives a CancelledError without arguments")
    func cancelWithoutMessageHasNoArguments() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f))
            defer { decref(task) }
            t.runOnce()
            _ = ca_task_cancel(task, nil)
            t.runUntilComplete(task)
            #expect(outcome(task) == .error("CancelledError", nil))
        }
    }

    @Test("set_result() on a task raises RuntimeError 'Task does not support set_result operation'")
    func taskSetResultIsRuntimeError() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            let err = take(ca_future_set_result(fut(task), ca_int(2)))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Task does not support set_result operation")
            t.runUntilComplete(task)
            #expect(outcome(task) == .int(1))
        }
    }

    @Test("set_exception() on a task raises RuntimeError 'Task does not support set_exception operation'")
    func taskSetExceptionIsRuntimeError() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            let e = makeError("ValueError")
            defer { decref(e) }
            let err = take(ca_future_set_exception(fut(task), e))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Task does not support set_exception operation")
            t.runUntilComplete(task)
        }
    }

    // MARK: - Errors escaping the loop (item 33)

    @Test("KeyboardInterrupt raised by a coroutine escapes the loop and the task records it")
    func keyboardInterruptEscapes() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_raise(errorType("KeyboardInterrupt"), nil))
            defer { decref(task) }
            let err = t.runUntilComplete(task)
            #expect(err?.type == "KeyboardInterrupt")
            #expect(ca_future_done(fut(task)))
            #expect(outcome(task) == .error("KeyboardInterrupt", nil))
        }
    }

    @Test("SystemExit raised by a coroutine escapes run_forever")
    func systemExitEscapesRunForever() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_raise(errorType("SystemExit"), nil))
            defer { decref(task) }
            let err = take(ca_loop_run_forever(t.loop))
            #expect(err?.type == "SystemExit")
            #expect(outcome(task) == .error("SystemExit", nil))
        }
    }

    @Test("after a KeyboardInterrupt escaped, the loop is stopped and can run again")
    func loopUsableAfterKeyboardInterrupt() throws {
        try withLoop { t in
            let bad = try t.task(ts_coro_raise(errorType("KeyboardInterrupt"), nil))
            defer { decref(bad) }
            _ = t.runUntilComplete(bad)
            #expect(!ca_loop_is_running(t.loop))
            #expect(ca_get_running_loop() == nil)
            let good = try t.task(ts_coro_return_int(3))
            defer { decref(good) }
            #expect(t.runUntilComplete(good) == nil)
            #expect(outcome(good) == .int(3))
            _ = outcome(bad)
        }
    }

    // MARK: - sleep (item 34)

    @Test("sleep(0) gives up exactly one loop iteration")
    func sleepZeroYieldsOneIteration() throws {
        try withLoop { t in
            let iters = t.buffer(UInt64.self, count: 4)
            let task = try t.task(ts_coro_sleep0_times(3, t.loop, iters))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            let seen = (0..<4).map { iters[$0] }
            #expect(zip(seen.dropFirst(), seen).allSatisfy { $0 - $1 == 1 }, "iterations: \(seen)")
        }
    }

    @Test("sleep(0) written as CA_AWAIT_SLEEP(0) gives up exactly one loop iteration")
    func inlineSleepZeroYieldsOneIteration() throws {
        try withLoop { t in
            let iters = t.buffer(UInt64.self, count: 4)
            let task = try t.task(ts_coro_sleep0_inline_times(3, t.loop, iters))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            let seen = (0..<4).map { iters[$0] }
            #expect(zip(seen.dropFirst(), seen).allSatisfy { $0 - $1 == 1 }, "iterations: \(seen)")
        }
    }

    @Test("sleep(nan) raises ValueError 'Invalid delay: NaN (not a number)'")
    func sleepNanIsValueError() throws {
        try withLoop { t in
            let task = try t.task(ca_sleep(.nan, ca_none()))
            defer { decref(task) }
            let err = t.runUntilComplete(task)
            #expect(err?.type == "ValueError")
            #expect(err?.message == "Invalid delay: NaN (not a number)")
        }
    }

    @Test("sleep() with a negative delay behaves as sleep(0): one iteration, then its result")
    func negativeSleepIsSleepZero() throws {
        try withLoop { t in
            let start = t.time
            let task = try t.task(ca_sleep(-5, ca_int(3)))
            defer { decref(task) }
            t.runOnce()
            #expect(!ca_future_done(fut(task)))
            t.runOnce()
            #expect(outcome(task) == .int(3))
            #expect(t.time == start)
        }
    }

    @Test("sleep(delay, result) returns the result once the delay passed")
    func sleepReturnsResultAfterDelay() throws {
        try withLoop { t in
            let start = t.time
            let task = try t.task(ca_sleep(2.0, ca_int(9)))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            #expect(outcome(task) == .int(9))
            #expect(t.time - start >= 2 * nsPerSecond)
        }
    }

    @Test("cancelling a sleeping task cancels its timer handle")
    func cancellingSleepCancelsTimer() throws {
        try withLoop { t in
            let start = t.time
            let task = try t.task(ca_sleep(100, ca_none()))
            defer { decref(task) }
            t.runOnce()
            #expect(ca_loop_timer_count(t.loop) == 1)
            _ = ca_task_cancel(task, nil)
            t.runUntilComplete(task)
            t.runOnce()
            #expect(ca_future_cancelled(fut(task)))
            #expect(ca_loop_timer_count(t.loop) == 0)
            #expect(t.time - start < nsPerSecond)
        }
    }

    // MARK: - Eager tasks (item 43)

    @Test("an eager task whose coroutine does not suspend is done when create_task returns")
    func eagerTaskCompletesSynchronously() throws {
        try withLoop { t in
            let seen = t.buffer(ts_spawn_seen.self)
            defer { ts_spawn_seen_clear(seen) }
            let parent = try t.task(ts_coro_spawn(t.loop, ts_coro_return_int(5), 1, seen))
            defer { decref(parent) }
            #expect(t.runUntilComplete(parent) == nil)
            #expect(seen.pointee.create_error == nil)
            #expect(seen.pointee.done_at_once)
            #expect(outcome(parent) == .int(5))
        }
    }

    @Test("an eager task that completed synchronously drops its coroutine")
    func eagerTaskDropsCoroutine() throws {
        try withLoop { t in
            let seen = t.buffer(ts_spawn_seen.self)
            defer { ts_spawn_seen_clear(seen) }
            let parent = try t.task(ts_coro_spawn(t.loop, ts_coro_return_int(5), 1, seen))
            defer { decref(parent) }
            t.runUntilComplete(parent)
            #expect(seen.pointee.coro_dropped)
        }
    }

    @Test("inside an eager task, current_task() is that task and all_tasks() lists it")
    func eagerTaskIsCurrentAndListed() throws {
        try withLoop { t in
            let seen = t.buffer(ts_spawn_seen.self)
            let inner = t.buffer(ts_task_seen.self)
            defer { ts_spawn_seen_clear(seen); ts_task_seen_clear(inner) }
            let parent = try t.task(ts_coro_spawn(t.loop, ts_coro_record_task(inner), 1, seen))
            defer { decref(parent) }
            t.runUntilComplete(parent)
            #expect(inner.pointee.ran)
            #expect(inner.pointee.current != nil)
            #expect(inner.pointee.current == seen.pointee.task)
            #expect(inner.pointee.current != parent)
            #expect(inner.pointee.in_all_tasks)
        }
    }

    @Test("the current task is restored after an eager task ran synchronously")
    func eagerStartRestoresCurrentTask() throws {
        try withLoop { t in
            let inside = t.buffer(ts_inside.self)
            defer { ts_inside_clear(inside) }
            inside.pointee.loop = t.loop
            inside.pointee.op = Int32(TS_OP_CREATE_EAGER_TASK.rawValue)
            let seen = t.buffer(ts_task_seen.self)
            defer { ts_task_seen_clear(seen) }
            inside.pointee.coro = ts_coro_record_task(seen)
            expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
            t.runOnce()
            #expect(inside.pointee.error == nil)
            #expect(inside.pointee.task_done_at_once)
            #expect(seen.pointee.current == inside.pointee.task)
            #expect(inside.pointee.current_task_after == nil)
        }
    }

    @Test("an eager task's first step runs in the task's own context, not its creator's")
    func eagerFirstStepUsesTaskContext() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            try withFreshContext { _ in
                let seen = t.buffer(ts_spawn_seen.self)
                defer { ts_spawn_seen_clear(seen) }
                seen.pointee.cvar = UnsafePointer(v)
                seen.pointee.var_after_create = 99
                let parent = try t.task(ts_coro_spawn(t.loop, ts_coro_set_var_then_yield(v, 5), 1, seen))
                defer { decref(parent) }
                #expect(t.runUntilComplete(parent) == nil)
                #expect(seen.pointee.var_after_create == -1)
                #expect(outcome(parent) == .int(5))
            }
        }
    }

    @Test("an eager task that suspends continues as a normal task")
    func eagerTaskThatSuspendsContinues() throws {
        try withLoop { t in
            let seen = t.buffer(ts_spawn_seen.self)
            defer { ts_spawn_seen_clear(seen) }
            let parent = try t.task(ts_coro_spawn(t.loop, ts_coro_sleep0_then_return(6), 1, seen))
            defer { decref(parent) }
            #expect(t.runUntilComplete(parent) == nil)
            #expect(!seen.pointee.done_at_once)
            #expect(outcome(parent) == .int(6))
        }
    }

    @Test("eager_start without a running loop schedules the first step normally")
    func eagerWithoutRunningLoopIsLazy() throws {
        try withLoop { t in
            let seen = t.buffer(ts_task_seen.self)
            defer { ts_task_seen_clear(seen) }
            let task = try t.task(ts_coro_record_task(seen), eager: 1)
            defer { decref(task) }
            #expect(!seen.pointee.ran)
            #expect(!ca_future_done(fut(task)))
            t.runUntilComplete(task)
            #expect(seen.pointee.ran)
        }
    }

    @Test("a non-eager task created inside a running task is not started by create_task")
    func lazyTaskInsideTask() throws {
        try withLoop { t in
            let seen = t.buffer(ts_spawn_seen.self)
            defer { ts_spawn_seen_clear(seen) }
            let parent = try t.task(ts_coro_spawn(t.loop, ts_coro_return_int(5), -1, seen))
            defer { decref(parent) }
            #expect(t.runUntilComplete(parent) == nil)
            #expect(!seen.pointee.done_at_once)
            #expect(outcome(parent) == .int(5))
        }
    }

    @Test("with the eager task factory, create_task starts tasks eagerly")
    func eagerTaskFactory() throws {
        try withLoop { t in
            ca_loop_set_task_factory(t.loop, ca_eager_task_factory, nil)
            #expect(ca_loop_get_task_factory(t.loop) != nil)
            let seen = t.buffer(ts_spawn_seen.self)
            defer { ts_spawn_seen_clear(seen) }
            let parent = try t.task(ts_coro_spawn(t.loop, ts_coro_return_int(5), 0, seen))
            defer { decref(parent) }
            t.runUntilComplete(parent)
            #expect(seen.pointee.done_at_once)
            #expect(outcome(parent) == .int(5))
        }
    }

    @Test("a custom task factory creates the tasks of create_task, and NULL restores the default")
    func customTaskFactory() throws {
        try withLoop { t in
            let calls = t.buffer(Int32.self)
            ca_loop_set_task_factory(t.loop, ts_counting_task_factory, calls)
            let a = try t.task(ts_coro_return_int(1))
            defer { decref(a) }
            #expect(calls.pointee == 1)
            ca_loop_set_task_factory(t.loop, nil, nil)
            #expect(ca_loop_get_task_factory(t.loop) == nil)
            let b = try t.task(ts_coro_return_int(2))
            defer { decref(b) }
            #expect(calls.pointee == 1)
            t.runUntilComplete(b)
            #expect(outcome(a) == .int(1))
        }
    }

    // MARK: - current_task and all_tasks (item 44)

    @Test("current_task() inside a task is that task")
    func currentTaskInsideTask() throws {
        try withLoop { t in
            let seen = t.buffer(ts_task_seen.self)
            defer { ts_task_seen_clear(seen) }
            let task = try t.task(ts_coro_record_task(seen))
            defer { decref(task) }
            t.runUntilComplete(task)
            #expect(seen.pointee.current_error == nil)
            #expect(seen.pointee.current == task)
            #expect(seen.pointee.running_loop == t.loop)
        }
    }

    @Test("current_task(loop) outside any task is NULL")
    func currentTaskOutsideTasks() throws {
        try withLoop { t in
            let inside = t.buffer(ts_inside.self)
            defer { ts_inside_clear(inside) }
            inside.pointee.loop = t.loop
            expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
            t.runOnce()
            #expect(inside.pointee.ran)
            #expect(inside.pointee.current_task == nil)
        }
    }

    /// Runs enter(a), enter(b), leave(b), leave(a), swap(a), swap(NULL) inside a callback.
    private func taskAPI(_ t: TestLoop, _ body: (UnsafeMutablePointer<ts_inside>, TaskPtr, TaskPtr) -> Void) throws {
        let a = try t.task(ts_coro_return_int(1)), b = try t.task(ts_coro_return_int(2))
        defer { decref(a); decref(b) }
        let inside = t.buffer(ts_inside.self)
        defer { ts_inside_clear(inside) }
        inside.pointee.loop = t.loop
        inside.pointee.op = Int32(TS_OP_TASK_API.rawValue)
        inside.pointee.task_a = a
        inside.pointee.task_b = b
        expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
        t.runOnce()
        #expect(inside.pointee.ran)
        body(inside, a, b)
        t.runUntilComplete(b)
    }

    @Test("enter_task makes a task current; entering a second one raises 'Cannot enter into task ... while another task ... is being executed.'")
    func enterTaskTwice() throws {
        try withLoop { t in
            try taskAPI(t) { inside, a, _ in
                #expect(inside.pointee.enter_a_error == nil)
                #expect(inside.pointee.current_after_enter == a)
                let err = inside.pointee.enter_b_error.map { ErrorInfo($0) }
                #expect(err?.type == "RuntimeError")
                #expect(err?.message?.hasPrefix("Cannot enter into task ") == true)
                #expect(err?.message?.hasSuffix(" is being executed.") == true)
            }
        }
    }

    @Test("leave_task of a task that is not current raises 'Invalid attempt to leave task ...'; leaving the current one clears it")
    func leaveWrongTask() throws {
        try withLoop { t in
            try taskAPI(t) { inside, _, _ in
                let err = inside.pointee.leave_b_error.map { ErrorInfo($0) }
                #expect(err?.type == "RuntimeError")
                #expect(err?.message?.hasPrefix("Invalid attempt to leave task ") == true)
                #expect(inside.pointee.leave_a_error == nil)
                #expect(inside.pointee.current_after_leave == nil)
            }
        }
    }

    @Test("swap_current_task installs a task and returns the previous one")
    func swapCurrentTask() throws {
        try withLoop { t in
            try taskAPI(t) { inside, a, _ in
                #expect(inside.pointee.swap_error == nil)
                #expect(inside.pointee.swap_prev_first == nil)
                #expect(inside.pointee.swap_prev_second == a)
            }
        }
    }

    @Test("enter_task on a loop that is not running raises RuntimeError '... is not the running loop'")
    func enterTaskWithoutRunningLoop() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            let err = take(ca_enter_task(t.loop, task))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message?.hasSuffix("is not the running loop") == true)
            t.runUntilComplete(task)
        }
    }

    @Test("unregister_task hides a pending task from all_tasks() and register_task lists it again")
    func registerAndUnregister() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            var count = 0
            expectOK(ca_all_tasks(t.loop, nil, 0, &count))
            #expect(count == 1)
            ca_unregister_task(task)
            expectOK(ca_all_tasks(t.loop, nil, 0, &count))
            #expect(count == 0)
            ca_register_task(task)
            expectOK(ca_all_tasks(t.loop, nil, 0, &count))
            #expect(count == 1)
            t.runUntilComplete(task)
        }
    }

    @Test("an automatic name is formatted lazily, from the task's counter, on first get_name()")
    func automaticNameIsLazy() throws {
        try withLoop { t in
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            #expect(task.pointee.task_name == nil)
            #expect(task.pointee.task_name_id > 0)
            #expect(String(cString: ca_task_get_name(task)) == "Task-\(task.pointee.task_name_id)")
            #expect(task.pointee.task_name != nil)
            t.runUntilComplete(task)
        }
    }

    @Test("current_task() without a running loop raises RuntimeError 'no running event loop'")
    func currentTaskWithoutLoop() {
        var task: TaskPtr?
        let err = take(ca_current_task(nil, &task))
        #expect(err?.type == "RuntimeError")
        #expect(err?.message == "no running event loop")
    }

    @Test("all_tasks() without a running loop raises RuntimeError")
    func allTasksWithoutLoop() {
        var count = 0
        let err = take(ca_all_tasks(nil, nil, 0, &count))
        #expect(err?.type == "RuntimeError")
    }

    @Test("all_tasks() omits done tasks and tasks of other loops")
    func allTasksFilters() throws {
        try withLoop { t in
            try withLoop { other in
                let f = t.future(), g = other.future()
                defer { decref(f); decref(g) }
                let waiting = try t.task(ts_coro_await_plus_one(f))
                let done = try t.task(ts_coro_return_int(1))
                let foreign = try other.task(ts_coro_await_plus_one(g))
                defer { decref(waiting); decref(done); decref(foreign) }
                t.runUntilComplete(done)
                other.runOnce()
                var out = [TaskPtr?](repeating: nil, count: 8)
                var count = 0
                expectOK(ca_all_tasks(t.loop, &out, 8, &count))
                #expect(count == 1)
                #expect(out[0] == waiting)
                _ = ca_future_cancel(f, nil)
                _ = ca_future_cancel(g, nil)
                t.runUntilComplete(waiting)
                other.runUntilComplete(foreign)
            }
        }
    }

    // MARK: - Reports through the exception handler

    @Test("releasing a pending task reports 'Task was destroyed but it is pending!'")
    func destroyedPendingTaskIsReported() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let task = try t.task(ts_coro_return_int(1))
            let address = UnsafeRawPointer(task)
            expectOK(ca_loop_close(t.loop))
            decref(task)
            #expect(exc.pointee.count == 1)
            guard exc.pointee.count >= 1 else { return }
            #expect(String(cString: ts_exc_message(exc, 0)) == "Task was destroyed but it is pending!")
            #expect(ts_exc_task(exc, 0) == address)
        }
    }

    @Test("closing the loop frees a task blocked forever on a future, which is reported destroyed while pending")
    func closeReleasesBlockedTask() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let f = t.future()
            let task = try t.task(ts_coro_await_plus_one(f))
            t.runOnce()
            #expect(ca_task_fut_waiter(task) == f)
            expectOK(ca_loop_close(t.loop))
            decref(f)
            decref(task)
            #expect(exc.pointee.count == 1)
            guard exc.pointee.count >= 1 else { return }
            #expect(String(cString: ts_exc_message(exc, 0)) == "Task was destroyed but it is pending!")
        }
    }

    @Test("a task released with an unretrieved exception reports 'Task exception was never retrieved'")
    func unretrievedTaskExceptionIsReported() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let task = try t.task(ts_coro_raise(errorType("ValueError"), "lost"))
            t.run(iterations: 2)
            #expect(ca_future_done(fut(task)))
            decref(task)
            #expect(exc.pointee.count == 1)
            guard exc.pointee.count >= 1 else { return }
            #expect(String(cString: ts_exc_message(exc, 0)) == "Task exception was never retrieved")
            #expect(String(cString: ts_exc_type(exc, 0)) == "ValueError")
        }
    }
}
