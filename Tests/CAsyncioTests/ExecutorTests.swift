// The loop's default executor (run_in_executor(None, fn),
// shutdown_default_executor) and getaddrinfo on it, as base_events.py
// behaves; results come back through the thread-safe inbox, on both
// backends (each one's poll must wake for them).

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

@Suite("Executor and getaddrinfo")
struct ExecutorTests {

    func job(_ l: IOLoop, a: Int64 = 0, b: Int64 = 0) -> UnsafeMutablePointer<ts_job> {
        let j = l.buffer(ts_job.self)
        j.pointee.a = a
        j.pointee.b = b
        return j
    }

    // MARK: - run_in_executor

    @Test("run_in_executor runs the job on another thread and resolves the future on the loop",
          arguments: IOBackend.allCases)
    func runsOnAThread(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let j = job(l, a: 40, b: 2)
            var f: FuturePtr?
            expectOK(ca_loop_run_in_executor(l.loop, ts_job_add, j, ts_job_release, &f))
            defer { decref(f) }
            #expect(l.run(f!) == nil)
            #expect(outcome(f!) == .int(42))
            #expect(j.pointee.worker_tid != ts_thread_self())
            #expect(j.pointee.releases == 1)
            #expect(ca_loop_io_pending(l.loop) == 0)
        }
    }

    @Test("an error the job returns becomes the future's exception", arguments: IOBackend.allCases)
    func jobError(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let j = job(l)
            var f: FuturePtr?
            expectOK(ca_loop_run_in_executor(l.loop, ts_job_fail, j, ts_job_release, &f))
            defer { decref(f) }
            l.run(f!)
            #expect(outcome(f!) == .error("ValueError", "job failed"))
            #expect(j.pointee.releases == 1)
        }
    }

    @Test("a job whose future is cancelled before a thread takes it never runs")
    func cancelBeforeRunSkips() throws {
        try withIOLoop(.epoll) { l in
            expectOK(ca_loop_set_executor_max_threads(l.loop, 1))
            let blocker = job(l, a: 1)
            let skipped = job(l, a: 2)
            var f1: FuturePtr?, f2: FuturePtr?
            expectOK(ca_loop_run_in_executor(l.loop, ts_job_gated, blocker, ts_job_release, &f1))
            expectOK(ca_loop_run_in_executor(l.loop, ts_job_add, skipped, ts_job_release, &f2))
            defer { decref(f1); decref(f2) }
            #expect(ca_future_cancel(f2!, nil))
            #expect(skipped.pointee.releases == 1, "released as soon as it left the queue")
            ts_job_open_gate(blocker)
            #expect(l.run(f1!) == nil)
            #expect(outcome(f1!) == .int(1))
            l.runFor(0.02)
            #expect(ts_job_runs(skipped) == 0)
            #expect(ca_future_cancelled(f2!))
            #expect(ca_loop_executor_threads(l.loop) == 1)
            #expect(ca_loop_io_pending(l.loop) == 0)
        }
    }

    @Test("a job cancelled while it runs finishes, and its result is dropped")
    func cancelWhileRunning() throws {
        try withIOLoop(.epoll) { l in
            let j = job(l, a: 5)
            var f: FuturePtr?
            expectOK(ca_loop_run_in_executor(l.loop, ts_job_gated, j, ts_job_release, &f))
            defer { decref(f) }
            // Running on a worker, not just queued (a fixed wait is not
            // enough on a loaded machine).
            #expect(l.runUntil(timeout: 5) { ts_job_started(j) == 1 })
            #expect(ca_future_cancel(f!, nil))
            ts_job_open_gate(j)
            #expect(l.runUntil(timeout: 5) { j.pointee.releases == 1 })
            #expect(ts_job_runs(j) == 1)
            #expect(ca_future_cancelled(f!))
            #expect(ca_loop_io_pending(l.loop) == 0)
        }
    }

    @Test("the pool grows while jobs wait and every job runs once", arguments: IOBackend.allCases)
    func manyJobs(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            expectOK(ca_loop_set_executor_max_threads(l.loop, 4))
            let jobs = (0..<50).map { job(l, a: Int64($0), b: 1) }
            var futs: [FuturePtr] = []
            for j in jobs {
                var f: FuturePtr?
                expectOK(ca_loop_run_in_executor(l.loop, ts_job_add, j, ts_job_release, &f))
                futs.append(f!)
            }
            defer { futs.forEach { decref($0) } }
            #expect(ca_loop_executor_threads(l.loop) <= 4)
            for (i, f) in futs.enumerated() {
                #expect(l.run(f) == nil)
                #expect(outcome(f) == .int(Int64(i) + 1))
            }
            #expect(jobs.allSatisfy { ts_job_runs($0) == 1 && $0.pointee.releases == 1 })
        }
    }

    @Test("shutdown_default_executor lets queued jobs finish, joins the threads, then refuses jobs")
    func shutdown() throws {
        try withIOLoop(.epoll) { l in
            expectOK(ca_loop_set_executor_max_threads(l.loop, 1))
            let first = job(l, a: 1), second = job(l, a: 2)
            var f1: FuturePtr?, f2: FuturePtr?, s: FuturePtr?
            expectOK(ca_loop_run_in_executor(l.loop, ts_job_gated, first, nil, &f1))
            expectOK(ca_loop_run_in_executor(l.loop, ts_job_add, second, nil, &f2))
            expectOK(ca_loop_shutdown_default_executor(l.loop, &s))
            defer { decref(f1); decref(f2); decref(s) }
            #expect(!ca_future_done(s!))
            ts_job_open_gate(first)
            #expect(l.run(s!) == nil)
            #expect(outcome(f1!) == .int(1))
            #expect(outcome(f2!) == .int(2))
            #expect(ca_loop_executor_threads(l.loop) == 0)

            let late = job(l)
            var f3: FuturePtr?
            let err = take(ca_loop_run_in_executor(l.loop, ts_job_add, late, ts_job_release, &f3))
            #expect(err?.description == "RuntimeError: Executor shutdown has been called")
            #expect(f3 == nil)
            #expect(late.pointee.releases == 1)
        }
    }

    @Test("closing the loop joins the threads and releases jobs that never started")
    func closeDropsQueued() throws {
        let l = try IOLoop(.epoll)
        expectOK(ca_loop_set_executor_max_threads(l.loop, 1))
        let running = job(l), queued = job(l)
        var f1: FuturePtr?, f2: FuturePtr?
        expectOK(ca_loop_run_in_executor(l.loop, ts_job_gated, running, ts_job_release, &f1))
        expectOK(ca_loop_run_in_executor(l.loop, ts_job_add, queued, ts_job_release, &f2))
        #expect(l.runUntil(timeout: 5) { ts_job_started(running) == 1 })
        ts_job_open_gate(running)
        expectOK(ca_loop_close(l.loop))
        #expect(ts_job_runs(running) == 1)
        #expect(ts_job_runs(queued) == 0)
        #expect(running.pointee.releases == 1)
        #expect(queued.pointee.releases == 1)
        decref(f1)
        decref(f2)
        l.finish()
    }

    @Test("run_in_executor on a closed loop raises RuntimeError and releases the argument")
    func closedLoop() throws {
        let l = try IOLoop(.epoll)
        defer { l.finish() }
        expectOK(ca_loop_close(l.loop))
        let j = job(l)
        var f: FuturePtr?
        let err = take(ca_loop_run_in_executor(l.loop, ts_job_add, j, ts_job_release, &f))
        #expect(err?.description == "RuntimeError: Event loop is closed")
        #expect(j.pointee.releases == 1)
    }

    // MARK: - getaddrinfo

    func describe(_ f: FuturePtr) -> (Int32, String) {
        var buf = [CChar](repeating: 0, count: 1024)
        let n = ts_addrinfo_describe(f, &buf, buf.count)
        return (n, buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }

    @Test("getaddrinfo of an IP literal answers on the loop thread: done at once, no thread started")
    func numericShortCircuit() throws {
        try withIOLoop(.epoll) { l in
            var f: FuturePtr?
            expectOK(ca_loop_getaddrinfo(l.loop, "127.0.0.1", "8080", AF_INET, Int32(SOCK_STREAM.rawValue), 0, 0, &f))
            defer { decref(f) }
            #expect(ca_future_done(f!))
            #expect(describe(f!) == (1, "inet/stream/127.0.0.1/8080"))
            var f6: FuturePtr?
            expectOK(ca_loop_getaddrinfo(l.loop, "::1", nil, AF_UNSPEC, Int32(SOCK_DGRAM.rawValue), 0, 0, &f6))
            defer { decref(f6) }
            #expect(describe(f6!) == (1, "inet6/dgram/::1/0"))
            #expect(ca_loop_executor_threads(l.loop) == 0)
        }
    }

    @Test("getaddrinfo of a name resolves on the executor", arguments: IOBackend.allCases)
    func nameOnExecutor(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            var f: FuturePtr?
            expectOK(ca_loop_getaddrinfo(l.loop, "localhost", "80", AF_INET, Int32(SOCK_STREAM.rawValue), 0, 0, &f))
            defer { decref(f) }
            #expect(!ca_future_done(f!))
            #expect(l.run(f!) == nil)
            let (n, text) = describe(f!)
            #expect(n >= 1)
            #expect(text.split(separator: "|").contains("inet/stream/127.0.0.1/80"))
            #expect(ca_loop_executor_threads(l.loop) >= 1)
        }
    }

    @Test("a getaddrinfo failure is a gaierror carrying the EAI code and gai_strerror's message")
    func gaierror() throws {
        try withIOLoop(.epoll) { l in
            var f: FuturePtr?
            // AI_NUMERICHOST makes the failure certain without asking DNS
            expectOK(ca_loop_getaddrinfo(l.loop, "not-an-address", "80", AF_UNSPEC, 0, 0, AI_NUMERICHOST, &f))
            defer { decref(f) }
            l.run(f!)
            var v = ca_none()
            let err = take(ca_future_result(f!, &v))
            #expect(err?.type == "gaierror")
            #expect(err?.errNo == EAI_NONAME)
            #expect(err?.message == "[Errno \(EAI_NONAME)] \(String(cString: gai_strerror(EAI_NONAME)))")
            let e = ca_error_from_gai(EAI_NONAME, 0)!
            #expect(ca_error_matches(e, errorType("OSError")))
            decref(e)
        }
    }

    @Test("getaddrinfo without host and port raises ValueError")
    func gaiNoHostNoPort() throws {
        try withIOLoop(.epoll) { l in
            var f: FuturePtr?
            let err = take(ca_loop_getaddrinfo(l.loop, nil, nil, AF_UNSPEC, 0, 0, 0, &f))
            #expect(err?.type == "ValueError")
            #expect(f == nil)
        }
    }

    // MARK: - create_connection / open_connection with names

    @Test("open_connection to \"localhost\" resolves the name and connects", arguments: IOBackend.allCases)
    func openConnectionByName(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let srv = try TestServer(l)
            let t = try l.task(ts_stream_echo_client("localhost", srv.port, nil, 1000, 1000, 9, nil))
            defer { decref(t) }
            #expect(l.run(t) == nil)
            #expect(outcome(t) == .int(1000))
            ca_server_close(srv.server)
        }
    }

    @Test("create_connection to a name that does not resolve fails with gaierror")
    func createConnectionBadName() throws {
        try withIOLoop(.epoll) { l in
            var f: FuturePtr?
            // an empty label is refused by the resolver itself, before any DNS traffic
            expectOK(ca_loop_create_connection(l.loop, nil, nil, "bad..name", 80, &f))
            defer { decref(f) }
            l.run(f!)
            guard case .error(let type, _) = outcome(f!) else {
                Issue.record("expected an error, got \(outcome(f!))")
                return
            }
            #expect(type == "gaierror")
        }
    }

    @Test("cancelling create_connection while the name resolves cancels the lookup")
    func cancelDuringResolve() throws {
        try withIOLoop(.epoll) { l in
            let srv = try TestServer(l)
            var f: FuturePtr?
            expectOK(ca_loop_create_connection(l.loop, nil, nil, "localhost", srv.port, &f))
            defer { decref(f) }
            #expect(ca_future_cancel(f!, nil))
            l.runFor(0.05)
            #expect(ca_future_cancelled(f!))
            #expect(srv.stats.pointee.made == 0)
            ca_server_close(srv.server)
        }
    }
}
