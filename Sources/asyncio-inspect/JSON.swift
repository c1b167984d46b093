/// `--json`: the snapshot (`ps`) or the tree (`pstree`) as one JSON document.
/// Written by hand so the tool does not load Foundation (start-up time is
/// part of what `bench inspect` measures). Addresses are hex strings.

indirect enum JSON {
    case string(String)
    case number(Int64)
    case unsigned(UInt64)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    func write(into out: inout String) {
        switch self {
        case .string(let s): JSON.quote(s, into: &out)
        case .number(let n): out += String(n)
        case .unsigned(let n): out += String(n)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(key, into: &out)
                out += ":"
                value.write(into: &out)
            }
            out += "}"
        }
    }

    var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    private static func quote(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let h = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

private func address(_ a: UInt64) -> JSON { a == 0 ? .null : .string(hex(a)) }

private func frames(_ stack: [FrameInfo]) -> JSON {
    .array(stack.map {
        .object([("funcname", .string($0.funcname)), ("filename", .string($0.filename)),
                 ("lineno", .number(Int64($0.lineno)))])
    })
}

private let stateNames = ["pending", "cancelled", "finished"]

/// The whole snapshot: threads with their tasks (stacks innermost first,
/// awaiters with their stacks), then the loops.
func snapshotJSON(_ snapshot: ProcessSnapshot) -> JSON {
    let threads: [JSON] = snapshot.threads.map { thread in
        .object([
            ("thread_id", .unsigned(thread.threadID)),
            ("orphans", .bool(thread.tstate == 0)),
            ("running_loop", address(thread.runningLoop)),
            ("running_task", address(thread.runningTask)),
            ("tasks", .array(thread.tasks.map { task in
                .object([
                    ("task_id", .string(hex(task.id))),
                    ("task_name", .string(task.name)),
                    ("state", .string(Int(task.state) < stateNames.count ? stateNames[Int(task.state)] : "unknown")),
                    ("cancelling", .number(Int64(task.cancelRequests))),
                    ("must_cancel", .bool(task.mustCancel)),
                    ("running", .bool(task.running)),
                    ("loop", address(task.loop)),
                    ("waiting_on", address(task.waitingOn)),
                    ("coroutine_stack", frames(task.coroutineStack)),
                    ("awaited_by", .array(task.awaitedBy.map { a in
                        .object([("id", .string(hex(a.id))), ("is_task", .bool(a.isTask)),
                                 ("call_stack", frames(a.callStack))])
                    })),
                ])
            })),
        ])
    }
    let loops: [JSON] = snapshot.loops.map { loop in
        .object([
            ("loop_id", .string(hex(loop.id))),
            ("thread_id", .unsigned(loop.threadID)),
            ("running", .bool(loop.running)),
            ("closed", .bool(loop.closed)),
            ("debug", .bool(loop.debug)),
            ("current_task", address(loop.currentTask)),
            ("ready", .unsigned(loop.ready)),
            ("timers", .unsigned(loop.timers)),
            ("iterations", .unsigned(loop.iterations)),
            ("backend", .string(loop.backend)),
        ])
    }
    return .object([("threads", .array(threads)), ("loops", .array(loops))])
}

/// The tree as nested nodes, or the cycles.
func treeJSON(_ snapshot: ProcessSnapshot) -> (JSON, hasCycles: Bool) {
    let index = AwaitIndex(snapshot)
    let cycles = findCycles(index)
    if !cycles.isEmpty {
        let list: [JSON] = cycles.map { cycle in
            .array(cycle.map { id in
                .object([("task_id", .string(hex(id))), ("task_name", index.nameOf[id].map(JSON.string) ?? .null)])
            })
        }
        return (.object([("cycles", .array(list))]), true)
    }
    let tree = AwaitTree(index)
    func node(_ n: Int, depth: Int) -> JSON {
        let isTask = tree.kinds[n] == .task
        var members: [(String, JSON)] = [("kind", .string(isTask ? "task" : "coroutine"))]
        if isTask { members.append(("task_id", .string(hex(tree.taskIDs[n])))) }
        members.append(("label", .string(tree.labels[n])))
        let kids = depth < 10_000 ? tree.children[n] : []
        members.append(("children", .array(kids.map { node($0, depth: depth + 1) })))
        return .object(members)
    }
    return (.object([("trees", .array(tree.roots.map { node($0, depth: 0) }))]), false)
}
