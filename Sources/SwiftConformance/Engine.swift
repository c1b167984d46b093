// The `swift` engine of asyncio-conformance (issue 5): every scenario body is
// a Swift `async` function running on the Swift layer (Asyncio): LoopTask
// bodies awaiting its futures, combinators, sync primitives and queues. The
// runner's own bookkeeping (idle detection) reads the C loop directly, as the
// `c` engine does.

import Asyncio
import CAsyncio
import CConformance

/// What a run produced (README.md, "Writing a runner").
public struct SwiftOutcome: Sendable {
    public var status: Int32   // 0 ok, 2 invalid or failed, 3 skipped
    public var trace: String
    public var message: String?

    public init(status: Int32, trace: String, message: String? = nil) {
        self.status = status
        self.trace = trace
        self.message = message
    }
}

struct RunFailure: Error { let message: String }

/// A coroutine object: created by `coro`, `wait_for` or `wait`, consumed once.
///
/// Safety of `@unchecked Sendable`: a Coro belongs to one ``Run`` and is
/// only touched on that run's thread (see ``Run``); the conformance is what
/// lets the task bodies that consume it capture it.
final class Coro: @unchecked Sendable {
    let id: String
    let op: JSON
    var consumed = false
    init(id: String, op: JSON) { self.id = id; self.op = op }
}

enum Obj {
    case future(Future<V>)
    case gather(Future<V>)
    case coro(Coro)
    case lock(Lock), event(Event), cond(Condition), sem(Semaphore), queue(AsyncQueue<V>)
    case handle(Handle), timeout(TimeoutScope), group(LoopTaskGroup)
}

enum Flow { case next, ret(V) }

/// The handled errors of the enclosing `except` handlers.
final class Ctx {
    let actor: String
    var handled: [any Error] = []
    init(actor: String) { self.actor = actor }
}

let maxVirtualNs: Int64 = 1_000_000_000 * 1_000_000

/// One scenario run: its loop, the declared objects and the trace.
///
/// Safety of `@unchecked Sendable`: a Run lives on one thread. `execute()`
/// runs its loop on the calling thread (`runForever`, a virtual clock) and
/// tears it down there; every closure it hands out (task bodies, which the
/// loop runs as its own executor, `callSoon`/`callAt` callbacks, done
/// callbacks) runs on that loop, and none is handed to another thread, so
/// no two threads touch its mutable state. The conformance is what lets
/// those `@Sendable` closures capture it.
final class Run: @unchecked Sendable {
    let loop: EventLoop
    let root: JSON
    var callbacks: [String: [JSON]] = [:]
    var out = ""
    var decls: [String: Obj] = [:]
    var order: [String] = []              // ids with a final line, in declaration order
    var summary: Set<String> = []
    var names: [UnsafeMutableRawPointer: String] = [:]
    var gathers: Set<UnsafeMutableRawPointer> = []
    var coroTasks: [String: Future<V>] = [:]
    var doneCallbacks: [String: DoneCallback<V>] = [:]  // one function object per tag (SPEC 5.6)

    func doneCallback(_ tag: String) -> DoneCallback<V> {
        if let cb = doneCallbacks[tag] { return cb }
        let cb = DoneCallback<V> { [self] fut in callback(tag, fut) }
        doneCallbacks[tag] = cb
        return cb
    }
    var failure: String?
    var idle = false
    var idleNs: Int64 = 0
    var lastNs: Int64 = 0
    var nearArmed = false
    var farArmed = false

    init(root: JSON) throws {
        self.root = root
        loop = try EventLoop(virtualClock: true)
        if case .obj(let kv)? = root["callbacks"] {
            for (k, v) in kv { callbacks[k] = v.list }
        }
    }

    var raw: OpaquePointer { loop.unsafeRaw }

    // MARK: Trace and idle detection

    func emit(_ actor: String, _ event: String) {
        if idle { return }
        touch()
        out += "\(lastNs / 1_000_000) \(actor) \(event)\n"
    }

    func touch() {
        lastNs = ca_loop_time(raw)
        if lastNs > maxVirtualNs { fail("virtual time limit exceeded") }
        if !nearArmed {
            nearArmed = true
            _ = try? loop.callAt(Double(lastNs + 1) / 1e9) { [self] in nearWatch() }
        }
    }

    func becameIdle(_ ns: Int64) {
        if idle { return }
        idle = true
        idleNs = ns
        loop.stop()
    }

    func nearWatch() {
        nearArmed = false
        let ns = ca_loop_time(raw) - 1
        lastNs = ns
        let others = ca_loop_timer_count(raw) - (farArmed ? 1 : 0)
        if others == 0 && ca_loop_ready_count(raw) == 0 {
            becameIdle(ns)
        } else if !farArmed {
            farArmed = true
            _ = try? loop.callAt(Double(maxVirtualNs + 1) / 1e9) { [self] in farWatch() }
        }
    }

    func farWatch() {
        farArmed = false
        if ca_loop_timer_count(raw) == 0 {
            becameIdle(lastNs)
        } else {
            _ = try? loop.callAt(Double(Int64.max / 4) / 1e9) { [self] in becameIdle(lastNs) }
        }
    }

    func fail(_ m: String) {
        if failure == nil { failure = m }
        becameIdle(lastNs)
    }

    // MARK: Rendering

    func ptr<T>(_ f: Future<T>) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(f.unsafeRaw) }

    func ref(_ p: UnsafeMutableRawPointer) -> String { names[p].map { "<\($0)>" } ?? "<?>" }

    func fmt(_ v: V) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .str(let s): return quote(s)
        case .list(let l): return "[" + l.map { fmt($0) }.joined(separator: ",") + "]"
        case .fut(let p): return ref(p)
        case .set(let ps):
            let named = ps.compactMap { names[$0] }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            let anon = ps.filter { names[$0] == nil }.count
            return "{" + (named.map { "<\($0)>" } + Array(repeating: "<?>", count: anon)).joined(separator: ",") + "}"
        case .err(let e): return fmtErr(e)
        }
    }

    func fmtErr(_ e: any Error) -> String {
        if let g = e as? ExceptionGroup {
            return g.typeName + "[" + g.errors.map { fmtErr($0) }.joined(separator: ",") + "]"
        }
        let n = errorName(e)
        if namelessErrors.contains(n) { return n }
        // Our messages are rendered values; one the core made itself (the
        // empty message of a cancelled child in a gather) is a string.
        if let m = errorMessage(e) { return "\(n)(\(m.isEmpty ? quote(m) : m))" }
        return n
    }

    func state(_ f: Future<V>) -> String {
        if !f.isDone { return "pending" }
        if f.isCancelled { return "cancelled" }
        if gathers.contains(ptr(f)) {
            do {
                let rs = try gatheredResults(f, as: V.self)
                return "result " + fmt(.list(rs.map { r in (try? r.get()) ?? { if case .failure(let e) = r { return .err(e) }; return .null }() }))
            } catch { return "exception " + fmtErr(error) }
        }
        do {
            if let e = try f.exception() { return "exception " + fmtErr(e) }
            return "result " + fmt(try f.result())
        } catch { return "exception " + fmtErr(error) }
    }

    // MARK: Declarations

    func declare(_ id: String, _ o: Obj, summary s: Bool) {
        decls[id] = o
        order.append(id)
        if s { summary.insert(id) }
        switch o {
        case .future(let f), .gather(let f): if names[ptr(f)] == nil { names[ptr(f)] = id }
        default: break
        }
    }

    func obj(_ op: JSON, _ field: String = "target") throws -> Obj {
        guard let id = op[field]?.string, let o = decls[id] else {
            throw RunFailure(message: "reference to an undeclared id in '\(op["op"]?.string ?? "?")'")
        }
        return o
    }

    func future(_ o: Obj) throws -> Future<V> {
        switch o {
        case .future(let f), .gather(let f): return f
        default: throw RunFailure(message: "not a future")
        }
    }

    /// An awaitable as a future: a coroutine is wrapped in a task (ensure_future).
    func asFuture(_ o: Obj) throws -> Future<V> {
        if case .coro(let c) = o { return try wrap(c) }
        return try future(o)
    }

    func wrap(_ c: Coro) throws -> Future<V> {
        try consume(c)
        let t: LoopTask<V> = try createTask { [self] in try await runCoro(c) }
        names[ptr(t)] = c.id
        coroTasks[c.id] = t
        summary.insert(c.id)
        return t
    }

    func consume(_ c: Coro) throws {
        if c.consumed { throw RunFailure(message: "coroutine '\(c.id)' consumed twice") }
        c.consumed = true
    }

    // MARK: Bodies

    func runBody(_ ops: [JSON], actor: String) async throws -> V {
        emit(actor, "start")
        do {
            let flow = try await exec(ops, Ctx(actor: actor))
            let v: V
            if case .ret(let r) = flow { v = r } else { v = .null }
            emit(actor, "return \(fmt(v))")
            return v
        } catch let f as RunFailure {
            fail(f.message)
            throw CancelledError()
        } catch {
            emit(actor, "raise \(fmtErr(error))")
            throw error
        }
    }

    func runCoro(_ c: Coro) async throws -> V {
        let op = c.op
        switch op["op"]?.string {
        case "coro":
            return try await runBody(op["body"]?.list ?? [], actor: c.id)
        case "wait_for":
            let item = try obj(op, "item")
            let t: Double? = op["timeout"]?.int.map { Double($0) / 1000 }
            if case .coro(let inner) = item {
                if let t, t <= 0 {
                    let f = try wrap(inner)
                    return try await waitFor(f, timeout: t)
                }
                try consume(inner)
                return try await waitFor(timeout: t) { try await runCoro(inner) }
            }
            let f = try future(item)
            if gathers.contains(ptr(f)) {
                _ = try await waitFor(Future<Void>(unsafeRetaining: f.unsafeRaw), timeout: t)
                return gatherValue(f)
            }
            return try await waitFor(f, timeout: t)
        default: // wait
            var futs: [Future<V>] = []
            for j in op["items"]?.list ?? [] {
                guard let id = j.string, let o = decls[id] else { throw RunFailure(message: "bad wait item") }
                if case .coro = o { throw AsyncioError(typeName: "TypeError") }
                futs.append(try future(o))
            }
            let t: Double? = op["timeout"]?.int.map { Double($0) / 1000 }
            let rw: ReturnWhen
            switch op["return_when"]?.string {
            case "FIRST_COMPLETED": rw = .firstCompleted
            case "FIRST_EXCEPTION": rw = .firstException
            default: rw = .allCompleted
            }
            let (d, p) = try await wait(futs, timeout: t, returnWhen: rw)
            return .list([.set(d.map { ptr($0) }), .set(p.map { ptr($0) })])
        }
    }

    func gatherValue(_ f: Future<V>) -> V {
        let rs = (try? gatheredResults(f, as: V.self)) ?? []
        return .list(rs.map { r in
            switch r { case .success(let v): return v; case .failure(let e): return .err(e) }
        })
    }

    func createTask(name: String? = nil, eager: Bool? = nil, group: LoopTaskGroup? = nil,
                    _ body: @escaping TaskBody<V>) throws -> LoopTask<V> {
        if let group { return try group.createTask(name: name, eagerStart: eager, body) }
        return try loop.createTask(name: name, eagerStart: eager, body)
    }

    // MARK: Ops

    func exec(_ ops: [JSON], _ cx: Ctx) async throws -> Flow {
        for op in ops {
            let flow = try await execOp(op, cx)
            if case .ret = flow { return flow }
        }
        return .next
    }

    func label(_ op: JSON) -> String {
        let name = op["op"]?.string ?? "?"
        if let t = op["target"]?.string { return "\(name) \(t)" }
        if name == "sleep" { return "sleep \(fmtJSON(op["ms"]))" }
        return name
    }

    func msg(_ op: JSON) -> String? { op["msg"].map { fmtJSON($0) } }

    func execOp(_ op: JSON, _ cx: Ctx) async throws -> Flow {
        let name = op["op"]?.string ?? ""
        if try simple(op, cx.actor) { return .next }
        switch name {
        case "return": return .ret(V(op["value"]))
        case "raise": throw makeError(op["error"]?.string ?? "RuntimeError", msg(op))
        case "reraise":
            guard let e = cx.handled.last else { throw RunFailure(message: "reraise outside a handler") }
            throw e
        case "repeat":
            for _ in 0..<(op["count"]?.int ?? 0) {
                let f = try await exec(op["body"]?.list ?? [], cx)
                if case .ret = f { return f }
            }
            return .next
        case "try": return try await execTry(op, cx)
        case "timeout":
            let id = op["id"]?.string ?? "?"
            do {
                let body: (TimeoutScope) async throws -> Flow = { [self] scope in
                    declare(id, .timeout(scope), summary: false)
                    emit(cx.actor, "timeout \(id) enter")
                    return try await exec(op["body"]?.list ?? [], cx)
                }
                let flow: Flow
                if let at = op["at"] {
                    flow = try await withTimeoutAt(at.int.map { Double($0) / 1000 }) { try await body($0) }
                } else {
                    flow = try await withTimeout(op["delay"]?.int.map { Double($0) / 1000 }) { try await body($0) }
                }
                emit(cx.actor, "timeout \(id) -> null")
                return flow
            } catch let f as RunFailure { throw f } catch {
                emit(cx.actor, "timeout \(id) !> \(fmtErr(error))")
                throw error
            }
        case "taskgroup":
            let id = op["id"]?.string ?? "?"
            do {
                let flow = try await withLoopTaskGroup { [self] g in
                    declare(id, .group(g), summary: false)
                    emit(cx.actor, "taskgroup \(id) enter")
                    return try await exec(op["body"]?.list ?? [], cx)
                }
                emit(cx.actor, "taskgroup \(id) -> null")
                return flow
            } catch let f as RunFailure { throw f } catch {
                emit(cx.actor, "taskgroup \(id) !> \(fmtErr(error))")
                throw error
            }
        case "with":
            let t = op["target"]?.string ?? "?"
            let o = try obj(op)
            // `async with target:` — an error of __aenter__ (acquire) or of
            // __aexit__ (release, which then replaces the body's) leaves the block.
            do {
                try await acquire(o)
            } catch let f as RunFailure { throw f } catch {
                emit(cx.actor, "with \(t) !> \(fmtErr(error))")
                throw error
            }
            emit(cx.actor, "with \(t) enter")
            var flow = Flow.next
            var pending: (any Error)?
            do {
                flow = try await exec(op["body"]?.list ?? [], cx)
            } catch let f as RunFailure { throw f } catch { pending = error }
            do { try release(o) } catch let f as RunFailure { throw f } catch { pending = error }
            if let pending {
                emit(cx.actor, "with \(t) !> \(fmtErr(pending))")
                throw pending
            }
            emit(cx.actor, "with \(t) -> null")
            return flow
        default:
            let l = label(op)
            do {
                let v = try await suspending(op, name)
                emit(cx.actor, "\(l) -> \(fmt(v))")
            } catch let f as RunFailure { throw f } catch {
                emit(cx.actor, "\(l) !> \(fmtErr(error))")
                throw error
            }
            return .next
        }
    }

    func execTry(_ op: JSON, _ cx: Ctx) async throws -> Flow {
        var flow = Flow.next
        var pending: (any Error)?
        do {
            flow = try await exec(op["body"]?.list ?? [], cx)
        } catch let f as RunFailure { throw f } catch {
            var handler: JSON?
            for h in op["except"]?.list ?? [] {
                let names: [String]
                if case .str(let s)? = h["error"] { names = [s] } else { names = h["error"]?.list.compactMap { $0.string } ?? [] }
                if names.contains(where: { errorMatches(error, $0) }) { handler = h; break }
            }
            if let handler {
                emit(cx.actor, "caught \(fmtErr(error))")
                cx.handled.append(error)
                do {
                    flow = try await exec(handler["body"]?.list ?? [], cx)
                } catch let f as RunFailure { cx.handled.removeLast(); throw f } catch { pending = error }
                cx.handled.removeLast()
            } else {
                pending = error
            }
        }
        if let fin = op["finally"] {
            let f = try await exec(fin.list, cx)
            if case .ret = f { return f }
        }
        if let pending { throw pending }
        return flow
    }

    func acquire(_ o: Obj) async throws {
        switch o {
        case .lock(let l): try await l.acquire()
        case .cond(let c): try await c.acquire()
        case .sem(let s): try await s.acquire()
        default: throw RunFailure(message: "not lock-like")
        }
    }

    func release(_ o: Obj) throws {
        switch o {
        case .lock(let l): try l.release()
        case .cond(let c): try c.release()
        case .sem(let s): try s.release()
        default: throw RunFailure(message: "not lock-like")
        }
    }

    func suspending(_ op: JSON, _ name: String) async throws -> V {
        switch name {
        case "await":
            let o = try obj(op)
            if case .coro(let c) = o {
                try consume(c)
                return try await runCoro(c)
            }
            let f = try future(o)
            if gathers.contains(ptr(f)) {
                _ = try await Future<Void>(unsafeRetaining: f.unsafeRaw).value
                return gatherValue(f)
            }
            return try await f.value
        case "sleep":
            let ms = op["ms"]?.int ?? 0
            try await sleep(ms <= 0 ? 0 : Double(ms) / 1000)
            return V(op["result"])
        case "acquire":
            try await acquire(try obj(op))
            return .bool(true)
        case "event_wait":
            guard case .event(let e) = try obj(op) else { throw RunFailure(message: "not an event") }
            try await e.wait()
            return .bool(true)
        case "cond_wait":
            guard case .cond(let c) = try obj(op) else { throw RunFailure(message: "not a condition") }
            try await c.wait()
            return .bool(true)
        case "put", "get", "join":
            guard case .queue(let q) = try obj(op) else { throw RunFailure(message: "not a queue") }
            if name == "put" { try await q.put(V(op["value"])); return .null }
            if name == "get" { return try await q.get() }
            try await q.join()
            return .null
        default:
            throw RunFailure(message: "unknown op '\(name)'")
        }
    }

    /// Declarations, synchronous ops and `log` (shared with callbacks). False: not one of them.
    func simple(_ op: JSON, _ actor: String) throws -> Bool {
        let name = op["op"]?.string ?? ""
        let id = op["id"]?.string ?? ""
        let n = order.count
        do {
            return try declaration(op, name, id, actor)
        } catch let f as RunFailure {
            throw f
        } catch {
            // A failed declaration declares nothing (SPEC 5.1).
            for dropped in order[n...] { summary.remove(dropped); decls[dropped] = nil }
            order.removeSubrange(n...)
            emit(actor, "\(name) \(id) !> \(fmtErr(error))")
            return true
        }
    }

    func declaration(_ op: JSON, _ name: String, _ id: String, _ actor: String) throws -> Bool {
        switch name {
        case "log":
            emit(actor, "log \(op["msg"]?.string ?? "")")
        case "future":
            declare(id, .future(loop.createFuture(of: V.self)), summary: true)
        case "spawn":
            let body = op["body"]?.list ?? []
            var group: LoopTaskGroup?
            if op["group"] != nil {
                guard case .group(let g) = try obj(op, "group") else { throw RunFailure(message: "not a task group") }
                group = g
            }
            let eager = op["eager"]?.bool
            order.append(id)
            summary.insert(id)
            let t = try createTask(name: op["name"]?.string ?? id, eager: eager, group: group) { [self] in
                // An eager first step runs before the spawn returns: name the task now.
                if let me = currentTask(), names[UnsafeMutableRawPointer(me.unsafeRawTask)] == nil {
                    names[UnsafeMutableRawPointer(me.unsafeRawTask)] = id
                }
                return try await runBody(body, actor: id)
            }
            decls[id] = .future(t)
            if names[ptr(t)] == nil { names[ptr(t)] = id }
        case "coro", "wait_for", "wait":
            decls[id] = .coro(Coro(id: id, op: op))
            order.append(id)
        case "gather":
            var futs: [Future<V>] = []
            var seen: [String: Future<V>] = [:]
            for j in op["items"]?.list ?? [] {
                let iid = j.string ?? ""
                if let f = seen[iid] { futs.append(f); continue }
                guard let o = decls[iid] else { throw RunFailure(message: "undeclared gather item") }
                let f = try asFuture(o)
                seen[iid] = f
                futs.append(f)
            }
            let g = try gatherFuture(futs, returnExceptions: op["return_exceptions"]?.bool ?? false)
            let f = Future<V>(unsafeRetaining: g.unsafeRaw)
            gathers.insert(ptr(f))
            declare(id, .gather(f), summary: true)
        case "shield":
            let item = try obj(op, "item")
            let inner = try asFuture(item)
            let s = try shield(inner)
            if case .gather = item, s.unsafeRaw == inner.unsafeRaw { declare(id, .gather(s), summary: true) }
            else { declare(id, .future(s), summary: true) }
        case "lock": declare(id, .lock(Lock()), summary: false)
        case "event": declare(id, .event(Event()), summary: false)
        case "condition":
            var lock: Lock?
            if op["lock"] != nil {
                guard case .lock(let l) = try obj(op, "lock") else { throw RunFailure(message: "not a lock") }
                lock = l
            }
            declare(id, .cond(Condition(lock: lock)), summary: false)
        case "semaphore", "bounded_semaphore":
            let value = Int(op["value"]?.int ?? 1)
            let s: Semaphore = name == "semaphore" ? try Semaphore(value: value) : try BoundedSemaphore(value: value)
            declare(id, .sem(s), summary: false)
        case "queue":
            let maxsize = Int(op["maxsize"]?.int ?? 0)
            let q: AsyncQueue<V>
            switch op["kind"]?.string {
            case "lifo": q = AsyncQueue(maxsize: maxsize, kind: .lifo)
            case "priority": q = AsyncQueue.priority(maxsize: maxsize)
            default: q = AsyncQueue(maxsize: maxsize)
            }
            declare(id, .queue(q), summary: false)
        case "call_soon", "call_later", "call_at":
            let tag = op["cb"]?.string ?? ""
            let fn: @Sendable () -> Void = { [self] in callback(tag, nil) }
            let h: Handle
            if name == "call_soon" { h = try loop.callSoon(fn) }
            else if name == "call_later" { h = try loop.callLater(Double(op["delay"]?.int ?? 0) / 1000, fn) }
            else { h = try loop.callAt(Double(op["at"]?.int ?? 0) / 1000, fn) }
            if op["id"] != nil { declare(id, .handle(h), summary: false) }
        case "add_done_callback":
            let tag = op["cb"]?.string ?? ""
            let f = try future(try obj(op))
            f.addDoneCallback(doneCallback(tag))
        case "set_result", "set_exception", "cancel", "uncancel", "cancelling", "done", "cancelled", "result",
             "exception", "get_name", "remove_done_callback", "current_task", "all_tasks", "release", "locked",
             "event_set", "event_clear", "is_set", "notify", "notify_all", "put_nowait", "get_nowait",
             "task_done", "qsize", "empty", "full", "shutdown", "reschedule", "when", "expired":
            let l = label(op)
            do {
                emit(actor, "\(l) -> \(fmt(try sync(op, name, actor)))")
            } catch let f as RunFailure { throw f } catch {
                emit(actor, "\(l) !> \(fmtErr(error))")
            }
        default:
            return false
        }
        return true
    }

    func task(_ o: Obj) throws -> LoopTask<V> {
        guard case .future(let f) = o, let t = f as? LoopTask<V> else { throw RunFailure(message: "not a task") }
        return t
    }

    func sync(_ op: JSON, _ name: String, _ actor: String) throws -> V {
        switch name {
        case "set_result":
            try future(try obj(op)).setResult(V(op["value"]))
            return .null
        case "set_exception":
            try future(try obj(op)).setException(makeError(op["error"]?.string ?? "RuntimeError", msg(op)))
            return .null
        case "cancel":
            let o = try obj(op)
            if case .handle(let h) = o { h.cancel(); return .null }
            return .bool(try future(o).cancel(message: msg(op)))
        case "uncancel": return .int(Int64(try task(try obj(op)).uncancel()))
        case "cancelling": return .int(Int64(try task(try obj(op)).cancelling))
        case "done": return .bool(try future(try obj(op)).isDone)
        case "cancelled":
            let o = try obj(op)
            if case .handle(let h) = o { return .bool(h.isCancelled) }
            return .bool(try future(o).isCancelled)
        case "result":
            let o = try obj(op)
            if case .gather(let g) = o { _ = try gatheredResults(g, as: V.self); return gatherValue(g) }
            return try future(o).result()
        case "exception":
            let f = try future(try obj(op))
            return try f.exception().map { .err($0) } ?? .null
        case "get_name": return .str(try task(try obj(op)).name)
        case "remove_done_callback":
            return .int(Int64(try future(try obj(op)).removeDoneCallback(doneCallback(op["cb"]?.string ?? ""))))
        case "current_task":
            guard let t = currentTask() else { return .null }
            return .fut(UnsafeMutableRawPointer(t.unsafeRawTask))
        case "all_tasks":
            return .set(allTasks().map { UnsafeMutableRawPointer($0.unsafeRawTask) })
        case "release": try release(try obj(op)); return .null
        case "locked":
            switch try obj(op) {
            case .lock(let l): return .bool(l.isLocked)
            case .cond(let c): return .bool(c.isLocked)
            case .sem(let s): return .bool(s.isLocked)
            default: throw RunFailure(message: "not lock-like")
            }
        case "event_set", "event_clear", "is_set":
            guard case .event(let e) = try obj(op) else { throw RunFailure(message: "not an event") }
            if name == "event_set" { try e.set(); return .null }
            if name == "event_clear" { e.clear(); return .null }
            return .bool(e.isSet)
        case "notify", "notify_all":
            guard case .cond(let c) = try obj(op) else { throw RunFailure(message: "not a condition") }
            if name == "notify" { try c.notify(Int(op["n"]?.int ?? 1)) } else { try c.notifyAll() }
            return .null
        case "put_nowait", "get_nowait", "task_done", "qsize", "empty", "full", "shutdown":
            guard case .queue(let q) = try obj(op) else { throw RunFailure(message: "not a queue") }
            switch name {
            case "put_nowait": try q.putNowait(V(op["value"])); return .null
            case "get_nowait": return try q.getNowait()
            case "task_done": try q.taskDone(); return .null
            case "qsize": return .int(Int64(q.count))
            case "empty": return .bool(q.isEmpty)
            case "full": return .bool(q.isFull)
            default: try q.shutdown(immediate: op["immediate"]?.bool ?? false); return .null
            }
        case "reschedule":
            guard case .timeout(let s) = try obj(op) else { throw RunFailure(message: "not a timeout") }
            if let d = op["delay"]?.int {
                try s.reschedule(loop.time + Double(d) / 1000)
            } else {
                try s.reschedule(op["at"]?.int.map { Double($0) / 1000 })
            }
            return .null
        case "when":
            let o = try obj(op)
            let w: Double?
            if case .timeout(let s) = o { w = s.when } else if case .handle(let h) = o { w = h.when } else {
                throw RunFailure(message: "not a timeout or timer handle")
            }
            return w.map { .int(Int64(($0 * 1000).rounded())) } ?? .null
        case "expired":
            guard case .timeout(let s) = try obj(op) else { throw RunFailure(message: "not a timeout") }
            return .bool(s.expired)
        default:
            throw RunFailure(message: "op '\(name)' is not supported by the swift engine")
        }
    }

    func callback(_ tag: String, _ fut: Future<V>?) {
        if idle { return }
        let actor = "cb:\(tag)"
        if let fut { emit(actor, "done \(names[ptr(fut)] ?? "?") \(state(fut))") } else { emit(actor, "run") }
        for op in callbacks[tag] ?? [] {
            do {
                if try !simple(op, actor) { fail("op '\(op["op"]?.string ?? "?")' in a callback"); return }
            } catch let f as RunFailure {
                fail(f.message); return
            } catch {
                fail("\(error)"); return
            }
        }
    }

    // MARK: The run

    /// Breaks the reference cycles a run leaves behind (task bodies and
    /// callbacks capture the run, the run holds the tasks): forgets every
    /// object, then closes the loop, which destroys the tasks still pending
    /// so their bodies unwind. The trace is complete by then; the reports of
    /// those destroyed tasks are not part of it.
    func teardown() {
        decls.removeAll()
        coroTasks.removeAll()
        doneCallbacks.removeAll()
        callbacks.removeAll()
        names.removeAll()
        gathers.removeAll()
        ca_loop_set_exception_handler(raw, { _, _, _ in }, nil)
        try? loop.close()
    }

    func execute() throws -> SwiftOutcome {
        defer { teardown() }
        if let req = root["requires"]?.list {
            for r in req where r.string != "queue_shutdown" && r.string != "eager_start" {
                return SwiftOutcome(status: 3, trace: "", message: "requires unknown feature \(fmtJSON(r))")
            }
        }
        let main = root["main"]?.list ?? []
        order.append("main")
        summary.insert("main")
        let t: LoopTask<V> = try loop.createTask(name: "main") { [self] in try await runBody(main, actor: "main") }
        decls["main"] = .future(t)
        names[ptr(t)] = "main"
        touch()
        try loop.runForever()
        if let failure { return SwiftOutcome(status: 2, trace: out, message: failure) }
        if !idle { return SwiftOutcome(status: 2, trace: out, message: "the loop stopped before the run was idle") }
        let ms = idleNs / 1_000_000
        out += "\(ms) runner idle\n"
        for id in order where summary.contains(id) {
            guard let o = decls[id] else { continue }
            let f: Future<V>
            switch o {
            case .future(let x), .gather(let x): f = x
            case .coro(let c):
                guard let t = coroTasks[c.id] else { continue }
                f = t
            default: continue
            }
            out += "\(ms) runner final \(id) \(state(f))\n"
        }
        return SwiftOutcome(status: 0, trace: out, message: nil)
    }
}

/// Runs the scenario held in `bytes` on the Swift layer. The scenario is
/// checked first by the `c` engine's reader and validator (cconf_check_json).
public func swiftConformanceRun(bytes: [UInt8]) -> SwiftOutcome {
    var checked = cconf_outcome()
    let text = bytes.map { CChar(bitPattern: $0) } + [0]
    let status = text.withUnsafeBufferPointer { cconf_check_json($0.baseAddress!, bytes.count, &checked) }
    let problem = checked.message.map { String(cString: $0) }
    cconf_outcome_free(&checked)
    if status != 0 { return SwiftOutcome(status: status, trace: "", message: problem ?? "invalid scenario") }
    let root: JSON
    do {
        var r = JSONReader(bytes)
        root = try r.document()
    } catch {
        return SwiftOutcome(status: 2, trace: "", message: (error as? JSONError)?.message ?? "bad JSON")
    }
    guard case .obj = root, root["main"] != nil else {
        return SwiftOutcome(status: 2, trace: "", message: "not a scenario")
    }
    do {
        let run = try Run(root: root)
        return try run.execute()
    } catch {
        return SwiftOutcome(status: 2, trace: "", message: "run failed: \(error)")
    }
}
