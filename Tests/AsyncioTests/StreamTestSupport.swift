// Helpers of the TCP / Unix stream tests: a real-clock loop on a chosen
// backend, run on a thread of its own with a deadline, and an echo server
// on the Swift API. Every stream test runs once per backend; the io_uring
// run on a machine that refuses io_uring is cancelled (skipped) with the
// reason printed.

@testable import Asyncio
import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

/// The two backends the stream tests run on.
enum StreamBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
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
func makeStreamLoop(_ backend: StreamBackend) throws -> EventLoop {
    try backend.requireAvailable()
    _ = ts_io_raise_nofile(4096)
    let loop = try EventLoop(backend: backend.loopBackend)
    #expect(loop.backendName == (backend == .uring ? "io_uring" : "epoll"))
    return loop
}

/// `asyncio.run(main())` on `backend`, on a thread of its own, failing
/// (not hanging) after `timeout` seconds.
@discardableResult
func runStreams<T: Sendable>(_ backend: StreamBackend, timeout: Double = 60,
                             _ main: @escaping TaskBody<T>) async throws -> T {
    try backend.requireAvailable()
    return try await onThread {
        let loop = try makeStreamLoop(backend)
        defer {
            loop.cancelAllTasks()
            try? loop.close()
        }
        let task = try loop.createTask(main)
        try loop.callLater(timeout) { loop.stop() }
        return try loop.runUntilComplete(task)
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
