// `peers`: SwiftNIO's event loop and plain Swift Concurrency running the micro
// workloads of workloads.md, for `bench compare`. The protocol is the one
// Benchmarks/peers/asyncio_peers.py speaks:
//
//   peers --impl nio|concurrency --workload NAME|all [--variant NAME|default|all]
//         [--runs R] [--n N] [--json] [--list]
//
// One warm-up, then R measured runs in this process; with --json one object
// per line of stdout for each workload and variant run (`--variant default`:
// the default way only, which is all `bench compare` reports), progress on
// stderr. Exit 0 done, 1 a run came out wrong, 2 bad usage, 3 the workload is
// not available for that implementation.

import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Exit statuses of the peer protocol.
enum Status {
    static let failed: Int32 = 1
    static let usage: Int32 = 2
    static let unavailable: Int32 = 3
}

enum Impl: String, ExpressibleByArgument, CaseIterable, Sendable {
    case nio
    case concurrency
}

/// One way of running a workload: the default (variant nil) or a named
/// variant, each printed as its own JSON line.
struct Variant: Sendable {
    let workload: String
    /// nil for the default way.
    let variant: String?
    /// The API measured, for the reader of the table.
    let api: String
    let defaultN: Int
    /// Runs `n` operations; returns the nanoseconds the measured part took.
    let run: @Sendable (Int) throws(WorkloadError) -> UInt64
    /// For a latency workload (unit "us"): runs `n` samples and returns each
    /// one's latency in nanoseconds; `run` is then unused.
    let latency: (@Sendable (Int) throws(WorkloadError) -> [UInt64])?

    init(workload: String, variant: String?, api: String, defaultN: Int,
         run: @escaping @Sendable (Int) throws(WorkloadError) -> UInt64) {
        self.workload = workload
        self.variant = variant
        self.api = api
        self.defaultN = defaultN
        self.run = run
        self.latency = nil
    }

    init(workload: String, variant: String?, api: String, defaultN: Int,
         latency: @escaping @Sendable (Int) throws(WorkloadError) -> [UInt64]) {
        self.workload = workload
        self.variant = variant
        self.api = api
        self.defaultN = defaultN
        self.run = { _ throws(WorkloadError) in throw WorkloadError("a latency workload has no throughput run") }
        self.latency = latency
    }
}

/// A run that did not do the work it had to: a lost callback, a wrong sum.
struct WorkloadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@main
struct Peers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peers",
        abstract: "SwiftNIO and Swift Concurrency running the bench workloads (workloads.md)."
    )

    @Option(help: "nio or concurrency")
    var impl: Impl

    @Option(help: "A workload name, or all.")
    var workload: String = "all"

    @Option(help: "Which ways of each workload to run: all, default (the one bench compare reports), or a variant's name.")
    var variant: String = "all"

    @Option(help: "Measured runs after one warm-up.")
    var runs: Int = 5

    @Option(help: "Operations per run (default: workloads.md's N).")
    var n: Int?

    @Flag(help: "One JSON object per workload (and variant) run, per line.")
    var json = false

    @Flag(help: "Print the workloads this implementation offers.")
    var list = false

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        if let n, n < 1 { throw ValidationError("--n must be at least 1") }
        let known = Self.allWorkloads
        guard workload == "all" || known.contains(workload) else {
            throw ValidationError("unknown workload '\(workload)'; one of: all, \(known.joined(separator: ", "))")
        }
        let variants = Self.variantNames(of: impl)
        guard variant == "all" || variant == "default" || variants.contains(variant) else {
            throw ValidationError("unknown variant '\(variant)' for \(impl.rawValue); one of: all, default"
                                  + variants.map { ", \($0)" }.joined())
        }
    }

    /// The named (non-default) variants `impl` offers, in order, each once.
    static func variantNames(of impl: Impl) -> [String] {
        var names: [String] = []
        for case let name? in variants(of: impl).map(\.variant) where !names.contains(name) { names.append(name) }
        return names
    }

    /// Every workload name either implementation knows, in workloads.md order.
    static let allWorkloads = [
        "future_callback", "call_soon", "task_spawn", "task_spawn_eager", "sleep0", "ping_pong", "timers",
        "wakeup_latency",
    ]

    static func variants(of impl: Impl) -> [Variant] {
        switch impl {
        case .nio: return NIOWorkloads.variants
        case .concurrency: return ConcurrencyWorkloads.variants
        }
    }

    mutating func run() throws {
        let offered = Self.variants(of: impl)
        if list {
            var seen: [String] = []
            for v in offered where !seen.contains(v.workload) { seen.append(v.workload) }
            for name in seen {
                if json {
                    let names = offered.filter { $0.workload == name }.map { $0.variant ?? "default" }
                    let unit = offered.first { $0.workload == name }!.latency == nil ? "ns/op" : "us"
                    printLine(JSONObject()
                        .add("impl", impl.rawValue).add("workload", name).add("unit", unit)
                        .add("variants", names).text)
                } else {
                    printLine(name)
                }
            }
            return
        }
        let forWorkload = workload == "all" ? offered : offered.filter { $0.workload == workload }
        if workload == "all" {
            for name in Self.allWorkloads where !offered.contains(where: { $0.workload == name }) {
                printError("skipping \(name): no fair \(impl.rawValue) analogue")
            }
        }
        if forWorkload.isEmpty {
            printError("\(workload) has no fair \(impl.rawValue) analogue here; `peers --impl \(impl.rawValue) --list` tells which do")
            throw ExitCode(Status.unavailable)
        }
        let chosen = forWorkload.filter { v in
            variant == "all" || (variant == "default" ? v.variant == nil : v.variant == variant)
        }
        if chosen.isEmpty {
            printError("\(impl.rawValue) has no variant '\(variant)' of \(workload); `peers --impl \(impl.rawValue) --list --json` names each workload's variants")
            throw ExitCode(Status.unavailable)
        }
        for v in chosen {
            let summary: Summary
            do {
                summary = try measure(v)
            } catch {
                printError("\(impl.rawValue) \(v.workload)\(v.variant.map { " (\($0))" } ?? ""): \(error)")
                throw ExitCode(Status.failed)
            }
            printLine(json ? summary.json : summary.text)
        }
    }

    private func measure(_ v: Variant) throws(WorkloadError) -> Summary {
        let n = self.n ?? v.defaultN
        let label = "\(impl.rawValue) \(v.workload)\(v.variant.map { " (\($0))" } ?? "")"
        if let latency = v.latency {
            // Warm-up: a tenth of the samples, at least 100.
            _ = try latency(max(100, n / 10))
            var p50: [Double] = [], p99: [Double] = [], p999: [Double] = []
            for r in 0..<runs {
                let sorted = try latency(n).sorted()
                p50.append(percentile(sorted, 50) / 1000)
                p99.append(percentile(sorted, 99) / 1000)
                p999.append(percentile(sorted, 99.9) / 1000)
                printError("\(label): run \(r + 1)/\(runs): p50 \(round1(p50.last!)) µs, p99 \(round1(p99.last!)) µs")
            }
            return Summary(impl: impl, variant: v, n: n, runsNs: p50.map { $0 * 1000 },
                           latencyUs: (median(p50), median(p99), median(p999)))
        }
        // Warm-up: a tenth of the work, at least one batch.
        _ = try v.run(max(1000, n / 10))
        var perOp: [Double] = []
        for r in 0..<runs {
            let ns = try v.run(n)
            perOp.append(Double(ns) / Double(n))
            printError("\(label): run \(r + 1)/\(runs): \(Int(perOp.last!.rounded())) ns/op")
        }
        return Summary(impl: impl, variant: v, n: n, runsNs: perOp)
    }
}

/// Parses the arguments with the peer protocol's exit statuses (argument
/// parser's own is 64 for bad usage).
extension Peers {
    static func mainWithProtocolStatus() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                printError(fullMessage(for: error))
                terminate(Status.usage)
            }
            Self.exit(withError: error)
        }
    }

    static func main() {
        mainWithProtocolStatus()
    }
}

/// The median of a non-empty list.
func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// The nearest-rank percentile of an ascending, non-empty list.
func percentile(_ sorted: [UInt64], _ p: Double) -> Double {
    // The epsilon keeps 99.9 % of 5000 at rank 4995 despite 99.9's binary rounding.
    let rank = Int((p / 100 * Double(sorted.count) - 1e-9).rounded(.up))
    return Double(sorted[min(sorted.count - 1, max(0, rank - 1))])
}

struct Summary {
    let impl: Impl
    let variant: Variant
    let n: Int
    /// Nanoseconds per operation of each run; for a latency workload, each
    /// run's p50 in nanoseconds.
    let runsNs: [Double]
    /// Medians over the runs of p50, p99 and p99.9, in µs.
    var latencyUs: (p50: Double, p99: Double, p999: Double)?

    var sorted: [Double] { runsNs.sorted() }
    /// In the workload's unit: ns/op, or µs for a latency workload.
    var scale: Double { latencyUs == nil ? 1 : 1.0 / 1000 }
    var median: Double { peers.median(runsNs) * scale }
    var minimum: Double { sorted.first! * scale }
    var maximum: Double { sorted.last! * scale }
    var unit: String { latencyUs == nil ? "ns/op" : "us" }

    var json: String {
        var o = JSONObject().add("impl", impl.rawValue).add("workload", variant.workload)
        if let name = variant.variant { o = o.add("variant", name) }
        o = o.add("unit", unit).add("n", n)
            .add("runs_ns", runsNs.map(round1))
            .add("median", round2(median)).add("min", round2(minimum)).add("max", round2(maximum))
        if let l = latencyUs {
            o = o.add("p50_us", round2(l.p50)).add("p99_us", round2(l.p99)).add("p999_us", round2(l.p999))
        }
        return o.add("api", variant.api)
            .add("swift", Versions.swift)
            .add("impl_version", impl == .nio ? Versions.nio : Versions.swift)
            .text
    }

    var text: String {
        let name = variant.workload + (variant.variant.map { " (\($0))" } ?? "")
        var line = "\(impl.rawValue) \(name): median \(round2(median)) \(unit) (min \(round2(minimum)), max \(round2(maximum)))"
        if let l = latencyUs { line += " p99 \(round2(l.p99)) µs, p99.9 \(round2(l.p999)) µs" }
        return line + " — \(variant.api)"
    }
}

private func round1(_ x: Double) -> Double { (x * 10).rounded() / 10 }
private func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }

/// A JSON object written by hand, keys in the order added.
struct JSONObject {
    private var fields: [String] = []

    func add(_ key: String, _ value: String) -> JSONObject { adding(key, quote(value)) }
    func add(_ key: String, _ value: Int) -> JSONObject { adding(key, String(value)) }
    func add(_ key: String, _ value: Double) -> JSONObject { adding(key, String(value)) }
    func add(_ key: String, _ value: [Double]) -> JSONObject {
        adding(key, "[" + value.map { String($0) }.joined(separator: ", ") + "]")
    }
    func add(_ key: String, _ value: [String]) -> JSONObject {
        adding(key, "[" + value.map(quote).joined(separator: ", ") + "]")
    }

    var text: String { "{" + fields.joined(separator: ", ") + "}" }

    private func adding(_ key: String, _ raw: String) -> JSONObject {
        var copy = self
        copy.fields.append("\(quote(key)): \(raw)")
        return copy
    }

    private func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where scalar.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Versions for the report: the compiler's, and the swift-nio this package
/// resolved (read from its Package.resolved, which `swift build` writes).
enum Versions {
    static let swift: String = {
        #if compiler(>=6.4)
        return "6.4+"
        #elseif compiler(>=6.3.1)
        return "6.3.1"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }()

    static let nio: String = {
        // This file is Sources/peers/Peers.swift in the package.
        var path = #filePath
        for _ in 0..<3 {
            guard let slash = path.lastIndex(of: "/") else { return "unknown" }
            path = String(path[..<slash])
        }
        guard let text = readFile(path + "/Package.resolved"),
              let identity = text.range(of: "\"identity\" : \"swift-nio\""),
              let key = text[identity.upperBound...].range(of: "\"version\" : \"")
        else { return "unknown" }
        let rest = text[key.upperBound...]
        return String(rest.prefix { $0 != "\"" })
    }()

    private static func readFile(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let got = fread(&buffer, 1, buffer.count, f)
            if got == 0 { break }
            bytes += buffer[0..<got]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension StringProtocol {
    fileprivate func range(of needle: String) -> Range<Index>? {
        guard !needle.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) {
                return i..<index(i, offsetBy: needle.count)
            }
            i = index(after: i)
        }
        return nil
    }
}

/// Ends the process (the global exit(), which ParsableCommand's own `exit` hides).
func terminate(_ status: Int32) -> Never {
    exit(status)
}

func printLine(_ s: String) {
    print(s)
    fflush(nil)
}

func printError(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { bytes in
        var rest = UnsafeRawBufferPointer(bytes)
        while !rest.isEmpty {
            let wrote = write(2, rest.baseAddress, rest.count)
            if wrote <= 0 { return }
            rest = UnsafeRawBufferPointer(rebasing: rest[wrote...])
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
@inline(__always)
func nowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// workloads.md's LCG for `timers`: delays in whole microseconds in [0, 10 ms),
/// returned in nanoseconds.
func lcgDelaysNs(_ n: Int) -> [Int64] {
    var x: UInt64 = 1
    var out: [Int64] = []
    out.reserveCapacity(n)
    for _ in 0..<n {
        x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        out.append(Int64((x >> 33) % 10_000) * 1_000)
    }
    return out
}

/// The batches of 1000 that make up `n` operations.
func batchSizes(_ n: Int) -> [Int] {
    stride(from: 0, to: n, by: 1000).map { min(1000, n - $0) }
}
