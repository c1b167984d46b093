// The coroutine protocol (send / throw / close) for Swift `async` bodies: a
// C task drives a Swift task through these three hooks, so the C core owns
// the task's state (fut_waiter, cancellation, current task) and the Swift
// task only ever runs inside its C task's step.

import CAsyncio
import CAsyncioShim

@usableFromInline
typealias CoroPtr = UnsafeMutablePointer<cas_coro>

@usableFromInline
enum SwiftCoroutine {
    /// Installs send/throw/close once per process.
    @usableFromInline
    static let installed: Void = {
        var hooks = cas_hooks(send: coroSend, throw_: coroThrow, close: coroClose)
        cas_install(&hooks)
    }()

    /// Creates the coroutine of a body and its Swift task; the task's first
    /// job is captured, to run at the coroutine's first send. The returned
    /// reference is the caller's (hand it to a C task).
    @inlinable
    static func make<T: Sendable>(core: LoopCore, name: StaticString, file: StaticString, line: UInt,
                                  body: @escaping TaskBody<T>) -> CoroPtr {
        _ = installed
        guard let c = cas_coro_new(staticCString(name), staticCString(file), Int32(truncatingIfNeeded: line)) else {
            fatalError("out of memory creating a coroutine")
        }
        c.pointee.core = core.opaque
        core.liveBodies += 1
        // The Swift task's own reference, dropped when its body is over.
        ca_incref(UnsafeMutableRawPointer(c))
        // The body waits in the coroutine, so the task's closure captures
        // nothing (compiled for a concrete T it needs no context, one
        // allocation less per task): its first job runs inside a step of
        // this coroutine, which finds it there (cas_tls.running).
        assert(MemoryLayout<TaskBody<T>>.size <= MemoryLayout.size(ofValue: c.pointee.body))
        bodySlot(c, T.self).initialize(to: body)
        let tls = cas_tls_get()
        let previous = tls.pointee.capture
        tls.pointee.capture = c
        // A throwing operation (it never throws): the non-throwing Task
        // initializer would wrap it in a throwing thunk, one more allocation.
        _ = Task(executorPreference: core.executor) { () async throws -> Void in
            await runStartedBody(T.self)
        }
        tls.pointee.capture = previous
        precondition(c.pointee.job != nil, "the Swift task of a body was not enqueued on its loop")
        return c
    }

    /// Where a coroutine keeps its body until the body starts.
    @inlinable @inline(__always)
    static func bodySlot<T: Sendable>(_ c: CoroPtr, _: T.Type) -> UnsafeMutablePointer<TaskBody<T>> {
        (UnsafeMutableRawPointer(c) + MemoryLayout<cas_coro>.offset(of: \cas_coro.body)!)
            .bindMemory(to: TaskBody<T>.self, capacity: 1)
    }

    /// What the Swift task runs: the body its coroutine holds (the one whose
    /// step runs this first job), its outcome stored in the coroutine.
    @inlinable
    nonisolated(nonsending) static func runStartedBody<T: Sendable>(_: T.Type) async {
        guard let c = cas_tls_get().pointee.running else {
            preconditionFailure("a task body started outside its coroutine's step")
        }
        let body = bodySlot(c, T.self).move()
        if c.pointee.abandoned == 0 {
            do {
                let value = try await body()
                c.pointee.result = ValueCodec<T>.encode(value)
            } catch {
                c.pointee.error = ErrorBridge.cError(error)
            }
        }
        c.pointee.phase = UInt8(CAS_PHASE_DONE.rawValue)
        Unmanaged<LoopCore>.fromOpaque(c.pointee.core)._withUnsafeGuaranteedRef { $0.liveBodies -= 1 }
        ca_decref(UnsafeMutableRawPointer(c))
    }
}

/// A C string pointer for a static string (file and function names).
@usableFromInline
func staticCString(_ s: StaticString) -> UnsafePointer<CChar> {
    if s.hasPointerRepresentation {
        return UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
    }
    return UnsafeRawPointer(StaticString("?").utf8Start).assumingMemoryBound(to: CChar.self)
}

// MARK: - The hooks

private let phaseNotStarted = UInt8(CAS_PHASE_NOT_STARTED.rawValue)
private let phaseRunning = UInt8(CAS_PHASE_RUNNING.rawValue)
private let phaseAwaiting = UInt8(CAS_PHASE_AWAITING.rawValue)
private let phaseForeign = UInt8(CAS_PHASE_FOREIGN.rawValue)
private let phaseDone = UInt8(CAS_PHASE_DONE.rawValue)

@inline(__always)
private func core(of c: CoroPtr) -> LoopCore {
    Unmanaged<LoopCore>.fromOpaque(c.pointee.core).takeUnretainedValue()
}

/// send(None): resumes the body (or the C coroutine it delegates to).
private func coroSend(_ c: CoroPtr?, _ res: UnsafeMutablePointer<ca_coro_result>?) -> ca_coro_status {
    let c = c!, res = res!
    c.pointee.co.co_state = UInt8(CA_CORO_RUNNING.rawValue)
    if let inner = c.pointee.co.co_awaiting {
        if ca_coro_send(inner, ca_none(), res) == CA_CORO_YIELD { return suspended(c) }
        finishDelegation(c, inner, res)
    }
    return resume(c, res)
}

/// throw(exc): raises `exc` at the body's await, or defers it when the body
/// is suspended outside the loop.
private func coroThrow(_ c: CoroPtr?, _ exc: UnsafeMutablePointer<ca_error>?,
                       _ res: UnsafeMutablePointer<ca_coro_result>?) -> ca_coro_status {
    let c = c!, exc = exc!, res = res!
    c.pointee.co.co_state = UInt8(CA_CORO_RUNNING.rawValue)
    if let inner = c.pointee.co.co_awaiting {
        if ca_coro_throw(inner, exc, res) == CA_CORO_YIELD { return suspended(c) }
        finishDelegation(c, inner, res)
        return resume(c, res)
    }
    switch c.pointee.phase {
    case phaseNotStarted:
        // coro.throw() before the first send: the body never runs. Its Swift
        // task still has to end, so run its first job, which returns at once.
        c.pointee.abandoned = 1
        discardFirstJob(c)
        c.pointee.co.co_state = UInt8(CA_CORO_CLOSED.rawValue)
        res.pointee.error = ca_incref(exc).map { $0.assumingMemoryBound(to: ca_error.self) }
        return CA_CORO_RAISE
    case phaseForeign:
        replace(&c.pointee.pending_exc, with: exc)
        if c.pointee.job == nil {
            // Suspended outside the loop and not back yet: the only way to
            // interrupt a foreign operation is Swift cancellation. The
            // CancelledError waits for the next loop await.
            if ca_error_matches(exc, cas_CancelledError()) { cas_swift_task_cancel(c.pointee.swift_task) }
            // A cancellation handler may resume the task right away (Task.sleep
            // does): then its job was just adopted, and runs now.
            if c.pointee.job == nil { return waitForeign(c, res) }
        }
        return resume(c, res)
    default:
        replace(&c.pointee.resume_exc, with: exc)
        return resume(c, res)
    }
}

/// close(): the C task abandons the body (it is being destroyed). Asks the
/// body to unwind by throwing GeneratorExit at its await; every later loop
/// await throws it again.
private func coroClose(_ c: CoroPtr?) {
    let c = c!
    let raw = UnsafeMutableRawPointer(c)
    ca_incref(raw)
    defer { ca_decref(raw) }
    if let inner = c.pointee.co.co_awaiting {
        c.pointee.co.co_awaiting = nil
        ca_coro_close(inner)
        ca_decref(UnsafeMutableRawPointer(inner))
    }
    c.pointee.closing = 1
    switch c.pointee.phase {
    case phaseNotStarted:
        c.pointee.abandoned = 1
        discardFirstJob(c)
    case phaseAwaiting:
        c.pointee.resume_exc = ca_error_new(cas_GeneratorExitType(), nil)
        var res = ca_coro_result()
        _ = resume(c, &res)
        releaseResult(&res)
    case phaseForeign:
        let core = core(of: c)
        if c.pointee.job != nil {
            var res = ca_coro_result()
            _ = resume(c, &res)
            releaseResult(&res)
        } else {
            // It cannot be interrupted: cancel the Swift task and let its job
            // run as a plain one when it comes back; its loop awaits throw.
            core.unregisterForeign(c)
            cas_swift_task_cancel(c.pointee.swift_task)
        }
    default:
        break
    }
    if c.pointee.phase == phaseForeign {
        // It suspended outside the loop again while unwinding.
        core(of: c).unregisterForeign(c)
    }
    ca_value_clear(&c.pointee.result)
    clear(&c.pointee.error)
    c.pointee.co.co_state = UInt8(CA_CORO_CLOSED.rawValue)
}

// MARK: - Steps

/// Runs the body's pending job (capturing it first when resuming an await)
/// and reports what the body did.
@inline(__always)
private func resume(_ c: CoroPtr, _ res: UnsafeMutablePointer<ca_coro_result>) -> ca_coro_status {
    if c.pointee.phase == phaseAwaiting {
        let tls = cas_tls_get()
        let previous = tls.pointee.capture
        tls.pointee.capture = c
        let k = c.pointee.cont!
        c.pointee.cont = nil
        // Straight to the loop's serial executor: resumed onto the generic
        // executor, the runtime would look up the task's executor
        // preference under its status lock first. The step runs the job as
        // a task-executor one all the same (see LoopCore.enqueue).
        Unmanaged<LoopCore>.fromOpaque(c.pointee.core)._withUnsafeGuaranteedRef { core in
            _ = cas_continuation_resume_to(k, core.serialIdentity, core.serialImplementation)
        }
        unsafeBitCast(k, to: UnsafeContinuation<Void, Never>.self).resume()
        tls.pointee.capture = previous
    }
    guard let job = c.pointee.job else {
        // The resumption went elsewhere (it cannot, with the preference set;
        // this keeps the C task in step with the Swift task regardless): the
        // job is adopted when it reaches the loop.
        c.pointee.phase = phaseForeign
        if c.pointee.swift_task != nil { core(of: c).registerForeign(c) }
        return waitForeign(c, res)
    }
    c.pointee.job = nil
    c.pointee.phase = phaseRunning
    // Borrowed, not retained (a retain/release pair is two atomic
    // operations on every step): the core belongs to the EventLoop, which
    // is alive throughout — its run method is running this step, and the
    // body's Swift task holds it as its executor preference. runOwn reads
    // the core only before each job it runs, and a job that is run again
    // (a trampoline) belongs to a task that is still alive.
    Unmanaged<LoopCore>.fromOpaque(c.pointee.core)._withUnsafeGuaranteedRef { $0.runOwn(c, job: job) }
    return afterRun(c, res)
}

/// What a run of the body's job ended with.
@inline(__always)
private func afterRun(_ c: CoroPtr, _ res: UnsafeMutablePointer<ca_coro_result>) -> ca_coro_status {
    if c.pointee.phase == phaseDone {
        c.pointee.co.co_state = UInt8(CA_CORO_CLOSED.rawValue)
        c.pointee.co.co_lineno = 0
        if let e = c.pointee.error {
            c.pointee.error = nil
            res.pointee.error = e
            return CA_CORO_RAISE
        }
        res.pointee.value = c.pointee.result
        c.pointee.result = ca_none()
        return CA_CORO_RETURN
    }
    if c.pointee.cont != nil {
        c.pointee.phase = phaseAwaiting
        return suspended(c, res)
    }
    // Suspended on something that is not a loop awaitable.
    c.pointee.phase = phaseForeign
    core(of: c).registerForeign(c)
    return waitForeign(c, res)
}

/// YIELD what the recorded await waits for.
@inline(__always)
private func suspended(_ c: CoroPtr, _ res: UnsafeMutablePointer<ca_coro_result>) -> ca_coro_status {
    c.pointee.co.co_state = UInt8(CA_CORO_SUSPENDED.rawValue)
    if c.pointee.bare_yield != 0 {
        c.pointee.bare_yield = 0
        res.pointee.future = nil
    } else {
        res.pointee.future = c.pointee.awaited
        c.pointee.awaited = nil
    }
    return CA_CORO_YIELD
}

/// The delegated C coroutine yielded again: stay suspended on it.
@inline(__always)
private func suspended(_ c: CoroPtr) -> ca_coro_status {
    c.pointee.co.co_state = UInt8(CA_CORO_SUSPENDED.rawValue)
    return CA_CORO_YIELD
}

/// The delegated C coroutine returned or raised: keep its outcome for the
/// body, which resumes next.
private func finishDelegation(_ c: CoroPtr, _ inner: UnsafeMutablePointer<ca_coro>,
                              _ res: UnsafeMutablePointer<ca_coro_result>) {
    c.pointee.co.co_awaiting = nil
    if let e = res.pointee.error {
        res.pointee.error = nil
        clear(&c.pointee.resume_exc)
        c.pointee.resume_exc = e
    } else {
        ca_value_clear(&c.pointee.resume_value)
        c.pointee.resume_value = res.pointee.value
        res.pointee.value = ca_none()
    }
    ca_decref(UnsafeMutableRawPointer(inner))
}

/// YIELD a private future that completes when the body's job comes back to
/// the loop (adoption), so the body resumes inside this task's step.
private func waitForeign(_ c: CoroPtr, _ res: UnsafeMutablePointer<ca_coro_result>) -> ca_coro_status {
    let core = core(of: c)
    clear(&c.pointee.foreign)
    guard let f = cas_suspension_new(core.loop) else {
        c.pointee.co.co_state = UInt8(CA_CORO_SUSPENDED.rawValue)
        res.pointee.future = nil
        return CA_CORO_YIELD
    }
    c.pointee.foreign = f
    cas_future_set_blocking(f)
    c.pointee.co.co_state = UInt8(CA_CORO_SUSPENDED.rawValue)
    res.pointee.future = ca_incref(UnsafeMutableRawPointer(f))!.assumingMemoryBound(to: ca_future.self)
    return CA_CORO_YIELD
}

/// Runs the captured first job of a body that must not run: its wrapper sees
/// `abandoned` and returns, which ends the Swift task.
private func discardFirstJob(_ c: CoroPtr) {
    guard let job = c.pointee.job else { return }
    c.pointee.job = nil
    core(of: c).runOwn(c, job: job)
    c.pointee.phase = phaseDone
}

// MARK: - Small helpers

@inline(__always)
func clear<T>(_ slot: inout UnsafeMutablePointer<T>?) {
    if let p = slot {
        slot = nil
        ca_decref(UnsafeMutableRawPointer(p))
    }
}

@inline(__always)
func replace(_ slot: inout UnsafeMutablePointer<ca_error>?, with e: UnsafeMutablePointer<ca_error>) {
    ca_incref(UnsafeMutableRawPointer(e))
    clear(&slot)
    slot = e
}

private func releaseResult(_ res: inout ca_coro_result) {
    clear(&res.future)
    clear(&res.error)
    ca_value_clear(&res.value)
}

/// The type of a task body: a Swift `async` closure that runs on the
/// caller's isolation (`nonisolated(nonsending)`), which for a task is the
/// loop's task executor. A body that jumped to the generic executor instead
/// would pay a task switch, and the runtime's lookup of the task's executor
/// preference (a lock), on every call.
public typealias TaskBody<T> = nonisolated(nonsending) @Sendable () async throws -> T
