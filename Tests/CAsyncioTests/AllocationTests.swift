// No allocation in steady state: after a 10,000-operation warm-up, 10,000
// more operations allocate nothing (ca_alloc_stats_get deltas; the workloads
// of ../shared/reference/workloads.md, issue 2 "Done when").

import CAsyncio
import CAsyncioTestSupport
import Testing

private let warmUp = 10_000
private let measured = 10_000
private let batch = 1_000

private func allocations() -> UInt64 { ca_alloc_stats_get().allocs }

@Suite("Allocations")
struct AllocationTests {

    /// future_callback: create a future, add a done callback, set_result,
    /// run the loop until the callbacks ran; in batches of 1000.
    private func futureCallbackBatches(_ t: TestLoop, _ batches: Int, _ counter: UnsafeMutablePointer<Int64>,
                                       _ futures: UnsafeMutableBufferPointer<FuturePtr?>) {
        for _ in 0..<batches {
            for i in 0..<batch {
                let f = ca_future_new(t.loop)
                futures[i] = f
                expectOK(ca_future_add_done_callback(f, ts_count_done, counter, nil, nil))
                expectOK(ca_future_set_result(f, ca_int(Int64(i))))
            }
            t.runOnce()
            for i in 0..<batch {
                decref(futures[i])
                futures[i] = nil
            }
        }
    }

    @Test("future_callback allocates nothing per operation in steady state")
    func futureCallbackSteadyState() throws {
        try withLoop { t in
            let counter = t.buffer(Int64.self)
            let futures = UnsafeMutableBufferPointer<FuturePtr?>.allocate(capacity: batch)
            defer { futures.deallocate() }
            futures.initialize(repeating: nil)
            futureCallbackBatches(t, warmUp / batch, counter, futures)
            let before = allocations()
            futureCallbackBatches(t, measured / batch, counter, futures)
            let delta = allocations() - before
            #expect(counter.pointee == Int64(warmUp + measured))
            #expect(delta == 0, "\(delta) allocations for \(measured) futures")
        }
    }

    private func callSoonBatches(_ t: TestLoop, _ batches: Int, _ counter: UnsafeMutablePointer<Int64>) {
        for _ in 0..<batches {
            for _ in 0..<batch {
                expectOK(ca_loop_call_soon(t.loop, ts_count_call, counter, nil, nil, nil))
            }
            t.runOnce()
        }
    }

    @Test("call_soon allocates nothing per callback in steady state")
    func callSoonSteadyState() throws {
        try withLoop { t in
            let counter = t.buffer(Int64.self)
            callSoonBatches(t, warmUp / batch, counter)
            let before = allocations()
            callSoonBatches(t, measured / batch, counter)
            let delta = allocations() - before
            #expect(counter.pointee == Int64(warmUp + measured))
            #expect(delta == 0, "\(delta) allocations for \(measured) callbacks")
        }
    }

    private func sleepZeroAllocations(inline: Bool) throws -> Int64 {
        try withLoop { t in
            let allocs = t.buffer(Int64.self)
            allocs.pointee = -1
            let task = try t.task(ts_coro_sleep0_measure(Int32(warmUp), Int32(measured), inline, allocs))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            #expect(outcome(task) == .int(Int64(warmUp + measured)))
            return allocs.pointee
        }
    }

    @Test("sleep(0) in a task (CA_AWAIT_SLEEP) allocates nothing per iteration in steady state")
    func sleepZeroSteadyState() throws {
        let allocs = try sleepZeroAllocations(inline: true)
        #expect(allocs == 0, "\(allocs) allocations for \(measured) sleep(0)")
    }

    @Test("awaiting the ca_sleep(0) coroutine in a task allocates nothing per iteration in steady state")
    func sleepZeroCoroutineSteadyState() throws {
        let allocs = try sleepZeroAllocations(inline: false)
        #expect(allocs == 0, "\(allocs) allocations for \(measured) awaits of ca_sleep(0)")
    }

    @Test("spawning a task whose C coroutine returns at once, and awaiting it, allocates nothing in steady state")
    func taskSpawnSteadyState() throws {
        try withLoop { t in
            let allocs = t.buffer(Int64.self)
            let checksum = t.buffer(Int64.self)
            allocs.pointee = -1
            let task = try t.task(ts_coro_spawn_measure(t.loop, Int32(warmUp), Int32(measured), allocs, checksum))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            let n = Int64(warmUp + measured)
            #expect(checksum.pointee == n * (n - 1) / 2)
            #expect(allocs.pointee == 0, "\(allocs.pointee) allocations for \(measured) spawned tasks")
        }
    }

    @Test("a thread that only frees pooled blocks returns them to the allocator when it exits")
    func threadExitReturnsFreedBlocks() {
        // A Swift wrapper's last reference often goes on some thread that
        // made nothing itself; its lists were never handed back, and the
        // blocks they kept were lost with the thread.
        #expect(ts_exiting_thread_returns_what_it_freed() == 1)
    }

    @Test("a pooled block freed on a thread after its freelists' exit hook ran returns to the allocator")
    func blockFreedAfterExitHookReturns() {
        // A later thread-exit destructor (a Swift thread-local's, say) may
        // drop the last reference: the lists it would join are never
        // handed back again.
        #expect(ts_block_freed_after_thread_exit_is_returned(ts_core_block_alloc, ts_core_block_free) == 1)
    }
}
