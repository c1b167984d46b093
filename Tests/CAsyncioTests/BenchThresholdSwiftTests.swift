// The allocation gates of Benchmarks/Thresholds/swift.json, checked on the
// bench's Swift-layer workloads: the core's allocations per op, and every
// malloc of the measuring thread per op (the Swift runtime's included,
// counted by CBenchMalloc's wrappers).

import CAsyncioBench
import CBenchMalloc
import Foundation
import SwiftBench
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One workload's limits: core allocations and mallocs per op. A debug
/// build of the workloads mallocs more (closure contexts the optimizer keeps
/// on the stack in release), so it has its own malloc limit.
private struct SwiftThreshold: Decodable {
    let allocs: Double
    let mallocs: Double
    let mallocs_debug: Double

    var mallocsForThisBuild: Double {
        #if DEBUG
        mallocs_debug
        #else
        mallocs
        #endif
    }
}

/// Benchmarks/Thresholds/swift.json.
private func swiftThresholds() throws -> [String: SwiftThreshold] {
    let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Benchmarks/Thresholds/swift.json")
    return try JSONDecoder().decode([String: SwiftThreshold].self, from: Data(contentsOf: url))
}

/// Runs a Swift-layer workload with a small N (it warms up before measuring,
/// so the counts are the steady-state ones).
private func runSwiftWorkload(_ name: String) throws -> cab_result {
    let workload = try #require(SwiftWorkload.named(name))
    do {
        return try workload.run(name == "timers" ? 10_000 : 20_000)
    } catch {
        Issue.record("\(name) failed: \(error.message)")
        throw error
    }
}

/// The allocation mallocCounterCounts makes, in a global so that it escapes.
nonisolated(unsafe) private var keptAllocation: UnsafeMutableRawPointer?

@Suite("Bench allocation thresholds, Swift layer")
struct BenchThresholdSwiftTests {

    @Test("every Swift-layer workload has a threshold")
    func everyWorkloadHasAThreshold() throws {
        let thresholds = try swiftThresholds()
        #expect(!SwiftWorkload.all.isEmpty)
        for w in SwiftWorkload.all {
            #expect(thresholds[w.name] != nil, "\(w.name) has no entry in swift.json")
        }
    }

    @Test("a Swift-layer workload stays within its core allocation threshold",
          arguments: SwiftWorkload.all.map(\.name))
    func coreAllocationsWithinThreshold(_ name: String) throws {
        let limit = try #require(try swiftThresholds()[name]).allocs
        var result = try runSwiftWorkload(name)
        #expect(cab_allocs_per_op(&result) <= limit,
                "\(name): \(cab_allocs_per_op(&result)) core allocations per op, threshold \(limit)")
    }

    @Test("a Swift-layer workload stays within its malloc threshold",
          .enabled(if: cab_malloc_counting(), "malloc is not counted here (a sanitizer owns the allocator)"),
          arguments: SwiftWorkload.all.map(\.name))
    func mallocsWithinThreshold(_ name: String) throws {
        let limit = try #require(try swiftThresholds()[name]).mallocsForThisBuild
        let result = try runSwiftWorkload(name)
        #expect(result.mallocs_counted)
        let perOp = Double(result.mallocs) / Double(result.n)
        #expect(perOp <= limit, "\(name): \(perOp) mallocs per op, threshold \(limit)")
    }

    // The malloc thresholds mean something only if the counter counts: a
    // counter stuck at 0 would pass every one of them.

    @Test("the malloc counter counts each malloc of this thread",
          .enabled(if: cab_malloc_counting(), "malloc is not counted here (a sanitizer owns the allocator)"))
    func mallocCounterCounts() {
        let before = cab_malloc_count()
        keptAllocation = malloc(48)  // kept where the counter call could read it: no optimizer drops it
        let after = cab_malloc_count()
        free(keptAllocation)
        keptAllocation = nil
        #expect(after - before == 1)
    }

    @Test("the malloc counter leaves out another thread's mallocs",
          .enabled(if: cab_malloc_counting(), "malloc is not counted here (a sanitizer owns the allocator)"))
    func mallocCounterIsPerThread() throws {
        let before = cab_malloc_count()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { _ in
            for _ in 0..<1000 { free(malloc(48)) }
            return nil
        }, nil)
        try #require(rc == 0)
        pthread_join(thread, nil)
        #expect(cab_malloc_count() - before < 1000)
    }
}
