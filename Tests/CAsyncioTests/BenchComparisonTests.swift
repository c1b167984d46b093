// What `bench compare` concludes from its figures (Benchmarks/SwiftBench/
// Comparison.swift): the ratio of the C core and the Swift layer to the best
// peer, the bars (C ≥ 10×, Swift ≥ 2× every peer), and a verdict that
// never covers a peer it has no figure from. The figures here are made up;
// nothing is measured.

import SwiftBench
import Testing

/// A row whose every round took `ns` per op.
private func row(_ workload: String, _ impl: String, _ ns: Double...) -> MicroRow {
    MicroRow(workload: workload, impl: impl, runsNs: ns)
}

/// Every peer available and offering `workloads`.
private func allAvailable(offering workloads: Set<String>) -> [String: PeerStatus] {
    Dictionary(uniqueKeysWithValues: PeerName.all.map { ($0, .available(offering: workloads)) })
}

/// Every peer left out except those given.
private func only(_ statuses: [String: PeerStatus]) -> [String: PeerStatus] {
    var all = Dictionary(uniqueKeysWithValues: PeerName.all.map { ($0, PeerStatus.notRequested) })
    all.merge(statuses) { $1 }
    return all
}

private func verdict(_ c: Comparison, _ impl: String, on workload: String) throws -> OurVerdict {
    let w = try #require(c.workloads.first { $0.workload == workload })
    return try #require(w.ours.first { $0.impl == impl })
}

/// The "bar" column of `impl`'s row on `workload`.
private func barCell(_ c: Comparison, _ impl: String, on workload: String) throws -> String {
    let cells = try #require(c.cells.first { $0[0] == workload && $0[1] == impl })
    return try #require(cells.last)
}

@Suite("bench compare's verdict")
struct BenchComparisonTests {

    @Test("the ratio is the fastest peer's median over ours")
    func ratioToBestPeer() throws {
        let c = Comparison(rows: [row("call_soon", "c", 10, 12, 11),
                                  row("call_soon", "asyncio", 700, 800, 750),
                                  row("call_soon", "uvloop", 300, 250, 275)],
                           peers: only(["asyncio": .available(offering: ["call_soon"]),
                                        "uvloop": .available(offering: ["call_soon"])]))
        let v = try verdict(c, "c", on: "call_soon")
        #expect(v.best?.peer == "uvloop")
        #expect(v.best?.ratio == 275.0 / 11.0)
        let cells = try #require(c.cells.first { $0[1] == "c" })
        #expect(cells[6] == "×25.0 (uvloop)")
    }

    @Test("the C core passes at exactly 10× the best peer")
    func cPassesAtItsBar() throws {
        let c = Comparison(rows: [row("sleep0", "c", 20), row("sleep0", "nio", 200)],
                           peers: only(["nio": .available(offering: ["sleep0"])]))
        #expect(try verdict(c, "c", on: "sleep0").outcome == .pass)
        #expect(try barCell(c, "c", on: "sleep0") == "PASS ≥10×")
        #expect(c.failures.isEmpty)
        #expect(c.conclusion.first?.hasPrefix("Every ratio meets its bar") == true)
    }

    @Test("the C core fails just below 10× the best peer, and the failure names that peer")
    func cFailsBelowItsBar() throws {
        let c = Comparison(rows: [row("sleep0", "c", 20), row("sleep0", "nio", 199)],
                           peers: only(["nio": .available(offering: ["sleep0"])]))
        #expect(try verdict(c, "c", on: "sleep0").outcome == .fail)
        #expect(try barCell(c, "c", on: "sleep0") == "FAIL ≥10×")
        #expect(c.failures == ["sleep0 c: ×9.95 vs nio (needs ≥10×)"])
        #expect(c.conclusion.first?.hasPrefix("Below the bar") == true)
    }

    @Test("the Swift layer's bar is 2× the best peer", arguments: [(100.0, OurVerdict.Outcome.pass),
                                                                 (99.0, .fail)])
    func swiftBar(peerNs: Double, expected: OurVerdict.Outcome) throws {
        let c = Comparison(rows: [row("ping_pong", "swift", 50), row("ping_pong", "concurrency", peerNs)],
                           peers: only(["concurrency": .available(offering: ["ping_pong"])]))
        let v = try verdict(c, "swift", on: "ping_pong")
        #expect(v.target == 2)
        #expect(v.outcome == expected)
    }

    @Test("every peer below the bar is listed, not only the best")
    func everyPeerBelowTheBarIsListed() throws {
        let c = Comparison(rows: [row("call_soon", "c", 10), row("call_soon", "asyncio", 80),
                                  row("call_soon", "uvloop", 50), row("call_soon", "nio", 500)],
                           peers: allAvailable(offering: ["call_soon"]))
        #expect(try verdict(c, "c", on: "call_soon").belowBar.map(\.peer) == ["asyncio", "uvloop"])
        #expect(c.failures.count == 2)
    }

    @Test("a peer that offers the workload but has no figure is named missing, and the pass does not cover it")
    func failedPeerIsMissing() throws {
        let c = Comparison(rows: [row("timers", "c", 100), row("timers", "asyncio", 5000)],
                           peers: only(["asyncio": .available(offering: ["timers"]),
                                        "nio": .available(offering: ["timers"])]),
                           failures: [PeerFailure(workload: "timers", peer: "nio", message: "exit status 1")])
        let w = try #require(c.workloads.first)
        #expect(w.measuredPeers == ["asyncio"])
        #expect(w.missingPeers.map(\.name) == ["nio"])
        #expect(try barCell(c, "c", on: "timers") == "PASS ≥10× (nio missing)")
        #expect(c.measuredPeers == ["asyncio"])
        let conclusion = c.conclusion.joined(separator: "\n")
        #expect(conclusion.contains("peers measured: asyncio."))
        #expect(conclusion.contains("No nio figure on timers (its run failed: exit status 1)"))
    }

    @Test("a failed peer's partial figures are left out of the ratios")
    func failedPeerRowIsNotJudged() throws {
        let c = Comparison(rows: [row("timers", "c", 100), row("timers", "nio", 200)],
                           peers: only(["nio": .available(offering: ["timers"])]),
                           failures: [PeerFailure(workload: "timers", peer: "nio", message: "a lost callback")])
        #expect(try verdict(c, "c", on: "timers").outcome == .noPeer)
        #expect(c.failures.isEmpty)
    }

    @Test("an unavailable peer is named missing on every workload, with its reason")
    func unavailablePeerIsMissing() throws {
        var peers = allAvailable(offering: ["sleep0"])
        peers["uvloop"] = .unavailable(reason: "uvloop not installed (pip install uvloop)")
        let c = Comparison(rows: [row("sleep0", "c", 10), row("sleep0", "swift", 100),
                                  row("sleep0", "asyncio", 3000), row("sleep0", "nio", 400),
                                  row("sleep0", "concurrency", 1000)],
                           peers: peers)
        #expect(try barCell(c, "c", on: "sleep0") == "PASS ≥10× (uvloop missing)")
        #expect(try barCell(c, "swift", on: "sleep0") == "PASS ≥2× (uvloop missing)")
        #expect(!c.measuredPeers.contains("uvloop"))
        let conclusion = c.conclusion.joined(separator: "\n")
        #expect(conclusion.contains("peers measured: asyncio, nio, concurrency."))
        #expect(conclusion.contains("no bar is judged against them: uvloop (uvloop not installed (pip install uvloop))"))
    }

    @Test("a peer with no analogue for a workload is not missing there")
    func noAnalogueIsNotMissing() throws {
        let c = Comparison(rows: [row("call_soon", "c", 10), row("call_soon", "nio", 200)],
                           peers: only(["nio": .available(offering: ["call_soon"]),
                                        "concurrency": .available(offering: ["sleep0", "ping_pong"])]))
        #expect(c.workloads.first?.missingPeers == [])
        #expect(try barCell(c, "c", on: "call_soon") == "PASS ≥10×")
    }

    @Test("with no peer figure at all no bar is judged and no pass is claimed")
    func noPeerFigures() throws {
        let peers = Dictionary(uniqueKeysWithValues: PeerName.all.map { ($0, PeerStatus.unavailable(reason: "not set up")) })
        let c = Comparison(rows: [row("sleep0", "c", 10), row("sleep0", "swift", 100)], peers: peers)
        #expect(try verdict(c, "c", on: "sleep0").outcome == .noPeer)
        #expect(try barCell(c, "c", on: "sleep0").hasPrefix("no peer"))
        let conclusion = c.conclusion.joined(separator: "\n")
        #expect(conclusion.hasPrefix("No peer figures: no bar is judged."))
        #expect(!conclusion.contains("meets"))
    }

    @Test("--no-peers: no bar is judged and no pass is claimed")
    func noPeersRequested() throws {
        let c = Comparison(rows: [row("sleep0", "c", 10)], peers: only([:]))
        #expect(try barCell(c, "c", on: "sleep0") == "no peer")
        #expect(c.conclusion == ["No peer measured (--no-peers): no bar is judged."])
    }

    @Test("a workload no peer ran is named, even when the others pass")
    func workloadWithoutPeerIsNamed() throws {
        let c = Comparison(rows: [row("sleep0", "c", 10), row("sleep0", "nio", 400),
                                  row("task_spawn_eager", "c", 100)],
                           peers: only(["nio": .available(offering: ["sleep0"])]))
        #expect(try verdict(c, "c", on: "task_spawn_eager").outcome == .noPeer)
        #expect(c.conclusion.contains("No peer measured on task_spawn_eager: no bar is judged there."))
    }

    @Test("a peer left out by --peers is neither measured nor missing, and the table says it was left out")
    func peerLeftOut() throws {
        let c = Comparison(rows: [row("sleep0", "c", 10), row("sleep0", "nio", 400)],
                           peers: only(["nio": .available(offering: ["sleep0"])]))
        #expect(c.workloads.first?.missingPeers == [])
        #expect(c.conclusion.last == "Left out by --peers: asyncio, uvloop, concurrency.")
    }

    @Test("a peer that bench was not told about counts as not found")
    func unlistedPeerIsUnavailable() throws {
        let c = Comparison(rows: [row("sleep0", "c", 10), row("sleep0", "nio", 400)],
                           peers: ["nio": .available(offering: ["sleep0"])])
        #expect(c.workloads.first?.missingPeers.map(\.name) == ["asyncio", "uvloop", "concurrency"])
    }
}

@Suite("bench --peers")
struct BenchPeerListTests {

    @Test("known names are accepted, blanks trimmed, each once, in the order given")
    func knownNames() throws {
        #expect(try PeerName.parseList(" nio, asyncio,nio ,") == ["nio", "asyncio"])
    }

    @Test("an unknown name is an error that lists the valid peers")
    func unknownName() {
        #expect(throws: UnknownPeers(names: ["uvlop"])) { try PeerName.parseList("nio,uvlop") }
        #expect(UnknownPeers(names: ["uvlop"]).description
                == "unknown peer 'uvlop'; valid peers: asyncio, uvloop, nio, concurrency")
    }

    @Test("a list naming no peer is an error")
    func emptyList() {
        #expect(throws: UnknownPeers(names: [])) { try PeerName.parseList(" , ") }
    }
}

@Suite("bench's median")
struct BenchMedianTests {

    @Test("an odd count's median is its middle value")
    func oddCount() { #expect(median([5, 1, 3]) == 3) }

    @Test("an even count's median is the mean of its two middle values")
    func evenCount() { #expect(median([4, 1, 3, 2]) == 2.5) }

    @Test("an empty list has no median")
    func empty() { #expect(median([]) == nil) }
}
