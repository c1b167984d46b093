// Injected faults: the backend completes chosen operations of the server
// with chosen errors or short counts while a blocking client on another
// thread checks every byte of the echo. Transient errors (EAGAIN, EINTR,
// ENOBUFS) are retried without loss; short reads and sends lose and
// duplicate nothing; resets and broken pipes surface as the right OSError
// subclass; a full SQ and an overflowing CQ lose no completion.

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

@Suite("I/O: injected faults")
struct IOFaultTests {

    /// Echoes `size` bytes through a Protocol server on `l` with the fault
    /// rules installed, the client on its own thread. Returns the client.
    @discardableResult
    func echoThroughFaults(_ l: IOLoop, _ srv: TestServer, size: Int = 300_000, chunk: Int = 16_384,
                           sourceLocation: SourceLocation = #_sourceLocation) -> UnsafeMutablePointer<ts_thread_client> {
        let c = l.buffer(ts_thread_client.self)
        c.pointee.port = srv.port
        c.pointee.size = size
        c.pointee.chunk = chunk
        c.pointee.seed = UInt64(size)
        c.pointee.loop = l.loop
        #expect(ts_thread_client_start(c) == 0, sourceLocation: sourceLocation)
        let finished = ts_io_run_until_flag(l.loop, &c.pointee.done, 30)
        ts_thread_client_join(c)
        #expect(finished, "the client finished", sourceLocation: sourceLocation)
        return c
    }

    func expectIntact(_ c: UnsafeMutablePointer<ts_thread_client>, size: Int = 300_000,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(c.pointee.err_no == 0, "client failed in \(c.pointee.failed_call) errno \(c.pointee.err_no)",
                sourceLocation: sourceLocation)
        #expect(c.pointee.received == UInt64(size), sourceLocation: sourceLocation)
        #expect(c.pointee.mismatch == -1, "no byte lost, duplicated or reordered", sourceLocation: sourceLocation)
    }

    @Test("EAGAIN, EINTR and ENOBUFS on receive and send are retried; the echo is intact",
          arguments: IOBackend.allCases, [EAGAIN, EINTR, ENOBUFS])
    func transientErrors(backend: IOBackend, errno e: Int32) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            // A multishot receive (io_uring) is submitted once per arming,
            // so receive faults hit the first submissions; each transient
            // failure re-arms it.
            let s = faultScript(l, [rule(CA_IO_RECV, count: 5, error: e),
                                    rule(CA_IO_SEND, skip: 1, count: 5, error: e)])
            expectIntact(echoThroughFaults(l, srv))
            #expect(fired(s, 0) == 5)
            #expect(fired(s, 1) == 5)
            #expect(srv.stats.pointee.lost_with_error == 0)
            ca_server_close(srv.server)
        }
    }

    @Test("io_uring keeps one multishot receive per connection armed; epoll submits one per read",
          arguments: IOBackend.allCases)
    func multishotReceives(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            // a rule without an action only counts the submissions it sees
            let s = faultScript(l, [rule(CA_IO_RECV, count: -1)])
            expectIntact(echoThroughFaults(l, srv, size: 20_000, chunk: 100), size: 20_000)
            if backend == .uring {
                #expect(fired(s, 0) <= 3, "200 round trips, \(fired(s, 0)) receive submissions")
            } else {
                #expect(fired(s, 0) >= 200)
            }
            ca_server_close(srv.server)
        }
    }

    @Test("short reads and short sends (every op clamped to a few bytes) lose and duplicate nothing",
          arguments: IOBackend.allCases)
    func shortCounts(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            let s = faultScript(l, [rule(CA_IO_RECV, count: -1, maxLen: 7),
                                    rule(CA_IO_SEND, count: -1, maxLen: 5)])
            expectIntact(echoThroughFaults(l, srv, size: 40_000, chunk: 4000), size: 40_000)
            #expect(fired(s, 0) > 1000)
            #expect(fired(s, 1) > 1000)
            ca_server_close(srv.server)
        }
    }

    @Test("ECONNRESET on a receive reaches connection_lost as ConnectionResetError naming recv",
          arguments: IOBackend.allCases)
    func injectedReset(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            let exc = l.buffer(ts_exc_recorder.self)
            ca_loop_set_exception_handler(l.loop, ts_exc_handler, exc)
            let s = faultScript(l, [rule(CA_IO_RECV, count: 1, error: ECONNRESET)])
            let c = echoThroughFaults(l, srv)
            #expect(fired(s, 0) == 1)
            #expect(c.pointee.err_no != 0, "the client saw its connection end early")
            l.runUntil(timeout: 5) { srv.stats.pointee.lost == 1 }
            #expect(srv.stats.pointee.lost_with_error == 1)
            #expect(srv.lastError == "ConnectionResetError: [Errno 104] Connection reset by peer: recv")
            #expect(exc.pointee.count == 0)
            ca_server_close(srv.server)
        }
    }

    @Test("EPIPE on a send reaches connection_lost as BrokenPipeError naming send", arguments: IOBackend.allCases)
    func injectedBrokenPipe(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            let s = faultScript(l, [rule(CA_IO_SEND, skip: 2, count: 1, error: EPIPE)])
            echoThroughFaults(l, srv)
            #expect(fired(s, 0) == 1)
            l.runUntil(timeout: 5) { srv.stats.pointee.lost == 1 }
            #expect(srv.lastError == "BrokenPipeError: [Errno 32] Broken pipe: send")
            ca_server_close(srv.server)
        }
    }

    @Test("an unexpected errno on a send goes to the exception handler as a fatal write error",
          arguments: IOBackend.allCases)
    func injectedOtherError(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            let exc = l.buffer(ts_exc_recorder.self)
            ca_loop_set_exception_handler(l.loop, ts_exc_handler, exc)
            faultScript(l, [rule(CA_IO_SEND, count: 1, error: EIO)])
            echoThroughFaults(l, srv)
            l.runUntil(timeout: 5) { srv.stats.pointee.lost == 1 }
            #expect(srv.lastError == "OSError: [Errno 5] Input/output error: send")
            #expect(exc.pointee.count == 1)
            #expect(String(cString: ts_exc_message(exc, 0)) == "Fatal write error on socket transport")
            ca_server_close(srv.server)
        }
    }

    @Test("an injected EOF reaches eof_received once; the server closes", arguments: IOBackend.allCases)
    func injectedEOF(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            faultScript(l, [rule(CA_IO_RECV, count: 1, eof: true)])
            echoThroughFaults(l, srv)
            l.runUntil(timeout: 5) { srv.stats.pointee.lost == 1 }
            #expect(srv.stats.pointee.eofs == 1)
            #expect(srv.stats.pointee.lost_with_error == 0)
            ca_server_close(srv.server)
        }
    }

    @Test("ECONNABORTED on accept is retried; EMFILE pauses accepting for a second, then the client is served",
          arguments: IOBackend.allCases, [ECONNABORTED, EMFILE])
    func acceptErrors(backend: IOBackend, errno e: Int32) throws {
        try withIOLoop(backend) { l in
            // the hook is in place before the server submits its first accept
            let s = faultScript(l, [rule(CA_IO_ACCEPT, count: 1, error: e)])
            let srv = try TestServer(l)
            let exc = l.buffer(ts_exc_recorder.self)
            ca_loop_set_exception_handler(l.loop, ts_exc_handler, exc)
            let start = now()
            expectIntact(echoThroughFaults(l, srv, size: 10_000), size: 10_000)
            #expect(fired(s, 0) == 1)
            if e == EMFILE {
                #expect(now() - start >= 0.9, "accepting paused for ACCEPT_RETRY_DELAY")
                #expect(exc.pointee.count == 1)
                #expect(String(cString: ts_exc_message(exc, 0)) == "socket.accept() out of system resource")
                #expect(String(cString: ts_exc_type(exc, 0)) == "OSError")
            } else {
                #expect(exc.pointee.count == 0)
            }
            ca_server_close(srv.server)
        }
    }

    @Test("ECONNREFUSED injected into connect fails create_connection with ConnectionRefusedError",
          arguments: IOBackend.allCases)
    func injectedRefusal(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            faultScript(l, [rule(CA_IO_CONNECT, count: 1, error: ECONNREFUSED)])
            var f: FuturePtr?
            expectOK(ca_open_connection(l.loop, "127.0.0.1", srv.port, 0, &f))
            defer { decref(f) }
            let err = l.run(f!)
            #expect(err?.type == "ConnectionRefusedError")
            #expect(err?.message == "[Errno 111] Connection refused: Connect call failed ('127.0.0.1', \(srv.port))")
            ca_server_close(srv.server)
        }
    }

    @Test("a full SQ on every submission takes the flush-and-retry path and loses nothing",
          arguments: IOBackend.allCases)
    func sqFullInjected(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            let s = faultScript(l, [rule(CA_IO_RECV, count: -1, sqFull: true),
                                    rule(CA_IO_SEND, count: -1, sqFull: true)])
            expectIntact(echoThroughFaults(l, srv))
            #expect(fired(s, 0) > 0)
            if backend == .uring {
                #expect(l.stats.sq_full >= UInt64(fired(s, 0) + fired(s, 1)))
            }
            ca_server_close(srv.server)
        }
    }

    @Test("a tiny ring: receives on 100 ready sockets fill the SQ and overflow the CQ; every byte arrives",
          arguments: IOBackend.allCases)
    func tinyRingOverflow(backend: IOBackend) throws {
        if ts_io_raise_nofile(1024) < 600 { try skipTest("RLIMIT_NOFILE below 600") }
        ca_io_testing_set_uring_entries(4)
        defer { ca_io_testing_set_uring_entries(0) }
        try withIOLoop(backend) { l in
            l.runOnce() // the first poll enables the ring
            var pairs: [[Int32]] = []
            for i in 0..<100 {
                var sv: [Int32] = [0, 0]
                #expect(ts_io_socketpair(&sv) == 0)
                let msg = bytes("message \(i)")
                #expect(ts_io_write_all(sv[1], msg, msg.count) == msg.count)
                pairs.append(sv)
            }
            // 100 SQEs into a 4-entry SQ in one go: each full SQ is flushed,
            // its receives complete at once, and nobody reaps a 16-entry CQ
            var futs: [FuturePtr] = []
            for sv in pairs {
                var f: FuturePtr?
                expectOK(ca_loop_sock_recv(l.loop, sv[0], 64, &f))
                futs.append(f!)
            }
            var opt: [FuturePtr?] = futs
            let err = opt.withUnsafeMutableBufferPointer { take(ts_io_run_all(l.loop, $0.baseAddress, $0.count, 20)) }
            #expect(err == nil)
            for (i, f) in futs.enumerated() {
                #expect(bytesResult(f) == bytes("message \(i)"))
                decref(f)
            }
            let st = l.stats
            if backend == .uring {
                #expect(st.sq_full > 0, "a 4-entry SQ fills")
                #expect(st.cq_overflow > 0, "a 16-entry CQ overflows and is flushed")
            }
            for sv in pairs {
                expectOK(ca_loop_sock_close(l.loop, sv[0]))
                close(sv[1])
            }

            // and whole connections through the tiny ring
            let srv = try TestServer(l)
            var tasks: [TaskPtr] = []
            for i in 0..<100 {
                tasks.append(try l.task(ts_stream_echo_client(nil, srv.port, nil, 2000, 2000, UInt64(i), nil)))
            }
            defer { tasks.forEach { decref($0) } }
            l.runAll(tasks, timeout: 60)
            #expect(tasks.allSatisfy { outcome($0) == .int(2000) })
            ca_server_close(srv.server)
        }
    }

    // MARK: - A completion outliving its fd's generation

    /// A rule making the first `opcode` op complete with `result` even
    /// though it is cancelled: the kernel finished it before the cancel.
    func raceRule(_ op: ca_io_opcode, result: Int32) -> ts_fault_rule {
        var r = rule(op)
        r.action.race_result = result
        return r
    }

    @Test("bytes a cancelled sock_recv brings in after its fd was forgotten are dropped, never handed to the socket reusing the number",
          arguments: IOBackend.allCases)
    func staleRecvDroppedAfterForget(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var sv: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&sv) == 0)
            defer {
                close(sv[0])
                close(sv[1])
            }
            let s = faultScript(l, [raceRule(CA_IO_RECV, result: 5)])
            var f1: FuturePtr?
            expectOK(ca_loop_sock_recv(l.loop, sv[0], 64, &f1))
            #expect(ca_future_cancel(f1!, nil))
            decref(f1)
            // the socket is closed through the loop; from here the number
            // means a new socket (the same one stands in for it: forgetting
            // is what closing through the loop does to the loop's records)
            ca_loop_forget_fd(l.loop, sv[0])
            l.runOnce()
            #expect(l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 })
            #expect(fired(s, 0) == 1)
            #expect(ts_io_write_all(sv[1], "fresh", 5) == 5)
            var f2: FuturePtr?
            expectOK(ca_loop_sock_recv(l.loop, sv[0], 64, &f2))
            defer { decref(f2) }
            #expect(l.run(f2!) == nil)
            #expect(bytesResult(f2!) == bytes("fresh"), "the first receive of the new socket got only its own bytes")
            #expect(l.stats.race_kept == 0)
        }
    }

    @Test("a connection a cancelled sock_accept brings in after its listener was forgotten is closed, never handed to the socket reusing the number",
          arguments: IOBackend.allCases)
    func staleAcceptClosedAfterForget(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var port: UInt16 = 0
            let lfd = ts_io_listen(&port)
            #expect(lfd >= 0)
            defer { close(lfd) }
            // the "accepted" connection: one end of a pair, its peer kept
            // here to see whether the loop closed it
            var conn: [Int32] = [0, 0]
            #expect(ts_io_socketpair(&conn) == 0)
            defer { close(conn[1]) }
            let s = faultScript(l, [raceRule(CA_IO_ACCEPT, result: conn[0])])
            var f1: FuturePtr?
            expectOK(ca_loop_sock_accept(l.loop, lfd, &f1))
            #expect(ca_future_cancel(f1!, nil))
            decref(f1)
            ca_loop_forget_fd(l.loop, lfd)
            l.runOnce()
            #expect(l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 })
            #expect(fired(s, 0) == 1)
            var b: UInt8 = 0
            let n = recv(conn[1], &b, 1, Int32(MSG_DONTWAIT))
            #expect(n == 0, "the stale connection was closed (its peer sees EOF); recv gave \(n), errno \(errno)")
            if n != 0 { close(conn[0]) }
            // a new accept on the number waits for a real connection
            var f2: FuturePtr?
            expectOK(ca_loop_sock_accept(l.loop, lfd, &f2))
            #expect(ca_future_done(f2!) == false, "no connection kept for the new listener")
            #expect(ca_future_cancel(f2!, nil))
            decref(f2)
            l.runUntil(timeout: 5) { ca_loop_io_pending(l.loop) == 0 }
        }
    }
}
