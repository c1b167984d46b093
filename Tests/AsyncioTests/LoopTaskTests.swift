// LoopTask: Swift bodies as real C tasks — names, current task, eager start,
// cancellation in both directions, errors across the boundary.

@testable import Asyncio
import CAsyncio
import CAsyncioShim
import CAsyncioTestSupport
import Testing

@Suite("LoopTask")
struct LoopTaskTests {
    @Test("a task runs its body and its value is the result")
    func result() async throws {
        let v = try await runLoop {
            let t = try createTask { () async throws -> String in
                try await sleep(1)
                return "ok"
            }
            return try await t.value
        }
        #expect(v == "ok")
    }

    @Test("the body is the C task's coroutine: current task, all tasks, names, repr")
    func identity() async throws {
        try await runLoop {
            let seen = Shared<AnyLoopTask?>(nil)
            let t = try createTask(name: "worker") { () async throws -> Int in
                seen.value = currentTask()
                try await sleep(0)
                return 1
            }
            #expect(t.name == "worker")
            #expect(allTasks().contains(t.erased))
            #expect(t.description.hasPrefix("<Task pending name='worker' coro=<"))
            _ = try await t.value
            #expect(seen.value == t.erased)
            #expect(ca_coro_check(ca_task_get_coro(t.unsafeRawTask)) && cas_coro_check(ca_task_get_coro(t.unsafeRawTask)))
            t.setName("renamed")
            #expect(t.name == "renamed")
            let auto = try createTask { 0 }
            #expect(auto.name.hasPrefix("Task-"))
            _ = try await auto.value
            #expect(currentTask() != nil)
            #expect(currentTask()!.name == allTasks().first { $0 == currentTask()! }!.name)
        }
    }

    @Test("no current task in a loop callback")
    func noCurrentTaskInCallback() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Bool.self)
            try loop.callSoon { try? f.setResult(currentTask() == nil) }
            #expect(try await f.value)
        }
    }

    @Test("the C task waits for what the body awaits (fut_waiter, awaited_by)")
    func futWaiter() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Int.self)
            let t = try createTask { try await f.value }
            try await sleep(0)
            #expect(ca_task_fut_waiter(t.unsafeRawTask) == f.unsafeRaw)
            var waiters = [UnsafeMutablePointer<ca_future>?](repeating: nil, count: 2)
            #expect(ca_future_get_awaited_by(f.unsafeRaw, &waiters, 2) == 1)
            #expect(waiters[0] == t.unsafeRaw)
            #expect(t.description.contains("wait_for=<Future pending"))
            try f.setResult(5)
            #expect(try await t.value == 5)
        }
    }

    @Test("eager start runs the body up to its first await inside createTask")
    func eager() async throws {
        let log = Log()
        try await runLoop {
            let t = try createTask(eagerStart: true) {
                log.append("body starts")
                try await sleep(0)
                log.append("body resumes")
            }
            log.append("created")
            let lazy = try createTask(eagerStart: false) { log.append("lazy body") }
            log.append("created lazy")
            try await t.value
            try await lazy.value
        }
        #expect(log.value == ["body starts", "created", "created lazy", "body resumes", "lazy body"])
    }

    @Test("an eager body that never awaits is done when createTask returns")
    func eagerDone() async throws {
        try await runLoop {
            let t = try createTask(eagerStart: true) { 9 }
            #expect(t.isDone)
            #expect(try t.result() == 9)
        }
    }

    // MARK: Cancellation: C cancels a Swift body

    @Test("cancel() while the body awaits a future: CancelledError at the await, the task ends cancelled")
    func cancelWhileAwaiting() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Int.self)
            let t = try createTask { try await f.value }
            try await sleep(0)
            #expect(t.cancel(message: "enough"))
            #expect(t.cancelling == 1)
            #expect(f.isCancelled)  // the C task cancelled what it waited for
            await #expect(throws: CancelledError(message: "enough")) { try await t.value }
            #expect(t.isCancelled)
        }
    }

    @Test("a body that catches the cancellation goes on and finishes; uncancel withdraws the request")
    func cancelCaught() async throws {
        try await runLoop {
            let t = try createTask { () async throws -> Int in
                do {
                    try await sleep(100)
                    return 0
                } catch is CancelledError {
                    #expect(currentTask()!.cancelling == 1)
                    #expect(currentTask()!.uncancel() == 0)
                    try await sleep(0)
                    return 42
                }
            }
            try await sleep(1)
            t.cancel()
            #expect(try await t.value == 42)
            #expect(!t.isCancelled)
        }
    }

    @Test("the C API cancels a Swift body (ca_task_cancel from a loop callback)")
    func cCancelsSwift() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let t = try createTask { () async throws -> Int in
                try await sleep(100)
                return 0
            }
            try loop.callLater(1) { _ = ca_task_cancel(t.unsafeRawTask, "from C") }
            await #expect(throws: CancelledError(message: "from C")) { try await t.value }
        }
    }

    @Test("a C coroutine awaiting a Swift task: cancelling the C task cancels the Swift body")
    func cancellationPropagatesIntoSwift() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let reached = Shared(false)
            let swiftTask = try createTask { () async throws -> Int in
                do {
                    try await sleep(100)
                } catch is CancelledError {
                    reached.value = true
                    throw CancelledError(message: "swift saw it")
                }
                return 0
            }
            var out: UnsafeMutablePointer<ca_task>?
            #expect(ca_loop_create_task(loop.unsafeRaw, ts_coro_await_plus_one(swiftTask.unsafeRaw), nil, &out) == nil)
            let cTask = LoopTask<Int>(unsafeTakingOwnershipOf: out!)
            try await sleep(1)
            #expect(ca_task_fut_waiter(cTask.unsafeRawTask) == swiftTask.unsafeRaw)
            cTask.cancel()
            await #expect(throws: CancelledError.self) { try await cTask.value }
            #expect(reached.value)
            #expect(swiftTask.isCancelled)
        }
    }

    @Test("cancel before the first step: the body never runs")
    func cancelBeforeStart() async throws {
        let ran = Shared(false)
        try await runLoop {
            let t = try createTask { ran.value = true }
            t.cancel()
            await #expect(throws: CancelledError.self) { try await t.value }
        }
        #expect(!ran.value)
    }

    @Test("cancel during sleep(0) (a bare yield) is delivered there")
    func cancelDuringBareYield() async throws {
        try await runLoop {
            let t = try createTask { () async throws -> String in
                do {
                    try await sleep(0)
                    return "not cancelled"
                } catch is CancelledError {
                    return "cancelled at the yield"
                }
            }
            try await sleep(0)
            t.cancel()
            #expect(try await t.value == "cancelled at the yield")
        }
    }

    @Test("cancelling a parent that awaits a child cancels the child")
    func cancelParentCancelsChild() async throws {
        try await runLoop {
            let child = Shared<LoopTask<Int>?>(nil)
            let parent = try createTask { () async throws -> Int in
                let c = try createTask { () async throws -> Int in
                    try await sleep(100)
                    return 1
                }
                child.value = c
                return try await c.value
            }
            try await sleep(1)
            #expect(ca_task_fut_waiter(parent.unsafeRawTask) == child.value!.unsafeRaw)
            parent.cancel()
            await #expect(throws: CancelledError.self) { try await parent.value }
            #expect(child.value!.isCancelled)
        }
    }

    // MARK: Cancellation: a Swift body cancels a C task

    @Test("a Swift body cancels a C task")
    func swiftCancelsC() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            var out: UnsafeMutablePointer<ca_task>?
            #expect(ca_loop_create_task(loop.unsafeRaw, ca_sleep(100, ca_none()), nil, &out) == nil)
            let cTask = LoopTask<Void>(unsafeTakingOwnershipOf: out!)
            try await sleep(1)
            #expect(!cTask.isDone)
            #expect(cTask.cancel(message: "from Swift"))
            await #expect(throws: CancelledError(message: "from Swift")) { try await cTask.value }
            #expect(cTask.isCancelled)
        }
    }

    @Test("a C task that catches the cancellation returns its value to the Swift awaiter")
    func cTaskCatchesCancel() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Int.self)
            var out: UnsafeMutablePointer<ca_task>?
            #expect(ca_loop_create_task(loop.unsafeRaw, ts_coro_await_catch_cancel(f.unsafeRaw, 99), nil, &out) == nil)
            let cTask = LoopTask<Int>(unsafeTakingOwnershipOf: out!)
            let waiter = try createTask { try await cTask.value }
            try await sleep(0)
            cTask.cancel()
            #expect(try await waiter.value == 99)
        }
    }

    // MARK: Errors across the boundary

    @Test("a Swift error thrown in a body is stored in the C task and comes back out as the same error")
    func swiftErrorRoundTrip() async throws {
        let boom = Boom(3)
        try await runLoop {
            let t = try createTask { () async throws -> Int in
                try await sleep(0)
                throw boom
            }
            do {
                _ = try await t.value
                Issue.record("no error")
            } catch let e as Boom {
                #expect(e === boom)
            }
            // In C: a SwiftError whose payload is the Swift error.
            let e = t.unsafeRaw.pointee.fut_exception!
            #expect(cTypeName(e) == "SwiftError")
            #expect(String(cString: e.pointee.message) == "Boom(3)")
            #expect(cas_error_swift_payload(e) != nil)
        }
    }

    @Test("a Swift error crosses a C coroutine unchanged")
    func swiftErrorThroughC() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let inner = try createTask { () async throws -> Int in throw Oops(code: 12) }
            var out: UnsafeMutablePointer<ca_task>?
            #expect(ca_loop_create_task(loop.unsafeRaw, ts_coro_await_plus_one(inner.unsafeRaw), nil, &out) == nil)
            let outer = LoopTask<Int>(unsafeTakingOwnershipOf: out!)
            await #expect(throws: Oops(code: 12)) { try await outer.value }
        }
    }

    @Test("a C error raised by a C coroutine comes out as its Swift type")
    func cErrorToSwift() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            func cTask(_ coro: UnsafeMutablePointer<ca_coro>) -> LoopTask<Int> {
                var out: UnsafeMutablePointer<ca_task>?
                #expect(ca_loop_create_task(loop.unsafeRaw, coro, nil, &out) == nil)
                return LoopTask(unsafeTakingOwnershipOf: out!)
            }
            await #expect(throws: AsyncioError(typeName: "ValueError", message: "bad value")) {
                try await cTask(ts_coro_raise(ts_error_type("ValueError"), "bad value")).value
            }
            await #expect(throws: TimeoutError(message: "late")) {
                try await cTask(ts_coro_raise(ts_error_type("TimeoutError"), "late")).value
            }
            await #expect(throws: CancelledError(message: "raised")) {
                try await cTask(ts_coro_raise_cancelled("raised")).value
            }
            let fortyOne = try await cTask(ts_coro_return_int(41)).value
            #expect(fortyOne == 41)
        }
    }

    @Test("asyncio errors thrown by a body keep their C type, so C code sees them")
    func asyncioErrorsKeepType() async throws {
        try await runLoop {
            let t = try createTask { () async throws -> Int in throw QueueEmpty() }
            await #expect(throws: QueueEmpty.self) { try await t.value }
            #expect(cTypeName(t.unsafeRaw.pointee.fut_exception!) == "QueueEmpty")
            let c = try createTask { () async throws -> Int in throw CancelledError(message: "by hand") }
            await #expect(throws: CancelledError(message: "by hand")) { try await c.value }
            #expect(c.isCancelled)  // a body throwing CancelledError ends cancelled
            let s = try createTask { () async throws -> Int in throw CancellationError() }
            await #expect(throws: CancelledError.self) { try await s.value }
            #expect(s.isCancelled)
        }
    }

    @Test("a task awaiting itself gets asyncio's RuntimeError")
    func awaitSelf() async throws {
        try await runLoop {
            let me = Shared<LoopTask<Int>?>(nil)
            let t = try createTask { () async throws -> Int in
                try await sleep(0)
                return try await me.value!.value
            }
            me.value = t
            await #expect(throws: AsyncioError.self) { try await t.value }
            do { _ = try await t.value } catch let e as AsyncioError {
                #expect(e.typeName == "RuntimeError")
                #expect(e.message?.hasPrefix("Task cannot await on itself") == true)
            }
        }
    }

    @Test("a pending task destroyed by close: GeneratorExit at its await, defers run")
    func closeUnwindsBody() async throws {
        let log = Log()
        try await onThread {
            let loop = try EventLoop(virtualClock: true)
            ca_loop_set_exception_handler(loop.unsafeRaw, { _, _, _ in }, nil)  // "destroyed but pending"
            do {
                let f = loop.createFuture(of: Int.self)
                _ = try loop.createTask { () async throws -> Int in
                    defer { log.append("defer ran") }
                    do {
                        return try await f.value
                    } catch let e as AsyncioError {
                        log.append(e.typeName)
                        throw e
                    }
                }
                try loop.callSoon { loop.stop() }
                try loop.runForever()
            }
            // Nothing references the task but the future it waits on: close
            // cuts that cycle and the task dies pending.
            try loop.close()
        }
        #expect(log.value == ["GeneratorExit", "defer ran"])
    }
}
