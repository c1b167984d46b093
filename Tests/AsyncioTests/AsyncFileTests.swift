// AsyncFile: open/read/write/fsync/close suspending the task, never the loop.

@testable import Asyncio
import CAsyncio
import Glibc
import Testing

@Suite("AsyncFile")
struct AsyncFileTests {
    func tempPath() -> String { "/tmp/casyncio-swift-file-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    @Test("write then read returns the same bytes; a read at end of file returns none", arguments: ioBackends)
    func roundTrip(backend: EventLoop.Backend) async throws {
        let path = tempPath()
        defer { unlink(path) }
        let (back, eof, size) = try await runLoop(backend: backend) {
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

    @Test("opening a missing file throws FileNotFoundError with ENOENT and the operation", arguments: ioBackends)
    func missing(backend: EventLoop.Backend) async throws {
        let path = tempPath()
        do {
            _ = try await runLoop(backend: backend) { try await AsyncFile.open(path) }
            Issue.record("no error")
        } catch let e as OSError {
            #expect(e.typeName == "FileNotFoundError")
            #expect(e.errno == ENOENT)
            #expect(e.message == "[Errno 2] No such file or directory: open('\(path)')")
        }
    }
}
