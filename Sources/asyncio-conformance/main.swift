// asyncio-conformance: executes one scenario of ../shared/conformance on our
// implementation under the loop's virtual clock and prints its trace
// (README.md, "Writing a runner"): exit 0 with the trace on stdout, 2 for an
// invalid scenario or a failed run, 3 for a scenario that needs a feature we
// lack; diagnostics go to stderr.

import CConformance
import SwiftConformance

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The engines of issue 5: `c` drives the C core directly; `swift` runs the
/// bodies as Swift async functions on the Swift layer.
enum Engine: String {
    case c
    case swift
}

/// Writes all of `bytes` to a file descriptor (stdout and stderr are C
/// globals Swift 6 will not touch: write(2) needs no shared state).
func put(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
    var rest = bytes
    while !rest.isEmpty {
        let n = write(fd, rest.baseAddress, rest.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        rest = UnsafeRawBufferPointer(rebasing: rest[n...])
    }
}

func put(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { put(fd, UnsafeRawBufferPointer($0)) }
}

func fail(_ message: String) -> Never {
    put(STDERR_FILENO, "asyncio-conformance: \(message)\n")
    exit(2)
}

let usage = "usage: asyncio-conformance FILE.json [--engine c|swift]"

var engine = Engine.c
var path: String?
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "--engine":
        guard let name = args.popFirst() else { fail(usage) }
        guard let chosen = Engine(rawValue: name) else { fail("unknown engine '\(name)'; \(usage)") }
        engine = chosen
    case _ where arg.hasPrefix("--engine="):
        let name = String(arg.dropFirst("--engine=".count))
        guard let chosen = Engine(rawValue: name) else { fail("unknown engine '\(name)'; \(usage)") }
        engine = chosen
    case "-h", "--help":
        put(STDOUT_FILENO, usage + "\n")
        exit(0)
    case _ where arg.hasPrefix("-"):
        fail("unknown option '\(arg)'; \(usage)")
    default:
        guard path == nil else { fail(usage) }
        path = arg
    }
}
guard let path else { fail(usage) }

switch engine {
case .swift:
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { fail("cannot open \(path)") }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    close(fd)
    let outcome = swiftConformanceRun(bytes: bytes)
    put(STDOUT_FILENO, outcome.trace)
    if let message = outcome.message {
        let prefix = outcome.status == 3 ? "SKIP" : "ERROR"
        put(STDERR_FILENO, "\(prefix) \(path): \(message)\n")
    }
    exit(outcome.status)
case .c:
    var outcome = cconf_outcome()
    let status = cconf_run_file(path, &outcome)
    if let trace = outcome.trace {
        put(STDOUT_FILENO, UnsafeRawBufferPointer(start: trace, count: outcome.trace_len))
    }
    if let message = outcome.message {
        let prefix = status == Int32(CCONF_SKIPPED.rawValue) ? "SKIP" : "ERROR"
        put(STDERR_FILENO, "\(prefix) \(path): \(String(cString: message))\n")
    }
    cconf_outcome_free(&outcome)
    exit(status)
}
