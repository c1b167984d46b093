// AsyncFile: open/read/write/fsync/close suspending the task, never the loop.

@testable import Asyncio
import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

@Suite("AsyncFile")
struct AsyncFileTests {
    func tempPath() -> String { "/tmp/casyncio-swift-file-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    @Test("write then read returns the same bytes; a read at end of file returns none", arguments: IOBackend.allCases)
    func roundTrip(backend: IOBackend) async throws {
        let path = tempPath()
        defer { unlink(path) }
        let (back, eof, size) = try await runIO(backend) {
            let f = try await AsyncFile.open(path, flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o600)
            let payload = (0..<10_000).map { UInt8($0 % 251) }
            let n = try await f.write(payload, at: 0)
            try await f.fsync()
            let back = try await f.read(upTo: 20_000, at: 0)
            let eof = try await f.read(upTo: 10, at: 10_000)
            try await f.close()
            return (back == payload, eof, n)
        }
        #expect(back)
        #expect(eof.isEmpty)
        #expect(size == 10_000)
    }

    @Test("opening a missing file throws FileNotFoundError with ENOENT and the operation", arguments: IOBackend.allCases)
    func missing(backend: IOBackend) async throws {
        let path = tempPath()
        do {
            _ = try await runIO(backend) { try await AsyncFile.open(path) }
            Issue.record("no error")
        } catch let e as OSError {
            #expect(e.typeName == "FileNotFoundError")
            #expect(e.errno == ENOENT)
            #expect(e.message == "[Errno 2] No such file or directory: open('\(path)')")
        }
    }

    @Test("an AsyncFile used on another loop than its own throws RuntimeError and stays usable on its own")
    func otherLoopRefused() async throws {
        let path = tempPath()
        defer { unlink(path) }
        let (refusals, back) = try await onThread { () throws -> ([String], [UInt8]) in
            let home = try makeIOLoop(.epoll)
            let other = try makeIOLoop(.epoll)
            defer {
                try? home.close()
                try? other.close()
            }
            let file = try home.runUntilComplete {
                let f = try await AsyncFile.open(path, flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o600)
                try await f.write([1, 2, 3], at: 0)
                return f
            }
            let refusals = try other.runUntilComplete { () async throws -> [String] in
                var seen: [String] = []
                for attempt in ["read", "write", "fsync", "close"] {
                    do {
                        switch attempt {
                        case "read": _ = try await file.read(upTo: 3, at: 0)
                        case "write": try await file.write([9], at: 0)
                        case "fsync": try await file.fsync()
                        default: try await file.close()
                        }
                        seen.append("\(attempt): no error")
                    } catch let e as AsyncioError {
                        seen.append("\(attempt): \(e.typeName)")
                    }
                }
                return seen
            }
            let back = try home.runUntilComplete { () async throws -> [UInt8] in
                let bytes = try await file.read(upTo: 3, at: 0)
                try await file.close()
                return bytes
            }
            return (refusals, back)
        }
        #expect(refusals == ["read: RuntimeError", "write: RuntimeError", "fsync: RuntimeError", "close: RuntimeError"])
        #expect(back == [1, 2, 3])
    }

    @Test("read(upTo:) of zero or a negative count throws ValueError", arguments: [0, -1, Int.min])
    func readCountMustBePositive(count: Int) async throws {
        let path = tempPath()
        defer { unlink(path) }
        let message = try await runIO(.epoll) { () async throws -> String? in
            let f = try await AsyncFile.open(path, flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o600)
            var message: String?
            do {
                _ = try await f.read(upTo: count)
            } catch let e as AsyncioError where e.typeName == "ValueError" {
                message = e.message
            }
            try await f.close()
            return message
        }
        #expect(message == "nbytes must be positive")
    }

    @Test("close() after a cancelled read still blocked waits for that read, then closes; the closed file refuses reads with EBADF",
          arguments: IOBackend.allCases)
    func closeWaitsForCancelledRead(backend: IOBackend) async throws {
        let fifo = tempPath()
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        let writer = Glibc.open(fifo, O_RDWR | O_CLOEXEC)
        defer { Glibc.close(writer) }
        let (onRing, waited, openWhileWaiting, openAfter, refused) =
            try await runIO(backend) { () async throws -> (Bool, Bool, Int, Int, Int32) in
            let file = try await AsyncFile.open(fifo, flags: O_RDWR)
            let reading = try createTask { try await file.read(upTo: 16) }
            // blocked: in the kernel, or in read(2) on a worker thread, which
            // is waited for (a loaded machine may start it late)
            try await sleep(0.02)
            if !ca_loop_files_use_ring(ca_get_running_loop()) {
                try await waitUntil("the read blocking in read(2) on a worker thread") { ts_thread_in_read(file.fd) != 0 }
            }
            _ = reading.cancel()
            try await waitUntil("the cancelled read ending") { reading.isDone }
            let closing = try createTask { try await file.close() }
            try await sleep(0.02)
            let waited = !closing.isDone
            let openWhileWaiting = Int(ts_fds_open_on(fifo))
            _ = write(writer, "abc", 3)
            try await waitUntil("close() returning once the read was done") { closing.isDone }
            _ = try closing.result()
            var refused: Int32 = 0
            do { _ = try await file.read(upTo: 1) } catch let e as OSError { refused = e.errno }
            return (ca_loop_files_use_ring(ca_get_running_loop()), waited, openWhileWaiting, Int(ts_fds_open_on(fifo)), refused)
        }
        if !onRing {
            // a worker thread cannot be interrupted: its read(2) still uses the fd
            #expect(waited, "close() waited for the read")
            #expect(openWhileWaiting == 2, "the file's fd stayed open (besides the writer's)")
        }
        #expect(openAfter == 1, "only the writer's fd is left")
        #expect(refused == EBADF)
    }

    @Test("a file dropped without close() is closed", arguments: IOBackend.allCases)
    func dropCloses(backend: IOBackend) async throws {
        let path = tempPath()
        defer { unlink(path) }
        let (before, after) = try await runIO(backend) { () async throws -> (Int, Int) in
            var file: AsyncFile? = try await AsyncFile.open(path, flags: O_RDWR | O_CREAT, mode: 0o600)
            let before = Int(ts_fds_open_on(path))
            _ = file?.fd
            file = nil
            return (before, Int(ts_fds_open_on(path)))
        }
        #expect(before == 1)
        #expect(after == 0)
    }
}
