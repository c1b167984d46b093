// Lock, Event, Condition, Semaphore, BoundedSemaphore and Barrier: FIFO
// wake-ups, no barging, cancelled waiters passing wake-ups on, misuse errors,
// reprs and allocation-free steady state (notes §7 items 65–68; ported from
// CPython's Lib/test/test_asyncio/test_locks.py). Tasks run ts_sync scripts
// (ts_sync.h); one `t.runOnce()` plays the part of the main task's
// `await asyncio.sleep(0)`.

import CAsyncio
import CAsyncioTestSupport
import Testing

@Suite("Sync primitives")
struct SyncTests {

    // MARK: - Lock (item 65)

    @Test("Lock.release() on an unlocked lock raises RuntimeError 'Lock is not acquired.'")
    func lockReleaseUnlockedRaises() throws {
        let lock = ca_lock_new()!
        defer { decref(lock) }
        let err = take(ca_lock_release(lock))
        #expect(err?.type == "RuntimeError")
        #expect(err?.message == "Lock is not acquired.")
        #expect(!ca_lock_locked(lock))
    }

    @Test("acquiring a free lock returns True without suspending and without a loop")
    func lockFreeAcquireDoesNotSuspend() throws {
        let lock = ca_lock_new()!
        defer { decref(lock) }
        #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
        #expect(ca_lock_locked(lock))
        #expect(lock.pointee.loop == nil, "the fast path never binds a loop")
        expectOK(ca_lock_release(lock))
        #expect(!ca_lock_locked(lock))
    }

    @Test("a task acquiring a free lock finishes its script in the iteration it started")
    func lockFreeAcquireCostsNoIteration() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            let log = SyncLog(t)
            let task = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 1),
                                          sop(TS_SYNC_LOCK_RELEASE, rawPtr(lock), tag: 2),
                                          sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 3)])
            defer { decref(task) }
            t.runOnce()
            #expect(ca_future_done(fut(task)))
            #expect(log.tags == [1, 2, 3])
            #expect(Set(log.entries.map(\.iteration)).count == 1)
            #expect(ca_lock_locked(lock))
        }
    }

    @Test("blocked acquirers get the lock in FIFO order, one release each")
    func lockWaitersAcquireInFifoOrder() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            let log = SyncLog(t)
            #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
            let t1 = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 1)])
            let t2 = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 2)])
            defer { decref(t1); decref(t2) }
            t.runOnce()
            #expect(log.tags == [])
            #expect(lock.pointee.waiters.len == 2)

            expectOK(ca_lock_release(lock))
            t.runOnce()
            #expect(log.tags == [1])
            t.runOnce()
            #expect(log.tags == [1])

            let t3 = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 3)])
            defer { decref(t3) }
            expectOK(ca_lock_release(lock))
            t.runOnce()
            #expect(log.tags == [1, 2])
            expectOK(ca_lock_release(lock))
            t.runOnce()
            #expect(log.tags == [1, 2, 3])
            for task in [t1, t2, t3] { #expect(outcome(task) == .int(1)) }
        }
    }

    @Test("a new acquirer does not barge past a waiter that was woken but has not run")
    func lockNoBargingPastWokenWaiter() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            let log = SyncLog(t)
            #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
            let first = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 1),
                                           sop(TS_SYNC_LOCK_RELEASE, rawPtr(lock), tag: 2)])
            defer { decref(first) }
            t.runOnce()
            expectOK(ca_lock_release(lock))
            #expect(!ca_lock_locked(lock))
            // The lock is free but promised to `first`: a newcomer must queue.
            let late = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 3),
                                          sop(TS_SYNC_LOCK_RELEASE, rawPtr(lock), tag: 4)])
            defer { decref(late) }
            t.run(iterations: 3)
            #expect(log.tags == [1, 2, 3, 4])
            #expect(!ca_lock_locked(lock))
        }
    }

    @Test("a waiter cancelled after being woken never holds the lock and passes the wake-up on")
    func lockWokenWaiterCancelledPassesLockOn() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            let log = SyncLog(t)
            #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
            let a = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 1)])
            let b = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 2),
                                       sop(TS_SYNC_LOCK_RELEASE, rawPtr(lock), tag: 3)])
            defer { decref(a); decref(b) }
            t.runOnce()
            expectOK(ca_lock_release(lock))
            #expect(ca_task_cancel(a, nil))
            t.run(iterations: 3)
            #expect(ca_future_cancelled(fut(a)))
            #expect(log.entries.map(\.tag) == [1, 2, 3])
            #expect(log.entry(tag: 1)?.error == "CancelledError")
            #expect(outcome(b) == .none)
            #expect(!ca_lock_locked(lock))
            #expect(lock.pointee.waiters.len == 0)
        }
    }

    @Test("cancelling a queued acquirer removes its waiter")
    func lockCancelledAcquireLeavesNoWaiter() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
            let task = try t.task(ca_lock_acquire(lock))
            defer { decref(task) }
            t.runOnce()
            #expect(lock.pointee.waiters.len == 1)
            #expect(ca_task_cancel(task, nil))
            t.runOnce()
            #expect(ca_future_cancelled(fut(task)))
            #expect(lock.pointee.waiters.len == 0)
            #expect(ca_lock_locked(lock))
        }
    }

    @Test("release() skips a cancelled head waiter; its cancellation wakes the next one")
    func lockCancelRaceSkipsCancelledHead() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            let log = SyncLog(t)
            #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
            let b = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 1),
                                       sop(TS_SYNC_LOCK_RELEASE, rawPtr(lock), tag: 2)])
            let c = try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: 3),
                                       sop(TS_SYNC_LOCK_RELEASE, rawPtr(lock), tag: 4)])
            defer { decref(b); decref(c) }
            t.runOnce()
            #expect(lock.pointee.waiters.len == 2)
            #expect(ca_task_cancel(b, nil))
            #expect(ca_future_cancelled(lock.pointee.waiters.items![Int(lock.pointee.waiters.head)]!))
            expectOK(ca_lock_release(lock))
            t.runOnce()
            #expect(!ca_lock_locked(lock))
            #expect(ca_future_cancelled(fut(b)))
            t.runOnce()
            #expect(outcome(c) == .none)
            #expect(log.tags == [1, 3, 4])
        }
    }

    @Test("cancel() and release() in one callback hand the lock to exactly one waiter")
    func lockCancelReleaseRaceTakesLockOnce() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            let log = SyncLog(t)
            #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
            let tasks = try (1...3).map { i in try t.spawnScript(log, [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), tag: Int64(i))]) }
            defer { tasks.forEach { decref($0) } }
            t.runOnce()
            #expect(ca_task_cancel(tasks[0], nil))
            expectOK(ca_lock_release(lock))
            t.run(iterations: 3)
            #expect(ca_future_cancelled(fut(tasks[0])))
            #expect(outcome(tasks[1]) == .int(1))
            #expect(!ca_future_done(fut(tasks[2])))
            #expect(log.entries.filter { $0.error.isEmpty }.map(\.tag) == [2])
            _ = ca_task_cancel(tasks[2], nil)
            t.runOnce()
            #expect(ca_future_cancelled(fut(tasks[2])))
        }
    }

    @Test("a newcomer may take the free lock when every queued waiter is cancelled")
    func lockFinishedWaiterCancelled() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
            let tb = try t.task(ca_lock_acquire(lock))
            defer { decref(tb) }
            t.runOnce()
            #expect(lock.pointee.waiters.len == 1)
            let tc = try t.task(ca_lock_acquire(lock))
            defer { decref(tc) }
            #expect(ca_task_cancel(tb, nil))
            expectOK(ca_lock_release(lock))
            t.runOnce()
            #expect(ca_lock_locked(lock))
            #expect(ca_future_cancelled(fut(tb)))
            #expect(outcome(tc) == .int(1))
        }
    }

    @Test("a lock bound to one loop refuses to wait on another")
    func lockBoundToOtherLoopRaises() throws {
        let lock = ca_lock_new()!
        defer { decref(lock) }
        #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
        try withLoop { t in
            let task = try t.task(ca_lock_acquire(lock))
            defer { decref(task) }
            t.runOnce()
            _ = ca_task_cancel(task, nil)
            t.runOnce()
            #expect(ca_future_cancelled(fut(task)))
        }
        try withLoop { t in
            let task = try t.task(ca_lock_acquire(lock))
            defer { decref(task) }
            let err = t.runUntilComplete(task)
            #expect(err?.type == "RuntimeError")
            #expect(err?.message?.hasSuffix("is bound to a different event loop") == true)
            #expect(err?.message?.hasPrefix("<asyncio.locks.Lock object at 0x") == true)
        }
    }

    @Test("Lock repr shows locked/unlocked and the number of waiters")
    func lockRepr() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            #expect(syncRepr { ca_lock_repr(lock, $0, $1) }.hasPrefix("<asyncio.locks.Lock object at 0x"))
            #expect(syncRepr { ca_lock_repr(lock, $0, $1) }.hasSuffix(" [unlocked]>"))
            #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
            #expect(syncRepr { ca_lock_repr(lock, $0, $1) }.hasSuffix(" [locked]>"))
            let task = try t.task(ca_lock_acquire(lock))
            defer { decref(task) }
            t.runOnce()
            #expect(syncRepr { ca_lock_repr(lock, $0, $1) }.hasSuffix(" [locked, waiters:1]>"))
            _ = ca_task_cancel(task, nil)
            t.runOnce()
        }
    }

    // MARK: - Event (item 66)

    @Test("Event.wait() on a set event returns True without suspending")
    func eventWaitOnSetReturnsAtOnce() throws {
        let ev = ca_event_new()!
        defer { decref(ev) }
        #expect(!ca_event_is_set(ev))
        expectOK(ca_event_set(ev))
        #expect(ca_event_is_set(ev))
        #expect(runWithoutSuspending(ca_event_wait(ev)) == .int(1))
    }

    @Test("Event.set() wakes every waiter; a task started after set() does not wait")
    func eventSetWakesAllWaiters() throws {
        try withLoop { t in
            let ev = ca_event_new()!
            defer { decref(ev) }
            let log = SyncLog(t)
            let t1 = try t.spawnScript(log, [sop(TS_SYNC_EVENT_WAIT, rawPtr(ev), tag: 1)])
            let t2 = try t.spawnScript(log, [sop(TS_SYNC_EVENT_WAIT, rawPtr(ev), tag: 2)])
            defer { decref(t1); decref(t2) }
            t.runOnce()
            #expect(log.tags == [])
            let t3 = try t.spawnScript(log, [sop(TS_SYNC_EVENT_WAIT, rawPtr(ev), tag: 3)])
            defer { decref(t3) }
            expectOK(ca_event_set(ev))
            t.runOnce()
            #expect(log.tags == [3, 1, 2])
            for task in [t1, t2, t3] { #expect(outcome(task) == .int(1)) }
            #expect(ev.pointee.waiters.len == 0)
        }
    }

    @Test("Event.clear() resets the flag; waiters woken before the clear still return")
    func eventClearAfterSetStillWakesWaiters() throws {
        try withLoop { t in
            let ev = ca_event_new()!
            defer { decref(ev) }
            let log = SyncLog(t)
            let task = try t.spawnScript(log, [sop(TS_SYNC_EVENT_WAIT, rawPtr(ev), tag: 1)])
            defer { decref(task) }
            t.runOnce()
            expectOK(ca_event_set(ev))
            ca_event_clear(ev)
            #expect(!ca_event_is_set(ev))
            expectOK(ca_event_set(ev))
            expectOK(ca_event_set(ev))
            #expect(ev.pointee.waiters.len == 1)
            t.runOnce()
            #expect(log.tags == [1])
            #expect(ev.pointee.waiters.len == 0)
            #expect(outcome(task) == .int(1))
        }
    }

    @Test("a cancelled Event.wait() leaves no waiter behind")
    func eventWaitCancelLeavesNoWaiter() throws {
        try withLoop { t in
            let ev = ca_event_new()!
            defer { decref(ev) }
            let task = try t.task(ca_event_wait(ev))
            defer { decref(task) }
            t.runOnce()
            #expect(ev.pointee.waiters.len == 1)
            _ = ca_task_cancel(task, nil)
            #expect(t.runUntilComplete(task)?.type == "CancelledError")
            #expect(ev.pointee.waiters.len == 0)
        }
    }

    @Test("Event repr shows set/unset and the number of waiters")
    func eventRepr() throws {
        try withLoop { t in
            let ev = ca_event_new()!
            defer { decref(ev) }
            #expect(syncRepr { ca_event_repr(ev, $0, $1) }.hasPrefix("<asyncio.locks.Event object at 0x"))
            #expect(syncRepr { ca_event_repr(ev, $0, $1) }.hasSuffix(" [unset]>"))
            let task = try t.task(ca_event_wait(ev))
            defer { decref(task) }
            t.runOnce()
            #expect(syncRepr { ca_event_repr(ev, $0, $1) }.hasSuffix(" [unset, waiters:1]>"))
            expectOK(ca_event_set(ev))
            #expect(syncRepr { ca_event_repr(ev, $0, $1) }.hasSuffix(" [set, waiters:1]>"))
            t.runOnce()
            #expect(syncRepr { ca_event_repr(ev, $0, $1) }.hasSuffix(" [set]>"))
        }
    }

    // MARK: - Condition (item 67)

    @Test("Condition.wait() without the lock raises RuntimeError 'cannot wait on un-acquired lock'")
    func conditionWaitWithoutLockRaises() throws {
        let cond = ca_condition_new(nil)!
        defer { decref(cond) }
        #expect(runWithoutSuspending(ca_condition_wait(cond)) == .error("RuntimeError", "cannot wait on un-acquired lock"))
    }

    @Test("notify() and notify_all() without the lock raise RuntimeError 'cannot notify on un-acquired lock'")
    func conditionNotifyWithoutLockRaises() throws {
        let cond = ca_condition_new(nil)!
        defer { decref(cond) }
        for err in [take(ca_condition_notify(cond, 1)), take(ca_condition_notify_all(cond))] {
            #expect(err?.type == "RuntimeError")
            #expect(err?.message == "cannot notify on un-acquired lock")
        }
    }

    @Test("notify(n) wakes waiters in FIFO order; each returns only once it holds the lock again")
    func conditionNotifyWakesInFifoOrder() throws {
        try withLoop { t in
            let cond = ca_condition_new(nil)!
            defer { decref(cond) }
            let log = SyncLog(t)
            let tasks = try (1...3).map { i in
                try t.spawnScript(log, [sop(TS_SYNC_COND_ACQUIRE, rawPtr(cond), flags: TS_SYNC_QUIET),
                                   sop(TS_SYNC_COND_WAIT, rawPtr(cond), tag: Int64(i))])
            }
            defer { tasks.forEach { decref($0) } }
            t.runOnce()
            #expect(log.tags == [])
            #expect(!ca_condition_locked(cond))

            #expect(runWithoutSuspending(ca_condition_acquire(cond)) == .int(1))
            expectOK(ca_condition_notify(cond, 1))
            t.runOnce()
            #expect(log.tags == [])
            #expect(ca_condition_locked(cond))

            expectOK(ca_condition_release(cond))
            t.runOnce()
            #expect(log.tags == [1])
            #expect(ca_condition_locked(cond))

            expectOK(ca_condition_notify(cond, 2))
            t.runOnce()
            #expect(log.tags == [1])

            expectOK(ca_condition_release(cond))
            t.runOnce()
            #expect(log.tags == [1, 2])
            expectOK(ca_condition_release(cond))
            t.runOnce()
            #expect(log.tags == [1, 2, 3])
            #expect(ca_condition_locked(cond))
            for task in tasks { #expect(outcome(task) == .int(1)) }
        }
    }

    @Test("notify_all() wakes every waiter")
    func conditionNotifyAllWakesEveryone() throws {
        try withLoop { t in
            let cond = ca_condition_new(nil)!
            defer { decref(cond) }
            let log = SyncLog(t)
            let tasks = try (1...2).map { i in
                try t.spawnScript(log, [sop(TS_SYNC_COND_ACQUIRE, rawPtr(cond), flags: TS_SYNC_QUIET),
                                   sop(TS_SYNC_COND_WAIT, rawPtr(cond), tag: Int64(i)),
                                   sop(TS_SYNC_COND_RELEASE, rawPtr(cond), flags: TS_SYNC_QUIET)])
            }
            defer { tasks.forEach { decref($0) } }
            t.runOnce()
            #expect(runWithoutSuspending(ca_condition_acquire(cond)) == .int(1))
            expectOK(ca_condition_notify_all(cond))
            expectOK(ca_condition_release(cond))
            t.run(iterations: 3)
            #expect(log.tags == [1, 2])
            #expect(!ca_condition_locked(cond))
        }
    }

    @Test("a cancelled Condition.wait() re-acquires the lock before CancelledError propagates")
    func conditionWaitCancelledReacquiresLock() throws {
        try withLoop { t in
            let cond = ca_condition_new(nil)!
            defer { decref(cond) }
            #expect(runWithoutSuspending(ca_condition_acquire(cond)) == .int(1))
            let task = try t.task(ca_condition_wait(cond))
            defer { decref(task) }
            t.runOnce()
            #expect(!ca_condition_locked(cond))
            #expect(cond.pointee.waiters.len == 1)
            _ = ca_task_cancel(task, nil)
            #expect(t.runUntilComplete(task)?.type == "CancelledError")
            #expect(cond.pointee.waiters.len == 0)
            #expect(ca_condition_locked(cond))
        }
    }

    @Test("a cancel arriving while wait() re-acquires is held back, then the latest CancelledError is raised")
    func conditionWaitCancelledAgainWhileReacquiring() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            let cond = ca_condition_new(lock)!
            defer { decref(cond); decref(lock) }
            let log = SyncLog(t)
            let w = try t.spawnScript(log, [sop(TS_SYNC_COND_ACQUIRE, rawPtr(cond), tag: 1),
                                       sop(TS_SYNC_COND_WAIT, rawPtr(cond), tag: 2, flags: TS_SYNC_CATCH),
                                       sop(TS_SYNC_COND_RELEASE, rawPtr(cond), tag: 3)])
            defer { decref(w) }
            t.runOnce()
            #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
            #expect(ca_task_cancel(w, "first"))
            t.run(iterations: 2)
            #expect(!ca_future_done(fut(w)), "waits for the lock after the first cancel")
            #expect(ca_task_cancel(w, "second"))
            t.run(iterations: 2)
            #expect(!ca_future_done(fut(w)), "the second cancel is held back too")
            expectOK(ca_lock_release(lock))
            t.run(iterations: 2)
            #expect(outcome(w) == .none)
            let wait = log.entry(tag: 2)
            #expect(wait?.error == "CancelledError")
            #expect(wait?.message == "second")
            #expect(wait?.cancelling == 2)
            #expect(log.tags == [1, 2, 3])
            #expect(!ca_lock_locked(lock))
        }
    }

    @Test("a notified waiter that is cancelled before it resumes passes the notification on")
    func conditionNotifiedWaiterCancelledPassesNotificationOn() throws {
        try withLoop { t in
            let cond = ca_condition_new(nil)!
            defer { decref(cond) }
            let log = SyncLog(t)
            let w1 = try t.spawnScript(log, [sop(TS_SYNC_COND_ACQUIRE, rawPtr(cond), flags: TS_SYNC_QUIET),
                                        sop(TS_SYNC_COND_WAIT, rawPtr(cond), tag: 1, flags: TS_SYNC_CATCH),
                                        sop(TS_SYNC_COND_RELEASE, rawPtr(cond), flags: TS_SYNC_QUIET)])
            let w2 = try t.spawnScript(log, [sop(TS_SYNC_COND_ACQUIRE, rawPtr(cond), flags: TS_SYNC_QUIET),
                                        sop(TS_SYNC_COND_WAIT, rawPtr(cond), tag: 2),
                                        sop(TS_SYNC_COND_RELEASE, rawPtr(cond), tag: 3)])
            defer { decref(w1); decref(w2) }
            t.runOnce()
            #expect(runWithoutSuspending(ca_condition_acquire(cond)) == .int(1))
            expectOK(ca_condition_notify(cond, 1))
            #expect(ca_task_cancel(w1, nil))
            expectOK(ca_condition_release(cond))
            t.run(iterations: 4)
            #expect(log.entry(tag: 1)?.error == "CancelledError")
            #expect(log.entry(tag: 2)?.error == "")
            #expect(log.tags == [1, 2, 3])
            #expect(outcome(w2) == .none)
            #expect(!ca_condition_locked(cond))
        }
    }

    @Test("wait_for() waits until the predicate holds, re-checking after each notify")
    func conditionWaitForPredicate() throws {
        try withLoop { t in
            let cond = ca_condition_new(nil)!
            defer { decref(cond) }
            let flag = t.buffer(Int64.self)
            let log = SyncLog(t)
            let task = try t.spawnScript(log, [sop(TS_SYNC_COND_ACQUIRE, rawPtr(cond), flags: TS_SYNC_QUIET),
                                          sop(TS_SYNC_COND_WAIT_FOR, rawPtr(cond), tag: 1, aux: rawPtr(flag)),
                                          sop(TS_SYNC_COND_RELEASE, rawPtr(cond), flags: TS_SYNC_QUIET)])
            defer { decref(task) }
            t.runOnce()
            for value: Int64 in [0, 1] {
                flag.pointee = value
                #expect(runWithoutSuspending(ca_condition_acquire(cond)) == .int(1))
                expectOK(ca_condition_notify(cond, 1))
                expectOK(ca_condition_release(cond))
                t.runOnce()
                #expect(log.tags == (value == 0 ? [] : [1]))
            }
            #expect(outcome(task) == .none)
        }
    }

    @Test("wait_for() with a predicate already true needs no lock; a false one does")
    func conditionWaitForTruePredicateNeedsNoLock() throws {
        let cond = ca_condition_new(nil)!
        defer { decref(cond) }
        let flag = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        defer { flag.deallocate() }
        flag.pointee = 1
        #expect(runWithoutSuspending(ca_condition_wait_for(cond, ts_sync_flag_set, flag)) == .int(1))
        flag.pointee = 0
        #expect(runWithoutSuspending(ca_condition_wait_for(cond, ts_sync_flag_set, flag))
                == .error("RuntimeError", "cannot wait on un-acquired lock"))
    }

    @Test("a Condition built on an explicit lock shares its state")
    func conditionExplicitLockIsShared() throws {
        let lock = ca_lock_new()!
        let cond = ca_condition_new(lock)!
        defer { decref(cond); decref(lock) }
        #expect(cond.pointee.lock == lock)
        #expect(runWithoutSuspending(ca_condition_acquire(cond)) == .int(1))
        #expect(ca_lock_locked(lock))
        expectOK(ca_lock_release(lock))
        #expect(!ca_condition_locked(cond))
        #expect(runWithoutSuspending(ca_lock_acquire(lock)) == .int(1))
        #expect(ca_condition_locked(cond))
        expectOK(ca_condition_release(cond))
    }

    @Test("Condition repr shows the lock state and the number of waiters")
    func conditionRepr() throws {
        try withLoop { t in
            let cond = ca_condition_new(nil)!
            defer { decref(cond) }
            #expect(syncRepr { ca_condition_repr(cond, $0, $1) }.hasPrefix("<asyncio.locks.Condition object at 0x"))
            #expect(syncRepr { ca_condition_repr(cond, $0, $1) }.hasSuffix(" [unlocked]>"))
            #expect(runWithoutSuspending(ca_condition_acquire(cond)) == .int(1))
            let task = try t.task(ca_condition_wait(cond))
            defer { decref(task) }
            t.runOnce()
            #expect(syncRepr { ca_condition_repr(cond, $0, $1) }.hasSuffix(" [unlocked, waiters:1]>"))
            #expect(runWithoutSuspending(ca_condition_acquire(cond)) == .int(1))
            #expect(syncRepr { ca_condition_repr(cond, $0, $1) }.hasSuffix(" [locked, waiters:1]>"))
            expectOK(ca_condition_notify(cond, 1))
            expectOK(ca_condition_release(cond))
            t.run(iterations: 2)
            #expect(outcome(task) == .int(1))
        }
    }

    // MARK: - Semaphore and BoundedSemaphore (item 68)

    @Test("Semaphore(-1) raises ValueError")
    func semaphoreNegativeValueRaises() throws {
        var sem: SemPtr?
        let err = take(ca_semaphore_new(-1, &sem))
        #expect(err?.type == "ValueError")
        #expect(err?.message == "Semaphore initial value must be >= 0")
        #expect(sem == nil)
    }

    @Test("BoundedSemaphore released beyond its initial value raises ValueError")
    func boundedSemaphoreOverReleaseRaises() throws {
        let sem = try makeSemaphore(1, bounded: true)
        defer { decref(sem) }
        let err = take(ca_semaphore_release(sem))
        #expect(err?.type == "ValueError")
        #expect(err?.message == "BoundedSemaphore released too many times")
        #expect(runWithoutSuspending(ca_semaphore_acquire(sem)) == .int(1))
        expectOK(ca_semaphore_release(sem))
        #expect(take(ca_semaphore_release(sem))?.type == "ValueError")
        #expect(sem.pointee.value == 1)
    }

    @Test("Semaphore(0) is locked; a plain Semaphore may be released above its initial value")
    func semaphoreZeroIsLocked() throws {
        let sem = try makeSemaphore(0)
        defer { decref(sem) }
        #expect(ca_semaphore_locked(sem))
        expectOK(ca_semaphore_release(sem))
        expectOK(ca_semaphore_release(sem))
        #expect(sem.pointee.value == 2)
        #expect(!ca_semaphore_locked(sem))
    }

    @Test("Semaphore counts down, blocks at zero and wakes one waiter per release")
    func semaphoreCountsAndBlocks() throws {
        try withLoop { t in
            let sem = try makeSemaphore(3)
            defer { decref(sem) }
            let log = SyncLog(t)
            #expect(runWithoutSuspending(ca_semaphore_acquire(sem)) == .int(1))
            #expect(runWithoutSuspending(ca_semaphore_acquire(sem)) == .int(1))
            #expect(!ca_semaphore_locked(sem))
            let tasks = try (1...3).map { i in try t.spawnScript(log, [sop(TS_SYNC_SEM_ACQUIRE, rawPtr(sem), tag: Int64(i))]) }
            defer { tasks.forEach { decref($0) } }
            t.runOnce()
            #expect(log.tags == [1])
            #expect(ca_semaphore_locked(sem))
            #expect(sem.pointee.waiters.len == 2)
            #expect(sem.pointee.value == 0)

            let t4 = try t.spawnScript(log, [sop(TS_SYNC_SEM_ACQUIRE, rawPtr(sem), tag: 4)])
            defer { decref(t4) }
            expectOK(ca_semaphore_release(sem))
            expectOK(ca_semaphore_release(sem))
            #expect(sem.pointee.value == 0)
            t.runOnce()
            #expect(sem.pointee.value == 0)
            #expect(log.tags == [1, 2, 3])
            #expect(ca_semaphore_locked(sem))
            #expect(sem.pointee.waiters.len == 1)
            expectOK(ca_semaphore_release(sem))
            t.runOnce()
            #expect(log.tags == [1, 2, 3, 4])
        }
    }

    @Test("Semaphore waiters acquire in FIFO order; a cancelled one is skipped")
    func semaphoreFifoSkipsCancelled() throws {
        try withLoop { t in
            let sem = try makeSemaphore(0)
            defer { decref(sem) }
            let log = SyncLog(t)
            let tasks = try (1...3).map { i in try t.spawnScript(log, [sop(TS_SYNC_SEM_ACQUIRE, rawPtr(sem), tag: Int64(i))]) }
            defer { tasks.forEach { decref($0) } }
            t.runOnce()
            _ = ca_task_cancel(tasks[0], nil)
            t.runOnce()
            expectOK(ca_semaphore_release(sem))
            expectOK(ca_semaphore_release(sem))
            t.run(iterations: 2)
            #expect(log.entries.filter { $0.error.isEmpty }.map(\.tag) == [2, 3])
            #expect(ca_future_cancelled(fut(tasks[0])))
        }
    }

    @Test("a Semaphore waiter cancelled after its wake-up gives the unit back to the next waiter")
    func semaphoreWokenWaiterCancelledPassesUnitOn() throws {
        try withLoop { t in
            let sem = try makeSemaphore(0)
            defer { decref(sem) }
            let t1 = try t.task(ca_semaphore_acquire(sem))
            let t2 = try t.task(ca_semaphore_acquire(sem))
            defer { decref(t1); decref(t2) }
            t.runOnce()
            expectOK(ca_semaphore_release(sem))
            #expect(sem.pointee.value == 0, "counted for the woken waiter")
            _ = ca_task_cancel(t1, nil)
            t.run(iterations: 2)
            #expect(ca_future_cancelled(fut(t1)))
            #expect(outcome(t2) == .int(1))
            #expect(sem.pointee.value == 0)
            #expect(ca_semaphore_locked(sem))
        }
    }

    @Test("Semaphore waiters cancelled before the release are skipped by it")
    func semaphoreCancelBeforeAwoken() throws {
        try withLoop { t in
            let sem = try makeSemaphore(0)
            defer { decref(sem) }
            let tasks = try (0..<4).map { _ in try t.task(ca_semaphore_acquire(sem)) }
            defer { tasks.forEach { decref($0) } }
            t.runOnce()
            _ = ca_task_cancel(tasks[0], nil)
            _ = ca_task_cancel(tasks[1], nil)
            expectOK(ca_semaphore_release(sem))
            t.run(iterations: 2)
            #expect(ca_future_done(fut(tasks[2])))
            #expect(!ca_future_done(fut(tasks[3])))
            _ = ca_task_cancel(tasks[3], nil)
            t.runOnce()
        }
    }

    @Test("Semaphore repr shows the value while unlocked and the number of waiters")
    func semaphoreRepr() throws {
        try withLoop { t in
            let sem = try makeSemaphore(1)
            defer { decref(sem) }
            #expect(syncRepr { ca_semaphore_repr(sem, $0, $1) }.hasPrefix("<asyncio.locks.Semaphore object at 0x"))
            #expect(syncRepr { ca_semaphore_repr(sem, $0, $1) }.hasSuffix(" [unlocked, value:1]>"))
            #expect(runWithoutSuspending(ca_semaphore_acquire(sem)) == .int(1))
            #expect(syncRepr { ca_semaphore_repr(sem, $0, $1) }.hasSuffix(" [locked]>"))
            let task = try t.task(ca_semaphore_acquire(sem))
            defer { decref(task) }
            t.runOnce()
            #expect(syncRepr { ca_semaphore_repr(sem, $0, $1) }.hasSuffix(" [locked, waiters:1]>"))
            _ = ca_task_cancel(task, nil)
            t.runOnce()
            let bounded = try makeSemaphore(2, bounded: true)
            defer { decref(bounded) }
            #expect(syncRepr { ca_semaphore_repr(bounded, $0, $1) }.hasPrefix("<asyncio.locks.BoundedSemaphore object at 0x"))
        }
    }

    // MARK: - Barrier (item 68)

    @Test("Barrier(parties < 1) raises ValueError")
    func barrierPartiesMustBePositive() throws {
        for parties: Int64 in [0, -4] {
            var b: BarrierPtr?
            let err = take(ca_barrier_new(parties, &b))
            #expect(err?.type == "ValueError")
            #expect(err?.message == "parties must be >= 1")
        }
    }

    @Test("Barrier.wait() returns distinct indices 0..parties-1 once all parties arrived")
    func barrierWaitReturnsDistinctIndices() throws {
        try withLoop { t in
            let b = try makeBarrier(3)
            defer { decref(b) }
            let log = SyncLog(t)
            var tasks: [TaskPtr] = []
            defer { tasks.forEach { decref($0) } }
            for i in 1...3 {
                tasks.append(try t.spawnScript(log, [sop(TS_SYNC_BARRIER_WAIT, rawPtr(b), tag: Int64(i))]))
                t.runOnce()
                if i < 3 { #expect(ca_barrier_n_waiting(b) == Int64(i)) }
            }
            t.run(iterations: 3)
            #expect(log.entries.map(\.value).sorted() == [0, 1, 2])
            #expect(log.entries.allSatisfy { $0.error.isEmpty })
            #expect(ca_barrier_n_waiting(b) == 0)
            #expect(!ca_barrier_broken(b))
        }
    }

    @Test("a Barrier of one party lets each waiter through at once with index 0")
    func barrierOfOnePassesAtOnce() throws {
        try withLoop { t in
            let b = try makeBarrier(1)
            defer { decref(b) }
            let t1 = try t.task(ca_barrier_wait(b))
            defer { decref(t1) }
            t.runOnce()
            #expect(outcome(t1) == .int(0))
            let t2 = try t.task(ca_barrier_wait(b))
            defer { decref(t2) }
            t.runOnce()
            #expect(outcome(t2) == .int(0))
            #expect(ca_barrier_n_waiting(b) == 0)
        }
    }

    @Test("a task arriving while the Barrier drains waits for the next round")
    func barrierArrivalWhileDrainingWaitsForNextRound() throws {
        try withLoop { t in
            let b = try makeBarrier(2)
            defer { decref(b) }
            let t1 = try t.task(ca_barrier_wait(b))
            defer { decref(t1) }
            t.runOnce()
            let t2 = try t.task(ca_barrier_wait(b))
            let t3 = try t.task(ca_barrier_wait(b))
            defer { decref(t2); decref(t3) }
            t.runOnce()
            #expect(b.pointee.state == UInt8(CA_BARRIER_DRAINING.rawValue))
            #expect(ca_barrier_n_waiting(b) == 0)
            t.run(iterations: 3)
            #expect(Set([outcome(t1).description, outcome(t2).description]) == ["int(0)", "int(1)"])
            #expect(!ca_future_done(fut(t3)), "t3 waits in the next round")
            #expect(ca_barrier_n_waiting(b) == 1)
            let t4 = try t.task(ca_barrier_wait(b))
            defer { decref(t4) }
            t.run(iterations: 3)
            #expect(Set([outcome(t3).description, outcome(t4).description]) == ["int(0)", "int(1)"])
        }
    }

    @Test("Barrier.abort() raises BrokenBarrierError in waiting and later tasks")
    func barrierAbortBreaksWaiters() throws {
        try withLoop { t in
            let b = try makeBarrier(3)
            defer { decref(b) }
            let log = SyncLog(t)
            let waiters = try (1...2).map { i in
                try t.spawnScript(log, [sop(TS_SYNC_BARRIER_WAIT, rawPtr(b), tag: Int64(i), flags: TS_SYNC_CATCH)])
            }
            defer { waiters.forEach { decref($0) } }
            t.runOnce()
            let aborter = try t.task(ca_barrier_abort(b))
            defer { decref(aborter) }
            t.run(iterations: 3)
            #expect(ca_barrier_broken(b))
            #expect(log.entries.map(\.error) == ["BrokenBarrierError", "BrokenBarrierError"])
            #expect(log.entry(tag: 1)?.message == "Abort or reset of barrier")
            #expect(runWithoutSuspending(ca_barrier_wait(b)) == .error("BrokenBarrierError", "Barrier aborted"))
            #expect(ca_barrier_n_waiting(b) == 0)
            #expect(syncRepr { ca_barrier_repr(b, $0, $1) }.hasSuffix(" [broken]>"))
        }
    }

    @Test("Barrier.reset() raises BrokenBarrierError in waiting tasks and refills the barrier")
    func barrierResetBreaksWaitersAndRefills() throws {
        try withLoop { t in
            let b = try makeBarrier(3)
            defer { decref(b) }
            let log = SyncLog(t)
            let waiters = try (1...2).map { i in
                try t.spawnScript(log, [sop(TS_SYNC_BARRIER_WAIT, rawPtr(b), tag: Int64(i), flags: TS_SYNC_CATCH)])
            }
            defer { waiters.forEach { decref($0) } }
            t.runOnce()
            let resetter = try t.task(ca_barrier_reset(b))
            defer { decref(resetter) }
            t.runOnce()
            #expect(syncRepr { ca_barrier_repr(b, $0, $1) }.contains("[resetting"))
            t.run(iterations: 3)
            #expect(log.entries.map(\.error) == ["BrokenBarrierError", "BrokenBarrierError"])
            #expect(!ca_barrier_broken(b))
            #expect(ca_barrier_n_waiting(b) == 0)
            #expect(syncRepr { ca_barrier_repr(b, $0, $1) }.hasSuffix(" [filling, waiters:0/3]>"))
            // The barrier works again.
            let again = try (0..<3).map { _ in try t.task(ca_barrier_wait(b)) }
            defer { again.forEach { decref($0) } }
            t.run(iterations: 3)
            #expect(again.map { outcome($0).description }.sorted() == ["int(0)", "int(1)", "int(2)"])
        }
    }

    @Test("a cancelled Barrier waiter leaves and the barrier still trips for the others")
    func barrierCancelledWaiterLeaves() throws {
        try withLoop { t in
            let b = try makeBarrier(3)
            defer { decref(b) }
            let t1 = try t.task(ca_barrier_wait(b))
            defer { decref(t1) }
            t.runOnce()
            let t2 = try t.task(ca_barrier_wait(b))
            defer { decref(t2) }
            t.runOnce()
            #expect(ca_barrier_n_waiting(b) == 2)
            _ = ca_task_cancel(t1, nil)
            t.runOnce()
            #expect(ca_barrier_n_waiting(b) == 1)
            #expect(ca_future_cancelled(fut(t1)))
            let t3 = try t.task(ca_barrier_wait(b))
            let t4 = try t.task(ca_barrier_wait(b))
            defer { decref(t3); decref(t4) }
            t.run(iterations: 4)
            #expect([t2, t3, t4].allSatisfy { ca_future_done(fut($0)) && !ca_future_cancelled(fut($0)) })
            #expect(ca_barrier_n_waiting(b) == 0)
            #expect(!ca_barrier_broken(b))
        }
    }

    @Test("Barrier repr shows filling, draining and the waiter count")
    func barrierRepr() throws {
        try withLoop { t in
            let b = try makeBarrier(3)
            defer { decref(b) }
            #expect(syncRepr { ca_barrier_repr(b, $0, $1) }.hasPrefix("<asyncio.locks.Barrier object at 0x"))
            #expect(syncRepr { ca_barrier_repr(b, $0, $1) }.hasSuffix(" [filling, waiters:0/3]>"))
            let tasks = try (0..<2).map { _ in try t.task(ca_barrier_wait(b)) }
            defer { tasks.forEach { decref($0) } }
            t.runOnce()
            #expect(syncRepr { ca_barrier_repr(b, $0, $1) }.hasSuffix(" [filling, waiters:2/3]>"))
            let last = try t.task(ca_barrier_wait(b))
            defer { decref(last) }
            t.runOnce()
            #expect(syncRepr { ca_barrier_repr(b, $0, $1) }.hasSuffix(" [draining, waiters:0/3]>"))
            t.run(iterations: 3)
            #expect(syncRepr { ca_barrier_repr(b, $0, $1) }.hasSuffix(" [filling, waiters:0/3]>"))
        }
    }

    // MARK: - Allocations

    @Test("uncontended Lock acquire/release allocates nothing in steady state")
    func lockUncontendedAllocatesNothing() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            let log = SyncLog(t)
            let body = [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), flags: TS_SYNC_QUIET),
                        sop(TS_SYNC_LOCK_RELEASE, rawPtr(lock), flags: TS_SYNC_QUIET)]
            let task = try t.spawnScript(log, syncMeasured(body, warm: 1_000, n: 10_000))
            defer { decref(task) }
            #expect(t.runUntilComplete(task) == nil)
            #expect(log.allocationDelta == 0)
        }
    }

    @Test("Lock handed back and forth between two tasks allocates nothing in steady state")
    func lockContendedAllocatesNothing() throws {
        try withLoop { t in
            let lock = ca_lock_new()!
            defer { decref(lock) }
            let log = SyncLog(t)
            let body = [sop(TS_SYNC_LOCK_ACQUIRE, rawPtr(lock), flags: TS_SYNC_QUIET),
                        sop(TS_SYNC_SLEEP, flags: TS_SYNC_QUIET),
                        sop(TS_SYNC_LOCK_RELEASE, rawPtr(lock), flags: TS_SYNC_QUIET)]
            let a = try t.spawnScript(log, syncMeasured(body, warm: 1_000, n: 10_000))
            let b = try t.spawnScript(log, [sop(TS_SYNC_REPEAT, arg: 11_002, tag: Int64(body.count))] + body)
            defer { decref(a); decref(b) }
            #expect(t.runUntilComplete(a) == nil)
            #expect(t.runUntilComplete(b) == nil)
            #expect(lock.pointee.waiters.cap > 0, "the tasks did queue behind each other")
            #expect(log.allocationDelta == 0)
        }
    }
}

// MARK: - Helpers shared with QueueTests

typealias LockPtr = UnsafeMutablePointer<ca_lock>
typealias EventPtr = UnsafeMutablePointer<ca_event>
typealias CondPtr = UnsafeMutablePointer<ca_condition>
typealias SemPtr = UnsafeMutablePointer<ca_semaphore>
typealias BarrierPtr = UnsafeMutablePointer<ca_barrier>
typealias QueuePtr = UnsafeMutablePointer<ca_queue>

func rawPtr<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(p) }

/// One op of a ts_sync script.
func sop(_ kind: ts_sync_kind, _ target: UnsafeMutableRawPointer? = nil, arg: Int64 = 0, tag: Int64 = 0,
         flags: Int32 = 0, aux: UnsafeMutableRawPointer? = nil) -> ts_sync_op {
    var o = ts_sync_op()
    o.kind = Int32(kind.rawValue)
    o.flags = flags
    o.target = target
    o.aux = aux
    o.arg = arg
    o.tag = tag
    return o
}

/// `body` repeated `warm` times, an allocation reading (tag -1), `body`
/// repeated `n` times, a second reading (tag -2).
func syncMeasured(_ body: [ts_sync_op], warm: Int64, n: Int64) -> [ts_sync_op] {
    let span = Int64(body.count)
    return [sop(TS_SYNC_REPEAT, arg: warm, tag: span)] + body + [sop(TS_SYNC_ALLOCS, tag: -1)]
        + [sop(TS_SYNC_REPEAT, arg: n, tag: span)] + body + [sop(TS_SYNC_ALLOCS, tag: -2)]
}

/// One logged op.
struct SyncEntry: CustomStringConvertible {
    var tag: Int64
    var value: Int64
    var error: String
    var message: String
    var iteration: UInt64
    var time: Int64
    var cancelling: Int32
    var description: String { error.isEmpty ? "\(tag)=\(value)" : "\(tag)!\(error)(\(message))" }
}

/// The log the scripts of one test append to (lives until the loop is finished).
final class SyncLog {
    let ptr: UnsafeMutablePointer<ts_sync_log>

    init(_ t: TestLoop) {
        ptr = t.buffer(ts_sync_log.self)
        ptr.pointee.loop = t.loop
    }

    var entries: [SyncEntry] {
        (0..<ptr.pointee.len).map { i in
            SyncEntry(tag: ts_sync_log_tag(ptr, i), value: ts_sync_log_value(ptr, i),
                      error: String(cString: ts_sync_log_error(ptr, i)),
                      message: String(cString: ts_sync_log_message(ptr, i)),
                      iteration: ts_sync_log_iteration(ptr, i), time: ts_sync_log_time(ptr, i),
                      cancelling: ts_sync_log_cancelling(ptr, i))
        }
    }

    var tags: [Int64] { entries.map(\.tag) }
    var values: [Int64] { entries.map(\.value) }
    func entry(tag: Int64) -> SyncEntry? { entries.first { $0.tag == tag } }

    /// Allocations between the readings of `measured`.
    var allocationDelta: Int64? {
        guard let a = entry(tag: -1), let b = entry(tag: -2) else { return nil }
        return b.value - a.value
    }
}

extension TestLoop {
    /// A task running the ops (owned).
    func spawnScript(_ log: SyncLog, _ ops: [ts_sync_op], name: String? = nil,
                sourceLocation: SourceLocation = #_sourceLocation) throws -> TaskPtr {
        let coro = ops.withUnsafeBufferPointer { ts_sync_script($0.baseAddress, $0.count, log.ptr) }
        return try task(coro, name: name, sourceLocation: sourceLocation)
    }
}

/// Drives a coroutine that must finish without suspending (a fast path, or
/// an error raised before any wait) and returns its outcome.
func runWithoutSuspending(_ coro: CoroPtr?, sourceLocation: SourceLocation = #_sourceLocation) -> Outcome {
    guard let coro else {
        Issue.record("coroutine constructor returned NULL", sourceLocation: sourceLocation)
        return .other
    }
    defer { decref(coro) }
    var res = ca_coro_result()
    let st = ca_coro_send(coro, ca_none(), &res)
    if st == CA_CORO_RETURN {
        defer { ca_value_clear(&res.value) }
        switch res.value.kind {
        case CA_VALUE_INT: return .int(res.value.u.i)
        case CA_VALUE_NONE: return .none
        default: return .other
        }
    }
    if st == CA_CORO_RAISE, let info = take(res.error) { return .error(info.type, info.message) }
    Issue.record("the coroutine suspended", sourceLocation: sourceLocation)
    if let f = res.future {
        ca_future_set_blocking(f, false)
        decref(f)
    }
    ca_coro_close(coro)
    return .other
}

func makeSemaphore(_ value: Int64, bounded: Bool = false) throws -> SemPtr {
    var out: SemPtr?
    let err = bounded ? ca_bounded_semaphore_new(value, &out) : ca_semaphore_new(value, &out)
    if let info = take(err) { throw TestFailure("Semaphore(\(value)): \(info)") }
    return try #require(out)
}

func makeBarrier(_ parties: Int64) throws -> BarrierPtr {
    var out: BarrierPtr?
    if let info = take(ca_barrier_new(parties, &out)) { throw TestFailure("Barrier(\(parties)): \(info)") }
    return try #require(out)
}

/// A repr written by `fill(buf, size)` as a Swift string.
func syncRepr(_ fill: (UnsafeMutablePointer<CChar>, Int) -> Int) -> String {
    var buf = [CChar](repeating: 0, count: 512)
    _ = buf.withUnsafeMutableBufferPointer { fill($0.baseAddress!, $0.count) }
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
