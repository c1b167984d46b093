// Timers: call_later / call_at ordering, cancellation, heap pruning, and the
// virtual clock (notes §5 "_run_once").

import CAsyncio
import CAsyncioTestSupport
import Testing

@Suite("Timers")
struct TimerTests {

    // MARK: - Ordering

    @Test("call_later callbacks run in deadline order")
    func callLaterRunsByDeadline() throws {
        try withLoop { t in
            for ms in [30, 10, 20] as [Int64] { decref(t.callLater(ms * nsPerMs, t.probe(ms))) }
            t.runFor(nsPerSecond)
            #expect(t.log == [10, 20, 30])
        }
    }

    @Test("timers with the same deadline run in scheduling order")
    func sameDeadlineIsFIFO() throws {
        try withLoop { t in
            let when = t.time + 5 * nsPerMs
            for i in 0..<8 { decref(t.callAt(when, t.probe(Int64(i)))) }
            t.runFor(nsPerSecond)
            #expect(t.log == [0, 1, 2, 3, 4, 5, 6, 7])
        }
    }

    @Test("timers that became due together run in deadline order, whatever the scheduling order")
    func dueTogetherRunByDeadline() throws {
        try withLoop { t in
            let base = t.time
            for i in [3, 2, 1] as [Int64] { decref(t.callAt(base + i * nsPerMs, t.probe(i))) }
            ca_loop_advance_time(t.loop, 5 * nsPerMs)
            t.runOnce()
            #expect(t.log == [1, 2, 3])
        }
    }

    @Test("a thousand timers scheduled in shuffled order run in deadline order")
    func manyShuffledTimers() throws {
        try withLoop { t in
            var order = Array(0..<1000)
            var x: UInt64 = 1
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                x = x &* 6364136223846793005 &+ 1442695040888963407
                order.swapAt(i, Int((x >> 33) % UInt64(i + 1)))
            }
            for i in order { decref(t.callLater(Int64(i + 1) * nsPerMs, t.probe(Int64(i)))) }
            #expect(ca_loop_timer_count(t.loop) == 1000)
            t.runFor(2 * nsPerSecond)
            #expect(t.log == (0..<1000).map { Int64($0) })
        }
    }

    @Test("call_at with a deadline in the past runs on the next iteration")
    func callAtInThePast() throws {
        try withLoop { t in
            let p = t.probe(1)
            decref(t.callAt(t.time - nsPerSecond, p))
            t.runOnce()
            #expect(p.pointee.runs == 1)
        }
    }

    @Test("call_later with a negative delay runs on the next iteration")
    func negativeDelay() throws {
        try withLoop { t in
            let p = t.probe(1)
            decref(t.callLater(-5 * nsPerSecond, p))
            t.runOnce()
            #expect(p.pointee.runs == 1)
        }
    }

    @Test("a timer due now runs after the callbacks already queued in the same iteration")
    func dueTimerRunsAfterReadyCallbacks() throws {
        try withLoop { t in
            t.callSoon(t.probe(1))
            decref(t.callLater(0, t.probe(2)))
            t.callSoon(t.probe(3))
            t.runOnce()
            #expect(t.log == [1, 3, 2])
        }
    }

    @Test("a timer callback sees loop time at or past its deadline")
    func timerRunsAtOrAfterDeadline() throws {
        try withLoop { t in
            let when = t.time + 7 * nsPerMs
            decref(t.callAt(when, t.probe(1)))
            t.runFor(nsPerSecond)
            #expect(t.logTimes.count == 1)
            #expect(t.logTimes.first.map { $0 >= when } == true)
        }
    }

    @Test("TimerHandle.when() is the deadline: call_at's argument, call_later's time() + delay")
    func handleWhen() throws {
        try withLoop { t in
            let when = t.time + 42 * nsPerMs
            let a = try #require(t.callAt(when, t.probe(1)))
            defer { decref(a) }
            #expect(ca_handle_when(a) == when)
            let now = t.time
            let b = try #require(t.callLater(3 * nsPerSecond, t.probe(2)))
            defer { decref(b) }
            #expect(ca_handle_when(b) == now + 3 * nsPerSecond)
            ca_handle_cancel(a)
            ca_handle_cancel(b)
        }
    }

    @Test("call_later with the largest delay is scheduled in the future and does not fire", arguments: [true, false])
    func hugeDelayDoesNotFire(virtualClock: Bool) throws {
        try withLoop(virtualClock: virtualClock) { t in
            ca_loop_advance_time(t.loop, nsPerSecond)
            let p = t.probe(1)
            let h = try #require(t.callLater(Int64.max, p))
            defer { decref(h) }
            #expect(ca_handle_when(h) > t.time)
            t.runOnce()
            t.runFor(10 * nsPerMs)
            #expect(p.pointee.runs == 0)
            ca_handle_cancel(h)
        }
    }

    // MARK: - Cancellation

    @Test("a cancelled timer never runs")
    func cancelledTimerNeverRuns() throws {
        try withLoop { t in
            let p = t.probe(1), q = t.probe(2)
            let h = try #require(t.callLater(10 * nsPerMs, p))
            defer { decref(h) }
            decref(t.callLater(20 * nsPerMs, q))
            ca_handle_cancel(h)
            #expect(ca_handle_cancelled(h))
            t.runFor(nsPerSecond)
            #expect(p.pointee.runs == 0)
            #expect(q.pointee.runs == 1)
        }
    }

    @Test("a cancelled timer's argument is released once")
    func cancelledTimerReleasesArgument() throws {
        try withLoop { t in
            let p = t.probe(1)
            let h = try #require(t.callLater(10 * nsPerMs, p))
            ca_handle_cancel(h)
            decref(h)
            t.runFor(nsPerSecond)
            #expect(p.pointee.releases == 1)
        }
    }

    @Test("timer_count includes cancelled timers until they leave the heap")
    func timerCountIncludesCancelled() throws {
        try withLoop { t in
            var hs: [HandlePtr] = []
            for i in 1...3 { hs.append(try #require(t.callLater(Int64(i) * nsPerSecond, t.probe(Int64(i))))) }
            defer { hs.forEach { decref($0) } }
            ca_handle_cancel(hs[1])
            #expect(ca_loop_timer_count(t.loop) == 3)
            hs.forEach { ca_handle_cancel($0) }
        }
    }

    @Test("cancelled timers at the top of the heap are dropped at the next iteration")
    func cancelledTopTimersAreDropped() throws {
        try withLoop { t in
            var hs: [HandlePtr] = []
            for i in 1...10 { hs.append(try #require(t.callLater(Int64(i) * nsPerSecond, t.probe(Int64(i))))) }
            defer { hs.forEach { decref($0) } }
            for h in hs[0..<3] { ca_handle_cancel(h) }
            t.runOnce()
            #expect(ca_loop_timer_count(t.loop) == 7)
            hs.forEach { ca_handle_cancel($0) }
        }
    }

    /// Schedules `n` timers 1 s apart and cancels the `cancelled` latest ones
    /// (so none of them is at the top of the heap); returns the heap size
    /// after one iteration.
    private func heapSizeAfterCancelling(_ cancelled: Int, of n: Int) throws -> Int {
        try withLoop { t in
            var hs: [HandlePtr] = []
            for i in 1...n { hs.append(try #require(t.callLater(Int64(i) * nsPerSecond, t.probe(Int64(i))))) }
            defer { hs.forEach { decref($0) } }
            for h in hs[(n - cancelled)...] { ca_handle_cancel(h) }
            #expect(ca_loop_timer_count(t.loop) == n)
            t.runOnce()
            let size = ca_loop_timer_count(t.loop)
            hs.forEach { ca_handle_cancel($0) }
            return size
        }
    }

    @Test("the timer heap is pruned when it holds more than 100 handles and over half are cancelled")
    func heapIsPruned() throws {
        #expect(try heapSizeAfterCancelling(51, of: 101) == 50)
    }

    @Test("the timer heap is not pruned with 100 handles or fewer")
    func heapNotPrunedWhenSmall() throws {
        #expect(try heapSizeAfterCancelling(60, of: 100) == 100)
    }

    @Test("the timer heap is not pruned when exactly half the handles are cancelled")
    func heapNotPrunedAtHalf() throws {
        #expect(try heapSizeAfterCancelling(100, of: 200) == 200)
    }

    @Test("after pruning, the surviving timers still run in deadline order")
    func prunedHeapKeepsOrder() throws {
        try withLoop { t in
            var hs: [HandlePtr] = []
            for i in 1...120 { hs.append(try #require(t.callLater(Int64(i) * nsPerMs, t.probe(Int64(i))))) }
            defer { hs.forEach { decref($0) } }
            for (i, h) in hs.enumerated() where i % 4 != 0 { ca_handle_cancel(h) }
            t.runOnce()
            #expect(ca_loop_timer_count(t.loop) == 30)
            t.runFor(nsPerSecond)
            #expect(t.log == stride(from: 1, through: 120, by: 4).map { Int64($0) })
        }
    }

    // MARK: - Virtual clock

    @Test("virtual time jumps to the next deadline when nothing is ready")
    func virtualTimeJumpsToDeadline() throws {
        try withLoop { t in
            let start = t.time
            decref(t.callLater(5 * nsPerSecond, t.probe(1)))
            t.runFor(10 * nsPerSecond)
            #expect(t.log == [1])
            let at = t.logTimes.first ?? 0
            #expect(at >= start + 5 * nsPerSecond)
            #expect(at < start + 5 * nsPerSecond + nsPerMs)
        }
    }

    @Test("virtual time does not move while callbacks are ready")
    func virtualTimeWaitsForReadyCallbacks() throws {
        try withLoop { t in
            let start = t.time
            let chain = (0..<10).map { t.probe(Int64($0)) }
            for i in 0..<9 { chain[i].pointee.next = chain[i + 1] }
            expectOK(ca_loop_call_soon(t.loop, ts_probe_schedule_next, chain[0], nil, nil, nil))
            decref(t.callLater(nsPerMs, t.probe(100)))
            t.runFor(nsPerSecond)
            #expect(t.log == Array(0..<10) + [100])
            #expect(t.logTimes.prefix(10).allSatisfy { $0 == start })
            #expect((t.logTimes.last ?? 0) >= start + nsPerMs)
        }
    }

    @Test("an iteration bounded by stop() does not advance virtual time")
    func stopBoundedIterationKeepsTime() throws {
        try withLoop { t in
            let start = t.time
            let p = t.probe(1)
            decref(t.callLater(nsPerSecond, p))
            t.runOnce()
            #expect(t.time == start)
            #expect(p.pointee.runs == 0)
        }
    }

    @Test("advance_time() moves virtual time and makes a timer due on the next iteration")
    func advanceTimeMakesTimerDue() throws {
        try withLoop { t in
            let start = t.time
            let p = t.probe(1)
            decref(t.callLater(nsPerSecond, p))
            t.runOnce()
            #expect(p.pointee.runs == 0)
            ca_loop_advance_time(t.loop, nsPerSecond)
            #expect(t.time == start + nsPerSecond)
            t.runOnce()
            #expect(p.pointee.runs == 1)
        }
    }

    // MARK: - Real clock

    @Test("on the real clock, call_later(20 ms) runs no earlier than 20 ms later")
    func realClockTimerWaits() throws {
        try withLoop(virtualClock: false) { t in
            let start = ts_monotonic_ns()
            let p = t.probe(1)
            decref(t.callLater(20 * nsPerMs, p))
            t.runFor(60 * nsPerMs)
            #expect(p.pointee.runs == 1)
            let firedAt = t.logTimes.first ?? 0
            #expect(firedAt - start >= 20 * nsPerMs - 1_000)
            #expect(ts_monotonic_ns() - start >= 60 * nsPerMs - 1_000)
        }
    }
}
