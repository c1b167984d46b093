// The virtual clock with I/O in flight: time may jump to the next deadline
// only when nothing else can happen first. Pending I/O or executor jobs
// complete in real time, so the loop waits for them in the backend (up to
// the deadline's distance) instead of firing the timer at once.

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

@Suite("Virtual clock with I/O")
struct VirtualClockIOTests {

    @Test("a receive that completes in real time comes before a virtual-time timer",
          arguments: IOBackend.allCases)
    func ioBeatsTimer(backend: IOBackend) throws {
        let l = try IOLoop(backend, virtualClock: true)
        defer { l.finish() }
        var sv: [Int32] = [0, 0]
        #expect(ts_io_socketpair(&sv) == 0)
        defer { close(sv[1]) }
        let timer = l.buffer(ts_job.self)
        var h: HandlePtr?
        expectOK(ca_loop_call_later(l.loop, 10_000_000_000, ts_job_count_run, timer, nil, nil, &h))
        defer { decref(h) }
        var f: FuturePtr?
        expectOK(ca_loop_sock_recv(l.loop, sv[0], 16, &f))
        defer { decref(f) }
        #expect(ts_write_later(sv[1], "late", 4, 30) == 0)
        #expect(take(ca_loop_run_until_complete(l.loop, f!)) == nil)
        #expect(bytesResult(f!) == bytes("late"))
        #expect(timer.pointee.runs == 0, "the 10 s timer has not fired")
        #expect(ca_loop_time(l.loop) < 10_000_000_000)
        expectOK(ca_loop_sock_close(l.loop, sv[0]))
    }

    @Test("an executor job finishing in real time comes before a virtual-time timer",
          arguments: IOBackend.allCases)
    func jobBeatsTimer(backend: IOBackend) throws {
        let l = try IOLoop(backend, virtualClock: true)
        defer { l.finish() }
        let timer = l.buffer(ts_job.self)
        var h: HandlePtr?
        expectOK(ca_loop_call_later(l.loop, 1_000_000_000, ts_job_count_run, timer, nil, nil, &h))
        defer { decref(h) }
        let j = l.buffer(ts_job.self)
        j.pointee.a = 7
        j.pointee.b = 30 // milliseconds of real time
        var f: FuturePtr?
        expectOK(ca_loop_run_in_executor(l.loop, ts_job_slow, j, nil, &f))
        defer { decref(f) }
        #expect(take(ca_loop_run_until_complete(l.loop, f!)) == nil)
        #expect(outcome(f!) == .int(37))
        #expect(timer.pointee.runs == 0, "the 1 s timer has not fired")
    }

    @Test("with nothing in flight the virtual clock still jumps straight to the deadline")
    func idleStillJumps() throws {
        let l = try IOLoop(.epoll, virtualClock: true)
        defer { l.finish() }
        let timer = l.buffer(ts_job.self)
        var h: HandlePtr?
        expectOK(ca_loop_call_later(l.loop, 3600_000_000_000, ts_job_count_run, timer, nil, nil, &h))
        defer { decref(h) }
        let start = now()
        #expect(l.runUntil(timeout: 5) { timer.pointee.runs == 1 })
        #expect(now() - start < 5, "an hour of virtual time took no real hour")
        #expect(ca_loop_time(l.loop) >= 3600_000_000_000)
    }
}
