import ArgumentParser

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
            samples.sort()
            let median = samples[samples.count / 2]
            if json {
                print("{\"workload\":\"inspect_\(command)\",\"tasks\":\(tasks),\"median_ms\":\(Report.fixed(median, digits: 2)),"
                      + "\"min_ms\":\(Report.fixed(samples.first!, digits: 2)),\"max_ms\":\(Report.fixed(samples.last!, digits: 2))}")
            } else {
                print("asyncio-inspect \(command) on \(tasks) tasks: median \(Report.fixed(median, digits: 1)) ms "
                      + "(\(Report.fixed(samples.first!, digits: 1))–\(Report.fixed(samples.last!, digits: 1)) ms, \(repetitions) runs)"
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

private func nowMs() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
}

/// Spawns `path args` with stdout and stderr on /dev/null, waits, and
/// returns the wall time in milliseconds; a non-zero exit is an error.
private func timedRun(_ path: String, _ args: [String]) throws -> Double {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let start = nowMs()
    let pid = try spawn(path, args, &actions)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    let elapsed = nowMs() - start
    if status != 0 {
        printError("error: \(path) \(args.joined(separator: " ")) exited with status \(status)")
        throw ExitCode.failure
    }
    return elapsed
}

private func spawn(_ path: String, _ args: [String], _ actions: inout posix_spawn_file_actions_t) throws -> pid_t {
    var argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, &argv, environ)
    if rc != 0 {
        printError("error: cannot start \(path): \(String(cString: strerror(rc)))")
        throw ExitCode.failure
    }
    return pid
}

/// `inspect-fixture many N`, at rest once its report line is read.
private final class Fixture {
    let pid: pid_t
    private let stdinWrite: Int32

    init(path: String, tasks: Int) throws {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw ExitCode.failure }
        // close-on-exec, so the timed asyncio-inspect runs do not inherit the fixture's stdin
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        pid = try spawn(path, ["many", String(tasks)], &actions)
        close(toChild[0])
        close(fromChild[1])
        stdinWrite = toChild[1]
        var byte: UInt8 = 0
        while read(fromChild[0], &byte, 1) == 1 && byte != UInt8(ascii: "\n") {}
        close(fromChild[0])
    }

    func finish() {
        close(stdinWrite)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
