// Helpers for the Swift layer's tests: every test runs its loop on a thread
// of its own, so loops never block Swift's cooperative pool (which the
// tests themselves and foreign suspensions such as Task.sleep need).

@testable import Asyncio
import CAsyncio
import Glibc
import Synchronization
import Testing

/// Runs `body` on a new thread and returns what it returned.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (k: CheckedContinuation<T, any Error>) in
        let start = ThreadStart { k.resume(with: Result { try body() }) }
        var thread = pthread_t()
        let arg = Unmanaged.passRetained(start).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<ThreadStart>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, arg)
        precondition(rc == 0, "pthread_create failed")
        pthread_detach(thread)
    }
}

/// Runs `body` on a new thread and waits for it there, blocking the caller
/// (a loop thread, say, that must stay inside its callback meanwhile).
func onThreadJoined(_ body: @escaping @Sendable () -> Void) {
    var thread = pthread_t()
    let arg = Unmanaged.passRetained(ThreadStart(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { arg in
        Unmanaged<ThreadStart>.fromOpaque(arg!).takeRetainedValue().run()
        return nil
    }, arg)
    precondition(rc == 0, "pthread_create failed")
    pthread_join(thread, nil)
}

/// Safety of `@unchecked Sendable`: handed from the creating thread to the
/// new one, and used there only.
private final class ThreadStart: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// `EventLoop.run(main)` on a thread of its own (virtual clock by default).
@discardableResult
func runLoop<T: Sendable>(virtualClock: Bool = true,
                          _ main: @escaping @Sendable () async throws -> T) async throws -> T {
    try await onThread { try EventLoop.run(virtualClock: virtualClock, main) }
}

/// Takes `n` references to `object`, then drops them, on the loop's thread:
/// the loop's own work on a (non-atomic) reference count, which an await on
/// another thread races with if it touches the same count there.
func churnReferences(to object: UnsafeMutableRawPointer, _ n: Int) {
    var taken: [UnsafeMutableRawPointer] = []
    taken.reserveCapacity(n)
    for _ in 0..<n { taken.append(ca_incref(object)) }
    for o in taken { ca_decref(o) }
}

/// Runs `attempt` `times` times in a Swift task on another thread while
/// this body's loop runs `churn` between its iterations, and returns the sum
/// of what the attempts returned (each counts its successes). The other
/// thread's awaits and the loop's churn touch the same objects, whose
/// reference counts are not atomic: the awaits must leave them to the loop.
nonisolated(nonsending) func sumAwaitedFromAnotherThread(
    _ times: Int, _ attempt: @escaping @Sendable () async -> Int, whileTheLoop churn: () throws -> Void
) async throws -> Int {
    let loop = EventLoop.current!
    let done = loop.createFuture(of: Int.self)
    Task.detached {
        var sum = 0
        for _ in 0..<times { sum += await attempt() }
        let total = sum
        try? loop.callSoonThreadsafe { try? done.setResult(total) }
    }
    while !done.isDone {
        try churn()
        try await sleep(0)
    }
    return try await done.value
}

/// The calling thread.
func threadID() -> UInt { UInt(bitPattern: Int(pthread_self())) }

/// A value several closures of one test share, behind a mutex.
final class Shared<T: Sendable>: Sendable {
    private let m: Mutex<T>
    init(_ value: T) { m = Mutex(value) }
    var value: T {
        get { m.withLock { $0 } }
        set { m.withLock { $0 = newValue } }
    }
    func update<R>(_ f: (inout T) -> R) -> R { m.withLock { f(&$0) } }
}

/// A log of events the closures of a test append to, in order.
typealias Log = Shared<[String]>

extension Shared where T == [String] {
    convenience init() { self.init([]) }
    func append(_ s: String) { update { $0.append(s) } }
}

/// An error type of the tests (a class: identity shows it is the same error).
final class Boom: Error, CustomStringConvertible {
    let tag: Int
    init(_ tag: Int) { self.tag = tag }
    var description: String { "Boom(\(tag))" }
}

/// An error struct of the tests.
struct Oops: Error, Equatable {
    var code: Int
}

/// The Python name of the C error type of an error object.
func cTypeName(_ e: UnsafeMutablePointer<ca_error>) -> String { String(cString: e.pointee.type.pointee.name) }

/// The contents of a text file.
func readFile(_ path: String) throws -> String {
    guard let f = fopen(path, "r") else { throw TestFailure("cannot open \(path)") }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n <= 0 { break }
        bytes += buffer[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A task executor that runs nothing until told to. A test that starts a
/// Swift task on it decides when, and on which thread, each piece of the
/// task runs: while a loop is idle, say, or while the loop runs, with its
/// thread inside one of its callbacks.
final class HeldExecutor: TaskExecutor {
    private let held = Mutex<[UnownedJob]>([])

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        held.withLock { $0.append(job) }
    }

    /// A piece of a task waits to be run.
    var holdsJobs: Bool { held.withLock { !$0.isEmpty } }

    /// Runs the held pieces, and those they hand back meanwhile, on a new
    /// thread while this one waits, and returns how many core blocks that
    /// thread freed (`ca_alloc_stats`; what it freed to its freelists
    /// included, which it empties before counting). A thread that drops no
    /// last reference to a core object frees none.
    func runOnAnotherThread() -> Int {
        let freed = Shared(0)
        onThreadJoined { [self] in
            let before = ca_alloc_stats_get().frees
            while let job = held.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
            ca_freelists_clear()
            freed.value = Int(ca_alloc_stats_get().frees - before)
        }
        return freed.value
    }
}
