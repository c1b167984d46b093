// Work handed to a loop from another thread (call_soon_threadsafe): an
// await that a Swift task off the loop's thread hands over, and what it
// gets when the loop refuses the hand-over (or, on its own thread, the
// done callback the await needs).

@testable import Asyncio
import AsyncioTestSupport
import CAsyncio
import Testing

/// An await run without a hop into it (whose scheduling would allocate).
private typealias Attempt = nonisolated(nonsending) @Sendable () async throws -> Void

/// What a Swift task on another loop's thread gets from `attempt`, which
/// awaits something of `target` (a loop that never runs), when the next
/// core allocation of that thread fails: the await's hand-over to `target`
/// is the first thing that allocates, so `target` refuses it.
private func foreignAwaitOutcomeWithoutMemory(_ make: (EventLoop) throws -> Attempt) async throws -> String {
    let target = try EventLoop()
    let attempt = try make(target)
    let outcome = Shared<String?>(nil)
    try await onThread {
        let other = try EventLoop()
        try other.callSoon {
            Task(executorPreference: other) {
                defer { other.stop() }
                ats_fail_core_allocations(1)
                do {
                    try await attempt()
                    outcome.value = "returned"
                } catch {
                    outcome.value = "\(error)"
                }
            }
        }
        // Should the hand-over be taken instead, the await would wait for
        // good on `target`: closing it then answers "Event loop is closed".
        let watchdog = try other.callLater(10) { other.stop() }
        try other.runForever()
        watchdog.cancel()
        try other.close()
    }
    try target.close()
    let deadline = ContinuousClock.now + .seconds(10)
    while outcome.value == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(1)) }
    return outcome.value ?? "no answer"
}

@Suite("Hand-overs to a loop")
struct HandOverTests {
    @Test("an await whose making the loop refuses for want of memory throws MemoryError, not \"Event loop is closed\"")
    func refusedMakingThrowsMemoryError() async throws {
        // wait() from another thread hands the making of its task to the
        // futures' loop (Await.onLoop, a ThreadsafeCall).
        let outcome = try await foreignAwaitOutcomeWithoutMemory { target in
            let f = target.createFuture(of: Int.self)
            return { _ = try await wait([f]) }
        }
        #expect(outcome == "MemoryError")
    }

    @Test("an await whose callback the loop refuses to arm for want of memory throws MemoryError, not \"Event loop is closed\"")
    func refusedArmingThrowsMemoryError() async throws {
        // A future's value from another thread hands the arming of its done
        // callback to the future's loop (Await.viaCallback).
        let outcome = try await foreignAwaitOutcomeWithoutMemory { target in
            let f = target.createFuture(of: Int.self)
            return { _ = try await f.value }
        }
        #expect(outcome == "MemoryError")
    }

    @Test("an await whose done callback the future has no memory for throws MemoryError, not \"Event loop is closed\"")
    func refusedCallbackThrowsMemoryError() async throws {
        let loop = try EventLoop()
        let f = loop.createFuture(of: Int.self)
        // The first callback is kept in the future itself: the await's is
        // the second, which needs the core to allocate a list.
        f.addDoneCallback { _ in }
        // Awaited from a plain Swift task while the loop is idle, the done
        // callback is added on the awaiting thread; its next core allocation
        // (its freelists emptied, so the list is not recycled) fails.
        let outcome = await Task.detached { () -> String in
            ca_freelists_clear()
            ats_fail_core_allocations(1)
            defer { ats_fail_core_allocations(0) }
            do {
                _ = try await f.value
                return "returned"
            } catch {
                return "\(error)"
            }
        }.value
        #expect(outcome == "MemoryError")
        try loop.close()
    }

    @Test("a future awaited from another thread whose done callback the loop has no memory to schedule throws MemoryError, not \"Event loop is closed\"")
    func droppedDoneCallbackThrowsMemoryError() async throws {
        let error = try await onThread { () throws -> String in
            let loop = try EventLoop()
            defer { try? loop.close() }
            let f = loop.createFuture(of: Int.self)
            let (outcome, setting, _) = try awaitedFromAnotherThread(on: loop, { try await f.value }) {
                // Done on the loop's thread, the future schedules its
                // callbacks: the handle of the waiter's is the first core
                // allocation (freelists emptied), and fails, which
                // set_result reports too.
                ca_freelists_clear()
                ats_fail_core_allocations(1)
                defer { ats_fail_core_allocations(0) }
                return describe(Result { try f.setResult(1) })
            }
            #expect(setting == "MemoryError")
            return describe(outcome)
        }
        #expect(error == "MemoryError")
    }

    @Test("a stream read awaited from another thread whose wake-up the loop has no memory to schedule throws MemoryError, not \"Event loop is closed\"")
    func droppedReadWakeUpThrowsMemoryError() async throws {
        let error = try await onThread { () throws -> String in
            try withConnectedPair(.epoll) { loop, conn, peer in
                // A first read gives the reader its buffer, so that feeding it
                // allocates nothing before the waiter's wake-up is scheduled.
                try peer.write([0])
                _ = try loop.runUntilComplete { try await conn.read(maxBytes: 1) }
                let (outcome, _, _) = try awaitedFromAnotherThread(on: loop, { try await conn.read(maxBytes: 5) }) {
                    ca_freelists_clear()
                    ats_fail_core_allocations(1)
                    defer { ats_fail_core_allocations(0) }
                    _ = "hello".withCString { ca_stream_reader_feed_data(conn.unsafeRawReader, $0, 5) }
                }
                return describe(outcome)
            }
        }
        #expect(error == "MemoryError")
    }
}

/// What an await came to: its error, or "returned" and its value.
private func describe<T>(_ outcome: Result<T, any Error>) -> String {
    switch outcome {
    case .success(let value): return "returned \(value)"
    case .failure(let error): return "\(error)"
    }
}
