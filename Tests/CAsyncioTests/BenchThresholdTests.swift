// The allocation gates of Benchmarks/Thresholds/allocs.json, checked on the
// bench's own workloads (SwiftNIO's habit: allocation counts are
// deterministic where time is not, so they may fail a build).

import CAsyncioBench
import Foundation
import Testing

/// Every workload the bench registers, by name.
private let registeredWorkloads: [String] = {
    var count = 0
    guard let table = cab_workloads(&count) else { return [] }
    return (0..<count).map { String(cString: table[$0].name) }
}()

/// Benchmarks/Thresholds/allocs.json: the most allocations per op each workload may make.
private func allocationThresholds() throws -> [String: Double] {
    let url = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Benchmarks/Thresholds/allocs.json")
    let data = try Data(contentsOf: url)
    return try JSONDecoder().decode([String: Double].self, from: data)
}

@Suite("Bench allocation thresholds")
struct BenchThresholdTests {

    @Test("every registered workload has an allocation threshold")
    func everyWorkloadHasAThreshold() throws {
        let thresholds = try allocationThresholds()
        #expect(!registeredWorkloads.isEmpty)
        for name in registeredWorkloads {
            #expect(thresholds[name] != nil, "\(name) has no entry in allocs.json")
        }
    }

    @Test("a workload stays within its allocation threshold in steady state", arguments: registeredWorkloads)
    func workloadWithinThreshold(_ name: String) throws {
        let thresholds = try allocationThresholds()
        let limit = try #require(thresholds[name])
        let workload = try #require(cab_workload_find(name))
        var result = cab_result()
        // Small N keeps the suite fast; the workloads warm up before measuring,
        // so the count is the steady-state one.
        let n: UInt64 = name == "timers" ? 20_000 : 50_000
        let rc = workload.pointee.run(n, &result)
        let message = withUnsafeBytes(of: &result.error) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #expect(rc == 0, "\(name) failed: \(message)")
        #expect(cab_allocs_per_op(&result) <= limit,
                "\(name): \(cab_allocs_per_op(&result)) allocations per op, threshold \(limit)")
    }
}
