// Running a Swift body on a fresh loop with a chosen backend, for the
// tests of the Swift I/O faces (each runs on io_uring and on epoll).

@testable import Asyncio
import Testing

/// The backends the I/O face tests run on.
let ioBackends: [EventLoop.Backend] = [.ioUring, .epoll]

/// `asyncio.run(main)` on a real-clock loop with `backend`, on a thread of
/// its own; an io_uring run where the kernel refuses io_uring is skipped.
func runLoop<T: Sendable>(backend: EventLoop.Backend,
                          _ main: @escaping @Sendable () async throws -> T) async throws -> T {
    try await onThread {
        let loop: EventLoop
        do {
            loop = try EventLoop(backend: backend)
        } catch let e as OSError where backend == .ioUring {
            print("SKIPPED: io_uring is not available here (\(e))")
            try Test.cancel("io_uring is not available here")
        }
        #expect(loop.backendName == (backend == .ioUring ? "io_uring" : "epoll"))
        defer {
            loop.cancelAllTasks()
            try? loop.close()
        }
        return try loop.runUntilComplete(main)
    }
}
