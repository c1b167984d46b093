// asyncio.graph for Swift: captureCallGraph / formatCallGraph /
// printCallGraph on a known tree of Swift-bodied and C tasks, compared with
// the text Lib/asyncio/graph.py prints for the same graph.
//
// The tree, captured from inside "probe" while everything else waits:
//
//     parent (Swift) gathers c-leaf (C: await_coro_plus_one -> await_plus_one)
//                        and s-leaf (Swift); both await the plain future `fut`
//     watcher (Swift) awaits probe (Swift), which captures

@testable import Asyncio
import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

/// The first line of `path` holding `needle` (1-based), or 0.
private func lineNumber(of needle: String, in path: String) -> Int {
    guard let file = fopen(path, "r") else { return 0 }
    defer { fclose(file) }
    var number = 0
    var buffer = [CChar](repeating: 0, count: 4096)
    while fgets(&buffer, Int32(buffer.count), file) != nil {
        number += 1
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if line.contains(needle) { return number }
    }
    return 0
}

private let packageRoot: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/AsyncioTests/GraphTests.swift
    return parts.joined(separator: "/")
}()

private let cSource = packageRoot + "/Tests/CAsyncioTestSupport/coroutines.c"

/// Where a Swift body of this file was created, as its frame shows it.
private func swiftFrame(_ function: String) -> (file: String, line: Int, name: String) {
    ("AsyncioTests/GraphTests.swift", lineNumber(of: "function: \"\(function)\"", in: "\(#filePath)"), function)
}

private func hexID(_ p: some CallGraphSubject) -> String { "0x" + String(UInt(bitPattern: p.unsafeRawFuture), radix: 16) }

/// graph.py's rendering of one task node at `level`, with its stack
/// (innermost first) and the lines of its awaiters.
private func taskNode(_ name: String, _ id: String, level: Int,
                      stack: [(file: String, line: Int, name: String)], awaitedBy: [String] = []) -> [String] {
    let indent = String(repeating: "    ", count: level)
    var lines = ["\(indent)* Task(name='\(name)', id=\(id))"]
    if !stack.isEmpty {
        lines.append("\(indent)  + Call stack:")
        for f in stack {
            let shown = f.name.hasSuffix(")") ? f.name : f.name + "()"
            lines.append("\(indent)  |   File '\(f.file)', line \(f.line), in async \(shown)")
        }
    }
    if !awaitedBy.isEmpty {
        lines.append("\(indent)  + Awaited by:")
        lines += awaitedBy
    }
    return lines
}

/// A C task of `coro` (taken) named `name` on the running loop.
private func cTask(_ coro: UnsafeMutablePointer<ca_coro>?, name: String) throws -> LoopTask<Int> {
    var opts = ca_task_options()
    var out: UnsafeMutablePointer<ca_task>?
    let err = name.withCString { cname in
        opts.name = cname
        return ca_loop_create_task(ca_get_running_loop(), coro, &opts, &out)
    }
    try ErrorBridge.check(err)
    return LoopTask(unsafeTakingOwnershipOf: out!)
}

/// What the probe captured, and the tasks to name the expectations with.
private struct Captured: Sendable {
    var texts: [String: String] = [:]
    var graphs: [String: FutureCallGraph] = [:]
    var printed = ""
    var ids: [String: String] = [:]
}

/// Builds the tree, runs `capture` inside "probe" once every other task is
/// suspended, then lets the tree finish (checking its results).
private func withTree(_ capture: @escaping @Sendable (_ leaves: (c: LoopTask<Int>, s: LoopTask<Int>),
                                                      _ fut: Future<Int>) throws -> Captured) async throws -> Captured {
    try await runLoop {
        let fut = EventLoop.current!.createFuture(of: Int.self)
        let leaves = Shared<(c: LoopTask<Int>, s: LoopTask<Int>)?>(nil)
        let parent = try createTask(name: "parent", function: "parentBody()") {
            let c = try cTask(ts_coro_await_coro_plus_one(ts_coro_await_plus_one(fut.unsafeRaw)), name: "c-leaf")
            let s = try createTask(name: "s-leaf", function: "swiftLeaf()") { try await fut.value }
            leaves.value = (c, s)
            return try await gather(c, s)
        }
        let watcher = try createTask(name: "watcher", function: "watcher()") { () async throws -> Captured in
            let probe = try createTask(name: "probe", function: "probe()") { () async throws -> Captured in
                for _ in 0..<4 { try await sleep(0) }
                var captured = try capture(leaves.value!, fut)
                captured.ids["parent"] = hexID(parent)
                captured.ids["probe"] = hexID(currentTask()!)
                return captured
            }
            return try await probe.value
        }
        // polled, not awaited: this task must not join the awaiters
        while !watcher.isDone { try await sleep(0) }
        let captured = try watcher.result()
        try fut.setResult(1)
        let (c, s) = try await parent.value
        #expect(c == 3 && s == 1)
        return captured
    }
}

@Suite("asyncio.graph")
struct GraphTests {
    @Test("formatCallGraph of a C task and a Swift task shows their stacks and the Swift task gathering them")
    func formatLeaves() async throws {
        let captured = try await withTree { leaves, _ in
            var out = Captured()
            out.texts["c"] = try formatCallGraph(leaves.c)
            out.texts["s"] = try formatCallGraph(leaves.s)
            out.ids["c"] = hexID(leaves.c)
            out.ids["s"] = hexID(leaves.s)
            return out
        }
        let parent = taskNode("parent", captured.ids["parent"]!, level: 1, stack: [swiftFrame("parentBody()")])
        let cStack = [(cSource, lineNumber(of: "self->line = __LINE__; CA_AWAIT(take_future(&self->fut));", in: cSource),
                       "await_plus_one"),
                      (cSource, lineNumber(of: "CA_AWAIT_CORO(take_coro(&self->child));", in: cSource),
                       "await_coro_plus_one")]
        #expect(captured.texts["c"] == taskNode("c-leaf", captured.ids["c"]!, level: 0, stack: cStack,
                                                awaitedBy: parent).joined(separator: "\n"))
        #expect(captured.texts["s"] == taskNode("s-leaf", captured.ids["s"]!, level: 0, stack: [swiftFrame("swiftLeaf()")],
                                                awaitedBy: parent).joined(separator: "\n"))
    }

    @Test("with no future: the current task, awaited by the task awaiting it; depth skips its own coroutine")
    func currentTaskGraph() async throws {
        let captured = try await withTree { _, _ in
            var out = Captured()
            out.texts["current"] = try formatCallGraph()
            out.texts["depth 2"] = try formatCallGraph(depth: 2)
            out.ids["watcher"] = hexID(try #require(allTasks().first { $0.name == "watcher" }))
            var printed = ""
            try printCallGraph(to: &printed)
            out.printed = printed
            return out
        }
        let watcher = taskNode("watcher", captured.ids["watcher"]!, level: 1, stack: [swiftFrame("watcher()")])
        let expected = taskNode("probe", captured.ids["probe"]!, level: 0, stack: [swiftFrame("probe()")],
                                awaitedBy: watcher).joined(separator: "\n")
        #expect(captured.texts["current"] == expected)
        #expect(captured.texts["depth 2"] == taskNode("probe", captured.ids["probe"]!, level: 0, stack: [],
                                                      awaitedBy: watcher).joined(separator: "\n"))
        #expect(captured.printed == expected + "\n")
    }

    @Test("captureCallGraph: a plain future awaited by a C task and a Swift task, each awaited by their gatherer")
    func captureSharedFuture() async throws {
        let captured = try await withTree { leaves, fut in
            var out = Captured()
            out.graphs["fut"] = try captureCallGraph(fut)
            out.graphs["c"] = try captureCallGraph(leaves.c)
            out.ids["fut"] = hexID(fut)
            return out
        }
        let graph = try #require(captured.graphs["fut"])
        #expect("0x" + String(graph.id, radix: 16) == captured.ids["fut"])
        #expect(graph.task == nil && graph.callStack.isEmpty)
        #expect(Set(graph.awaitedBy.compactMap { $0.task?.name }) == ["c-leaf", "s-leaf"])
        for leaf in graph.awaitedBy {
            #expect(leaf.awaitedBy.map { $0.task?.name } == ["parent"])
            #expect(leaf.awaitedBy.first?.awaitedBy.isEmpty == true)
        }
        let swiftLeaf = try #require(graph.awaitedBy.first { $0.task?.name == "s-leaf" })
        let frame = swiftFrame("swiftLeaf()")
        #expect(swiftLeaf.callStack == [FrameCallGraphEntry(name: frame.name, filename: frame.file, lineno: frame.line)])
        let c = try #require(captured.graphs["c"])
        #expect(c.callStack.map(\.name) == ["await_plus_one", "await_coro_plus_one"])
        #expect(c.callStack.allSatisfy { $0.filename == cSource && $0.lineno > 0 })
    }

    @Test("limit keeps the outermost (positive) or innermost (negative) entries; 0 keeps the awaiters only")
    func limits() async throws {
        let captured = try await withTree { leaves, _ in
            var out = Captured()
            for limit in [1, -1, 0] {
                out.graphs["\(limit)"] = try captureCallGraph(leaves.c, limit: limit)
                out.texts["\(limit)"] = try formatCallGraph(leaves.c, limit: limit)
            }
            return out
        }
        #expect(captured.graphs["1"]?.callStack.map(\.name) == ["await_coro_plus_one"])
        #expect(captured.graphs["-1"]?.callStack.map(\.name) == ["await_plus_one"])
        #expect(captured.graphs["0"]?.callStack.isEmpty == true)
        #expect(captured.graphs["0"]?.awaitedBy.first?.callStack.isEmpty == true)
        #expect(captured.graphs["0"]?.awaitedBy.first?.task?.name == "parent")
        #expect(captured.texts["0"]?.contains("Call stack") == false)
        #expect(captured.texts["1"]?.contains("in async await_plus_one()") == false)
        #expect(captured.texts["-1"]?.contains("in async await_coro_plus_one()") == false)
    }

    @Test("outside a running loop: RuntimeError without a future; a future alone when nothing awaits it")
    func outsideLoop() throws {
        #expect {
            _ = try captureCallGraph()
        } throws: { error in
            let e = error as? AsyncioError
            return e?.typeName == "RuntimeError"
                && e?.message == "capture_call_graph() is called outside of a running event loop and no *future* to introspect was provided"
        }
        let loop = try EventLoop()
        defer { try? loop.close() }
        let fut = loop.createFuture(of: Int.self)
        #expect(try formatCallGraph(fut) == "* Future(id=\(hexID(fut)))")
        let graph = try #require(try captureCallGraph(fut))
        #expect(graph.task == nil && graph.callStack.isEmpty && graph.awaitedBy.isEmpty)
    }
}
