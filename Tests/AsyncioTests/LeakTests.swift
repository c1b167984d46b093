// 100,000 Swift-bodied tasks gathered, several times over: every Swift task
// ends, every wrapper and core object is freed, memory stays at baseline.

@testable import Asyncio
import CAsyncio
import CAsyncioShim
import AsyncioTestSupport
import Glibc
import Testing

@Suite("Leaks")
struct LeakTests {
    @Test("100,000 Swift tasks gathered, four rounds: no object outlives its round, memory back to baseline")
    func hundredThousandTasks() async throws {
        let report = try await onThread { () throws -> (net: Int64, rssGrowth: Int, live: Int, wrappersLeft: Int) in
            let loop = try EventLoop(virtualClock: true)
            defer { try? loop.close() }
            let n = 100_000
            // Safety of `@unchecked Sendable`: written on the loop thread, read
            // on the same thread after the loop stopped.
            final class WeakBox: @unchecked Sendable {
                weak var task: LoopTask<Int>?
            }
            let sample = WeakBox()
            func round() throws {
                let sum = try loop.runUntilComplete { () async throws -> Int in
                    var tasks: [Future<Int>] = []
                    tasks.reserveCapacity(n)
                    for i in 0..<n {
                        tasks.append(try createTask { () async throws -> Int in
                            try await sleep(0)
                            return i
                        })
                    }
                    return try await gather(tasks).reduce(0, +)
                }
                #expect(sum == n * (n - 1) / 2)
            }
            try round()  // warm-up: freelists, the ready queue, malloc's arenas
            try loop.runUntilComplete {
                let t = try createTask { 1 }
                sample.task = t
                _ = try await t.value
            }
            ca_freelists_clear()
            cas_freelists_clear()
            let before = ca_alloc_stats_get()
            // Memory in use, not what malloc keeps cached for reuse.
            ats_malloc_trim()
            let rssBefore = Int(ats_resident_bytes())
            for _ in 0..<3 { try round() }
            ca_freelists_clear()
            cas_freelists_clear()
            let after = ca_alloc_stats_get()
            ats_malloc_trim()
            let net = (Int64(after.allocs) - Int64(before.allocs)) - (Int64(after.frees) - Int64(before.frees))
            return (net, Int(ats_resident_bytes()) - rssBefore, loop.core.liveBodies, sample.task == nil ? 0 : 1)
        }
        // Every core block obtained during the three rounds went back (the
        // coroutine frames included: they are core allocations too).
        #expect(report.net == 0, "\(report.net) core blocks not freed")
        // Every Swift task finished, every wrapper was released.
        #expect(report.live == 0)
        #expect(report.wrappersLeft == 0)
        // A leak of one small object per task would be megabytes per round.
        // (Under AddressSanitizer freed memory sits in its quarantine, and
        // LeakSanitizer checks for leaks instead.)
        if !ats_address_sanitizer() {
            #expect(report.rssGrowth < 8 << 20, "RSS grew by \(report.rssGrowth) bytes over 300,000 tasks")
        }
    }
}
