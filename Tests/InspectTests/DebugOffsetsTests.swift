// The debug offsets table (Include/casyncio/debug.h) against the real
// layout: public structs through Swift's own view of them (the Clang
// importer lays them out independently of offsetof), bitfields by probing,
// internal structs through live objects read at the published offsets.

import CAsyncio
import CAsyncioInspect
import Foundation
import InspectFixtureSupport
import Testing

private var table: ca_debug_offsets { ca_debug_offsets_get().pointee }

private func offset<T>(_ path: PartialKeyPath<T>) -> UInt64 {
    UInt64(MemoryLayout<T>.offset(of: path)!)
}

private func size<T>(_: T.Type) -> UInt64 { UInt64(MemoryLayout<T>.size) }

private func address<T>(_ p: UnsafePointer<T>) -> UInt64 { UInt64(UInt(bitPattern: p)) }

/// Reads a T at `base + off` of this process.
private func peek<T>(_ base: UnsafeRawPointer, _ off: UInt64, as: T.Type) -> T {
    base.loadUnaligned(fromByteOffset: Int(off), as: T.self)
}

@Suite("Debug offsets table", .serialized)
struct DebugOffsetsTests {

    @Test("the header identifies the table and points at itself and the registry")
    func header() {
        let h = table.header
        let cookie = withUnsafeBytes(of: h.cookie) { String(decoding: $0, as: UTF8.self) }
        #expect(cookie == CA_DEBUG_COOKIE)
        #expect(h.version == UInt32(CA_DEBUG_VERSION))
        #expect(UInt64(h.size) == size(ca_debug_offsets.self))
        #expect(UInt64(h.header_size) == size(ca_debug_header.self))
        #expect(h.pointer_size == 8 && h.byte_order == 1 && h.flags == 0)
        #expect(h.self_addr.u64 == address(ca_debug_offsets_get()))
        #expect(h.registry.u64 != 0)
        // every sub-table says how big it is, so readers can skip what they do not know
        #expect(table.object.table_size == size(ca_debug_object_offsets.self))
        #expect(table.type.table_size == size(ca_debug_type_offsets.self))
        #expect(table.future.table_size == size(ca_debug_future_offsets.self))
        #expect(table.task.table_size == size(ca_debug_task_offsets.self))
        #expect(table.coro.table_size == size(ca_debug_coro_offsets.self))
        #expect(table.loop.table_size == size(ca_debug_loop_offsets.self))
        #expect(table.tstate.table_size == size(ca_debug_tstate_offsets.self))
        #expect(table.registry.table_size == size(ca_debug_registry_offsets.self))
    }

    @Test("the table lives in the .casyncio_debug section of the binary")
    func section() throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var reader: OpaquePointer?
        var err = [CChar](repeating: 0, count: 256)
        #expect(cai_reader_open_pid(getpid(), &reader, &err, err.count) == CAI_OK)
        defer { cai_reader_close(reader) }
        var found = [UInt64](repeating: 0, count: 4)
        var n = 0
        #expect(cai_find_tables(reader, &found, found.count, &n, &err, err.count) == CAI_OK, "\(exe)")
        #expect(found.prefix(n).contains(address(ca_debug_offsets_get())))
    }

    @Test("object, type, value and ptrset offsets match the structs")
    func objectAndType() {
        #expect(table.object.size == size(ca_object.self))
        #expect(table.object.ob_refcnt == offset(\ca_object.ob_refcnt))
        #expect(table.object.ob_type == offset(\ca_object.ob_type))
        #expect(table.type.size == size(ca_type.self))
        #expect(table.type.tp_name == offset(\ca_type.tp_name))
        #expect(table.type.tp_basicsize == offset(\ca_type.tp_basicsize))
        #expect(table.type.tp_base == offset(\ca_type.tp_base))
        // the type addresses: what live objects point at
        var loop: OpaquePointer?
        #expect(ca_loop_new(nil, &loop) == nil)
        if_silence_loop(loop)
        let fut = ca_future_new(loop)!
        let coro = ca_sleep(0, ca_none())!
        var task: UnsafeMutablePointer<ca_task>?
        #expect(ca_task_new(loop, ca_sleep(0, ca_none()), nil, &task) == nil)
        func typeOf(_ p: UnsafeRawPointer) -> UInt64 { peek(p, table.object.ob_type, as: UInt64.self) }
        func baseOf(_ type: UInt64) -> UInt64 {
            peek(UnsafeRawPointer(bitPattern: UInt(type))!, table.type.tp_base, as: UInt64.self)
        }
        #expect(typeOf(fut) == table.type.future_type.u64)
        #expect(typeOf(task!) == table.type.task_type.u64)
        #expect(baseOf(table.type.task_type.u64) == table.type.future_type.u64)
        #expect(baseOf(typeOf(coro)) == table.type.cframe_type.u64)
        #expect(baseOf(table.type.cframe_type.u64) == table.type.coro_type.u64)
        #expect(typeOf(UnsafeRawPointer(loop!)) == table.type.loop_type.u64)
        let name = UnsafePointer<CChar>(bitPattern: UInt(peek(UnsafeRawPointer(bitPattern: UInt(table.type.task_type.u64))!,
                                                               table.type.tp_name, as: UInt64.self)))!
        #expect(String(cString: name) == "Task")
        ca_coro_close(coro)
        ca_decref(coro)
        ca_decref(fut)
        _ = ca_loop_close(loop)
        ca_decref(task)
        ca_decref(UnsafeMutableRawPointer(loop))
        let f = table.future
        #expect(f.value_size == size(ca_value.self))
        #expect(f.value_kind == offset(\ca_value.kind))
        #expect(f.value_payload == offset(\ca_value.u))
        #expect(f.ptrset_size == size(ca_ptrset.self))
        #expect(f.ptrset_used == offset(\ca_ptrset.used))
        #expect(f.ptrset_mask == offset(\ca_ptrset.mask))
        #expect(f.ptrset_table == offset(\ca_ptrset.table))
        #expect(f.ptrset_dummy == 1)
        #expect(f.callback_list_len == offset(\ca_callback_list.len))
    }

    @Test("future and task offsets match the structs, bitfields included")
    func futureAndTask() {
        let f = table.future
        #expect(f.size == size(ca_future.self))
        #expect(f.loop == offset(\ca_future.fut_loop))
        #expect(f.callback0 == offset(\ca_future.fut_callback0))
        #expect(f.callbacks == offset(\ca_future.fut_callbacks))
        #expect(f.exception == offset(\ca_future.fut_exception))
        #expect(f.result == offset(\ca_future.fut_result))
        #expect(f.cancel_msg == offset(\ca_future.fut_cancel_msg))
        #expect(f.awaited_by == offset(\ca_future.fut_awaited_by))
        #expect(f.state == offset(\ca_future.fut_state))
        #expect(f.is_task == offset(\ca_future.fut_is_task))
        #expect(f.awaited_by_is_set == offset(\ca_future.fut_awaited_by_is_set))
        let logTB = if_probe_future_log_tb(), blocking = if_probe_future_blocking()
        #expect(f.flags == UInt64(logTB.offset) && f.log_tb_mask == UInt64(logTB.mask))
        #expect(f.flags == UInt64(blocking.offset) && f.blocking_mask == UInt64(blocking.mask))

        let t = table.task
        #expect(t.size == size(ca_task.self))
        #expect(t.size == UInt64(ca_TaskType.tp_basicsize))
        #expect(t.name == offset(\ca_task.task_name))
        #expect(t.name_id == offset(\ca_task.task_name_id))
        #expect(t.coro == offset(\ca_task.task_coro))
        #expect(t.fut_waiter == offset(\ca_task.task_fut_waiter))
        #expect(t.node == offset(\ca_task.task_node))
        #expect(t.node_next == offset(\ca_llist_node.next))
        #expect(t.node_prev == offset(\ca_llist_node.prev))
        #expect(t.num_cancels_requested == offset(\ca_task.task_num_cancels_requested))
        #expect(t.tid == offset(\ca_task.task_tid))
        #expect(t.context == offset(\ca_task.task_context))
        let mustCancel = if_probe_task_must_cancel()
        #expect(t.flags == UInt64(mustCancel.offset) && t.must_cancel_mask == UInt64(mustCancel.mask))
        // the head is shared: a task is a future at the same offsets
        #expect(offset(\ca_task.task_state) == f.state)
        #expect(offset(\ca_task.task_awaited_by) == f.awaited_by)
    }

    @Test("coroutine offsets match ca_coro")
    func coroutine() {
        let c = table.coro
        #expect(c.size == size(ca_coro.self))
        #expect(c.name == offset(\ca_coro.co_name))
        #expect(c.filename == offset(\ca_coro.co_filename))
        #expect(c.firstlineno == offset(\ca_coro.co_firstlineno))
        #expect(c.lineno == offset(\ca_coro.co_lineno))
        #expect(c.awaiting == offset(\ca_coro.co_awaiting))
        #expect(c.state == offset(\ca_coro.co_state))
    }

    @Test("loop offsets read a live loop's state")
    func loop() throws {
        let l = table.loop
        #expect(l.size == UInt64(ca_LoopType.tp_basicsize))
        var loop: OpaquePointer?
        #expect(ca_loop_new(nil, &loop) == nil)
        let base = UnsafeRawPointer(loop!)
        #expect(peek(base, table.object.ob_type, as: UInt64.self) == table.type.loop_type.u64)
        for _ in 0..<3 { #expect(ca_loop_call_soon(loop, { _ in }, nil, nil, nil, nil) == nil) }
        #expect(ca_loop_call_later(loop, 1_000_000_000, { _ in }, nil, nil, nil, nil) == nil)
        #expect(peek(base, l.ready_len, as: UInt.self) == UInt(ca_loop_ready_count(loop)))
        #expect(peek(base, l.ready_len, as: UInt.self) == 3)
        #expect(peek(base, l.timer_count, as: UInt.self) == 1)
        #expect(peek(base, l.running, as: Bool.self) == false)
        #expect(peek(base, l.thread_id, as: UInt64.self) == 0)
        let ops = try #require(UnsafeRawPointer(bitPattern: UInt(peek(base, l.backend_ops, as: UInt64.self))))
        let name = try #require(UnsafePointer<CChar>(bitPattern: UInt(peek(ops, l.backend_ops_name, as: UInt64.self))))
        #expect(String(cString: name) == String(cString: ca_loop_backend_name(loop)))
        if registryHooksInstalled {
            // the registry lists it (newest first)
            let reg = try #require(UnsafeRawPointer(bitPattern: UInt(table.header.registry.u64)))
            var cur = peek(reg, table.registry.loops, as: UInt64.self)
            var seen = false
            while cur != 0 && !seen {
                seen = cur == UInt64(UInt(bitPattern: base))
                cur = peek(UnsafeRawPointer(bitPattern: UInt(cur))!, l.registry_next, as: UInt64.self)
            }
            #expect(seen)
        }
        #expect(ca_loop_close(loop) == nil)
        #expect(peek(base, l.closed, as: Bool.self) == true)
        ca_decref(UnsafeMutableRawPointer(loop))
    }

    @Test("the registry leads to this thread's state and task list",
          .enabled(if: skipNote(registryHooksInstalled ? nil : "the debug registry hooks are not installed")))
    func threadState() throws {
        var loop: OpaquePointer?
        #expect(ca_loop_new(nil, &loop) == nil)
        if_silence_loop(loop)
        defer {
            _ = ca_loop_close(loop)
            ca_decref(UnsafeMutableRawPointer(loop))
        }
        var task: UnsafeMutablePointer<ca_task>?
        #expect(ca_task_new(loop, ca_sleep(10, ca_none()), nil, &task) == nil)
        defer { ca_decref(task) }
        let tid = if_gettid()
        let reg = try #require(UnsafeRawPointer(bitPattern: UInt(table.header.registry.u64)))
        var node = peek(reg, table.registry.threads, as: UInt64.self)
        var tstate: UnsafeRawPointer?
        while node != 0, tstate == nil {
            let n = UnsafeRawPointer(bitPattern: UInt(node))!
            let ts = UnsafeRawPointer(bitPattern: UInt(peek(n, table.registry.thread_node_tstate, as: UInt64.self)))!
            if peek(ts, table.tstate.thread_id, as: UInt64.self) == tid { tstate = ts }
            node = peek(n, table.registry.thread_node_next, as: UInt64.self)
        }
        let ts = try #require(tstate, "this thread is registered")
        #expect(peek(ts, table.tstate.running_loop, as: UInt64.self) == 0)
        // the new task is on this thread's list
        let head = UInt64(UInt(bitPattern: ts)) + table.tstate.tasks_head
        var cur = peek(ts, table.tstate.tasks_head + table.task.node_next, as: UInt64.self)
        var found = false
        var steps = 0
        while cur != head && cur != 0 && steps < 1_000_000 {
            if cur - table.task.node == UInt64(UInt(bitPattern: task)) { found = true }
            cur = peek(UnsafeRawPointer(bitPattern: UInt(cur))!, table.task.node_next, as: UInt64.self)
            steps += 1
        }
        #expect(found)
    }

    @Test("a task outliving its thread moves to the orphan list, and leaves it when freed",
          .enabled(if: skipNote(registryHooksInstalled ? nil : "the debug registry hooks are not installed")))
    func orphans() throws {
        var o = if_orphan()
        #expect(if_make_orphan(&o) == 0)
        let task = try #require(o.task)
        #expect(task.pointee.task_tid == 0)
        let reg = try #require(UnsafeRawPointer(bitPattern: UInt(table.header.registry.u64)))
        let head = UInt64(UInt(bitPattern: reg)) + table.registry.orphans
        func orphanList() -> [UInt64] {
            var out: [UInt64] = []
            var cur = peek(reg, table.registry.orphans + table.task.node_next, as: UInt64.self)
            while cur != head && cur != 0 && out.count < 100_000 {
                out.append(cur - table.task.node)
                cur = peek(UnsafeRawPointer(bitPattern: UInt(cur))!, table.task.node_next, as: UInt64.self)
            }
            return out
        }
        let addr = UInt64(UInt(bitPattern: task))
        #expect(orphanList().contains(addr))
        if_release_orphan(&o)
        #expect(!orphanList().contains(addr))
    }

    @Test("after fork the child's registry lists only the forking thread",
          .enabled(if: skipNote(registryHooksInstalled ? nil : "the debug registry hooks are not installed")))
    func fork() {
        #expect(ca_debug_thread_count() >= 1)
        #expect(if_registry_threads_after_fork() == 1)
    }

    @Test("asyncio-inspect lists orphaned tasks as thread 0",
          .enabled(if: skipNote(subprocessSkipReason)))
    func orphansInInspector() throws {
        let fx = try FixtureProcess(["orphan"])
        let o = try fx.report.role("orphan")
        #expect(o.thread == 0)
        let ps = try run(inspectorPath, ["ps", "\(fx.pid)"])
        #expect(ps.status == 0)
        let rows = ps.stdout.split(separator: "\n").dropFirst(2).map { $0.split(separator: " ").map(String.init) }
        #expect(rows == [["0", hex(o.addr), "orphan", "orphaned_body", "0x0"]])
        let json = try run(inspectorPath, ["ps", "--json", "\(fx.pid)"])
        #expect(json.stdout.contains("\"orphans\":true"))
        #expect(fx.finish() == 0)
    }
}
