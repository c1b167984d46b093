// Helpers of the inspector's tests: the built executables, child processes,
// the fixture's report, and the conditions under which a test cannot run.

import CAsyncio
import Foundation
import InspectFixtureSupport
import Testing

/// The directory holding the built products (next to the test bundle).
let productsDirectory: URL = {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    // The bundle is either a plain binary or an .xctest directory.
    if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
    return dir
}()

let inspectorPath = productsDirectory.appendingPathComponent("asyncio-inspect").path
let fixturePath = productsDirectory.appendingPathComponent("inspect-fixture").path
let swiftFixturePath = productsDirectory.appendingPathComponent("inspect-fixture-swift").path

/// The package root (for reading the fixture's source).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// True once the core registers threads and loops in the debug registry:
/// the hooks in object.c and loop.c (debug_internal.h) are installed.
let registryHooksInstalled: Bool = {
    _ = ca_get_running_loop()  // registers this thread if the hook is there
    return ca_debug_thread_count() > 0
}()

/// Why reading another process cannot work here, or nil when it can.
/// process_vm_readv needs ptrace read access: the same user, and with Yama's
/// ptrace_scope 1 an ancestor (asyncio-inspect is the fixture's sibling).
let crossProcessReadingRefusal: String? = {
    let scope = readFile("/proc/sys/kernel/yama/ptrace_scope").trimmingCharacters(in: .whitespacesAndNewlines)
    if let value = Int(scope), value >= 1, getuid() != 0 {
        return "kernel.yama.ptrace_scope is \(value): process_vm_readv from asyncio-inspect into the fixture is refused"
    }
    return nil
}()

/// Why the subprocess tests cannot run, printed when they are skipped.
let subprocessSkipReason: String? = {
    if !registryHooksInstalled {
        return "the debug registry hooks are not installed in object.c/loop.c (see docs/debug-offsets.md)"
    }
    if !FileManager.default.isExecutableFile(atPath: inspectorPath) { return "asyncio-inspect is not built" }
    if !FileManager.default.isExecutableFile(atPath: fixturePath) { return "inspect-fixture is not built" }
    return crossProcessReadingRefusal
}()

func skipNote(_ reason: String?) -> Bool {
    if let reason { print("skipped: \(reason)") }
    return reason == nil
}

/// The result of a finished process.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs an executable to completion (stdin empty), with a timeout. Output
/// goes through files: a pipe nobody drains would block a chatty child. The
/// child starts with no signal blocked: test bodies run on dispatch worker
/// threads, which block nearly every signal, and a gdb started with SIGCHLD
/// blocked misses its inferior's stops and waits forever.
func run(_ path: String, _ args: [String], timeout: Double = 30) throws -> Run {
    let tag = "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-out-\(tag)").path
    let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-err-\(tag)").path
    defer {
        unlink(outPath)
        unlink(errPath)
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var none = sigset_t(), defaults = sigset_t()
    sigemptyset(&none)
    sigemptyset(&defaults)
    for sig in [SIGCHLD, SIGPIPE, SIGINT, SIGTERM, SIGHUP] { sigaddset(&defaults, sig) }
    posix_spawnattr_setsigmask(&attr, &none)
    posix_spawnattr_setsigdefault(&attr, &defaults)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attr, &argv, environ)
    if rc != 0 { throw TestFailure("cannot start \(path): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    let deadline = Date().addingTimeInterval(timeout)
    while waitpid(pid, &status, WNOHANG) == 0 {
        if Date() > deadline {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            throw TestFailure("\(path) \(args) did not finish within \(timeout) s")
        }
        usleep(2000)
    }
    let exited = status & 0x7f == 0
    return Run(status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f),
               stdout: readFile(outPath), stderr: readFile(errPath))
}

/// The file's bytes as UTF-8 (plain read(2): Foundation's Data(contentsOf:)
/// leaks a buffer per call under LeakSanitizer in 6.3.1).
func readFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A task as the fixture describes it.
struct RoleInfo {
    var addr: UInt64
    var name: String
    var thread: UInt64
    var waitingOn: UInt64
    /// Outermost first: (name, file, line).
    var frames: [(name: String, file: String, line: Int)]
}

/// The fixture's report line.
struct FixtureReport {
    var pid: Int32
    var mainThread: UInt64
    var otherThread: UInt64
    var shared: UInt64
    var taskCount: Int
    var roles: [String: RoleInfo]

    init(json line: String) throws {
        guard let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestFailure("bad report: \(line)")
        }
        func addr(_ v: Any?) -> UInt64 {
            guard let s = v as? String, s.hasPrefix("0x") else { return 0 }
            return UInt64(s.dropFirst(2), radix: 16) ?? 0
        }
        pid = Int32(obj["pid"] as? Int ?? 0)
        mainThread = UInt64(obj["main_thread"] as? Int ?? 0)
        otherThread = UInt64(obj["other_thread"] as? Int ?? 0)
        shared = addr(obj["shared"])
        taskCount = obj["tasks"] as? Int ?? 0
        roles = [:]
        for (role, value) in obj["roles"] as? [String: Any] ?? [:] {
            let r = value as? [String: Any] ?? [:]
            let frames = (r["frames"] as? [[Any]] ?? []).map {
                (name: $0[0] as? String ?? "", file: $0[1] as? String ?? "", line: $0[2] as? Int ?? 0)
            }
            roles[role] = RoleInfo(addr: addr(r["addr"]), name: r["name"] as? String ?? "",
                                   thread: UInt64(r["thread"] as? Int ?? 0), waitingOn: addr(r["waiting_on"]),
                                   frames: frames)
        }
    }

    func role(_ name: String) throws -> RoleInfo {
        guard let r = roles[name] else { throw TestFailure("the fixture reported no task '\(name)'") }
        return r
    }
}

/// A running `inspect-fixture`, at rest once started; `finish()` lets it
/// tear down and returns its exit status. Spawned like `run` (posix_spawn,
/// clean signal mask), not with Foundation's Process, which leaks under
/// LeakSanitizer.
final class FixtureProcess {
    let pid: pid_t
    private var stdinWrite: Int32
    private(set) var report: FixtureReport!
    private var reaped = false

    init(_ args: [String], executable: String = fixturePath) throws {
        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        // close-on-exec: another child spawned meanwhile must not inherit this one's stdin,
        // or closing ours would never give it EOF
        guard if_pipe_cloexec(&toChild) == 0, if_pipe_cloexec(&fromChild) == 0 else {
            throw TestFailure("pipe failed")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))
        var argv: [UnsafeMutablePointer<CChar>?] = ([executable] + args).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attr, &argv, environ)
        close(toChild[0])
        close(fromChild[1])
        defer { close(fromChild[0]) }
        pid = child
        stdinWrite = toChild[1]
        if rc != 0 {
            close(stdinWrite)
            throw TestFailure("cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            if read(fromChild[0], &byte, 1) != 1 { throw TestFailure("inspect-fixture \(args) exited before reporting") }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        report = try FixtureReport(json: String(decoding: line, as: UTF8.self))
    }

    func finish() -> Int32 {
        if stdinWrite >= 0 {
            close(stdinWrite)
            stdinWrite = -1
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        reaped = true
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    deinit {
        if !reaped {
            if stdinWrite >= 0 { close(stdinWrite) }
            kill(pid, SIGKILL)  // also when a debugger left it stopped
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }
}

/// Python's `f"{s:<width}"`.
func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

/// gdb, when installed.
let gdbPath: String? = ["/usr/bin/gdb", "/usr/local/bin/gdb"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// VmSize of a process, in KiB (0 when unknown).
func virtualMemoryKB(_ pid: Int32) -> Int {
    for line in readFile("/proc/\(pid)/status").split(separator: "\n") where line.hasPrefix("VmSize:") {
        return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? 0
    }
    return 0
}

/// A C compiler on PATH (clang first), when there is one.
let compilerPath: String? = {
    let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    for name in ["clang", "cc"] {
        for dir in dirs where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") { return "\(dir)/\(name)" }
    }
    return nil
}()

/// Why gdb should not be pointed at this child: under AddressSanitizer the
/// child reserves terabytes of shadow memory, and attaching or dumping it
/// takes longer than any test should.
func debuggerSkipReason(_ pid: Int32) -> String? {
    virtualMemoryKB(pid) > 64 << 20 ? "the child's address space is too large for gdb (a sanitizer build?)" : nil
}
