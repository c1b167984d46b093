import ArgumentParser
import CAsyncioBench
import SwiftBench

#if canImport(Glibc)
import Glibc
#endif

/// `bench inspect`: how long `asyncio-inspect ps PID` takes on a process with
/// many tasks (target: under 100 ms for 10,000). It starts `inspect-fixture
/// many N` (a gather of N tasks, each two coroutines deep, all suspended),
/// then times whole `asyncio-inspect` runs (process start, finding the table,
/// reading every task, printing) from spawn to exit. Both executables are
/// taken from the directory of this one: build them with the same
/// configuration (`swift build -c release`).
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Times asyncio-inspect ps/pstree on a process with many tasks."
    )

    @Option(help: "Tasks in the inspected process.")
    var tasks = 10_000

    @Option(help: "Timed runs per command; the median is reported.")
    var repetitions = 11

    @Flag(help: "Print one JSON object per command instead of the table.")
    var json = false

    func validate() throws {
        if tasks < 1 { throw ValidationError("--tasks must be at least 1") }
        if repetitions < 1 { throw ValidationError("--repetitions must be at least 1") }
    }

    func run() throws {
        let dir = executableDirectory()
        let inspector = dir + "/asyncio-inspect", fixture = dir + "/inspect-fixture"
        for path in [inspector, fixture] where access(path, X_OK) != 0 {
            printError("error: \(path) is missing: swift build \(dir.contains("/release") ? "-c release " : "")--product \(path.split(separator: "/").last!)")
            throw ExitCode.failure
        }
        let child = try Fixture(path: fixture, tasks: tasks)
        defer { child.finish() }
        for command in ["ps", "pstree"] {
            _ = try timedRun(inspector, [command, String(child.pid)])  // warm the page cache
            var samples: [Double] = []
            for _ in 0..<repetitions { samples.append(try timedRun(inspector, [command, String(child.pid)])) }
            let median = SwiftBench.median(samples)!
            if json {
                print("{\"workload\":\"inspect_\(command)\",\"tasks\":\(tasks),\"median_ms\":\(BenchFormat.fixed(median, digits: 2)),"
                      + "\"min_ms\":\(BenchFormat.fixed(samples.min()!, digits: 2)),\"max_ms\":\(BenchFormat.fixed(samples.max()!, digits: 2))}")
            } else {
                print("asyncio-inspect \(command) on \(tasks) tasks: median \(BenchFormat.fixed(median, digits: 1)) ms "
                      + "(\(BenchFormat.fixed(samples.min()!, digits: 1))–\(BenchFormat.fixed(samples.max()!, digits: 1)) ms, \(repetitions) runs)"
                      + (command == "ps" && tasks == 10_000 ? "; target < 100 ms" : ""))
            }
        }
    }
}

private func executableDirectory() -> String {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    let path = n > 0 ? String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "."
    return path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
}

/// Spawns `path args` with stdout and stderr on /dev/null, waits, and
/// returns the wall time in milliseconds; a non-zero exit is an error.
private func timedRun(_ path: String, _ args: [String]) throws -> Double {
    let start = cab_now_ns()
    let status = waitForExit(try started(path, args, stdout: .devNull, stderr: .devNull))
    let elapsed = Double(cab_now_ns() - start) / 1e6
    if status != 0 {
        printError("error: \(path) \(args.joined(separator: " ")) exited with status \(status)")
        throw ExitCode.failure
    }
    return elapsed
}

/// spawnProcess, with a failure reported on stderr.
private func started(_ path: String, _ args: [String], stdin: ChildDescriptor = .inherit,
                     stdout: ChildDescriptor = .inherit, stderr: ChildDescriptor = .inherit) throws -> pid_t {
    do {
        return try spawnProcess(path, args, stdin: stdin, stdout: stdout, stderr: stderr)
    } catch {
        printError("error: \(error)")
        throw ExitCode.failure
    }
}

/// `inspect-fixture many N`, at rest once its report line is read.
private final class Fixture {
    let pid: pid_t
    private let stdinWrite: Int32

    init(path: String, tasks: Int) throws {
        // close-on-exec, so the timed asyncio-inspect runs do not inherit the fixture's stdin
        guard let toChild = closeOnExecPipe() else { throw ExitCode.failure }
        guard let fromChild = closeOnExecPipe() else {
            close(toChild.read)
            close(toChild.write)
            throw ExitCode.failure
        }
        defer { close(fromChild.read) }
        do {
            pid = try started(path, ["many", String(tasks)], stdin: .fd(toChild.read), stdout: .fd(fromChild.write))
        } catch {
            for fd in [toChild.read, toChild.write, fromChild.write] { close(fd) }
            throw error
        }
        close(toChild.read)
        close(fromChild.write)
        stdinWrite = toChild.write
        var byte: UInt8 = 0
        while read(fromChild.read, &byte, 1) == 1 && byte != UInt8(ascii: "\n") {}
    }

    func finish() {
        close(stdinWrite)
        waitForExit(pid)
    }
}
