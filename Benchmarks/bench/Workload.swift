import CAsyncioBench
import SwiftBench

/// A workload of the C bench library (`casyncio_bench.h`'s registry).
struct Workload: Sendable {
    let name: String
    /// What one operation is ("callback", "task", ...).
    let unit: String
    /// N as workloads.md defines it.
    let defaultN: UInt64
    private let entry: cab_run_fn

    /// Every workload, in workloads.md order.
    static let all: [Workload] = {
        var count = 0
        guard let table = cab_workloads(&count) else { return [] }
        return (0..<count).map { Workload(table[$0]) }
    }()

    static func named(_ name: String) -> Workload? {
        all.first { $0.name == name }
    }

    private init(_ w: cab_workload) {
        name = String(cString: w.name)
        unit = String(cString: w.unit)
        defaultN = w.default_n
        entry = w.run
    }

    /// Runs the workload `repetitions` times with `n` operations each.
    func measure(n: UInt64, repetitions: Int) throws(WorkloadFailure) -> Summary {
        var runs: [cab_result] = []
        for _ in 0..<repetitions {
            var result = cab_result()
            if entry(n, &result) != 0 {
                throw WorkloadFailure(workload: name, message: cString(of: result.error))
            }
            runs.append(result)
        }
        return Summary(workload: self, impl: .c, runs: runs)
    }
}

extension Workload {
    /// Runs the Swift-layer version `repetitions` times with `n` operations each.
    func measureSwift(n: UInt64, repetitions: Int) throws(WorkloadFailure) -> Summary {
        guard let swift = SwiftWorkload.named(name) else {
            throw WorkloadFailure(workload: name, message: "no Swift-layer version of this workload")
        }
        var runs: [cab_result] = []
        for _ in 0..<repetitions { runs.append(try swift.run(n)) }
        return Summary(workload: self, impl: .swift, runs: runs)
    }
}

/// The statistics of several runs of one workload.
struct Summary {
    let workload: Workload
    let impl: Implementation
    let n: UInt64
    let repetitions: Int
    let medianNsPerOp: Double
    let minNsPerOp: Double
    let maxNsPerOp: Double
    /// The largest of the runs: allocation counts are deterministic, so any
    /// run that allocates is worth showing.
    let allocsPerOp: Double
    /// All malloc-family calls of the measuring thread per op (Swift runtime
    /// included; the largest of the runs), nil when the process cannot count them.
    let mallocsPerOp: Double?
    let backend: String

    init(workload: Workload, impl: Implementation, runs: [cab_result]) {
        let perOp = runs.map { Double($0.wall_ns) / Double($0.n) }
        self.workload = workload
        self.impl = impl
        n = runs[0].n
        repetitions = runs.count
        medianNsPerOp = median(perOp)!
        minNsPerOp = perOp.min()!
        maxNsPerOp = perOp.max()!
        allocsPerOp = runs.map { Double($0.allocs) / Double($0.n) }.max()!
        mallocsPerOp = runs[0].mallocs_counted ? runs.map { Double($0.mallocs) / Double($0.n) }.max()! : nil
        backend = cString(of: runs[0].backend)
    }
}

/// The NUL-terminated string in a fixed C char array (imported as a tuple).
func cString<T>(of array: T) -> String {
    withUnsafeBytes(of: array) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}
