import ArgumentParser
import SwiftBench
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Output: the table for people, JSON lines for tools.
enum Report {
    static func printTable(_ summaries: [Summary], repetitions: Int) {
        let header = ["workload", "impl", "N", "median ns/op", "min–max ns/op", "allocs/op", "mallocs/op"]
        let rows = summaries.map { s in
            [
                s.workload.name,
                s.impl.rawValue,
                String(s.n),
                BenchFormat.fixed(s.medianNsPerOp, digits: 1),
                "\(BenchFormat.fixed(s.minNsPerOp, digits: 1))–\(BenchFormat.fixed(s.maxNsPerOp, digits: 1))",
                BenchFormat.allocs(s.allocsPerOp),
                s.mallocsPerOp.map { BenchFormat.allocs($0) } ?? "—",
            ]
        }
        printAligned(header: header, rows: rows, leftColumns: 2)
        let backends = Set(summaries.map(\.backend)).sorted().joined(separator: ", ")
        let impls = Set(summaries.map(\.impl))
        let legend = [impls.contains(.c) ? "c = the C core" : nil,
                      impls.contains(.swift) ? "swift = the Swift layer (module Asyncio)" : nil]
            .compactMap { $0 }.joined(separator: ", ")
        print("\(legend) (\(backends) backend); median of \(repetitions) run(s) after a warm-up each.")
        print("allocs/op: the core's allocator (ca_alloc_stats); mallocs/op: every malloc of the measuring thread, the Swift runtime's included.")
        fflush(nil)
    }

    /// One JSON object on one line; the keys `bench run --json` promises first.
    static func printJSON(_ s: Summary) {
        let fields: [(key: String, value: String)] = [
            ("workload", JSONLine.quoted(s.workload.name)),
            ("impl", JSONLine.quoted(s.impl.rawValue)),
            ("n", String(s.n)),
            ("ns_per_op", BenchFormat.fixed(s.medianNsPerOp, digits: 3)),
            ("min_ns_per_op", BenchFormat.fixed(s.minNsPerOp, digits: 3)),
            ("max_ns_per_op", BenchFormat.fixed(s.maxNsPerOp, digits: 3)),
            ("allocs_per_op", BenchFormat.allocs(s.allocsPerOp)),
            ("mallocs_per_op", s.mallocsPerOp.map { BenchFormat.allocs($0) } ?? "null"),
            ("repetitions", String(s.repetitions)),
            ("unit", JSONLine.quoted(s.workload.unit)),
            ("backend", JSONLine.quoted(s.backend)),
        ]
        printJSONObject(fields)
    }

    /// Prints `fields` (values already JSON) as one object on one line.
    static func printJSONObject(_ fields: [(key: String, value: String)]) {
        print(JSONLine.object(fields))
        fflush(nil)
    }

    /// Prints a table with aligned columns (TextTable.lines).
    static func printAligned(header: [String], rows: [[String]], leftColumns: Int, leftAfter: Int = .max) {
        for line in TextTable.lines(header: header, rows: rows, leftColumns: leftColumns, leftAfter: leftAfter) {
            print(line)
        }
    }
}

/// Writes one line to stderr (unbuffered, so it is never lost behind stdout).
func printError(_ message: String) {
    printErrorRaw(message + "\n")
}

/// Writes `text` to stderr as it is (no newline): the progress line.
func printErrorRaw(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        _ = write(2, bytes.baseAddress, bytes.count)
    }
}

/// `echo-server --json`: a pipe the server's report lines ("READY <port>",
/// "RUSAGE <user_us> <sys_us>") go to, and a thread that prints each as one
/// JSON object on stdout. Returns the pipe's write end.
func jsonReportFD(impl: String) throws -> Int32 {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else {
        printError("error: pipe: \(String(cString: strerror(errno)))")
        throw ExitCode.failure
    }
    let context = Unmanaged.passRetained(JSONRelay(fd: fds[0], impl: impl)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        let relay = Unmanaged<JSONRelay>.fromOpaque(raw!).takeRetainedValue()
        relay.run()
        return nil
    }, context)
    guard rc == 0 else {
        Unmanaged<JSONRelay>.fromOpaque(context).release()
        printError("error: pthread_create: \(String(cString: strerror(rc)))")
        throw ExitCode.failure
    }
    pthread_detach(thread)
    return fds[1]
}

/// Reads report lines from a pipe and prints them as JSON (its own thread only).
private final class JSONRelay {
    let file: UnsafeMutablePointer<FILE>?
    let impl: String

    init(fd: Int32, impl: String) {
        file = fdopen(fd, "r")
        self.impl = impl
    }

    func run() {
        guard let file else { return }
        var buf = [CChar](repeating: 0, count: 128)
        while fgets(&buf, Int32(buf.count), file) != nil {
            let parts = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                .split(whereSeparator: { $0 == " " || $0 == "\n" })
            if parts.count == 2, parts[0] == "READY", let port = UInt16(parts[1]) {
                Report.printJSONObject([("event", "\"ready\""), ("impl", JSONLine.quoted(impl)), ("port", String(port))])
            } else if parts.count == 3, parts[0] == "RUSAGE", let u = UInt64(parts[1]), let s = UInt64(parts[2]) {
                Report.printJSONObject([("event", "\"rusage\""), ("user_us", String(u)), ("sys_us", String(s))])
            }
        }
    }
}
