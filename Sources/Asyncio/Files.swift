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
/// Closing waits for operations still in flight on the file: a cancelled
/// read or write returns at once, but the kernel or a worker thread may
/// still be in it, and the descriptor number must not be reused under it.
///
/// Safety of `@unchecked Sendable`: `fd` and `loop` are immutable; `closed`
/// is only touched on the loop's thread (every method checks it runs there,
/// and `deinit` hands the close to that thread).
public final class AsyncFile: @unchecked Sendable {
    /// The file descriptor (owned until ``close()``).
    public let fd: Int32
    private let loop: OpaquePointer
    private var closed = false

    private init(fd: Int32, loop: OpaquePointer) {
        self.fd = fd
        self.loop = loop
    }

    /// A file never closed is closed here: on the loop's thread once the
    /// operations still in flight on it have finished (at once when none).
    deinit {
        if closed { return }
        runOnLoopThread(loop, closeFileLater, Unmanaged.passRetained(FileCloseLater(loop: loop, fd: fd)).toOpaque())
    }

    /// The running loop, which must be the file's; a closed file refuses
    /// further operations with `EBADF` (its number may mean another file).
    private func usableLoop(_ what: String) throws -> OpaquePointer {
        let loop = try ownLoop()
        if closed { throw OSError(errno: EBADF, message: "[Errno 9] Bad file descriptor: \(what) on a closed AsyncFile") }
        return loop
    }

    /// The running loop when it is the file's (running on this thread, so
    /// the file is used where it is confined); `RuntimeError` otherwise, as
    /// asyncio refuses a future attached to a different loop.
    private func ownLoop() throws -> OpaquePointer {
        let loop = try runningCLoop()
        guard loop == self.loop else {
            throw AsyncioError(typeName: "RuntimeError",
                               message: "AsyncFile used from another event loop than the one that opened it")
        }
        return loop
    }

    /// Opens `path` (`open(2)`'s flags and mode; `O_CLOEXEC` is added).
    nonisolated(nonsending) public static func open(_ path: String, flags: Int32 = O_RDONLY,
                                                    mode: mode_t = 0o644) async throws -> AsyncFile {
        let loop = try runningCLoop()
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_open(loop, path, flags, mode, &out))
        let f = out!
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: loop) }
        let fd = try await Await.done(f) { _, v in Int32(v.u.i) }
        return AsyncFile(fd: fd, loop: loop)
    }

    /// Reads up to `count` bytes at `offset` (nil: at the file position,
    /// which moves); an empty array at end of file.
    ///
    /// - Throws: ``AsyncioError`` (`ValueError`) unless `count` is positive,
    ///   (`RuntimeError`) on another loop than the file's; ``OSError``.
    nonisolated(nonsending) public func read(upTo count: Int, at offset: Int64? = nil) async throws -> [UInt8] {
        guard count > 0 else { throw AsyncioError(typeName: "ValueError", message: "nbytes must be positive") }
        let loop = try usableLoop("read")
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_read(loop, fd, count, offset ?? -1, &out))
        let f = out!
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: loop) }
        return try await Await.done(f) { _, v in
            guard let obj = v.u.obj else { return [] }
            let b = UnsafeRawPointer(obj).assumingMemoryBound(to: ca_bytes.self)
            return Array(UnsafeBufferPointer(start: b.pointee.data, count: b.pointee.len))
        }
    }

    /// Writes all of `bytes` at `offset` (nil: at the file position);
    /// returns the count written.
    @discardableResult
    nonisolated(nonsending) public func write(_ bytes: [UInt8], at offset: Int64? = nil) async throws -> Int {
        let loop = try usableLoop("write")
        guard let data = bytes.withUnsafeBytes({ ca_bytes_from($0.baseAddress, $0.count) }) else {
            throw AsyncioError(typeName: "MemoryError")
        }
        defer { ca_decref(UnsafeMutableRawPointer(data)) }
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_write(loop, fd, data, offset ?? -1, &out))
        let f = out!
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: loop) }
        return try await Await.done(f) { _, v in Int(v.u.i) }
    }

    /// `fsync(2)`, or `fdatasync(2)` when `dataOnly`.
    nonisolated(nonsending) public func fsync(dataOnly: Bool = false) async throws {
        let loop = try usableLoop("fsync")
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_fsync(loop, fd, dataOnly, &out))
        let f = out!
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: loop) }
        try await Await.done(f)
    }

    /// Closes the file, after the operations still in flight on it (a
    /// cancelled one included) have finished; a second call does nothing.
    nonisolated(nonsending) public func close() async throws {
        let loop = try ownLoop()
        if closed { return }
        closed = true
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_loop_file_close(loop, fd, &out))
        let f = out!
        defer { releaseOnLoop(UnsafeMutableRawPointer(f), loop: loop) }
        try await Await.done(f)
    }
}

/// A dropped file's descriptor on its way to its loop's thread.
private final class FileCloseLater {
    let loop: OpaquePointer
    let fd: Int32
    init(loop: OpaquePointer, fd: Int32) {
        self.loop = loop
        self.fd = fd
    }
}

/// Closes a dropped file once its operations in flight are done, at once on
/// a closed loop (loop thread, or the loop is not running).
private func closeFileLater(_ arg: UnsafeMutableRawPointer?) {
    let request = Unmanaged<FileCloseLater>.fromOpaque(arg!).takeRetainedValue()
    ca_loop_file_close_later(request.loop, request.fd)
}
