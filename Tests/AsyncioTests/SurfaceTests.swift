// The rest of the public surface: type-erased tasks, reprs, debug mode,
// absolute-deadline scopes, immediate queue shutdown.

@testable import Asyncio
import CAsyncio
import Testing

@Suite("API surface")
struct SurfaceTests {
    @Test("AnyLoopTask: name, state, cancel/uncancel, typed view, identity")
    func anyLoopTask() async throws {
        try await runLoop {
            let t = try createTask(name: "typed") { () async throws -> Int in
                try await sleep(10)
                return 1
            }
            let any = try #require(allTasks().first { $0.name == "typed" })
            #expect(any == t.erased)
            #expect(Set([any, t.erased]).count == 1)
            #expect(!any.isDone && !any.isCancelled)
            #expect(any.cancel(message: "via any"))
            #expect(any.cancelling == 1)
            #expect(any.uncancel() == 0)
            #expect(any.cancel())
            let typed: LoopTask<Int> = any.typed()
            await #expect(throws: CancelledError.self) { try await typed.value }
            #expect(any.isDone && any.isCancelled)
            #expect(any.description.hasPrefix("<Task cancelled name='typed'"))
        }
    }

    @Test("reprs of the scope, group, queue and primitives")
    func reprs() async throws {
        try await runLoop {
            try await withTimeout(5) { scope in
                #expect(scope.description.hasPrefix("<Timeout [active] when="))
            }
            try await withLoopTaskGroup { group in
                #expect(group.description == "<TaskGroup entered>")
            }
            let q = AsyncQueue<Int>(maxsize: 3)
            try q.putNowait(1)
            #expect(q.description.hasPrefix("<Queue at 0x"))
            #expect(q.description.contains("maxsize=3 _queue=[1] tasks=1"))
            #expect(Event().description.contains("[unset]"))
            #expect(try Semaphore(value: 2).description.contains("[unlocked, value:2]"))
            #expect(try BoundedSemaphore().description.contains("BoundedSemaphore"))
            #expect(try Barrier(parties: 2).description.contains("[filling, waiters:0/2]"))
            #expect(Condition(lock: Lock()).description.contains("[unlocked]"))
            #expect(!Condition().isLocked)
        }
    }

    @Test("withTimeoutAt: the scope reports its absolute deadline and expiry")
    func timeoutAtScope() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let deadline = loop.time + 3
            let expired = Shared(false)
            await #expect(throws: TimeoutError.self) {
                try await withTimeoutAt(deadline) { scope in
                    #expect(abs(scope.when! - deadline) < 1e-6)
                    defer { expired.value = scope.expired }
                    try await sleep(10)
                }
            }
            #expect(expired.value)
            try await withTimeoutAt(nil) { scope in #expect(scope.when == nil) }
        }
    }

    @Test("debug mode on and off; the backend is named")
    func debugMode() async throws {
        try await onThread {
            let loop = try EventLoop(debug: true)
            defer { try? loop.close() }
            #expect(loop.isDebug)
            loop.setDebug(false)
            #expect(!loop.isDebug)
            let backend = String(cString: ca_loop_backend_name(loop.unsafeRaw))
            #expect(backend == "io_uring" || backend == "epoll")
        }
    }

    @Test("shutdown(immediate:) drops the queued items and wakes join")
    func immediateShutdown() async throws {
        try await runLoop {
            let q = AsyncQueue<String>()
            for s in ["a", "b"] { try q.putNowait(s) }
            let joiner = try createTask { try await q.join() }
            try await sleep(0)
            try q.shutdown(immediate: true)
            #expect(q.isEmpty && q.count == 0)
            try await joiner.value
            #expect(throws: QueueShutDown.self) { try q.getNowait() }
        }
    }

    @Test("asCompleted counts what is left")
    func asCompletedRemaining() async throws {
        try await runLoop {
            let tasks = try (1...3).map { i in try createTask { () async throws -> Int in
                try await sleep(Double(i))
                return i
            } }
            let seq = try asCompleted(tasks)
            #expect(seq.remaining == 3)
            var it = seq.makeAsyncIterator()
            _ = try await it.next()
            #expect(seq.remaining == 2)
        }
    }
}
