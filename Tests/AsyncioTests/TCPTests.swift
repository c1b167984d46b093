// TCP and Unix stream sockets on the Swift layer: TCPServer as an
// AsyncSequence, TCPConnection's reads, writes and flow control, and the
// errors a peer can cause. Every test runs on both backends.

@testable import Asyncio
import CAsyncio
import CAsyncioTestSupport
import Glibc
import Testing

@Suite("Streams: TCP and Unix sockets")
struct TCPTests {
    @Test("an echo round trip returns every byte, for messages of 1 B to 1 MiB", arguments: IOBackend.allCases)
    func echoSizes(backend: IOBackend) async throws {
        try await runIO(backend) {
            let loop = EventLoop.current!
            let server = try await startEchoServer(loop)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            for (i, size) in [1, 2, 64, 1000, 4096, 65535, 65536, 65537, 300_000, 1 << 20].enumerated() {
                let message = pattern(size, seed: i)
                // Writing and reading at once: a 1 MiB message does not fit
                // in the buffers between the two ends.
                let writer = try loop.createTask {
                    try conn.write(message)
                    try await conn.drain()
                }
                let back = try await conn.readExactly(size)
                try await writer.value
                #expect(back == message, "size \(size)")
            }
            conn.close()
            try await conn.waitClosed()
        }
    }

    @Test("openConnection resolves a host name off the loop thread and connects", arguments: IOBackend.allCases)
    func openConnectionResolvesNames(backend: IOBackend) async throws {
        try await runIO(backend) {
            let loop = EventLoop.current!
            let server = try await startEchoServer(loop)
            let conn = try await loop.openConnection(host: "localhost", port: server.port)
            try conn.write([7, 8, 9])
            try await conn.drain()
            #expect(try await conn.readExactly(3) == [7, 8, 9])
            conn.close()
            try await conn.waitClosed()
        }
    }

    @Test("200 concurrent connections each get their own bytes back", arguments: IOBackend.allCases)
    func manyConnections(backend: IOBackend) async throws {
        let count = 200
        let ok = try await runIO(backend) {
            let loop = EventLoop.current!
            let server = try await startEchoServer(loop)
            var clients: [LoopTask<Bool>] = []
            for i in 0..<count {
                clients.append(try loop.createTask {
                    let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
                    let message = pattern(100 + i * 37, seed: i)
                    try conn.write(message)
                    try await conn.drain()
                    let back = try await conn.readExactly(message.count)
                    conn.close()
                    try await conn.waitClosed()
                    return back == message
                })
            }
            return try await gather(clients)
        }
        #expect(ok.count == count)
        #expect(ok.allSatisfy { $0 })
    }

    @Test("half-close: after writeEOF the peer reads to EOF and can still answer", arguments: IOBackend.allCases)
    func halfClose(backend: IOBackend) async throws {
        let (request, answer) = try await runIO(backend) { () async throws -> ([UInt8], [UInt8]) in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let handler = try loop.createTask { () async throws -> [UInt8] in
                let conn = try await server.accept()!
                let request = try await conn.readToEnd()
                #expect(conn.isAtEOF)
                try conn.write(Array("got ".utf8) + request)
                conn.close()
                return request
            }
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            try conn.write(Array("hello".utf8))
            try conn.writeEOF()
            let answer = try await conn.readToEnd()
            return (try await handler.value, answer)
        }
        #expect(request == Array("hello".utf8))
        #expect(answer == Array("got hello".utf8))
    }

    @Test("a peer that resets mid-stream makes the pending read throw connectionReset", arguments: IOBackend.allCases)
    func resetMidStream(backend: IOBackend) async throws {
        let error = try await runIO(backend) { () async throws -> OSError? in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let peer = try await server.accept()!
            try conn.write(Array("ping".utf8))
            #expect(try await peer.readExactly(4) == Array("ping".utf8))
            // SO_LINGER 0: closing sends RST instead of FIN.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            #expect(setsockopt(peer.fileDescriptor, SOL_SOCKET, SO_LINGER, &linger,
                               socklen_t(MemoryLayout<Glibc.linger>.size)) == 0)
            let reader = try loop.createTask { try await conn.read() }
            try await sleep(0)
            peer.abort()
            do {
                let got = try await reader.value
                Issue.record("the read returned \(got.count) bytes instead of failing")
                return nil
            } catch let e as OSError {
                return e
            }
        }
        let e = try #require(error)
        #expect(e.kind == .connectionReset)
        #expect(e.errno == ECONNRESET)
        #expect(e.operation == "recv")
    }

    @Test("after a reset, writes are dropped and drain throws the reset", arguments: IOBackend.allCases)
    func drainAfterReset(backend: IOBackend) async throws {
        let error = try await runIO(backend) { () async throws -> OSError? in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let peer = try await server.accept()!
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            #expect(setsockopt(peer.fileDescriptor, SOL_SOCKET, SO_LINGER, &linger,
                               socklen_t(MemoryLayout<Glibc.linger>.size)) == 0)
            peer.abort()
            await #expect(throws: OSError.self) { try await conn.read() }
            try conn.write(Array("into the void".utf8))
            do {
                try await conn.drain()
                return nil
            } catch let e as OSError {
                return e
            }
        }
        let e = try #require(error)
        #expect(e.kind == .connectionReset)
    }

    @Test("a second read while one waits throws RuntimeError; the first still gets the data",
          arguments: IOBackend.allCases)
    func concurrentReads(backend: IOBackend) async throws {
        let (second, first) = try await runIO(backend) { () async throws -> (AsyncioError?, [UInt8]) in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let peer = try await server.accept()!
            let waiting = try loop.createTask { try await conn.read() }
            try await sleep(0)
            var second: AsyncioError?
            do {
                _ = try await conn.readExactly(1)
            } catch let e as AsyncioError {
                second = e
            }
            try peer.write(Array("data".utf8))
            return (second, try await waiting.value)
        }
        #expect(second == AsyncioError(
            typeName: "RuntimeError",
            message: "readexactly() called while another coroutine is already waiting for incoming data"))
        #expect(first == Array("data".utf8))
    }

    @Test("cancelling a read whose data arrived in the race loses no byte: the next read gets it",
          arguments: IOBackend.allCases)
    func cancelledReadKeepsData(backend: IOBackend) async throws {
        try backend.requireAvailable()
        try await onThread {
            let loop = try makeIOLoop(backend)
            defer {
                loop.cancelAllTasks()
                try? loop.close()
            }
            let (server, conn, peer) = try loop.runUntilComplete { () async throws -> (TCPServer, TCPConnection, TCPConnection) in
                let server = try await loop.startServer(host: "127.0.0.1", port: 0)
                let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
                return (server, conn, try await server.accept()!)
            }
            let reading = try loop.createTask { try await conn.read(maxBytes: 100) }
            try loop.runOnce()
            #expect(!reading.isDone)
            try peer.write(Array("hello".utf8))
            // Step until the bytes are buffered: the read's waiter is done
            // and its task is scheduled, but it has not run yet.
            var steps = 0
            while conn.bufferedByteCount == 0 && steps < 1_000_000 {
                try loop.runOnce()
                steps += 1
            }
            #expect(conn.bufferedByteCount == 5)
            #expect(!reading.isDone)
            reading.cancel()
            #expect(throws: CancelledError.self) { try loop.runUntilComplete(reading) }
            let next = try loop.runUntilComplete { try await conn.read(maxBytes: 100) }
            #expect(next == Array("hello".utf8))
            conn.close()
            peer.close()
            server.close()
        }
    }

    @Test("backpressure: drain waits while the peer does not read, and returns once it has read",
          arguments: IOBackend.allCases)
    func drainWaitsForSlowReader(backend: IOBackend) async throws {
        let total = 4 << 20
        let (received, bufferAtDrain, low) = try await runIO(backend) { () async throws -> ([UInt8], Int, Int) in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            // A small reader limit and small kernel buffers: the path
            // between the two ends holds far less than `total`.
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port, limit: 4096)
            setSocketOption(conn.fileDescriptor, SOL_SOCKET, SO_RCVBUF, 16384)
            let peer = try await server.accept()!
            setSocketOption(peer.fileDescriptor, SOL_SOCKET, SO_SNDBUF, 16384)
            let message = pattern(total)
            let drained = Shared(false)
            let writer = try loop.createTask { () async throws -> Int in
                try peer.write(message)
                try await peer.drain()
                drained.value = true
                return peer.writeBufferSize
            }
            for _ in 0..<20 { try await sleep(0.005) }
            #expect(!drained.value)
            #expect(peer.writeBufferSize > peer.writeBufferLimits.high)
            var received: [UInt8] = []
            received.reserveCapacity(total)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 1)
            defer { buffer.deallocate() }
            while received.count < total {
                let n = try await conn.read(into: buffer)
                if n == 0 { break }
                received.append(contentsOf: buffer[..<n])
            }
            let atDrain = try await writer.value
            return (received, atDrain, peer.writeBufferLimits.low)
        }
        #expect(received == pattern(total))
        #expect(bufferAtDrain <= low)
    }

    @Test("setWriteBufferLimits sets what writeBufferLimits reports; nil takes asyncio's defaults")
    func writeBufferLimitsDefaults() async throws {
        let limits = try await runIO(.epoll) { () async throws -> [[Int]] in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            var seen: [[Int]] = []
            func record() { seen.append([conn.writeBufferLimits.low, conn.writeBufferLimits.high]) }
            record()
            try conn.setWriteBufferLimits(high: 1000, low: 10)
            record()
            try conn.setWriteBufferLimits(high: 1000)
            record()
            try conn.setWriteBufferLimits(low: 100)
            record()
            try conn.setWriteBufferLimits()
            record()
            conn.close()
            server.close()
            return seen
        }
        #expect(limits == [[16_384, 65_536], [10, 1000], [250, 1000], [100, 400], [16_384, 65_536]])
    }

    @Test("setWriteBufferLimits refuses limits other than high ≥ low ≥ 0 with ValueError and keeps the old ones")
    func writeBufferLimitsRefused() async throws {
        let outcome = try await runIO(.epoll) { () async throws -> ([String], [Int]) in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            try conn.setWriteBufferLimits(high: 2000, low: 500)
            var messages: [String] = []
            for (high, low) in [(10, 20), (-1, nil), (nil, -3), (100, -1)] as [(Int?, Int?)] {
                do {
                    try conn.setWriteBufferLimits(high: high, low: low)
                    messages.append("no error")
                } catch let e as AsyncioError {
                    messages.append("\(e.typeName): \(e.message ?? "")")
                }
            }
            let kept = [conn.writeBufferLimits.low, conn.writeBufferLimits.high]
            conn.close()
            server.close()
            return (messages, kept)
        }
        #expect(outcome.0 == ["ValueError: high (10) must be >= low (20) must be >= 0",
                              "ValueError: high (-1) must be >= low (-1) must be >= 0",
                              "ValueError: high (-12) must be >= low (-3) must be >= 0",
                              "ValueError: high (100) must be >= low (-1) must be >= 0"])
        #expect(outcome.1 == [500, 2000])
    }

    @Test("a raised high-water mark lets drain return while the peer reads nothing", arguments: IOBackend.allCases)
    func drainHonoursRaisedHighWater(backend: IOBackend) async throws {
        let size = 512 << 10
        // Were the mark ignored, drain would wait for a reader that never comes: the deadline ends it.
        let buffered = try await runIO(backend, timeout: 10) { () async throws -> Int in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            setSocketOption(conn.fileDescriptor, SOL_SOCKET, SO_RCVBUF, 16384)
            let peer = try await server.accept()!
            setSocketOption(peer.fileDescriptor, SOL_SOCKET, SO_SNDBUF, 16384)
            try peer.setWriteBufferLimits(high: 1 << 20)
            try peer.write(pattern(size))
            // Nobody reads `conn`: the kernel holds a few tens of KiB, the
            // rest stays buffered below the raised mark, so drain returns.
            try await peer.drain()
            let left = peer.writeBufferSize
            peer.abort()
            conn.close()
            server.close()
            return left
        }
        #expect(buffered > 64 << 10)
        #expect(buffered <= size)
    }

    @Test("readExactly at EOF throws IncompleteReadError carrying the partial bytes", arguments: IOBackend.allCases)
    func readExactlyAtEOF(backend: IOBackend) async throws {
        let error = try await runIO(backend) { () async throws -> IncompleteReadError? in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let peer = try await server.accept()!
            try peer.write(Array("abc".utf8))
            peer.close()
            do {
                _ = try await conn.readExactly(10)
                return nil
            } catch let e as IncompleteReadError {
                #expect(conn.isAtEOF)
                return e
            }
        }
        let e = try #require(error)
        #expect(e.partial == Array("abc".utf8))
        #expect(e.expected == 10)
        #expect(e.message == "3 bytes read on a total of 10 expected bytes")
    }

    @Test("a Unix socket server echoes over a Unix connection; closing it removes the socket file",
          arguments: IOBackend.allCases)
    func unixRoundTrip(backend: IOBackend) async throws {
        let path = uniqueSocketPath("unix-echo")
        let (back, peerAddress) = try await runIO(backend) { () async throws -> ([UInt8], SocketAddress?) in
            let loop = EventLoop.current!
            let server = try await loop.startUnixServer(path: path)
            let handler = try loop.createTask { try await echo(server.accept()!) }
            let conn = try await loop.openUnixConnection(path: path)
            try conn.write(Array("over a unix socket".utf8))
            try conn.writeEOF()
            let back = try await conn.readToEnd()
            try await handler.value
            server.close()
            #expect(access(path, F_OK) != 0)
            return (back, conn.peerAddress)
        }
        #expect(back == Array("over a unix socket".utf8))
        #expect(peerAddress == .unix(path: path))
    }

    @Test("connecting where nothing listens throws connectionRefused with errno", arguments: IOBackend.allCases)
    func connectionRefused(backend: IOBackend) async throws {
        // A bound socket that does not listen: its port refuses
        // connections, and nobody else can take it meanwhile.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        #expect(bound)
        let port = UInt16(bigEndian: addr.sin_port)
        let error = try await runIO(backend) { () async throws -> OSError? in
            do {
                _ = try await EventLoop.current!.openConnection(host: "127.0.0.1", port: port)
                return nil
            } catch let e as OSError {
                return e
            }
        }
        let e = try #require(error)
        #expect(e.kind == .connectionRefused)
        #expect(e.errno == ECONNREFUSED)
    }

    @Test("closing the server ends its sequence and closes the connections nobody took",
          arguments: IOBackend.allCases)
    func closeEndsSequence(backend: IOBackend) async throws {
        let (taken, leftover) = try await runIO(backend) { () async throws -> (Int, [UInt8]) in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let first = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let iterating = try loop.createTask { () async throws -> [TCPConnection] in
                var taken: [TCPConnection] = []
                for try await conn in server {
                    taken.append(conn)
                    if taken.count == 1 { break }
                }
                return taken
            }
            let taken = try await iterating.value
            // Accepted, but nobody takes it before the server closes.
            let second = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            try await waitUntil("the server accepting both connections") { server.connectionCount >= 2 }
            server.close()
            #expect(try await server.accept() == nil)
            #expect(!taken[0].isClosing)
            first.close()
            return (taken.count, try await second.readToEnd())
        }
        #expect(taken == 1)
        #expect(leftover.isEmpty)
    }

    @Test("closeClients flushes and closes every accepted connection, abortClients closes them at once; isServing ends with close()",
          arguments: IOBackend.allCases)
    func closeAndAbortClients(backend: IOBackend) async throws {
        let outcome = try await runIO(backend) { () async throws -> [String] in
            let loop = EventLoop.current!
            var log: [String] = []
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            log.append("serving \(server.isServing)")
            let client = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let accepted = try await server.accept()!
            try accepted.write(Array("bye".utf8))
            server.closeClients()
            log.append("closed closing \(accepted.isClosing)")
            log.append("client read \(String(decoding: try await client.readToEnd(), as: UTF8.self))")
            let second = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let acceptedSecond = try await server.accept()!
            server.abortClients()
            log.append("aborted closing \(acceptedSecond.isClosing)")
            try await acceptedSecond.waitClosed()
            client.close()
            second.close()
            server.close()
            log.append("serving \(server.isServing)")
            return log
        }
        #expect(outcome == ["serving true", "closed closing true", "client read bye", "aborted closing true",
                            "serving false"])
    }

    @Test("both ends report their addresses: the client's peer is the server's port", arguments: IOBackend.allCases)
    func addresses(backend: IOBackend) async throws {
        try await runIO(backend) {
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            #expect(server.addresses == [.ipv4(host: "127.0.0.1", port: server.port)])
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let peer = try await server.accept()!
            #expect(conn.peerAddress == .ipv4(host: "127.0.0.1", port: server.port))
            #expect(peer.localAddress == conn.peerAddress)
            #expect(peer.peerAddress == conn.localAddress)
            conn.close()
            peer.close()
        }
    }

    @Test("readLine and readUntil split the stream at the separator; the last line comes without one",
          arguments: IOBackend.allCases)
    func lines(backend: IOBackend) async throws {
        let parts = try await runIO(backend) { () async throws -> [[UInt8]] in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let peer = try await server.accept()!
            try peer.write(Array("one\ntwo\r\nthree".utf8))
            peer.close()
            return [try await conn.readLine(), try await conn.readUntil(Array("\r\n".utf8)),
                    try await conn.readLine(), try await conn.readLine()]
        }
        #expect(parts == [Array("one\n".utf8), Array("two\r\n".utf8), Array("three".utf8), []])
    }

    @Test("readUntil past the limit throws LimitOverrunError and keeps the data", arguments: IOBackend.allCases)
    func limitOverrun(backend: IOBackend) async throws {
        let (error, rest) = try await runIO(backend) { () async throws -> (LimitOverrunError?, [UInt8]) in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port, limit: 16)
            let peer = try await server.accept()!
            let long = Array(repeating: UInt8(ascii: "x"), count: 40)
            try peer.write(long)
            peer.close()
            var error: LimitOverrunError?
            do {
                _ = try await conn.readUntil([UInt8(ascii: "\n")])
            } catch let e as LimitOverrunError {
                error = e
            }
            return (error, try await conn.readToEnd())
        }
        let e = try #require(error)
        #expect(e.message == "Separator is not found, and chunk exceed the limit")
        #expect(rest.count == 40)
    }

    @Test("readInPlace shows the buffered bytes without copying and consumes what it showed",
          arguments: IOBackend.allCases)
    func readInPlace(backend: IOBackend) async throws {
        let (first, rest) = try await runIO(backend) { () async throws -> ([UInt8], [UInt8]) in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let peer = try await server.accept()!
            try peer.write(Array("abcdef".utf8))
            peer.close()
            try await waitUntil("6 bytes buffered") { conn.bufferedByteCount >= 6 }
            let first = try await conn.readInPlace(maxBytes: 4) { Array($0) }
            return (first, try await conn.readToEnd())
        }
        #expect(first == Array("abcd".utf8))
        #expect(rest == Array("ef".utf8))
    }

    @Test("readExactly(into:) waits for the whole buffer across writes; at EOF it throws IncompleteReadError with what came",
          arguments: IOBackend.allCases)
    func readExactlyIntoBuffer(backend: IOBackend) async throws {
        let (filled, error) = try await runIO(backend) { () async throws -> ([UInt8], IncompleteReadError?) in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            let peer = try await server.accept()!
            let writer = try loop.createTask {
                for chunk in ["ab", "cd", "ef"] {
                    try peer.write(Array(chunk.utf8))
                    try await peer.drain()
                    try await sleep(0.001)
                }
                peer.close()
            }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 5, alignment: 1)
            defer { buffer.deallocate() }
            try await conn.readExactly(into: buffer)
            try await writer.value
            let rest = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 1)
            defer { rest.deallocate() }
            do {
                try await conn.readExactly(into: rest)
                return (Array(buffer), nil)
            } catch let e as IncompleteReadError {
                return (Array(buffer), e)
            }
        }
        #expect(filled == Array("abcde".utf8))
        let e = try #require(error)
        #expect(e.partial == Array("f".utf8))
        #expect(e.expected == 4)
    }

    @Test("a dropped server releases the queue its C callback held, once its last connection is gone",
          arguments: IOBackend.allCases)
    func serverReleasesState(backend: IOBackend) async throws {
        let released = try await runIO(backend) { () async throws -> Bool in
            let loop = EventLoop.current!
            weak var state: ServerState?
            do {
                let server = try await loop.startServer(host: "127.0.0.1", port: 0)
                state = server.state
                let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
                let peer = try await server.accept()!
                conn.close()
                peer.close()
                try await conn.waitClosed()
                try await peer.waitClosed()
                server.close()
            }
            // The listening socket's cancelled accept ends within an iteration or two.
            var iterations = 0
            while state != nil && iterations < 1000 {
                try await sleep(0)
                iterations += 1
            }
            return state == nil
        }
        #expect(released)
    }

    @Test("write after writeEOF throws RuntimeError")
    func writeAfterEOF() async throws {
        let error = try await runIO(.epoll) { () async throws -> AsyncioError? in
            let loop = EventLoop.current!
            let server = try await loop.startServer(host: "127.0.0.1", port: 0)
            let conn = try await loop.openConnection(host: "127.0.0.1", port: server.port)
            try conn.writeEOF()
            defer { conn.close() }
            do {
                try conn.write(Array("late".utf8))
                return nil
            } catch let e as AsyncioError {
                return e
            }
        }
        #expect(error == AsyncioError(typeName: "RuntimeError", message: "Cannot call write() after write_eof()"))
    }

    @Test("accept awaited from another thread, begun while the loop is idle: the connection is taken, and the waiter dropped, on the loop's thread",
          arguments: IOBackend.allCases)
    func acceptAwaitedFromAnotherThread(backend: IOBackend) async throws {
        let (fromClient, freed) = try await onThread { () throws -> (Bool, Int) in
            let loop = try makeIOLoop(backend)
            defer {
                loop.cancelAllTasks()
                try? loop.close()
            }
            let server = try loop.runUntilComplete { try await loop.startServer(host: "127.0.0.1", port: 0) }
            defer { server.close() }
            let (accepted, client, freed) = try awaitedFromAnotherThread(on: loop, { try await server.accept() }) {
                try await loop.openConnection(host: "127.0.0.1", port: server.port)
            }
            defer { client.close() }
            guard let conn = try accepted.get() else { throw TestFailure("accept() returned nil") }
            defer { conn.close() }
            return (conn.peerAddress == client.localAddress, freed)
        }
        #expect(fromClient, "the accepted connection is the client's")
        #expect(freed == 0, "the awaiting thread freed \(freed) core blocks")
    }

    @Test("a stream read awaited from another thread, begun while the loop is idle, waits and reads on the loop's thread",
          arguments: IOBackend.allCases, WaitingRead.allCases)
    func readAwaitedFromAnotherThread(backend: IOBackend, read: WaitingRead) async throws {
        let (bytes, left, freed) = try await onThread { () throws -> ([UInt8], Int, Int) in
            try withConnectedPair(backend) { loop, conn, peer in
                let (bytes, _, freed) = try awaitedFromAnotherThread(on: loop, { try await read.run(conn, count: 5) }) {
                    try peer.write(Array("hello".utf8))
                }
                return (try bytes.get(), conn.bufferedByteCount, freed)
            }
        }
        #expect(bytes == Array("hello".utf8))
        #expect(left == 0, "what was read is consumed")
        #expect(freed == 0, "the awaiting thread freed \(freed) core blocks")
    }

    @Test("a read woken by data returns it even when the connection is lost before the read resumes, as CPython's read(n) and readexactly(n) do",
          arguments: [WaitingRead.readMaxBytes, .readExactly])
    func readReturnsTheDataThatWokeIt(read: WaitingRead) async throws {
        let bytes = try await onThread {
            try withConnectedPair(.epoll) { loop, conn, _ in
                try loop.runUntilComplete { () async throws -> [UInt8] in
                    // One callback: the data wakes the read, then the loss
                    // comes before the read's task runs again.
                    try loop.callSoon {
                        _ = "hi".withCString { ca_stream_reader_feed_data(conn.unsafeRawReader, $0, 2) }
                        let loss = ca_error_new(ts_error_type("ConnectionResetError"), "lost")
                        ca_stream_reader_set_exception(conn.unsafeRawReader, loss)
                        ca_decref(UnsafeMutableRawPointer(loss))
                    }
                    return try await read.run(conn, count: 2)
                }
            }
        }
        #expect(bytes == Array("hi".utf8))
    }
}

/// The reads of a ``TCPConnection`` that wait for data through the
/// reader's waiter (`_wait_for_data`).
enum WaitingRead: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case readInto = "read(into:)"
    case readMaxBytes = "read(maxBytes:)"
    case readInPlace = "readInPlace(maxBytes:_:)"
    case readExactly = "readExactly(_:)"
    case readExactlyInto = "readExactly(into:)"

    var testDescription: String { rawValue }

    /// Reads up to `count` bytes from `conn` (exactly `count` for the
    /// readExactly forms).
    nonisolated(nonsending) func run(_ conn: TCPConnection, count: Int) async throws -> [UInt8] {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
        defer { buffer.deallocate() }
        switch self {
        case .readInto:
            return Array(buffer[..<(try await conn.read(into: buffer))])
        case .readMaxBytes:
            return try await conn.read(maxBytes: count)
        case .readInPlace:
            return try await conn.readInPlace(maxBytes: count) { Array($0) }
        case .readExactly:
            return try await conn.readExactly(count)
        case .readExactlyInto:
            try await conn.readExactly(into: buffer)
            return Array(buffer)
        }
    }
}
