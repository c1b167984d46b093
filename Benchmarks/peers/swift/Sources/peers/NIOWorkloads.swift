// The workloads on SwiftNIO: one SelectableEventLoop (a
// MultiThreadedEventLoopGroup of one thread, epoll on Linux). Each run is
// started on the loop and timed there, from its first operation to the
// callback that sees the last one done; the main thread only waits for the
// figure. On-loop code uses NIO's isolated API (`assumeIsolated()`), which is
// what NIO offers code that runs on its loop under Swift 6.

import Dispatch
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

enum NIOWorkloads {
    /// The one loop every NIO run uses, started once.
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    static var loop: any EventLoop { group.next() }

    static let variants: [Variant] = [
        Variant(workload: "future_callback", variant: nil,
                api: "EventLoop.makePromise + whenSuccess + succeed", defaultN: 1_000_000, run: futureCallback),
        Variant(workload: "call_soon", variant: nil,
                api: "EventLoop.execute (assumeIsolated)", defaultN: 1_000_000, run: callSoon),
        Variant(workload: "call_soon", variant: "sendable",
                api: "EventLoop.execute (@Sendable closure)", defaultN: 1_000_000, run: callSoonSendable),
        Variant(workload: "sleep0", variant: nil,
                api: "EventLoop.execute, re-submitted from the running closure", defaultN: 1_000_000, run: sleep0),
        Variant(workload: "ping_pong", variant: nil,
                api: "promise-backed queues; each wake-up an EventLoop.execute", defaultN: 200_000, run: pingPong),
        Variant(workload: "timers", variant: nil,
                api: "EventLoop.scheduleTask(in:) + Scheduled.cancel()", defaultN: 200_000, run: timers),
        Variant(workload: "wakeup_latency", variant: nil,
                api: "EventLoop.execute from another thread, idle loop", defaultN: 5_000, latency: wakeupLatency),
    ]

    /// Runs `body` on the loop, handing it a promise for the measured
    /// nanoseconds (or the failure), and waits for that promise.
    static func onLoop(
        _ body: @escaping @Sendable (NIOIsolatedEventLoop, EventLoopPromise<UInt64>) -> Void
    ) throws(WorkloadError) -> UInt64 {
        let loop = self.loop
        let promise = loop.makePromise(of: UInt64.self)
        loop.execute { body(loop.assumeIsolated(), promise) }
        do {
            return try promise.futureResult.wait()
        } catch let error as WorkloadError {
            throw error
        } catch {
            throw WorkloadError("\(error)")
        }
    }

    // MARK: - call_soon

    /// Per-run state, touched only on the loop thread.
    private final class Counter {
        var count = 0
        var done = 0
    }

    /// Batches of 1000 execute(cb); one more execute after them plays the
    /// part of asyncio's stop() + run_forever(): it runs once the batch is
    /// drained and starts the next one.
    static func callSoon(_ n: Int) throws(WorkloadError) -> UInt64 {
        try onLoop { el, promise in
            let st = Counter()
            let t0 = nowNs()
            func batch() {
                let size = min(1000, n - st.done)
                let target = st.count + size
                for _ in 0..<size {
                    el.execute { st.count += 1 }
                }
                st.done += size
                el.execute {
                    guard st.count == target else {
                        return promise.fail(WorkloadError("\(st.count - target + size) of \(size) callbacks ran"))
                    }
                    if st.done < n { batch() } else { promise.succeed(nowNs() - t0) }
                }
            }
            batch()
        }
    }

    /// A counter a @Sendable closure may capture: it is only touched on the
    /// loop thread, which runs every closure submitted here one at a time.
    private final class SendableCounter: @unchecked Sendable {
        var count = 0
        var done = 0
    }

    /// call_soon through the plain `execute`, which takes a @Sendable closure
    /// and may be called from any thread.
    static func callSoonSendable(_ n: Int) throws(WorkloadError) -> UInt64 {
        try onLoop { _, promise in
            let loop = NIOWorkloads.loop
            let st = SendableCounter()
            let t0 = nowNs()
            @Sendable func batch() {
                let size = min(1000, n - st.done)
                let target = st.count + size
                for _ in 0..<size {
                    loop.execute { st.count += 1 }
                }
                st.done += size
                loop.execute {
                    guard st.count == target else {
                        return promise.fail(WorkloadError("\(st.count - target + size) of \(size) callbacks ran"))
                    }
                    if st.done < n { batch() } else { promise.succeed(nowNs() - t0) }
                }
            }
            batch()
        }
    }

    // MARK: - future_callback

    private final class FutureState {
        var count = 0
        var done = 0
        var promises: [EventLoopPromise<Int>] = []
    }

    /// Batches of 1000 promises, one whenSuccess callback on each, succeed(i)
    /// on each. NIO runs the callbacks inside succeed(); an execute after the
    /// batch still stands for "run the loop until every callback ran".
    static func futureCallback(_ n: Int) throws(WorkloadError) -> UInt64 {
        try onLoop { el, promise in
            let st = FutureState()
            st.promises.reserveCapacity(1000)
            let loop = el.nonisolated()
            let t0 = nowNs()
            func batch() {
                let size = min(1000, n - st.done)
                let target = st.count + size
                for _ in 0..<size {
                    st.promises.append(loop.makePromise(of: Int.self))
                }
                for p in st.promises {
                    p.futureResult.assumeIsolated().whenSuccess { _ in st.count += 1 }
                }
                for (i, p) in st.promises.enumerated() {
                    p.assumeIsolated().succeed(i)
                }
                st.promises.removeAll(keepingCapacity: true)
                st.done += size
                el.execute {
                    guard st.count == target else {
                        return promise.fail(WorkloadError("\(st.count - target + size) of \(size) callbacks ran"))
                    }
                    if st.done < n { batch() } else { promise.succeed(nowNs() - t0) }
                }
            }
            batch()
        }
    }

    // MARK: - sleep0

    /// One "task" yields to the loop n times: each step submits the next.
    static func sleep0(_ n: Int) throws(WorkloadError) -> UInt64 {
        try onLoop { el, promise in
            let st = Counter()
            let t0 = nowNs()
            func step() {
                st.count += 1
                if st.count < n { el.execute(step) } else { promise.succeed(nowNs() - t0) }
            }
            el.execute(step)
        }
    }

    // MARK: - ping_pong

    /// An unbounded FIFO of Ints on the loop, asyncio.Queue's part: get()
    /// returns a future, already succeeded when an item is waiting.
    private final class LoopQueue {
        private let loop: any EventLoop
        private var items = CircularBuffer<Int>()
        private var waiter: EventLoopPromise<Int>?

        init(_ loop: any EventLoop) { self.loop = loop }

        func put(_ x: Int) {
            if let w = waiter {
                waiter = nil
                w.assumeIsolated().succeed(x)
            } else {
                items.append(x)
            }
        }

        func get() -> EventLoopFuture<Int> {
            if let x = items.popFirst() { return loop.makeSucceededFuture(x) }
            let p = loop.makePromise(of: Int.self)
            waiter = p
            return p.futureResult
        }
    }

    private final class PingPongState {
        let q1: LoopQueue
        let q2: LoopQueue
        var sum = 0
        var aDone = false
        var bDone = false
        init(_ loop: any EventLoop) {
            q1 = LoopQueue(loop)
            q2 = LoopQueue(loop)
        }
    }

    /// A: `q1.put(i); sum += await q2.get()`; B: `x = await q1.get(); q2.put(x)`.
    /// A "task" that waited resumes through execute, as an asyncio task's
    /// wake-up goes through call_soon (and so the stack stays flat).
    static func pingPong(_ n: Int) throws(WorkloadError) -> UInt64 {
        try onLoop { el, promise in
            let st = PingPongState(el.nonisolated())
            let t0 = nowNs()
            func finishIfDone() {
                guard st.aDone && st.bDone else { return }
                let expected = n * (n - 1) / 2
                if st.sum == expected {
                    promise.succeed(nowNs() - t0)
                } else {
                    promise.fail(WorkloadError("sum of the round trips \(st.sum), expected \(expected)"))
                }
            }
            func a(_ i: Int) {
                if i == n {
                    st.aDone = true
                    return finishIfDone()
                }
                st.q1.put(i)
                st.q2.get().assumeIsolated().whenSuccess { x in
                    st.sum += x
                    el.execute { a(i + 1) }
                }
            }
            func b(_ i: Int) {
                if i == n {
                    st.bDone = true
                    return finishIfDone()
                }
                st.q1.get().assumeIsolated().whenSuccess { x in
                    el.execute {
                        st.q2.put(x)
                        b(i + 1)
                    }
                }
            }
            a(0)
            b(0)
        }
    }

    // MARK: - timers

    private final class TimerState {
        var fired = 0
        var cancelledRan = false
        var handles: [Scheduled<Void>] = []
    }

    /// Delays are the input, computed once outside the timing.
    private static let delays = Delays()

    private final class Delays: @unchecked Sendable {
        // Written once per n before the run starts and read on the loop; the
        // loop's execute() orders the write before the read.
        var byN: [Int: [Int64]] = [:]
    }

    /// n scheduleTask(in:) with the LCG's delays, every other one cancelled
    /// at once; the run ends when the last live one fired.
    static func timers(_ n: Int) throws(WorkloadError) -> UInt64 {
        if delays.byN[n] == nil { delays.byN[n] = lcgDelaysNs(n) }
        let ds = delays.byN[n]!
        return try onLoop { el, promise in
            let st = TimerState()
            st.handles.reserveCapacity(n)
            let live = n - n / 2
            let t0 = nowNs()
            for (i, d) in ds.enumerated() {
                if i % 2 == 1 {
                    st.handles.append(el.scheduleTask(in: .nanoseconds(d)) { st.cancelledRan = true })
                } else {
                    st.handles.append(el.scheduleTask(in: .nanoseconds(d)) {
                        st.fired += 1
                        guard st.fired == live else { return }
                        if st.cancelledRan {
                            promise.fail(WorkloadError("a cancelled timer's callback ran"))
                        } else {
                            promise.succeed(nowNs() - t0)
                        }
                    })
                }
            }
            for i in stride(from: 1, to: n, by: 2) {
                st.handles[i].cancel()
            }
        }
    }

    // MARK: - wakeup_latency

    /// The latencies of one run, written on the loop thread; the sender reads
    /// them only after the semaphore the loop signals last.
    private final class Samples: @unchecked Sendable {
        var ns: [UInt64] = []
    }

    /// Another thread submits a closure carrying its send time every 200 µs
    /// to the idle loop, one at a time (asyncio's call_soon_threadsafe); the
    /// closure records now − sent.
    static func wakeupLatency(_ n: Int) throws(WorkloadError) -> [UInt64] {
        let loop = self.loop
        let samples = Samples()
        samples.ns.reserveCapacity(n)
        let ran = DispatchSemaphore(value: 0)
        for _ in 0..<n {
            usleep(200)
            let sent = nowNs()
            loop.execute {
                samples.ns.append(nowNs() - sent)
                ran.signal()
            }
            if ran.wait(timeout: .now() + .seconds(5)) == .timedOut {
                throw WorkloadError("\(samples.ns.count) of \(n) wake-ups arrived")
            }
        }
        return samples.ns
    }
}
