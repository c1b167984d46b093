// Future: states, results, errors, done callbacks, awaited_by, the
// "exception was never retrieved" report (notes §3, §7 items 1–18).

import CAsyncio
import CAsyncioTestSupport
import Testing

@Suite("Future")
struct FutureTests {

    // MARK: - States (items 1–5)

    @Test("a new future is neither done nor cancelled")
    func newFutureIsPending() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            #expect(!ca_future_done(f))
            #expect(!ca_future_cancelled(f))
            #expect(String(cString: ca_future_state_name(f)) == "PENDING")
        }
    }

    @Test("cancel() on a pending future returns true and makes it done and cancelled")
    func cancelPendingFuture() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            #expect(ca_future_cancel(f, nil))
            #expect(ca_future_done(f))
            #expect(ca_future_cancelled(f))
            #expect(String(cString: ca_future_state_name(f)) == "CANCELLED")
        }
    }

    @Test("cancel() on a done future returns false and leaves the result")
    func cancelOnDoneFutureReturnsFalse() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(1)))
            #expect(!ca_future_cancel(f, nil))
            #expect(!ca_future_cancelled(f))
            #expect(String(cString: ca_future_state_name(f)) == "FINISHED")
            #expect(outcome(f) == .int(1))
        }
    }

    @Test("cancel() on an already cancelled future returns false")
    func cancelOnCancelledFutureReturnsFalse() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            #expect(ca_future_cancel(f, nil))
            #expect(!ca_future_cancel(f, nil))
            #expect(ca_future_cancelled(f))
        }
    }

    @Test("result() of a cancelled future raises CancelledError")
    func resultOfCancelledFutureRaisesCancelledError() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            _ = ca_future_cancel(f, nil)
            #expect(outcome(f) == .error("CancelledError", nil))
        }
    }

    @Test("exception() of a cancelled future raises CancelledError")
    func exceptionOfCancelledFutureRaisesCancelledError() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            _ = ca_future_cancel(f, nil)
            var exc: ErrorPtr?
            let err = take(ca_future_exception(f, &exc))
            #expect(err?.type == "CancelledError")
            #expect(exc == nil)
        }
    }

    @Test("result() of a pending future raises InvalidStateError 'Result is not set.'")
    func resultOfPendingFutureRaisesInvalidState() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            #expect(outcome(f) == .error("InvalidStateError", "Result is not set."))
        }
    }

    @Test("exception() of a pending future raises InvalidStateError 'Exception is not set.'")
    func exceptionOfPendingFutureRaisesInvalidState() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            var exc: ErrorPtr?
            let err = take(ca_future_exception(f, &exc))
            #expect(err?.type == "InvalidStateError")
            #expect(err?.message == "Exception is not set.")
            #expect(exc == nil)
        }
    }

    @Test("set_result() on a finished future raises InvalidStateError and keeps the first result")
    func setResultOnFinishedFutureRaises() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(1)))
            let err = take(ca_future_set_result(f, ca_int(2)))
            #expect(err?.type == "InvalidStateError")
            #expect(outcome(f) == .int(1))
        }
    }

    @Test("set_exception() on a finished future raises InvalidStateError")
    func setExceptionOnFinishedFutureRaises() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(1)))
            let e = makeError("ValueError", "late")
            defer { decref(e) }
            let err = take(ca_future_set_exception(f, e))
            #expect(err?.type == "InvalidStateError")
            #expect(outcome(f) == .int(1))
        }
    }

    @Test("set_result() on a cancelled future raises InvalidStateError")
    func setResultOnCancelledFutureRaises() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            _ = ca_future_cancel(f, nil)
            let err = take(ca_future_set_result(f, ca_int(1)))
            #expect(err?.type == "InvalidStateError")
            #expect(ca_future_cancelled(f))
        }
    }

    @Test("set_result() releases a value it rejects")
    func setResultReleasesRejectedValue() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let released = t.buffer(Int32.self)
            expectOK(ca_future_set_result(f, ca_int(1)))
            _ = take(ca_future_set_result(f, ca_ptr(released, ts_count_dtor)))
            #expect(released.pointee == 1)
        }
    }

    // MARK: - Results and exceptions (items 6–7)

    @Test("set_result(42) makes result() 42 and exception() nil")
    func setResultThenRead() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(42)))
            #expect(ca_future_done(f))
            #expect(outcome(f) == .int(42))
            var exc = ErrorPtr(bitPattern: 0x10)
            expectOK(ca_future_exception(f, &exc))
            #expect(exc == nil)
        }
    }

    @Test("a double result is read back unchanged")
    func doubleResult() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_double(2.5)))
            #expect(outcome(f) == .double(2.5))
        }
    }

    @Test("a pointer result's destructor runs once, when the future is released")
    func pointerResultDestructorRunsOnRelease() throws {
        try withLoop { t in
            let f = t.future()
            let released = t.buffer(Int32.self)
            expectOK(ca_future_set_result(f, ca_ptr(released, ts_count_dtor)))
            var v = ca_none()
            expectOK(ca_future_result(f, &v))
            #expect(v.kind == CA_VALUE_PTR)
            #expect(v.u.ptr.p == UnsafeMutableRawPointer(released))
            #expect(released.pointee == 0)
            decref(f)
            #expect(released.pointee == 1)
        }
    }

    @Test("an object result holds a reference to the object until the future dies")
    func objectResultHoldsReference() throws {
        try withLoop { t in
            let f = t.future()
            let g = t.future()
            defer { decref(g) }
            let before = refcount(g)
            expectOK(ca_future_set_result(f, ca_obj(ca_incref(g))))
            #expect(refcount(g) == before + 1)
            decref(f)
            #expect(refcount(g) == before)
        }
    }

    @Test("set_exception(e) makes result() raise e and exception() return e")
    func setExceptionThenRead() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let e = makeError("ValueError", "bad")
            defer { decref(e) }
            expectOK(ca_future_set_exception(f, e))
            var v = ca_none()
            let raised = ca_future_result(f, &v)
            #expect(raised == e)
            decref(raised)
            var exc: ErrorPtr?
            expectOK(ca_future_exception(f, &exc))
            #expect(exc == e)
            decref(exc)
        }
    }

    @Test("set_exception(NULL) raises TypeError 'invalid exception object' and leaves the future pending")
    func setExceptionNullIsTypeError() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let err = take(ca_future_set_exception(f, nil))
            #expect(err?.type == "TypeError")
            #expect(err?.message == "invalid exception object")
            #expect(!ca_future_done(f))
        }
    }

    @Test("set_exception(StopIteration) stores a RuntimeError caused by the StopIteration")
    func stopIterationIsWrapped() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let stop = makeError("StopIteration")
            defer { decref(stop) }
            expectOK(ca_future_set_exception(f, stop))
            var exc: ErrorPtr?
            expectOK(ca_future_exception(f, &exc))
            let stored = try #require(exc)
            defer { decref(stored) }
            #expect(String(cString: stored.pointee.type.pointee.name) == "RuntimeError")
            #expect(stored.pointee.cause == stop)
            #expect(stored.pointee.context == stop)
            #expect(String(cString: ca_error_message(stored))
                == "StopIteration interacts badly with generators and cannot be raised into a Future")
        }
    }

    @Test("set_exception of a StopIteration subclass is wrapped too")
    func stopIterationSubclassIsWrapped() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let stop = makeError("MyStopIteration")
            defer { decref(stop) }
            expectOK(ca_future_set_exception(f, stop))
            var v = ca_none()
            let err = take(ca_future_result(f, &v))
            #expect(err?.type == "RuntimeError")
            #expect(err?.causeType == "MyStopIteration")
        }
    }

    // MARK: - Cancel messages (item 9)

    @Test("cancel(msg) keeps the message and result() raises CancelledError(msg)")
    func cancelMessageIsKept() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            _ = ca_future_cancel(f, "m")
            #expect(ca_future_cancel_message(f).map { String(cString: $0) } == "m")
            #expect(outcome(f) == .error("CancelledError", "m"))
        }
    }

    @Test("the cancel message can be overwritten before result() is read")
    func cancelMessageCanBeOverwritten() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            _ = ca_future_cancel(f, "m")
            ca_future_set_cancel_message(f, "changed")
            #expect(outcome(f) == .error("CancelledError", "changed"))
        }
    }

    @Test("cancel() without a message gives a CancelledError without arguments")
    func cancelWithoutMessage() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            _ = ca_future_cancel(f, nil)
            #expect(ca_future_cancel_message(f) == nil)
            let info = take(ca_future_make_cancelled_error(f))
            #expect(info?.type == "CancelledError")
            #expect(info?.message == nil)
        }
    }

    @Test("_make_cancelled_error() builds CancelledError(cancel message)")
    func makeCancelledErrorUsesMessage() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            _ = ca_future_cancel(f, "why")
            let info = take(ca_future_make_cancelled_error(f))
            #expect(info?.type == "CancelledError")
            #expect(info?.message == "why")
            #expect(info?.contextType == nil)
        }
    }

    // MARK: - Done callbacks (items 10–12)

    @Test("done callbacks do not run inside set_result()")
    func doneCallbacksAreNotRunInline() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let p = t.probe(1)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil))
            expectOK(ca_future_set_result(f, ca_int(0)))
            #expect(p.pointee.runs == 0)
            t.runOnce()
            #expect(p.pointee.runs == 1)
        }
    }

    @Test("done callbacks run in registration order, callback0 first")
    func doneCallbacksRunInRegistrationOrder() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            for i in 0..<5 {
                expectOK(ca_future_add_done_callback(f, ts_probe_done, t.probe(Int64(i)), nil, nil))
            }
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(t.log == [0, 1, 2, 3, 4])
        }
    }

    @Test("a callback added to a done future is scheduled, not run at once")
    func callbackOnDoneFutureIsDeferred() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(0)))
            let p = t.probe(1)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil))
            #expect(p.pointee.runs == 0)
            #expect(ca_future_get_callbacks(f, nil, 0) == 0)
            t.runOnce()
            #expect(p.pointee.runs == 1)
        }
    }

    @Test("done callbacks are queued behind callbacks scheduled earlier")
    func doneCallbacksGoThroughCallSoon() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_add_done_callback(f, ts_probe_done, t.probe(2), nil, nil))
            t.callSoon(t.probe(1))
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.callSoon(t.probe(3))
            t.runOnce()
            #expect(t.log == [1, 2, 3])
        }
    }

    @Test("a done callback receives the future in its final state")
    func doneCallbackReceivesFuture() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let p = t.probe(1)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil))
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(p.pointee.last_future == f)
            #expect(p.pointee.last_state == Int32(CA_FUTURE_FINISHED.rawValue))
        }
    }

    @Test("done callbacks run when the future is cancelled")
    func doneCallbacksRunOnCancel() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let p = t.probe(1)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil))
            _ = ca_future_cancel(f, nil)
            t.runOnce()
            #expect(p.pointee.runs == 1)
            #expect(p.pointee.last_state == Int32(CA_FUTURE_CANCELLED.rawValue))
        }
    }

    @Test("done callbacks run when an exception is set")
    func doneCallbacksRunOnException() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let p = t.probe(1)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil))
            let e = makeError("ValueError")
            expectOK(ca_future_set_exception(f, e))
            decref(e)
            t.runOnce()
            #expect(p.pointee.runs == 1)
            #expect(outcome(f) == .error("ValueError", nil))
        }
    }

    @Test("remove_done_callback() removes every equal entry and returns the count")
    func removeDoneCallbackRemovesAllEqual() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let p = t.probe(1)
            for _ in 0..<6 { expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil)) }
            #expect(ca_future_remove_done_callback(f, ts_probe_done, p) == 6)
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(p.pointee.runs == 0)
        }
    }

    @Test("remove_done_callback() of an absent callback returns 0")
    func removeAbsentCallbackReturnsZero() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let p = t.probe(1)
            #expect(ca_future_remove_done_callback(f, ts_probe_done, p) == 0)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil))
            #expect(ca_future_remove_done_callback(f, ts_probe_done_read_var, p) == 0)
        }
    }

    @Test("a callback with the same function but another argument is not removed")
    func removeMatchesArgumentToo() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let a = t.probe(1), b = t.probe(2)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, a, nil, nil))
            expectOK(ca_future_add_done_callback(f, ts_probe_done, b, nil, nil))
            #expect(ca_future_remove_done_callback(f, ts_probe_done, a) == 1)
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(t.log == [2])
        }
    }

    @Test("removing callback0 keeps the spilled callbacks in order")
    func removeCallback0KeepsOrder() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let ps = (0..<4).map { t.probe(Int64($0)) }
            for p in ps { expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil)) }
            #expect(ca_future_remove_done_callback(f, ts_probe_done, ps[0]) == 1)
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(t.log == [1, 2, 3])
        }
    }

    @Test("removing a spilled callback keeps callback0 and the rest in order")
    func removeSpilledCallbackKeepsOrder() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let ps = (0..<5).map { t.probe(Int64($0)) }
            for p in ps { expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil)) }
            #expect(ca_future_remove_done_callback(f, ts_probe_done, ps[2]) == 1)
            #expect(ca_future_remove_done_callback(f, ts_probe_done, ps[4]) == 1)
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(t.log == [0, 1, 3])
        }
    }

    @Test("after callback0 is removed, new callbacks go after the spilled ones")
    func callbacksAfterRemovingCallback0GoLast() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let ps = (0..<4).map { t.probe(Int64($0)) }
            for p in ps[0..<3] { expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil)) }
            #expect(ca_future_remove_done_callback(f, ts_probe_done, ps[0]) == 1)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, ps[3], nil, nil))
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(t.log == [1, 2, 3])
        }
    }

    @Test("removing every callback then adding one runs only the new one")
    func removeAllThenAdd() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let a = t.probe(1), b = t.probe(2)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, a, nil, nil))
            expectOK(ca_future_add_done_callback(f, ts_probe_done, a, nil, nil))
            #expect(ca_future_remove_done_callback(f, ts_probe_done, a) == 2)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, b, nil, nil))
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(t.log == [2])
        }
    }

    @Test("a removed callback whose release re-enters the future (adding and removing callbacks) leaves a consistent list")
    func hostileReleaseDuringRemove() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let a = t.probe(1), c = t.probe(3), d = t.probe(4)
            let hostile = t.buffer(ts_hostile.self)
            defer { ts_hostile_clear(hostile) }
            hostile.pointee.fut = f
            hostile.pointee.add_probe = d
            hostile.pointee.remove_probe = c
            expectOK(ca_future_add_done_callback(f, ts_probe_done, a, nil, nil))
            expectOK(ca_future_add_done_callback(f, ts_hostile_done, hostile, ts_hostile_release, nil))
            expectOK(ca_future_add_done_callback(f, ts_probe_done, c, nil, nil))
            #expect(ca_future_remove_done_callback(f, ts_hostile_done, hostile) == 1)
            #expect(hostile.pointee.releases == 1)
            #expect(hostile.pointee.removed == 1)
            #expect(hostile.pointee.error == nil)
            #expect(ca_future_get_callbacks(f, nil, 0) == 2)
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(t.log == [1, 4])
        }
    }

    @Test("removing callback0 whose release re-enters the future leaves a consistent list")
    func hostileReleaseOfCallback0() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let a = t.probe(1), c = t.probe(3), d = t.probe(4)
            let hostile = t.buffer(ts_hostile.self)
            defer { ts_hostile_clear(hostile) }
            hostile.pointee.fut = f
            hostile.pointee.add_probe = d
            hostile.pointee.remove_probe = c
            expectOK(ca_future_add_done_callback(f, ts_hostile_done, hostile, ts_hostile_release, nil))
            expectOK(ca_future_add_done_callback(f, ts_probe_done, a, nil, nil))
            expectOK(ca_future_add_done_callback(f, ts_probe_done, c, nil, nil))
            #expect(ca_future_remove_done_callback(f, ts_hostile_done, hostile) == 1)
            #expect(hostile.pointee.removed == 1)
            expectOK(ca_future_set_result(f, ca_int(0)))
            t.runOnce()
            #expect(t.log == [1, 4])
        }
    }

    @Test("_callbacks lists the registered callbacks in order, and none once scheduled")
    func getCallbacksListsInOrder() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            #expect(ca_future_get_callbacks(f, nil, 0) == 0)
            let ps = (0..<3).map { t.probe(Int64($0)) }
            for p in ps { expectOK(ca_future_add_done_callback(f, ts_probe_done, p, nil, nil)) }
            var out = [ca_callback](repeating: ca_callback(), count: 3)
            #expect(ca_future_get_callbacks(f, &out, 3) == 3)
            #expect(out.map { $0.arg } == ps.map { UnsafeMutableRawPointer($0) })
            expectOK(ca_future_set_result(f, ca_int(0)))
            #expect(ca_future_get_callbacks(f, nil, 0) == 0)
            t.runOnce()
        }
    }

    @Test("a callback's argument is released once, after the callback ran")
    func callbackArgumentReleasedAfterRun() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let p = t.probe(1)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, p, ts_probe_release, nil))
            expectOK(ca_future_set_result(f, ca_int(0)))
            #expect(p.pointee.releases == 0)
            t.runOnce()
            #expect(p.pointee.runs == 1)
            #expect(p.pointee.releases == 1)
        }
    }

    @Test("a removed callback's argument is released")
    func removedCallbackArgumentReleased() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let p = t.probe(1)
            expectOK(ca_future_add_done_callback(f, ts_probe_done, p, ts_probe_release, nil))
            #expect(ca_future_remove_done_callback(f, ts_probe_done, p) == 1)
            #expect(p.pointee.releases == 1)
        }
    }

    @Test("releasing a pending future releases its callbacks' arguments without running them")
    func pendingFutureReleasesCallbackArguments() throws {
        try withLoop { t in
            let f = t.future()
            let ps = (0..<3).map { t.probe(Int64($0)) }
            for p in ps { expectOK(ca_future_add_done_callback(f, ts_probe_done, p, ts_probe_release, nil)) }
            decref(f)
            t.runOnce()
            #expect(ps.map { $0.pointee.releases } == [1, 1, 1])
            #expect(ps.map { $0.pointee.runs } == [0, 0, 0])
        }
    }

    @Test("add_done_callback on a done future of a closed loop fails with 'Event loop is closed'")
    func addCallbackOnClosedLoopFails() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(0)))
            expectOK(ca_loop_close(t.loop))
            let p = t.probe(1)
            let err = take(ca_future_add_done_callback(f, ts_probe_done, p, ts_probe_release, nil))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Event loop is closed")
            #expect(p.pointee.releases == 1)
        }
    }

    // MARK: - Unretrieved exceptions (items 14–15)

    @Test("a future released with an unretrieved exception reports 'Future exception was never retrieved'")
    func unretrievedExceptionIsReported() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let f = t.future()
            let e = makeError("ValueError", "lost")
            expectOK(ca_future_set_exception(f, e))
            decref(e)
            let address = UnsafeRawPointer(f)
            decref(f)
            #expect(exc.pointee.count == 1)
            guard exc.pointee.count >= 1 else { return }
            #expect(String(cString: ts_exc_message(exc, 0)) == "Future exception was never retrieved")
            #expect(String(cString: ts_exc_type(exc, 0)) == "ValueError")
            #expect(ts_exc_future(exc, 0) == address)
        }
    }

    @Test("no report when the exception was read with exception()")
    func noReportAfterException() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let f = t.future()
            let e = makeError("ValueError")
            expectOK(ca_future_set_exception(f, e))
            decref(e)
            var got: ErrorPtr?
            expectOK(ca_future_exception(f, &got))
            decref(got)
            decref(f)
            #expect(exc.pointee.count == 0)
        }
    }

    @Test("no report when result() raised the exception")
    func noReportAfterResult() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let f = t.future()
            let e = makeError("ValueError")
            expectOK(ca_future_set_exception(f, e))
            decref(e)
            #expect(outcome(f) == .error("ValueError", nil))
            decref(f)
            #expect(exc.pointee.count == 0)
        }
    }

    @Test("no report for a future that only had a result")
    func noReportForResult() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let f = t.future()
            expectOK(ca_future_set_result(f, ca_int(1)))
            decref(f)
            #expect(exc.pointee.count == 0)
        }
    }

    @Test("no report when cancel() followed set_exception()")
    func noReportAfterCancel() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let f = t.future()
            let e = makeError("ValueError")
            expectOK(ca_future_set_exception(f, e))
            decref(e)
            #expect(!ca_future_cancel(f, nil))
            decref(f)
            #expect(exc.pointee.count == 0)
        }
    }

    @Test("_log_traceback = true is a ValueError")
    func logTracebackTrueIsValueError() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let err = take(ca_future_set_log_traceback(f, true))
            #expect(err?.type == "ValueError")
            #expect(err?.message == "_log_traceback can only be set to False")
        }
    }

    @Test("_log_traceback = false silences the unretrieved-exception report")
    func logTracebackFalseSilencesReport() throws {
        try withLoop { t in
            let exc = t.recordExceptions()
            let f = t.future()
            let e = makeError("ValueError")
            expectOK(ca_future_set_exception(f, e))
            decref(e)
            #expect(f.pointee.fut_log_tb == 1)
            expectOK(ca_future_set_log_traceback(f, false))
            decref(f)
            #expect(exc.pointee.count == 0)
        }
    }

    // MARK: - repr (item 16)

    @Test("repr of a pending future is '<Future pending>'")
    func reprPending() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            #expect(repr(f) == "<Future pending>")
        }
    }

    @Test("repr of a finished future shows its result")
    func reprFinished() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_set_result(f, ca_int(4)))
            #expect(repr(f) == "<Future finished result=4>")
        }
    }

    @Test("repr of a cancelled future is '<Future cancelled>'")
    func reprCancelled() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            _ = ca_future_cancel(f, nil)
            #expect(repr(f) == "<Future cancelled>")
        }
    }

    @Test("repr of a failed future shows its exception")
    func reprException() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let e = makeError("RuntimeError", "x")
            expectOK(ca_future_set_exception(f, e))
            decref(e)
            #expect(repr(f) == "<Future finished exception=RuntimeError('x')>")
            #expect(outcome(f) == .error("RuntimeError", "x"))
        }
    }

    @Test("repr of an exception escapes its message as Python's repr of a str does")
    func reprExceptionMessageEscaped() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let e = makeError("RuntimeError", "it's\r\n\u{1}\\")
            expectOK(ca_future_set_exception(f, e))
            decref(e)
            #expect(repr(f) == "<Future finished exception=RuntimeError(\"it's\\r\\n\\x01\\\\\")>")
            _ = outcome(f)
        }
    }

    @Test("repr of a future with callbacks lists them as cb=[...]")
    func reprWithCallbacks() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            expectOK(ca_future_add_done_callback(f, ts_probe_done, t.probe(1), nil, nil))
            let r = repr(f)
            #expect(r.hasPrefix("<Future pending cb=["))
        }
    }

    // MARK: - Loop, identity, uninitialised futures (items 8, 18)

    @Test("ca_future_new(NULL) returns NULL")
    func futureWithoutLoopIsNull() {
        #expect(ca_future_new(nil) == nil)
    }

    @Test("get_loop() returns the owning loop, and create_future() makes such futures")
    func getLoopReturnsOwner() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            #expect(ca_future_get_loop(f) == t.loop)
            let g = try #require(ca_loop_create_future(t.loop))
            defer { decref(g) }
            #expect(ca_future_get_loop(g) == t.loop)
            #expect(!ca_future_done(g))
        }
    }

    @Test("ca_future_check accepts futures and tasks and rejects other objects")
    func futureCheck() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let task = try t.task(ts_coro_return_int(1))
            defer { decref(task) }
            let e = makeError("ValueError")
            defer { decref(e) }
            #expect(ca_future_check(f))
            #expect(ca_future_check(task))
            #expect(!ca_future_check(e))
            #expect(!ca_task_check(f))
            #expect(ca_task_check(task))
            t.runUntilComplete(task)
        }
    }

    @Test("a future whose initialisation never ran is neither done nor cancelled")
    func uninitialisedFutureStates() throws {
        let f = try #require(ts_uninit_future_new())
        defer { ts_uninit_future_free(f) }
        #expect(!ca_future_done(f))
        #expect(!ca_future_cancelled(f))
    }

    @Test("result() and exception() of an uninitialised future raise InvalidStateError")
    func uninitialisedFutureResult() throws {
        let f = try #require(ts_uninit_future_new())
        defer { ts_uninit_future_free(f) }
        var v = ca_none()
        #expect(take(ca_future_result(f, &v))?.type == "InvalidStateError")
        var exc: ErrorPtr?
        #expect(take(ca_future_exception(f, &exc))?.type == "InvalidStateError")
    }

    @Test("add_done_callback on an uninitialised future raises InvalidStateError")
    func uninitialisedFutureAddCallback() throws {
        let f = try #require(ts_uninit_future_new())
        defer { ts_uninit_future_free(f) }
        let p = ProbePtr.allocate(capacity: 1)
        defer { p.deallocate() }
        ts_probe_init(p, nil, 0)
        #expect(take(ca_future_add_done_callback(f, ts_probe_done, p, ts_probe_release, nil))?.type
            == "InvalidStateError")
        #expect(p.pointee.releases == 1)
    }

    // MARK: - awaited_by and the blocking flag

    @Test("the first awaiter is kept inline and a second promotes the slot to a set")
    func awaitedByPromotesToSet() throws {
        try withLoop { t in
            let f = t.future(), a = t.future(), b = t.future()
            defer { decref(f); decref(a); decref(b) }
            #expect(ca_future_get_awaited_by(f, nil, 0) == 0)
            expectOK(ca_future_add_to_awaited_by(f, a))
            #expect(f.pointee.fut_awaited_by_is_set == 0)
            #expect(f.pointee.fut_awaited_by == UnsafeMutableRawPointer(a))
            expectOK(ca_future_add_to_awaited_by(f, b))
            #expect(f.pointee.fut_awaited_by_is_set == 1)
            var out = [FuturePtr?](repeating: nil, count: 2)
            #expect(ca_future_get_awaited_by(f, &out, 2) == 2)
            #expect(Set(out.compactMap { $0 }) == Set([a, b]))
        }
    }

    @Test("discarding an awaiter forgets only that awaiter")
    func discardAwaitedBy() throws {
        try withLoop { t in
            let f = t.future(), a = t.future(), b = t.future()
            defer { decref(f); decref(a); decref(b) }
            expectOK(ca_future_add_to_awaited_by(f, a))
            expectOK(ca_future_add_to_awaited_by(f, b))
            ca_future_discard_from_awaited_by(f, a)
            var out = [FuturePtr?](repeating: nil, count: 2)
            #expect(ca_future_get_awaited_by(f, &out, 2) == 1)
            #expect(out[0] == b)
            ca_future_discard_from_awaited_by(f, a)
            #expect(ca_future_get_awaited_by(f, nil, 0) == 1)
        }
    }

    @Test("the blocking flag can be set and cleared")
    func blockingFlag() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            #expect(!ca_future_get_blocking(f))
            ca_future_set_blocking(f, true)
            #expect(ca_future_get_blocking(f))
            ca_future_set_blocking(f, false)
            #expect(!ca_future_get_blocking(f))
        }
    }
}
