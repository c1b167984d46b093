// The workloads of ../shared/reference/workloads.md written against the
// Swift layer (module Asyncio), for `bench run --impl swift` and the
// allocation gates (Tests/CAsyncioTests/BenchThresholdTests.swift). Each mirrors
// its C version in Benchmarks/CBench: a fresh loop on the real clock, a
// warm-up, then N measured operations, with a check that the work was done.

import Asyncio
import CAsyncio
import CAsyncioBench
#if canImport(Glibc)
import Glibc
#endif

/// A run that did not complete: the core returned an error or the work came
/// out wrong.
public struct WorkloadFailure: Error {
    public let workload: String
    public let message: String

    public init(workload: String, message: String) {
        self.workload = workload
        self.message = message
    }
}

/// A Swift-layer workload: same name, unit and N as the C one. `run(n)`
/// measures n operations after a warm-up and returns the wall time, the
/// core's allocations and (when the process counts them) every malloc of
/// the calling thread.
public struct SwiftWorkload: Sendable {
    public let name: String
    public let run: @Sendable (UInt64) throws(WorkloadFailure) -> cab_result

    /// The workloads the Swift layer implements, in workloads.md order.
    public static let all: [SwiftWorkload] = [
        SwiftWorkload(name: "future_callback", run: futureCallback),
        SwiftWorkload(name: "call_soon", run: callSoon),
        SwiftWorkload(name: "task_spawn", run: { n throws(WorkloadFailure) in try taskSpawn(n, eager: false) }),
        SwiftWorkload(name: "task_spawn_eager", run: { n throws(WorkloadFailure) in try taskSpawn(n, eager: true) }),
        SwiftWorkload(name: "sleep0", run: sleep0),
        SwiftWorkload(name: "timers", run: timers),
        SwiftWorkload(name: "ping_pong", run: pingPong),
    ]

    public static func named(_ name: String) -> SwiftWorkload? { all.first { $0.name == name } }
}

// MARK: - Measuring

/// Wall clock and core allocations of the measured part, as cab_meter does.
private struct Meter {
    var t0: UInt64 = 0
    var a0 = ca_alloc_stats()
    var m0: UInt64 = 0

    mutating func start() {
        a0 = ca_alloc_stats_get()
        m0 = cab_mallocs_now()
        t0 = cab_now_ns()
    }

    func stop(n: UInt64, loop: EventLoop) -> cab_result {
        let t1 = cab_now_ns()
        let m1 = cab_mallocs_now()
        let a1 = ca_alloc_stats_get()
        var r = cab_result()
        r.n = n
        r.wall_ns = t1 - t0
        r.allocs = a1.allocs - a0.allocs
        r.frees = a1.frees - a0.frees
        r.mallocs = m1 - m0
        r.mallocs_counted = cab_mallocs_counted()
        withUnsafeMutableBytes(of: &r.backend) { buf in
            let name = Array(String(cString: ca_loop_backend_name(loop.unsafeRaw)).utf8.prefix(buf.count - 1))
            buf.copyBytes(from: name)
        }
        return r
    }
}

/// Runs `body` with a fresh loop, turning any error into a WorkloadFailure.
private func withLoop(_ name: String, _ body: (EventLoop) throws -> cab_result) throws(WorkloadFailure) -> cab_result {
    do {
        let loop = try EventLoop()
        defer { try? loop.close() }
        return try body(loop)
    } catch let failure as WorkloadFailure {
        throw failure
    } catch {
        throw WorkloadFailure(workload: name, message: "\(error)")
    }
}

private let batch = Int(CAB_BATCH)

/// The batch sizes of `n` operations (the last one shorter).
private func batches(_ n: UInt64) -> [Int] {
    var sizes: [Int] = []
    var done: UInt64 = 0
    while done < n {
        let size = Int(min(UInt64(batch), n - done))
        sizes.append(size)
        done += UInt64(size)
    }
    return sizes
}

/// A counter the callbacks of one workload bump, on the loop thread.
///
/// Safety of `@unchecked Sendable`: only the thread running the workload's
/// loop touches it (callbacks run on that thread, and the workload reads it
/// between runs of the loop on the same thread).
private final class Counter: @unchecked Sendable {
    var value: Int64 = 0
}

// MARK: - future_callback

private func futureCallback(_ n: UInt64) throws(WorkloadFailure) -> cab_result {
    try withLoop("future_callback") { loop in
        let counter = Counter()
        // One array for every batch, as the SwiftNIO peer keeps its promises: a fresh 8 KB array per
        // batch would make glibc consolidate its fast bins each time, which measures the harness.
        var futures: [Future<Int>] = []
        futures.reserveCapacity(batch)
        func runBatch(_ size: Int) throws {
            let target = counter.value + Int64(size)
            for _ in 0..<size { futures.append(loop.createFuture(of: Int.self)) }
            for f in futures { f.addDoneCallback { _ in counter.value += 1 } }
            for (i, f) in futures.enumerated() { try f.setResult(i) }
            futures.removeAll(keepingCapacity: true)
            loop.stop()
            try loop.runForever()
            if counter.value != target {
                throw WorkloadFailure(workload: "future_callback",
                                      message: "\(counter.value - target + Int64(size)) of \(size) done callbacks ran")
            }
        }
        for _ in 0..<2 { try runBatch(batch) }
        var meter = Meter()
        meter.start()
        for size in batches(n) { try runBatch(size) }
        return meter.stop(n: n, loop: loop)
    }
}

// MARK: - call_soon

private func callSoon(_ n: UInt64) throws(WorkloadFailure) -> cab_result {
    try withLoop("call_soon") { loop in
        let counter = Counter()
        func runBatch(_ size: Int) throws {
            let target = counter.value + Int64(size)
            for _ in 0..<size { try loop.callSoon { counter.value += 1 } }
            loop.stop()
            try loop.runForever()
            if counter.value != target {
                throw WorkloadFailure(workload: "call_soon", message: "the loop ran \(counter.value - target + Int64(size)) of \(size) callbacks")
            }
        }
        for _ in 0..<2 { try runBatch(batch) }
        var meter = Meter()
        meter.start()
        for size in batches(n) { try runBatch(size) }
        return meter.stop(n: n, loop: loop)
    }
}

// MARK: - task_spawn

/// `eager`: every task starts with `eagerStart: true` (the Swift layer's
/// spelling of asyncio's eager_task_factory), as task_spawn_eager.
private func taskSpawn(_ n: UInt64, eager: Bool) throws(WorkloadFailure) -> cab_result {
    let name = eager ? "task_spawn_eager" : "task_spawn"
    return try withLoop(name) { loop in
        /// A main task spawning `count` tasks that return i, in batches
        /// awaited with gather; returns the sum of the results.
        func spawn(_ count: UInt64) throws -> Int {
            try loop.runUntilComplete {
                var sum = 0
                // One array for every batch, as the Swift Concurrency peer keeps its tasks (see
                // futureCallback).
                var tasks: [Future<Int>] = []
                tasks.reserveCapacity(batch)
                for size in batches(count) {
                    for i in 0..<size { tasks.append(try createTask(eagerStart: eager) { i }) }
                    for r in try await gather(tasks) { sum += r }
                    tasks.removeAll(keepingCapacity: true)
                }
                return sum
            }
        }
        func expected(_ count: UInt64) -> Int { batches(count).reduce(0) { $0 + $1 * ($1 - 1) / 2 } }
        for _ in 0..<2 { _ = try spawn(UInt64(batch)) }
        var meter = Meter()
        meter.start()
        let sum = try spawn(n)
        let result = meter.stop(n: n, loop: loop)
        if sum != expected(n) {
            throw WorkloadFailure(workload: name, message: "sum of results \(sum), expected \(expected(n))")
        }
        return result
    }
}

// MARK: - sleep0

private func sleep0(_ n: UInt64) throws(WorkloadFailure) -> cab_result {
    try withLoop("sleep0") { loop in
        func run(_ count: UInt64) throws -> UInt64 {
            try loop.runUntilComplete {
                var i: UInt64 = 0
                while i < count {
                    try await sleep(0)
                    i += 1
                }
                return i
            }
        }
        for _ in 0..<2 { _ = try run(UInt64(batch)) }
        var meter = Meter()
        meter.start()
        let done = try run(n)
        let result = meter.stop(n: n, loop: loop)
        if done != n { throw WorkloadFailure(workload: "sleep0", message: "the task finished after \(done) of \(n) sleeps") }
        return result
    }
}

// MARK: - timers

private func timers(_ n: UInt64) throws(WorkloadFailure) -> cab_result {
    try withLoop("timers") { loop in
        // Safety of `@unchecked Sendable`: as Counter, only the thread
        // running the loop touches it.
        final class State: @unchecked Sendable {
            var fired: UInt64 = 0
            var live: UInt64 = 0
            var cancelledRan = false
        }
        let st = State()
        func runOnce(_ meter: UnsafeMutablePointer<Meter>?) throws -> cab_result? {
            st.fired = 0
            st.live = n - n / 2
            st.cancelledRan = false
            var handles: [Handle] = []
            handles.reserveCapacity(Int(n))
            var x: UInt64 = 1
            meter?.pointee.start()
            for i in 0..<n {
                x = x &* 6364136223846793005 &+ 1442695040888963407
                let delay = Double((x >> 33) % 10000) / 1_000_000
                if i % 2 == 1 {
                    handles.append(try loop.callLater(delay) { st.cancelledRan = true })
                } else {
                    handles.append(try loop.callLater(delay) {
                        st.fired += 1
                        if st.fired == st.live { loop.stop() }
                    })
                }
            }
            for i in stride(from: 1, to: Int(n), by: 2) { handles[i].cancel() }
            if meter == nil {
                // Warm-up: every deadline passes before the loop runs, as in timers.c.
                usleep(11_000)
            }
            let watchdog = try loop.callLater(10) { loop.stop() }
            try loop.runForever()
            watchdog.cancel()
            let result = meter.map { $0.pointee.stop(n: n, loop: loop) }
            if st.fired != st.live || st.cancelledRan {
                throw WorkloadFailure(workload: "timers",
                                      message: "\(st.fired) of \(st.live) live timers fired; a cancelled one ran: \(st.cancelledRan)")
            }
            return result
        }
        _ = try runOnce(nil)
        var meter = Meter()
        return try runOnce(&meter)!
    }
}

// MARK: - ping_pong

private func pingPong(_ n: UInt64) throws(WorkloadFailure) -> cab_result {
    try withLoop("ping_pong") { loop in
        let q1 = AsyncQueue<Int>()
        let q2 = AsyncQueue<Int>()
        func run(_ count: Int) throws -> Int {
            let a = try loop.createTask(eagerStart: false) {
                var sum = 0
                for i in 0..<count {
                    try q1.putNowait(i)
                    sum += try await q2.get()
                }
                return sum
            }
            let b = try loop.createTask(eagerStart: false) {
                for _ in 0..<count {
                    let x = try await q1.get()
                    try q2.putNowait(x)
                }
            }
            let sum = try loop.runUntilComplete(a)
            try loop.runUntilComplete(b)
            return sum
        }
        _ = try run(batch)
        var meter = Meter()
        meter.start()
        let sum = try run(Int(n))
        let result = meter.stop(n: n, loop: loop)
        let expected = Int(n) * (Int(n) - 1) / 2
        if sum != expected { throw WorkloadFailure(workload: "ping_pong", message: "sum \(sum), expected \(expected)") }
        return result
    }
}
