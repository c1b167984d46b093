// StreamReader's reads against an echo server, as streams.py behaves:
// readline, readuntil, readexactly, read(n) and read(-1), limits with
// LimitOverrunError and ValueError, IncompleteReadError at EOF.

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

@Suite("I/O: StreamReader")
struct IOStreamTests {

    /// Sends `script` to an echo server (then EOF) and runs the reads of
    /// `ops`, returning what each produced, '|'-separated.
    func reads(_ l: IOLoop, _ srv: TestServer, _ script: String, _ ops: String, limit: Int = 0) throws -> String {
        let out = l.buffer(CChar.self, count: 4096)
        let t = try script.withCString { s in
            try ops.withCString { o in
                try l.task(ts_stream_reads_client(srv.port, s, strlen(s), o, limit, out, 4096))
            }
        }
        defer { decref(t) }
        let err = l.run(t)
        #expect(err == nil, "\(String(describing: err))")
        return String(cString: out)
    }

    @Test("readline, readuntil, read(n) and read(-1) split the stream where asyncio does",
          arguments: IOBackend.allCases)
    func readsSplit(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            #expect(try reads(l, srv, "line1\nline2\r\npartial", "l u r3 r-1") == "line1\n|line2\r\n|par|tial")
            #expect(try reads(l, srv, "abc\n", "l l r5") == "abc\n||", "b'' at EOF, as readline and read give")
            ca_server_close(srv.server)
        }
    }

    @Test("readexactly and readuntil raise IncompleteReadError with the partial data at EOF",
          arguments: IOBackend.allCases)
    func incompleteRead(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            #expect(try reads(l, srv, "abc", "x5") == "!IncompleteReadError:abc")
            #expect(try reads(l, srv, "abc", "u") == "!IncompleteReadError:abc")
            #expect(try reads(l, srv, "abcdef", "x3 x3 x0") == "abc|def|")
            ca_server_close(srv.server)
        }
    }

    @Test("limits: LimitOverrunError keeps the data for readuntil; readline drops the line and raises ValueError",
          arguments: IOBackend.allCases)
    func limits(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            #expect(try reads(l, srv, "abcdefgh\r\n", "u x10", limit: 4) == "!LimitOverrunError:8|abcdefgh\r\n")
            #expect(try reads(l, srv, "abcdefghij", "u", limit: 4) == "!LimitOverrunError:9")
            #expect(try reads(l, srv, "0123456789ABCDEF\nxy", "l l", limit: 8) == "!ValueError|xy")
            ca_server_close(srv.server)
        }
    }

    @Test("IncompleteReadError and LimitOverrunError carry asyncio's messages")
    func errorMessages() throws {
        try withIOLoop(.epoll) { l in
            let r = try #require(ca_stream_reader_new(l.loop, 4))
            defer { decref(r) }
            expectOK(ca_stream_reader_feed_data(r, "abcdefgh", 8))
            ca_stream_reader_feed_eof(r)
            let t1 = try l.task(ca_stream_reader_readuntil(r, "\n", 1))
            defer { decref(t1) }
            let e1 = l.run(t1)
            #expect(e1?.type == "LimitOverrunError")
            #expect(e1?.message == "Separator is not found, and chunk exceed the limit")
            #expect(ca_stream_reader_buffered(r) == 8, "the data stays buffered")
            let t2 = try l.task(ca_stream_reader_readexactly(r, 10))
            defer { decref(t2) }
            let e2 = l.run(t2)
            #expect(e2?.type == "IncompleteReadError")
            #expect(e2?.message == "8 bytes read on a total of 10 expected bytes")
            #expect(ca_stream_reader_at_eof(r))
            let t3 = try l.task(ca_stream_reader_readexactly(r, -1))
            defer { decref(t3) }
            #expect(l.run(t3)?.message == "readexactly size can not be less than zero")
            let t4 = try l.task(ca_stream_reader_readuntil(r, "", 0))
            defer { decref(t4) }
            #expect(l.run(t4)?.message == "Separator should be at least one-byte string")
        }
    }

    @Test("two reads waiting at once: the second raises RuntimeError; set_exception reaches the waiting one")
    func concurrentReads() throws {
        try withIOLoop(.epoll) { l in
            let r = try #require(ca_stream_reader_new(l.loop, 0))
            defer { decref(r) }
            let t1 = try l.task(ca_stream_reader_read(r, 10))
            let t2 = try l.task(ca_stream_reader_readline(r))
            defer { decref(t1); decref(t2) }
            l.runOnce()
            l.runOnce()
            #expect(ca_future_done(fut(t2)))
            #expect(outcome(t2) == .error("RuntimeError",
                                          "readuntil() called while another coroutine is already waiting for incoming data"))
            #expect(!ca_future_done(fut(t1)))
            let exc = makeError("ConnectionResetError", "gone")
            ca_stream_reader_set_exception(r, exc)
            decref(exc)
            #expect(l.run(t1) != nil)
            #expect(outcome(t1) == .error("ConnectionResetError", "gone"))
            let t3 = try l.task(ca_stream_reader_read(r, 10))
            defer { decref(t3) }
            #expect(l.run(t3)?.type == "ConnectionResetError", "every later read raises it")
        }
    }

    @Test("cancelling a waiting read leaves the buffered data for the next read")
    func cancelledReadKeepsData() throws {
        try withIOLoop(.epoll) { l in
            let r = try #require(ca_stream_reader_new(l.loop, 0))
            defer { decref(r) }
            let t1 = try l.task(ca_stream_reader_readexactly(r, 6))
            defer { decref(t1) }
            l.runOnce()
            expectOK(ca_stream_reader_feed_data(r, "abc", 3))
            #expect(ca_task_cancel(t1, nil))
            #expect(l.run(t1)?.type == "CancelledError")
            expectOK(ca_stream_reader_feed_data(r, "def", 3))
            let t2 = try l.task(ca_stream_reader_readexactly(r, 6))
            defer { decref(t2) }
            #expect(l.run(t2) == nil)
            #expect(bytesResult(fut(t2)) == bytes("abcdef"))
        }
    }
}
