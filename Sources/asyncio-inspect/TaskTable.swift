/// `ps`: one row per (task, awaiter) pair, as `build_task_table` and
/// `display_awaited_by_tasks_table` in CPython 3.14's Lib/asyncio/tools.py.

/// `"funcname filename:lineno"`, or the bare name when the frame has neither
/// a file nor a line (`_format_stack_entry`).
func formatStackEntry(_ frame: FrameInfo) -> String {
    if frame.lineno == 0 && frame.filename.isEmpty { return frame.funcname }
    return "\(frame.funcname) \(frame.filename):\(frame.lineno)"
}

/// The text before the first space (`str.split(" ")[0]`).
private func firstWord(_ s: String) -> String {
    if let space = s.firstIndex(of: " ") { return String(s[..<space]) }
    return s
}

/// Python's `hex()`.
func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

/// Task id -> name over every thread, the first name winning its place
/// (the `id2name` of `_index`).
func taskNames(_ snapshot: ProcessSnapshot) -> [UInt64: String] {
    var names: [UInt64: String] = [:]
    for thread in snapshot.threads {
        for task in thread.tasks { names[task.id] = task.name }
    }
    return names
}

/// The rows: tid, task id, task name, coroutine stack, awaiter chain,
/// awaiter name, awaiter id (`build_task_table`), written straight into the
/// output: 10,000 rows of small strings are most of `ps`'s time otherwise.
func renderTaskTable(_ snapshot: ProcessSnapshot) -> [UInt8] {
    let header = ["tid", "task id", "task name", "coroutine stack", "awaiter chain", "awaiter name", "awaiter id"]
    let widths = [10, 20, 20, 50, 50, 15, 15]
    var out: [UInt8] = []
    out.reserveCapacity(256 * (snapshot.threads.reduce(0) { $0 + $1.tasks.count } + 2))
    func row(_ cells: [String]) {
        for (i, cell) in cells.enumerated() {
            if i > 0 { out.append(UInt8(ascii: " ")) }
            appendPadded(&out, cell, widths[i])
        }
        out.append(UInt8(ascii: "\n"))
    }
    row(header)
    out += Array(repeating: UInt8(ascii: "-"), count: 180)
    out.append(UInt8(ascii: "\n"))
    let names = taskNames(snapshot)
    var chains: [UInt64: String] = [:]  // awaiter id -> its chain (many tasks share an awaiter)
    for thread in snapshot.threads {
        let tid = "\(thread.threadID)"
        for task in thread.tasks {
            let stack = task.coroutineStack.map { firstWord(formatStackEntry($0)) }.joined(separator: " -> ")
            let id = hex(task.id)
            if task.awaitedBy.isEmpty {
                row([tid, id, task.name, stack, "", "", "0x0"])
                continue
            }
            for awaiter in task.awaitedBy {
                let chain = chains[awaiter.id] ?? {
                    let c = awaiter.callStack.map { firstWord(formatStackEntry($0)) }.joined(separator: " -> ")
                    chains[awaiter.id] = c
                    return c
                }()
                row([tid, id, task.name, stack, chain, names[awaiter.id] ?? "Unknown", hex(awaiter.id)])
            }
        }
    }
    return out
}

/// Appends `s` left-justified to `width` like Python's `format(s, "<width")`
/// (code points, no truncation).
private func appendPadded(_ out: inout [UInt8], _ s: String, _ width: Int) {
    var count = 0
    var ascii = true
    for b in s.utf8 {
        out.append(b)
        count += 1
        if b >= 0x80 { ascii = false }
    }
    if !ascii { count = s.unicodeScalars.count }
    if count < width { out += repeatElement(UInt8(ascii: " "), count: width - count) }
}
