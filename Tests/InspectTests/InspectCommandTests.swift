// `asyncio-inspect ps` / `pstree` against a child process with a known task
// tree, an await cycle, and a core dump of the child; output compared with
// CPython 3.14's `python -m asyncio ps|pstree` format (Lib/asyncio/tools.py,
// notes §4.6). The tree comes in two builds of the same shape: C tasks only
// (inspect-fixture) and Swift-bodied tasks beside C ones
// (inspect-fixture-swift).

import Foundation
import Testing

/// A fixture executable that builds the tree, and what its tasks show.
struct TreeFixture: Sendable, CustomTestStringConvertible {
    /// The tree's tasks in list order: role, function names innermost
    /// first, and the role of the task awaiting it.
    typealias Spec = [(role: String, stack: [String], awaiter: String?)]

    var label: String
    var executable: String
    var spec: Spec

    var testDescription: String { label }

    /// inspect-fixture: every task a C coroutine of the kit.
    static let c = TreeFixture(label: "C tasks", executable: fixturePath, spec: [
        ("main", ["taskgroup_aexit", "main_body"], nil),
        ("reporter", ["reporter"], nil),
        ("alpha", ["alpha_body"], "main"),
        ("beta", ["beta_inner", "beta_body"], "main"),
        ("delta", ["delta_body"], "alpha"),
        ("gathered", ["gamma_body"], "alpha"),
        ("epsilon", ["epsilon_body"], "gathered"),
        ("remote-main", ["remote_main"], nil),
        ("remote-child", ["remote_child"], "remote-main"),
    ])

    /// inspect-fixture-swift: Swift bodies (named by the `function:` their
    /// task was created with) awaiting C tasks, delegating to a C coroutine
    /// (the task group's exit) and awaited by C tasks' awaiters.
    static let swift = TreeFixture(label: "Swift and C tasks", executable: swiftFixturePath, spec: [
        ("main", ["taskgroup_aexit", "mainBody()"], nil),
        ("reporter", ["reporter()"], nil),
        ("alpha", ["alpha()"], "main"),
        ("beta", ["c_waiter", "c_nested"], "main"),
        ("delta", ["delta()"], "alpha"),
        ("gathered", ["gathered()"], "alpha"),
        ("epsilon", ["c_waiter"], "gathered"),
        ("remote-main", ["remoteMain()"], nil),
        ("remote-child", ["c_waiter"], "remote-main"),
    ])

    static let all = [c, swift]

    /// Why this fixture cannot run, or nil.
    var skipReason: String? {
        subprocessSkipReason
            ?? (FileManager.default.isExecutableFile(atPath: executable) ? nil : "\(executable) is not built")
    }
}

/// The expected `ps` text, built from the spec and the addresses, names and
/// thread ids the fixture reported.
private func expectedTable(_ r: FixtureReport, _ fixture: TreeFixture) throws -> String {
    var out = "tid        task id              task name            coroutine stack                                    awaiter chain                                      awaiter name    awaiter id     \n"
    out += String(repeating: "-", count: 180) + "\n"
    for (role, stack, awaiter) in fixture.spec {
        let t = try r.role(role)
        var cells = ["\(t.thread)", hex(t.addr), t.name, stack.joined(separator: " -> ")]
        if let awaiter {
            let a = try r.role(awaiter)
            let chain = fixture.spec.first { $0.role == awaiter }!.stack.joined(separator: " -> ")
            cells += [chain, a.name, hex(a.addr)]
        } else {
            cells += ["", "", "0x0"]
        }
        out += zip(cells, [10, 20, 20, 50, 50, 15, 15]).map { pad($0, $1) }.joined(separator: " ") + "\n"
    }
    return out
}

/// The expected `pstree` text: `{role.N}` is frame N (outermost first) of
/// that role's stack as "name file:line".
private func expectedTree(_ r: FixtureReport, _ fixture: TreeFixture) throws -> String {
    let template = """
        └── (T) main
            └──  {main.0}
                └──  {main.1}
                    ├── (T) alpha
                    │   └──  {alpha.0}
                    │       ├── (T) delta
                    │       │   └──  {delta.0}
                    │       └── (T) Task-1
                    │           └──  {gathered.0}
                    │               └── (T) epsilon
                    │                   └──  {epsilon.0}
                    └── (T) beta
                        └──  {beta.0}
                            └──  {beta.1}
        └── (T) reporter
            └──  {reporter.0}
        └── (T) remote-main
            └──  {remote-main.0}
                └── (T) remote-child
                    └──  {remote-child.0}

        """
    var out = template
    for (role, stack, _) in fixture.spec {
        let t = try r.role(role)
        for i in stack.indices {
            let f = t.frames[i]
            out = out.replacingOccurrences(of: "{\(role).\(i)}", with: "\(f.name) \(f.file):\(f.line)")
        }
    }
    return out
}

/// The source line a frame points at. A kit coroutine's file is the path
/// the compiler saw; a Swift body's is a `#fileID` ("module/File.swift").
private func sourceLine(_ f: (name: String, file: String, line: Int)) -> Substring? {
    var path = f.file
    if !path.hasPrefix("/"), path.hasPrefix("inspect_fixture_swift/") {
        path = packageRoot.path + "/Tests/InspectFixtureSwift/" + path.dropFirst("inspect_fixture_swift/".count)
    }
    let lines = readFile(path).split(separator: "\n", omittingEmptySubsequences: false)
    return f.line > 0 && f.line <= lines.count ? lines[f.line - 1] : nil
}

/// Checks the fixture's own view of the tree before comparing the
/// inspector with it: names, stacks, threads, and lines that are what they
/// claim: a C coroutine's the await it is suspended at, a Swift body's the
/// creation of its task.
private func checkReport(_ r: FixtureReport, _ fixture: TreeFixture) throws {
    #expect(r.otherThread != 0 && r.otherThread != r.mainThread)
    #expect(try r.role("gathered").name == "Task-1")
    #expect(try r.role("beta").waitingOn == r.shared)
    #expect(try r.role("delta").waitingOn == r.shared)
    for (role, stack, _) in fixture.spec {
        let t = try r.role(role)
        #expect(t.frames.map(\.name) == stack.reversed(), "stack of \(role)")
        #expect(t.thread == (role.hasPrefix("remote") ? r.otherThread : r.mainThread), "thread of \(role)")
        for f in t.frames {
            let line = sourceLine(f) ?? ""
            if f.name.hasSuffix("()") {
                #expect(line.contains("createTask(") && line.contains("function: \"\(f.name)\""),
                        "\(f.name) was created at \(f.file):\(f.line)")
            } else if role != "reporter" {
                #expect(line.contains("CA_AWAIT"), "\(f.name) is suspended at \(f.file):\(f.line)")
            }
        }
    }
}

@Suite("asyncio-inspect", .serialized)
struct InspectCommandTests {

    @Test("ps lists every task of both threads in CPython's columns", arguments: TreeFixture.all)
    func psOfTree(_ fixture: TreeFixture) throws {
        guard skipNote(fixture.skipReason) else { return }
        let fx = try FixtureProcess(["tree"], executable: fixture.executable)
        try checkReport(fx.report, fixture)
        let ps = try run(inspectorPath, ["ps", "\(fx.pid)"])
        #expect(ps.status == 0, "stderr: \(ps.stderr)")
        #expect(ps.stdout == (try expectedTable(fx.report, fixture)))
        #expect(fx.finish() == 0)
    }

    @Test("pstree draws the await tree with each task under its awaiter's frames",
          arguments: TreeFixture.all)
    func pstreeOfTree(_ fixture: TreeFixture) throws {
        guard skipNote(fixture.skipReason) else { return }
        let fx = try FixtureProcess(["tree"], executable: fixture.executable)
        let tree = try run(inspectorPath, ["pstree", "\(fx.pid)"])
        #expect(tree.status == 0, "stderr: \(tree.stderr)")
        #expect(tree.stdout == (try expectedTree(fx.report, fixture)))
        #expect(fx.finish() == 0)
    }

    @Test("--json gives threads, tasks with stacks and awaiters, running task and loops",
          arguments: TreeFixture.all)
    func jsonOfTree(_ fixture: TreeFixture) throws {
        guard skipNote(fixture.skipReason) else { return }
        let fx = try FixtureProcess(["tree"], executable: fixture.executable)
        let r = fx.report!
        let ps = try run(inspectorPath, ["ps", "--json", "\(fx.pid)"])
        #expect(ps.status == 0)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(ps.stdout.utf8)) as? [String: Any])
        let threads = try #require(doc["threads"] as? [[String: Any]])
        #expect(threads.map { $0["thread_id"] as? Int } == [Int(r.mainThread), Int(r.otherThread)])
        #expect(threads[0]["running_task"] as? String == hex(try r.role("reporter").addr))
        let tasks = threads.flatMap { $0["tasks"] as? [[String: Any]] ?? [] }
        func task(_ role: String) throws -> [String: Any] {
            let addr = hex(try r.role(role).addr)
            return try #require(tasks.first { $0["task_id"] as? String == addr })
        }
        // the plain future awaited by two tasks
        #expect(try task("beta")["waiting_on"] as? String == hex(r.shared))
        #expect(try task("delta")["waiting_on"] as? String == hex(r.shared))
        #expect(try task("reporter")["running"] as? Bool == true)
        #expect(try task("alpha")["state"] as? String == "pending")
        let awaiters = try #require(try task("epsilon")["awaited_by"] as? [[String: Any]])
        #expect(awaiters.count == 1 && awaiters[0]["is_task"] as? Bool == true)
        #expect(awaiters.first?["id"] as? String == hex(try r.role("gathered").addr))
        let loops = try #require(doc["loops"] as? [[String: Any]])
        #expect(Set(loops.compactMap { $0["thread_id"] as? Int }) == [Int(r.mainThread), Int(r.otherThread)])
        #expect(loops.allSatisfy { ($0["backend"] as? String ?? "").isEmpty == false && $0["running"] as? Bool == true })

        let tree = try run(inspectorPath, ["pstree", "--json", "\(fx.pid)"])
        #expect(tree.status == 0)
        let treeDoc = try #require(try JSONSerialization.jsonObject(with: Data(tree.stdout.utf8)) as? [String: Any])
        let roots = try #require(treeDoc["trees"] as? [[String: Any]])
        #expect(roots.map { $0["label"] as? String } == ["main", "reporter", "remote-main"])
        #expect(fx.finish() == 0)
    }

    @Test("an await cycle: pstree reports it on stderr and exits 1, ps still lists it",
          .enabled(if: skipNote(subprocessSkipReason)))
    func cycle() throws {
        let fx = try FixtureProcess(["cycle"])
        let r = fx.report!
        let tree = try run(inspectorPath, ["pstree", "\(fx.pid)"])
        #expect(tree.status == 1)
        #expect(tree.stdout == "")
        #expect(tree.stderr == """
            ERROR: await-graph contains cycles - cannot print a tree!

            cycle: cycle-b → cycle-a → cycle-b

            """)
        let json = try run(inspectorPath, ["pstree", "--json", "\(fx.pid)"])
        #expect(json.status == 1)
        #expect(json.stdout.contains("\"cycles\""))
        let ps = try run(inspectorPath, ["ps", "\(fx.pid)"])
        #expect(ps.status == 0)
        let a = try r.role("cycle-a"), b = try r.role("cycle-b")
        let rows = ps.stdout.split(separator: "\n").dropFirst(2).map { $0.split(separator: " ").map(String.init) }
        #expect(rows.contains(["\(a.thread)", hex(a.addr), "cycle-a", "cycle_body", "cycle_body", "cycle-b", hex(b.addr)]))
        #expect(rows.contains(["\(b.thread)", hex(b.addr), "cycle-b", "cycle_body", "cycle_body", "cycle-a", hex(a.addr)]))
        #expect(fx.finish() == 0)
    }

    @Test("a core dump of the child reads the same as the live process", arguments: TreeFixture.all)
    func coreDump(_ fixture: TreeFixture) throws {
        guard skipNote(fixture.skipReason) else { return }
        guard let gdb = gdbPath else {
            print("skipped: gdb (for gcore) is not installed")
            return
        }
        let fx = try FixtureProcess(["tree"], executable: fixture.executable)
        if let reason = debuggerSkipReason(fx.pid) {
            print("skipped: \(reason)")
            _ = fx.finish()
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-core-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let corePath = dir.appendingPathComponent("core.\(fx.pid)").path
        // what gcore runs, without its wrapper script (so a timeout stops gdb itself)
        let dump = try run(gdb, ["--nx", "--batch", "--readnever", "-iex", "set debuginfod enabled off",
                                 "-ex", "set pagination off", "-p", "\(fx.pid)", "-ex", "gcore \(corePath)",
                                 "-ex", "detach"], timeout: 120)
        guard dump.status == 0, FileManager.default.fileExists(atPath: corePath) else {
            print("skipped: gcore could not dump the child: \(dump.stderr)")
            _ = fx.finish()
            return
        }
        let report = fx.report!
        #expect(fx.finish() == 0)  // the process is gone: only the core is read below

        let ps = try run(inspectorPath, ["ps", "--core", corePath, "--exe", fixture.executable])
        #expect(ps.status == 0, "stderr: \(ps.stderr) stdout: \(ps.stdout)")
        #expect(ps.stdout == (try expectedTable(report, fixture)))
        let tree = try run(inspectorPath, ["pstree", "--core", corePath, "--exe", fixture.executable])
        #expect(tree.status == 0)
        #expect(tree.stdout == (try expectedTree(report, fixture)))
        // the core's file notes name the executable: --exe is optional
        let bare = try run(inspectorPath, ["ps", "--core", corePath])
        #expect(bare.stdout == ps.stdout)
    }

    @Test("a core linked as a shared object is found in the mapped library",
          .enabled(if: skipNote(subprocessSkipReason ?? (compilerPath == nil ? "no C compiler (clang or cc) on PATH" : nil))))
    func sharedLibrary() throws {
        // Build the core as libcasyncio.so and the fixture against it, from this tree's sources.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-shared-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = packageRoot.path
        let core = try FileManager.default.contentsOfDirectory(atPath: root + "/CSources/CAsyncio")
            .filter { $0.hasSuffix(".c") }.sorted().map { root + "/CSources/CAsyncio/" + $0 }
        let support = try FileManager.default.contentsOfDirectory(atPath: root + "/Tests/InspectFixtureSupport")
            .filter { $0.hasSuffix(".c") }.sorted().map { root + "/Tests/InspectFixtureSupport/" + $0 }
        let lib = dir.appendingPathComponent("libcasyncio.so").path
        let exe = dir.appendingPathComponent("fixture-shared").path
        let flags = ["-std=c11", "-D_GNU_SOURCE", "-O0", "-I", root + "/Include"]
        let so = try run(compilerPath!, flags + ["-shared", "-fPIC", "-I", root + "/CSources/CAsyncio"] + core
                         + ["-luring", "-lm", "-lpthread", "-o", lib], timeout: 300)
        guard so.status == 0 else {
            print("skipped: the core did not build as a shared object here: \(so.stderr.prefix(500))")
            return
        }
        let main = try run(compilerPath!, flags + ["-I", root + "/Tests/InspectFixtureSupport/include",
                                                   root + "/Tests/InspectFixture/main.c"] + support
                           + ["-L", dir.path, "-lcasyncio", "-lpthread", "-Wl,-rpath," + dir.path, "-o", exe],
                           timeout: 300)
        #expect(main.status == 0, "\(main.stderr)")
        let fx = try FixtureProcess(["tree"], executable: exe)
        let tree = try run(inspectorPath, ["pstree", "\(fx.pid)"])
        #expect(tree.status == 0, "\(tree.stdout)\(tree.stderr)")
        #expect(tree.stdout == (try expectedTree(fx.report, .c)))
        #expect(fx.finish() == 0)
    }

    @Test("tools/gdb-asyncio.py prints the same tree and table inside gdb", arguments: TreeFixture.all)
    func gdbScript(_ fixture: TreeFixture) throws {
        guard skipNote(fixture.skipReason ?? (gdbPath == nil ? "gdb is not installed" : nil)) else { return }
        let fx = try FixtureProcess(["tree"], executable: fixture.executable)
        if let reason = debuggerSkipReason(fx.pid) {
            print("skipped: \(reason)")
            _ = fx.finish()
            return
        }
        let script = packageRoot.appendingPathComponent("tools/gdb-asyncio.py").path
        let out = try run(gdbPath!, ["--nx", "--batch", "--readnever", "-iex", "set debuginfod enabled off",
                                     "-p", "\(fx.pid)", "-x", script,
                                     "-ex", "echo @@tree\\n", "-ex", "asyncio-pstree",
                                     "-ex", "echo @@table\\n", "-ex", "asyncio-ps", "-ex", "echo @@end\\n",
                                     "-ex", "detach"], timeout: 120)
        let report = fx.report!
        #expect(fx.finish() == 0)
        guard out.stdout.contains("@@end") else {
            print("skipped: gdb could not attach or run the script: \(out.stderr)")
            return
        }
        func between(_ a: String, _ b: String) -> String {
            let start = out.stdout.range(of: a + "\n")!.upperBound
            return String(out.stdout[start..<out.stdout.range(of: b + "\n")!.lowerBound])
        }
        #expect(between("@@tree", "@@table") == (try expectedTree(report, fixture)))
        #expect(between("@@table", "@@end") == (try expectedTable(report, fixture)))
    }

    @Test("errors are reported as CPython does: a message and exit status 1")
    func errors() throws {
        guard FileManager.default.isExecutableFile(atPath: inspectorPath) else {
            print("skipped: asyncio-inspect is not built")
            return
        }
        let none = try run(inspectorPath, ["ps", "999999999"])
        #expect(none.status == 1)
        #expect(none.stdout == "Error retrieving tasks: no process with pid 999999999\n")

        var sleeper: pid_t = 0
        var argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { for p in argv { free(p) } }
        #expect(posix_spawn(&sleeper, "/bin/sleep", nil, nil, &argv, environ) == 0)
        defer {
            kill(sleeper, SIGKILL)
            var status: Int32 = 0
            waitpid(sleeper, &status, 0)
        }
        let foreign = try run(inspectorPath, ["pstree", "\(sleeper)"])
        #expect(foreign.status == 1)
        #expect(foreign.stdout.hasPrefix("Error retrieving tasks: no mapped binary has a .casyncio_debug section"))

        let usage = try run(inspectorPath, ["ps"])
        #expect(usage.status != 0)
        let notCore = try run(inspectorPath, ["ps", "--core", "/proc/self/status"])
        #expect(notCore.status == 1)
        #expect(notCore.stdout.hasPrefix("Error retrieving tasks:"))
    }
}
