import Asyncio
import CAsyncio
import CAsyncioBench

// `bench echo-server --impl swift-streams`: the echo server written against
// the Swift layer's streams, as an application would write it: a task per
// accepted connection that reads into a buffer of its own, writes the bytes
// back and drains. It speaks the echo-server protocol of casyncio_echo.h
// ("READY <port>", "RUSAGE <user_us> <sys_us>" on SIGUSR1) through the C
// servers' own cab_echo_report_ready.

/// Runs the Swift streams echo server on 127.0.0.1:`port` until killed,
/// reporting to `reportFD`.
func runSwiftEchoServer(port: UInt16, reportFD: Int32) throws {
    let loop = try EventLoop()
    // Clients that vanish mid-request are not news here.
    ca_loop_set_exception_handler(loop.unsafeRaw, { _, _, _ in }, nil)
    try loop.runUntilComplete {
        let server = try await loop.startServer(host: "127.0.0.1", port: port, backlog: 1024)
        cab_echo_report_ready(server.port, reportFD)
        for try await conn in server {
            try loop.createTask { await serveEcho(conn) }
        }
    }
}

/// One connection: read → write → drain until EOF or an error.
nonisolated(nonsending) private func serveEcho(_ conn: TCPConnection) async {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
    defer {
        buffer.deallocate()
        conn.close()
    }
    do {
        while true {
            let n = try await conn.read(into: buffer)
            if n == 0 { return }
            try conn.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            try await conn.drain()
        }
    } catch {
        // A reset peer: the connection is over.
    }
}
