// contextvars: get/set/reset and tokens, copies, and which context callbacks
// and task steps run in (issue 2 deliverable 7).

import CAsyncio
import CAsyncioTestSupport
import Testing

@Suite("Context variables")
struct ContextTests {

    // MARK: - ContextVar API

    @Test("get() of an unset variable without a default raises KeyError")
    func getUnsetIsKeyError() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                var out = ca_none()
                let err = take(ca_contextvar_get(v, nil, &out))
                #expect(err?.type == "KeyError")
                #expect(out.kind == CA_VALUE_NONE)
            }
        }
    }

    @Test("get() of an unset variable returns its default, and a fallback wins over the default")
    func getDefaultAndFallback() throws {
        try withLoop { t in
            let v = t.contextVar("v", default: 7)
            withFreshContext { _ in
                var out = ca_none()
                expectOK(ca_contextvar_get(v, nil, &out))
                #expect(out.kind == CA_VALUE_INT && out.u.i == 7)
                var fallback = ca_int(9)
                expectOK(ca_contextvar_get(v, &fallback, &out))
                #expect(out.u.i == 9)
            }
        }
    }

    @Test("set() then get() returns the value set")
    func setThenGet() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { ctx in
                expectOK(ca_contextvar_set(v, ca_int(5), nil))
                #expect(ts_var_int(v) == 5)
                #expect(ca_context_len(ctx) == 1)
            }
        }
    }

    @Test("reset(token) restores the previous value")
    func resetRestoresPrevious() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                expectOK(ca_contextvar_set(v, ca_int(1), nil))
                var token = ca_contextvar_token()
                expectOK(ca_contextvar_set(v, ca_int(2), &token))
                #expect(ts_var_int(v) == 2)
                expectOK(ca_contextvar_reset(v, &token))
                #expect(ts_var_int(v) == 1)
            }
        }
    }

    @Test("reset(token) of a first set() makes the variable unset again")
    func resetToUnset() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { ctx in
                var token = ca_contextvar_token()
                expectOK(ca_contextvar_set(v, ca_int(2), &token))
                expectOK(ca_contextvar_reset(v, &token))
                #expect(ts_var_int(v) == -1)
                #expect(ca_context_len(ctx) == 0)
            }
        }
    }

    @Test("using a token twice raises RuntimeError")
    func tokenUsedTwice() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                var token = ca_contextvar_token()
                expectOK(ca_contextvar_set(v, ca_int(2), &token))
                expectOK(ca_contextvar_reset(v, &token))
                let err = take(ca_contextvar_reset(v, &token))
                #expect(err?.type == "RuntimeError")
                ca_contextvar_token_clear(&token)
            }
        }
    }

    @Test("a token created in another context raises ValueError")
    func tokenFromOtherContext() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            var token = ca_contextvar_token()
            withFreshContext { _ in
                expectOK(ca_contextvar_set(v, ca_int(2), &token))
            }
            withFreshContext { _ in
                let err = take(ca_contextvar_reset(v, &token))
                #expect(err?.type == "ValueError")
            }
            ca_contextvar_token_clear(&token)
        }
    }

    @Test("a token of another variable raises ValueError")
    func tokenOfOtherVariable() throws {
        try withLoop { t in
            let v = t.contextVar("v"), w = t.contextVar("w")
            withFreshContext { _ in
                var token = ca_contextvar_token()
                expectOK(ca_contextvar_set(v, ca_int(2), &token))
                let err = take(ca_contextvar_reset(w, &token))
                #expect(err?.type == "ValueError")
                #expect(ts_var_int(v) == 2)
                ca_contextvar_token_clear(&token)
            }
        }
    }

    // MARK: - Contexts

    @Test("a copy does not see values set after it was made")
    func copyIsIsolatedFromLaterSets() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                expectOK(ca_contextvar_set(v, ca_int(1), nil))
                let copy = ca_context_copy_current()!
                defer { decref(copy) }
                expectOK(ca_contextvar_set(v, ca_int(2), nil))
                expectOK(ca_context_enter(copy))
                #expect(ts_var_int(v) == 1)
                ca_context_exit(copy)
                #expect(ts_var_int(v) == 2)
            }
        }
    }

    @Test("a set inside a copy does not change the original")
    func setInCopyDoesNotLeak() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { ctx in
                expectOK(ca_contextvar_set(v, ca_int(1), nil))
                let copy = ca_context_copy(ctx)!
                defer { decref(copy) }
                expectOK(ca_context_enter(copy))
                expectOK(ca_contextvar_set(v, ca_int(3), nil))
                ca_context_exit(copy)
                #expect(ts_var_int(v) == 1)
                #expect(ca_context_len(copy) == 1)
            }
        }
    }

    @Test("entering a context that is already entered raises RuntimeError")
    func enterTwice() throws {
        withFreshContext { ctx in
            let err = take(ca_context_enter(ctx))
            #expect(err?.type == "RuntimeError")
        }
    }

    @Test("exit restores the context that was current before enter")
    func exitRestoresPrevious() throws {
        withFreshContext { outer in
            #expect(ca_context_current() == outer)
            let inner = ca_context_new()!
            defer { decref(inner) }
            expectOK(ca_context_enter(inner))
            #expect(ca_context_current() == inner)
            ca_context_exit(inner)
            #expect(ca_context_current() == outer)
        }
    }

    // MARK: - Callbacks and tasks

    @Test("a callback runs in a copy of the context current when it was scheduled")
    func callSoonCopiesContextAtRegistration() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                expectOK(ca_contextvar_set(v, ca_int(1), nil))
                let p = t.probe(0)
                p.pointee.cvar = UnsafePointer(v)
                expectOK(ca_loop_call_soon(t.loop, ts_probe_read_var, p, nil, nil, nil))
                expectOK(ca_contextvar_set(v, ca_int(2), nil))
                t.runOnce()
                #expect(t.log == [1])
            }
        }
    }

    @Test("a value one callback sets in its copied context is not seen by the next callback")
    func callbackCopiesAreIndependent() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                expectOK(ca_contextvar_set(v, ca_int(1), nil))
                let setter = t.probe(5), reader = t.probe(0)
                setter.pointee.cvar = UnsafePointer(v)
                reader.pointee.cvar = UnsafePointer(v)
                expectOK(ca_loop_call_soon(t.loop, ts_probe_set_var, setter, nil, nil, nil))
                expectOK(ca_loop_call_soon(t.loop, ts_probe_read_var, reader, nil, nil, nil))
                t.runOnce()
                #expect(t.log == [5, 1])
                #expect(ts_var_int(v) == 1)
            }
        }
    }

    @Test("callbacks scheduled from an empty context do not share the values they set")
    func emptyContextCallbacksAreIndependent() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                let setter = t.probe(5), reader = t.probe(0)
                setter.pointee.cvar = UnsafePointer(v)
                reader.pointee.cvar = UnsafePointer(v)
                expectOK(ca_loop_call_soon(t.loop, ts_probe_set_var, setter, nil, nil, nil))
                expectOK(ca_loop_call_soon(t.loop, ts_probe_read_var, reader, nil, nil, nil))
                t.runOnce()
                expectOK(ca_loop_call_soon(t.loop, ts_probe_read_var, reader, nil, nil, nil))
                t.runOnce()
                #expect(t.log == [5, -1, -1])
                #expect(ts_var_int(v) == -1)
            }
        }
    }

    @Test("a callback registered with an explicit context runs in that context")
    func callSoonWithExplicitContext() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            let ctx = ca_context_new()!
            defer { decref(ctx) }
            expectOK(ca_context_enter(ctx))
            expectOK(ca_contextvar_set(v, ca_int(5), nil))
            ca_context_exit(ctx)
            withFreshContext { _ in
                let p = t.probe(0)
                p.pointee.cvar = UnsafePointer(v)
                expectOK(ca_loop_call_soon(t.loop, ts_probe_read_var, p, nil, ctx, nil))
                t.runOnce()
                #expect(t.log == [5])
                #expect(ts_var_int(v) == -1)
            }
        }
    }

    @Test("a callback holds its explicit context only until it ran")
    func explicitContextReleasedAfterRun() throws {
        try withLoop { t in
            let ctx = ca_context_new()!
            defer { decref(ctx) }
            let before = refcount(ctx)
            t.callSoon(t.probe(1), ctx: ctx)
            #expect(refcount(ctx) == before + 1)
            t.runOnce()
            #expect(refcount(ctx) == before)
        }
    }

    @Test("a done callback runs in the context it was added with")
    func doneCallbackContext() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                let f = t.future()
                defer { decref(f) }
                expectOK(ca_contextvar_set(v, ca_int(4), nil))
                let p = t.probe(0)
                p.pointee.cvar = UnsafePointer(v)
                expectOK(ca_future_add_done_callback(f, ts_probe_done_read_var, p, nil, nil))
                expectOK(ca_contextvar_set(v, ca_int(8), nil))
                expectOK(ca_future_set_result(f, ca_int(0)))
                t.runOnce()
                #expect(t.log == [4])
            }
        }
    }

    @Test("a timer callback runs in the context current when it was scheduled")
    func timerCallbackContext() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                expectOK(ca_contextvar_set(v, ca_int(6), nil))
                let p = t.probe(0)
                p.pointee.cvar = UnsafePointer(v)
                var h: HandlePtr?
                expectOK(ca_loop_call_later(t.loop, nsPerMs, ts_probe_read_var, p, nil, nil, &h))
                decref(h)
                expectOK(ca_contextvar_set(v, ca_int(7), nil))
                t.runFor(nsPerSecond)
                #expect(t.log == [6])
            }
        }
    }

    // loop.h: "The callback runs in an empty context." CPython copies the
    // posting thread's context; posted from a fresh thread, both are empty.
    @Test("a call_soon_threadsafe callback posted from another thread does not see the loop thread's context")
    func threadsafeCallbackContextIsEmpty() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            withFreshContext { _ in
                expectOK(ca_contextvar_set(v, ca_int(3), nil))
                let p = t.probe(0)
                p.pointee.cvar = UnsafePointer(v)
                expectOK(ts_call_soon_threadsafe_from_thread(t.loop, ts_probe_read_var, p))
                t.runOnce()
                #expect(t.log == [-1])
            }
        }
    }

    @Test("a task runs in a copy of the context current at its creation")
    func taskContextIsCopiedAtCreation() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            try withFreshContext { _ in
                expectOK(ca_contextvar_set(v, ca_int(1), nil))
                let task = try t.task(ts_coro_read_var(v))
                defer { decref(task) }
                expectOK(ca_contextvar_set(v, ca_int(2), nil))
                t.runUntilComplete(task)
                #expect(outcome(task) == .int(1))
            }
        }
    }

    @Test("a task's steps share its context: a value set before an await is seen after it")
    func taskStepsShareContext() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            try withFreshContext { _ in
                let task = try t.task(ts_coro_set_var_then_yield(v, 11))
                defer { decref(task) }
                t.runUntilComplete(task)
                #expect(outcome(task) == .int(11))
            }
        }
    }

    @Test("a value a task sets does not leak into the caller's context")
    func taskSetDoesNotLeak() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            try withFreshContext { _ in
                let task = try t.task(ts_coro_set_var_then_yield(v, 11))
                defer { decref(task) }
                t.runUntilComplete(task)
                #expect(ts_var_int(v) == -1)
            }
        }
    }

    @Test("a task created with an explicit context runs in it")
    func taskWithExplicitContext() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            let ctx = ca_context_new()!
            defer { decref(ctx) }
            expectOK(ca_context_enter(ctx))
            expectOK(ca_contextvar_set(v, ca_int(12), nil))
            ca_context_exit(ctx)
            try withFreshContext { _ in
                let task = try t.task(ts_coro_read_var(v), context: ctx)
                defer { decref(task) }
                t.runUntilComplete(task)
                #expect(outcome(task) == .int(12))
            }
        }
    }

    @Test("two tasks setting the same variable do not see each other's values")
    func tasksAreIsolated() throws {
        try withLoop { t in
            let v = t.contextVar("v")
            try withFreshContext { _ in
                let a = try t.task(ts_coro_set_var_then_yield(v, 1))
                let b = try t.task(ts_coro_set_var_then_yield(v, 2))
                defer { decref(a); decref(b) }
                t.runUntilComplete(b)
                t.runUntilComplete(a)
                #expect(outcome(a) == .int(1))
                #expect(outcome(b) == .int(2))
            }
        }
    }
}
