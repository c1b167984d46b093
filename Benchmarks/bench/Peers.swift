// The peers `bench compare` measures beside us: external programs of
// Benchmarks/peers/ (CPython asyncio and uvloop through asyncio_peers.py,
// SwiftNIO and Swift Concurrency through the separate package in
// Benchmarks/peers/swift, so the library never depends on NIO). Each takes
// `--impl I --workload W --variant default --runs R --json` and prints one
// JSON line for the workload's default way (the only one the table shows);
// exit status 3 means the peer is not available here.

import Foundation
import SwiftBench
#if canImport(Glibc)
import Glibc
#endif

/// One external implementation and how to start it.
struct Peer: Sendable {
    /// "asyncio", "uvloop", "nio" or "concurrency".
    let name: String
    let executable: String
    let leadingArguments: [String]
    /// The workloads it implements (its `--list`).
    var workloads: Set<String> = []

    func arguments(_ rest: [String]) -> [String] { leadingArguments + ["--impl", name] + rest }
}

/// One run's line from a peer.
struct PeerLine: Decodable {
    let impl: String
    let workload: String
    let unit: String?
    let runs_ns: [Double]
    let impl_version: String?
    /// Set on the lines of a non-default variant, which `--variant default` does not ask for.
    let variant: String?
}

/// A peer's wakeup_latency line (medians of its runs' percentiles, in µs).
struct PeerLatencyLine: Decodable {
    let workload: String
    let p50_us: Double
    let p99_us: Double
    let p999_us: Double
    let max_us: Double?
}

/// Runs a peer's wakeup_latency once (idle loop, its own sample count).
func runPeerLatency(_ peer: Peer) -> Result<LatencySummary, WorkloadFailure> {
    let name = LatencyWorkload.wakeupLatency.rawValue
    return runPeerOnce(peer, workload: name).flatMap { lines in
        for line in lines {
            if let data = line.data(using: .utf8), let l = try? JSONDecoder().decode(PeerLatencyLine.self, from: data),
               l.workload == name {
                return .success(LatencySummary(peer: peer.name, p50: l.p50_us, p99: l.p99_us, p999: l.p999_us, max: l.max_us))
            }
        }
        return .failure(WorkloadFailure(workload: name, message: "\(peer.name): no wakeup_latency line in its output"))
    }
}

/// What a peer process did.
struct ProcessOutcome {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Where the peers live and which of them work on this machine.
struct PeerSet {
    var available: [Peer] = []
    /// One line per peer that is missing or not available, for the reader.
    var notes: [String] = []
    /// The peers' programs are not built or installed (scripts/peers-setup would fix it).
    var needsSetup = false
    /// What became of each peer of PeerName.all, for the verdict (none requested until discovered).
    var statuses: [String: PeerStatus] = Dictionary(uniqueKeysWithValues: PeerName.all.map { ($0, .notRequested) })

    /// The repository root: the nearest directory at or above the working
    /// directory, then above this executable, holding Benchmarks/peers or
    /// Package.swift with Benchmarks/.
    static func repositoryRoot() -> String? {
        var starts: [String] = [FileManager.default.currentDirectoryPath]
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            starts.append((exe as NSString).deletingLastPathComponent)
        }
        for start in starts {
            var dir = start
            while true {
                if FileManager.default.fileExists(atPath: dir + "/Benchmarks/bench")
                    && FileManager.default.fileExists(atPath: dir + "/Package.swift") {
                    return dir
                }
                let parent = (dir as NSString).deletingLastPathComponent
                if parent == dir || parent.isEmpty { break }
                dir = parent
            }
        }
        return nil
    }

    /// The Python the asyncio peers run on: the venv scripts/peers-setup
    /// makes, else python3 from PATH.
    static func python(root: String) -> String {
        venvPython(root: root) ?? "python3"
    }

    /// The venv's interpreter, when scripts/peers-setup has made it.
    static func venvPython(root: String) -> String? {
        for name in ["python3", "python"] {
            let path = root + "/.build/peers-venv/bin/" + name
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Finds the peers and asks each for its workloads. Never fails: what
    /// is missing becomes a note.
    static func discover(root: String?, wanted: [String]?) -> PeerSet {
        var set = PeerSet()
        let requested = PeerName.all.filter { wanted?.contains($0) ?? true }
        guard let root else {
            set.notes.append("peers: cannot find the repository (run bench from the package directory)")
            for name in requested { set.statuses[name] = .unavailable(reason: "the repository was not found") }
            return set
        }
        for name in requested { set.statuses[name] = .unavailable(reason: "not set up") }
        var candidates: [Peer] = []
        let script = root + "/Benchmarks/peers/asyncio_peers.py"
        if FileManager.default.fileExists(atPath: script) {
            let py = python(root: root)
            if venvPython(root: root) == nil {
                set.needsSetup = true
                set.notes.append("asyncio, uvloop: no venv in .build/peers-venv yet; using python3 from PATH")
            }
            candidates.append(Peer(name: "asyncio", executable: py, leadingArguments: [script]))
            candidates.append(Peer(name: "uvloop", executable: py, leadingArguments: [script]))
        } else {
            set.needsSetup = true
            set.notes.append("asyncio, uvloop: \(script) is missing")
            for name in ["asyncio", "uvloop"] where requested.contains(name) {
                set.statuses[name] = .unavailable(reason: "Benchmarks/peers/asyncio_peers.py is missing")
            }
        }
        let swiftPackage = root + "/Benchmarks/peers/swift"
        let swiftPeers = swiftPackage + "/.build/rel/release/peers"
        if FileManager.default.isExecutableFile(atPath: swiftPeers) {
            candidates.append(Peer(name: "nio", executable: swiftPeers, leadingArguments: []))
            candidates.append(Peer(name: "concurrency", executable: swiftPeers, leadingArguments: []))
            // An old build may not speak the protocol bench now uses (e.g. --variant).
            if isOlderThanSources(swiftPeers, package: swiftPackage) {
                set.needsSetup = true
                set.notes.append("nio, concurrency: \(swiftPeers) is older than its sources")
            }
        } else {
            set.needsSetup = true
            set.notes.append("nio, concurrency: \(swiftPeers) is not built")
            for name in ["nio", "concurrency"] where requested.contains(name) {
                set.statuses[name] = .unavailable(reason: "Benchmarks/peers/swift is not built")
            }
        }
        for var peer in candidates {
            if !requested.contains(peer.name) { continue }
            let unavailable: String
            if let outcome = runProcess(peer.executable, peer.arguments(["--list"])) {
                if outcome.status == 0 {
                    peer.workloads = parseList(outcome.stdout)
                    set.available.append(peer)
                    set.statuses[peer.name] = .available(offering: peer.workloads)
                    continue
                }
                unavailable = outcome.status == 3 ? firstLine(outcome.stderr)
                    : "--list failed with status \(outcome.status): \(firstLine(outcome.stderr))"
            } else {
                unavailable = "cannot start \(peer.executable)"
            }
            set.notes.append("\(peer.name): not available (\(unavailable))")
            set.statuses[peer.name] = .unavailable(reason: unavailable)
        }
        return set
    }

    /// Whether Package.swift or a file under Sources of `package` was
    /// modified after `binary` (what scripts/peers-setup rebuilds on).
    static func isOlderThanSources(_ binary: String, package: String) -> Bool {
        let fm = FileManager.default
        func modified(_ path: String) -> Date? { (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date }
        guard let built = modified(binary) else { return false }
        var sources = [package + "/Package.swift"]
        if let files = fm.enumerator(atPath: package + "/Sources") {
            for case let file as String in files { sources.append(package + "/Sources/" + file) }
        }
        return sources.contains { modified($0).map { $0 > built } ?? false }
    }

    /// `--list` output: one workload name per line.
    static func parseList(_ text: String) -> Set<String> {
        Set(text.split(whereSeparator: \.isWhitespace).map(String.init))
    }
}

/// The first non-empty line of a peer's stderr, for a note.
func firstLine(_ s: String) -> String {
    s.split(separator: "\n").first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "no message"
}

/// Runs one peer workload once.
func runPeer(_ peer: Peer, workload: String) -> Result<PeerLine, WorkloadFailure> {
    runPeerOnce(peer, workload: workload).flatMap { lines in
        // `--variant default`: one line, without a "variant" key.
        for line in lines {
            guard let data = line.data(using: .utf8),
                  let parsed = try? JSONDecoder().decode(PeerLine.self, from: data) else { continue }
            if parsed.workload == workload && parsed.variant == nil && !parsed.runs_ns.isEmpty { return .success(parsed) }
        }
        return .failure(WorkloadFailure(workload: workload, message: "\(peer.name): no result line for \(workload) in its output"))
    }
}

/// Runs the default way of `workload` once on `peer` (`--runs 1`; its
/// start-up is outside the timed region on its side) and returns the lines
/// of its stdout.
private func runPeerOnce(_ peer: Peer, workload: String) -> Result<[Substring], WorkloadFailure> {
    let args = peer.arguments(["--workload", workload, "--variant", "default", "--runs", "1", "--json"])
    guard let outcome = runProcess(peer.executable, args) else {
        return .failure(WorkloadFailure(workload: workload, message: "\(peer.name): cannot start \(peer.executable)"))
    }
    guard outcome.status == 0 else {
        let why = outcome.status == 3 ? "not available" : "exit status \(outcome.status)"
        return .failure(WorkloadFailure(workload: workload, message: "\(peer.name): \(why): \(firstLine(outcome.stderr))"))
    }
    return .success(outcome.stdout.split(separator: "\n"))
}

/// Runs `path args` (a bare name is looked up in PATH) with stdout captured
/// and stderr in a temporary file; nil when it cannot start.
func runProcess(_ path: String, _ args: [String]) -> ProcessOutcome? {
    var errTemplate = Array((NSTemporaryDirectory() + "bench-peer-XXXXXX.err").utf8CString)
    let errFd = mkstemps(&errTemplate, 4)
    guard errFd >= 0 else { return nil }
    _ = fcntl(errFd, F_SETFD, FD_CLOEXEC)
    let errPath = String(decoding: errTemplate.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    defer {
        close(errFd)
        unlink(errPath)
    }
    guard let out = closeOnExecPipe() else { return nil }
    let child: pid_t
    do {
        child = try spawnProcess(path, args, stdin: .devNull, stdout: .fd(out.write), stderr: .fd(errFd))
    } catch {
        close(out.read)
        close(out.write)
        return nil
    }
    close(out.write)
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(out.read, &buffer, buffer.count)
        if n > 0 {
            data += buffer[..<n]
        } else if n == 0 || errno != EINTR {
            break
        }
    }
    close(out.read)
    let status = waitForExit(child)
    let err = FileManager.default.contents(atPath: errPath) ?? Data()
    return ProcessOutcome(status: status,
                          stdout: String(decoding: data, as: UTF8.self),
                          stderr: String(decoding: err, as: UTF8.self))
}

/// Runs scripts/peers-setup with its output on our stderr (stdout stays
/// clean for --json). Returns whether it succeeded.
func runPeersSetup(root: String) -> Bool {
    let script = root + "/scripts/peers-setup"
    guard FileManager.default.isExecutableFile(atPath: script) else {
        printError("note: \(script) is missing; the peers cannot be set up from here")
        return false
    }
    printError("bench: setting up the peers (scripts/peers-setup; the first time takes a few minutes)…")
    // Its stdout goes to our stderr, so ours stays clean for --json; spawned
    // like the peers (runProcess), not with Foundation's Process.
    let status: Int32
    do {
        status = waitForExit(try spawnProcess(script, [], stdin: .devNull, stdout: .fd(2)))
    } catch {
        printError("note: \(error)")
        return false
    }
    if status != 0 {
        printError("note: scripts/peers-setup failed (exit status \(status)); continuing with the peers that work")
    }
    return status == 0
}
