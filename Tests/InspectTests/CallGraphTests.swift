// capture_call_graph / format_call_graph / print_call_graph (graph.h) on the
// fixture's tree, run in this process: the text of Lib/asyncio/graph.py's
// format_call_graph for the same graph, limits and depth, and the errors.

import CAsyncio
import Foundation
import InspectFixtureSupport
import Testing

/// What one capture inside the tree produced.
private final class Captures {
    var texts: [String: String] = [:]
    var errors: [String: String] = [:]
    var expected: [String: String] = [:]
    var printed = ""
}

private func role(_ sc: UnsafePointer<if_scenario>, _ name: String) -> UnsafeMutablePointer<ca_task>? {
    withUnsafeBytes(of: sc.pointee.roles) { raw in
        let roles = raw.bindMemory(to: if_role.self)
        for r in roles.prefix(Int(sc.pointee.nroles)) where String(cString: r.role) == name { return r.task }
        return nil
    }
}

private let noLimit = Int32(CA_CALL_GRAPH_NO_LIMIT)

private func format(_ fut: UnsafeMutableRawPointer?, depth: Int32 = 1, limit: Int32 = noLimit)
    -> (String?, String?)
{
    var out: UnsafeMutablePointer<CChar>?
    if let err = ca_format_call_graph(fut, depth, limit, &out) {
        defer { ca_decref(err) }
        return (nil, String(cString: ca_error_message(err)))
    }
    defer { ca_free(out) }
    return (String(cString: out!), nil)
}

/// Python's repr() of the strings the tests use (no quotes or escapes in them).
private func repr(_ s: String) -> String { "'\(s)'" }

/// The expected rendering of a task and the tasks awaiting it, following
/// graph.py: `level * '    '` before each line of a nested node.
private func render(_ task: UnsafeMutablePointer<ca_task>, level: Int = 0, limit: Int? = nil,
                    awaiters: (UnsafeMutablePointer<ca_task>) -> [UnsafeMutablePointer<ca_task>]) -> [String] {
    let indent = String(repeating: "    ", count: level)
    let name = String(cString: ca_task_get_name(task))
    var lines = ["\(indent)* Task(name=\(repr(name)), id=\(hex(UInt64(UInt(bitPattern: task)))))"]
    var chain: [UnsafeMutablePointer<ca_coro>] = []  // outermost first
    var c = task.pointee.task_coro
    while let coro = c {
        chain.append(coro)
        c = coro.pointee.co_awaiting
    }
    if let limit { chain = limit > 0 ? Array(chain.prefix(limit)) : limit < 0 ? Array(chain.suffix(-limit)) : [] }
    if !chain.isEmpty {
        lines.append("\(indent)  + Call stack:")
        for coro in chain.reversed() {
            let co = coro.pointee
            let line = co.co_lineno != 0 ? co.co_lineno : co.co_firstlineno
            lines.append("\(indent)  |   File \(repr(String(cString: co.co_filename))), line \(line), in async \(String(cString: co.co_name))()")
        }
    }
    let parents = awaiters(task)
    if !parents.isEmpty {
        lines.append("\(indent)  + Awaited by:")
        for p in parents { lines += render(p, level: level + 1, limit: limit, awaiters: awaiters) }
    }
    return lines
}

private func awaitersOf(_ fut: UnsafeMutableRawPointer) -> [UnsafeMutablePointer<ca_task>] {
    let f = fut.assumingMemoryBound(to: ca_future.self)
    let n = ca_future_get_awaited_by(f, nil, 0)
    var out = [UnsafeMutablePointer<ca_future>?](repeating: nil, count: n)
    _ = ca_future_get_awaited_by(f, &out, n)
    return out.compactMap { $0.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: ca_task.self) } }
}

@Suite("asyncio.graph in C", .serialized)
struct CallGraphTests {

    @Test("format_call_graph of tasks inside the tree, with limits, depth and the current task")
    func graphsInsideTheTree() throws {
        let captures = Captures()
        let box = Unmanaged.passRetained(captures)
        defer { box.release() }
        let rc = if_run_tree({ sc, arg in
            let cap = Unmanaged<Captures>.fromOpaque(arg!).takeUnretainedValue()
            let sc = sc!
            let awaiters: (UnsafeMutablePointer<ca_task>) -> [UnsafeMutablePointer<ca_task>] = {
                awaitersOf(UnsafeMutableRawPointer($0))
            }
            for name in ["epsilon", "beta", "delta", "main"] {
                let t = role(sc, name)!
                (cap.texts[name], cap.errors[name]) = format(UnsafeMutableRawPointer(t))
                cap.expected[name] = render(t, awaiters: awaiters).joined(separator: "\n")
            }
            let beta = role(sc, "beta")!
            for limit: Int32 in [1, -1, 0, 5] {
                let key = "beta limit \(limit)"
                (cap.texts[key], cap.errors[key]) = format(UnsafeMutableRawPointer(beta), limit: limit)
                cap.expected[key] = render(beta, limit: Int(limit), awaiters: awaiters).joined(separator: "\n")
            }
            // the current task: the reporter, from its innermost coroutine
            let reporter = role(sc, "reporter")!
            (cap.texts["current"], cap.errors["current"]) = format(nil)
            cap.expected["current"] = render(reporter, awaiters: awaiters).joined(separator: "\n")
            (cap.texts["current passed"], _) = format(UnsafeMutableRawPointer(reporter))
            (cap.texts["current depth 2"], _) = format(nil, depth: 2)
            cap.expected["current depth 2"] = "* Task(name='reporter', id=\(hex(UInt64(UInt(bitPattern: reporter)))))"
            // the plain future awaited by delta and beta
            let shared = UnsafeMutableRawPointer(sc.pointee.shared!)
            (cap.texts["shared"], _) = format(shared)
            var lines = ["* Future(id=\(hex(UInt64(UInt(bitPattern: shared)))))", "  + Awaited by:"]
            for t in awaitersOf(shared) { lines += render(t, level: 1, awaiters: awaiters) }
            cap.expected["shared"] = lines.joined(separator: "\n")
            // print_call_graph adds a newline
            if let f = tmpfile() {
                if let err = ca_print_call_graph(UnsafeMutableRawPointer(role(sc, "delta")!), f, 1, noLimit) {
                    ca_decref(err)
                }
                rewind(f)
                var buf = [CChar](repeating: 0, count: 8192)
                let n = fread(&buf, 1, buf.count - 1, f)
                cap.printed = String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                fclose(f)
            }
        }, box.toOpaque())
        #expect(rc == 0)
        #expect(captures.errors.values.allSatisfy { $0.isEmpty }, "\(captures.errors)")
        for (key, expected) in captures.expected {
            #expect(captures.texts[key] == expected, "\(key)")
        }
        #expect(captures.texts["current passed"] == captures.texts["current"])
        // spot checks of the shape, independent of the renderer above
        let epsilon = try #require(captures.texts["epsilon"])
        let firstWords = epsilon.split(separator: "\n").map { $0.drop { $0 == " " }.prefix(8) }
        #expect(firstWords.filter { $0.hasPrefix("* Task") }.count == 4)  // epsilon <- Task-1 <- alpha <- main
        #expect(epsilon.contains("\n    * Task(name='Task-"))  // N counts every auto-named task of this process
        #expect(epsilon.contains("\n            * Task(name='main', id=0x"))
        #expect(epsilon.contains("in async taskgroup_aexit()\n"))
        #expect(captures.texts["beta limit 0"]?.contains("Call stack") == false)
        #expect(captures.texts["beta limit 1"]?.contains("beta_inner") == false)
        #expect(captures.texts["beta limit -1"]?.contains("beta_body") == false)
        #expect(captures.printed == (captures.texts["delta"] ?? "") + "\n")
    }

    @Test("outside a running loop: RuntimeError without a future, TypeError for a non-future")
    func errors() throws {
        let (text, error) = format(nil)
        #expect(text == nil)
        #expect(error == "capture_call_graph() is called outside of a running event loop and no *future* to introspect was provided")
        let coro = try #require(ca_sleep(0, ca_none()))
        defer {
            ca_coro_close(coro)
            ca_decref(coro)
        }
        let (_, typeError) = format(UnsafeMutableRawPointer(coro))
        #expect(typeError?.hasSuffix("object does not appear to be compatible with asyncio.Future") == true)

        // a future with no awaiters outside any loop: just the future
        var loop: OpaquePointer?
        #expect(ca_loop_new(nil, &loop) == nil)
        let fut = try #require(ca_future_new(loop))
        let (plain, _) = format(UnsafeMutableRawPointer(fut))
        #expect(plain == "* Future(id=\(hex(UInt64(UInt(bitPattern: fut)))))")
        var graph: UnsafeMutablePointer<ca_future_call_graph>?
        #expect(ca_capture_call_graph(UnsafeMutableRawPointer(fut), 1, noLimit, &graph) == nil)
        #expect(graph?.pointee.call_stack_len == 0 && graph?.pointee.awaited_by_len == 0)
        ca_future_call_graph_free(graph)
        ca_decref(fut)
        _ = ca_loop_close(loop)
        ca_decref(UnsafeMutableRawPointer(loop))
    }
}
