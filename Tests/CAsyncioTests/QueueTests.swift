// Queue, LifoQueue and PriorityQueue: order, maxsize, the _nowait errors,
// FIFO wake-ups that never lose an item to a cancelled getter, task_done /
// join, shutdown(immediate), item ownership, reprs and allocation-free
// steady state (notes §7 items 59–64; ported from CPython's
// Lib/test/test_asyncio/test_queues.py). Scripts and helpers: SyncTests.swift.

import CAsyncio
import CAsyncioTestSupport
import Testing

@Suite("Queues")
struct QueueTests {

    /// Puts the ints with put_nowait.
    private func fill(_ q: QueuePtr, _ items: [Int64], sourceLocation: SourceLocation = #_sourceLocation) {
        for i in items { expectOK(ca_queue_put_nowait(q, ca_int(i)), "put_nowait(\(i))", sourceLocation: sourceLocation) }
    }

    /// Empties the queue with get_nowait, returning the ints in order.
    private func drain(_ q: QueuePtr) -> [Int64] {
        var out: [Int64] = []
        while !ca_queue_empty(q) {
            var v = ca_none()
            if let info = take(ca_queue_get_nowait(q, &v)) {
                Issue.record("get_nowait: \(info)")
                break
            }
            out.append(v.kind == CA_VALUE_INT ? v.u.i : -999)
            ca_value_clear(&v)
        }
        return out
    }

    private func queueStr(_ q: QueuePtr) -> String { syncRepr { ca_queue_str(q, $0, $1) } }

    // MARK: - Order (item 59)

    @Test("Queue hands items out first in, first out")
    func queueIsFifo() throws {
        let q = ca_queue_new(0)!
        defer { decref(q) }
        fill(q, [1, 3, 2])
        #expect(drain(q) == [1, 3, 2])
    }

    @Test("LifoQueue hands out the most recently put item first")
    func lifoQueueIsLifo() throws {
        let q = ca_lifo_queue_new(0)!
        defer { decref(q) }
        fill(q, [1, 3, 2])
        #expect(drain(q) == [2, 3, 1])
    }

    @Test("PriorityQueue hands out the smallest item first")
    func priorityQueueSmallestFirst() throws {
        let q = ca_priority_queue_new(0, nil, nil)!
        defer { decref(q) }
        fill(q, [5, 1, 3, 9, 2, 8, 0, 7])
        #expect(drain(q) == [0, 1, 2, 3, 5, 7, 8, 9])
    }

    @Test("PriorityQueue orders INT and DOUBLE items by value together")
    func priorityQueueMixesIntAndDouble() throws {
        let q = ca_priority_queue_new(0, nil, nil)!
        defer { decref(q) }
        expectOK(ca_queue_put_nowait(q, ca_double(2.5)))
        expectOK(ca_queue_put_nowait(q, ca_int(3)))
        expectOK(ca_queue_put_nowait(q, ca_int(2)))
        expectOK(ca_queue_put_nowait(q, ca_double(-0.5)))
        var kinds: [String] = []
        while !ca_queue_empty(q) {
            var v = ca_none()
            expectOK(ca_queue_get_nowait(q, &v))
            kinds.append(v.kind == CA_VALUE_INT ? "i\(v.u.i)" : "d\(v.u.d)")
        }
        #expect(kinds == ["d-0.5", "i2", "d2.5", "i3"])
    }

    @Test("PriorityQueue keeps insertion order among equal items, like heapq over (priority, count)")
    func priorityQueueIsStableForEqualKeys() throws {
        // Priority = value mod 10, so 11, 21, 31 are equal keys.
        let q = ca_priority_queue_new(0, ts_sync_compare_mod10, nil)!
        defer { decref(q) }
        fill(q, [31, 2, 11, 40, 21, 12])
        #expect(drain(q) == [40, 31, 11, 21, 2, 12])
    }

    @Test("PriorityQueue uses the comparator it was given")
    func priorityQueueCustomComparator() throws {
        let q = ca_priority_queue_new(0, ts_sync_compare_mod10, nil)!
        defer { decref(q) }
        fill(q, [19, 20, 11, 5, 31])
        #expect(drain(q) == [20, 11, 31, 5, 19])
    }

    @Test("PriorityQueue with the default order refuses a non-numeric item with TypeError")
    func priorityQueueDefaultRefusesNonNumeric() throws {
        let q = ca_priority_queue_new(0, nil, nil)!
        defer { decref(q) }
        let released = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        defer { released.deallocate() }
        released.pointee = 0
        let err = take(ca_queue_put_nowait(q, ca_ptr(released, ts_sync_count_release)))
        #expect(err?.type == "TypeError")
        #expect(released.pointee == 1, "the refused item is released")
        #expect(ca_queue_qsize(q) == 0)
        #expect(q.pointee.unfinished_tasks == 0)
    }

    // MARK: - Capacity and the _nowait errors (item 60)

    @Test("put_nowait on a full queue raises QueueFull")
    func putNowaitFullRaisesQueueFull() throws {
        let q = ca_queue_new(1)!
        defer { decref(q) }
        #expect(!ca_queue_full(q))
        fill(q, [1])
        #expect(ca_queue_full(q))
        let err = take(ca_queue_put_nowait(q, ca_int(2)))
        #expect(err?.type == "QueueFull")
        #expect(err?.message == nil)
        #expect(ca_queue_qsize(q) == 1)
        #expect(q.pointee.unfinished_tasks == 1)
    }

    @Test("get_nowait on an empty queue raises QueueEmpty")
    func getNowaitEmptyRaisesQueueEmpty() throws {
        let q = ca_queue_new(0)!
        defer { decref(q) }
        var v = ca_int(7)
        let err = take(ca_queue_get_nowait(q, &v))
        #expect(err?.type == "QueueEmpty")
        #expect(v.kind == CA_VALUE_NONE)
    }

    @Test("a queue with maxsize <= 0 is never full")
    func nonPositiveMaxsizeIsNeverFull() throws {
        for maxsize: Int64 in [0, -1] {
            let q = ca_queue_new(maxsize)!
            defer { decref(q) }
            #expect(ca_queue_maxsize(q) == maxsize)
            fill(q, Array(0..<100))
            #expect(!ca_queue_full(q))
            #expect(ca_queue_qsize(q) == 100)
        }
    }

    @Test("get on a non-empty queue and put on a non-full queue do not suspend")
    func getAndPutFastPathsDoNotSuspend() throws {
        let q = ca_queue_new(2)!
        defer { decref(q) }
        #expect(runWithoutSuspending(ca_queue_put(q, ca_int(4))) == .none)
        #expect(ca_queue_qsize(q) == 1)
        #expect(runWithoutSuspending(ca_queue_get(q)) == .int(4))
        expectOK(ca_queue_task_done(q))
        #expect(runWithoutSuspending(ca_queue_join(q)) == .none)
    }

    // MARK: - Blocked callers (item 61)

    @Test("blocked getters are served in FIFO order")
    func blockedGettersWakeInFifoOrder() throws {
        try withLoop { t in
            let q = ca_queue_new(0)!
            defer { decref(q) }
            let log = SyncLog(t)
            let getters = try (1...3).map { i in try t.spawnScript(log, [sop(TS_SYNC_GET, rawPtr(q), tag: Int64(i))]) }
            defer { getters.forEach { decref($0) } }
            t.runOnce()
            #expect(q.pointee.getters.len == 3)
            #expect(queueStr(q) == "<Queue maxsize=0 _getters[3]>")
            fill(q, [10, 20, 30])
            t.runOnce()
            #expect(log.tags == [1, 2, 3])
            #expect(log.values == [10, 20, 30])
        }
    }

    @Test("a get() abandoned while waiting (its coroutine closed) never swallows the next item")
    func abandonedGetterDoesNotSwallowItem() throws {
        try withLoop { t in
            let q = ca_queue_new(0)!
            defer { decref(q) }
            let log = SyncLog(t)
            let first = try t.spawnScript(log, [sop(TS_SYNC_GET, rawPtr(q), tag: 1)])
            let second = try t.spawnScript(log, [sop(TS_SYNC_GET, rawPtr(q), tag: 2)])
            defer { decref(first); decref(second) }
            t.runOnce()
            #expect(q.pointee.getters.len == 2)
            // What a garbage-collected pending task does in CPython: its
            // coroutine is closed and get()'s bare except unqueues the getter.
            ca_coro_close(ca_task_get_coro(first))
            #expect(q.pointee.getters.len == 1)
            fill(q, [10])
            t.runOnce()
            #expect(log.tags == [2])
            #expect(log.values == [10])
        }
    }

    @Test("put blocks while the queue is full; blocked putters are served in FIFO order")
    func putBlocksWhenFullAndPuttersWakeInOrder() throws {
        try withLoop { t in
            let q = ca_queue_new(2)!
            defer { decref(q) }
            let log = SyncLog(t)
            let putter = try t.spawnScript(log, (0..<3).map { i in sop(TS_SYNC_PUT, rawPtr(q), arg: i, tag: i) })
            let other = try t.spawnScript(log, [sop(TS_SYNC_PUT, rawPtr(q), arg: 9, tag: 9)])
            defer { decref(putter); decref(other) }
            t.run(iterations: 2)
            #expect(log.tags == [0, 1])
            #expect(q.pointee.putters.len == 2)
            var v = ca_none()
            expectOK(ca_queue_get_nowait(q, &v))
            #expect(v.u.i == 0)
            t.runOnce()
            #expect(log.tags == [0, 1, 2])
            #expect(drain(q) == [1, 2])
            t.run(iterations: 2)
            #expect(log.tags == [0, 1, 2, 9])
            #expect(drain(q) == [9])
        }
    }

    @Test("a getter cancelled after an item was handed to it never swallows the item")
    func cancelledGetterDoesNotLoseItem() throws {
        try withLoop { t in
            let q = ca_queue_new(0)!
            defer { decref(q) }
            let reader = try t.task(ca_queue_get(q))
            defer { decref(reader) }
            t.runOnce()
            fill(q, [1, 2])
            _ = ca_task_cancel(reader, nil)
            #expect(t.runUntilComplete(reader)?.type == "CancelledError")
            #expect(drain(q) == [1, 2], "nothing was taken by the cancelled getter")
        }
    }

    @Test("a woken getter that is cancelled passes the item on to the next getter")
    func cancelledGetterPassesWakeUpOn() throws {
        try withLoop { t in
            let q = ca_queue_new(0)!
            defer { decref(q) }
            let r1 = try t.task(ca_queue_get(q))
            let r2 = try t.task(ca_queue_get(q))
            let r3 = try t.task(ca_queue_get(q))
            defer { decref(r1); decref(r2); decref(r3) }
            t.runOnce()
            fill(q, [1, 2])
            _ = ca_task_cancel(r1, nil)
            t.run(iterations: 3)
            #expect(ca_future_cancelled(fut(r1)))
            #expect(Set([outcome(r2).description, outcome(r3).description]) == ["int(1)", "int(2)"])
        }
    }

    @Test("a getter cancelled while waiting leaves no getter behind and the next one gets the item")
    func getCancelledRace() throws {
        try withLoop { t in
            let q = ca_queue_new(0)!
            defer { decref(q) }
            let t1 = try t.task(ca_queue_get(q))
            let t2 = try t.task(ca_queue_get(q))
            defer { decref(t1); decref(t2) }
            t.runOnce()
            _ = ca_task_cancel(t1, nil)
            t.runOnce()
            #expect(ca_future_done(fut(t1)))
            #expect(q.pointee.getters.len == 1)
            fill(q, [7])
            t.runOnce()
            #expect(outcome(t2) == .int(7))
        }
    }

    @Test("a putter cancelled after a slot freed up does not insert its item")
    func cancelledPutterDoesNotInsert() throws {
        try withLoop { t in
            let q = ca_queue_new(1)!
            defer { decref(q) }
            fill(q, [1])
            let writer = try t.task(ca_queue_put(q, ca_int(2)))
            defer { decref(writer) }
            t.runOnce()
            #expect(q.pointee.putters.len == 1)
            #expect(drain(q) == [1])
            #expect(q.pointee.putters.len == 0, "get_nowait popped the putter")
            _ = ca_task_cancel(writer, nil)
            #expect(t.runUntilComplete(writer)?.type == "CancelledError")
            #expect(ca_queue_qsize(q) == 0)
            let again = try t.task(ca_queue_put(q, ca_int(2)))
            defer { decref(again) }
            #expect(t.runUntilComplete(again) == nil)
            #expect(drain(q) == [2])
        }
    }

    @Test("a putter cancelled while waiting is removed from the putters")
    func cancelledPutterLeavesNoPutter() throws {
        try withLoop { t in
            let q = ca_queue_new(1)!
            defer { decref(q) }
            fill(q, [1])
            let put = try t.task(ca_queue_put(q, ca_int(1)))
            defer { decref(put) }
            t.runOnce()
            #expect(q.pointee.putters.len == 1)
            _ = ca_task_cancel(put, nil)
            #expect(t.runUntilComplete(put)?.type == "CancelledError")
            #expect(q.pointee.putters.len == 0)
        }
    }

    // MARK: - task_done / join (item 62)

    @Test("task_done() called more often than items were put raises ValueError")
    func taskDoneTooManyTimesRaises() throws {
        let q = ca_queue_new(0)!
        defer { decref(q) }
        let err = take(ca_queue_task_done(q))
        #expect(err?.type == "ValueError")
        #expect(err?.message == "task_done() called too many times")
        fill(q, [1])
        expectOK(ca_queue_task_done(q))
        #expect(take(ca_queue_task_done(q))?.type == "ValueError")
    }

    @Test("join() returns once every item put has been marked done")
    func joinWaitsForTaskDone() throws {
        try withLoop { t in
            let q = ca_queue_new(0)!
            defer { decref(q) }
            fill(q, Array(0..<100))
            let log = SyncLog(t)
            let body = [sop(TS_SYNC_GET, rawPtr(q), flags: TS_SYNC_QUIET),
                        sop(TS_SYNC_TASK_DONE, rawPtr(q), flags: TS_SYNC_QUIET)]
            let workers = try (0..<2).map { _ in try t.spawnScript(log, [sop(TS_SYNC_REPEAT, arg: 50, tag: 2)] + body) }
            let joiner = try t.spawnScript(log, [sop(TS_SYNC_JOIN, rawPtr(q), tag: 1)])
            defer { workers.forEach { decref($0) }; decref(joiner) }
            t.runOnce()
            #expect(ca_future_done(fut(joiner)))
            #expect(q.pointee.unfinished_tasks == 0)
            #expect(workers.allSatisfy { ca_future_done(fut($0)) })

            fill(q, [1])
            let j2 = try t.task(ca_queue_join(q))
            defer { decref(j2) }
            t.run(iterations: 2)
            #expect(!ca_future_done(fut(j2)))
            #expect(drain(q) == [1])
            #expect(!ca_future_done(fut(j2)), "taking the item is not finishing it")
            expectOK(ca_queue_task_done(q))
            t.runOnce()
            #expect(outcome(j2) == .none)
        }
    }

    // MARK: - shutdown (items 63, 64)

    @Test("after shutdown() puts raise QueueShutDown and gets drain the queue, then raise")
    func shutdownGracefulLetsGettersDrain() throws {
        let q = ca_queue_new(0)!
        defer { decref(q) }
        fill(q, [1, 2])
        expectOK(ca_queue_shutdown(q, false))
        #expect(take(ca_queue_put_nowait(q, ca_int(3)))?.type == "QueueShutDown")
        #expect(runWithoutSuspending(ca_queue_put(q, ca_int(3))) == .error("QueueShutDown", nil))
        #expect(runWithoutSuspending(ca_queue_get(q)) == .int(1))
        #expect(drain(q) == [2])
        var v = ca_none()
        #expect(take(ca_queue_get_nowait(q, &v))?.type == "QueueShutDown")
        #expect(runWithoutSuspending(ca_queue_get(q)) == .error("QueueShutDown", nil))
        #expect(q.pointee.unfinished_tasks == 2, "a graceful shutdown leaves the count alone")
        #expect(queueStr(q) == "<Queue maxsize=0 tasks=2 shutdown>")
    }

    @Test("shutdown() wakes blocked getters, which raise QueueShutDown")
    func shutdownWakesBlockedGetters() throws {
        try withLoop { t in
            let q = ca_queue_new(0)!
            defer { decref(q) }
            let getters = try (0..<2).map { _ in try t.task(ca_queue_get(q)) }
            defer { getters.forEach { decref($0) } }
            t.runOnce()
            expectOK(ca_queue_shutdown(q, false))
            #expect(q.pointee.getters.len == 0)
            t.runOnce()
            for g in getters { #expect(outcome(g) == .error("QueueShutDown", nil)) }
        }
    }

    @Test("shutdown() wakes blocked putters, which raise QueueShutDown without inserting")
    func shutdownWakesBlockedPutters() throws {
        try withLoop { t in
            let q = ca_queue_new(1)!
            defer { decref(q) }
            fill(q, [1])
            let putter = try t.task(ca_queue_put(q, ca_int(2)))
            defer { decref(putter) }
            t.runOnce()
            expectOK(ca_queue_shutdown(q, false))
            t.runOnce()
            #expect(outcome(putter) == .error("QueueShutDown", nil))
            #expect(drain(q) == [1])
        }
    }

    @Test("shutdown(immediate=True) empties the queue, releases join() and makes gets raise at once")
    func shutdownImmediateDrainsAndWakesEveryone() throws {
        try withLoop { t in
            let q = ca_queue_new(2)!
            defer { decref(q) }
            fill(q, [1, 2])
            let log = SyncLog(t)
            let putter = try t.spawnScript(log, [sop(TS_SYNC_PUT, rawPtr(q), arg: 3, tag: 1)])
            let joiner = try t.spawnScript(log, [sop(TS_SYNC_JOIN, rawPtr(q), tag: 2)])
            defer { decref(putter); decref(joiner) }
            t.runOnce()
            expectOK(ca_queue_shutdown(q, true))
            #expect(ca_queue_qsize(q) == 0)
            #expect(q.pointee.unfinished_tasks == 0)
            var v = ca_none()
            #expect(take(ca_queue_get_nowait(q, &v))?.type == "QueueShutDown")
            #expect(take(ca_queue_put_nowait(q, ca_int(4)))?.type == "QueueShutDown")
            #expect(take(ca_queue_task_done(q))?.type == "ValueError")
            t.runOnce()
            // As in the conformance trace: join returns before the putter raises.
            #expect(log.tags == [2, 1])
            #expect(outcome(joiner) == .none)
            #expect(outcome(putter) == .error("QueueShutDown", nil))
        }
    }

    @Test("shutdown(immediate=True) lowers the unfinished count only by the items it removed")
    func shutdownImmediateKeepsCountOfTakenItems() throws {
        try withLoop { t in
            let q = ca_queue_new(0)!
            defer { decref(q) }
            fill(q, [1, 2, 3])
            var v = ca_none()
            expectOK(ca_queue_get_nowait(q, &v))
            let joiner = try t.task(ca_queue_join(q))
            defer { decref(joiner) }
            t.runOnce()
            expectOK(ca_queue_shutdown(q, true))
            #expect(q.pointee.unfinished_tasks == 1, "the item taken before is still unfinished")
            t.runOnce()
            #expect(!ca_future_done(fut(joiner)))
            expectOK(ca_queue_task_done(q))
            t.runOnce()
            #expect(outcome(joiner) == .none)
        }
    }

    // MARK: - Ownership, repr

    @Test("the queue owns its items: shutdown(immediate) and deallocation release them")
    func queueReleasesItsItems() throws {
        let released = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        defer { released.deallocate() }
        released.pointee = 0
        let q = ca_queue_new(0)!
        for _ in 0..<3 { expectOK(ca_queue_put_nowait(q, ca_ptr(released, ts_sync_count_release))) }
        var v = ca_none()
        expectOK(ca_queue_get_nowait(q, &v))
        #expect(released.pointee == 0, "get hands the item over, it does not release it")
        ca_value_clear(&v)
        #expect(released.pointee == 1)
        expectOK(ca_queue_shutdown(q, true))
        #expect(released.pointee == 3, "the two items left were released")
        expectOK(ca_queue_shutdown(q, false))
        let q2 = ca_lifo_queue_new(0)!
        expectOK(ca_queue_put_nowait(q2, ca_ptr(released, ts_sync_count_release)))
        decref(q2)
        #expect(released.pointee == 4)
        decref(q)
    }

    @Test("queue repr and str list maxsize, items, waiters, unfinished tasks")
    func queueReprAndStr() throws {
        let q = ca_queue_new(0)!
        defer { decref(q) }
        #expect(queueStr(q) == "<Queue maxsize=0>")
        let r = syncRepr { ca_queue_repr(q, $0, $1) }
        #expect(r.hasPrefix("<Queue at 0x") && r.hasSuffix(" maxsize=0>"))
        fill(q, [1, 2])
        #expect(queueStr(q) == "<Queue maxsize=0 _queue=[1, 2] tasks=2>")
        let lq = ca_lifo_queue_new(5)!
        let pq = ca_priority_queue_new(0, nil, nil)!
        defer { decref(lq); decref(pq) }
        #expect(queueStr(lq) == "<LifoQueue maxsize=5>")
        #expect(queueStr(pq) == "<PriorityQueue maxsize=0>")
    }

    // MARK: - Allocations

    @Test("put/get that do not wait allocate nothing in steady state")
    func putGetAllocateNothing() throws {
        try withLoop { t in
            let q = ca_queue_new(0)!
            defer { decref(q) }
            let log = SyncLog(t)
            let body = [sop(TS_SYNC_PUT, rawPtr(q), arg: 5, flags: TS_SYNC_QUIET),
                        sop(TS_SYNC_PUT_NOWAIT, rawPtr(q), arg: 6, flags: TS_SYNC_QUIET),
                        sop(TS_SYNC_GET, rawPtr(q), flags: TS_SYNC_QUIET),
                        sop(TS_SYNC_GET_NOWAIT, rawPtr(q), flags: TS_SYNC_QUIET),
                        sop(TS_SYNC_TASK_DONE, rawPtr(q), flags: TS_SYNC_QUIET),
                        sop(TS_SYNC_TASK_DONE, rawPtr(q), flags: TS_SYNC_QUIET)]
            let task = try t.spawnScript(log, syncMeasured(body, warm: 1_000, n: 10_000))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            #expect(log.allocationDelta == 0)
        }
    }

    @Test("a producer and a consumer on a bounded queue allocate nothing in steady state")
    func boundedProducerConsumerAllocatesNothing() throws {
        try withLoop { t in
            let q = ca_queue_new(1)!
            defer { decref(q) }
            let log = SyncLog(t)
            let produce = [sop(TS_SYNC_PUT, rawPtr(q), arg: 1, flags: TS_SYNC_QUIET)]
            let consume = [sop(TS_SYNC_GET, rawPtr(q), flags: TS_SYNC_QUIET)]
            let producer = try t.spawnScript(log, syncMeasured(produce, warm: 1_000, n: 10_000))
            let consumer = try t.spawnScript(log, [sop(TS_SYNC_REPEAT, arg: 11_000, tag: 1)] + consume)
            defer { decref(producer); decref(consumer) }
            #expect(t.runUntilComplete(consumer) == nil)
            #expect(t.runUntilComplete(producer) == nil)
            #expect(q.pointee.putters.cap > 0 && q.pointee.getters.cap > 0, "both sides waited")
            #expect(log.allocationDelta == 0)
        }
    }

    @Test("ping_pong (two tasks, two unbounded queues) allocates nothing per round trip")
    func pingPongAllocatesNothing() throws {
        try withLoop { t in
            let q1 = ca_queue_new(0)!
            let q2 = ca_queue_new(0)!
            defer { decref(q1); decref(q2) }
            let log = SyncLog(t)
            // A: q1.put_nowait(i); await q2.get()
            let a = [sop(TS_SYNC_PUT_NOWAIT, rawPtr(q1), arg: 1, flags: TS_SYNC_QUIET),
                     sop(TS_SYNC_GET, rawPtr(q2), flags: TS_SYNC_QUIET)]
            // B: x = await q1.get(); q2.put_nowait(x)
            let b = [sop(TS_SYNC_GET, rawPtr(q1), flags: TS_SYNC_QUIET),
                     sop(TS_SYNC_PUT_NOWAIT, rawPtr(q2), flags: TS_SYNC_QUIET | TS_SYNC_LAST)]
            let ta = try t.spawnScript(log, syncMeasured(a, warm: 1_000, n: 10_000))
            let tb = try t.spawnScript(log, [sop(TS_SYNC_REPEAT, arg: 11_000, tag: 2)] + b)
            defer { decref(ta); decref(tb) }
            #expect(t.runUntilComplete(ta) == nil)
            #expect(t.runUntilComplete(tb) == nil)
            #expect(q1.pointee.unfinished_tasks == 11_000)
            #expect(log.allocationDelta == 0)
        }
    }
}
