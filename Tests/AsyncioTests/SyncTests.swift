// Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier and
// AsyncQueue: thin wrappers of the C primitives.

@testable import Asyncio
import CAsyncio
import Testing

@Suite("Synchronization primitives")
struct SyncTests {
    @Test("Lock: mutual exclusion, FIFO hand-over, withLock, release of an unlocked lock")
    func lock() async throws {
        let log = Log()
        try await runLoop {
            let lock = Lock()
            #expect(!lock.isLocked)
            let tasks = try (0..<3).map { i in
                try createTask {
                    try await lock.withLock {
                        log.append("in \(i)")
                        try await sleep(1)
                        log.append("out \(i)")
                    }
                }
            }
            try await sleep(0.5)
            #expect(lock.isLocked)
            #expect(lock.description.contains("[locked, waiters:2]"))
            for t in tasks { try await t.value }
            #expect(!lock.isLocked)
            #expect(throws: AsyncioError(typeName: "RuntimeError", message: "Lock is not acquired.")) {
                try lock.release()
            }
        }
        #expect(log.value == ["in 0", "out 0", "in 1", "out 1", "in 2", "out 2"])
    }

    @Test("Lock: a cancelled waiter never gets the lock")
    func lockCancelledWaiter() async throws {
        try await runLoop {
            let lock = Lock()
            try await lock.acquire()
            let waiter = try createTask { try await lock.acquire() }
            try await sleep(0)
            waiter.cancel()
            await #expect(throws: CancelledError.self) { try await waiter.value }
            try lock.release()
            #expect(!lock.isLocked)
        }
    }

    @Test("Event: wait until set; wait returns at once while set; clear")
    func event() async throws {
        try await runLoop {
            let event = Event()
            let waiters = try (0..<3).map { _ in try createTask { try await event.wait() } }
            try await sleep(1)
            #expect(waiters.allSatisfy { !$0.isDone })
            try event.set()
            #expect(event.isSet)
            for w in waiters { try await w.value }
            try await event.wait()
            event.clear()
            #expect(!event.isSet)
            await #expect(throws: TimeoutError.self) { try await timeout(1) { try await event.wait() } }
        }
    }

    @Test("an Event waited for by a Swift task on another thread (its wait runs as a task on the loop)")
    func eventFromAnotherThread() async throws {
        try await runLoop(virtualClock: false) {
            let loop = EventLoop.current!
            let event = Event()
            // A waiter on the loop binds the event to it (asyncio's
            // _LoopBoundMixin); a waiter elsewhere has no loop of its own.
            let local = try createTask { try await event.wait() }
            try await sleep(0)
            let woke = loop.createFuture(of: Bool.self)
            Task.detached {
                let ok = (try? await event.wait()) != nil
                try? loop.callSoonThreadsafe { try? woke.setResult(ok) }
            }
            try await sleep(0.02)
            try event.set()
            #expect(try await woke.value)
            try await local.value
        }
    }

    @Test("waits from a Swift task on another thread make their coroutines on the loop's thread: the event's reference count stays exact")
    func eventWaitsFromAnotherThreadKeepCountsExact() async throws {
        try await runLoop(virtualClock: false) {
            let loop = EventLoop.current!
            let event = Event()
            // Bound to the loop by a wait that waits there (asyncio's
            // _LoopBoundMixin); a wait elsewhere has no loop of its own.
            let first = try createTask { try await event.wait() }
            try await sleep(0)
            try event.set()
            try await first.value
            let done = loop.createFuture(of: Int.self)
            Task.detached {
                var n = 0
                for _ in 0..<2000 where (try? await event.wait()) != nil { n += 1 }
                let waits = n
                try? loop.callSoonThreadsafe { try? done.setResult(waits) }
            }
            // Meanwhile waits on the loop make and drop coroutines of the same
            // event: a coroutine made on the other thread would race with
            // them on the event's (non-atomic) reference count.
            var local = 0
            while !done.isDone {
                try await event.wait()
                local += 1
                try await sleep(0)
            }
            #expect(try await done.value == 2000)
            #expect(local > 0)
            #expect(event.unsafeRaw.pointee.ob_base.ob_refcnt == 1, "only the wrapper's reference is left")
        }
    }

    @Test("Condition: wait releases the lock, notify wakes one, notifyAll the rest, waitFor a predicate")
    func condition() async throws {
        let log = Log()
        try await runLoop {
            let cond = Condition()
            let items = Shared(0)
            let consumers = try (0..<3).map { i in
                try createTask {
                    try await cond.withLock {
                        try await cond.wait()
                        log.append("woke \(i)")
                    }
                }
            }
            try await sleep(1)
            try await cond.withLock { try cond.notify(1) }
            try await sleep(1)
            try await cond.withLock { try cond.notifyAll() }
            for c in consumers { try await c.value }
            let waiter = try createTask {
                try await cond.withLock { try await cond.waitFor { items.value >= 2 } }
            }
            for _ in 0..<2 {
                try await sleep(1)
                try await cond.withLock {
                    items.value += 1
                    try cond.notifyAll()
                }
            }
            try await waiter.value
            #expect(throws: AsyncioError.self) { try cond.notify() }
            await #expect(throws: AsyncioError(typeName: "RuntimeError", message: "cannot wait on un-acquired lock")) {
                try await cond.wait()
            }
        }
        #expect(log.value == ["woke 0", "woke 1", "woke 2"])
    }

    @Test("Semaphore limits concurrency; BoundedSemaphore refuses an extra release")
    func semaphores() async throws {
        try await runLoop {
            let sem = try Semaphore(value: 2)
            let inside = Shared(0), peak = Shared(0)
            let tasks = try (0..<6).map { _ in
                try createTask {
                    try await sem.withPermit {
                        inside.value += 1
                        peak.value = max(peak.value, inside.value)
                        try await sleep(1)
                        inside.value -= 1
                    }
                }
            }
            for t in tasks { try await t.value }
            #expect(peak.value == 2)
            #expect(sem.value == 2 && !sem.isLocked)
            let bounded = try BoundedSemaphore(value: 1)
            try await bounded.acquire()
            #expect(bounded.isLocked)
            try bounded.release()
            #expect(throws: AsyncioError(typeName: "ValueError", message: "BoundedSemaphore released too many times")) {
                try bounded.release()
            }
            #expect(throws: AsyncioError.self) { try Semaphore(value: -1) }
        }
    }

    @Test("Barrier: parties go on together with distinct indices; abort breaks it")
    func barrier() async throws {
        try await runLoop {
            let barrier = try Barrier(parties: 3)
            #expect(barrier.parties == 3)
            let tasks = try (0..<3).map { _ in try createTask { try await barrier.wait() } }
            try await sleep(0)
            var indices: [Int] = []
            for t in tasks { indices.append(try await t.value) }
            #expect(indices.sorted() == [0, 1, 2])
            let stuck = try createTask { try await barrier.wait() }
            try await sleep(0)
            #expect(barrier.waiting == 1)
            try await barrier.abort()
            #expect(barrier.isBroken)
            await #expect(throws: BrokenBarrierError.self) { try await stuck.value }
            try await barrier.reset()
            #expect(!barrier.isBroken)
        }
    }
}

@Suite("AsyncQueue")
struct QueueTests {
    @Test("FIFO, LIFO and priority order (inline and boxed items)")
    func orders() async throws {
        try await runLoop {
            let fifo = AsyncQueue<Int>()
            let lifo = AsyncQueue<Int>(kind: .lifo)
            let prio = AsyncQueue<Int>.priority()
            let words = AsyncQueue<String>.priority()
            for x in [3, 1, 2] {
                try fifo.putNowait(x)
                try lifo.putNowait(x)
                try prio.putNowait(x)
            }
            for w in ["pear", "apple", "fig"] { try words.putNowait(w) }
            #expect(fifo.count == 3 && !fifo.isEmpty)
            var f: [Int] = [], l: [Int] = [], p: [Int] = [], w: [String] = []
            for _ in 0..<3 {
                f.append(try await fifo.get())
                l.append(try lifo.getNowait())
                p.append(try await prio.get())
                w.append(try await words.get())
            }
            #expect(f == [3, 1, 2])
            #expect(l == [2, 1, 3])
            #expect(p == [1, 2, 3])
            #expect(w == ["apple", "fig", "pear"])
        }
    }

    @Test("get waits for a put; put waits while full; nowait errors")
    func waiting() async throws {
        try await runLoop {
            let q = AsyncQueue<String>(maxsize: 1)
            #expect(throws: QueueEmpty.self) { try q.getNowait() }
            let getter = try createTask { try await q.get() }
            try await sleep(1)
            try await q.put("one")
            #expect(try await getter.value == "one")
            try q.putNowait("a")
            #expect(q.isFull && q.maxsize == 1)
            #expect(throws: QueueFull.self) { try q.putNowait("b") }
            let putter = try createTask { try await q.put("b") }
            try await sleep(1)
            #expect(!putter.isDone)
            #expect(try await q.get() == "a")
            try await putter.value
            #expect(try q.getNowait() == "b")
        }
    }

    @Test("join waits for taskDone of every item; shutdown wakes getters with QueueShutDown")
    func joinAndShutdown() async throws {
        try await runLoop {
            let q = AsyncQueue<Int>()
            for i in 0..<3 { try q.putNowait(i) }
            let worker = try createTask {
                for _ in 0..<3 {
                    _ = try await q.get()
                    try await sleep(1)
                    try q.taskDone()
                }
            }
            try await q.join()
            try await worker.value
            #expect(throws: AsyncioError.self) { try q.taskDone() }
            let getter = try createTask { try await q.get() }
            try await sleep(0)
            try q.shutdown()
            await #expect(throws: QueueShutDown.self) { try await getter.value }
            #expect(throws: QueueShutDown.self) { try q.putNowait(1) }
        }
    }

    @Test("gets awaited by a Swift task on another thread take boxed items on the loop's thread: the queue's and the items' reference counts stay exact")
    func getFromAnotherThreadKeepsCountsExact() async throws {
        try await runLoop(virtualClock: false) {
            let q = AsyncQueue<String>()
            let text = "an item long enough to live in a heap buffer of its own"
            // Bound to the loop by a get that waits there (asyncio's
            // _LoopBoundMixin); a get elsewhere has no loop of its own.
            let first = try createTask { try await q.get() }
            try await sleep(0)
            try q.putNowait(text)
            _ = try await first.value
            // Every item is the same box, whose count the loop churns while
            // the other thread's gets take the items out and release them.
            var item = ValueCodec<String>.encode(text)
            defer { ca_value_clear(&item) }
            let box = UnsafeMutableRawPointer(item.u.obj!)
            for _ in 0..<5000 { try ErrorBridge.check(ca_queue_put_nowait(q.unsafeRaw, ca_value_copy(&item))) }
            let got = try await sumAwaitedFromAnotherThread(5000, {
                (try? await q.get()) == text ? 1 : 0
            }, whileTheLoop: {
                churnReferences(to: box, 100)
                churnReferences(to: UnsafeMutableRawPointer(q.unsafeRaw), 20)
            })
            #expect(got == 5000)
            #expect(box.assumingMemoryBound(to: ca_object.self).pointee.ob_refcnt == 1, "only the test's reference is left")
            #expect(q.unsafeRaw.pointee.ob_base.ob_refcnt == 1, "only the wrapper's reference is left")
        }
    }

    @Test("ping-pong between two tasks through two queues")
    func pingPong() async throws {
        let sum = try await runLoop {
            let q1 = AsyncQueue<Int>(), q2 = AsyncQueue<Int>()
            let a = try createTask { () async throws -> Int in
                var sum = 0
                for i in 0..<1000 {
                    try q1.putNowait(i)
                    sum += try await q2.get()
                }
                return sum
            }
            let b = try createTask {
                for _ in 0..<1000 { try q2.putNowait(try await q1.get()) }
            }
            try await b.value
            return try await a.value
        }
        #expect(sum == 999 * 1000 / 2)
    }
}
