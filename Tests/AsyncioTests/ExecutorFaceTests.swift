// The Swift faces of run_in_executor, getaddrinfo and signal handlers.

@testable import Asyncio
import CAsyncio
import Glibc
import Testing

@Suite("EventLoop: executor, getaddrinfo, signals")
struct ExecutorFaceTests {
    @Test("runInExecutor runs the closure on another thread and returns its value on the loop", arguments: IOBackend.allCases)
    func runInExecutor(backend: IOBackend) async throws {
        let (value, loopThread, jobThread, afterThread) = try await runIO(backend) {
            let loop = EventLoop.current!
            let here = threadID()
            let (v, t) = try await loop.runInExecutor { (6 * 7, threadID()) }
            return (v, here, t, threadID())
        }
        #expect(value == 42)
        #expect(jobThread != loopThread)
        #expect(afterThread == loopThread)
    }

    @Test("runInExecutor rethrows the closure's error", arguments: IOBackend.allCases)
    func runInExecutorThrows(backend: IOBackend) async throws {
        await #expect(throws: Boom.self) {
            try await runIO(backend) {
                try await EventLoop.current!.runInExecutor { () throws -> Int in throw Boom(3) }
            }
        }
    }

    @Test("after shutdownDefaultExecutor, runInExecutor throws RuntimeError", arguments: IOBackend.allCases)
    func shutdown(backend: IOBackend) async throws {
        let message = try await runIO(backend) { () async throws -> String? in
            let loop = EventLoop.current!
            _ = try await loop.runInExecutor { 1 }
            try await loop.shutdownDefaultExecutor()
            do {
                _ = try await loop.runInExecutor { 2 }
                return nil
            } catch let e as AsyncioError {
                return e.description
            }
        }
        #expect(message == "RuntimeError: Executor shutdown has been called")
    }

    @Test("getaddrinfo resolves localhost and IP literals to typed addresses", arguments: IOBackend.allCases)
    func getaddrinfo(backend: IOBackend) async throws {
        let (local, literal) = try await runIO(backend) {
            let loop = EventLoop.current!
            let a = try await loop.getaddrinfo("localhost", "8080", family: AF_INET, type: Int32(SOCK_STREAM.rawValue))
            let b = try await loop.getaddrinfo("::1", "53", type: Int32(SOCK_DGRAM.rawValue))
            return (a, b)
        }
        #expect(local.contains { $0.address == (try? SocketAddress(host: "127.0.0.1", port: 8080)) })
        #expect(literal.count == 1)
        #expect(literal.first?.family == AF_INET6)
        #expect(literal.first?.address.description == "('::1', 53, 0, 0)")
    }

    @Test("a getaddrinfo failure throws OSError typed gaierror with the EAI code", arguments: IOBackend.allCases)
    func gaierror(backend: IOBackend) async throws {
        do {
            _ = try await runIO(backend) {
                try await EventLoop.current!.getaddrinfo("not-an-address", "80", flags: AI_NUMERICHOST)
            }
            Issue.record("no error")
        } catch let e as OSError {
            #expect(e.typeName == "gaierror")
            #expect(e.errno == EAI_NONAME)
        }
    }

    @Test("addSignalHandler runs the handler on the loop when the signal arrives; remove says whether it removed", arguments: IOBackend.allCases)
    func signals(backend: IOBackend) async throws {
        let hits = Shared(0)
        let (removed, again) = try await runIO(backend) {
            let loop = EventLoop.current!
            try loop.addSignalHandler(SIGUSR1) { hits.value += 1 }
            raise(SIGUSR1)
            try await waitUntil("the SIGUSR1 handler running") { hits.value > 0 }
            return (try loop.removeSignalHandler(SIGUSR1), try loop.removeSignalHandler(SIGUSR1))
        }
        #expect(hits.value == 1)
        #expect(removed)
        #expect(!again)
    }

    @Test("addSignalHandler refuses SIGKILL and signals out of range", arguments: IOBackend.allCases)
    func badSignals(backend: IOBackend) async throws {
        let errors = try await runIO(backend) { () async throws -> [String] in
            let loop = EventLoop.current!
            var out: [String] = []
            for sig: Int32 in [SIGKILL, 0, 99] {
                do { try loop.addSignalHandler(sig) {} } catch let e as AsyncioError { out.append(e.description) }
            }
            return out
        }
        #expect(errors == ["RuntimeError: sig 9 cannot be caught", "ValueError: sig 0 out of range(1, 65)",
                           "ValueError: sig 99 out of range(1, 65)"])
    }
}
