// How bench writes what it measured (Benchmarks/SwiftBench: BenchFormat,
// JSONLine, TextTable, ComparisonJSON): the number formats, the JSON lines
// tools read, and the aligned table people read. The figures here are made
// up; nothing is measured.

import Foundation
import SwiftBench
import Testing

@Suite("bench's number formats")
struct BenchFormatTests {

    @Test("fixed writes exactly the decimals asked for, rounding half away from zero")
    func fixedDecimals() {
        #expect(BenchFormat.fixed(2.5, digits: 3) == "2.500")
        #expect(BenchFormat.fixed(0.05, digits: 1) == "0.1")
        #expect(BenchFormat.fixed(1.04, digits: 2) == "1.04")
        #expect(BenchFormat.fixed(3.5, digits: 0) == "4")
    }

    @Test("a whole allocation count is written as an integer, a fraction with six decimals")
    func allocs() {
        #expect(BenchFormat.allocs(0) == "0")
        #expect(BenchFormat.allocs(4) == "4")
        #expect(BenchFormat.allocs(0.001) == "0.001000")
    }

    @Test("a ratio keeps about three significant figures", arguments: [(123.4, "123"), (12.34, "12.3"), (1.234, "1.23")])
    func ratio(value: Double, text: String) {
        #expect(BenchFormat.ratio(value) == text)
    }
}

@Suite("bench's JSON lines")
struct BenchJSONLineTests {

    @Test("an object keeps its keys in the order given, values as they are")
    func objectOrder() {
        #expect(JSONLine.object([("b", "1"), ("a", "null"), ("c", "[1,2]")]) == #"{"b":1,"a":null,"c":[1,2]}"#)
    }

    @Test("a string's quotes, backslashes and control characters are escaped")
    func quotedEscapes() throws {
        let text = "say \"hi\"\\\n\té"
        let quoted = JSONLine.quoted(text)
        #expect(quoted == #""say \"hi\"\\\u000a\u0009é""#)
        let back = try JSONSerialization.jsonObject(with: Data(quoted.utf8), options: .fragmentsAllowed) as? String
        #expect(back == text)
    }
}

@Suite("bench's tables")
struct BenchTextTableTests {

    @Test("numbers are right-aligned, names and notes left-aligned, columns two spaces apart, no trailing blanks")
    func alignment() {
        let lines = TextTable.lines(header: ["workload", "ns", "note"],
                                    rows: [["sleep0", "14.1", ""], ["ping_pong", "304.5", "slow round"]],
                                    leftColumns: 1, leftAfter: 2)
        #expect(lines == ["workload      ns  note",
                          "sleep0      14.1",
                          "ping_pong  304.5  slow round"])
    }
}

@Suite("bench compare --json")
struct BenchCompareJSONTests {

    /// call_soon: c at 10–12 ns (median 11), uvloop at 275 ns; nio
    /// unavailable; the other peers left out by --peers.
    private func callSoon(c runs: [Double] = [10, 12, 11]) throws -> WorkloadVerdict {
        var c = MicroRow(workload: "call_soon", impl: "c", runsNs: runs)
        c.allocsPerOp = 0
        c.n = 1_000_000
        var uvloop = MicroRow(workload: "call_soon", impl: "uvloop", runsNs: [275])
        uvloop.version = "0.23.0"
        let peers: [String: PeerStatus] = ["asyncio": .notRequested, "concurrency": .notRequested,
                                           "uvloop": .available(offering: ["call_soon"]),
                                           "nio": .unavailable(reason: "not set up")]
        return try #require(Comparison(rows: [c, uvloop], peers: peers).workloads.first)
    }

    @Test("one line per implementation, ours first")
    func oneLinePerRow() throws {
        let lines = try callSoon().jsonLines
        #expect(lines.count == 2)
        #expect(lines.first?.hasPrefix(#"{"workload":"call_soon","impl":"c","#) == true)
    }

    @Test("our line: the figures, the ratio to each peer, the bar, the best peer and the verdict, and the peers missing")
    func ourLine() throws {
        let line = try #require(try callSoon().jsonLines.first)
        #expect(line == #"{"workload":"call_soon","impl":"c","unit":"ns/op","runs_ns":[10.000,12.000,11.000],"#
                + #""median":11.000,"min":10.000,"max":12.000,"allocs_per_op":0,"mallocs_per_op":null,"n":1000000,"#
                + #""ratios":{"uvloop":25.000},"target_ratio":10,"best_peer":"uvloop","ratio_vs_best_peer":25.000,"#
                + #""pass":true,"missing_peers":["nio"]}"#)
    }

    @Test("below the bar, our line says pass false")
    func failingLine() throws {
        let line = try #require(try callSoon(c: [30]).jsonLines.first)
        #expect(line.contains(#""ratio_vs_best_peer":9.167,"pass":false,"#))
    }

    @Test("a peer's line: its figures, its version and its ratio to each of ours")
    func peerLine() throws {
        let line = try #require(try callSoon().jsonLines.last)
        #expect(line == #"{"workload":"call_soon","impl":"uvloop","unit":"ns/op","runs_ns":[275.000],"#
                + #""median":275.000,"min":275.000,"max":275.000,"allocs_per_op":null,"mallocs_per_op":null,"#
                + #""impl_version":"0.23.0","c_ratio":25.000}"#)
    }

    @Test("with no peer measured, our line has no best peer and no verdict, and still names the peers missing")
    func noPeerLine() throws {
        let c = MicroRow(workload: "sleep0", impl: "swift", runsNs: [130])
        let peers = Dictionary(uniqueKeysWithValues: PeerName.all.map { ($0, PeerStatus.unavailable(reason: "not set up")) })
        let line = try #require(Comparison(rows: [c], peers: peers).workloads.first?.jsonLines.first)
        #expect(line.hasSuffix(#""ratios":{},"target_ratio":2,"missing_peers":["asyncio","uvloop","nio","concurrency"]}"#))
        #expect(!line.contains("pass"))
        #expect(!line.contains("best_peer"))
    }

    @Test("every line is one valid JSON object")
    func validJSON() throws {
        for line in try callSoon().jsonLines {
            #expect(!line.contains("\n"))
            #expect(try JSONSerialization.jsonObject(with: Data(line.utf8)) is [String: Any])
        }
    }
}
