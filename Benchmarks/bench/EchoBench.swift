import ArgumentParser
import CAsyncio
import CAsyncioBench
import SwiftBench

#if canImport(Glibc)
import Glibc
#endif

// The TCP echo workload of workloads.md: `echo-server`, `echo-client`, and
// `echo`, which runs a server as a child process, drives it with the client
// and reports requests/s, latency percentiles and the server's CPU time per
// request (from the child's getrusage, over the measured window only).

/// The echo servers `bench` can start.
enum EchoImpl: String, CaseIterable, ExpressibleByArgument {
    case cProtocol = "c-protocol"
    case cStreams = "c-streams"
    case swiftStreams = "swift-streams"
    case raw
    case rawEpoll = "raw-epoll"
}

/// `bench echo-server --impl IMPL --port P`: serves until killed.
struct EchoServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "Runs an echo server on 127.0.0.1 until killed.",
        discussion: """
            Prints "READY <port>" once listening, and "RUSAGE <user_us> <sys_us>" on SIGUSR1. \
            raw is a minimal liburing server and raw-epoll a minimal epoll one: the physical \
            limits the core's servers are measured against.
            """
    )

    @Option(help: "The server: \(EchoImpl.allCases.map(\.rawValue).joined(separator: ", ")).")
    var impl: EchoImpl = .cProtocol

    @Option(help: "The port (0: any free port).")
    var port: UInt16 = 0

    @Flag(help: "Report as JSON objects ({\"event\":\"ready\",...}, {\"event\":\"rusage\",...}) instead of lines.")
    var json = false

    func run() throws {
        let reportFD = json ? try jsonReportFD(impl: impl.rawValue) : 1
        if impl == .swiftStreams {
            try runSwiftEchoServer(port: port, reportFD: reportFD)
            throw ExitCode.failure
        }
        var err = [CChar](repeating: 0, count: 256)
        _ = cab_echo_server(impl.rawValue, port, reportFD, &err, err.count)
        printError("error: echo-server: \(cBufferString(err))")
        throw ExitCode.failure
    }
}

/// The load options `echo-client` and `echo` share.
struct EchoLoadOptions: ParsableArguments {
    @Option(help: "Concurrent connections.")
    var connections: Int = 50

    @Option(help: "Bytes per message.")
    var size: Int = 64

    @Option(help: "Seconds measured (after --warmup).")
    var duration: Double = 5

    @Option(help: "Seconds of warm-up before measuring.")
    var warmup: Double = 1

    func validate() throws {
        if connections < 1 { throw ValidationError("--connections must be at least 1") }
        if size < 1 { throw ValidationError("--size must be at least 1") }
        if duration <= 0 { throw ValidationError("--duration must be positive") }
        if warmup < 0 { throw ValidationError("--warmup cannot be negative") }
    }
}

/// `bench echo-client --port P --connections C --size S --duration D`.
struct EchoClient: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-client",
        abstract: "Drives an echo server on 127.0.0.1 with a closed-loop client and prints its latencies."
    )

    @Option(help: "The server's port.")
    var port: UInt16

    @OptionGroup var load: EchoLoadOptions

    @Flag(help: "Print one JSON object instead of a line of text.")
    var json = false

    func run() throws {
        let r = try runEchoClient(port: port, load: load, mark: nil, markArg: nil)
        let m = EchoMeasurement(impl: "external", backend: "-", load: load, client: r, serverCPUMicros: nil,
                                serverUserMicros: nil)
        json ? m.printJSON() : m.printLine()
    }
}

/// `bench echo --impl IMPL --connections C --size S --duration D [--json]`.
struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "Starts an echo server as a child process, drives it, and reports throughput, latency and server CPU.",
        discussion: """
            Reports rps, p50_us, p99_us, p999_us and server_cpu_us_per_req, the last from the \
            child's getrusage over the measured window. With --pin CPU the client and the \
            server share that CPU (the stable per-round-trip latency figure).
            """
    )

    @Option(help: "The server: \(EchoImpl.allCases.map(\.rawValue).joined(separator: ", ")).")
    var impl: EchoImpl = .cProtocol

    @OptionGroup var load: EchoLoadOptions

    @Option(help: "The core's backend for the c-* servers: uring or epoll (default: the loop's choice).")
    var backend: String?

    @Option(help: "Pin the client and the server to this CPU.")
    var pin: Int?

    @Flag(help: "Print one JSON object instead of a line of text.")
    var json = false

    func run() throws {
        let child = try EchoChild(impl: impl, backend: backend, pin: pin)
        defer { child.stop() }
        if let pin { try pinSelf(to: pin) }
        var marks: [(user: UInt64, sys: UInt64)] = []
        let r = try withUnsafeMutablePointer(to: &marks) { marksPtr -> cab_echo_client_result in
            let ctx = EchoMarkContext(child: child, marks: marksPtr)
            return try withExtendedLifetime(ctx) {
                try runEchoClient(port: child.port, load: load, mark: echoMark,
                                  markArg: Unmanaged.passUnretained(ctx).toOpaque())
            }
        }
        guard marks.count == 2 else {
            printError("error: the server did not report its CPU time")
            throw ExitCode.failure
        }
        let user = Double(marks[1].user &- marks[0].user), sys = Double(marks[1].sys &- marks[0].sys)
        let backendName = impl == .raw ? "io_uring" : impl == .rawEpoll ? "epoll" : (backend ?? "auto")
        let m = EchoMeasurement(impl: impl.rawValue, backend: backendName, load: load, client: r,
                                serverCPUMicros: user + sys, serverUserMicros: user)
        json ? m.printJSON() : m.printLine()
    }
}

/// What the window's marks need: the child to ask, and where to put its answers.
final class EchoMarkContext {
    let child: EchoChild
    let marks: UnsafeMutablePointer<[(user: UInt64, sys: UInt64)]>
    init(child: EchoChild, marks: UnsafeMutablePointer<[(user: UInt64, sys: UInt64)]>) {
        self.child = child
        self.marks = marks
    }
}

/// Called by the C client as the measured window opens and closes: reads the
/// server's CPU time (user + system microseconds).
private let echoMark: @convention(c) (UnsafeMutableRawPointer?, Int32) -> Void = { arg, _ in
    let ctx = Unmanaged<EchoMarkContext>.fromOpaque(arg!).takeUnretainedValue()
    if let us = ctx.child.cpuMicros() { ctx.marks.pointee.append(us) }
}

func runEchoClient(port: UInt16, load: EchoLoadOptions,
                   mark: (@convention(c) (UnsafeMutableRawPointer?, Int32) -> Void)?,
                   markArg: UnsafeMutableRawPointer?) throws -> cab_echo_client_result {
    var opts = cab_echo_client_options()
    opts.port = port
    opts.connections = Int32(load.connections)
    opts.size = load.size
    opts.warmup_s = load.warmup
    opts.duration_s = load.duration
    opts.mark = mark
    opts.mark_arg = markArg
    var r = cab_echo_client_result()
    let recorder = LatencyRecorder()
    opts.record = LatencyRecorder.record
    opts.record_arg = Unmanaged.passUnretained(recorder).toOpaque()
    let rc = withExtendedLifetime(recorder) { cab_echo_client(&opts, &r) }
    if rc != 0 {
        let msg = withUnsafeBytes(of: r.error) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        printError("error: echo-client: \(msg)")
        throw ExitCode.failure
    }
    recorder.fill(&r)
    return r
}

func pinSelf(to cpu: Int) throws {
    let rc = cab_pin_to_cpu(0, Int32(cpu))
    if rc != 0 {
        printError("error: cannot pin to CPU \(cpu): \(String(cString: strerror(-rc)))")
        throw ExitCode.failure
    }
}

/// A NUL-terminated C string in a buffer, as a String.
func cBufferString(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The server child: this executable running `echo-server`, its stdout a pipe.
final class EchoChild {
    let pid: pid_t
    let port: UInt16
    private let output: UnsafeMutablePointer<FILE>

    init(impl: EchoImpl, backend: String?, pin: Int?) throws {
        guard let out = closeOnExecPipe() else {
            printError("error: pipe: \(String(cString: strerror(errno)))")
            throw ExitCode.failure
        }
        var env: [String] = []
        var e = environ
        while let p = e.pointee {
            let s = String(cString: p)
            if !s.hasPrefix("ASYNCIO_BACKEND=") { env.append(s) }
            e += 1
        }
        if let backend { env.append("ASYNCIO_BACKEND=\(backend)") }
        let child: pid_t
        do {
            child = try spawnProcess("/proc/self/exe", ["echo-server", "--impl", impl.rawValue, "--port", "0"],
                                     argv0: "bench", stdout: .fd(out.write), environment: env)
        } catch {
            close(out.read)
            close(out.write)
            printError("error: the echo server: \(error)")
            throw ExitCode.failure
        }
        close(out.write)
        pid = child
        output = fdopen(out.read, "r")
        if let pin { _ = cab_pin_to_cpu(child, Int32(pin)) }
        guard let line = EchoChild.readLine(output), line.hasPrefix("READY "),
              let p = UInt16(line.dropFirst(6)) else {
            kill(child, SIGTERM)
            waitForExit(child)
            printError("error: the server did not start")
            throw ExitCode.failure
        }
        port = p
    }

    /// The child's user and system CPU time in microseconds (its getrusage).
    func cpuMicros() -> (user: UInt64, sys: UInt64)? {
        kill(pid, SIGUSR1)
        guard let line = EchoChild.readLine(output), line.hasPrefix("RUSAGE ") else { return nil }
        let parts = line.split(separator: " ")
        guard parts.count == 3, let u = UInt64(parts[1]), let s = UInt64(parts[2]) else { return nil }
        return (u, s)
    }

    func stop() {
        kill(pid, SIGTERM)
        waitForExit(pid)
        fclose(output)
    }

    private static func readLine(_ f: UnsafeMutablePointer<FILE>) -> String? {
        var buf = [CChar](repeating: 0, count: 128)
        guard fgets(&buf, Int32(buf.count), f) != nil else { return nil }
        var s = cBufferString(buf)
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}

/// One echo measurement, printed as a line or as JSON.
struct EchoMeasurement {
    var impl: String
    var backend: String
    var load: EchoLoadOptions
    var client: cab_echo_client_result
    var serverCPUMicros: Double?
    var serverUserMicros: Double?

    var cpuPerRequest: Double? {
        guard let cpu = serverCPUMicros, client.requests > 0 else { return nil }
        return cpu / Double(client.requests)
    }

    var userPerRequest: Double? {
        guard let cpu = serverUserMicros, client.requests > 0 else { return nil }
        return cpu / Double(client.requests)
    }

    func printLine() {
        var line = "echo \(impl) (\(backend)) \(load.connections) conn × \(load.size) B: "
        line += "\(BenchFormat.fixed(client.rps, digits: 0)) req/s"
        line += "  p50 \(BenchFormat.fixed(client.p50_us, digits: 1)) µs"
        line += "  p99 \(BenchFormat.fixed(client.p99_us, digits: 1)) µs"
        line += "  p99.9 \(BenchFormat.fixed(client.p999_us, digits: 1)) µs"
        if let cpu = cpuPerRequest { line += "  server CPU \(BenchFormat.fixed(cpu, digits: 2)) µs/req" }
        if let user = userPerRequest { line += " (user \(BenchFormat.fixed(user, digits: 2)))" }
        print(line)
        fflush(nil)
    }

    func printJSON() {
        var fields: [(key: String, value: String)] = [
            ("workload", "\"echo\""), ("impl", JSONLine.quoted(impl)), ("backend", JSONLine.quoted(backend)),
            ("connections", String(load.connections)), ("size", String(load.size)),
            ("duration_s", BenchFormat.fixed(client.seconds, digits: 3)), ("requests", String(client.requests)),
            ("rps", BenchFormat.fixed(client.rps, digits: 1)), ("p50_us", BenchFormat.fixed(client.p50_us, digits: 2)),
            ("p99_us", BenchFormat.fixed(client.p99_us, digits: 2)), ("p999_us", BenchFormat.fixed(client.p999_us, digits: 2)),
        ]
        fields.append(("server_cpu_us_per_req", cpuPerRequest.map { BenchFormat.fixed($0, digits: 3) } ?? "null"))
        fields.append(("server_user_us_per_req", userPerRequest.map { BenchFormat.fixed($0, digits: 3) } ?? "null"))
        Report.printJSONObject(fields)
    }
}
