import Asyncio
import CAsyncio

#if canImport(Glibc)
import Glibc
#endif

// `bench echo-server --impl swift-streams`: the echo server written against
// the Swift layer's streams, as an application would write it: a task per
// accepted connection that reads into a buffer of its own, writes the bytes
// back and drains. It speaks the echo-server protocol of casyncio_echo.h
// ("READY <port>" on stdout, "RUSAGE <user_us> <sys_us>" on SIGUSR1).

/// Runs the Swift streams echo server on 127.0.0.1:`port` until killed.
func runSwiftEchoServer(port: UInt16) throws {
    let loop = try EventLoop()
    // Clients that vanish mid-request are not news here.
    ca_loop_set_exception_handler(loop.unsafeRaw, { _, _, _ in }, nil)
    try loop.runUntilComplete {
        let server = try await loop.startServer(host: "127.0.0.1", port: port, backlog: 1024)
        reportReady(port: server.port)
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

// MARK: - The echo-server protocol

/// Where the SIGUSR1 handler formats its line: allocated before the handler
/// is installed, so the handler itself only calls getrusage and write.
private nonisolated(unsafe) let rusageLine = UnsafeMutablePointer<UInt8>.allocate(capacity: 80)

/// Installs the SIGUSR1 handler and writes "READY <port>" to stdout.
private func reportReady(port: UInt16) {
    var sa = sigaction()
    sa.__sigaction_handler.sa_handler = { _ in reportRusage() }
    sa.sa_flags = SA_RESTART
    sigemptyset(&sa.sa_mask)
    sigaction(SIGUSR1, &sa, nil)
    let line = Array("READY \(port)\n".utf8)
    _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

/// The SIGUSR1 handler: "RUSAGE <user_us> <sys_us>\n" to stdout, with
/// async-signal-safe calls only.
private func reportRusage() {
    let saved = errno
    var ru = rusage()
    getrusage(RUSAGE_SELF.rawValue, &ru)
    var p = rusageLine
    for c in "RUSAGE ".utf8 {
        p.pointee = c
        p += 1
    }
    p = putDecimal(UInt64(ru.ru_utime.tv_sec) * 1_000_000 + UInt64(ru.ru_utime.tv_usec), at: p)
    p.pointee = UInt8(ascii: " ")
    p += 1
    p = putDecimal(UInt64(ru.ru_stime.tv_sec) * 1_000_000 + UInt64(ru.ru_stime.tv_usec), at: p)
    p.pointee = UInt8(ascii: "\n")
    p += 1
    _ = write(1, rusageLine, rusageLine.distance(to: p))
    errno = saved
}

/// Writes `v` in decimal at `p`; returns the end.
private func putDecimal(_ v: UInt64, at p: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
    var digits = 1
    var rest = v / 10
    while rest != 0 {
        digits += 1
        rest /= 10
    }
    var value = v
    for i in stride(from: digits - 1, through: 0, by: -1) {
        p[i] = UInt8(ascii: "0") + UInt8(value % 10)
        value /= 10
    }
    return p + digits
}
