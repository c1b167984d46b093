import CAsyncioInspect

/// One frame of a coroutine stack (CPython's `FrameInfo`).
struct FrameInfo: Equatable {
    var funcname: String
    var filename: String
    var lineno: Int
}

/// Who awaits a task (CPython's `CoroInfo` in `awaited_by`): the awaiter's
/// address and, when it is a task, its coroutine stack (innermost first).
struct AwaiterInfo {
    var id: UInt64
    var isTask: Bool
    var callStack: [FrameInfo]
}

/// A task (CPython's `TaskInfo`) and what our table adds to it.
struct TaskInfo {
    var id: UInt64
    var name: String
    /// Innermost first.
    var coroutineStack: [FrameInfo]
    var awaitedBy: [AwaiterInfo]
    var threadID: UInt64
    var loop: UInt64
    var waitingOn: UInt64
    var state: UInt8
    var cancelRequests: Int32
    var mustCancel: Bool
    var running: Bool
}

/// The tasks found on one thread's list (CPython's `AwaitedInfo`); thread 0
/// holds the tasks whose thread exited.
struct ThreadInfo {
    var threadID: UInt64
    var tstate: UInt64
    var runningLoop: UInt64
    var runningTask: UInt64
    var tasks: [TaskInfo]
}

struct LoopInfo {
    var id: UInt64
    var threadID: UInt64
    var running: Bool
    var closed: Bool
    var debug: Bool
    var currentTask: UInt64
    var ready: UInt64
    var timers: UInt64
    var iterations: UInt64
    var backend: String
}

/// Everything read from the target, over every copy of the core it links.
struct ProcessSnapshot {
    var threads: [ThreadInfo] = []
    var loops: [LoopInfo] = []
    var tables: [UInt64] = []
    var attempts: UInt32 = 0
    var pageFetches: UInt64 = 0
}

/// A failure to read the target, with the message `asyncio-inspect` prints.
struct InspectError: Error, CustomStringConvertible {
    var status: cai_status
    var message: String
    var description: String { message }
}

/// Where the memory comes from.
enum Target {
    case process(Int32)
    case core(path: String, executable: String?)
}

/// Reads a snapshot of `target`.
func takeSnapshot(of target: Target) throws(InspectError) -> ProcessSnapshot {
    var err = [CChar](repeating: 0, count: 512)
    func failure(_ st: cai_status, _ prefix: String = "") -> InspectError {
        let text = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return InspectError(status: st, message: prefix + text)
    }
    var reader: OpaquePointer?
    var st: cai_status
    switch target {
    case .process(let pid):
        st = cai_reader_open_pid(pid, &reader, &err, err.count)
    case .core(let path, let exe):
        st = cai_reader_open_core(path, exe, &reader, &err, err.count)
    }
    guard st == CAI_OK, let reader else { throw failure(st) }
    defer { cai_reader_close(reader) }

    var tables = [UInt64](repeating: 0, count: 16)
    var count = 0
    st = cai_find_tables(reader, &tables, tables.count, &count, &err, err.count)
    guard st == CAI_OK else { throw failure(st) }

    var result = ProcessSnapshot()
    for table in tables.prefix(count) {
        var snap: UnsafeMutablePointer<cai_snapshot>?
        st = cai_snapshot_take(reader, table, nil, &snap, &err, err.count)
        guard st == CAI_OK, let snap else {
            if st == CAI_ERR_PERM || (st == CAI_ERR_READ && permissionDenied(err)) {
                throw InspectError(status: CAI_ERR_PERM, message: permissionMessage(target, err))
            }
            throw failure(st)
        }
        defer { cai_snapshot_free(snap) }
        result.tables.append(table)
        result.attempts = max(result.attempts, snap.pointee.attempts)
        result.append(snap.pointee)
    }
    result.pageFetches = cai_reader_page_fetches(reader)
    return result
}

private func permissionDenied(_ err: [CChar]) -> Bool {
    err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.contains("Operation not permitted")
}

private func permissionMessage(_ target: Target, _ err: [CChar]) -> String {
    let text = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    var pid = ""
    if case .process(let p) = target { pid = " \(p)" }
    return """
        \(text)
        The kernel refused to let this user read process\(pid)'s memory. process_vm_readv needs \
        the same user as the target and ptrace read access: check /proc/sys/kernel/yama/ptrace_scope \
        (1 allows only descendants; run as root or with CAP_SYS_PTRACE).
        """
}

extension ProcessSnapshot {
    fileprivate mutating func append(_ s: cai_snapshot) {
        let frames = UnsafeBufferPointer(start: s.frames, count: s.nframes)
        let awaiters = UnsafeBufferPointer(start: s.awaiters, count: s.nawaiters)
        let tasks = UnsafeBufferPointer(start: s.tasks, count: s.ntasks)
        var strings: [UInt32: String] = [:]
        func string(_ offset: UInt32) -> String {
            if let cached = strings[offset] { return cached }
            var snap = s
            let value = String(cString: cai_snapshot_string(&snap, offset))
            strings[offset] = value
            return value
        }
        func stack(_ start: UInt32, _ len: UInt32) -> [FrameInfo] {
            frames[Int(start)..<Int(start + len)].map {
                FrameInfo(funcname: string($0.name), filename: string($0.filename), lineno: Int($0.lineno))
            }
        }
        for th in UnsafeBufferPointer(start: s.threads, count: s.nthreads) {
            var info = ThreadInfo(threadID: th.thread_id, tstate: th.tstate, runningLoop: th.running_loop,
                                  runningTask: th.running_task, tasks: [])
            for t in tasks[Int(th.tasks_start)..<Int(th.tasks_start + th.tasks_len)] {
                let awaitedBy = awaiters[Int(t.awaiters_start)..<Int(t.awaiters_start + t.awaiters_len)].map {
                    AwaiterInfo(id: $0.addr, isTask: $0.is_task != 0, callStack: stack($0.frames_start, $0.frames_len))
                }
                info.tasks.append(TaskInfo(
                    id: t.addr, name: string(t.name), coroutineStack: stack(t.frames_start, t.frames_len),
                    awaitedBy: awaitedBy, threadID: t.thread_id, loop: t.loop, waitingOn: t.fut_waiter,
                    state: t.state, cancelRequests: t.cancel_requests, mustCancel: t.must_cancel != 0,
                    running: t.running != 0))
            }
            threads.append(info)
        }
        for l in UnsafeBufferPointer(start: s.loops, count: s.nloops) {
            loops.append(LoopInfo(
                id: l.addr, threadID: l.thread_id, running: l.running != 0, closed: l.closed != 0,
                debug: l.debug != 0, currentTask: l.current_task, ready: l.ready, timers: l.timers,
                iterations: l.iterations, backend: l.backend == CAI_NO_STRING ? "" : string(l.backend)))
        }
    }
}
