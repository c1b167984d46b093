// The reader against memory it cannot trust: an image recorded from the
// fixture child, then thousands of mutated copies (flipped bits, words
// replaced by pointers into the image, by themselves or by garbage, pages
// dropped or filled with noise). Each snapshot must come back — a result or
// an error — without crashing and quickly.

import CAsyncio
import CAsyncioInspect
import Foundation
import Testing

/// A deterministic generator (SplitMix64), so a failure can be replayed.
private struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}

/// The snapshot's tasks as (address, name, frame count, awaiter count).
private func summary(_ s: UnsafeMutablePointer<cai_snapshot>) -> [String] {
    let tasks = UnsafeBufferPointer(start: s.pointee.tasks, count: s.pointee.ntasks)
    return tasks.map {
        "\(hex($0.addr)) \(String(cString: cai_snapshot_string(s, $0.name))) \($0.frames_len) \($0.awaiters_len) \($0.thread_id)"
    }
}

/// Takes a snapshot of `image`; returns the status and the time it took.
private func snapshot(_ image: OpaquePointer, table: UInt64) -> (cai_status, Double, [String]) {
    var reader: OpaquePointer?
    guard cai_reader_open_image(image, &reader) == CAI_OK else { return (CAI_ERR_NOMEM, 0, []) }
    defer { cai_reader_close(reader) }
    var err = [CChar](repeating: 0, count: 256)
    var snap: UnsafeMutablePointer<cai_snapshot>?
    let start = DispatchTime.now().uptimeNanoseconds
    let st = cai_snapshot_take(reader, table, nil, &snap, &err, err.count)
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    defer { cai_snapshot_free(snap) }
    return (st, elapsed, snap.map(summary) ?? [])
}

@Suite("Reader on torn and foreign memory", .serialized)
struct ReaderFuzzTests {

    @Test("mutated and random memory images give a result or an error, never a crash or a hang",
          .enabled(if: skipNote(subprocessSkipReason)))
    func fuzz() throws {
        // Record every page a real snapshot of the fixture reads.
        let fx = try FixtureProcess(["tree"])
        var reader: OpaquePointer?
        var err = [CChar](repeating: 0, count: 256)
        #expect(cai_reader_open_pid(fx.pid, &reader, &err, err.count) == CAI_OK)
        let base = try #require(cai_image_new())
        defer { cai_image_free(base) }
        cai_reader_record(reader, base)
        var tables = [UInt64](repeating: 0, count: 4)
        var n = 0
        #expect(cai_find_tables(reader, &tables, tables.count, &n, &err, err.count) == CAI_OK)
        let table = tables[0]
        var live: UnsafeMutablePointer<cai_snapshot>?
        #expect(cai_snapshot_take(reader, table, nil, &live, &err, err.count) == CAI_OK)
        let expected = try summary(#require(live))
        let tasks = UnsafeBufferPointer(start: live!.pointee.tasks, count: live!.pointee.ntasks).map(\.addr)
        cai_snapshot_free(live)
        cai_reader_close(reader)
        #expect(fx.finish() == 0)
        #expect(expected.count == fx.report.taskCount)

        // The image alone reads the same.
        let (st, _, same) = snapshot(base, table: table)
        #expect(st == CAI_OK)
        #expect(same == expected)

        let pages = (0..<cai_image_page_count(base)).map { cai_image_page_addr(base, $0) }
        var rng = SplitMix64(state: 0x1D_5EED)
        var outcomes: [UInt32: Int] = [:]
        var slowest = 0.0
        let iterations = 3000
        for iteration in 0..<iterations {
            let img = try #require(cai_image_clone(base))
            defer { cai_image_free(img) }
            func word(at addr: UInt64, _ value: UInt64) {
                var v = value
                _ = cai_image_add(img, addr & ~7, &v, 8)
            }
            let mutations = 1 + rng.below(4)
            for _ in 0..<mutations {
                let page = rng.below(cai_image_page_count(img))  // index into the (maybe shrunk) image
                switch rng.below(7) {
                case 0: // flip bits
                    let bytes = cai_image_page_bytes(img, page)!
                    for _ in 0..<(1 + rng.below(16)) { bytes[rng.below(4096)] ^= UInt8(1 << rng.below(8)) }
                case 1: // a word of a task (its links, name, coroutine, awaiters) becomes a pointer elsewhere
                    let t = tasks[rng.below(tasks.count)]
                    word(at: t + UInt64(rng.below(256)), pages[rng.below(pages.count)] + UInt64(rng.below(4096)))
                case 2: // a task word points back into the task list: cycles and repeats
                    let t = tasks[rng.below(tasks.count)], u = tasks[rng.below(tasks.count)]
                    word(at: t + UInt64(rng.below(256)), u + UInt64(rng.below(256)))
                case 3: // a word of any page becomes garbage or an extreme value
                    let values: [UInt64] = [0, 1, 8, 0xFFFF_FFFF_FFFF_FFFF, 0x7FFF_FFFF, rng.next(),
                                            pages[rng.below(pages.count)]]
                    word(at: cai_image_page_addr(img, page) + UInt64(rng.below(4096)), values[rng.below(values.count)])
                case 4: // the table itself
                    word(at: table + UInt64(rng.below(Int(MemoryLayout<ca_debug_offsets>.size))),
                         [0, 1, 4096, 1 << 40, rng.next()][rng.below(5)])
                case 5: // a page disappears
                    if cai_image_page_count(img) > 1 { cai_image_drop_page(img, rng.below(cai_image_page_count(img))) }
                default: // a page becomes noise
                    let bytes = cai_image_page_bytes(img, page)!
                    for i in stride(from: 0, to: 4096, by: 8) {
                        var v = rng.next()
                        withUnsafeBytes(of: &v) { UnsafeMutableRawPointer(bytes + i).copyMemory(from: $0.baseAddress!, byteCount: 8) }
                    }
                }
            }
            let (status, elapsed, _) = snapshot(img, table: table)
            outcomes[status.rawValue, default: 0] += 1
            slowest = max(slowest, elapsed)
            if elapsed > 2 {
                Issue.record("iteration \(iteration) took \(elapsed) s")
                break
            }
        }
        print("fuzz: \(iterations) images, outcomes \(outcomes.sorted { $0.key < $1.key }), slowest \(slowest) s")
        #expect(slowest < 2)
        // Mutations must have been caught as errors, not only read through.
        #expect(outcomes.keys.contains { $0 != CAI_OK.rawValue })
    }

    @Test("an image with no table, a bad cookie or a wrong version is refused")
    func refusedTables() throws {
        let img = try #require(cai_image_new())
        defer { cai_image_free(img) }
        var t = ca_debug_offsets()
        withUnsafeMutableBytes(of: &t.header.cookie) { $0.copyBytes(from: Array("xdebugca".utf8)) }
        t.header.version = UInt32(CA_DEBUG_VERSION) + 1
        t.header.size = UInt32(MemoryLayout<ca_debug_offsets>.size)
        t.header.header_size = UInt32(MemoryLayout<ca_debug_header>.size)
        t.header.pointer_size = 8
        t.header.byte_order = 1
        t.header.self_addr.u64 = 0x10000
        let size = MemoryLayout<ca_debug_offsets>.size
        _ = cai_image_add(img, 0x10000, &t, size)
        #expect(snapshot(img, table: 0x10000).0 == CAI_ERR_FORMAT)   // unsupported version
        #expect(snapshot(img, table: 0x20000).0 == CAI_ERR_READ)     // nothing there
        t.header.version = UInt32(CA_DEBUG_VERSION)
        t.header.self_addr.u64 = 0x30000
        _ = cai_image_add(img, 0x10000, &t, size)
        #expect(snapshot(img, table: 0x10000).0 == CAI_ERR_FORMAT)   // says it lives elsewhere
        t.header.self_addr.u64 = 0x10000
        _ = cai_image_add(img, 0x10000, &t, size)
        #expect(snapshot(img, table: 0x10000).0 == CAI_ERR_FORMAT)   // sub-tables are empty
        t = ca_debug_offsets_get().pointee  // a valid table whose registry is nowhere
        t.header.self_addr.u64 = 0x10000
        t.header.registry.u64 = 0x50000
        _ = cai_image_add(img, 0x10000, &t, size)
        #expect(snapshot(img, table: 0x10000).0 == CAI_ERR_READ)
    }
}
