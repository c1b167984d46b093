// Starting child processes: the peers, scripts/peers-setup, the echo server
// (`bench echo`) and asyncio-inspect with its fixture (`bench inspect`).
//
// posix_spawn rather than Foundation's `Process`: `Process` leaves a
// monitoring thread and run-loop machinery behind in this process, after
// which the Swift layer's workloads measured here ran ~20 % slower (sleep0
// 146 -> 178 ns, ping_pong 350 -> 410 ns) while the C core's did not move.

#if canImport(Glibc)
import Glibc
#endif

/// What one of a child's standard descriptors (0, 1, 2) becomes.
enum ChildDescriptor {
    /// This process's own.
    case inherit
    /// /dev/null (read-only for 0, write-only for 1 and 2).
    case devNull
    /// A descriptor of this process, duplicated onto it.
    case fd(Int32)
}

/// A child that could not be started: posix_spawn's error number.
struct SpawnError: Error, CustomStringConvertible {
    let path: String
    let code: Int32
    var description: String { "cannot start \(path): \(String(cString: strerror(code)))" }
}

/// Starts `path` with `arguments` (argv[0] is `argv0`, else `path`); a path
/// without a slash is looked up in PATH. Only the standard descriptors are
/// set up: make every other descriptor the child must not keep close-on-exec
/// (`closeOnExecPipe`). `environment` nil passes this process's own.
func spawnProcess(_ path: String, _ arguments: [String], argv0: String? = nil,
                  stdin: ChildDescriptor = .inherit, stdout: ChildDescriptor = .inherit,
                  stderr: ChildDescriptor = .inherit, environment: [String]? = nil) throws(SpawnError) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (target, what) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
        switch what {
        case .inherit: break
        case .devNull: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
        case .fd(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
        }
    }
    var argv: [UnsafeMutablePointer<CChar>?] = ([argv0 ?? path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var child: pid_t = 0
    func start(_ env: UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
        path.contains("/") ? posix_spawn(&child, path, &actions, nil, &argv, env)
                           : posix_spawnp(&child, path, &actions, nil, &argv, env)
    }
    let rc: Int32
    if let environment {
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        rc = envp.withUnsafeBufferPointer { start($0.baseAddress!) }
    } else {
        rc = start(environ)
    }
    guard rc == 0 else { throw SpawnError(path: path, code: rc) }
    return child
}

/// Waits for `pid` and returns its exit status, or 128 + the signal that
/// ended it (as a shell reports it).
@discardableResult
func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    // WIFEXITED / WEXITSTATUS / WTERMSIG, which Glibc's macros do not export.
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}

/// A pipe whose two ends are close-on-exec, so a child gets only the end
/// spawnProcess duplicates onto its standard descriptors. Nil on failure.
func closeOnExecPipe() -> (read: Int32, write: Int32)? {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { return nil }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return (fds[0], fds[1])
}
