// Asynchronous file operations (files.h): open/read/write/fsync/close as
// futures — SQEs on io_uring, jobs on the default executor with epoll.
// The same specification holds on both.

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

@Suite("Files")
struct FileTests {

    func tempPath(_ tag: String) -> String {
        "/tmp/casyncio-file-\(getpid())-\(tag)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Runs `f` to completion and returns its outcome, releasing it.
    func await_(_ l: IOLoop, _ e: ErrorPtr?, _ f: FuturePtr?, sourceLocation: SourceLocation = #_sourceLocation) -> Outcome {
        expectOK(e, sourceLocation: sourceLocation)
        guard let f else { return .error("none", nil) }
        defer { decref(f) }
        l.run(f)
        return outcome(f)
    }

    func open(_ l: IOLoop, _ path: String, _ flags: Int32, _ mode: mode_t = 0o600) -> Outcome {
        var f: FuturePtr?
        let e = ca_loop_file_open(l.loop, path, flags, mode, &f)
        return await_(l, e, f)
    }

    @Test("write then read round trip: every byte comes back, at offsets and at the current position",
          arguments: IOBackend.allCases)
    func roundTrip(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            #expect(ca_loop_files_use_ring(l.loop) == (backend == .uring))
            let path = tempPath("rt")
            defer { unlink(path) }
            guard case .int(let fd64) = open(l, path, O_RDWR | O_CREAT | O_TRUNC) else {
                Issue.record("open failed")
                return
            }
            let fd = Int32(fd64)
            let size = 300_000
            let data = ca_bytes_new(size)!
            defer { decref(data) }
            ts_io_pattern(data.pointee.data, size, 21, 0)
            data.pointee.len = size
            var f: FuturePtr?
            #expect(await_(l, ca_loop_file_write(l.loop, fd, data, 0, &f), f) == .int(Int64(size)))
            let tail = ca_bytes_from("tail", 4)!
            defer { decref(tail) }
            #expect(await_(l, ca_loop_file_write(l.loop, fd, tail, Int64(size), &f), f) == .int(4))

            expectOK(ca_loop_file_read(l.loop, fd, size, 0, &f))
            #expect(l.run(f!) == nil)
            let back = bytesResult(f!)!
            decref(f)
            #expect(back.count == size)
            #expect(ts_io_pattern_mismatch(back, back.count, 21, 0) == -1)

            expectOK(ca_loop_file_read(l.loop, fd, 100, Int64(size), &f))
            #expect(l.run(f!) == nil)
            #expect(bytesResult(f!) == bytes("tail"))
            decref(f)

            // offset -1: the file position, which reads move
            #expect(lseek(fd, 0, SEEK_SET) == 0)
            for _ in 0..<2 {
                expectOK(ca_loop_file_read(l.loop, fd, 10, -1, &f))
                #expect(l.run(f!) == nil)
                #expect(bytesResult(f!)?.count == 10)
                decref(f)
            }
            #expect(lseek(fd, 0, SEEK_CUR) == 20)
            #expect(await_(l, ca_loop_file_close(l.loop, fd, &f), f) == .none)
            #expect(ca_loop_io_pending(l.loop) == 0)
        }
    }

    @Test("a read at end of file gives b''", arguments: IOBackend.allCases)
    func readAtEOF(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let path = tempPath("eof")
            defer { unlink(path) }
            guard case .int(let fd64) = open(l, path, O_RDWR | O_CREAT | O_TRUNC) else {
                Issue.record("open failed")
                return
            }
            var f: FuturePtr?
            expectOK(ca_loop_file_read(l.loop, Int32(fd64), 64, 0, &f))
            #expect(l.run(f!) == nil)
            #expect(bytesResult(f!) == [])
            decref(f)
            #expect(await_(l, ca_loop_file_close(l.loop, Int32(fd64), &f), f) == .none)
        }
    }

    @Test("opening a missing file fails with FileNotFoundError carrying ENOENT and the operation",
          arguments: IOBackend.allCases)
    func missingFile(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let path = tempPath("missing")
            var f: FuturePtr?
            expectOK(ca_loop_file_open(l.loop, path, O_RDONLY, 0, &f))
            defer { decref(f) }
            l.run(f!)
            var v = ca_none()
            let err = take(ca_future_result(f!, &v))
            #expect(err?.type == "FileNotFoundError")
            #expect(err?.errNo == ENOENT)
            #expect(err?.message == "[Errno 2] No such file or directory: open('\(path)')")
        }
    }

    @Test("operations on a bad fd fail with EBADF naming the operation", arguments: IOBackend.allCases)
    func badFd(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            // an fd number no thread can have open: descriptors are below
            // RLIMIT_NOFILE's soft limit (a closed low number could be
            // reused at once by a test running beside this one)
            var limit = rlimit()
            #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
            let bad = Int32(clamping: limit.rlim_cur)
            var f: FuturePtr?
            #expect(await_(l, ca_loop_file_read(l.loop, bad, 10, 0, &f), f) ==
                    .error("OSError", "[Errno 9] Bad file descriptor: read"))
            #expect(await_(l, ca_loop_file_fsync(l.loop, bad, false, &f), f) ==
                    .error("OSError", "[Errno 9] Bad file descriptor: fsync"))
            let e = take(ca_loop_file_read(l.loop, -1, 10, 0, &f))
            #expect(e?.type == "ValueError")
        }
    }

    @Test("fsync and fdatasync succeed on a written file", arguments: IOBackend.allCases)
    func fsyncWorks(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let path = tempPath("sync")
            defer { unlink(path) }
            guard case .int(let fd64) = open(l, path, O_WRONLY | O_CREAT | O_TRUNC) else {
                Issue.record("open failed")
                return
            }
            let fd = Int32(fd64)
            let data = ca_bytes_from("durable", 7)!
            defer { decref(data) }
            var f: FuturePtr?
            #expect(await_(l, ca_loop_file_write(l.loop, fd, data, -1, &f), f) == .int(7))
            #expect(await_(l, ca_loop_file_fsync(l.loop, fd, false, &f), f) == .none)
            #expect(await_(l, ca_loop_file_fsync(l.loop, fd, true, &f), f) == .none)
            #expect(await_(l, ca_loop_file_close(l.loop, fd, &f), f) == .none)
            var st = stat()
            #expect(stat(path, &st) == 0)
            #expect(st.st_size == 7)
        }
    }

    @Test("a cancelled open leaves no fd behind", arguments: IOBackend.allCases)
    func cancelledOpen(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let path = tempPath("cancel")
            defer { unlink(path) }
            var f: FuturePtr?
            expectOK(ca_loop_file_open(l.loop, path, O_RDWR | O_CREAT, 0o600, &f))
            #expect(ca_future_cancel(f!, nil))
            decref(f)
            #expect(l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 })
            #expect(ts_fds_open_on(path) == 0)
        }
    }

    // MARK: - Closing under operations in flight

    @Test("a close requested while a write still retries waits for it: the bytes land in the file closed, never in a file reusing its number",
          arguments: IOBackend.allCases)
    func closeWaitsForRetryingWrite(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let first = tempPath("first"), second = tempPath("second")
            defer {
                unlink(first)
                unlink(second)
            }
            guard case .int(let fd64) = open(l, first, O_RDWR | O_CREAT | O_TRUNC) else {
                Issue.record("open failed")
                return
            }
            // io_uring: the write's first attempt comes back EAGAIN and is
            // resubmitted after the close and the open below went out
            // (the executor path has no submissions to fault)
            let s = faultScript(l, [rule(CA_IO_WRITE, count: 1, error: EAGAIN)])
            let data = ca_bytes_from("payload", 7)!
            defer { decref(data) }
            var fw: FuturePtr?, fc: FuturePtr?, fo: FuturePtr?
            expectOK(ca_loop_file_write(l.loop, Int32(fd64), data, 0, &fw))
            expectOK(ca_loop_file_close(l.loop, Int32(fd64), &fc))
            expectOK(ca_loop_file_open(l.loop, second, O_RDWR | O_CREAT | O_TRUNC, 0o600, &fo))
            defer {
                decref(fw)
                decref(fc)
                decref(fo)
            }
            for f in [fw, fc, fo] { #expect(l.run(f!) == nil) }
            #expect(outcome(fw!) == .int(7))
            #expect(outcome(fc!) == .none)
            if case .int(let fd2) = outcome(fo!) { Glibc.close(Int32(fd2)) }
            if backend == .uring { #expect(fired(s, 0) == 1) }
            var st = stat()
            #expect(stat(first, &st) == 0 && st.st_size == 7, "the bytes are in the file written to")
            #expect(stat(second, &st) == 0 && st.st_size == 0, "the file opened after the close got none")
        }
    }

    /// Makes a FIFO, opens it through the loop, starts a read on it that
    /// blocks (nothing written yet) and cancels that read while it is still
    /// blocked: in the kernel, or in read(2) on a worker thread, which is
    /// waited for (a loaded machine may start it late). Then runs `body` with
    /// the FIFO's path, the loop's fd and a writer fd, which it closes
    /// afterwards with the FIFO; records an issue when the open failed.
    func withCancelledBlockedRead(_ l: IOLoop, _ body: (_ fifo: String, _ fd: Int32, _ writer: Int32) -> Void) {
        let fifo = tempPath("fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        guard let (fd, writer) = cancelledBlockedRead(l, fifo) else { return }
        defer { Glibc.close(writer) }
        body(fifo, fd, writer)
    }

    private func cancelledBlockedRead(_ l: IOLoop, _ fifo: String) -> (fd: Int32, writer: Int32)? {
        guard case .int(let fd64) = open(l, fifo, O_RDWR) else {
            Issue.record("open failed")
            return nil
        }
        let fd = Int32(fd64)
        let writer = Glibc.open(fifo, O_RDWR | O_CLOEXEC)
        #expect(writer >= 0)
        var fr: FuturePtr?
        expectOK(ca_loop_file_read(l.loop, fd, 16, -1, &fr))
        l.runFor(0.02)
        if !ca_loop_files_use_ring(l.loop) {
            _ = l.runUntil(timeout: 10) { ts_thread_in_read(fd) != 0 }
        }
        #expect(ca_future_cancel(fr!, nil))
        decref(fr)
        return (fd, writer)
    }

    @Test("a close after a cancelled read that is still blocked keeps the fd open until the read has finished",
          arguments: IOBackend.allCases)
    func closeWaitsForCancelledRead(backend: IOBackend) throws {
        try withIOLoop(backend) { l in withCancelledBlockedRead(l) { fifo, fd, writer in
            var fc: FuturePtr?
            expectOK(ca_loop_file_close(l.loop, fd, &fc))
            defer { decref(fc) }
            l.runFor(0.02)
            if !ca_loop_files_use_ring(l.loop) {
                // a worker thread cannot be interrupted: its read(2) still uses the fd
                #expect(!ca_future_done(fc!), "the close waits for the read")
                #expect(ts_fds_open_on(fifo) == 2, "the reader's fd is still open (and the writer's)")
            }
            #expect(write(writer, "abc", 3) == 3)
            #expect(l.run(fc!) == nil)
            #expect(outcome(fc!) == .none)
            #expect(ts_fds_open_on(fifo) == 1, "only the writer's fd is left")
        } }
    }

    @Test("a close without a future (a dropped file) after a cancelled read that is still blocked closes the fd once the read has finished",
          arguments: IOBackend.allCases)
    func closeLaterWaitsForCancelledRead(backend: IOBackend) throws {
        try withIOLoop(backend) { l in withCancelledBlockedRead(l) { fifo, fd, writer in
            ca_loop_file_close_later(l.loop, fd)
            l.runFor(0.02)
            if !ca_loop_files_use_ring(l.loop) {
                // a worker thread cannot be interrupted: its read(2) still uses the fd
                #expect(ts_fds_open_on(fifo) == 2, "the reader's fd is still open (and the writer's)")
            }
            #expect(write(writer, "abc", 3) == 3)
            #expect(l.runUntil(timeout: 10) { ts_fds_open_on(fifo) == 1 }, "only the writer's fd is left")
        } }
    }
}
