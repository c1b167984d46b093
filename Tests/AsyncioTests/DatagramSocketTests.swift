// DatagramSocket: UDP on the running loop with async receive and send(to:).

@testable import Asyncio
import CAsyncio
import Glibc
import Testing

@Suite("DatagramSocket")
struct DatagramSocketTests {
    @Test("a datagram sent to a bound socket is received with its sender, and the reply comes back", arguments: IOBackend.allCases)
    func roundTrip(backend: IOBackend) async throws {
        let (request, reply) = try await runIO(backend) {
            let server = try DatagramSocket(local: ("127.0.0.1", 0))
            let port = try #require(server.localAddress?.port)
            let client = try DatagramSocket(remote: ("127.0.0.1", port))
            try client.send(Array("ping".utf8))
            let d = try await server.receive()
            try server.send(Array("pong".utf8), to: d.sender)
            let r = try await client.receive()
            server.close()
            client.close()
            return (d, r)
        }
        #expect(request.data == Array("ping".utf8))
        #expect(request.sender.host == "127.0.0.1")
        #expect(reply.data == Array("pong".utf8))
    }

    @Test("an ICMP port unreachable surfaces as ConnectionRefusedError from receive", arguments: IOBackend.allCases)
    func refused(backend: IOBackend) async throws {
        let error = try await runIO(backend) { () async throws -> OSError? in
            let probe = try DatagramSocket(local: ("127.0.0.1", 0))
            let port = try #require(probe.localAddress?.port)
            probe.close()
            try await sleep(0.01)
            let client = try DatagramSocket(remote: ("127.0.0.1", port))
            defer { client.close() }
            for _ in 0..<50 {
                try client.send(Array("anyone?".utf8))
                do {
                    _ = try await timeout(0.02) { try await client.receive() }
                } catch let e as OSError {
                    return e
                } catch is TimeoutError {
                    continue
                }
            }
            return nil
        }
        #expect(error?.typeName == "ConnectionRefusedError")
        #expect(error?.errno == ECONNREFUSED)
    }

    @Test("send(to:) with a foreign address on a connected socket throws ValueError", arguments: IOBackend.allCases)
    func foreignAddress(backend: IOBackend) async throws {
        let e = try await runIO(backend) { () async throws -> String? in
            let client = try DatagramSocket(remote: ("127.0.0.1", 9))
            defer { client.close() }
            do {
                try client.send([1], to: try SocketAddress(host: "127.0.0.1", port: 10))
                return nil
            } catch let e as AsyncioError { return e.typeName }
        }
        #expect(e == "ValueError")
    }

    @Test("send(to:) an address whose host is not an IP literal throws ValueError instead of sending to 0.0.0.0",
          arguments: IOBackend.allCases)
    func malformedAddress(backend: IOBackend) async throws {
        let e = try await runIO(backend) { () async throws -> String? in
            let socket = try DatagramSocket(local: ("127.0.0.1", 0))
            defer { socket.close() }
            do {
                try socket.send([1], to: .ipv4(host: "example.invalid", port: 9))
                return nil
            } catch let e as AsyncioError { return e.typeName }
        }
        #expect(e == "ValueError")
    }

    @Test("a second receive while one waits throws RuntimeError; the first still gets the datagram",
          arguments: IOBackend.allCases)
    func concurrentReceives(backend: IOBackend) async throws {
        let (second, first) = try await runIO(backend) { () async throws -> (AsyncioError?, [UInt8]?) in
            let loop = EventLoop.current!
            let server = try DatagramSocket(local: ("127.0.0.1", 0))
            let port = try #require(server.localAddress?.port)
            let client = try DatagramSocket(remote: ("127.0.0.1", port))
            defer {
                server.close()
                client.close()
            }
            let waiting = try loop.createTask { try await server.receive().data }
            try await sleep(0)
            var second: AsyncioError?
            do {
                // (bounded: a second waiter that replaced the first would wait here)
                _ = try await timeout(5) { try await server.receive() }
            } catch let e as AsyncioError {
                second = e
            } catch is TimeoutError {}
            try client.send([7])
            let first = try? await timeout(5) { try await waiting.value }
            return (second, first)
        }
        #expect(second == AsyncioError(
            typeName: "RuntimeError", message: "receive() called while another task is already waiting for a datagram"))
        #expect(first == [7])
    }

    @Test("a socket dropped without close() is deinitialised and closes its transport, freeing its port",
          arguments: IOBackend.allCases)
    func droppedSocketCloses(backend: IOBackend) async throws {
        let (gone, rebound) = try await runIO(backend) { () async throws -> (Bool, Bool) in
            weak var weakSocket: DatagramSocket?
            var port: UInt16 = 0
            do {
                let socket = try DatagramSocket(local: ("127.0.0.1", 0))
                port = try #require(socket.localAddress?.port)
                try socket.send([1], to: try SocketAddress(host: "127.0.0.1", port: port))
                weakSocket = socket
            }
            // the close finishes once the receive in flight has completed
            // (a few iterations; the bound only keeps a regression from
            // hanging the test)
            for _ in 0..<10_000 {
                if let again = try? DatagramSocket(local: ("127.0.0.1", port)) {
                    again.close()
                    return (weakSocket == nil, true)
                }
                try await sleep(0)
            }
            return (weakSocket == nil, false)
        }
        #expect(gone, "nothing but its user holds the socket")
        #expect(rebound, "the port is free again")
    }

    @Test("receive awaited from another thread, begun while the loop is idle: the datagram is taken, and the waiter dropped, on the loop's thread",
          arguments: IOBackend.allCases)
    func receiveAwaitedFromAnotherThread(backend: IOBackend) async throws {
        let (datagram, sender, freed) = try await onThread { () throws -> (Datagram, SocketAddress?, Int) in
            let loop = try makeIOLoop(backend)
            defer {
                loop.cancelAllTasks()
                try? loop.close()
            }
            let socket = try loop.runUntilComplete { try DatagramSocket(local: ("127.0.0.1", 0)) }
            defer { socket.close() }
            guard let port = socket.localAddress?.port else { throw TestFailure("the socket has no address") }
            let (received, client, freed) = try awaitedFromAnotherThread(on: loop, { try await socket.receive() }) {
                let client = try DatagramSocket(remote: ("127.0.0.1", port))
                try client.send(Array("ping".utf8))
                return client
            }
            defer { client.close() }
            return (try received.get(), client.localAddress, freed)
        }
        #expect(datagram.data == Array("ping".utf8))
        #expect(datagram.sender == sender)
        #expect(freed == 0, "the awaiting thread freed \(freed) core blocks")
    }
}
