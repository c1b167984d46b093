// Closing a loop releases everything still pending on it: the callbacks of
// dropped handles, and the bodies of tasks that can never resume, even when
// what they wait on (a gather, a shield, wait()) and the task hold each other.
// Without a cycle collector those objects would otherwise live for good.

@testable import Asyncio
import CAsyncio
import CAsyncioShim
import CAsyncioTestSupport
import Glibc
import Testing

/// Counts the live instances of `Token` made for it.
///
/// Safety of `@unchecked Sendable`: every token of one test is made and
/// released on that test's loop thread, which alone reads the count after.
final class TokenCount: @unchecked Sendable {
    var alive = 0
}

/// An object captured by a callback or a body: alive until they are released.
///
/// Safety of `@unchecked Sendable`: immutable; its count is `TokenCount`'s.
final class Token: @unchecked Sendable {
    let count: TokenCount
    init(_ count: TokenCount) {
        self.count = count
        count.alive += 1
    }
    deinit { count.alive -= 1 }
}

/// Runs `setUp` (which captures the token) on a fresh loop, lets the loop run
/// one iteration so new tasks reach their first await, closes the loop and
/// reports how many tokens and Swift task bodies are still alive, and how
/// many core blocks the whole run left allocated once the loop is gone (the
/// second of two runs: the first warms the caches a thread keeps).
private func aliveAfterClose(_ setUp: @escaping @Sendable (EventLoop, Token) throws -> Void) async throws
    -> (tokens: Int, bodies: Int, blocks: Int64) {
    try await onThread {
        func once() throws -> (tokens: Int, bodies: Int) {
            let count = TokenCount()
            let loop = try EventLoop(virtualClock: true)
            try setUp(loop, Token(count))
            try loop.runUntilComplete { try await sleep(0) }
            try loop.close()
            return (count.alive, loop.core.liveBodies)
        }
        _ = try once()
        ca_freelists_clear()
        cas_freelists_clear()
        let before = ca_alloc_stats_get()
        let alive = try once()
        ca_freelists_clear()
        cas_freelists_clear()
        let after = ca_alloc_stats_get()
        let blocks = (Int64(after.allocs) - Int64(before.allocs)) - (Int64(after.frees) - Int64(before.frees))
        return (alive.tokens, alive.bodies, blocks)
    }
}

/// What a Swift task on another loop's thread got from the await `make`
/// prepares (on the first loop's thread), when it started that await while
/// the first loop was stopping: the first loop waits in its last callback
/// until the await has handed its request over, so the request reaches the
/// loop after its last look at what other threads sent it, and only closing
/// the loop can answer it. (The awaiting task runs on a second loop, not on
/// Swift's pool, which the synchronous tests running alongside can keep busy
/// for seconds; awaiting from a running loop hands the request over whatever
/// the first loop's state.) "no answer" when nothing did within ten seconds.
private func foreignAwaitOutcomeAtClose(
    _ make: @escaping @Sendable (EventLoop) -> @Sendable () async throws -> Void
) async throws -> String {
    let outcome = Shared<String?>(nil)
    let other = try EventLoop()
    async let otherRun: Void = onThread {
        try other.runForever()
        try other.close()
    }
    try await onThread {
        let loop = try EventLoop()
        try loop.callSoon {
            let wait = make(loop)
            loop.stop()
            Task(executorPreference: other) {
                do {
                    try await wait()
                    outcome.value = "returned"
                } catch let error as AsyncioError {
                    outcome.value = "\(error.typeName): \(error.message ?? "")"
                } catch {
                    outcome.value = "\(error)"
                }
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while !ts_loop_has_threadsafe_calls(loop.unsafeRaw), ContinuousClock.now < deadline { usleep(200) }
        }
        try loop.runForever()
        try loop.close()
        let deadline = ContinuousClock.now + .seconds(10)
        while outcome.value == nil, ContinuousClock.now < deadline { usleep(1_000) }
    }
    try other.stopThreadsafe()
    try await otherRun
    return outcome.value ?? "no answer"
}

@Suite("Closing a loop releases what is pending")
struct CloseReleaseTests {
    @Test("a timer pending at close releases its callback, though its Handle held it")
    func pendingTimer() async throws {
        let alive = try await aliveAfterClose { loop, token in
            try loop.callLater(3600) { _ = token }
        }
        #expect(alive.tokens == 0)
        #expect(alive.blocks == 0, "\(alive.blocks) core blocks outlived the loop")
    }

    @Test("a callback still queued at close releases its callback")
    func queuedCallback() async throws {
        let alive = try await aliveAfterClose { loop, token in
            // Each run schedules the next one: one is always in the ready
            // queue, including when the loop closes.
            @Sendable func again() { _ = try? loop.callSoon { _ = token; again() } }
            again()
        }
        #expect(alive.tokens == 0)
        #expect(alive.blocks == 0, "\(alive.blocks) core blocks outlived the loop")
    }

    @Test("a task awaiting a gather that can never finish releases its body")
    func pendingGather() async throws {
        let alive = try await aliveAfterClose { loop, token in
            let never = loop.createFuture(of: Int.self)
            try loop.createTask { () async throws -> Int in
                _ = token
                return try await gather([never]).count
            }
        }
        #expect(alive.tokens == 0)
        #expect(alive.bodies == 0)
        #expect(alive.blocks == 0, "\(alive.blocks) core blocks outlived the loop")
    }

    @Test("a task awaiting a shield that can never finish releases its body")
    func pendingShield() async throws {
        let alive = try await aliveAfterClose { loop, token in
            let never = loop.createFuture(of: Int.self)
            try loop.createTask { () async throws -> Int in
                _ = token
                return try await shield(never).value
            }
        }
        #expect(alive.tokens == 0)
        #expect(alive.bodies == 0)
        #expect(alive.blocks == 0, "\(alive.blocks) core blocks outlived the loop")
    }

    @Test("a shield left pending by a task that finished is released at close")
    func orphanedShield() async throws {
        let alive = try await aliveAfterClose { loop, _ in
            let never = loop.createFuture(of: Int.self)
            try loop.createTask { () async throws -> Int in
                // The shield's two futures hold each other, and the inner one
                // this task (its awaited_by); nothing else holds them.
                _ = try shield(never)
                return 0
            }
        }
        #expect(alive.blocks == 0, "\(alive.blocks) core blocks outlived the loop")
    }

    @Test("a task in asyncio.wait on a future that never finishes releases its body")
    func pendingWait() async throws {
        let alive = try await aliveAfterClose { loop, token in
            let never = loop.createFuture(of: Int.self)
            try loop.createTask { () async throws -> Int in
                _ = token
                return try await wait([never]).done.count
            }
        }
        #expect(alive.tokens == 0)
        #expect(alive.bodies == 0)
        #expect(alive.blocks == 0, "\(alive.blocks) core blocks outlived the loop")
    }

    @Test("a future whose last reference goes on another thread while its loop stops is freed at close")
    func futureReleasedOffLoopWhileStopping() async throws {
        let refs = try await onThread { () throws -> Int in
            let loop = try EventLoop()
            let raw = Shared(0)
            try loop.callSoon {
                let held = Shared<Future<Int>?>(loop.createFuture(of: Int.self))
                let f = held.value!.unsafeRaw
                ca_incref(UnsafeMutableRawPointer(f))
                raw.value = Int(bitPattern: f)
                loop.stop()
                // The loop runs, so the other thread hands the release to
                // it; the loop stops before it looks at what it was handed.
                onThreadJoined { held.value = nil }
            }
            try loop.runForever()
            try loop.close()
            let f = UnsafeMutablePointer<ca_future>(bitPattern: raw.value)!
            defer { ca_decref(UnsafeMutableRawPointer(f)) }
            return Int(f.pointee.ob_base.ob_refcnt)
        }
        #expect(refs == 1, "only the test's own reference is left")
    }

    @Test("a Swift task on another loop awaiting a future when its loop closes gets RuntimeError")
    func foreignFutureAwaitAtClose() async throws {
        let outcome = try await foreignAwaitOutcomeAtClose { loop in
            let f = loop.createFuture(of: Int.self)
            return { _ = try await f.value }
        }
        #expect(outcome == "RuntimeError: Event loop is closed")
    }

    @Test("a Swift task on another loop in asyncio.wait when the futures' loop closes gets RuntimeError")
    func foreignWaitAtClose() async throws {
        // wait() runs as a task on the futures' loop: the request to make it
        // is what reaches the loop too late.
        let outcome = try await foreignAwaitOutcomeAtClose { loop in
            let f = loop.createFuture(of: Int.self)
            return { _ = try await wait([f]) }
        }
        #expect(outcome == "RuntimeError: Event loop is closed")
    }

    @Test("a body whose foreign await ends while its loop stops is unwound by close, not lost")
    func foreignResumptionAtClose() async throws {
        let after = try await onThread { () throws -> (tokens: Int, bodies: Int, outcome: String) in
            let count = TokenCount()
            let loop = try EventLoop()
            let outcome = Shared("still suspended")
            let resumption = Shared<UnsafeContinuation<Void, Never>?>(nil)
            do {
                let token = Token(count)
                try loop.createTask { () async throws -> Int in
                    _ = token
                    await withUnsafeContinuation { resumption.value = $0 }  // not a loop await
                    do {
                        try await sleep(0)
                        outcome.value = "slept"
                    } catch {
                        outcome.value = "\(error)"
                    }
                    return 0
                }
            }
            // After the task's first step, in the loop's last iteration: the
            // resumption reaches the loop after its last look at what other
            // threads sent it.
            try loop.callSoon {
                loop.stop()
                onThreadJoined { resumption.value!.resume() }
            }
            try loop.runForever()
            try loop.close()
            return (count.alive, loop.core.liveBodies, outcome.value)
        }
        #expect(after.outcome == "GeneratorExit")
        #expect(after.bodies == 0)
        #expect(after.tokens == 0)
    }
}
