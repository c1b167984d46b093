// gather, wait, waitFor, shield, sleep, timeout scopes, asCompleted and the
// task group, typed.

@testable import Asyncio
import CAsyncio
import CBenchMalloc
import Testing

/// The mallocs of this thread per call of `op`, over `n` calls that follow
/// `n` unmeasured ones (which fill the freelists, the loop's queues and the
/// task allocator's slabs).
nonisolated(nonsending) private func mallocsPerCall(_ n: Int, _ op: nonisolated(nonsending) () async throws -> Void)
    async throws -> Double {
    for _ in 0..<n { try await op() }
    let before = cab_malloc_count()
    for _ in 0..<n { try await op() }
    return Double(cab_malloc_count() - before) / Double(n)
}

/// A task that sleeps `delay` seconds (virtual clock) and returns `value`.
private func after<T: Sendable>(_ delay: Double, _ value: T) throws -> LoopTask<T> {
    try createTask {
        try await sleep(delay)
        return value
    }
}

/// A task that sleeps `delay` seconds and throws `error`.
private func failing(_ delay: Double, _ error: any Error) throws -> LoopTask<Int> {
    try createTask {
        try await sleep(delay)
        throw error
    }
}

@Suite("Combinators")
struct CombinatorTests {
    @Test("gather over a parameter pack: typed tuple in argument order")
    func gatherPack() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Double.self)
            try loop.callLater(2) { try? f.setResult(0.5) }
            let (a, b, c) = try await gather(after(3, 1), after(1, "two"), f)
            #expect(a == 1 && b == "two" && c == 0.5)
        }
    }

    @Test("gather over an array; the first error is thrown, the others keep running")
    func gatherArray() async throws {
        try await runLoop {
            let tasks = try (0..<10).map { try after(Double(10 - $0), $0 * $0) }
            #expect(try await gather(tasks) == (0..<10).map { $0 * $0 })
            let slow = try after(5, 0)
            await #expect(throws: Oops(code: 1)) {
                _ = try await gather([try failing(1, Oops(code: 1)), slow])
            }
            #expect(!slow.isDone)
            #expect(try await slow.value == 0)
            #expect(try await gather([Future<Int>]()) == [])
        }
    }

    @Test("gatherReturningExceptions collects errors and cancellations in place")
    func gatherReturningErrors() async throws {
        try await runLoop {
            let cancelled = try after(10, 3)
            let results = try await gather(returning: [try after(1, 1), try failing(2, Oops(code: 2)), cancelled],
                                           cancelling: cancelled)
            #expect(try results[0].get() == 1)
            #expect(throws: Oops(code: 2)) { try results[1].get() }
            #expect(throws: CancelledError.self) { try results[2].get() }
        }
    }

    @Test("cancelling the task awaiting a gather cancels the children")
    func gatherCancel() async throws {
        try await runLoop {
            let children = try (0..<3).map { try after(100, $0) }
            let waiter = try createTask { try await gather(children) }
            try await sleep(1)
            waiter.cancel()
            await #expect(throws: CancelledError.self) { try await waiter.value }
            let allCancelled = children.allSatisfy { $0.isCancelled }
            #expect(allCancelled)
        }
    }

    @Test("gathers awaited by a Swift task on another thread are made on the loop's thread: the children's reference counts stay exact")
    func gatherFromAnotherThreadKeepsCountsExact() async throws {
        try await runLoop(virtualClock: false) {
            let loop = EventLoop.current!
            let children = (0..<16).map { _ in loop.createFuture(of: Int.self) }
            for (i, f) in children.enumerated() { try f.setResult(i) }
            let expected = Array(0..<16)
            // Meanwhile gathers on the loop take and drop references to the
            // same children: a gather made on the other thread would race
            // with them on the children's (non-atomic) reference counts.
            let gathered = try await sumAwaitedFromAnotherThread(2000, {
                (try? await gather(children)) == expected ? 1 : 0
            }, whileTheLoop: { for _ in 0..<50 { _ = try gatherFuture(children) } })
            #expect(gathered == 2000)
            for f in children {
                #expect(f.unsafeRaw.pointee.ob_base.ob_refcnt == 1, "only the wrapper's reference is left")
            }
        }
    }

    @Test("waitFor awaited by a Swift task on another thread reads a boxed result on the loop's thread: the box's reference count stays exact")
    func waitForFromAnotherThreadKeepsCountsExact() async throws {
        try await runLoop(virtualClock: false) {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: String.self)
            try f.setResult("boxed")
            let box = UnsafeMutableRawPointer(f.unsafeRaw.pointee.fut_result.u.obj!)
            let waited = try await sumAwaitedFromAnotherThread(5000, {
                (try? await waitFor(f, timeout: nil)) == "boxed" ? 1 : 0
            }, whileTheLoop: { churnReferences(to: box, 100) })
            #expect(waited == 5000)
            #expect(box.assumingMemoryBound(to: ca_object.self).pointee.ob_refcnt == 1,
                    "only the future's reference is left")
        }
    }

    @Test("wait awaited by a Swift task on another thread releases its done and pending sets on the loop's thread: the futures' reference counts stay exact")
    func waitFromAnotherThreadKeepsCountsExact() async throws {
        try await runLoop(virtualClock: false) {
            let loop = EventLoop.current!
            let futures = (0..<8).map { _ in loop.createFuture(of: Int.self) }
            for (i, f) in futures.enumerated() { try f.setResult(i) }
            let waited = try await sumAwaitedFromAnotherThread(2000, {
                (try? await wait(futures))?.done.count == 8 ? 1 : 0
            }, whileTheLoop: { for f in futures { churnReferences(to: UnsafeMutableRawPointer(f.unsafeRaw), 20) } })
            #expect(waited == 2000)
            for f in futures {
                #expect(f.unsafeRaw.pointee.ob_base.ob_refcnt == 1, "only the wrapper's reference is left")
            }
        }
    }

    @Test("asCompleted stepped by a Swift task on another thread drops each future's reference on the loop's thread: the futures' reference counts stay exact")
    func asCompletedFromAnotherThreadKeepsCountsExact() async throws {
        try await runLoop(virtualClock: false) {
            let loop = EventLoop.current!
            let futures = (0..<8).map { _ in loop.createFuture(of: Int.self) }
            for (i, f) in futures.enumerated() { try f.setResult(i) }
            // The sequences are made here (on the loop's thread, as they must
            // be); the other thread only steps through them.
            let sequences = Shared(try (0..<600).map { _ in try asCompleted(futures) })
            let steps = try await sumAwaitedFromAnotherThread(600, {
                var n = 0
                guard let sequence = sequences.update({ $0.popLast() }) else { return 0 }
                do {
                    for try await _ in sequence { n += 1 }
                } catch {}
                return n
            }, whileTheLoop: { for f in futures { churnReferences(to: UnsafeMutableRawPointer(f.unsafeRaw), 20) } })
            #expect(steps == 600 * 8)
            for f in futures {
                #expect(f.unsafeRaw.pointee.ob_base.ob_refcnt == 1, "only the wrapper's reference is left")
            }
        }
    }

    @Test("wait inside the body's own task mallocs only its arrays: the futures handed to the core, the done ones, the pending ones",
          .enabled(if: cab_malloc_counting(), "malloc is not counted here (a sanitizer owns the allocator)"))
    func waitInOwnTaskMallocsOnlyItsArrays() async throws {
        let (perWait, sizes) = try await runLoop {
            let loop = EventLoop.current!
            let futures = (0..<4).map { _ in loop.createFuture(of: Int.self) }
            for i in 0..<3 { try futures[i].setResult(i) }
            let sets = try await wait(futures, returnWhen: .firstCompleted)
            let perWait = try await mallocsPerCall(1000) { _ = try await wait(futures, returnWhen: .firstCompleted) }
            return (perWait, [sets.done.count, sets.pending.count])
        }
        #expect(sizes == [3, 1])
        #expect(perWait == 3)
    }

    @Test("an asCompleted step inside the body's own task mallocs nothing",
          .enabled(if: cab_malloc_counting(), "malloc is not counted here (a sanitizer owns the allocator)"))
    func asCompletedStepInOwnTaskMallocsNothing() async throws {
        let perStep = try await runLoop {
            let loop = EventLoop.current!
            let futures = (0..<2000).map { _ in loop.createFuture(of: Int.self) }
            var steps = try asCompleted(futures).makeAsyncIterator()
            var next = 0
            // Each step waits: its future is done only as the step starts,
            // and the sequence hears of it through a done callback that the
            // loop runs meanwhile.
            return try await mallocsPerCall(1000) {
                try futures[next].setResult(next)
                next += 1
                _ = try await steps.next()
            }
        }
        #expect(perStep == 0)
    }

    @Test("wait: FIRST_COMPLETED, timeout, done and pending keep the callers' futures")
    func waitSets() async throws {
        try await runLoop {
            let a = try after(1, "a"), b = try after(5, "b"), c = try after(9, "c")
            let (done, pending) = try await wait([a, b, c], returnWhen: .firstCompleted)
            #expect(done.map { $0 === a } == [true])
            #expect(pending.count == 2 && pending[0] === b && pending[1] === c)
            let (done2, pending2) = try await wait([b, c], timeout: 2)
            #expect(done2.isEmpty && pending2.count == 2)  // nothing cancelled
            let (all, none) = try await wait([a, b, c])
            #expect(all.count == 3 && none.isEmpty)
            let e = try failing(1, Oops(code: 5))
            let slow = try after(50, 0)
            let (d3, p3) = try await wait([e, slow], returnWhen: .firstException)
            #expect(d3.count == 1 && p3.count == 1)
            await #expect(throws: AsyncioError(typeName: "ValueError", message: "Set of Tasks/Futures is empty.")) {
                _ = try await wait([Future<Int>]())
            }
        }
    }

    @Test("wait: a future passed more than once comes back once, in the place of its first passing")
    func waitRepeatedFutures() async throws {
        try await runLoop {
            let a = try after(1, "a"), b = try after(5, "b"), c = try after(2, "c")
            let (done, pending) = try await wait([b, a, b, c, a], timeout: 3)
            #expect(done.count == 2 && done[0] === a && done[1] === c)
            #expect(pending.count == 1 && pending[0] === b)
        }
    }

    @Test("waitFor: the result in time; TimeoutError and a cancelled future after the deadline")
    func waitForFuture() async throws {
        try await runLoop {
            #expect(try await waitFor(after(1, 5), timeout: 2) == 5)
            let slow = try after(10, 5)
            await #expect(throws: TimeoutError.self) { try await waitFor(slow, timeout: 1) }
            #expect(slow.isCancelled)
            #expect(try await waitFor(after(1, 6), timeout: nil) == 6)
            let closure = try await waitFor(timeout: 3) { () async throws -> String in
                try await sleep(1)
                return "inline"
            }
            #expect(closure == "inline")
            await #expect(throws: TimeoutError.self) {
                try await waitFor(timeout: 1) { try await sleep(5) }
            }
        }
    }

    @Test("shield: cancelling the outer future leaves the inner one running")
    func shieldInner() async throws {
        try await runLoop {
            let inner = try after(5, "kept")
            let outer = try shield(inner)
            let waiter = try createTask { try await outer.value }
            try await sleep(1)
            waiter.cancel()
            await #expect(throws: CancelledError.self) { try await waiter.value }
            #expect(outer.isCancelled)
            #expect(!inner.isCancelled)
            #expect(try await inner.value == "kept")
            let done = try after(0, 1)
            _ = try await done.value
            #expect(try shield(done) === done)
        }
    }

    @Test("sleep: virtual time advances by the delay; sleep(0) gives up one iteration; NaN is refused")
    func sleeping() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let t0 = loop.time
            try await sleep(2.5)
            #expect(abs(loop.time - t0 - 2.5) < 1e-6)
            let before = ca_loop_iteration_count(loop.unsafeRaw)
            try await sleep(0)
            #expect(ca_loop_iteration_count(loop.unsafeRaw) == before + 1)
            await #expect(throws: AsyncioError(typeName: "ValueError", message: "Invalid delay: NaN (not a number)")) {
                try await sleep(.nan)
            }
        }
    }

    @Test("timeout: expiry becomes TimeoutError; a body in time returns; reschedule and timeoutAt")
    func timeoutScopes() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            await #expect(throws: TimeoutError.self) {
                try await timeout(1) { try await sleep(10) }
            }
            let inTime = try await timeout(5) { () async throws -> Int in
                try await sleep(1)
                return 3
            }
            #expect(inTime == 3)
            let expired = Shared(false)
            await #expect(throws: TimeoutError.self) {
                try await withTimeout(100) { scope in
                    #expect(scope.when != nil)
                    try scope.reschedule(loop.time + 1)
                    defer { expired.value = scope.expired }
                    try await sleep(10)
                }
            }
            #expect(expired.value)
            let noDeadline = try await timeout(nil) { () async throws -> Int in
                try await sleep(1000)
                return 1
            }
            #expect(noDeadline == 1)
            let t0 = loop.time
            await #expect(throws: TimeoutError.self) {
                try await timeoutAt(t0 + 2) { try await sleep(10) }
            }
            #expect(abs(loop.time - t0 - 2) < 1e-6)
            // The body's own errors pass through unchanged.
            await #expect(throws: Oops(code: 4)) {
                try await timeout(10) { () async throws -> Int in throw Oops(code: 4) }
            }
        }
    }

    @Test("a cancellation from outside a timeout scope stays a CancelledError")
    func timeoutOuterCancel() async throws {
        try await runLoop {
            let t = try createTask { try await timeout(100) { try await sleep(50) } }
            try await sleep(1)
            t.cancel()
            await #expect(throws: CancelledError.self) { try await t.value }
        }
    }

    @Test("asCompleted yields the futures in completion order; a timeout ends it with TimeoutError")
    func asCompletedOrder() async throws {
        try await runLoop {
            let tasks = try [after(3, 3), after(1, 1), after(2, 2)]
            var order: [Int] = []
            for try await done in try asCompleted(tasks) {
                order.append(try done.result())
                #expect(tasks.contains { $0 === done })
            }
            #expect(order == [1, 2, 3])
            let slow = try [after(1, 1), after(10, 10)]
            var seen: [Int] = []
            await #expect(throws: TimeoutError.self) {
                for try await done in try asCompleted(slow, timeout: 5) { seen.append(try done.result()) }
            }
            #expect(seen == [1])
        }
    }

    @Test("a task group: children are loop tasks; the group waits for all of them")
    func taskGroup() async throws {
        try await runLoop {
            let results = Shared<[Int]>([])
            try await withLoopTaskGroup { group in
                for i in 0..<5 {
                    let t = try group.createTask(name: "child-\(i)") {
                        try await sleep(Double(5 - i))
                        results.update { $0.append(i) }
                        return i
                    }
                    #expect(t.name == "child-\(i)")
                }
                #expect(allTasks().count == 6)
            }
            #expect(results.value == [4, 3, 2, 1, 0])
        }
    }

    @Test("a failing child cancels its siblings; the errors come out as an ExceptionGroup")
    func taskGroupFailure() async throws {
        try await runLoop {
            let siblingCancelled = Shared(false)
            do {
                try await withLoopTaskGroup { group in
                    try group.createTask { () async throws -> Int in
                        try await sleep(1)
                        throw Oops(code: 9)
                    }
                    try group.createTask { () async throws -> Int in
                        do {
                            try await sleep(100)
                        } catch is CancelledError {
                            siblingCancelled.value = true
                            throw CancelledError()
                        }
                        return 0
                    }
                }
                Issue.record("no error")
            } catch let g as ExceptionGroup {
                #expect(g.message == "unhandled errors in a TaskGroup")
                #expect(g.errors.count == 1)
                #expect(g.errors.first as? Oops == Oops(code: 9))
            }
            #expect(siblingCancelled.value)
        }
    }
}

/// gatherReturningExceptions, after cancelling one child once it is running.
private func gather(returning futures: [Future<Int>], cancelling victim: Future<Int>) async throws
    -> [Result<Int, any Error>] {
    let all = try createTask { try await gatherReturningExceptions(futures) }
    try await sleep(0.5)
    victim.cancel()
    return try await all.value
}
