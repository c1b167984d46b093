// The loop's low-level socket API (selector_events sock_* and
// add_reader/add_writer), errno → OSError subclasses, and cancellation of a
// pending operation racing with its completion: on both backends.

import CAsyncio
import CAsyncioTestSupport
import Dispatch
import Glibc
import Synchronization
import Testing

@Suite("I/O: sockets")
struct IOSocketTests {

    // MARK: - errno → OSError subclasses

    @Test("errno picks Python's OSError subclass, and the message names the operation")
    func errnoMapping() {
        let cases: [(Int32, String)] = [
            (ECONNRESET, "ConnectionResetError"), (EPIPE, "BrokenPipeError"), (ESHUTDOWN, "BrokenPipeError"),
            (ECONNREFUSED, "ConnectionRefusedError"), (ECONNABORTED, "ConnectionAbortedError"),
            (ETIMEDOUT, "TimeoutError"), (EAGAIN, "BlockingIOError"), (EINPROGRESS, "BlockingIOError"),
            (EINTR, "InterruptedError"), (ENOENT, "FileNotFoundError"), (EEXIST, "FileExistsError"),
            (EACCES, "PermissionError"), (EPERM, "PermissionError"), (ECHILD, "ChildProcessError"),
            (ESRCH, "ProcessLookupError"), (EISDIR, "IsADirectoryError"), (ENOTDIR, "NotADirectoryError"),
            (ENOBUFS, "OSError"), (EADDRINUSE, "OSError"),
        ]
        for (e, name) in cases {
            #expect(String(cString: ca_error_type_for_errno(e).pointee.name) == name, "errno \(e)")
        }
        let err = take(ca_error_from_io(ECONNRESET, "recv"))
        #expect(err?.type == "ConnectionResetError")
        #expect(err?.errNo == ECONNRESET)
        #expect(err?.message == "[Errno 104] Connection reset by peer: recv")
        let e = ca_error_from_io(EPIPE, "send")!
        #expect(ca_error_matches(e, errorType("ConnectionError")))
        #expect(ca_error_matches(e, errorType("OSError")))
        decref(e)
    }

    // MARK: - sock_sendall / sock_recv / sock_recv_into

    @Test("sock_sendall, sock_recv and sock_recv_into move bytes; sock_recv gives b'' at EOF",
          arguments: IOBackend.allCases)
    func sendRecv(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var sv: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&sv) == 0)
            defer { close(sv[1]) }

            var f: FuturePtr?
            expectOK(ca_loop_sock_sendall_copy(l.loop, sv[0], "hello", 5, &f))
            #expect(l.run(f!) == nil)
            #expect(outcome(f!) == .none)
            decref(f)
            var got = [UInt8](repeating: 0, count: 5)
            #expect(ts_io_read_exactly(sv[1], &got, 5) == 5)
            #expect(got == bytes("hello"))

            #expect(ts_io_write_all(sv[1], "world!", 6) == 6)
            expectOK(ca_loop_sock_recv(l.loop, sv[0], 100, &f))
            #expect(l.run(f!) == nil)
            #expect(bytesResult(f!) == bytes("world!"))
            decref(f)

            let buf = ca_bytes_new(3)!
            defer { decref(buf) }
            #expect(ts_io_write_all(sv[1], "abcdef", 6) == 6)
            for expected in ["abc", "def"] {
                expectOK(ca_loop_sock_recv_into(l.loop, sv[0], buf, &f))
                #expect(l.run(f!) == nil)
                #expect(outcome(f!) == .int(3))
                #expect(Array(UnsafeBufferPointer(start: buf.pointee.data, count: buf.pointee.len)) == bytes(expected))
                decref(f)
            }

            shutdown(sv[1], Int32(SHUT_WR))
            expectOK(ca_loop_sock_recv(l.loop, sv[0], 100, &f))
            #expect(l.run(f!) == nil)
            #expect(bytesResult(f!) == [])
            decref(f)
            expectOK(ca_loop_sock_close(l.loop, sv[0]))
            #expect(ca_loop_io_pending(l.loop) == 0)
        }
    }

    @Test("sock_sendall of 4 MiB to a slow peer resubmits after short sends; every byte arrives once",
          arguments: IOBackend.allCases)
    func sendallLarge(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var sv: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&sv) == 0)
            defer { close(sv[1]) }
            let size = 4 << 20
            let data = ca_bytes_new(size)!
            defer { decref(data) }
            ts_io_pattern(data.pointee.data, size, 11, 0)
            data.pointee.len = size
            var f: FuturePtr?
            expectOK(ca_loop_sock_sendall(l.loop, sv[0], data, &f))
            defer { decref(f) }
            var received = [UInt8](repeating: 0, count: size)
            var got = 0
            // the peer drains in slices while the loop runs: sendall needs many sends
            while got < size {
                l.runFor(0.001)
                let n = received.withUnsafeMutableBytes { recv(sv[1], $0.baseAddress! + got, size - got, Int32(MSG_DONTWAIT)) }
                if n > 0 { got += n }
            }
            #expect(l.run(f!) == nil)
            #expect(outcome(f!) == .none)
            #expect(ts_io_pattern_mismatch(received, size, 11, 0) == -1)
            expectOK(ca_loop_sock_close(l.loop, sv[0]))
        }
    }

    // MARK: - sock_accept / sock_connect

    @Test("sock_accept and sock_connect make a connection both ways usable", arguments: IOBackend.allCases)
    func acceptConnect(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var port: UInt16 = 0
            let lfd = ts_io_listen(&port)
            #expect(lfd >= 0)
            let cfd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
            var addr = sockaddr_storage()
            var alen: socklen_t = 0
            ts_io_loopback(port, &addr, &alen)
            var fa: FuturePtr?, fc: FuturePtr?
            expectOK(ca_loop_sock_accept(l.loop, lfd, &fa))
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    expectOK(ca_loop_sock_connect(l.loop, cfd, $0, alen, &fc))
                }
            }
            #expect(l.run(fa!) == nil)
            #expect(l.run(fc!) == nil)
            #expect(outcome(fc!) == .none)
            guard case .int(let afd) = outcome(fa!) else {
                Issue.record("accept gave \(outcome(fa!))")
                return
            }
            decref(fa)
            decref(fc)
            var f: FuturePtr?
            expectOK(ca_loop_sock_sendall_copy(l.loop, cfd, "ping", 4, &f))
            #expect(l.run(f!) == nil)
            decref(f)
            expectOK(ca_loop_sock_recv(l.loop, Int32(afd), 16, &f))
            #expect(l.run(f!) == nil)
            #expect(bytesResult(f!) == bytes("ping"))
            decref(f)
            expectOK(ca_loop_sock_close(l.loop, Int32(afd)))
            expectOK(ca_loop_sock_close(l.loop, cfd))
            expectOK(ca_loop_sock_close(l.loop, lfd))
        }
    }

    @Test("sock_connect to a closed port fails with ConnectionRefusedError naming the address",
          arguments: IOBackend.allCases)
    func connectRefused(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var port: UInt16 = 0
            let refusing = ts_io_refusing_port(&port)
            #expect(refusing >= 0)
            defer { close(refusing) }
            let cfd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
            var addr = sockaddr_storage()
            var alen: socklen_t = 0
            ts_io_loopback(port, &addr, &alen)
            var fc: FuturePtr?
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    expectOK(ca_loop_sock_connect(l.loop, cfd, $0, alen, &fc))
                }
            }
            let err = l.run(fc!)
            #expect(err?.type == "ConnectionRefusedError")
            #expect(err?.errNo == ECONNREFUSED)
            #expect(err?.message == "[Errno 111] Connection refused: Connect call failed ('127.0.0.1', \(port))")
            decref(fc)
            expectOK(ca_loop_sock_close(l.loop, cfd))
        }
    }

    @Test("the sock_* calls refuse a closed loop and nonsense arguments at once")
    func argumentErrors() throws {
        try withIOLoop(.epoll) { l in
            var f: FuturePtr?
            #expect(take(ca_loop_sock_recv(l.loop, -1, 10, &f))?.type == "ValueError")
            #expect(take(ca_loop_sock_recv(l.loop, 0, 0, &f))?.message == "nbytes must be positive")
            expectOK(ca_loop_close(l.loop))
            let err = take(ca_loop_sock_recv(l.loop, 0, 10, &f))
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "Event loop is closed")
            #expect(f == nil)
        }
    }

    // MARK: - Cancellation racing with completion

    @Test("a cancelled sock_recv whose data was already there loses nothing: the next sock_recv returns it",
          arguments: IOBackend.allCases)
    func cancelledRecvKeepsData(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var sv: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&sv) == 0)
            defer { close(sv[1]) }
            #expect(ts_io_write_all(sv[1], "raced", 5) == 5)
            // The receive and its ASYNC_CANCEL go to the kernel in one batch:
            // io_uring completes the receive inline, before the cancel.
            var f1: FuturePtr?
            expectOK(ca_loop_sock_recv(l.loop, sv[0], 100, &f1))
            #expect(ca_future_cancel(f1!, "stop"))
            #expect(ca_future_cancelled(f1!))
            l.runOnce()
            l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 }
            decref(f1)
            var f2: FuturePtr?
            expectOK(ca_loop_sock_recv(l.loop, sv[0], 100, &f2))
            #expect(l.run(f2!) == nil)
            #expect(bytesResult(f2!) == bytes("raced"))
            decref(f2)
            // io_uring performed the receive in the race and kept its bytes;
            // epoll never started it, so the bytes stayed in the socket
            #expect(l.stats.race_kept == (backend == .uring ? 1 : 0))
            expectOK(ca_loop_sock_close(l.loop, sv[0]))
        }
    }

    @Test("a sock_recv issued before a cancelled one's completion was seen still returns the bytes in order",
          arguments: IOBackend.allCases)
    func recvAfterCancelKeepsOrder(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var sv: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&sv) == 0)
            defer { close(sv[1]) }
            #expect(ts_io_write_all(sv[1], "first", 5) == 5)
            // f1, its cancel and f2 go to the kernel in one batch: io_uring
            // completes f1 inline with "first" and f2 waits for more
            var f1: FuturePtr?, f2: FuturePtr?
            expectOK(ca_loop_sock_recv(l.loop, sv[0], 100, &f1))
            #expect(ca_future_cancel(f1!, nil))
            expectOK(ca_loop_sock_recv(l.loop, sv[0], 100, &f2))
            l.runOnce()
            #expect(ts_io_write_all(sv[1], "second", 6) == 6)
            #expect(l.run(f2!) == nil)
            var total = bytesResult(f2!) ?? []
            decref(f1)
            decref(f2)
            while total.count < 11 {
                var f: FuturePtr?
                expectOK(ca_loop_sock_recv(l.loop, sv[0], 100, &f))
                #expect(l.run(f!, timeout: 5) == nil)
                let got = bytesResult(f!) ?? []
                decref(f)
                if got.isEmpty { break }
                total += got
            }
            #expect(total == bytes("firstsecond"), "the bytes the cancelled receive took come first")
            expectOK(ca_loop_sock_close(l.loop, sv[0]))
        }
    }

    @Test("a sock_sendall cancelled and its socket closed before the loop ran never sends on a socket reusing the fd number",
          arguments: IOBackend.allCases)
    func closedFdQueuedSendNotMisdirected(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var old: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&old) == 0)
            var f1: FuturePtr?
            expectOK(ca_loop_sock_sendall_copy(l.loop, old[0], "secret", 6, &f1))
            #expect(ca_future_cancel(f1!, nil))
            decref(f1)
            expectOK(ca_loop_sock_close(l.loop, old[0]))
            close(old[1])
            // the lowest free numbers: the ones just closed
            var new: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&new) == 0)
            defer {
                close(new[0])
                close(new[1])
            }
            l.runOnce()
            l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 }
            var buf = [UInt8](repeating: 0, count: 16)
            let n = recv(new[1], &buf, buf.count, Int32(MSG_DONTWAIT))
            #expect(n < 0 && errno == EAGAIN,
                    "fd \(new[0]) (was \(old[0])) carried \(n) bytes: \(Array(buf.prefix(max(n, 0))))")
        }
    }

    @Test("a task cancelled while its sock_recv waits, with data arriving meanwhile, loses no byte",
          arguments: IOBackend.allCases)
    func cancelledTaskRecvRace(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var sv: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&sv) == 0)
            defer { close(sv[1]) }
            var total: [UInt8] = []
            for round in 0..<50 {
                var f: FuturePtr?
                expectOK(ca_loop_sock_recv(l.loop, sv[0], 64, &f))
                l.runOnce() // the receive is now waiting in the kernel
                let msg = bytes("m\(round);")
                #expect(ts_io_write_all(sv[1], msg, msg.count) == msg.count)
                #expect(ca_future_cancel(f!, nil) || ca_future_done(f!))
                l.runOnce()
                if !ca_future_cancelled(f!) { total += bytesResult(f!) ?? [] }
                decref(f)
            }
            l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 }
            // whatever the cancelled receives took is handed out first
            let expected = (0..<50).flatMap { bytes("m\($0);") }
            while total.count < expected.count {
                var f: FuturePtr?
                expectOK(ca_loop_sock_recv(l.loop, sv[0], 4096, &f))
                #expect(l.run(f!, timeout: 5) == nil)
                let got = bytesResult(f!) ?? []
                decref(f)
                if got.isEmpty { break }
                total += got
            }
            #expect(total == expected)
            expectOK(ca_loop_sock_close(l.loop, sv[0]))
        }
    }

    @Test("a cancelled sock_accept keeps a connection accepted in the race for the next sock_accept",
          arguments: IOBackend.allCases)
    func cancelledAcceptKeepsConnection(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var port: UInt16 = 0
            let lfd = ts_io_listen(&port)
            let cfd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
            var addr = sockaddr_storage()
            var alen: socklen_t = 0
            ts_io_loopback(port, &addr, &alen)
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(cfd, $0, alen) }
            }
            #expect(rc == 0)
            var f1: FuturePtr?
            expectOK(ca_loop_sock_accept(l.loop, lfd, &f1))
            #expect(ca_future_cancel(f1!, nil))
            l.runOnce()
            l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 }
            decref(f1)
            var f2: FuturePtr?
            expectOK(ca_loop_sock_accept(l.loop, lfd, &f2))
            #expect(l.run(f2!, timeout: 5) == nil)
            if case .int(let afd) = outcome(f2!) {
                #expect(afd >= 0)
                expectOK(ca_loop_sock_close(l.loop, Int32(afd)))
            } else {
                Issue.record("accept gave \(outcome(f2!))")
            }
            decref(f2)
            close(cfd)
            expectOK(ca_loop_sock_close(l.loop, lfd))
        }
    }

    // MARK: - Blocking file descriptors

    @Test("sockets left blocking never block the loop: sock_recv, sock_sendall and sock_accept wait in it",
          arguments: IOBackend.allCases)
    func blockingSocketsWaitInTheLoop(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var sv: [Int32] = [0, 0]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0, &sv) == 0)
            defer { close(sv[1]) }
            #expect(fcntl(sv[0], F_GETFL) & O_NONBLOCK == 0, "the socket starts out blocking")
            let peer = sv[1]

            // Nothing to read: the receive waits in the loop, not in recv(2).
            var f: FuturePtr?
            expectOK(ca_loop_sock_recv(l.loop, sv[0], 100, &f))
            let recvBlocked = watchdog(rescue: { _ = write(peer, "!", 1) }) { l.runFor(0.02) }
            #expect(!recvBlocked, "sock_recv blocked the loop in recv(2)")
            #expect(!ca_future_done(f), "nothing was sent yet")
            #expect(ts_io_write_all(peer, "late", 4) == 4)
            #expect(l.run(f!) == nil)
            #expect(bytesResult(f!) == bytes("late"))
            decref(f)

            // More than the socket buffers hold (made small, whatever the
            // machine's defaults), to a peer not reading yet.
            var small: Int32 = 16384
            #expect(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size)) == 0)
            #expect(setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size)) == 0)
            let size = 1 << 20
            let data = ca_bytes_new(size)!
            defer { decref(data) }
            ts_io_pattern(data.pointee.data, size, 3, 0)
            data.pointee.len = size
            expectOK(ca_loop_sock_sendall(l.loop, sv[0], data, &f))
            defer { decref(f) }
            let sendBlocked = watchdog(rescue: {
                var sink = [UInt8](repeating: 0, count: 65536)
                for _ in 0..<64 where sink.withUnsafeMutableBytes({ read(peer, $0.baseAddress, $0.count) }) > 0 {}
            }) { l.runFor(0.02) }
            #expect(!sendBlocked, "sock_sendall blocked the loop in send(2)")
            #expect(!ca_future_done(f), "the peer has read nothing yet")
            var received = [UInt8](repeating: 0, count: size)
            var got = 0
            let deadline = now() + 20
            while got < size && now() < deadline {
                l.runFor(0.001)
                let n = received.withUnsafeMutableBytes { recv(peer, $0.baseAddress! + got, size - got, Int32(MSG_DONTWAIT)) }
                if n > 0 { got += n }
            }
            #expect(l.run(f!) == nil)
            #expect(outcome(f!) == .none)
            #expect(got == size && ts_io_pattern_mismatch(received, size, 3, 0) == -1)
            expectOK(ca_loop_sock_close(l.loop, sv[0]))

            // A blocking listening socket with nobody connecting yet.
            var port: UInt16 = 0
            let lfd = ts_io_listen(&port)
            #expect(lfd >= 0)
            #expect(fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) & ~O_NONBLOCK) == 0)
            var fa: FuturePtr?
            expectOK(ca_loop_sock_accept(l.loop, lfd, &fa))
            defer { decref(fa) }
            let listening = port
            let connectLoopback: @Sendable () -> Int32 = {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
                var addr = sockaddr_storage()
                var alen: socklen_t = 0
                ts_io_loopback(listening, &addr, &alen)
                _ = withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, alen) }
                }
                return fd
            }
            let acceptBlocked = watchdog(rescue: { _ = connectLoopback() }) { l.runFor(0.02) }
            #expect(!acceptBlocked, "sock_accept blocked the loop in accept(2)")
            #expect(!ca_future_done(fa), "nobody connected yet")
            let cfd = connectLoopback()
            defer { close(cfd) }
            #expect(l.run(fa!) == nil)
            if case .int(let afd) = outcome(fa!) {
                expectOK(ca_loop_sock_close(l.loop, Int32(afd)))
            } else {
                Issue.record("accept gave \(outcome(fa!))")
            }
            expectOK(ca_loop_sock_close(l.loop, lfd))
        }
    }

    /// Runs `body` (on this thread); if it has not returned after `seconds`,
    /// another thread runs `rescue` to unblock it. Returns whether it had to:
    /// a regression fails the test instead of hanging it.
    private func watchdog(seconds: Double = 10, rescue: @escaping @Sendable () -> Void, _ body: () -> Void) -> Bool {
        let finished = DispatchSemaphore(value: 0)
        let verdict = DispatchSemaphore(value: 0)
        let rescued = Flag()
        DispatchQueue.global().async {
            if finished.wait(timeout: .now() + seconds) == .timedOut {
                rescued.set()
                rescue()
            }
            verdict.signal()
        }
        body()
        finished.signal()
        verdict.wait()
        return rescued.isSet
    }

    // MARK: - add_reader / add_writer

    @Test("add_reader is level-triggered: called every iteration while readable, never after remove_reader",
          arguments: IOBackend.allCases)
    func readerLevelTriggered(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var sv: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&sv) == 0)
            defer { close(sv[1]) }
            let rec = l.buffer(ts_recorder.self)
            ts_recorder_init(rec, l.loop)
            let probe = l.buffer(ts_probe.self)
            ts_probe_init(probe, rec, 7)
            expectOK(ca_loop_add_reader(l.loop, sv[0], ts_probe_call, probe, ts_probe_release))
            l.runFor(0.02)
            #expect(probe.pointee.runs == 0, "not readable yet")
            #expect(ts_io_write_all(sv[1], "x", 1) == 1)
            l.runUntil(timeout: 5) { probe.pointee.runs >= 3 }
            #expect(probe.pointee.runs >= 3, "called again while the byte stays unread")
            #expect(ca_loop_remove_reader(l.loop, sv[0]))
            #expect(probe.pointee.releases == 1)
            let n = probe.pointee.runs
            l.runFor(0.02)
            #expect(probe.pointee.runs == n)
            #expect(!ca_loop_remove_reader(l.loop, sv[0]))
            l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 }
            #expect(ca_loop_io_pending(l.loop) == 0)

            expectOK(ca_loop_add_writer(l.loop, sv[0], ts_probe_call, probe, nil))
            l.runUntil(timeout: 5) { probe.pointee.runs > n }
            #expect(probe.pointee.runs > n, "a socket with room is writable")
            #expect(ca_loop_remove_writer(l.loop, sv[0]))
            l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 }
            expectOK(ca_loop_sock_close(l.loop, sv[0]))
        }
    }

    // MARK: - Bytes

    @Test("ca_bytes grows past its inline storage and keeps its contents")
    func bytesGrow() {
        let b = ca_bytes_from("abc", 3)!
        defer { decref(b) }
        for _ in 0..<1000 { expectOK(ca_bytes_append(b, "0123456789", 10)) }
        #expect(b.pointee.len == 10_003)
        #expect(b.pointee.cap >= 10_003)
        #expect(Array(UnsafeBufferPointer(start: b.pointee.data, count: 5)) == bytes("abc01"))
        #expect(ca_bytes_check(b))
    }
}

/// A flag set by one thread and read by another after a semaphore ordered them.
private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
