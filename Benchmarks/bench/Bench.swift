import ArgumentParser
import CBenchMalloc
import SwiftBench

/// `bench`: runs the workloads of `../shared/reference/workloads.md` and
/// prints nanoseconds and allocations per operation.
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Runs the swift-asyncio benchmark workloads.",
        discussion: """
            With no subcommand, runs every micro workload on the C core and the Swift layer, and on \
            the peers when scripts/peers-setup has set them up, interleaved over \
            \(SuiteOptions.defaultRounds) rounds, then wakeup_latency and timer_lateness; prints one table with the \
            ratios to the best peer and the issue's bars. `bench compare` does the same and sets \
            the peers up when they are missing.
            """,
        subcommands: [Suite.self, Run.self, Compare.self, Echo.self, EchoServer.self, EchoClient.self, Inspect.self],
        defaultSubcommand: Suite.self
    )
}

/// `bench suite` (the default subcommand: plain `bench`): the whole suite,
/// with the peers that are set up.
struct Suite: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runs every micro workload (C core, Swift layer, and the peers when set up) and the latency workloads; the default."
    )

    @OptionGroup var options: SuiteOptions

    func run() throws {
        try runComparison(options, setUpPeers: false)
    }
}

/// `bench run WORKLOAD… [--impl c|swift] [--json] [--repetitions R]`.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runs the named workloads (every workload when none is named).",
        discussion: """
            Micro workloads: \(Workload.all.map(\.name).joined(separator: ", ")). \
            Latency workloads: \(LatencyWorkload.allCases.map(\.rawValue).joined(separator: ", ")) \
            (percentiles in µs; wakeup_latency in an idle and a busy loop).
            """
    )

    @Argument(help: "Workloads to run, in order.")
    var workloads: [String] = []

    @OptionGroup var options: RunOptions

    func validate() throws {
        let unknown = workloads.filter { Workload.named($0) == nil && LatencyWorkload.named($0) == nil }
        if !unknown.isEmpty {
            let names = unknown.map { "'\($0)'" }.joined(separator: ", ")
            let valid = (Workload.all.map(\.name) + LatencyWorkload.allCases.map(\.rawValue)).joined(separator: ", ")
            let noun = unknown.count == 1 ? "workload" : "workloads"
            throw ValidationError("unknown \(noun) \(names); valid workloads: \(valid)")
        }
    }

    func run() throws {
        var selected: [Workload] = []
        var latency: [LatencyWorkload] = []
        for name in workloads {
            if let w = Workload.named(name), !selected.contains(where: { $0.name == name }) { selected.append(w) }
            if let l = LatencyWorkload.named(name), !latency.contains(l) { latency.append(l) }
        }
        if selected.isEmpty && latency.isEmpty {
            selected = Workload.all
        }
        if options.impl == .swift, let missing = selected.first(where: { SwiftWorkload.named($0.name) == nil }) {
            let valid = SwiftWorkload.all.map(\.name).joined(separator: ", ")
            printError("error: '\(missing.name)' has no Swift-layer version; --impl swift runs: \(valid)")
            throw ExitCode(2)
        }

        var failed = false
        if !selected.isEmpty {
            do {
                try runSuite(selected, impl: options.impl, n: options.n, repetitions: options.repetitions,
                             json: options.json)
            } catch {
                failed = true
            }
        }
        var rows: [LatencySummary] = []
        for l in latency {
            var progress = Progress(total: 1, forced: options.progress)
            progress.step("\(l.rawValue) (\(options.impl.rawValue))")
            do {
                let r = try measureLatency(l, impl: options.impl,
                                           options: LatencyOptions(samples: options.samples, duration: options.duration))
                progress.clear()
                if options.json { r.forEach { $0.printJSON() } } else { rows += r }
            } catch {
                progress.clear()
                printError("error: \(error.workload) failed: \(error.message)")
                failed = true
            }
        }
        if !rows.isEmpty {
            if !selected.isEmpty { print("") }
            LatencySummary.printTable(rows)
        }
        if failed { throw ExitCode.failure }
    }
}

/// The options of `bench run`.
struct RunOptions: ParsableArguments {
    static let defaultRepetitions = 5

    @Option(help: "The implementation to measure: c (the C core) or swift (the Swift layer).")
    var impl: Implementation = .c

    @Flag(help: "Print one JSON object per line instead of the table.")
    var json = false

    @Option(help: "Runs per workload; the median is reported.")
    var repetitions: Int = defaultRepetitions

    @Option(name: .customLong("n"), help: "Operations per run (default: each workload's N from workloads.md).")
    var n: UInt64?

    @Option(help: "wakeup_latency: samples per mode (idle, busy).")
    var samples: UInt64 = 20_000

    @Option(help: "timer_lateness: seconds of echo load recorded (after 0.5 s of warm-up).")
    var duration: Double = 3

    @Flag(help: "Show a progress line on stderr even when it is not a terminal.")
    var progress = false

    func validate() throws {
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        if let n, n < 1 { throw ValidationError("--n must be at least 1") }
        if samples < 1 { throw ValidationError("--samples must be at least 1") }
        if duration <= 0 { throw ValidationError("--duration must be positive") }
    }
}

/// Which layer a measurement exercises.
enum Implementation: String, CaseIterable, ExpressibleByArgument {
    case c
    case swift
}

/// Runs each workload `repetitions` times on the C core (or the Swift layer,
/// `impl: .swift`) and prints the results. A failing workload (a core error or a wrong count) is reported on
/// stderr and the others still run; the process then exits with status 1.
func runSuite(_ workloads: [Workload], impl: Implementation = .c, n: UInt64?, repetitions: Int,
              json: Bool) throws {
    var summaries: [Summary] = []
    var failed = false
    for workload in workloads {
        do {
            let summary = impl == .swift
                ? try workload.measureSwift(n: n ?? workload.defaultN, repetitions: repetitions)
                : try workload.measure(n: n ?? workload.defaultN, repetitions: repetitions)
            if json { Report.printJSON(summary) } else { summaries.append(summary) }
        } catch {
            printError("error: \(error.workload) failed: \(error.message)")
            failed = true
        }
    }
    if !json && !summaries.isEmpty { Report.printTable(summaries, repetitions: repetitions) }
    if failed { throw ExitCode.failure }
}
