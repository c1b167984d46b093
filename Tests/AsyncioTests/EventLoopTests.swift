// EventLoop: asyncio.run, running, callbacks, time, stop and close, and the
// loop as the executor Swift code resumes on.

@testable import Asyncio
import CAsyncio
import Glibc
import Testing

/// A function isolated to a loop: called from a body, it runs on the loop
/// thread without leaving the body's task.
func onLoopActor(_ loop: isolated EventLoop) -> UInt {
    (loop as any Actor).preconditionIsolated()
    return threadID()
}

@Suite("EventLoop")
struct EventLoopTests {
    @Test("run returns the main body's result and closes the loop")
    func runReturns() async throws {
        let seen = Shared<EventLoop?>(nil)
        let result = try await runLoop {
            seen.value = EventLoop.current
            return 42
        }
        #expect(result == 42)
        let loop = try #require(seen.value)
        #expect(loop.isClosed)
        #expect(!loop.isRunning)
    }

    @Test("run throws the main body's error, the same Swift error")
    func runThrows() async throws {
        let boom = Boom(1)
        await #expect(throws: Boom.self) {
            try await runLoop { () async throws -> Int in throw boom }
        }
        do {
            _ = try await runLoop { () async throws -> Int in throw boom }
        } catch let e as Boom {
            #expect(e === boom)
        }
    }

    @Test("the main body runs on the thread that called run, and stays there across awaits")
    func bodyRunsOnLoopThread() async throws {
        try await onThread {
            let caller = threadID()
            try EventLoop.run(virtualClock: true) {
                #expect(threadID() == caller)
                try await sleep(0)
                #expect(threadID() == caller)
                try await sleep(1)
                #expect(threadID() == caller)
                let loop = EventLoop.current!
                let f = loop.createFuture(of: Int.self)
                try loop.callLater(0.5) { try? f.setResult(1) }
                _ = try await f.value
                #expect(threadID() == caller)
                // Isolated to the loop actor: a hop within the same task.
                #expect(await onLoopActor(loop) == caller)
                #expect(threadID() == caller)
            }
        }
    }

    @Test("run cancels the tasks left pending when main returns")
    func runCancelsLeftovers() async throws {
        let log = Log()
        try await runLoop {
            try createTask {
                do {
                    try await sleep(3600)
                    log.append("slept")
                } catch is CancelledError {
                    log.append("cancelled")
                    throw CancelledError()
                }
            }
            try await sleep(0)
        }
        #expect(log.value == ["cancelled"])
    }

    @Test("run refuses to run inside a running loop")
    func runNested() async throws {
        try await runLoop {
            #expect(throws: AsyncioError(typeName: "RuntimeError",
                                         message: "asyncio.run() cannot be called from a running event loop")) {
                try EventLoop.run { 1 }
            }
        }
    }

    @Test("callSoon runs callbacks FIFO at the next iteration, never inline")
    func callSoonOrder() async throws {
        let log = Log()
        try await runLoop {
            let loop = EventLoop.current!
            for i in 0..<3 { try loop.callSoon { log.append("cb\(i)") } }
            log.append("scheduled")
            try await sleep(0)
            log.append("after one iteration")
        }
        #expect(log.value == ["scheduled", "cb0", "cb1", "cb2", "after one iteration"])
    }

    @Test("a handle nobody holds once its callback ran is reused by the next callSoon")
    func discardedHandlesAreReused() async throws {
        let log = Log()
        try await runLoop {
            let loop = EventLoop.current!
            let spareBefore = loop.core.spareHandleCount
            for i in 0..<3 { try loop.callSoon { log.append("cb\(i)") } }
            try await sleep(0)
            #expect(loop.core.spareHandleCount == spareBefore + 3)
            let kept = try loop.callSoon { log.append("kept") }
            #expect(loop.core.spareHandleCount == spareBefore + 2)
            try await sleep(0)
            // Still held here: not taken back.
            #expect(loop.core.spareHandleCount == spareBefore + 2)
            #expect(!kept.isCancelled)
        }
        #expect(log.value == ["cb0", "cb1", "cb2", "kept"])
    }

    @Test("a handle held only weakly or unowned is not reused: the reference never leads to a later callback")
    func weaklyHeldHandlesAreNotReused() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            var handle: Handle? = try loop.callSoon {}
            weak let weakly = handle
            unowned let unownedly = try loop.callSoon {}
            let unownedAddress = ObjectIdentifier(unownedly)
            handle = nil
            try await sleep(0)
            #expect(weakly == nil, "the weakly held handle died once its callback ran")
            for _ in 0..<4 {
                let later = try loop.callSoon {}
                #expect(ObjectIdentifier(later) != unownedAddress)
                withExtendedLifetime(later) {}
            }
        }
    }

    @Test("callSoon on a closed loop throws, also when the loop has spare handles to reuse")
    func callSoonOnClosedLoopWithSpareHandles() throws {
        let loop = try EventLoop(virtualClock: true)
        let ran = Shared(0)
        for _ in 0..<3 { try loop.callSoon { ran.update { $0 += 1 } } }
        loop.stop()
        try loop.runForever()
        #expect(ran.value == 3)
        #expect(loop.core.spareHandleCount == 3)
        try loop.close()
        #expect(throws: AsyncioError.self) { try loop.callSoon { ran.update { $0 += 1 } } }
        #expect(ran.value == 3)
    }

    @Test("a handle the caller keeps stays its own after its callback ran: cancelling it touches no later callback")
    func keptHandleStaysItsOwn() async throws {
        let log = Log()
        try await runLoop {
            let loop = EventLoop.current!
            let first = try loop.callSoon { log.append("first") }
            try await sleep(0)
            for i in 0..<3 { try loop.callSoon { log.append("discarded\(i)") } }
            try await sleep(0)
            let second = try loop.callSoon { log.append("second") }
            #expect(first !== second)
            first.cancel()
            #expect(first.isCancelled)
            #expect(!second.isCancelled)
            try await sleep(0)
        }
        #expect(log.value == ["first", "discarded0", "discarded1", "discarded2", "second"])
    }

    @Test("callLater and callAt fire by deadline on the virtual clock; a cancelled handle never runs")
    func timers() async throws {
        let log = Log()
        try await runLoop {
            let loop = EventLoop.current!
            let t0 = loop.time
            try loop.callLater(2) { log.append("later 2 at \(Int((loop.time - t0).rounded()))") }
            try loop.callAt(t0 + 1) { log.append("at 1 at \(Int((loop.time - t0).rounded()))") }
            let h = try loop.callLater(1.5) { log.append("cancelled one") }
            #expect(abs(h.when - (t0 + 1.5)) < 1e-6)
            h.cancel()
            #expect(h.isCancelled)
            try await sleep(3)
            #expect(loop.timeNanoseconds - Int64(t0 * 1e9) >= 3_000_000_000 - 1)
        }
        #expect(log.value == ["at 1 at 1", "later 2 at 2"])
    }

    @Test("callSoonThreadsafe from another thread wakes the loop and runs on its thread")
    func callSoonThreadsafe() async throws {
        try await onThread {
            let loopThread = threadID()
            try EventLoop.run {
                let loop = EventLoop.current!
                let f = loop.createFuture(of: UInt.self)
                let poster = try createTask {
                    try await onThread {
                        try loop.callSoonThreadsafe { try? f.setResult(threadID()) }
                    }
                }
                #expect(try await f.value == loopThread)
                // Not left in its foreign await when the loop closes: its
                // resumption could come after close, which nothing can run.
                try await poster.value
            }
        }
    }

    @Test("runForever runs until stop; stopThreadsafe stops it from another thread")
    func stopAndRunForever() async throws {
        try await onThread {
            let loop = try EventLoop(virtualClock: true)
            defer { try? loop.close() }
            let count = Shared(0)
            try loop.callSoon { count.value += 1; loop.stop() }
            try loop.callSoon { count.value += 1 }
            try loop.runForever()
            #expect(count.value == 2)  // the iteration completes
            try loop.callSoon {
                Threads.detach { try? loop.stopThreadsafe() }
            }
            try loop.runForever()
            #expect(!loop.isRunning)
        }
    }

    @Test("close: idempotent, refused while running, and a closed loop refuses work")
    func close() async throws {
        try await onThread {
            let loop = try EventLoop()
            try loop.callSoon {
                #expect(throws: AsyncioError.self) { try loop.close() }
                loop.stop()
            }
            try loop.runForever()
            try loop.close()
            try loop.close()
            #expect(loop.isClosed)
            #expect(throws: AsyncioError(typeName: "RuntimeError", message: "Event loop is closed")) {
                try loop.callSoon {}
            }
            #expect(throws: AsyncioError.self) { try loop.createTask { 1 } }
            #expect(throws: AsyncioError.self) { try loop.callSoonThreadsafe {} }
        }
    }

    @Test("runUntilComplete returns a future's result or throws its error")
    func runUntilComplete() async throws {
        try await onThread {
            let loop = try EventLoop(virtualClock: true)
            defer { try? loop.close() }
            let f = loop.createFuture(of: String.self)
            try loop.callLater(1) { try? f.setResult("done") }
            #expect(try loop.runUntilComplete(f) == "done")
            #expect(try loop.runUntilComplete { try await sleep(1); return 7 } == 7)
            let g = loop.createFuture(of: Int.self)
            try loop.callSoon { try? g.setException(Oops(code: 3)) }
            #expect(throws: Oops(code: 3)) { try loop.runUntilComplete(g) }
        }
    }

    @Test("EventLoop.current is the running loop, nil elsewhere; time advances on the virtual clock")
    func currentAndTime() async throws {
        #expect(EventLoop.current == nil)
        try await runLoop {
            let loop = try #require(EventLoop.current)
            let t0 = loop.time
            try await sleep(10)
            #expect(abs(loop.time - t0 - 10) < 1e-6)
            #expect(loop.isRunning)
            #expect(!loop.isDebug)
        }
    }

    @Test("the loop is a SerialExecutor and a TaskExecutor")
    func executors() async throws {
        try await onThread {
            let loopThread = threadID()
            try EventLoop.run {
                let loop = EventLoop.current!
                // A plain Swift task with the loop as preference runs on the loop thread.
                let t = Task(executorPreference: loop) { threadID() }
                #expect(await t.value == loopThread)
                loop.checkIsolated()
            }
        }
    }
}

/// A detached thread for the tests.
enum Threads {
    static func detach(_ body: @escaping @Sendable () -> Void) {
        Task.detached { _ = try? await onThread(body) }
    }
}
