// Helpers of the tests of the Swift I/O faces (streams, datagrams, files,
// the executor, getaddrinfo, signals): a real-clock loop on a chosen
// backend, run on a thread of its own with a deadline, waits with a
// deadline, and an echo server on the Swift API. Every I/O test runs once
// per backend; the io_uring run on a machine that refuses io_uring is
// cancelled (skipped) with the reason printed.

@testable import Asyncio
import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

/// The two backends the I/O tests run on.
enum IOBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case uring
    case epoll

    var loopBackend: EventLoop.Backend { self == .uring ? .ioUring : .epoll }
    var testDescription: String { self == .uring ? "io_uring" : "epoll" }

    /// Skips the running test when this backend cannot run here.
    func requireAvailable() throws {
        guard self == .uring else { return }
        var why = [CChar](repeating: 0, count: 256)
        if !ts_io_uring_available(&why, why.count) {
            let why = String(decoding: why.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let reason = "io_uring is not available here (\(why))"
            print("SKIPPED: \(reason)")
            try Test.cancel(Comment(rawValue: reason))
        }
    }
}

/// A new real-clock loop on `backend` (the caller closes it).
func makeIOLoop(_ backend: IOBackend) throws -> EventLoop {
    try backend.requireAvailable()
    _ = ts_io_raise_nofile(4096)
    let loop = try EventLoop(backend: backend.loopBackend)
    #expect(loop.backendName == (backend == .uring ? "io_uring" : "epoll"))
    return loop
}

/// `asyncio.run(main())` on `backend`, on a thread of its own. A hang
/// guard, not a timing assert: a run still going after `timeout` seconds is
/// stopped and throws a ``TestFailure`` saying so, so a regression fails
/// the test instead of hanging the suite.
@discardableResult
func runIO<T: Sendable>(_ backend: IOBackend, timeout: Double = 60,
                        _ main: @escaping TaskBody<T>) async throws -> T {
    try backend.requireAvailable()
    return try await onThread {
        let loop = try makeIOLoop(backend)
        defer {
            loop.cancelAllTasks()
            try? loop.close()
        }
        let task = try loop.createTask(main)
        let timedOut = Shared(false)
        try loop.callLater(timeout) {
            timedOut.value = true
            loop.stop()
        }
        do {
            return try loop.runUntilComplete(task)
        } catch where timedOut.value && !task.isDone {
            throw TestFailure("the test's loop was still running after \(timeout) s (a hang?); stopped it")
        }
    }
}

/// Waits in a task body until `condition` holds, checking every
/// millisecond. A hang guard, not a timing assert: after `timeout` seconds
/// of loop time it throws a ``TestFailure`` naming `what`.
nonisolated(nonsending) func waitUntil(_ what: String, timeout: Double = 10,
                                       _ condition: () -> Bool) async throws {
    let loop = EventLoop.current!
    let deadline = loop.time + timeout
    while !condition() {
        if loop.time >= deadline { throw TestFailure("\(what) did not happen within \(timeout) s") }
        try await sleep(0.001)
    }
}

/// A loop stepped by the test itself, one iteration at a time.
extension EventLoop {
    /// Runs exactly one iteration.
    nonisolated func runOnce() throws {
        try callSoon { [self] in stop() }
        try runForever()
    }
}

/// Starts an echo server on 127.0.0.1 whose connections each run
/// ``echo(_:)`` in a task of their own.
func startEchoServer(_ loop: EventLoop) async throws -> TCPServer {
    let server = try await loop.startServer(host: "127.0.0.1", port: 0)
    try loop.createTask {
        for try await conn in server {
            try loop.createTask { try await echo(conn) }
        }
    }
    return server
}

/// Sends back what `conn` receives until EOF, then closes it.
func echo(_ conn: TCPConnection) async throws {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 1)
    defer { buffer.deallocate() }
    while true {
        let n = try await conn.read(into: buffer)
        if n == 0 { break }
        try conn.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        try await conn.drain()
    }
    conn.close()
}

/// `count` bytes of a pattern that changes with `seed`, so misplaced or
/// repeated bytes show.
func pattern(_ count: Int, seed: Int = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31) &+ ($0 >> 8) &+ seed) }
}

/// Sets an int socket option; the test fails if the kernel refuses it.
func setSocketOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    var v = value
    let rc = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    #expect(rc == 0, "setsockopt(\(level), \(name)) failed: errno \(errno)", sourceLocation: sourceLocation)
}

/// A Unix socket path no other test uses.
func uniqueSocketPath(_ tag: String) -> String {
    "/tmp/asyncio-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
}

/// Awaits `operation` in a Swift task that is none of `loop`'s tasks,
/// begun while the loop is idle and resumed while it runs, as
/// ``HeldExecutor`` lets a test arrange: the operation begins on another
/// thread while the loop is idle, and waits; then a task of the loop runs
/// `meanwhile` (which sends what the operation waits for), and each later
/// piece of the awaiting task runs on another thread while the loop runs,
/// its thread held inside that task's step.
///
/// Returns the operation's outcome, `meanwhile`'s, and how many core
/// blocks the later pieces freed: none when the operation leaves the
/// loop's objects to the loop's thread once it waited, while a wait that
/// cleans up after itself on the awaiting thread drops the last reference
/// to its waiter there.
func awaitedFromAnotherThread<T: Sendable, M: Sendable>(
    on loop: EventLoop, _ operation: @escaping @Sendable () async throws -> T,
    meanwhile: @escaping TaskBody<M>
) throws -> (outcome: Result<T, any Error>, meanwhile: M, freed: Int) {
    let held = HeldExecutor()
    let outcome = Shared<Result<T, any Error>?>(nil)
    Task(executorPreference: held) {
        do {
            outcome.value = .success(try await operation())
        } catch {
            outcome.value = .failure(error)
        }
    }
    _ = held.runOnAnotherThread()
    if outcome.value != nil || held.holdsJobs {
        throw TestFailure("the operation did not wait for the loop: nothing was awaited from another thread")
    }
    let (made, freed) = try loop.runUntilComplete { () async throws -> (M, Int) in
        let made = try await meanwhile()
        var freed = 0
        while outcome.value == nil {
            try await waitUntil("the awaiting task was resumed") { held.holdsJobs }
            freed += held.runOnAnotherThread()
        }
        return (made, freed)
    }
    return (outcome.value!, made, freed)
}

/// Runs `body` with a fresh `backend` loop (not running) and the two ends
/// of a loopback TCP connection on it: `conn` opened by the client, `peer`
/// the server's accepted end. Everything is closed afterwards.
func withConnectedPair<T>(_ backend: IOBackend,
                          _ body: (EventLoop, TCPConnection, TCPConnection) throws -> T) throws -> T {
    let loop = try makeIOLoop(backend)
    defer {
        loop.cancelAllTasks()
        try? loop.close()
    }
    let (server, conn, peer) = try loop.runUntilComplete {
        () async throws -> (TCPServer, TCPConnection, TCPConnection) in
        let server = try await loop.startServer(host: "127.0.0.1", port: 0)
        let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
        return (server, conn, try await server.accept()!)
    }
    defer {
        conn.close()
        peer.close()
        server.close()
    }
    return try body(loop, conn, peer)
}
