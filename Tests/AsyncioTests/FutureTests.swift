// Future<Value>: typed results, errors, cancellation, callbacks and states.

@testable import Asyncio
import CAsyncio
import CAsyncioShim
import Testing

struct Point: Sendable, Equatable {
    var x: Int
    var y: Int
}

/// An object that records its own release.
private final class Tracked: Sendable {
    let dropped: Shared<Bool>
    init(_ dropped: Shared<Bool>) { self.dropped = dropped }
    deinit { dropped.value = true }
}

@Suite("Future")
struct FutureTests {
    @Test("value returns the result of every stored kind: inline and boxed")
    func typedResults() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let i = loop.createFuture(of: Int.self)
            let s = loop.createFuture(of: String.self)
            let d = loop.createFuture(of: Double.self)
            let b = loop.createFuture(of: Bool.self)
            let v = loop.createFuture(of: Void.self)
            let p = loop.createFuture(of: Point.self)
            let o = loop.createFuture(of: Int?.self)
            try loop.callSoon {
                try? i.setResult(-5)
                try? s.setResult("hello")
                try? d.setResult(2.5)
                try? b.setResult(true)
                try? v.setResult(())
                try? p.setResult(Point(x: 1, y: 2))
                try? o.setResult(nil)
            }
            #expect(try await i.value == -5)
            #expect(try await s.value == "hello")
            #expect(try await d.value == 2.5)
            #expect(try await b.value == true)
            try await v.value
            #expect(try await p.value == Point(x: 1, y: 2))
            #expect(try await o.value == nil)
            // Inline kinds cost no box.
            #expect(i.unsafeRaw.pointee.fut_result.kind == CA_VALUE_INT)
            #expect(d.unsafeRaw.pointee.fut_result.kind == CA_VALUE_DOUBLE)
            #expect(v.unsafeRaw.pointee.fut_result.kind == CA_VALUE_NONE)
            #expect(s.unsafeRaw.pointee.fut_result.kind == CA_VALUE_OBJECT)
        }
    }

    @Test("setException: value throws the same Swift error")
    func exceptions() async throws {
        let boom = Boom(7)
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Int.self)
            try loop.callSoon { try? f.setException(boom) }
            do {
                _ = try await f.value
                Issue.record("no error")
            } catch let e as Boom {
                #expect(e === boom)
            }
            #expect(try f.exception() as? Boom === boom)
            let g = loop.createFuture(of: Int.self)
            try g.setException(Oops(code: 1))
            #expect(throws: Oops(code: 1)) { try g.result() }
        }
    }

    @Test("cancel(message:): value throws CancelledError with the message")
    func cancel() async throws {
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Int.self)
            try loop.callSoon { f.cancel(message: "stop it") }
            await #expect(throws: CancelledError(message: "stop it")) { try await f.value }
            #expect(f.isCancelled)
            #expect(f.state == .cancelled)
            #expect(!f.cancel())
        }
    }

    @Test("states and the errors of illegal transitions")
    func states() async throws {
        try await runLoop {
            let f = EventLoop.current!.createFuture(of: Int.self)
            #expect(f.state == .pending)
            #expect(!f.isDone)
            #expect(throws: InvalidStateError(message: "Result is not set.")) { try f.result() }
            #expect(throws: InvalidStateError(message: "Exception is not set.")) { try f.exception() }
            try f.setResult(1)
            #expect(f.state == .finished)
            #expect(f.isDone && !f.isCancelled)
            #expect(throws: InvalidStateError(message: "invalid state")) { try f.setResult(2) }
            #expect(throws: InvalidStateError.self) { try f.setException(Oops(code: 0)) }
            #expect(try f.result() == 1)
            #expect(try f.exception() == nil)
            #expect(f.description == "<Future finished result=1>")
        }
    }

    @Test("addDoneCallback: scheduled with call_soon in registration order, with the future")
    func doneCallbacks() async throws {
        let log = Log()
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Int.self)
            f.addDoneCallback { g in log.append("first \(try! g.result())") }
            f.addDoneCallback { g in log.append("second \(g == f)") }
            try f.setResult(3)
            log.append("set")
            try await sleep(0)
            // Already done: still through call_soon.
            f.addDoneCallback { _ in log.append("late") }
            log.append("added late")
            try await sleep(0)
        }
        #expect(log.value == ["set", "first 3", "second true", "added late", "late"])
    }

    @Test("a done callback that never runs releases what it captured once its future is gone")
    func doneCallbackReleasedWithFuture() async throws {
        let dropped = Shared(false)
        let ran = Shared(false)
        try await runLoop {
            let loop = EventLoop.current!
            do {
                let tracked = Tracked(dropped)
                let f = loop.createFuture(of: String.self)
                f.addDoneCallback { _ in
                    withExtendedLifetime(tracked) { ran.value = true }
                }
            }
            try await sleep(0)
        }
        #expect(dropped.value)
        #expect(!ran.value)
    }

    @Test("a future a done callback kept still names its own future after later callbacks ran")
    func doneCallbackKeptFuture() async throws {
        let kept = Shared<[Future<Int>]>([])
        let log = Log()
        try await runLoop {
            let loop = EventLoop.current!
            let a = loop.createFuture(of: Int.self)
            let b = loop.createFuture(of: Int.self)
            a.addDoneCallback { g in kept.value.append(g) }
            b.addDoneCallback { g in log.append("b \(try! g.result())") }
            try a.setResult(1)
            try b.setResult(2)
            try await sleep(0)
            let c = loop.createFuture(of: Int.self)
            c.addDoneCallback { g in log.append("c \(try! g.result())") }
            try c.setResult(3)
            try await sleep(0)
            #expect(kept.value.count == 1)
            #expect(kept.value[0] == a)
            #expect(try kept.value[0].result() == 1)
        }
        #expect(log.value == ["b 2", "c 3"])
    }

    @Test("done callbacks that drop the future they receive get one wrapper, each time naming their own future")
    func doneCallbackWrapperReused() async throws {
        let seen = Shared<[ObjectIdentifier]>([])
        try await runLoop {
            let loop = EventLoop.current!
            for i in 0..<3 {
                let f = loop.createFuture(of: Int.self)
                f.addDoneCallback { g in
                    seen.update { $0.append(ObjectIdentifier(g)) }
                    #expect(try! g.result() == i)
                    #expect(g == f)
                    #expect(g !== f)
                }
                try f.setResult(i)
                try await sleep(0)
            }
        }
        #expect(seen.value.count == 3)
        #expect(Set(seen.value).count == 1)
    }

    @Test("a wrapper the loop keeps for reuse does not keep its last future, nor that future's result, alive")
    func doneCallbackKeptWrapperReleasesFuture() async throws {
        let dropped = Shared(false)
        try await runLoop {
            let loop = EventLoop.current!
            do {
                let f = loop.createFuture(of: Tracked.self)
                f.addDoneCallback { _ in }
                try f.setResult(Tracked(dropped))
            }
            try await sleep(0)
            #expect(dropped.value)
        }
    }

    @Test("a done callback that keeps a weak reference to its future gets a wrapper the loop does not reuse")
    func doneCallbackWeaklyKeptWrapper() async throws {
        // Safety of `@unchecked Sendable`: written and read on the loop
        // thread only (in done callbacks and the main task).
        final class WeakRef: @unchecked Sendable {
            weak var future: Future<Int>?
        }
        let weak = WeakRef()
        let log = Log()
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: Int.self)
            f.addDoneCallback { g in weak.future = g }
            try f.setResult(1)
            try await sleep(0)
            let h = loop.createFuture(of: Int.self)
            h.addDoneCallback { g in
                // Reused, the first wrapper would be alive (it is `g`).
                log.append("weak reference \(weak.future == nil ? "cleared" : "alive"), result \(try! g.result())")
            }
            try h.setResult(2)
            try await sleep(0)
        }
        #expect(log.value == ["weak reference cleared, result 2"])
    }

    @Test("a done callback of a future with a boxed result reads that result")
    func doneCallbackBoxedResult() async throws {
        let log = Log()
        try await runLoop {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: [String].self)
            f.addDoneCallback { g in log.append((try? g.result().joined(separator: "+")) ?? "error") }
            try f.setResult(["a", "b"])
            try await sleep(0)
        }
        #expect(log.value == ["a+b"])
    }

    @Test("a future awaited from a Swift task on another thread (the thread-safe path)")
    func awaitFromAnotherThread() async throws {
        try await runLoop(virtualClock: false) {
            let loop = EventLoop.current!
            let f = loop.createFuture(of: String.self)
            let outside = Task.detached { try await f.value }
            try await sleep(0.01)
            try f.setResult("across threads")
            let done = loop.createFuture(of: String.self)
            Task.detached {
                let v = (try? await outside.value) ?? "failed"
                try? loop.callSoonThreadsafe { try? done.setResult(v) }
            }
            #expect(try await done.value == "across threads")
        }
    }

    @Test("a C future's result read with the wrong Swift type is a TypeError")
    func wrongType() async throws {
        try await runLoop {
            let raw = ca_future_new(EventLoop.current!.unsafeRaw)!
            let f = Future<String>(unsafeTakingOwnershipOf: raw)
            #expect(ca_future_set_result(raw, ca_int(4)) == nil)
            #expect(throws: AsyncioError(typeName: "TypeError", message: "a int result cannot be read as String")) {
                try f.result()
            }
            let same = Future<Int>(unsafeRetaining: raw)
            let four = try same.result()
            #expect(four == 4)
        }
    }
}
