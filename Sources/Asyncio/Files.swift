// Asynchronous files (asyncio has none): open/read/write/fsync/close as
// io_uring operations, or jobs on the loop's executor with epoll.

import CAsyncio
import CAsyncioShim
import Glibc

/// A file whose operations suspend the calling task instead of blocking
/// the loop: one io_uring operation each, or a job on the loop's default
/// executor where the ring has none (the epoll backend).
///
/// Use it from code running on a loop (a task body); every operation runs
/// on the running loop.
///
/// ```swift
/// let file = try await AsyncFile.open("/tmp/data", flags: O_RDWR | O_CREAT)
/// _ = try await file.write(Array("hello".utf8), at: 0)
/// let back = try await file.read(upTo: 5, at: 0)
/// try await file.close()
/// ```
///
/// Errors are ``OSError`` values with the errno, their message naming the
/// operation: `[Errno 2] No such file or directory: open('/tmp/missing')`.
///
/// Safety of `@unchecked Sendable`: `fd` is immutable and `closed` is only
/// touched on the loop thread (every method checks it runs there).
public final class AsyncFile: @unchecked Sendable {
    /// The file descriptor (owned until ``close()``).
    public let fd: Int32
    private var closed = false

    private init(fd: Int32) { self.fd = fd }

    /// A file never closed is closed here, synchronously.
    deinit {
        if !closed { Glibc.close(fd) }
    }

    /// Opens `path` (`open(2)`'s flags and mode; `O_CLOEXEC` is added).
    nonisolated(nonsending) public static func open(_ path: String, flags: Int32 = O_RDONLY,
                                                    mode: mode_t = 0o644) async throws -> AsyncFile {
        let loop = try runningCLoop()
        var f: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_open(loop, path, flags, mode, &f))
        let fd = try await awaitCFuture(f!) { Int32($0.pointee.u.i) }
        return AsyncFile(fd: fd)
    }

    /// Reads up to `count` bytes at `offset` (nil: at the file position,
    /// which moves); an empty array at end of file.
    nonisolated(nonsending) public func read(upTo count: Int, at offset: Int64? = nil) async throws -> [UInt8] {
        let loop = try runningCLoop()
        var f: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_read(loop, fd, count, offset ?? -1, &f))
        return try await awaitCFuture(f!) { v in
            guard let obj = v.pointee.u.obj else { return [] }
            let b = UnsafeRawPointer(obj).assumingMemoryBound(to: ca_bytes.self)
            return Array(UnsafeBufferPointer(start: b.pointee.data, count: b.pointee.len))
        }
    }

    /// Writes all of `bytes` at `offset` (nil: at the file position);
    /// returns the count written.
    @discardableResult
    nonisolated(nonsending) public func write(_ bytes: [UInt8], at offset: Int64? = nil) async throws -> Int {
        let loop = try runningCLoop()
        guard let data = bytes.withUnsafeBytes({ ca_bytes_from($0.baseAddress, $0.count) }) else {
            throw AsyncioError(typeName: "MemoryError")
        }
        defer { ca_decref(UnsafeMutableRawPointer(data)) }
        var f: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_write(loop, fd, data, offset ?? -1, &f))
        return try await awaitCFuture(f!) { Int($0.pointee.u.i) }
    }

    /// `fsync(2)`, or `fdatasync(2)` when `dataOnly`.
    nonisolated(nonsending) public func fsync(dataOnly: Bool = false) async throws {
        let loop = try runningCLoop()
        var f: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_fsync(loop, fd, dataOnly, &f))
        try await awaitCFuture(f!) { _ in () }
    }

    /// Closes the file; a second call does nothing.
    nonisolated(nonsending) public func close() async throws {
        let loop = try runningCLoop()
        if closed { return }
        closed = true
        var f: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_close(loop, fd, &f))
        try await awaitCFuture(f!) { _ in () }
    }
}
