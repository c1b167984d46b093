// The event loop: call_soon ordering, the ntodo snapshot, run/stop/close and
// their errors, the running loop, exception handler, logger and debug mode
// (notes §5, §7 item 31).

import CAsyncio
import CAsyncioTestSupport
import Testing

@Suite("Event loop")
struct LoopTests {

    // MARK: - call_soon

    @Test("call_soon callbacks run in FIFO order")
    func callSoonIsFIFO() throws {
        try withLoop { t in
            for i in 0..<6 { t.callSoon(t.probe(Int64(i))) }
            t.runOnce()
            #expect(t.log == [0, 1, 2, 3, 4, 5])
        }
    }

    @Test("call_soon stays FIFO when the ready queue grows while wrapped around")
    func fifoAcrossReadyQueueGrowth() throws {
        try withLoop { t in
            let st = t.buffer(ts_seq_state.self)
            st.pointee.loop = t.loop
            let n = 2700
            let args = t.buffer(ts_seq_arg.self, count: n)
            for i in 0..<n {
                args[i].st = st
                args[i].value = Int64(i)
                args[i].then = i < 600 ? args + 600 + i : nil
            }
            for i in 0..<600 { expectOK(ca_loop_call_soon(t.loop, ts_seq_call, args + i, nil, nil, nil)) }
            t.runOnce()
            #expect(st.pointee.count == 600)
            for i in 1200..<n { expectOK(ca_loop_call_soon(t.loop, ts_seq_call, args + i, nil, nil, nil)) }
            t.runOnce()
            #expect(st.pointee.count == Int64(n))
            #expect(st.pointee.errors == 0)
            #expect(st.pointee.next == Int64(n))
        }
    }

    @Test("a callback scheduled during an iteration runs in the next iteration")
    func callbackScheduledDuringIterationWaits() throws {
        try withLoop { t in
            let a = t.probe(1), b = t.probe(2)
            a.pointee.next = b
            expectOK(ca_loop_call_soon(t.loop, ts_probe_schedule_next, a, nil, nil, nil))
            t.callSoon(t.probe(3))
            t.runOnce()
            #expect(t.log == [1, 3])
            t.runOnce()
            #expect(t.log == [1, 3, 2])
            #expect(t.logIterations[2] == t.logIterations[0] + 1)
        }
    }

    @Test("a cancelled handle's callback never runs")
    func cancelledHandleDoesNotRun() throws {
        try withLoop { t in
            let p = t.probe(1)
            var h: HandlePtr?
            expectOK(ca_loop_call_soon(t.loop, ts_probe_call, p, nil, nil, &h))
            let handle = try #require(h)
            defer { decref(handle) }
            #expect(!ca_handle_cancelled(handle))
            ca_handle_cancel(handle)
            #expect(ca_handle_cancelled(handle))
            t.runOnce()
            #expect(p.pointee.runs == 0)
        }
    }

    @Test("cancelling one handle leaves the others of the iteration in order")
    func cancelOneOfMany() throws {
        try withLoop { t in
            var handles: [HandlePtr] = []
            for i in 0..<4 {
                var h: HandlePtr?
                expectOK(ca_loop_call_soon(t.loop, ts_probe_call, t.probe(Int64(i)), nil, nil, &h))
                handles.append(try #require(h))
            }
            defer { handles.forEach { decref($0) } }
            ca_handle_cancel(handles[1])
            t.runOnce()
            #expect(t.log == [0, 2, 3])
        }
    }

    @Test("a handle knows its loop, and a plain handle's when() is 0")
    func handleLoopAndWhen() throws {
        try withLoop { t in
            var h: HandlePtr?
            expectOK(ca_loop_call_soon(t.loop, ts_probe_call, t.probe(1), nil, nil, &h))
            let handle = try #require(h)
            defer { decref(handle) }
            #expect(ca_handle_get_loop(handle) == t.loop)
            #expect(ca_handle_when(handle) == 0)
            t.runOnce()
        }
    }

    @Test("a callback's argument is released once, after it ran")
    func argumentReleasedAfterRun() throws {
        try withLoop { t in
            let p = t.probe(1)
            t.callSoon(p, release: true)
            #expect(p.pointee.releases == 0)
            t.runOnce()
            #expect(p.pointee.runs == 1)
            #expect(p.pointee.releases == 1)
        }
    }

    @Test("a cancelled callback's argument is released without the callback running")
    func argumentReleasedOnCancel() throws {
        try withLoop { t in
            let p = t.probe(1)
            var h: HandlePtr?
            expectOK(ca_loop_call_soon(t.loop, ts_probe_call, p, ts_probe_release, nil, &h))
            ca_handle_cancel(h)
            decref(h)
            t.runOnce()
            #expect(p.pointee.runs == 0)
            #expect(p.pointee.releases == 1)
        }
    }

    @Test("a callback that is its own release runs once after a run: not again as the release")
    func ownReleaseRunsOnceAfterRun() throws {
        try withLoop { t in
            let p = t.probe(1)
            expectOK(ca_loop_call_soon(t.loop, ts_probe_call, p, ts_probe_call, nil, nil))
            t.runOnce()
            #expect(p.pointee.runs == 1)
        }
    }

    @Test("a callback that is its own release runs once when cancelled, as the release")
    func ownReleaseRunsOnceWhenCancelled() throws {
        try withLoop { t in
            let p = t.probe(1)
            var h: HandlePtr?
            expectOK(ca_loop_call_soon(t.loop, ts_probe_call, p, ts_probe_call, nil, &h))
            ca_handle_cancel(h)
            decref(h)
            t.runOnce()
            #expect(p.pointee.runs == 1)
        }
    }

    @Test("a callback that is its own release runs once when close drops it, queued or still in the inbox")
    func ownReleaseRunsOnceWhenClosed() throws {
        try withLoop { t in
            let queued = t.probe(1), posted = t.probe(2)
            expectOK(ca_loop_call_soon(t.loop, ts_probe_call, queued, ts_probe_call, nil, nil))
            expectOK(ca_loop_call_soon_threadsafe(t.loop, ts_probe_call, posted, ts_probe_call))
            expectOK(ca_loop_close(t.loop))
            #expect(queued.pointee.runs == 1)
            #expect(posted.pointee.runs == 1)
        }
    }

    @Test("ready_count reports the queued callbacks")
    func readyCount() throws {
        try withLoop { t in
            #expect(ca_loop_ready_count(t.loop) == 0)
            for i in 0..<3 { t.callSoon(t.probe(Int64(i))) }
            #expect(ca_loop_ready_count(t.loop) == 3)
            t.runOnce()
            #expect(ca_loop_ready_count(t.loop) == 0)
        }
    }

    @Test("iteration_count counts loop iterations")
    func iterationCount() throws {
        try withLoop { t in
            let before = t.iterations
            t.run(iterations: 3)
            #expect(t.iterations == before + 3)
        }
    }

    // MARK: - Closed loops

    @Test("call_soon on a closed loop raises 'Event loop is closed' and releases the argument")
    func callSoonOnClosedLoop() throws {
        try withLoop { t in
            expectOK(ca_loop_close(t.loop))
            let p = t.probe(1)
            let err = take(ca_loop_call_soon(t.loop, ts_probe_call, p, ts_probe_release, nil, nil))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Event loop is closed")
            #expect(p.pointee.releases == 1)
        }
    }

    @Test("call_later and call_at on a closed loop raise 'Event loop is closed'")
    func timersOnClosedLoop() throws {
        try withLoop { t in
            expectOK(ca_loop_close(t.loop))
            let p = t.probe(1)
            var h: HandlePtr?
            let e1 = take(ca_loop_call_later(t.loop, nsPerMs, ts_probe_call, p, ts_probe_release, nil, &h))
            let e2 = take(ca_loop_call_at(t.loop, t.time, ts_probe_call, p, ts_probe_release, nil, &h))
            #expect(e1?.message == "Event loop is closed")
            #expect(e2?.message == "Event loop is closed")
            #expect(p.pointee.releases == 2)
        }
    }

    @Test("run_forever on a closed loop raises 'Event loop is closed'")
    func runForeverOnClosedLoop() throws {
        try withLoop { t in
            expectOK(ca_loop_close(t.loop))
            let err = take(ca_loop_run_forever(t.loop))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Event loop is closed")
        }
    }

    @Test("run_until_complete on a closed loop raises 'Event loop is closed'")
    func runUntilCompleteOnClosedLoop() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_loop_close(t.loop))
            let err = t.runUntilComplete(f)
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Event loop is closed")
        }
    }

    @Test("close() is idempotent and is_closed() reports it")
    func closeIsIdempotent() throws {
        try withLoop { t in
            #expect(!ca_loop_is_closed(t.loop))
            expectOK(ca_loop_close(t.loop))
            #expect(ca_loop_is_closed(t.loop))
            expectOK(ca_loop_close(t.loop))
            #expect(ca_loop_is_closed(t.loop))
        }
    }

    @Test("close() drops pending callbacks and timers, releasing their arguments")
    func closeDropsPendingWork() throws {
        try withLoop { t in
            let soon = t.probe(1), later = t.probe(2)
            t.callSoon(soon, release: true)
            let h = t.callLater(nsPerSecond, later)
            decref(h)
            expectOK(ca_loop_close(t.loop))
            #expect(soon.pointee.releases == 1)
            #expect(later.pointee.releases == 1)
            #expect(soon.pointee.runs == 0)
            #expect(later.pointee.runs == 0)
            #expect(ca_loop_ready_count(t.loop) == 0)
            #expect(ca_loop_timer_count(t.loop) == 0)
        }
    }

    // MARK: - run / stop

    @Test("stop() inside run_until_complete raises 'Event loop stopped before Future completed.' and the task stays pending")
    func stopBeforeComplete() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_await_plus_one(f))
            defer { decref(task) }
            expectOK(ca_loop_call_soon(t.loop, ts_stop_loop, UnsafeMutableRawPointer(t.loop), nil, nil, nil))
            let err = t.runUntilComplete(task)
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Event loop stopped before Future completed.")
            #expect(!ca_future_done(fut(task)))
            _ = ca_future_cancel(f, nil)
            t.runUntilComplete(task)
        }
    }

    @Test("run_until_complete removes its done callback even when the loop stopped early")
    func runUntilCompleteRemovesItsCallback() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_loop_call_soon(t.loop, ts_stop_loop, UnsafeMutableRawPointer(t.loop), nil, nil, nil))
            let err = t.runUntilComplete(f)
            #expect(err?.message == "Event loop stopped before Future completed.")
            #expect(ca_future_get_callbacks(f, nil, 0) == 0)
        }
    }

    @Test("run_until_complete returns the future's exception")
    func runUntilCompleteReturnsException() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let e = makeError("ValueError", "v")
            expectOK(ca_future_set_exception(f, e))
            decref(e)
            let err = t.runUntilComplete(f)
            #expect(err?.type == "ValueError")
            #expect(err?.message == "v")
        }
    }

    @Test("run_until_complete on an already finished future returns its outcome")
    func runUntilCompleteOnDoneFuture() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(3)))
            #expect(t.runUntilComplete(f) == nil)
            #expect(outcome(f) == .int(3))
            #expect(!ca_loop_is_running(t.loop))
        }
    }

    @Test("run_until_complete with a future of another loop raises ValueError")
    func runUntilCompleteForeignFuture() throws {
        try withLoop { t in
            try withLoop { other in
                let g = other.future()
                defer { decref(g) }
                let err = t.runUntilComplete(g)
                #expect(err?.type == "ValueError")
            }
        }
    }

    @Test("stop() requested before run_forever still lets one iteration run")
    func stopBeforeRunForever() throws {
        try withLoop { t in
            let a = t.probe(1), b = t.probe(2)
            a.pointee.next = b
            expectOK(ca_loop_call_soon(t.loop, ts_probe_schedule_next, a, nil, nil, nil))
            let guardTimer = t.callLater(nsPerSecond, t.probe(99))
            defer { decref(guardTimer) }
            ca_loop_stop(t.loop)
            expectOK(ca_loop_run_forever(t.loop))
            #expect(t.log == [1])
            ca_handle_cancel(guardTimer)
        }
    }

    @Test("stop() inside a callback lets the rest of the iteration run, then run_forever returns")
    func stopFinishesIteration() throws {
        try withLoop { t in
            let stopper = t.probe(1)
            expectOK(ca_loop_call_soon(t.loop, ts_probe_stop, stopper, nil, nil, nil))
            let a = t.probe(2), b = t.probe(3)
            a.pointee.next = b
            expectOK(ca_loop_call_soon(t.loop, ts_probe_schedule_next, a, nil, nil, nil))
            let before = t.iterations
            expectOK(ca_loop_run_forever(t.loop))
            #expect(t.log == [1, 2])
            #expect(t.iterations == before + 1)
            t.runOnce()
            #expect(t.log == [1, 2, 3])
        }
    }

    @Test("run_forever inside a running loop raises 'This event loop is already running'")
    func runForeverReentrant() throws {
        try withLoop { t in
            let inside = t.buffer(ts_inside.self)
            defer { ts_inside_clear(inside) }
            inside.pointee.loop = t.loop
            inside.pointee.op = Int32(TS_OP_RUN_FOREVER.rawValue)
            expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
            t.runOnce()
            #expect(inside.pointee.ran)
            let err = inside.pointee.error.map { ErrorInfo($0) }
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "This event loop is already running")
        }
    }

    @Test("run_until_complete inside a running loop raises 'This event loop is already running'")
    func runUntilCompleteReentrant() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let inside = t.buffer(ts_inside.self)
            defer { ts_inside_clear(inside) }
            inside.pointee.loop = t.loop
            inside.pointee.fut = f
            inside.pointee.op = Int32(TS_OP_RUN_UNTIL_COMPLETE.rawValue)
            expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
            t.runOnce()
            let err = inside.pointee.error.map { ErrorInfo($0) }
            #expect(err?.message == "This event loop is already running")
        }
    }

    @Test("running a second loop inside a running loop raises 'Cannot run the event loop while another loop is running'")
    func runOtherLoopInside() throws {
        try withLoop { t in
            try withLoop { other in
                let inside = t.buffer(ts_inside.self)
                defer { ts_inside_clear(inside) }
                inside.pointee.loop = t.loop
                inside.pointee.other = other.loop
                inside.pointee.op = Int32(TS_OP_RUN_OTHER.rawValue)
                expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
                t.runOnce()
                let err = inside.pointee.error.map { ErrorInfo($0) }
                #expect(err?.type == "RuntimeError")
                #expect(err?.message == "Cannot run the event loop while another loop is running")
                #expect(!ca_loop_is_running(other.loop))
            }
        }
    }

    @Test("close() on a running loop raises 'Cannot close a running event loop'")
    func closeWhileRunning() throws {
        try withLoop { t in
            let inside = t.buffer(ts_inside.self)
            defer { ts_inside_clear(inside) }
            inside.pointee.loop = t.loop
            inside.pointee.op = Int32(TS_OP_CLOSE.rawValue)
            expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
            t.runOnce()
            let err = inside.pointee.error.map { ErrorInfo($0) }
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Cannot close a running event loop")
            #expect(!ca_loop_is_closed(t.loop))
        }
    }

    // MARK: - The running loop

    @Test("is_running() is true inside a callback and false outside")
    func isRunning() throws {
        try withLoop { t in
            #expect(!ca_loop_is_running(t.loop))
            let inside = t.buffer(ts_inside.self)
            defer { ts_inside_clear(inside) }
            inside.pointee.loop = t.loop
            expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
            t.runOnce()
            #expect(inside.pointee.is_running)
            #expect(!ca_loop_is_running(t.loop))
        }
    }

    @Test("get_running_loop() is the loop inside its callbacks and NULL once it stopped")
    func getRunningLoop() throws {
        try withLoop { t in
            let inside = t.buffer(ts_inside.self)
            defer { ts_inside_clear(inside) }
            inside.pointee.loop = t.loop
            expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
            t.runOnce()
            #expect(inside.pointee.running_loop == t.loop)
            #expect(inside.pointee.checked_loop == t.loop)
            #expect(inside.pointee.checked_error == nil)
            #expect(ca_get_running_loop() == nil)
        }
    }

    @Test("get_running_loop() without a running loop raises RuntimeError 'no running event loop'")
    func getRunningLoopChecked() {
        var loop: LoopPtr?
        let err = take(ca_get_running_loop_checked(&loop))
        #expect(err?.type == "RuntimeError")
        #expect(err?.message == "no running event loop")
    }

    // MARK: - Exception handler and logger

    @Test("call_exception_handler() passes the context to the custom handler")
    func customExceptionHandler() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let f = t.future()
            defer { decref(f) }
            let e = makeError("ValueError", "v")
            defer { decref(e) }
            var ctx = ca_exception_context()
            "something broke".withCString { msg in
                ctx.message = msg
                ctx.exception = e
                ctx.future = f
                ca_loop_call_exception_handler(t.loop, &ctx)
            }
            #expect(exc.pointee.count == 1)
            #expect(String(cString: ts_exc_message(exc, 0)) == "something broke")
            #expect(String(cString: ts_exc_type(exc, 0)) == "ValueError")
            #expect(ts_exc_future(exc, 0) == UnsafeRawPointer(f))
        }
    }

    @Test("the default exception handler logs the message at ERROR through the logger")
    func defaultHandlerLogs() throws {
        try withLoop { t in
            let logs = t.recordLogs()
            var ctx = ca_exception_context()
            "something broke".withCString { msg in
                ctx.message = msg
                ca_loop_call_exception_handler(t.loop, &ctx)
            }
            #expect(logs.pointee.count >= 1)
            guard logs.pointee.count >= 1 else { return }
            #expect(ts_log_level(logs, 0) == Int32(CA_LOG_ERROR.rawValue))
            #expect(String(cString: ts_log_message(logs, 0)).contains("something broke"))
        }
    }

    @Test("setting the exception handler to NULL restores the default handler")
    func resetExceptionHandler() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let logs = t.recordLogs()
            ca_loop_set_exception_handler(t.loop, nil, nil)
            var ctx = ca_exception_context()
            "again".withCString { msg in
                ctx.message = msg
                ca_loop_call_exception_handler(t.loop, &ctx)
            }
            #expect(exc.pointee.count == 0)
            #expect(logs.pointee.count >= 1)
        }
    }

    // MARK: - Debug mode

    @Test("get_debug() reflects the configuration and set_debug()")
    func debugFlag() throws {
        try withLoop(debug: true) { t in
            #expect(ca_loop_get_debug(t.loop))
            ca_loop_set_debug(t.loop, false)
            #expect(!ca_loop_get_debug(t.loop))
        }
    }

    @Test("debug mode reports a slow callback as a warning 'Executing ... took ... seconds'")
    func slowCallbackReported() throws {
        try withLoop(virtualClock: false, debug: true) { t in
            let logs = t.recordLogs()
            ca_loop_set_slow_callback_duration(t.loop, nsPerMs)
            let busy = t.buffer(Int64.self)
            busy.pointee = 20 * nsPerMs
            expectOK(ca_loop_call_soon(t.loop, ts_busy_callback, busy, nil, nil, nil))
            t.runOnce()
            // The busy callback runs first; a preempted stop callback may be reported after it.
            #expect(logs.pointee.count >= 1)
            guard logs.pointee.count >= 1 else { return }
            #expect(ts_log_level(logs, 0) == Int32(CA_LOG_WARNING.rawValue))
            let message = String(cString: ts_log_message(logs, 0))
            #expect(message.hasPrefix("Executing "))
            #expect(message.contains(" took "))
            #expect(message.hasSuffix(" seconds"))
        }
    }

    @Test("a slow callback is not reported outside debug mode")
    func slowCallbackNotReportedWithoutDebug() throws {
        try withLoop(virtualClock: false, debug: false) { t in
            let logs = t.recordLogs()
            ca_loop_set_slow_callback_duration(t.loop, nsPerMs)
            let busy = t.buffer(Int64.self)
            busy.pointee = 5 * nsPerMs
            expectOK(ca_loop_call_soon(t.loop, ts_busy_callback, busy, nil, nil, nil))
            t.runOnce()
            #expect(logs.pointee.count == 0)
        }
    }

    @Test("a fast callback is not reported in debug mode")
    func fastCallbackNotReported() throws {
        try withLoop(virtualClock: false, debug: true) { t in
            let logs = t.recordLogs()
            ca_loop_set_slow_callback_duration(t.loop, nsPerSecond)
            t.callSoon(t.probe(1))
            t.runOnce()
            #expect(logs.pointee.count == 0)
        }
    }

    @Test("debug mode: call_soon from another thread raises 'Non-thread-safe operation invoked on an event loop other than the current one'")
    func callSoonFromWrongThreadInDebug() throws {
        try withLoop(debug: true) { t in
            let inside = t.buffer(ts_inside.self)
            defer { ts_inside_clear(inside) }
            inside.pointee.loop = t.loop
            inside.pointee.op = Int32(TS_OP_CALL_SOON_FROM_THREAD.rawValue)
            expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
            t.runOnce()
            let err = inside.pointee.error.map { ErrorInfo($0) }
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Non-thread-safe operation invoked on an event loop other than the current one")
            t.runOnce()
        }
    }

    @Test("debug mode: creating a task from another thread raises the same RuntimeError and never runs the coroutine")
    func createTaskFromWrongThreadInDebug() throws {
        try withLoop(debug: true) { t in
            let inside = t.buffer(ts_inside.self)
            defer { ts_inside_clear(inside) }
            inside.pointee.loop = t.loop
            inside.pointee.op = Int32(TS_OP_CREATE_TASK_FROM_THREAD.rawValue)
            let seen = t.buffer(ts_task_seen.self)
            defer { ts_task_seen_clear(seen) }
            inside.pointee.coro = ts_coro_record_task(seen)
            expectOK(ca_loop_call_soon(t.loop, ts_inside_call, inside, nil, nil, nil))
            t.runOnce()
            let err = inside.pointee.error.map { ErrorInfo($0) }
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Non-thread-safe operation invoked on an event loop other than the current one")
            #expect(inside.pointee.task == nil)
            t.runOnce()
            #expect(!seen.pointee.ran, "the coroutine never ran")
        }
    }

    // MARK: - Backend and clock

    @Test("the I/O backend is io_uring or epoll")
    func backendName() throws {
        try withLoop { t in
            let name = String(cString: ca_loop_backend_name(t.loop))
            #expect(["io_uring", "epoll"].contains(name))
        }
    }

    @Test("a real-clock loop's time is CLOCK_MONOTONIC in nanoseconds")
    func realClockIsMonotonic() throws {
        try withLoop(virtualClock: false) { t in
            let before = ts_monotonic_ns()
            let now = t.time
            let after = ts_monotonic_ns()
            #expect(now >= before - nsPerMs && now <= after + nsPerMs)
        }
    }
}
