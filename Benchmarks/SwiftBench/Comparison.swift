// What `bench compare` (and the suite) concludes from its figures: which
// peers exist, the ratios of the C core and the Swift layer to them, and the
// issue's bars. Pure logic, kept out of the bench executable so that
// Tests/CAsyncioTests/BenchComparisonTests.swift can hold it to its
// specification.

/// The peers `bench compare` knows, in the order the table lists them.
public enum PeerName {
    /// CPython's asyncio, uvloop (Benchmarks/peers/asyncio_peers.py), SwiftNIO and Swift
    /// Concurrency (Benchmarks/peers/swift).
    public static let all = ["asyncio", "uvloop", "nio", "concurrency"]

    /// The peers a `--peers` value names: comma-separated, blanks around a
    /// name ignored, each name once, in the order given.
    ///
    /// - Throws: `UnknownPeers` when a name is not one of `all` or when no
    ///   name is given; its message lists the valid ones.
    public static func parseList(_ text: String) throws(UnknownPeers) -> [String] {
        var names: [String] = []
        var unknown: [String] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let name = part.trimmingBlanks()
            if name.isEmpty { continue }
            if !all.contains(name) {
                unknown.append(name)
            } else if !names.contains(name) {
                names.append(name)
            }
        }
        if !unknown.isEmpty || names.isEmpty { throw UnknownPeers(names: unknown) }
        return names
    }
}

/// A `--peers` value naming a peer bench does not know, or none at all.
public struct UnknownPeers: Error, CustomStringConvertible, Equatable {
    /// The unknown names as given (empty: the value named no peer).
    public let names: [String]

    public init(names: [String]) {
        self.names = names
    }

    public var description: String {
        let valid = PeerName.all.joined(separator: ", ")
        if names.isEmpty { return "--peers names no peer; valid peers: \(valid)" }
        let noun = names.count == 1 ? "peer" : "peers"
        return "unknown \(noun) \(names.map { "'\($0)'" }.joined(separator: ", ")); valid peers: \(valid)"
    }
}

extension Substring {
    fileprivate func trimmingBlanks() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

// MARK: - The figures

/// One implementation's figures for one workload, over the rounds.
public struct MicroRow: Sendable {
    /// The workload's name in workloads.md.
    public let workload: String
    /// "c", "swift", or a peer's name.
    public let impl: String
    /// Nanoseconds per operation of each round's run (never empty in a table).
    public var runsNs: [Double]
    /// Core allocations per op (ours only; the largest over the rounds).
    public var allocsPerOp: Double?
    /// Every malloc of the measuring thread per op (ours, when counted).
    public var mallocsPerOp: Double?
    /// Operations per run (ours; a peer runs workloads.md's N).
    public var n: UInt64?
    /// A peer's impl_version (Python's or uvloop's, Swift's or SwiftNIO's).
    public var version: String?

    public init(workload: String, impl: String, runsNs: [Double] = []) {
        self.workload = workload
        self.impl = impl
        self.runsNs = runsNs
    }

    /// Whether this is the C core or the Swift layer rather than a peer.
    public var isOurs: Bool { Bar.ratio(for: impl) != nil }
    /// The median over the rounds (`runsNs` must not be empty).
    public var median: Double { SwiftBench.median(runsNs)! }
    /// The fastest round.
    public var min: Double { runsNs.min()! }
    /// The slowest round.
    public var max: Double { runsNs.max()! }
}

/// Issue 7's bars: how many times faster than every peer each of ours must be.
public enum Bar {
    /// The C core: ≥ 10× every peer.
    public static let c = 10.0
    /// The Swift layer: ≥ 2× every peer.
    public static let swift = 2.0

    /// The bar of "c" or "swift"; nil for a peer.
    public static func ratio(for impl: String) -> Double? {
        impl == "c" ? c : impl == "swift" ? swift : nil
    }
}

/// What became of a peer in this invocation.
public enum PeerStatus: Sendable, Equatable {
    /// Found and answering; it offers these workloads (its `--list`).
    case available(offering: Set<String>)
    /// Not set up or not working here; the reason is for the reader.
    case unavailable(reason: String)
    /// Left out by `--peers` or `--no-peers`.
    case notRequested
}

/// A peer that should have a figure on a workload and has none.
public struct MissingPeer: Sendable, Equatable {
    /// One of PeerName.all.
    public let name: String
    /// Why: its unavailability, or its run on this workload failing.
    public let reason: String

    public init(name: String, reason: String) {
        self.name = name
        self.reason = reason
    }
}

// MARK: - The verdict

/// How one of ours fares against the peers measured on one workload.
public struct OurVerdict: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// At or above the bar against every peer measured.
        case pass
        /// Below the bar against at least one peer measured.
        case fail
        /// No peer was measured on this workload: nothing to judge.
        case noPeer
    }

    /// "c" or "swift".
    public let impl: String
    /// The bar: 10 for c, 2 for swift.
    public let target: Double
    /// The fastest peer measured and its median over ours; nil when none was.
    public let best: (peer: String, ratio: Double)?
    /// Every peer measured whose median over ours is below the bar.
    public let belowBar: [(peer: String, ratio: Double)]

    /// PASS, FAIL, or nothing to judge.
    public var outcome: Outcome {
        guard best != nil else { return .noPeer }
        return belowBar.isEmpty ? .pass : .fail
    }
}

/// One workload's rows and what they show.
public struct WorkloadVerdict: Sendable {
    /// The workload's name in workloads.md.
    public let workload: String
    /// Ours first (c, swift), then the peers in PeerName.all order.
    public let rows: [MicroRow]
    /// The peers with a figure here, in PeerName.all order.
    public let measuredPeers: [String]
    /// The peers requested that should have a figure here and have none:
    /// unavailable ones, and available ones offering the workload whose run
    /// failed. A verdict here holds without them.
    public let missingPeers: [MissingPeer]
    /// c's and swift's verdicts, for those of ours with a row.
    public let ours: [OurVerdict]
}

/// A peer's run on a workload that came out wrong or did not finish.
public struct PeerFailure: Sendable, Equatable {
    /// The workload's name in workloads.md.
    public let workload: String
    /// One of PeerName.all.
    public let peer: String
    /// What the peer or bench said (exit status, stderr's first line).
    public let message: String

    public init(workload: String, peer: String, message: String) {
        self.workload = workload
        self.peer = peer
        self.message = message
    }
}

/// What the suite and `bench compare` conclude: per workload, the ratio of
/// each of ours to the best peer and the bar it is held to, and which peers
/// the conclusion does not cover.
public struct Comparison: Sendable {
    /// One verdict per workload, in the order of the rows.
    public let workloads: [WorkloadVerdict]
    /// Every known peer's status (a peer `peers` leaves out counts as
    /// unavailable: bench could not even look for it).
    public let peers: [String: PeerStatus]

    /// - Parameters:
    ///   - rows: every row measured, ours and the peers', any order; workloads
    ///     keep the order of their first row.
    ///   - peers: what became of each peer of PeerName.all.
    ///   - failures: peers' runs that failed (their rows, if any, are left out).
    public init(rows: [MicroRow], peers: [String: PeerStatus], failures: [PeerFailure] = []) {
        var statuses = peers
        for name in PeerName.all where statuses[name] == nil {
            statuses[name] = .unavailable(reason: "not found")
        }
        self.peers = statuses
        var order: [String] = []
        for row in rows where !order.contains(row.workload) { order.append(row.workload) }
        workloads = order.map { workload in
            let failed = failures.filter { $0.workload == workload }
            let group = rows.filter { row in
                row.workload == workload && !row.runsNs.isEmpty
                    && !failed.contains { $0.peer == row.impl }
            }
            let ourRows = ["c", "swift"].compactMap { impl in group.first { $0.impl == impl } }
            let peerRows = PeerName.all.compactMap { name in group.first { $0.impl == name } }
            let measured = peerRows.map(\.impl)
            var missing: [MissingPeer] = []
            for name in PeerName.all where !measured.contains(name) {
                switch statuses[name]! {
                case .notRequested:
                    break
                case .unavailable(let reason):
                    missing.append(MissingPeer(name: name, reason: reason))
                case .available(let offering):
                    if let failure = failed.first(where: { $0.peer == name }) {
                        missing.append(MissingPeer(name: name, reason: "its run failed: \(failure.message)"))
                    } else if offering.contains(workload) {
                        missing.append(MissingPeer(name: name, reason: "not measured"))
                    }
                }
            }
            let ours = ourRows.map { row in
                let target = Bar.ratio(for: row.impl)!
                let ratios = peerRows.map { (peer: $0.impl, ratio: $0.median / row.median) }
                return OurVerdict(impl: row.impl, target: target,
                                  best: ratios.min { $0.ratio < $1.ratio },
                                  belowBar: ratios.filter { $0.ratio < target })
            }
            return WorkloadVerdict(workload: workload, rows: ourRows + peerRows, measuredPeers: measured,
                                   missingPeers: missing, ours: ours)
        }
    }

    /// Every peer with a figure on some workload, in PeerName.all order.
    public var measuredPeers: [String] {
        PeerName.all.filter { name in workloads.contains { $0.measuredPeers.contains(name) } }
    }

    /// "call_soon c: ×8.10 vs uvloop (needs ≥10×)" for every ratio below its bar.
    public var failures: [String] {
        workloads.flatMap { w in
            w.ours.flatMap { our in
                our.belowBar.map { "\(w.workload) \(our.impl): ×\(BenchFormat.ratio($0.ratio)) vs \($0.peer) (needs ≥\(Int(our.target))×)" }
            }
        }
    }

    // MARK: The table's text

    /// The columns `cells` fills.
    public static let header = ["workload", "impl", "median ns/op", "min–max ns/op", "allocs/op", "mallocs/op",
                                "vs best peer", "bar"]

    /// One row of cells per row of `workloads`, in `header`'s columns.
    public var cells: [[String]] {
        workloads.flatMap { w in
            w.rows.map { row in
                var ratio = "", bar = ""
                if let our = w.ours.first(where: { $0.impl == row.impl }) {
                    ratio = our.best.map { "×\(BenchFormat.ratio($0.ratio)) (\($0.peer))" } ?? "—"
                    bar = Comparison.barText(our, missing: w.missingPeers)
                } else {
                    ratio = w.rows.filter(\.isOurs).map { "\($0.impl) ×\(BenchFormat.ratio(row.median / $0.median))" }
                        .joined(separator: ", ")
                    bar = row.version.map { "\(row.impl) \($0)" } ?? ""
                }
                return [w.workload, row.impl, BenchFormat.fixed(row.median, digits: 1),
                        "\(BenchFormat.fixed(row.min, digits: 1))–\(BenchFormat.fixed(row.max, digits: 1))",
                        row.allocsPerOp.map(BenchFormat.allocs) ?? "—", row.mallocsPerOp.map(BenchFormat.allocs) ?? "—",
                        ratio, bar]
            }
        }
    }

    /// "PASS ≥10×", "FAIL ≥2×" or "no peer", followed by the peers the
    /// verdict does not cover: "PASS ≥10× (uvloop missing)".
    static func barText(_ our: OurVerdict, missing: [MissingPeer]) -> String {
        let verdict: String
        switch our.outcome {
        case .pass: verdict = "PASS ≥\(Int(our.target))×"
        case .fail: verdict = "FAIL ≥\(Int(our.target))×"
        case .noPeer: verdict = "no peer"
        }
        guard !missing.isEmpty else { return verdict }
        return verdict + " (\(missing.map(\.name).joined(separator: ", ")) missing)"
    }

    /// The lines under the table: the conclusion, and every peer it does not cover and why.
    public var conclusion: [String] {
        var lines: [String] = []
        let requested = PeerName.all.filter { peers[$0] != .notRequested }
        let judged = workloads.flatMap(\.ours).filter { $0.outcome != .noPeer }
        if requested.isEmpty {
            lines.append("No peer measured (--no-peers): no bar is judged.")
        } else if judged.isEmpty {
            lines.append("No peer figures: no bar is judged. Set the peers up with `scripts/peers-setup`, "
                         + "then run `swift run -c release bench compare`.")
        } else if failures.isEmpty {
            lines.append("Every ratio meets its bar (c ≥ 10×, swift ≥ 2× every peer measured on its workload); "
                         + "peers measured: \(measuredPeers.joined(separator: ", ")).")
        } else {
            lines.append("Below the bar (c ≥ 10×, swift ≥ 2× every peer):")
            lines += failures.map { "  \($0)" }
        }
        if !judged.isEmpty {
            let unjudged = workloads.filter { w in !w.ours.isEmpty && w.ours.allSatisfy { $0.outcome == .noPeer } }
            if !unjudged.isEmpty {
                lines.append("No peer measured on \(unjudged.map(\.workload).joined(separator: ", ")): no bar is judged there.")
            }
        }
        let unavailable = PeerName.all.compactMap { name -> String? in
            if case .unavailable(let reason) = peers[name]! { return "\(name) (\(reason))" }
            return nil
        }
        if !unavailable.isEmpty {
            lines.append("Not measured, so no bar is judged against them: \(unavailable.joined(separator: "; ")). "
                         + "`scripts/peers-setup` sets the peers up.")
        }
        for w in workloads {
            let failed = w.missingPeers.filter { name in
                if case .available = peers[name.name]! { return true }
                return false
            }
            for peer in failed {
                lines.append("No \(peer.name) figure on \(w.workload) (\(peer.reason)): its bars there hold without \(peer.name).")
            }
        }
        let left = PeerName.all.filter { peers[$0] == .notRequested }
        if !left.isEmpty && !requested.isEmpty {
            lines.append("Left out by --peers: \(left.joined(separator: ", ")).")
        }
        return lines
    }
}
