// What `bench compare` (and the suite) concludes from its figures: which
// peers exist, the ratios of the C core and the Swift layer to them, and the
// issue's bars. Pure logic, apart from the bench executable, so that
// Tests/CAsyncioTests can hold it to its specification.

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
