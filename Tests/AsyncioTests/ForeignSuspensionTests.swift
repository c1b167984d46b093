// Foreign suspensions: a body awaiting something that is not a loop
// awaitable (Task.sleep, Task.yield, another actor, async let) stays in step
// with its C task and resumes inside its own step.

@testable import Asyncio
import CAsyncio
import CAsyncioShim
import Testing

/// An actor with the default executor (the global pool).
actor Elsewhere {
    var count = 0
    func bump() -> Int {
        count += 1
        return count
    }
}

/// What the body checks after each resumption: its own task is current and
/// it runs inside its C step, on the loop thread.
private func inOwnStep(_ me: AnyLoopTask, _ loopThread: UInt) -> Bool {
    currentTask() == me && threadID() == loopThread && cas_tls_get().pointee.running != nil
}

@Suite("Foreign suspensions")
struct ForeignSuspensionTests {
    @Test("this Swift runtime's continuation layout is recognized: a body's loop await resumes straight onto the loop's executor")
    func continuationRetargetSupported() async throws {
        let n = try await runLoop {
            var i = 0
            for _ in 0..<3 {
                try await sleep(0)
                i += 1
            }
            return i
        }
        #expect(n == 3)
        // Checked once the first body installed the Swift layer's hooks.
        // When a new toolchain changes the layout, awaits still work (they
        // take the generic executor's path, with its lock) and this fails,
        // to have the offsets in shim.c checked again.
        #expect(cas_continuation_retarget_supported())
    }

    @Test("Task.sleep inside a body: the C task waits on a private future, the body resumes in its own step")
    func taskSleep() async throws {
        try await onThread {
            let loopThread = threadID()
            try EventLoop.run {
                let loop = EventLoop.current!
                let reprDuring = Shared("")
                let t = try createTask { () async throws -> Bool in
                    let me = currentTask()!
                    // Long beside the 10 ms callLater below, so a loaded
                    // machine's late loop still looks while it sleeps.
                    try await Task.sleep(nanoseconds: 300_000_000)
                    let ok = inOwnStep(me, loopThread)
                    try await sleep(0)  // loop awaits still work afterwards
                    return ok && inOwnStep(me, loopThread)
                }
                try loop.callLater(0.01) { reprDuring.value = t.description }
                #expect(try await t.value)
                #expect(reprDuring.value.contains("wait_for=<SwiftSuspension pending"))
                #expect(loop.foreignSuspensionCount == 1)
            }
        }
    }

    @Test("Task.yield inside a body works (a foreign suspension on the loop)")
    func taskYield() async throws {
        try await onThread {
            let loopThread = threadID()
            try EventLoop.run {
                let t = try createTask { () async throws -> Int in
                    let me = currentTask()!
                    var ok = 0
                    for _ in 0..<3 {
                        await Task.yield()
                        if inOwnStep(me, loopThread) { ok += 1 }
                    }
                    return ok
                }
                #expect(try await t.value == 3)
            }
        }
    }

    @Test("a call into an actor on another executor, and back")
    func actorHop() async throws {
        try await onThread {
            let loopThread = threadID()
            try EventLoop.run {
                let elsewhere = Elsewhere()
                let t = try createTask { () async throws -> Int in
                    let me = currentTask()!
                    var n = 0
                    for _ in 0..<5 {
                        n = await elsewhere.bump()
                        #expect(inOwnStep(me, loopThread))
                    }
                    return n
                }
                #expect(try await t.value == 5)
            }
        }
    }

    @Test("async let children run on the loop; the parent is adopted back into its step")
    func asyncLet() async throws {
        try await onThread {
            let loopThread = threadID()
            try EventLoop.run {
                let t = try createTask { () async throws -> Int in
                    let me = currentTask()!
                    async let a: Int = {
                        #expect(threadID() == loopThread)
                        try await sleep(0.001)
                        return 1
                    }()
                    async let b: Int = { 2 }()
                    let sum = try await a + b
                    #expect(inOwnStep(me, loopThread))
                    return sum
                }
                #expect(try await t.value == 3)
            }
        }
    }

    @Test("cancel during Task.sleep: the Swift task is cancelled, Task.sleep throws CancellationError")
    func cancelDuringTaskSleep() async throws {
        try await onThread {
            try EventLoop.run {
                let t = try createTask { () async throws -> Int in
                    try await Task.sleep(nanoseconds: 10_000_000_000)
                    return 0
                }
                try await sleep(0.02)
                let started = EventLoop.current!.time
                t.cancel()
                await #expect(throws: CancelledError.self) { try await t.value }
                #expect(t.isCancelled)
                #expect(EventLoop.current!.time - started < 5)
            }
        }
    }

    @Test("a cancellation that arrives during a foreign suspension is raised at the next loop await")
    func deferredCancellation() async throws {
        try await onThread {
            try EventLoop.run {
                let log = Log()
                let t = try createTask { () async throws -> String in
                    do {
                        try await Task.sleep(nanoseconds: 10_000_000_000)
                    } catch is CancellationError {
                        log.append("Task.sleep interrupted")
                        #expect(Task.isCancelled)  // Swift cancellation is sticky
                    }
                    do {
                        try await sleep(0)
                        return "not delivered"
                    } catch let e as CancelledError {
                        log.append("CancelledError at the loop await")
                        return e.message ?? "no message"
                    }
                }
                try await sleep(0.02)
                t.cancel(message: "deferred")
                #expect(try await t.value == "deferred")
                #expect(log.value == ["Task.sleep interrupted", "CancelledError at the loop await"])
            }
        }
    }

    @Test("Task.immediate inside a body does not take over the body's awaits")
    func immediateInsideBody() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Int.self)
            let t = try createTask { () async throws -> Int in
                let inner = Task.immediate { try await f.value }
                try await sleep(0)
                try f.setResult(8)
                return try await inner.value
            }
            #expect(try await t.value == 8)
        }
    }
}
