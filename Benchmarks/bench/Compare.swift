// The whole suite (`bench` with no arguments) and `bench compare`: every
// micro workload on the C core, the Swift layer and the peers, interleaved
// round by round in one invocation (one run of each implementation per
// round, so the machine's noise hits all alike), then one table with the
// ratios and the issue's bars, and the latency workloads.

import ArgumentParser
import CAsyncioBench
import SwiftBench
#if canImport(Glibc)
import Glibc
#endif

/// The options the suite and `bench compare` share.
struct SuiteOptions: ParsableArguments {
    static let defaultRounds = 5

    @Option(help: "Rounds: one run of every implementation per workload per round; medians over rounds.")
    var rounds: Int = defaultRounds

    @Option(help: "Peers to include, comma-separated (default: every one available: \(PeerName.all.joined(separator: ", "))).")
    var peers: String?

    @Flag(help: "Measure only the C core and the Swift layer.")
    var noPeers = false

    @Flag(help: "Skip the latency workloads (wakeup_latency, timer_lateness).")
    var noLatency = false

    @Option(help: "wakeup_latency samples per mode.")
    var samples: UInt64 = 20_000

    @Flag(help: "Print one JSON object per result line instead of the tables.")
    var json = false

    @Flag(help: "Show a progress line on stderr even when it is not a terminal.")
    var progress = false

    func validate() throws {
        if rounds < 1 { throw ValidationError("--rounds must be at least 1") }
        if samples < 1 { throw ValidationError("--samples must be at least 1") }
        if peers != nil && noPeers { throw ValidationError("--peers and --no-peers exclude each other") }
        _ = try wantedPeers
    }

    /// The peers `--peers` names, nil for every one.
    var wantedPeers: [String]? {
        get throws {
            guard let peers else { return nil }
            do {
                return try PeerName.parseList(peers)
            } catch {
                throw ValidationError(error.description)
            }
        }
    }
}

/// `bench compare`: the suite with the peers, setting them up first when they are missing.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runs the micro workloads on the C core, the Swift layer and the peers, interleaved, and prints the ratios.",
        discussion: """
            Peers: CPython asyncio and uvloop (Benchmarks/peers/asyncio_peers.py), SwiftNIO and Swift \
            Concurrency (Benchmarks/peers/swift). When they are missing, scripts/peers-setup runs first \
            (--no-setup skips it). Bars (issue 7): the C core ≥ 10× every peer, the Swift layer ≥ 2×, \
            wakeup_latency p99 ≤ 20 µs on an idle loop.
            """
    )

    @Argument(help: "Micro workloads to compare (default: all of them).")
    var workloads: [String] = []

    @OptionGroup var options: SuiteOptions

    @Flag(help: "Do not run scripts/peers-setup when the peers are missing.")
    var noSetup = false

    func validate() throws {
        let unknown = workloads.filter { Workload.named($0) == nil }
        if !unknown.isEmpty {
            throw ValidationError("unknown micro workload \(unknown.map { "'\($0)'" }.joined(separator: ", ")); "
                                  + "valid: \(Workload.all.map(\.name).joined(separator: ", "))")
        }
    }

    func run() throws {
        try runComparison(options, workloads: workloads, setUpPeers: !noSetup)
    }
}

/// One implementation's figures for one workload, over the rounds.
struct MicroRow {
    let workload: String
    /// "c", "swift", or a peer's name.
    let impl: String
    var runsNs: [Double] = []
    /// Core allocations per op (ours only; the largest over the rounds).
    var allocsPerOp: Double?
    /// Every malloc of the measuring thread per op (ours, when counted).
    var mallocsPerOp: Double?
    var n: UInt64?
    /// A peer's impl_version (Python's or uvloop's, Swift's or SwiftNIO's).
    var version: String?

    var isOurs: Bool { impl == Implementation.c.rawValue || impl == Implementation.swift.rawValue }
    var median: Double { SwiftBench.median(runsNs)! }
    var min: Double { runsNs.min()! }
    var max: Double { runsNs.max()! }

    /// The issue's bar for this implementation: how many times faster than every peer.
    var targetRatio: Double? {
        impl == Implementation.c.rawValue ? 10 : impl == Implementation.swift.rawValue ? 2 : nil
    }
}

/// Runs the suite: `setUpPeers` runs scripts/peers-setup when peers are missing
/// (bench compare); otherwise a missing peer is a note with that command.
func runComparison(_ options: SuiteOptions, workloads: [String] = [], setUpPeers: Bool) throws {
    let names = workloads.isEmpty ? Workload.all.map(\.name) : workloads
    let wantedPeers = try options.wantedPeers
    var peerSet = PeerSet()
    if !options.noPeers {
        let root = PeerSet.repositoryRoot()
        peerSet = PeerSet.discover(root: root, wanted: wantedPeers)
        if peerSet.needsSetup, let root {
            if setUpPeers {
                _ = runPeersSetup(root: root)
                peerSet = PeerSet.discover(root: root, wanted: wantedPeers)
            } else {
                peerSet.notes.append("the peers are not set up: run scripts/peers-setup, or `swift run -c release bench compare`, which runs it")
            }
        }
    }
    for note in peerSet.notes { printError("note: \(note)") }
    let peers = peerSet.available

    // The plan: per workload, `rounds` rounds of one run of each implementation.
    var steps = 0
    for name in names {
        let impls = 1 + (SwiftWorkload.named(name) != nil ? 1 : 0) + peers.filter { $0.workloads.contains(name) }.count
        steps += impls * options.rounds
    }
    let latencyPeers = options.noLatency ? [] : peers.filter { $0.workloads.contains(LatencyWorkload.wakeupLatency.rawValue) }
    if !options.noLatency { steps += 3 + latencyPeers.count }
    var progress = Progress(total: steps, forced: options.progress)

    var rows: [MicroRow] = []
    var failed = false
    for name in names {
        let workload = Workload.named(name)!
        var ours: [Implementation: MicroRow] = [:]
        var theirs: [String: MicroRow] = [:]
        var dropped: Set<String> = []
        let ourImpls: [Implementation] = SwiftWorkload.named(name) != nil ? [.c, .swift] : [.c]
        let workloadPeers = peers.filter { $0.workloads.contains(name) }
        for round in 1...options.rounds {
            for impl in ourImpls where !dropped.contains(impl.rawValue) {
                progress.step("\(name) \(impl.rawValue) (round \(round)/\(options.rounds))")
                do {
                    let s = impl == .c
                        ? try workload.measure(n: workload.defaultN, repetitions: 1)
                        : try workload.measureSwift(n: workload.defaultN, repetitions: 1)
                    var row = ours[impl] ?? MicroRow(workload: name, impl: impl.rawValue)
                    row.runsNs.append(s.medianNsPerOp)
                    row.allocsPerOp = Swift.max(row.allocsPerOp ?? 0, s.allocsPerOp)
                    if let m = s.mallocsPerOp { row.mallocsPerOp = Swift.max(row.mallocsPerOp ?? 0, m) }
                    row.n = s.n
                    ours[impl] = row
                } catch {
                    progress.clear()
                    printError("error: \(name) (\(impl.rawValue)) failed: \(error.message)")
                    dropped.insert(impl.rawValue)
                    failed = true
                }
            }
            for peer in workloadPeers where !dropped.contains(peer.name) {
                progress.step("\(name) \(peer.name) (round \(round)/\(options.rounds))")
                switch runPeer(peer, workload: name, runs: 1) {
                case .success(let line):
                    var row = theirs[peer.name] ?? MicroRow(workload: name, impl: peer.name)
                    row.runsNs.append(contentsOf: line.runs_ns)
                    row.version = line.impl_version
                    theirs[peer.name] = row
                case .failure(let failure):
                    progress.clear()
                    printError("note: \(name): \(failure.message); \(peer.name) left out of this workload")
                    dropped.insert(peer.name)
                }
            }
        }
        let ordered = ourImpls.compactMap { ours[$0] } + workloadPeers.compactMap { theirs[$0.name] }
        if options.json { ordered.forEach { Report.printCompareJSON($0, among: ordered) } }
        rows += ordered
    }

    var latency: [LatencySummary] = []
    if !options.noLatency {
        for impl in [Implementation.c, .swift] {
            progress.step("wakeup_latency \(impl.rawValue) (\(options.samples) samples × idle, busy)")
            do {
                let r = try measureLatency(.wakeupLatency, impl: impl, options: LatencyOptions(samples: options.samples))
                if options.json { r.forEach { $0.printJSON() } }
                latency += r
            } catch {
                progress.clear()
                printError("error: wakeup_latency (\(impl.rawValue)) failed: \(error.message)")
                failed = true
            }
        }
        progress.step("timer_lateness c (50 echo connections, 3 s)")
        do {
            let r = try measureLatency(.timerLateness, impl: .c, options: LatencyOptions())
            if options.json { r.forEach { $0.printJSON() } }
            latency += r
        } catch {
            progress.clear()
            printError("error: timer_lateness (c) failed: \(error.message)")
            failed = true
        }
        for peer in latencyPeers {
            progress.step("wakeup_latency \(peer.name)")
            switch runPeerLatency(peer) {
            case .success(let r):
                if options.json { r.printJSON() }
                latency.append(r)
            case .failure(let failure):
                progress.clear()
                printError("note: \(failure.message)")
            }
        }
    }
    progress.clear()

    if !options.json {
        Report.printCompareTable(rows, rounds: options.rounds, peersMissing: peers.isEmpty && !options.noPeers)
        if !latency.isEmpty {
            print("")
            LatencySummary.printTable(latency)
        }
        fflush(nil)
    }
    if failed { throw ExitCode.failure }
}

/// A progress line on stderr: redrawn in place on a terminal (or printed
/// line by line with --progress when stderr is not one); never on stdout.
struct Progress {
    let total: Int
    let enabled: Bool
    let tty: Bool
    private var done = 0
    private let start = cab_now_ns()
    private var drawn = false

    init(total: Int, forced: Bool) {
        self.total = total
        tty = isatty(2) == 1
        enabled = tty || forced
    }

    mutating func step(_ what: String) {
        done += 1
        guard enabled else { return }
        let elapsed = Double(cab_now_ns() - start) / 1e9
        let text = "[\(Swift.min(done, total))/\(total)] \(what)  \(Report.fixed(elapsed, digits: 0)) s"
        if tty {
            printErrorRaw("\r\u{1B}[K" + text)
            drawn = true
        } else {
            printError(text)
        }
    }

    /// Erases the line (before other stderr output, and at the end).
    mutating func clear() {
        if drawn {
            printErrorRaw("\r\u{1B}[K")
            drawn = false
        }
    }
}

extension Report {
    /// The suite's table: one row per workload × implementation.
    static func printCompareTable(_ rows: [MicroRow], rounds: Int, peersMissing: Bool) {
        let header = ["workload", "impl", "median ns/op", "min–max ns/op", "allocs/op", "mallocs/op", "vs best peer", "bar"]
        var cells: [[String]] = []
        var failures: [String] = []
        for workload in uniqueInOrder(rows.map(\.workload)) {
            let group = rows.filter { $0.workload == workload }
            let peerRows = group.filter { !$0.isOurs }
            let best = peerRows.min { $0.median < $1.median }
            let c = group.first { $0.impl == "c" }, swift = group.first { $0.impl == "swift" }
            for row in group {
                var ratio = "", bar = ""
                if row.isOurs, let best {
                    let r = best.median / row.median
                    ratio = "×\(ratioText(r)) (\(best.impl))"
                    let target = row.targetRatio!
                    bar = "\(r >= target ? "PASS" : "FAIL") ≥\(Int(target))×"
                    for peer in peerRows where peer.median / row.median < target {
                        failures.append("\(workload) \(row.impl): ×\(ratioText(peer.median / row.median)) vs \(peer.impl) (needs ≥\(Int(target))×)")
                    }
                } else if !row.isOurs {
                    let parts = [c.map { "c ×\(ratioText(row.median / $0.median))" },
                                 swift.map { "swift ×\(ratioText(row.median / $0.median))" }].compactMap { $0 }
                    ratio = parts.joined(separator: ", ")
                    bar = row.version.map { "\(row.impl) \($0)" } ?? ""
                }
                cells.append([workload, row.impl, fixed(row.median, digits: 1),
                              "\(fixed(row.min, digits: 1))–\(fixed(row.max, digits: 1))",
                              row.allocsPerOp.map { allocs($0) } ?? "—", row.mallocsPerOp.map { allocs($0) } ?? "—",
                              ratio, bar])
            }
        }
        printAligned(header: header, rows: cells, leftColumns: 2, leftAfter: 6)
        print("c = the C core, swift = the Swift layer (module Asyncio); median of \(rounds) round(s), "
              + "each round one run of every implementation (interleaved); ×r = peer median / ours.")
        print("allocs/op: the core's allocator (ca_alloc_stats); mallocs/op: every malloc of the measuring "
              + "thread, the Swift runtime's included. Peers' rows: their ratio to c and swift, and their version.")
        if peersMissing {
            print("No peer figures: set the peers up with `scripts/peers-setup`, then run `swift run -c release bench compare`.")
        } else if failures.isEmpty {
            let measured = uniqueInOrder(rows.filter { !$0.isOurs }.map(\.impl))
            let unmeasured = PeerName.all.filter { !measured.contains($0) }
            print("Every ratio meets its bar (c ≥ 10×, swift ≥ 2× every peer) against the peers measured here: "
                  + measured.joined(separator: ", ") + ".")
            if !unmeasured.isEmpty {
                print("Not measured: \(unmeasured.joined(separator: ", ")) (`scripts/peers-setup` sets them up).")
            }
        } else {
            print("Below the bar (c ≥ 10×, swift ≥ 2× every peer):")
            for f in failures { print("  \(f)") }
        }
    }

    static func printCompareJSON(_ row: MicroRow, among group: [MicroRow]) {
        var fields: [(String, String)] = [
            ("workload", quoted(row.workload)), ("impl", quoted(row.impl)), ("unit", "\"ns/op\""),
            ("runs_ns", "[" + row.runsNs.map { fixed($0, digits: 3) }.joined(separator: ",") + "]"),
            ("median", fixed(row.median, digits: 3)), ("min", fixed(row.min, digits: 3)),
            ("max", fixed(row.max, digits: 3)),
            ("allocs_per_op", row.allocsPerOp.map { allocs($0) } ?? "null"),
            ("mallocs_per_op", row.mallocsPerOp.map { allocs($0) } ?? "null"),
        ]
        if let n = row.n { fields.append(("n", String(n))) }
        if let v = row.version { fields.append(("impl_version", quoted(v))) }
        let peers = group.filter { !$0.isOurs }
        if row.isOurs {
            let ratios = peers.map { "\(quoted($0.impl)):\(fixed($0.median / row.median, digits: 3))" }
            fields.append(("ratios", "{" + ratios.joined(separator: ",") + "}"))
            if let best = peers.min(by: { $0.median < $1.median }), let target = row.targetRatio {
                fields.append(("best_peer", quoted(best.impl)))
                fields.append(("ratio_vs_best_peer", fixed(best.median / row.median, digits: 3)))
                fields.append(("target_ratio", fixed(target, digits: 0)))
                fields.append(("pass", best.median / row.median >= target ? "true" : "false"))
            }
        } else {
            for ours in group where ours.isOurs {
                fields.append(("\(ours.impl)_ratio", fixed(row.median / ours.median, digits: 3)))
            }
        }
        printJSONObject(fields)
    }

    /// A ratio with three significant figures or so: 123, 12.3, 1.23.
    static func ratioText(_ r: Double) -> String {
        r >= 100 ? fixed(r, digits: 0) : r >= 10 ? fixed(r, digits: 1) : fixed(r, digits: 2)
    }
}

private func uniqueInOrder(_ xs: [String]) -> [String] {
    var seen: Set<String> = []
    return xs.filter { seen.insert($0).inserted }
}
