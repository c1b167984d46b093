import ArgumentParser
import CAsyncioInspect

#if canImport(Glibc)
import Glibc
#endif

/// `asyncio-inspect`: what `python -m asyncio ps|pstree PID` shows for a
/// Python process, for a process (or core dump) linking the C core.
@main
struct AsyncioInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asyncio-inspect",
        abstract: "Lists the asyncio tasks of a running process or a core dump from outside.",
        discussion: """
            The process is never stopped, attached to or written: its memory is read with \
            process_vm_readv (same user, ptrace read access), guided by the debug offsets table \
            the core publishes in its .casyncio_debug ELF section (docs/debug-offsets.md).
            """,
        subcommands: [Ps.self, Pstree.self]
    )
}

/// The target options both subcommands take.
struct TargetOptions: ParsableArguments {
    @Argument(help: "The process id.")
    var pid: Int32?

    @Option(help: "Read a core dump instead of a live process.")
    var core: String?

    @Option(help: "With --core: the executable the core was dumped from, when it moved or its path is not in the core.")
    var exe: String?

    @Flag(help: "Print JSON instead of the table or tree.")
    var json = false

    func validate() throws {
        if pid == nil && core == nil { throw ValidationError("give a PID or --core CORE") }
        if pid != nil && core != nil { throw ValidationError("give a PID or --core CORE, not both") }
        if exe != nil && core == nil { throw ValidationError("--exe goes with --core") }
    }

    var target: Target {
        if let core { return .core(path: core, executable: exe) }
        return .process(pid!)
    }

    /// Reads the snapshot, or prints CPython's "Error retrieving tasks" and exits 1.
    func snapshot() throws -> ProcessSnapshot {
        do {
            return try takeSnapshot(of: target)
        } catch {
            print("Error retrieving tasks: \(error.message)")
            throw ExitCode(1)
        }
    }
}

struct Ps: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Shows the tasks as a table: one row per task and awaiter."
    )

    @OptionGroup var options: TargetOptions

    func run() throws {
        let snapshot = try options.snapshot()
        if options.json {
            writeStdout(snapshotJSON(snapshot).text + "\n")
        } else {
            writeBytes(1, renderTaskTable(snapshot))
        }
    }
}

struct Pstree: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Shows the tasks as a tree of who awaits whom; exits 1 on an await cycle."
    )

    @OptionGroup var options: TargetOptions

    func run() throws {
        let snapshot = try options.snapshot()
        if options.json {
            let (doc, hasCycles) = treeJSON(snapshot)
            writeStdout(doc.text + "\n")
            if hasCycles { throw ExitCode(1) }
            return
        }
        switch buildAsyncTree(snapshot) {
        case .trees(let trees):
            writeStdout(trees.map { $0.joined(separator: "\n") + "\n" }.joined())
        case .cycles(let cycles, let names):
            writeOutput(2, renderCycles(cycles, names: names))
            throw ExitCode(1)
        }
    }
}

/// One write for the whole output (10,000 rows through `print` cost more).
func writeStdout(_ text: String) { writeOutput(1, text) }

func writeOutput(_ fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { writeAll(fd, $0) }
}

func writeBytes(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBufferPointer { writeAll(fd, $0) }
}

private func writeAll(_ fd: Int32, _ buf: UnsafeBufferPointer<UInt8>) {
    guard var p = buf.baseAddress else { return }
    var left = buf.count
    while left > 0 {
        let n = write(fd, p, left)
        if n <= 0 { break }
        p += n
        left -= n
    }
}
