// `bench compare --json`: one workload's verdict (Comparison.swift) as JSON
// lines, one per implementation measured, printed as each workload finishes.

extension WorkloadVerdict {
    /// One JSON object per row, in the rows' order. Ours (c, swift): the
    /// ratio to each peer measured, the bar, and the best peer, the ratio
    /// to it and `pass` only when a peer was measured; the peers missing
    /// always. A peer: its ratio to each of ours (`c_ratio`, `swift_ratio`)
    /// and its version when it gave one.
    public var jsonLines: [String] {
        let peers = rows.filter { !$0.isOurs }
        return rows.map { row in
            var fields: [(key: String, value: String)] = [
                ("workload", JSONLine.quoted(row.workload)), ("impl", JSONLine.quoted(row.impl)),
                ("unit", JSONLine.quoted("ns/op")),
                ("runs_ns", JSONLine.numbers(row.runsNs, digits: 3)),
                ("median", BenchFormat.fixed(row.median, digits: 3)), ("min", BenchFormat.fixed(row.min, digits: 3)),
                ("max", BenchFormat.fixed(row.max, digits: 3)),
                ("allocs_per_op", row.allocsPerOp.map(BenchFormat.allocs) ?? "null"),
                ("mallocs_per_op", row.mallocsPerOp.map(BenchFormat.allocs) ?? "null"),
            ]
            if let n = row.n { fields.append(("n", String(n))) }
            if let v = row.version { fields.append(("impl_version", JSONLine.quoted(v))) }
            if let our = ours.first(where: { $0.impl == row.impl }) {
                let ratios = peers.map { (key: $0.impl, value: BenchFormat.fixed($0.median / row.median, digits: 3)) }
                fields.append(("ratios", JSONLine.object(ratios)))
                fields.append(("target_ratio", BenchFormat.fixed(our.target, digits: 0)))
                if let best = our.best {
                    fields.append(("best_peer", JSONLine.quoted(best.peer)))
                    fields.append(("ratio_vs_best_peer", BenchFormat.fixed(best.ratio, digits: 3)))
                    fields.append(("pass", our.outcome == .pass ? "true" : "false"))
                }
                fields.append(("missing_peers", JSONLine.strings(missingPeers.map(\.name))))
            } else {
                for ourRow in rows where ourRow.isOurs {
                    fields.append(("\(ourRow.impl)_ratio", BenchFormat.fixed(row.median / ourRow.median, digits: 3)))
                }
            }
            return JSONLine.object(fields)
        }
    }
}
