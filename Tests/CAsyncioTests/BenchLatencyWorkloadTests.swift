// The bench's latency workloads (casyncio_bench.h) do the work they claim:
// every sample is recorded, and bad options are refused. Their timings are
// not asserted (wall-clock figures belong to `bench`, not to tests).

import CAsyncioBench
import Testing

private func errorText(_ r: inout cab_latency_result) -> String {
    withUnsafeBytes(of: &r.error) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

@Suite("Bench latency workloads")
struct BenchLatencyWorkloadTests {

    @Test("wakeup_latency records one sample per callback, idle and busy", arguments: [false, true])
    func wakeupRecordsEverySample(_ busy: Bool) throws {
        var samples = [UInt64](repeating: 0, count: 200)
        var opts = cab_latency_options()
        opts.samples = 200
        opts.busy = busy
        opts.pace_ns = 10_000
        var out = cab_latency_result()
        let rc = samples.withUnsafeMutableBufferPointer { cab_run_wakeup_latency(&opts, $0.baseAddress, &out) }
        #expect(rc == 0, "\(errorText(&out))")
        #expect(out.count == 200)
        #expect(samples.allSatisfy { $0 > 0 }, "a sample was left unrecorded")
    }

    @Test("wakeup_latency refuses zero samples")
    func wakeupRefusesZeroSamples() {
        var opts = cab_latency_options()
        var out = cab_latency_result()
        var sample: UInt64 = 0
        #expect(cab_run_wakeup_latency(&opts, &sample, &out) == -1)
        #expect(errorText(&out).contains("samples"))
    }

    @Test("timer_lateness records timers while the echo client runs, never more than the room given")
    func latenessRecordsWithinCapacity() throws {
        let capacity = 50
        var samples = [UInt64](repeating: 0, count: capacity + 1)
        samples[capacity] = 0xDEAD
        var opts = cab_latency_options()
        opts.samples = UInt64(capacity)
        opts.connections = 4
        opts.warmup_s = 0.05
        opts.duration_s = 0.2
        var out = cab_latency_result()
        let rc = samples.withUnsafeMutableBufferPointer { cab_run_timer_lateness(&opts, $0.baseAddress, &out) }
        #expect(rc == 0, "\(errorText(&out))")
        #expect(out.count >= 1 && out.count <= UInt64(capacity))
        #expect(out.echo_requests > 0)
        #expect(samples[capacity] == 0xDEAD, "wrote past the capacity")
    }
}
