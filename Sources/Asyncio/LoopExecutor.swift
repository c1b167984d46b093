// The loop's two executor roles and the decision every enqueued job goes
// through: capture it for the step that is resuming its task, run it inline
// (an executor hop of the task that is running), adopt it for a task waiting
// out a foreign suspension, or queue it on the loop as a plain callback.

import CAsyncio
import CAsyncioShim

/// The state the Swift layer keeps per C loop, and what its two executor
/// roles do with a job.
///
/// Jobs of Swift-bodied tasks come here because every such task is created
/// with a task-executor preference for the loop's ``EventLoop`` (whose
/// `enqueue` forwards here): the runtime then sends each resumption, whether
/// from a continuation (which always resumes on the generic executor) or from
/// a hop back from another actor, to the loop.
///
/// Safety of `@unchecked Sendable`: `loop`, `serial`, `serialUnowned` and
/// `opaque` are set in `init`, and `executor`, `taskUnowned` in `bind`,
/// which the EventLoop's init calls before the core is shared with any other
/// thread; none changes afterwards. The mutable state (`registry`,
/// `foreignSuspensions`, `liveBodies`) is touched only on the thread that
/// runs the loop: the callers check `cas_tls.core`, which only that thread
/// sets. `spareHandles` is confined as the C loop is: the scheduling calls
/// that pop it check `checkConfined`, and the release that pushes onto it
/// runs on the thread whose `cas_tls.core` is this core.
/// `enqueue` may run on any thread: off the loop thread it only reads its
/// own thread-local windows and calls `ca_loop_call_soon_threadsafe`, the
/// core's cross-thread entry point.
@usableFromInline
final class LoopCore: @unchecked Sendable {
    /// The C loop (one strong reference, released in `deinit`).
    @usableFromInline let loop: OpaquePointer
    /// The serial role (same loop, separate object so the two enqueue roles
    /// are told apart).
    let serial: LoopSerialExecutor
    /// `self` as the pointer `cas_tls.core` holds while the loop runs here.
    @usableFromInline private(set) var opaque: UnsafeMutableRawPointer!
    /// Bodies suspended outside the loop, by their Swift task: the next job
    /// of that task is adopted into its C step. Loop thread only.
    var registry: [UnsafeMutableRawPointer: UnsafeMutablePointer<cas_coro>] = [:]
    /// How many times a body suspended outside the loop. Loop thread only.
    var foreignSuspensions = 0
    /// Swift tasks of bodies created on this loop and not finished yet. Loop
    /// thread only (bodies are created and end there).
    @usableFromInline var liveBodies = 0
    /// Handles whose callback is done and that nobody else holds, kept for
    /// reuse by the next ``EventLoop/callSoon(_:)`` (see ``Handle``). Touched
    /// where the C loop is: on the thread running it, or by the thread
    /// using it while it is not running.
    /// The list's head (each holds one reference, linked through
    /// `Handle.nextSpare`) and length.
    var spareHandles: UnsafeMutableRawPointer?
    var spareHandleCount = 0
    /// How many spare handles a loop keeps at most.
    static var spareHandleLimit: Int { 1024 }
    /// A `Future` wrapper a done callback received and nobody kept (one
    /// reference), for the next done callback of the same type (see
    /// `DoneCallbackSlot`), and its type. Loop thread only.
    private var spareFuture: UnsafeMutableRawPointer?
    private var spareFutureType: ObjectIdentifier?

    let serialUnowned: UnownedSerialExecutor
    /// The two words of `serialUnowned` (a SerialExecutorRef), for
    /// `cas_continuation_resume_to`.
    let serialIdentity: UnsafeMutableRawPointer?
    let serialImplementation: UInt
    /// The EventLoop owning this core, which is the task executor. The
    /// runtime releases the executor *identity* a task was given as
    /// preference when the task ends, after retaining the object passed in,
    /// so the object and its identity must be the same: that is why the
    /// preference is the EventLoop and not this object. Unowned: the
    /// EventLoop owns the core (a weak reference would put a side table on
    /// the EventLoop and send every retain of it, one per task, down the
    /// runtime's slow path). Valid while the EventLoop lives: it runs the
    /// loop, and every task of the loop holds it through its preference.
    @usableFromInline private(set) unowned(unsafe) var executor: EventLoop!
    private(set) var taskUnowned: UnownedTaskExecutor!

    init(loop: OpaquePointer) {
        self.loop = loop
        let serial = LoopSerialExecutor()
        self.serial = serial
        serialUnowned = UnownedSerialExecutor(ordinary: serial)
        (serialIdentity, serialImplementation) = unsafeBitCast(serialUnowned, to: (UnsafeMutableRawPointer?, UInt).self)
        serial.core = self
        opaque = Unmanaged.passUnretained(self).toOpaque()
    }

    /// Binds the core to its EventLoop (once, from the EventLoop's init).
    func bind(_ loop: EventLoop) {
        executor = loop
        taskUnowned = UnownedTaskExecutor(ordinary: loop)
    }

    deinit {
        if let spare = spareFuture { Unmanaged<AnyObject>.fromOpaque(spare).release() }
        while let spare = spareHandles {
            let handle = Unmanaged<Handle>.fromOpaque(spare)
            handle._withUnsafeGuaranteedRef { h in
                spareHandles = h.nextSpare
                h.nextSpare = nil
            }
            handle.release()
        }
        ca_decref(UnsafeMutableRawPointer(loop))
    }

    /// The core whose loop an EventLoop runs on the calling thread.
    @usableFromInline
    static var current: LoopCore? {
        guard let p = cas_tls_get().pointee.core else { return nil }
        return Unmanaged<LoopCore>.fromOpaque(p).takeUnretainedValue()
    }

    /// True on the thread running this loop through an EventLoop.
    var isCurrent: Bool { cas_tls_get().pointee.core == opaque }

    /// Takes the kept `Future` wrapper of the loop running on this thread
    /// when it has the type `type` (one reference, the caller's).
    @usableFromInline
    static func takeSpareFuture(_ type: ObjectIdentifier) -> UnsafeMutableRawPointer? {
        guard let p = cas_tls_get().pointee.core else { return nil }
        return Unmanaged<LoopCore>.fromOpaque(p)._withUnsafeGuaranteedRef { core in
            guard let spare = core.spareFuture, core.spareFutureType == type else { return nil }
            core.spareFuture = nil
            return spare
        }
    }

    /// Keeps `wrapper` (one reference, taken over; it holds no future) for
    /// reuse by the loop running on this thread, or releases it when that
    /// loop keeps one already.
    @usableFromInline
    static func keepSpareFuture(_ wrapper: UnsafeMutableRawPointer, _ type: ObjectIdentifier) {
        let kept = cas_tls_get().pointee.core.map { p in
            Unmanaged<LoopCore>.fromOpaque(p)._withUnsafeGuaranteedRef { core in
                guard core.spareFuture == nil else { return false }
                core.spareFuture = wrapper
                core.spareFutureType = type
                return true
            }
        } ?? false
        if !kept { Unmanaged<AnyObject>.fromOpaque(wrapper).release() }
    }

    // MARK: The decision

    /// Where a job enqueued on either role goes; see the file comment.
    @inline(__always)
    func enqueue(_ job: UnownedJob, serialRole: Bool) {
        let p = unsafeBitCast(job, to: UnsafeMutableRawPointer.self)
        let tls = cas_tls_get()
        if let c = tls.pointee.capture, c.pointee.core == opaque,
           c.pointee.swift_task == nil || c.pointee.swift_task == p {
            // A step is resuming (or starting) this body: the step runs it.
            // A resumed await comes here on the serial role (the step
            // points its continuation at it, cas_continuation_resume_to) but
            // is run on the task role, as the generic executor's resumption
            // it replaces would be: the body goes on nonisolated, with no
            // hop back.
            tls.pointee.capture = nil
            if c.pointee.swift_task == nil { c.pointee.swift_task = p }
            c.pointee.job = tagged(p, serialRole && c.pointee.phase != UInt8(CAS_PHASE_AWAITING.rawValue))
            return
        }
        if let r = tls.pointee.running, r.pointee.swift_task == p {
            // The running body hops between isolations: run it on return.
            r.pointee.trampoline = tagged(p, serialRole)
            return
        }
        if tls.pointee.core == opaque {
            enqueueOnLoopThread(p, serialRole: serialRole)
        } else {
            // The job is its own release: when the loop closes before it
            // runs the job, close runs it (the body then unwinds, and its
            // task ends) instead of losing it.
            let arg = tagged(p, serialRole)
            tls.pointee.handover = arg
            let err = ca_loop_call_soon_threadsafe(loop, runJobOnLoop, arg, runJobOnLoop)
            tls.pointee.handover = nil
            if let err { reportLostJob(err) }
        }
    }

    /// A job enqueued on the loop thread outside any step.
    func enqueueOnLoopThread(_ p: UnsafeMutableRawPointer, serialRole: Bool) {
        if !registry.isEmpty, let c = registry.removeValue(forKey: p) {
            adopt(c, job: tagged(p, serialRole))
            return
        }
        let arg = tagged(p, serialRole)
        if let err = ca_loop_call_soon(loop, runJobOnLoop, arg, nil, nil, nil) {
            reportLostJob(err)
        }
    }

    /// Runs a job that is not a step of a Swift-bodied task (a child of
    /// `async let`, an actor's drain, a continuation job), or adopts it when
    /// it belongs to a body waiting out a foreign suspension.
    func runPlainJob(_ p: UnsafeMutableRawPointer, serialRole: Bool) {
        if !registry.isEmpty, let c = registry.removeValue(forKey: p) {
            adopt(c, job: tagged(p, serialRole))
            return
        }
        let job = unsafeBitCast(p, to: UnownedJob.self)
        if serialRole {
            job.runSynchronously(on: serialUnowned)
        } else {
            job.runSynchronously(on: taskUnowned)
        }
    }

    /// Hands the job (tagged with its role) back to its C task: the next
    /// step of that task runs it.
    func adopt(_ c: UnsafeMutablePointer<cas_coro>, job p: UnsafeMutableRawPointer) {
        c.pointee.job = p
        if let f = c.pointee.foreign, f.pointee.fut_state == UInt8(CA_FUTURE_PENDING.rawValue) {
            ca_decref(ca_future_set_result(f, ca_none()))
        }
    }

    /// Registers a body suspended outside the loop.
    func registerForeign(_ c: UnsafeMutablePointer<cas_coro>) {
        registry[c.pointee.swift_task!] = c
        foreignSuspensions += 1
    }

    func unregisterForeign(_ c: UnsafeMutablePointer<cas_coro>) {
        if let t = c.pointee.swift_task { registry.removeValue(forKey: t) }
    }

    /// A job enqueued after the loop closed can never run: its task stays
    /// suspended for good, which is all that can happen to a task whose
    /// executor is gone. (One that reached the loop before it closed is run
    /// by close; see `runJobOnLoop`.)
    private func reportLostJob(_ err: UnsafeMutablePointer<ca_error>) {
        ca_decref(UnsafeMutableRawPointer(err))
    }

    // MARK: Running the task's own job

    /// Runs `job` (the body's Swift task, tagged with the role it was
    /// enqueued on) inside the current step, then any re-enqueue of the same
    /// task the run produced (executor hops). A job enqueued on the serial
    /// role runs isolated to it; one enqueued on the task role (a
    /// continuation's resumption, nonisolated code) runs on the generic
    /// executor with the loop as task executor. Running it as what it asked
    /// for is what spares a hop: a nonisolated body resumed "isolated to the
    /// loop" would switch back to the generic executor at once, an enqueue
    /// and a trampoline per await.
    @inline(__always)
    func runOwn(_ c: UnsafeMutablePointer<cas_coro>, job: UnsafeMutableRawPointer) {
        let tls = cas_tls_get()
        let previous = tls.pointee.running
        tls.pointee.running = c
        var next: UnsafeMutableRawPointer? = job
        while let j = next {
            let bits = UInt(bitPattern: j)
            let unowned = unsafeBitCast(bits & ~1, to: UnownedJob.self)
            if bits & 1 != 0 {
                unowned.runSynchronously(isolatedTo: serialUnowned, taskExecutor: taskUnowned)
            } else {
                unowned.runSynchronously(on: taskUnowned)
            }
            next = c.pointee.trampoline
            c.pointee.trampoline = nil
        }
        tls.pointee.running = previous
    }
}

/// The loop as a serial executor: what `EventLoop`'s actor isolation runs on.
///
/// Safety of `@unchecked Sendable`: `core` is written once, right after
/// `init`, before the object is shared; everything else is `LoopCore`'s.
final class LoopSerialExecutor: SerialExecutor, @unchecked Sendable {
    unowned(unsafe) var core: LoopCore!

    func enqueue(_ job: consuming ExecutorJob) {
        core.enqueue(UnownedJob(job), serialRole: true)
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { core.serialUnowned }

    /// Isolated to the loop means running on the thread that runs it.
    func checkIsolated() {
        precondition(core.isCurrent, "not on the thread running this EventLoop")
    }

    func isIsolatingCurrentContext() -> Bool? { core.isCurrent }
}

/// A job pointer with its enqueue role in the low bit (jobs are aligned).
@inline(__always)
func tagged(_ p: UnsafeMutableRawPointer, _ serialRole: Bool) -> UnsafeMutableRawPointer {
    serialRole ? UnsafeMutableRawPointer(bitPattern: UInt(bitPattern: p) | 1)! : p
}

// MARK: - Loop callbacks

/// call_soon / call_soon_threadsafe target: a job queued on the loop, from
/// its thread or another one.
///
/// A job handed over from another thread is also its handle's release (see
/// `ca_loop_call_soon`): it then runs here when the loop closes before it
/// took the job, on the thread closing it (inside its EventLoop's window): a
/// body waiting for it is adopted, and close unwinds it. Run by the loop's
/// refusal on the thread handing it over, it is lost (`cas_tls.handover`).
private func runJobOnLoop(_ arg: UnsafeMutableRawPointer?) {
    let tls = cas_tls_get()
    if tls.pointee.handover == arg { return }
    let bits = UInt(bitPattern: arg)
    // No EventLoop window: a C loop closed outside its EventLoop (its last
    // reference dropped while a job was queued); nothing can run the job.
    guard let core = LoopCore.current, let p = UnsafeMutableRawPointer(bitPattern: bits & ~1) else { return }
    core.runPlainJob(p, serialRole: bits & 1 != 0)
}

