// add_signal_handler / remove_signal_handler through the loop's signalfd,
// as unix_events.py behaves: the handler runs from the ready queue, never
// in signal context; invalid signals raise. On both backends (the signalfd
// is a reader, a POLL operation like any other).

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

@Suite("Signal handlers")
struct SignalTests {

    /// A handler argument: its runs and releases are counted in it.
    func handler(_ l: IOLoop) -> UnsafeMutablePointer<ts_job> { l.buffer(ts_job.self) }

    @Test("raise(SIGUSR1) runs the handler from the loop, once per signal", arguments: IOBackend.allCases)
    func raiseRunsHandler(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let h = handler(l)
            expectOK(ca_loop_add_signal_handler(l.loop, SIGUSR1, ts_job_count_run, h, ts_job_release))
            #expect(ts_signal_blocked(SIGUSR1))
            #expect(ts_raise(SIGUSR1) == 0)
            #expect(h.pointee.runs == 0, "nothing runs in signal context")
            #expect(l.runUntil(timeout: 5) { h.pointee.runs == 1 })
            #expect(ts_raise(SIGUSR1) == 0)
            #expect(l.runUntil(timeout: 5) { h.pointee.runs == 2 })
            var removed = false
            expectOK(ca_loop_remove_signal_handler(l.loop, SIGUSR1, &removed))
            #expect(removed)
            #expect(h.pointee.releases == 1)
        }
    }

    @Test("remove_signal_handler says whether one was removed and leaves the signal's mask as add found it")
    func remove() throws {
        try withIOLoop(.epoll) { l in
            let h = handler(l)
            var removed = true
            expectOK(ca_loop_remove_signal_handler(l.loop, SIGUSR2, &removed))
            #expect(!removed)
            let blockedBefore = ts_signal_blocked(SIGUSR2)
            expectOK(ca_loop_add_signal_handler(l.loop, SIGUSR2, ts_job_count_run, h, ts_job_release))
            #expect(ts_signal_blocked(SIGUSR2))
            expectOK(ca_loop_remove_signal_handler(l.loop, SIGUSR2, &removed))
            #expect(removed)
            #expect(h.pointee.releases == 1)
            #expect(ts_signal_blocked(SIGUSR2) == blockedBefore)
            expectOK(ca_loop_remove_signal_handler(l.loop, SIGUSR2, &removed))
            #expect(!removed)
        }
    }

    @Test("the handler runs in the context that was current when it was added")
    func handlerContext() throws {
        try withIOLoop(.epoll) { l in
            let v = ts_contextvar_new("signal_var", false, 0)!
            defer { ts_contextvar_free(v) }
            let h = handler(l)
            h.pointee.var = UnsafePointer(v)
            withFreshContext { _ in
                expectOK(ca_contextvar_set(v, ca_int(5), nil))
                expectOK(ca_loop_add_signal_handler(l.loop, SIGUSR1, ts_job_record_var, h, nil))
                expectOK(ca_contextvar_set(v, ca_int(7), nil))
            }
            #expect(ts_raise(SIGUSR1) == 0)
            #expect(l.runUntil(timeout: 5) { h.pointee.runs == 1 })
            #expect(h.pointee.seen == 5)
            var removed = false
            expectOK(ca_loop_remove_signal_handler(l.loop, SIGUSR1, &removed))
        }
    }

    @Test("a second handler for a signal replaces the first, which is released", arguments: IOBackend.allCases)
    func replace(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            let first = handler(l), second = handler(l)
            expectOK(ca_loop_add_signal_handler(l.loop, SIGUSR1, ts_job_count_run, first, ts_job_release))
            expectOK(ca_loop_add_signal_handler(l.loop, SIGUSR1, ts_job_count_run, second, ts_job_release))
            #expect(first.pointee.releases == 1)
            #expect(ts_raise(SIGUSR1) == 0)
            #expect(l.runUntil(timeout: 5) { second.pointee.runs == 1 })
            #expect(first.pointee.runs == 0)
            var removed = false
            expectOK(ca_loop_remove_signal_handler(l.loop, SIGUSR1, &removed))
            #expect(second.pointee.releases == 1)
        }
    }

    @Test("a call already scheduled when its handler is removed still runs, and the argument is released after it",
          arguments: IOBackend.allCases)
    func removeWhilePending(backend: IOBackend) throws {
        try withIOLoop(backend) { l in
            // SIGUSR1's handler removes SIGUSR2's; both signals are read in
            // one go (lowest first), so SIGUSR2's call is queued behind it
            let remover = handler(l), victim = handler(l)
            remover.pointee.loop = l.loop
            remover.pointee.signo = SIGUSR2
            expectOK(ca_loop_add_signal_handler(l.loop, SIGUSR1, ts_job_remove_signal_handler, remover, ts_job_release))
            expectOK(ca_loop_add_signal_handler(l.loop, SIGUSR2, ts_job_count_run, victim, ts_job_release))
            #expect(ts_raise(SIGUSR2) == 0)
            #expect(ts_raise(SIGUSR1) == 0)
            #expect(l.runUntil(timeout: 5) { remover.pointee.runs == 1 && victim.pointee.releases == 1 })
            #expect(victim.pointee.runs == 1, "the pending call runs, as asyncio's Handle does")
            #expect(victim.pointee.runs_after_release == 0, "the argument outlives the pending call")
            var removed = false
            expectOK(ca_loop_remove_signal_handler(l.loop, SIGUSR1, &removed))
            #expect(removed)
        }
    }

    @Test("a signal that arrived before remove_signal_handler and was not read yet is dropped, not left to its default action")
    func removeDropsUnreadSignal() throws {
        try withIOLoop(.epoll) { l in
            // SIGWINCH: no other test uses it, and its default action is
            // harmless; a counting disposition shows whether it is delivered
            // (the test's thread, a dispatch worker, blocks it: unblock it
            // so that add_signal_handler is the one blocking it)
            let blockedBefore = ts_signal_blocked(SIGWINCH)
            #expect(ts_signal_count_start(SIGWINCH) == 0)
            #expect(ts_unblock_signal(SIGWINCH) == 0)
            defer { if blockedBefore { ts_block_signal(SIGWINCH) } }
            let h = handler(l)
            expectOK(ca_loop_add_signal_handler(l.loop, SIGWINCH, ts_job_count_run, h, ts_job_release))
            #expect(ts_raise(SIGWINCH) == 0)
            var removed = false
            expectOK(ca_loop_remove_signal_handler(l.loop, SIGWINCH, &removed))
            #expect(removed)
            #expect(!ts_signal_blocked(SIGWINCH), "unblocked again, as add found it")
            #expect(ts_signal_count_stop(SIGWINCH) == 0, "the pending signal was not delivered on unblocking")
            #expect(h.pointee.runs == 0)
        }
    }

    @Test("add_signal_handler refuses a NULL callback with TypeError and releases the argument")
    func nullCallback() throws {
        try withIOLoop(.epoll) { l in
            let h = handler(l)
            let err = take(ca_loop_add_signal_handler(l.loop, SIGUSR1, nil, h, ts_job_release))
            #expect(err?.type == "TypeError")
            #expect(h.pointee.releases == 1)
        }
    }

    @Test("invalid signals raise ValueError; SIGKILL and SIGSTOP cannot be caught")
    func invalidSignals() throws {
        try withIOLoop(.epoll) { l in
            let h = handler(l)
            for sig: Int32 in [0, -1, 65, 1000] {
                let err = take(ca_loop_add_signal_handler(l.loop, sig, ts_job_count_run, h, ts_job_release))
                #expect(err?.description == "ValueError: sig \(sig) out of range(1, 65)")
                var removed = false
                #expect(take(ca_loop_remove_signal_handler(l.loop, sig, &removed))?.type == "ValueError")
            }
            for sig in [SIGKILL, SIGSTOP] {
                let err = take(ca_loop_add_signal_handler(l.loop, sig, ts_job_count_run, h, ts_job_release))
                #expect(err?.description == "RuntimeError: sig \(sig) cannot be caught")
            }
            #expect(h.pointee.releases == 6, "the argument is released on every error")
        }
    }

    @Test("closing the loop releases the handlers and restores their signals' mask")
    func closeReleases() throws {
        let l = try IOLoop(.epoll)
        let h = handler(l)
        let blockedBefore = ts_signal_blocked(SIGUSR2)
        expectOK(ca_loop_add_signal_handler(l.loop, SIGUSR2, ts_job_count_run, h, ts_job_release))
        expectOK(ca_loop_close(l.loop))
        #expect(h.pointee.releases == 1)
        #expect(ts_signal_blocked(SIGUSR2) == blockedBefore)
        l.finish()
    }
}
