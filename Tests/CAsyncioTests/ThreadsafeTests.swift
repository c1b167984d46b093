// call_soon_threadsafe and stop_threadsafe: the only cross-thread entry
// points (notes §5; issue 2 deliverable 6).

import CAsyncio
import CAsyncioTestSupport
import Testing

@Suite("Thread-safe scheduling")
struct ThreadsafeTests {

    @Test("callbacks posted by 4 threads × 5,000 calls each run exactly once, each thread's in order")
    func manyThreadsEachCallbackRunsOnce() throws {
        try withLoop(virtualClock: false) { t in
            var result = ts_stress_result()
            ts_threadsafe_stress(t.loop, 4, 5_000, 20 * nsPerSecond, &result)
            #expect(!result.timed_out)
            #expect(result.post_errors == 0)
            #expect(result.ran == 20_000)
            #expect(result.missing == 0)
            #expect(result.duplicated == 0)
            #expect(result.order_violations == 0)
            #expect(result.releases == 20_000)
        }
    }

    @Test("every call_soon_threadsafe wakes an idle loop: 2 threads posting together, 2,000 rounds, no stall")
    func everyPostWakesIdleLoop() throws {
        let t = try TestLoop(virtualClock: false)
        var result = ts_wakeup_result()
        ts_wakeup_rounds(t.loop, 2, 2_000, 2 * nsPerSecond, &result)
        #expect(result.rounds == 2_000)
        #expect(result.stalls == 0)
        #expect(result.ran == 4_000)
        #expect(result.loop_finished)
        if result.loop_finished { t.finish() } else { t.abandon() }
    }

    @Test("call_soon_threadsafe wakes a loop blocked with nothing scheduled")
    func wakesIdleLoop() throws {
        let t = try TestLoop(virtualClock: false)
        let thread = try #require(ts_loop_thread_start(t.loop))
        ts_sleep_ns(50 * nsPerMs)
        expectOK(ca_loop_call_soon_threadsafe(t.loop, ts_stop_loop, UnsafeMutableRawPointer(t.loop), nil))
        let joined = ts_loop_thread_join(thread, 5 * nsPerSecond)
        #expect(joined, "the loop did not wake up within 5 s")
        guard joined else {
            t.abandon()
            return
        }
        expectOK(ts_loop_thread_take_error(thread))
        ts_loop_thread_free(thread)
        t.finish()
    }

    @Test("a loop run again from a different thread still sleeps and wakes normally, no backend errors")
    func loopRunFromAnotherThreadKeepsWorking() throws {
        let t = try TestLoop(virtualClock: false)
        let errors = t.recordExceptions()
        for round in 0..<3 {
            let thread = try #require(ts_loop_thread_start(t.loop))
            ts_sleep_ns(20 * nsPerMs)
            expectOK(ca_loop_call_soon_threadsafe(t.loop, ts_stop_loop, UnsafeMutableRawPointer(t.loop), nil))
            let joined = ts_loop_thread_join(thread, 5 * nsPerSecond)
            #expect(joined, "round \(round): the loop did not wake up within 5 s")
            guard joined else {
                t.abandon()
                return
            }
            expectOK(ts_loop_thread_take_error(thread))
            ts_loop_thread_free(thread)
        }
        // io_uring rings created SINGLE_ISSUER refuse a second thread (EEXIST);
        // the backend must rebuild its ring instead of failing every poll.
        #expect(errors.pointee.count == 0)
        t.finish()
    }

    @Test("call_soon_threadsafe wakes a loop waiting for a distant timer")
    func wakesLoopWaitingForTimer() throws {
        try withLoop(virtualClock: false) { t in
            let far = t.probe(1)
            let h = t.callLater(30 * nsPerSecond, far)
            defer { decref(h) }
            let start = ts_monotonic_ns()
            let thread = try #require(ts_loop_thread_start(t.loop))
            defer { ts_loop_thread_free(thread) }
            ts_sleep_ns(50 * nsPerMs)
            expectOK(ca_loop_call_soon_threadsafe(t.loop, ts_stop_loop, UnsafeMutableRawPointer(t.loop), nil))
            #expect(ts_loop_thread_join(thread, 60 * nsPerSecond))
            #expect(ts_monotonic_ns() - start < 5 * nsPerSecond)
            #expect(far.pointee.runs == 0)
            ca_handle_cancel(h)
        }
    }

    @Test("stop_threadsafe stops a loop blocked on another thread")
    func stopThreadsafe() throws {
        let t = try TestLoop(virtualClock: false)
        let thread = try #require(ts_loop_thread_start(t.loop))
        ts_sleep_ns(20 * nsPerMs)
        expectOK(ca_loop_stop_threadsafe(t.loop))
        let joined = ts_loop_thread_join(thread, 5 * nsPerSecond)
        #expect(joined, "the loop did not stop within 5 s")
        guard joined else {
            t.abandon()
            return
        }
        expectOK(ts_loop_thread_take_error(thread))
        ts_loop_thread_free(thread)
        t.finish()
    }

    @Test("call_soon_threadsafe from the loop's own thread runs on the next iteration")
    func threadsafeFromLoopThread() throws {
        try withLoop { t in
            let p = t.probe(1)
            expectOK(ca_loop_call_soon_threadsafe(t.loop, ts_probe_call, p, ts_probe_release))
            #expect(p.pointee.runs == 0)
            t.runOnce()
            #expect(p.pointee.runs == 1)
            #expect(p.pointee.releases == 1)
        }
    }

    @Test("call_soon_threadsafe callbacks from one thread keep their order")
    func threadsafeOrderFromOneThread() throws {
        try withLoop { t in
            for i in 0..<5 {
                expectOK(ca_loop_call_soon_threadsafe(t.loop, ts_probe_call, t.probe(Int64(i)), nil))
            }
            t.runOnce()
            t.runOnce()
            #expect(t.log == [0, 1, 2, 3, 4])
        }
    }

    @Test("call_soon_threadsafe on a closed loop raises 'Event loop is closed' and releases the argument")
    func threadsafeOnClosedLoop() throws {
        try withLoop { t in
            expectOK(ca_loop_close(t.loop))
            let p = t.probe(1)
            let err = take(ca_loop_call_soon_threadsafe(t.loop, ts_probe_call, p, ts_probe_release))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Event loop is closed")
            #expect(p.pointee.releases == 1)
        }
    }
}
