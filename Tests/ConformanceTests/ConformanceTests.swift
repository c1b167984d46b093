// The public conformance corpus (../shared/conformance: scenarios/ and
// generated/) through both engines, in-process (`c`: the C core driven
// directly; `swift`: the bodies as Swift async functions on the Swift layer): every scenario's trace
// must equal its .trace file byte for byte (README.md, SPEC.md). A mismatch
// is reported with a unified diff of expected and actual traces.

import CConformance
import SwiftConformance
import Foundation
import Testing

/// The corpus: $ASYNCIO_CONFORMANCE_DIR, else ../shared/conformance beside the package.
enum Corpus {
    static let root: URL = {
        if let dir = ProcessInfo.processInfo.environment["ASYNCIO_CONFORMANCE_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        // Tests/ConformanceTests/<this file> -> the package -> its parent
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("shared/conformance", isDirectory: true)
    }()

    /// The scenario files of a corpus directory, by name.
    static func scenarios(in directory: String) -> [String] {
        let dir = root.appendingPathComponent(directory, isDirectory: true)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { "\(directory)/\($0)" }
    }
}

/// The engines of asyncio-conformance.
enum Engine { case c, swift }

/// What the engine made of one scenario.
struct Run {
    var status: Int32
    var trace: String
    var message: String?

    init(path: String, engine: Engine) {
        if engine == .swift {
            let bytes = FileManager.default.contents(atPath: path).map { [UInt8]($0) }
            let outcome = bytes.map { swiftConformanceRun(bytes: $0) }
                ?? SwiftOutcome(status: 2, trace: "", message: "\(path): cannot read the file")
            status = outcome.status
            trace = outcome.trace
            message = outcome.message
            return
        }
        var outcome = cconf_outcome()
        status = cconf_run_file(path, &outcome)
        trace = outcome.trace.map { String(cString: $0) } ?? ""
        message = outcome.message.map { String(cString: $0) }
        cconf_outcome_free(&outcome)
    }
}

/// A unified diff of two traces: the changed lines with three lines of context,
/// hunks separated by "@@" (without line numbers).
func unifiedDiff(expected: String, actual: String, name: String) -> String {
    let a = expected.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let b = actual.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    // longest common subsequence table, from the ends
    var lcs = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in stride(from: a.count - 1, through: 0, by: -1) {
        for j in stride(from: b.count - 1, through: 0, by: -1) {
            lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
        }
    }
    enum Line { case same(String), removed(String), added(String) }
    var script: [Line] = []
    var i = 0, j = 0
    while i < a.count || j < b.count {
        if i < a.count, j < b.count, a[i] == b[j] {
            script.append(.same(a[i])); i += 1; j += 1
        } else if i < a.count, j == b.count || lcs[i + 1][j] >= lcs[i][j + 1] {
            script.append(.removed(a[i])); i += 1
        } else {
            script.append(.added(b[j])); j += 1
        }
    }
    let changed = script.indices.filter { if case .same = script[$0] { false } else { true } }
    var out = "--- \(name) (expected)\n+++ \(name) (actual)\n"
    var shown = Set<Int>()
    for k in changed { for c in max(0, k - 3)...min(script.count - 1, k + 3) { shown.insert(c) } }
    var last = -1
    for k in shown.sorted() {
        if k != last + 1 { out += "@@\n" }
        switch script[k] {
        case .same(let s): out += " \(s)\n"
        case .removed(let s): out += "-\(s)\n"
        case .added(let s): out += "+\(s)\n"
        }
        last = k
    }
    return out
}

/// Runs every scenario of a corpus directory; records one issue per scenario
/// whose run fails or whose trace differs from its .trace file.
func checkDirectory(_ directory: String, engine: Engine = .c) {
    let scenarios = Corpus.scenarios(in: directory)
    #expect(!scenarios.isEmpty, "no scenarios under \(Corpus.root.path)/\(directory)")
    var failed = 0
    for scenario in scenarios {
        let json = Corpus.root.appendingPathComponent(scenario)
        let expectedURL = json.deletingPathExtension().appendingPathExtension("trace")
        guard let expected = try? String(contentsOf: expectedURL, encoding: .utf8) else {
            failed += 1
            Issue.record("\(scenario): no expected trace \(expectedURL.lastPathComponent)")
            continue
        }
        let run = Run(path: json.path, engine: engine)
        if run.status != 0 {
            failed += 1
            Issue.record("\(scenario): exit status \(run.status): \(run.message ?? "")")
        } else if run.trace != expected {
            failed += 1
            let diff = unifiedDiff(expected: expected, actual: run.trace, name: scenario)
            Issue.record("\(scenario): the trace differs\n\(diff)")
        }
    }
    #expect(failed == 0, "\(failed) of \(scenarios.count) scenarios in \(directory) failed (\(engine) engine)")
}

@Suite("Conformance corpus, c engine")
struct ConformanceTests {
    @Test("every hand-written scenario gives its expected trace")
    func handWritten() { checkDirectory("scenarios") }

    @Test("every generated scenario gives its expected trace")
    func generated() { checkDirectory("generated") }
}

@Suite("Conformance corpus, swift engine")
struct SwiftEngineConformanceTests {
    @Test("every hand-written scenario gives its expected trace")
    func handWritten() { checkDirectory("scenarios", engine: .swift) }

    @Test("every generated scenario gives its expected trace")
    func generated() { checkDirectory("generated", engine: .swift) }
}
