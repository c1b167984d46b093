// The latency workloads: wakeup_latency (call_soon_threadsafe to callback,
// on an idle and on a busy loop) and timer_lateness (how late call_at timers
// fire while the loop serves 50 echo connections). The C core writes raw
// samples; every percentile here comes from an HdrHistogram.

import Asyncio
import CAsyncio
import CAsyncioBench
import Histogram
import SwiftBench
#if canImport(Glibc)
import Glibc
#endif

/// The latency workloads `bench run` and the suite know, by name.
enum LatencyWorkload: String, CaseIterable, Sendable {
    case wakeupLatency = "wakeup_latency"
    case timerLateness = "timer_lateness"

    static func named(_ name: String) -> LatencyWorkload? { LatencyWorkload(rawValue: name) }

    /// The issue's bar: p99 of a wake-up on an idle loop.
    static let wakeupIdleP99TargetMicros = 20.0
}

/// The percentiles of one latency measurement.
struct LatencySummary {
    let workload: String
    /// "idle", "busy" (wakeup_latency) or "50 echo conns" (timer_lateness).
    let mode: String
    /// "c", "swift", or a peer's name.
    let impl: String
    /// Samples recorded (nil for a peer, which reports only percentiles).
    let samples: UInt64?
    let p50: Double
    let p99: Double
    let p999: Double
    let max: Double
    let backend: String
    /// timer_lateness: the echo client's requests per second.
    let echoRPS: Double?

    /// The p99 bar this row is held to, if any.
    var targetP99Micros: Double? {
        workload == LatencyWorkload.wakeupLatency.rawValue && mode == "idle"
            && (impl == Implementation.c.rawValue || impl == Implementation.swift.rawValue)
            ? LatencyWorkload.wakeupIdleP99TargetMicros : nil
    }

    var passes: Bool? { targetP99Micros.map { p99 <= $0 } }

    /// Percentiles (µs) of `samplesNs` through an HdrHistogram (3 significant digits).
    init(workload: String, mode: String, impl: Implementation, samplesNs: UnsafeBufferPointer<UInt64>,
         backend: String, echoRPS: Double? = nil) {
        var h = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        for v in samplesNs { _ = h.record(Swift.max(v, 1)) }
        self.workload = workload
        self.mode = mode
        self.impl = impl.rawValue
        samples = h.totalCount
        p50 = Double(h.valueAtPercentile(50)) / 1000
        p99 = Double(h.valueAtPercentile(99)) / 1000
        p999 = Double(h.valueAtPercentile(99.9)) / 1000
        max = Double(h.max) / 1000
        self.backend = backend
        self.echoRPS = echoRPS
    }

    /// A peer's figures (its medians over its runs), idle loop.
    init(peer: String, p50: Double, p99: Double, p999: Double, max: Double?) {
        workload = LatencyWorkload.wakeupLatency.rawValue
        mode = "idle"
        impl = peer
        samples = nil
        self.p50 = p50
        self.p99 = p99
        self.p999 = p999
        self.max = max ?? .nan
        backend = "-"
        echoRPS = nil
    }

    func printJSON() {
        var fields: [(key: String, value: String)] = [
            ("workload", JSONLine.quoted(workload)), ("impl", JSONLine.quoted(impl)),
            ("mode", JSONLine.quoted(mode)), ("unit", "\"us\""), ("samples", samples.map { String($0) } ?? "null"),
            ("p50_us", BenchFormat.fixed(p50, digits: 2)), ("p99_us", BenchFormat.fixed(p99, digits: 2)),
            ("p999_us", BenchFormat.fixed(p999, digits: 2)), ("max_us", max.isNaN ? "null" : BenchFormat.fixed(max, digits: 2)),
            ("backend", JSONLine.quoted(backend)),
        ]
        if let echoRPS { fields.append(("echo_rps", BenchFormat.fixed(echoRPS, digits: 0))) }
        if let target = targetP99Micros {
            fields.append(("target_p99_us", BenchFormat.fixed(target, digits: 0)))
            fields.append(("pass", passes! ? "true" : "false"))
        }
        Report.printJSONObject(fields)
    }

    static func printTable(_ rows: [LatencySummary]) {
        guard !rows.isEmpty else { return }
        let header = ["latency", "impl", "mode", "samples", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "target"]
        let cells = rows.map { r in
            [r.workload, r.impl, r.mode, r.samples.map { String($0) } ?? "—", BenchFormat.fixed(r.p50, digits: 1),
             BenchFormat.fixed(r.p99, digits: 1), BenchFormat.fixed(r.p999, digits: 1),
             r.max.isNaN ? "—" : BenchFormat.fixed(r.max, digits: 1),
             r.targetP99Micros.map { "p99 ≤ \(BenchFormat.fixed($0, digits: 0)) µs: \(r.passes! ? "PASS" : "FAIL")" } ?? ""]
        }
        Report.printAligned(header: header, rows: cells, leftColumns: 3)
        if let lateness = rows.first(where: { $0.echoRPS != nil }) {
            print("timer_lateness: 8 chains of call_at timers (delays in [0, 2 ms)) on a loop serving 50 echo "
                  + "connections (c-protocol server) at \(BenchFormat.fixed(lateness.echoRPS!, digits: 0)) req/s, "
                  + "driven by the epoll echo client in a second thread of this process.")
        }
    }
}

/// Options of the latency workloads (`bench run wakeup_latency timer_lateness`).
struct LatencyOptions {
    /// wakeup_latency: samples per mode.
    var samples: UInt64 = 20_000
    /// timer_lateness: seconds of echo load recorded.
    var duration: Double = 3
}

/// Runs one latency workload in every mode it has, on `impl`.
func measureLatency(_ workload: LatencyWorkload, impl: Implementation, options: LatencyOptions) throws(WorkloadFailure)
    -> [LatencySummary] {
    switch (workload, impl) {
    case (.wakeupLatency, .c):
        var rows: [LatencySummary] = []
        for busy in [false, true] {
            rows.append(try measureC(workload, mode: busy ? "busy" : "idle", capacity: options.samples) { opts, buf, out in
                opts.busy = busy
                return cab_run_wakeup_latency(&opts, buf, &out)
            })
        }
        return rows
    case (.wakeupLatency, .swift):
        var rows: [LatencySummary] = []
        for busy in [false, true] { rows.append(try swiftWakeupLatency(samples: options.samples, busy: busy)) }
        return rows
    case (.timerLateness, .c):
        let cap = max(options.samples, 200_000)
        return [try measureC(workload, mode: "50 echo conns", capacity: cap) { opts, buf, out in
            opts.duration_s = options.duration
            return cab_run_timer_lateness(&opts, buf, &out)
        }]
    case (.timerLateness, .swift):
        throw WorkloadFailure(workload: workload.rawValue, message: "no Swift-layer version (the Swift layer has no TCP server yet)")
    }
}

private func measureC(_ workload: LatencyWorkload, mode: String, capacity: UInt64,
                      _ body: (inout cab_latency_options, UnsafeMutablePointer<UInt64>, inout cab_latency_result) -> Int32)
    throws(WorkloadFailure) -> LatencySummary {
    let buf = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: Int(capacity))
    defer { buf.deallocate() }
    var opts = cab_latency_options()
    opts.samples = capacity
    var out = cab_latency_result()
    if body(&opts, buf.baseAddress!, &out) != 0 {
        throw WorkloadFailure(workload: workload.rawValue, message: cString(of: out.error))
    }
    return LatencySummary(workload: workload.rawValue, mode: mode, impl: .c,
                          samplesNs: UnsafeBufferPointer(rebasing: buf[0..<Int(out.count)]),
                          backend: cString(of: out.backend),
                          echoRPS: workload == .timerLateness ? out.echo_rps : nil)
}

// MARK: - The Swift layer's wakeup_latency

/// What the sender thread and the loop's callbacks share.
///
/// Safety of `@unchecked Sendable`: `sendNs` and `done` are atomics (C11
/// atomics through the core's inbox ordering: the sender stores `sendNs`
/// before `callSoonThreadsafe`, whose inbox publishes it to the loop thread);
/// `latencies` is written only by the loop thread and read after the sender
/// is joined and the loop has stopped.
private final class WakeupShared: @unchecked Sendable {
    let loop: EventLoop
    let samples: UInt64
    let latencies: UnsafeMutableBufferPointer<UInt64>
    let sendNs = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    let done = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    /// Posted by each callback; the sender blocks on it (a spinning sender
    /// would take the CPU the woken loop thread needs).
    let ran = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    var stopping = false
    var failure: String?
    static let warmup: UInt64 = 1000

    init(loop: EventLoop, samples: UInt64) {
        self.loop = loop
        self.samples = samples
        latencies = .allocate(capacity: Int(samples))
        sendNs.initialize(to: 0)
        done.initialize(to: 0)
        sem_init(ran, 0, 0)
    }

    deinit {
        latencies.deallocate()
        sendNs.deallocate()
        done.deallocate()
        sem_destroy(ran)
        ran.deallocate()
    }
}

private func swiftWakeupLatency(samples: UInt64, busy: Bool) throws(WorkloadFailure) -> LatencySummary {
    let name = LatencyWorkload.wakeupLatency.rawValue
    do {
        let loop = try EventLoop()
        defer { try? loop.close() }
        let shared = WakeupShared(loop: loop, samples: samples)
        if busy {
            @Sendable func chain() {
                if !shared.stopping { _ = try? loop.callSoon(chain) }
            }
            for _ in 0..<16 { _ = try loop.callSoon(chain) }
        }
        var thread = pthread_t()
        let arg = Unmanaged.passRetained(shared).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let shared = Unmanaged<WakeupShared>.fromOpaque(raw!).takeRetainedValue()
            let total = WakeupShared.warmup + shared.samples
            var i: UInt64 = 0
            while i < total {
                var ts = timespec(tv_sec: 0, tv_nsec: 200_000)
                nanosleep(&ts, nil)
                cab_atomic_store_u64(shared.sendNs, cab_now_ns())
                do {
                    try shared.loop.callSoonThreadsafe {
                        let now = cab_now_ns()
                        let k = cab_atomic_load_u64(shared.done)
                        if k >= WakeupShared.warmup {
                            shared.latencies[Int(k - WakeupShared.warmup)] = now &- cab_atomic_load_u64(shared.sendNs)
                        }
                        cab_atomic_store_u64(shared.done, k + 1)
                        sem_post(shared.ran)
                    }
                } catch {
                    shared.failure = "\(error)"
                    break
                }
                i += 1
                while cab_atomic_load_u64(shared.done) != i {
                    if sem_wait(shared.ran) != 0 && errno != EINTR { break }
                }
            }
            try? shared.loop.callSoonThreadsafe { shared.stopping = true }
            try? shared.loop.stopThreadsafe()
            return nil
        }, arg)
        if rc != 0 {
            Unmanaged<WakeupShared>.fromOpaque(arg).release()
            throw WorkloadFailure(workload: name, message: "pthread_create: \(String(cString: strerror(rc)))")
        }
        try loop.runForever()
        pthread_join(thread, nil)
        if let failure = shared.failure { throw WorkloadFailure(workload: name, message: failure) }
        let backend = String(cString: ca_loop_backend_name(loop.unsafeRaw))
        return LatencySummary(workload: name, mode: busy ? "busy" : "idle", impl: .swift,
                              samplesNs: UnsafeBufferPointer(shared.latencies), backend: backend)
    } catch let failure as WorkloadFailure {
        throw failure
    } catch {
        throw WorkloadFailure(workload: name, message: "\(error)")
    }
}

// MARK: - The echo client's round trips

/// Records the echo client's round trips (nanoseconds) in an HdrHistogram
/// and fills in the client result's percentiles. Used on the client's
/// thread only.
final class LatencyRecorder {
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

    static let record: @convention(c) (UnsafeMutableRawPointer?, UInt64) -> Void = { arg, ns in
        let recorder = Unmanaged<LatencyRecorder>.fromOpaque(arg!).takeUnretainedValue()
        _ = recorder.histogram.record(max(ns, 1))
    }

    func fill(_ r: inout cab_echo_client_result) {
        r.p50_us = Double(histogram.valueAtPercentile(50)) / 1000
        r.p99_us = Double(histogram.valueAtPercentile(99)) / 1000
        r.p999_us = Double(histogram.valueAtPercentile(99.9)) / 1000
        r.max_us = Double(histogram.max) / 1000
    }
}
