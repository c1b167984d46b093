// The workloads in plain Swift Concurrency: tasks on the default global
// executor (one thread per core), no NIO. Each run is timed inside a task;
// the main thread only waits for the figure. call_soon, future_callback and
// task_spawn_eager have no fair analogue here (no run loop to hand a bare
// callback to, no future with callbacks, no eager start in Swift 6.3's public
// API), so they are not offered.

import Dispatch
import Synchronization

enum ConcurrencyWorkloads {
    static let variants: [Variant] = [
        Variant(workload: "task_spawn", variant: nil,
                api: "Task {} + await value", defaultN: 200_000, run: taskSpawn),
        Variant(workload: "task_spawn", variant: "taskgroup",
                api: "withTaskGroup + addTask + for await", defaultN: 200_000, run: taskSpawnGroup),
        Variant(workload: "sleep0", variant: nil,
                api: "Task.yield()", defaultN: 1_000_000, run: sleep0),
        Variant(workload: "ping_pong", variant: nil,
                api: "Mutex-guarded queues handing off through UnsafeContinuation", defaultN: 200_000,
                run: { n throws(WorkloadError) in try pingPong(n, ContinuationQueue<UnsafeResumer>.init) }),
        Variant(workload: "ping_pong", variant: "checked_continuation",
                api: "Mutex-guarded queues handing off through CheckedContinuation", defaultN: 200_000,
                run: { n throws(WorkloadError) in try pingPong(n, ContinuationQueue<CheckedResumer>.init) }),
        Variant(workload: "ping_pong", variant: "asyncstream",
                api: "two AsyncStream<Int> (yield + iterator next)", defaultN: 200_000,
                run: { n throws(WorkloadError) in try pingPong(n, StreamQueue.init) }),
    ]

    /// Runs `body` in a task and blocks this (non-pool) thread until it
    /// returns its figure.
    static func inTask(
        _ body: @escaping @Sendable () async -> Result<UInt64, WorkloadError>
    ) throws(WorkloadError) -> UInt64 {
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            box.result = await body()
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }

    /// Written by the task before it signals the semaphore and read by the
    /// waiting thread after wait() returns: the semaphore orders the two.
    private final class ResultBox: @unchecked Sendable {
        var result: Result<UInt64, WorkloadError>?
    }

    private static func expectedSpawnSum(_ n: Int) -> Int {
        batchSizes(n).reduce(0) { $0 + $1 * ($1 - 1) / 2 }
    }

    // MARK: - task_spawn

    /// Batches of 1000 `Task { i }`, then each one's value awaited.
    static func taskSpawn(_ n: Int) throws(WorkloadError) -> UInt64 {
        try inTask {
            var tasks: [Task<Int, Never>] = []
            tasks.reserveCapacity(1000)
            var sum = 0
            let t0 = nowNs()
            for size in batchSizes(n) {
                for i in 0..<size {
                    tasks.append(Task { i })
                }
                for t in tasks {
                    sum += await t.value
                }
                tasks.removeAll(keepingCapacity: true)
            }
            let elapsed = nowNs() - t0
            let expected = expectedSpawnSum(n)
            return sum == expected ? .success(elapsed)
                : .failure(WorkloadError("sum of results \(sum), expected \(expected)"))
        }
    }

    /// Batches of 1000 child tasks in a task group, every result collected.
    static func taskSpawnGroup(_ n: Int) throws(WorkloadError) -> UInt64 {
        try inTask {
            var sum = 0
            let t0 = nowNs()
            for size in batchSizes(n) {
                sum += await withTaskGroup(of: Int.self) { group in
                    for i in 0..<size {
                        group.addTask { i }
                    }
                    var s = 0
                    for await x in group { s += x }
                    return s
                }
            }
            let elapsed = nowNs() - t0
            let expected = expectedSpawnSum(n)
            return sum == expected ? .success(elapsed)
                : .failure(WorkloadError("sum of results \(sum), expected \(expected)"))
        }
    }

    // MARK: - sleep0

    static func sleep0(_ n: Int) throws(WorkloadError) -> UInt64 {
        try inTask {
            var i = 0
            let t0 = nowNs()
            while i < n {
                await Task.yield()
                i += 1
            }
            return .success(nowNs() - t0)
        }
    }

    // MARK: - ping_pong

    /// ping_pong's two tasks, A and B, over the queues `q1` and `q2`;
    /// returns A's sum of what came back.
    private static func pingPongRun<Q: PingPongQueue>(_ q1: Q, _ q2: Q, _ n: Int) async -> Int {
        let b = Task {
            for _ in 0..<n {
                let x = await q1.get()
                q2.put(x)
            }
        }
        let a = Task {
            var sum = 0
            for i in 0..<n {
                q1.put(i)
                sum += await q2.get()
            }
            return sum
        }
        let sum = await a.value
        await b.value
        return sum
    }

    /// ping_pong over two queues `makeQueue` makes (inside the timing).
    static func pingPong<Q: PingPongQueue>(
        _ n: Int, _ makeQueue: @escaping @Sendable () -> Q
    ) throws(WorkloadError) -> UInt64 {
        try inTask {
            let t0 = nowNs()
            let sum = await pingPongRun(makeQueue(), makeQueue(), n)
            let elapsed = nowNs() - t0
            let expected = n * (n - 1) / 2
            return sum == expected ? .success(elapsed)
                : .failure(WorkloadError("sum of the round trips \(sum), expected \(expected)"))
        }
    }
}

/// What ping_pong needs of a queue: asyncio.Queue's put_nowait and get.
protocol PingPongQueue: Sendable {
    func put(_ x: Int)
    func get() async -> Int
}

/// A continuation of either kind, so one queue serves both variants.
protocol Resumer: Sendable {
    func resume(returning x: Int)
    static func suspend(_ body: (Self) -> Void) async -> Int
}

struct UnsafeResumer: Resumer {
    let c: UnsafeContinuation<Int, Never>
    func resume(returning x: Int) { c.resume(returning: x) }
    static func suspend(_ body: (UnsafeResumer) -> Void) async -> Int {
        await withUnsafeContinuation { body(UnsafeResumer(c: $0)) }
    }
}

struct CheckedResumer: Resumer {
    let c: CheckedContinuation<Int, Never>
    func resume(returning x: Int) { c.resume(returning: x) }
    static func suspend(_ body: (CheckedResumer) -> Void) async -> Int {
        await withCheckedContinuation { body(CheckedResumer(c: $0)) }
    }
}

/// An unbounded FIFO with at most one waiting getter (ping_pong has one
/// consumer per queue), guarded by a Mutex. put() resumes the waiter outside
/// the lock.
final class ContinuationQueue<R: Resumer>: PingPongQueue {
    private struct State: ~Copyable {
        var items: [Int] = []
        var head = 0
        var waiter: R?

        mutating func popFirst() -> Int? {
            guard head < items.count else { return nil }
            let x = items[head]
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            }
            return x
        }
    }

    private let state = Mutex(State())

    func put(_ x: Int) {
        let waiter: R? = state.withLock { s in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.items.append(x)
            return nil
        }
        waiter?.resume(returning: x)
    }

    func get() async -> Int {
        if let x = state.withLock({ $0.popFirst() }) { return x }
        return await R.suspend { r in
            let ready: Int? = state.withLock { s in
                if let x = s.popFirst() { return x }
                precondition(s.waiter == nil, "ping_pong's queues have one getter each")
                s.waiter = r
                return nil
            }
            if let ready { r.resume(returning: ready) }
        }
    }
}

/// An AsyncStream and its continuation as a queue; one consumer iterates it.
final class StreamQueue: PingPongQueue {
    private let stream: AsyncStream<Int>
    private let continuation: AsyncStream<Int>.Continuation
    /// Only B iterates q1 and only A iterates q2, each from one task at a
    /// time, which is the one-consumer use AsyncStream's iterator allows.
    private nonisolated(unsafe) var iterator: AsyncStream<Int>.Iterator

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        iterator = stream.makeAsyncIterator()
    }

    func put(_ x: Int) { continuation.yield(x) }

    func get() async -> Int {
        await iterator.next()!
    }
}
