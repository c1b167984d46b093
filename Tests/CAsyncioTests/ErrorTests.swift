// Errors and values: the type hierarchy, messages, errno, cause/context
// chains, exception groups, and value ownership (issue 2 deliverable 2).

import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

/// "`sub` is a `base`" (or, with `expected` false, "is not").
struct Subtype: Sendable, CustomTestStringConvertible {
    var sub: String
    var base: String
    var expected: Bool
    var testDescription: String { "\(sub) \(expected ? "<" : "!<") \(base)" }
}

@Suite("Errors and values")
struct ErrorTests {

    static let hierarchy: [Subtype] = [
        Subtype(sub: "CancelledError", base: "BaseException", expected: true),
        Subtype(sub: "CancelledError", base: "Exception", expected: false),
        Subtype(sub: "KeyboardInterrupt", base: "Exception", expected: false),
        Subtype(sub: "SystemExit", base: "BaseException", expected: true),
        Subtype(sub: "SystemExit", base: "Exception", expected: false),
        Subtype(sub: "TimeoutError", base: "OSError", expected: true),
        Subtype(sub: "TimeoutError", base: "Exception", expected: true),
        Subtype(sub: "InvalidStateError", base: "Exception", expected: true),
        Subtype(sub: "InvalidStateError", base: "RuntimeError", expected: false),
        Subtype(sub: "RecursionError", base: "RuntimeError", expected: true),
        Subtype(sub: "BrokenBarrierError", base: "RuntimeError", expected: true),
        Subtype(sub: "IncompleteReadError", base: "EOFError", expected: true),
        Subtype(sub: "ConnectionResetError", base: "ConnectionError", expected: true),
        Subtype(sub: "ConnectionRefusedError", base: "OSError", expected: true),
        Subtype(sub: "BrokenPipeError", base: "ConnectionError", expected: true),
        Subtype(sub: "QueueEmpty", base: "Exception", expected: true),
        Subtype(sub: "StopIteration", base: "Exception", expected: true),
        Subtype(sub: "ValueError", base: "TypeError", expected: false),
        Subtype(sub: "MyError", base: "ValueError", expected: true),
        Subtype(sub: "MyError", base: "Exception", expected: true),
        Subtype(sub: "MyError", base: "TypeError", expected: false),
    ]

    @Test("the built-in hierarchy mirrors Python's, user types included", arguments: hierarchy)
    func hierarchyMatches(_ s: Subtype) {
        let e = makeError(s.sub)
        defer { decref(e) }
        #expect(ca_error_matches(e, errorType(s.base)) == s.expected)
        #expect(ca_error_type_is_subtype(errorType(s.sub), errorType(s.base)) == s.expected)
    }

    @Test("every type is a subtype of itself and of BaseException")
    func subtypeOfSelf() {
        for name in ["CancelledError", "OSError", "MyError", "BaseException"] {
            #expect(ca_error_type_is_subtype(errorType(name), errorType(name)))
            #expect(ca_error_type_is_subtype(errorType(name), errorType("BaseException")))
        }
    }

    @Test("ca_error_matches(NULL, type) is false")
    func matchesNull() {
        #expect(!ca_error_matches(nil, errorType("BaseException")))
    }

    @Test("ca_error_new keeps its own copy of the message")
    func messageIsCopied() {
        var buf: [CChar] = Array("original".utf8CString)
        let e = ca_error_new(errorType("ValueError"), &buf)!
        defer { decref(e) }
        buf[0] = CChar(UInt8(ascii: "X"))
        #expect(String(cString: ca_error_message(e)) == "original")
        #expect(e.pointee.message != nil)
    }

    @Test("an error without a message has a NULL message and ca_error_message gives ''")
    func noMessage() {
        let e = makeError("CancelledError")
        defer { decref(e) }
        #expect(e.pointee.message == nil)
        #expect(String(cString: ca_error_message(e)) == "")
    }

    @Test("ca_error_format formats its message printf-style")
    func formatMessage() {
        let info = take(ts_error_format_int(errorType("ValueError"), "x", 42))
        #expect(info?.type == "ValueError")
        #expect(info?.message == "x=42")
    }

    @Test("ca_error_from_errno carries errno and a strerror message")
    func errnoError() {
        let info = take(ca_error_from_errno(errorType("OSError"), ENOENT, nil))
        #expect(info?.errNo == ENOENT)
        #expect(info?.message?.contains(String(cString: strerror(ENOENT))) == true)
    }

    @Test("ca_error_from_errno keeps an explicit message")
    func errnoErrorWithMessage() {
        let info = take(ca_error_from_errno(errorType("ConnectionResetError"), ECONNRESET, "peer left"))
        #expect(info?.type == "ConnectionResetError")
        #expect(info?.errNo == ECONNRESET)
        #expect(info?.message?.contains("peer left") == true)
    }

    @Test("describe() writes 'Type: message', or 'Type' without a message")
    func describe() {
        let a = makeError("ValueError", "bad value"), b = makeError("CancelledError")
        defer { decref(a); decref(b) }
        var buf = [CChar](repeating: 0, count: 64)
        _ = ca_error_describe(a, &buf, buf.count)
        #expect(cString(buf) == "ValueError: bad value")
        _ = ca_error_describe(b, &buf, buf.count)
        #expect(cString(buf) == "CancelledError")
    }

    @Test("describe() truncates to the buffer and returns the length it needed")
    func describeTruncates() {
        let e = makeError("ValueError", "bad value")
        defer { decref(e) }
        var buf = [CChar](repeating: 65, count: 8)
        let needed = ca_error_describe(e, &buf, buf.count)
        #expect(needed == "ValueError: bad value".utf8.count)
        #expect(buf[7] == 0)
        #expect(cString(buf) == "ValueEr")
    }

    // MARK: - Chains

    @Test("set_cause() sets the cause and suppress_context, holding a reference")
    func setCause() {
        let e = makeError("RuntimeError"), cause = makeError("ValueError")
        defer { decref(e); decref(cause) }
        let before = refcount(cause)
        ca_error_set_cause(e, cause)
        #expect(e.pointee.cause == cause)
        #expect(e.pointee.suppress_context)
        #expect(refcount(cause) == before + 1)
    }

    @Test("set_context() links the context, holding a reference")
    func setContext() {
        let e = makeError("RuntimeError"), ctx = makeError("ValueError")
        defer { decref(e); decref(ctx) }
        let before = refcount(ctx)
        ca_error_set_context(e, ctx)
        #expect(e.pointee.context == ctx)
        #expect(!e.pointee.suppress_context)
        #expect(refcount(ctx) == before + 1)
    }

    @Test("set_context() cuts the link that would make the chain a cycle")
    func setContextRefusesCycle() {
        let a = makeError("ValueError", "a"), b = makeError("TypeError", "b")
        ca_error_set_context(a, b)
        ca_error_set_context(b, a)
        #expect(b.pointee.context == a)
        #expect(a.pointee.context == nil)
        decref(b)
        decref(a)
    }

    @Test("set_context() of an error to itself leaves no self-loop")
    func setContextSelf() {
        let a = makeError("ValueError", "a")
        ca_error_set_context(a, a)
        #expect(a.pointee.context != a)
        decref(a)
    }

    // MARK: - Exception groups

    @Test("a group of Exceptions is an ExceptionGroup holding references to its children")
    func exceptionGroup() {
        let a = makeError("ValueError"), b = makeError("TypeError")
        defer { decref(a); decref(b) }
        let before = refcount(a)
        var children: [ErrorPtr?] = [a, b]
        let g = ca_error_group_new("many", &children, 2)!
        defer { decref(g) }
        #expect(String(cString: g.pointee.type.pointee.name) == "ExceptionGroup")
        #expect(g.pointee.nchildren == 2)
        #expect(g.pointee.children[0] == a)
        #expect(g.pointee.children[1] == b)
        #expect(refcount(a) == before + 1)
        #expect(String(cString: ca_error_message(g)) == "many")
    }

    @Test("an ExceptionGroup matches both BaseExceptionGroup and Exception")
    func exceptionGroupIsException() {
        let a = makeError("ValueError")
        defer { decref(a) }
        var children: [ErrorPtr?] = [a]
        let g = ca_error_group_new("one", &children, 1)!
        defer { decref(g) }
        #expect(ca_error_matches(g, errorType("BaseExceptionGroup")))
        #expect(ca_error_matches(g, errorType("Exception")))
    }

    @Test("a group holding a BaseException is a BaseExceptionGroup, not an Exception")
    func baseExceptionGroup() {
        let a = makeError("ValueError"), b = makeError("KeyboardInterrupt")
        defer { decref(a); decref(b) }
        var children: [ErrorPtr?] = [a, b]
        let g = ca_error_group_new("mixed", &children, 2)!
        defer { decref(g) }
        #expect(String(cString: g.pointee.type.pointee.name) == "BaseExceptionGroup")
        #expect(!ca_error_matches(g, errorType("Exception")))
    }

    // MARK: - Values

    @Test("copying an object value adds a reference and clearing it drops one")
    func objectValueCopy() throws {
        try withLoop { t in
            let f = t.future()
            defer { decref(f) }
            let before = refcount(f)
            var v = ca_obj(ca_incref(f))
            var c = ca_value_copy(&v)
            #expect(c.kind == CA_VALUE_OBJECT)
            #expect(refcount(f) == before + 2)
            ca_value_clear(&c)
            ca_value_clear(&v)
            #expect(refcount(f) == before)
            #expect(v.kind == CA_VALUE_NONE)
        }
    }

    @Test("copying a pointer value with a destructor yields a borrowed pointer")
    func pointerValueCopyIsBorrowed() {
        let counter = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        defer { counter.deallocate() }
        counter.pointee = 0
        var v = ca_ptr(counter, ts_count_dtor)
        var c = ca_value_copy(&v)
        #expect(c.kind == CA_VALUE_PTR)
        #expect(c.u.ptr.p == UnsafeMutableRawPointer(counter))
        #expect(c.u.ptr.dtor == nil)
        ca_value_clear(&c)
        #expect(counter.pointee == 0)
        ca_value_clear(&v)
        #expect(counter.pointee == 1)
        #expect(v.kind == CA_VALUE_NONE)
    }

    @Test("integer and double values copy by value")
    func scalarValueCopy() {
        var i = ca_int(-3), d = ca_double(0.5)
        let ci = ca_value_copy(&i), cd = ca_value_copy(&d)
        #expect(ci.kind == CA_VALUE_INT && ci.u.i == -3)
        #expect(cd.kind == CA_VALUE_DOUBLE && cd.u.d == 0.5)
    }
}
