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
    var peerFailures: [PeerFailure] = []
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
                switch runPeer(peer, workload: name) {
                case .success(let line):
                    var row = theirs[peer.name] ?? MicroRow(workload: name, impl: peer.name)
                    row.runsNs.append(contentsOf: line.runs_ns)
                    row.version = line.impl_version
                    theirs[peer.name] = row
                case .failure(let failure):
                    progress.clear()
                    printError("note: \(name): \(failure.message); \(peer.name) left out of this workload")
                    dropped.insert(peer.name)
                    peerFailures.append(PeerFailure(workload: name, peer: peer.name, message: failure.message))
                }
            }
        }
        let measured = ourImpls.compactMap { ours[$0] } + workloadPeers.compactMap { theirs[$0.name] }
        if options.json, let verdict = Comparison(rows: measured, peers: peerSet.statuses, failures: peerFailures).workloads.first {
            verdict.jsonLines.forEach { print($0) }
            fflush(nil)
        }
        rows += measured
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
        Report.printCompareTable(Comparison(rows: rows, peers: peerSet.statuses, failures: peerFailures),
                                 rounds: options.rounds)
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
        let text = "[\(Swift.min(done, total))/\(total)] \(what)  \(BenchFormat.fixed(elapsed, digits: 0)) s"
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
    /// The suite's table: one row per workload × implementation, then the conclusion.
    static func printCompareTable(_ comparison: Comparison, rounds: Int) {
        printAligned(header: Comparison.header, rows: comparison.cells, leftColumns: 2, leftAfter: 6)
        print("c = the C core, swift = the Swift layer (module Asyncio); median of \(rounds) round(s), "
              + "each round one run of every implementation (interleaved); ×r = peer median / ours.")
        print("allocs/op: the core's allocator (ca_alloc_stats); mallocs/op: every malloc of the measuring "
              + "thread, the Swift runtime's included. Peers' rows: their ratio to c and swift, and their version.")
        comparison.conclusion.forEach { print($0) }
    }
}
