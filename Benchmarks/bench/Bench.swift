import ArgumentParser

/// `bench`: runs the workloads of `../shared/reference/workloads.md` and
/// prints nanoseconds and allocations per operation.
@main
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Runs the swift-asyncio benchmark workloads.",
        discussion: """
            With no arguments, runs every workload on the C core and prints one table \
            (median of \(RunOptions.defaultRepetitions) repetitions).
            """,
        subcommands: [Run.self, Echo.self, EchoServer.self, EchoClient.self, Inspect.self]
    )

    func run() throws {
        try runSuite(Workload.all, n: nil, repetitions: RunOptions.defaultRepetitions, json: false)
    }
}

/// `bench run WORKLOAD… [--impl c|swift] [--json] [--repetitions R]`.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runs the named workloads (every workload when none is named).",
        discussion: "Workloads: \(Workload.all.map(\.name).joined(separator: ", "))."
    )

    @Argument(help: "Workloads to run, in order.")
    var workloads: [String] = []

    @OptionGroup var options: RunOptions

    func validate() throws {
        let unknown = workloads.filter { Workload.named($0) == nil }
        if !unknown.isEmpty {
            let names = unknown.map { "'\($0)'" }.joined(separator: ", ")
            let valid = Workload.all.map(\.name).joined(separator: ", ")
            let noun = unknown.count == 1 ? "workload" : "workloads"
            throw ValidationError("unknown \(noun) \(names); valid workloads: \(valid)")
        }
    }

    func run() throws {
        var selected: [Workload] = []
        for name in workloads where !selected.contains(where: { $0.name == name }) {
            selected.append(Workload.named(name)!)
        }
        if selected.isEmpty {
            selected = Workload.all
            if options.impl == .swift {
                // The Swift layer's workloads (workloads.md has no Swift eager variant).
                selected = selected.filter { SwiftWorkload.named($0.name) != nil }
            }
        }
        if options.impl == .swift, let missing = selected.first(where: { SwiftWorkload.named($0.name) == nil }) {
            let valid = SwiftWorkload.all.map(\.name).joined(separator: ", ")
            printError("error: '\(missing.name)' has no Swift-layer version; --impl swift runs: \(valid)")
            throw ExitCode(2)
        }

        try runSuite(selected, impl: options.impl, n: options.n, repetitions: options.repetitions,
                     json: options.json)
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

    func validate() throws {
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
        if let n, n < 1 { throw ValidationError("--n must be at least 1") }
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
