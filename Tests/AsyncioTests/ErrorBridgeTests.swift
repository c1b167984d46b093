// One Swift error type per asyncio error, bridged both ways.

@testable import Asyncio
import CAsyncio
import CAsyncioShim
import CAsyncioTestSupport
import Testing

@Suite("Error bridging")
struct ErrorBridgeTests {
    /// Swift error → C error: its C type name and message.
    private func toC(_ error: any Error) -> (String, String?) {
        let e = ErrorBridge.cError(error)
        defer { ca_decref(UnsafeMutableRawPointer(e)) }
        return (cTypeName(e), e.pointee.message.map { String(cString: $0) })
    }

    @Test("each asyncio error type becomes its C type")
    func swiftToC() {
        #expect(toC(CancelledError(message: "m")) == ("CancelledError", "m"))
        #expect(toC(CancellationError()) == ("CancelledError", nil))
        #expect(toC(TimeoutError()) == ("TimeoutError", nil))
        #expect(toC(InvalidStateError(message: "x")) == ("InvalidStateError", "x"))
        #expect(toC(QueueEmpty()) == ("QueueEmpty", nil))
        #expect(toC(QueueFull()) == ("QueueFull", nil))
        #expect(toC(QueueShutDown()) == ("QueueShutDown", nil))
        #expect(toC(BrokenBarrierError()) == ("BrokenBarrierError", nil))
        #expect(toC(OSError(errno: 104, message: "reset", typeName: "ConnectionResetError"))
                == ("ConnectionResetError", "reset"))
        #expect(toC(AsyncioError(typeName: "ValueError", message: "v")) == ("ValueError", "v"))
        #expect(toC(Oops(code: 1)) == ("SwiftError", "Oops(code: 1)"))
        let e = ErrorBridge.cError(OSError(errno: 5))
        #expect(e.pointee.err_no == 5)
        ca_decref(UnsafeMutableRawPointer(e))
    }

    @Test("each C error type becomes its Swift type")
    func cToSwift() {
        func bridge(_ type: String, _ message: String?) -> any Error {
            ErrorBridge.take(ca_error_new(ts_error_type(type), message))
        }
        #expect(bridge("CancelledError", "c") as? CancelledError == CancelledError(message: "c"))
        #expect(bridge("TimeoutError", nil) as? TimeoutError == TimeoutError())
        #expect(bridge("InvalidStateError", "i") as? InvalidStateError == InvalidStateError(message: "i"))
        #expect(bridge("QueueEmpty", nil) is QueueEmpty)
        #expect(bridge("QueueFull", nil) is QueueFull)
        #expect(bridge("QueueShutDown", nil) is QueueShutDown)
        #expect(bridge("BrokenBarrierError", nil) is BrokenBarrierError)
        #expect(bridge("RuntimeError", "r") as? AsyncioError == AsyncioError(typeName: "RuntimeError", message: "r"))
        let os = ErrorBridge.take(ca_error_from_errno(ts_error_type("ConnectionRefusedError"), 111, nil))
        #expect((os as? OSError)?.errno == 111)
        #expect((os as? OSError)?.typeName == "ConnectionRefusedError")
        #expect((os as? OSError)?.message == "[Errno 111] Connection refused")
    }

    @Test("a round trip gives back the same Swift value, for asyncio and application errors alike")
    func roundTrip() {
        let boom = Boom(5)
        #expect(ErrorBridge.take(ErrorBridge.cError(boom)) as? Boom === boom)
        #expect(ErrorBridge.take(ErrorBridge.cError(QueueFull(message: "q"))) as? QueueFull == QueueFull(message: "q"))
        let group = ExceptionGroup(message: "g", errors: [Oops(code: 1), TimeoutError()])
        let back = ErrorBridge.take(ErrorBridge.cError(group)) as? ExceptionGroup
        #expect(back?.errors.count == 2)
        #expect(back?.errors.first as? Oops == Oops(code: 1))
    }

    @Test("the stream errors cross the C layer with their data: IncompleteReadError's bytes and count, LimitOverrunError's consumed")
    func streamErrorsKeepTheirData() {
        let incomplete = IncompleteReadError(partial: [1, 2, 3], expected: 10)
        #expect(toC(incomplete) == ("IncompleteReadError", "3 bytes read on a total of 10 expected bytes"))
        #expect(ErrorBridge.take(ErrorBridge.cError(incomplete)) as? IncompleteReadError == incomplete)
        let upToSeparator = IncompleteReadError(partial: [], expected: nil)
        #expect(ErrorBridge.take(ErrorBridge.cError(upToSeparator)) as? IncompleteReadError == upToSeparator)
        let overrun = LimitOverrunError(message: "Separator is not found, and chunk exceed the limit", consumed: 7)
        #expect(toC(overrun) == ("LimitOverrunError", overrun.message))
        #expect(ErrorBridge.take(ErrorBridge.cError(overrun)) as? LimitOverrunError == overrun)
    }

    @Test("a C exception group becomes an ExceptionGroup of bridged errors")
    func groups() {
        var children: [UnsafeMutablePointer<ca_error>?] = [
            ca_error_new(ts_error_type("ValueError"), "a"),
            ErrorBridge.cError(Oops(code: 2)),
        ]
        let g = ca_error_group_new("two", &children, 2)!
        for c in children { ca_decref(UnsafeMutableRawPointer(c)) }
        let e = ErrorBridge.take(g) as? ExceptionGroup
        #expect(e?.typeName == "ExceptionGroup")
        #expect(e?.message == "two")
        #expect(e?.errors.first as? AsyncioError == AsyncioError(typeName: "ValueError", message: "a"))
        #expect(e?.errors.last as? Oops == Oops(code: 2))
        #expect(e?.description == "ExceptionGroup: two (2 sub-exceptions)")
        #expect(CancelledError(message: "x").description == "CancelledError: x")
        #expect(TimeoutError().description == "TimeoutError")
    }
}
