"""gdb commands that print the asyncio tasks of a process linking the
swift-asyncio C core, from the debug offsets table (docs/debug-offsets.md):

    (gdb) source tools/gdb-asyncio.py
    (gdb) asyncio-pstree        # the await tree, as `asyncio-inspect pstree`
    (gdb) asyncio-ps            # the task table, as `asyncio-inspect ps`

Works on a live process and on a core dump (gdb -c CORE EXE). Only memory
reads are used, guided by the table's offsets, so the output matches
asyncio-inspect's and no debug information is needed: the table is found by
its symbol when there are symbols, else by its section in `info files`.
"""

import re
import struct

import gdb

SECTION = ".casyncio_debug"
COOKIE = b"xdebugca"
VERSION = 1
MAX_THREADS = 4096
MAX_TASKS = 1 << 20
MAX_DEPTH = 1024
MAX_AWAITERS = 1 << 16
MAX_STRING = 1024

# Field names of each sub-table, in order (all uint64), after table_size.
SUBTABLES = [
    ("object", ["size", "ob_refcnt", "ob_type"]),
    ("type", ["size", "tp_name", "tp_basicsize", "tp_base", "future_type", "task_type",
              "coro_type", "cframe_type", "loop_type"]),
    ("future", ["size", "loop", "callback0", "callbacks", "callback_list_len", "exception",
                "result", "cancel_msg", "awaited_by", "state", "is_task", "awaited_by_is_set",
                "flags", "log_tb_mask", "blocking_mask", "value_size", "value_kind",
                "value_payload", "ptrset_size", "ptrset_used", "ptrset_mask", "ptrset_table",
                "ptrset_dummy"]),
    ("task", ["size", "name", "name_id", "coro", "fut_waiter", "node", "node_next", "node_prev",
              "num_cancels_requested", "flags", "must_cancel_mask", "tid", "context"]),
    ("coro", ["size", "name", "filename", "firstlineno", "lineno", "awaiting", "state"]),
    ("loop", ["size", "thread_id", "running", "closed", "debug", "current_task", "ready_len",
              "timer_count", "iterations", "backend_ops", "backend_ops_name", "registry_next"]),
    ("tstate", ["size", "running_loop", "running_task", "tasks_head", "thread_id"]),
    ("registry", ["size", "generation", "threads", "loops", "orphans", "thread_count",
                  "loop_count", "thread_node_size", "thread_node_next", "thread_node_tstate"]),
]


class InspectError(Exception):
    pass


class Memory:
    """Reads of the inferior, with errors turned into InspectError."""

    def __init__(self):
        self.inferior = gdb.selected_inferior()
        self.strings = {}

    def read(self, addr, size, what):
        if addr < 4096 or addr >= 1 << 56:
            raise InspectError("%s pointer 0x%x is not a valid address" % (what, addr))
        try:
            return bytes(self.inferior.read_memory(addr, size))
        except gdb.MemoryError as e:
            raise InspectError("cannot read %s at 0x%x: %s" % (what, addr, e))

    def u64(self, addr, what):
        return struct.unpack("<Q", self.read(addr, 8, what))[0]

    def cstring(self, addr, what):
        if addr in self.strings:
            return self.strings[addr]
        out = b""
        while len(out) <= MAX_STRING:
            chunk = self.read(addr + len(out), 64 - (addr + len(out)) % 64, what)
            nul = chunk.find(b"\0")
            if nul >= 0:
                value = (out + chunk[:nul]).decode("utf-8", "replace")
                self.strings[addr] = value
                return value
            out += chunk
        raise InspectError("%s at 0x%x is longer than %d bytes" % (what, addr, MAX_STRING))


def u64_at(blob, off):
    return struct.unpack_from("<Q", blob, off)[0]


def u32_at(blob, off):
    return struct.unpack_from("<I", blob, off)[0]


def find_tables():
    """Addresses of every copy of the table in the inferior."""
    found = []
    try:
        sym = gdb.lookup_global_symbol("ca_debug_offsets_table")
        if sym is not None:
            found.append(int(sym.value().address))
    except gdb.error:
        pass
    if not found:
        try:
            found.append(int(gdb.parse_and_eval("(unsigned long)&ca_debug_offsets_table")))
        except gdb.error:
            pass
    # Every objfile (shared objects too) lists its sections in `info files`.
    text = gdb.execute("info files", to_string=True)
    for m in re.finditer(r"(0x[0-9a-f]+) - 0x[0-9a-f]+ is " + re.escape(SECTION) + r"\b", text):
        addr = int(m.group(1), 16)
        if addr not in found:
            found.append(addr)
    if not found:
        raise InspectError("no %s section in the inferior: it does not link the swift-asyncio core" % SECTION)
    return found


def load_table(mem, addr):
    head = mem.read(addr, 48, "debug offsets table")
    if head[:8] != COOKIE:
        raise InspectError("no debug offsets table at 0x%x (bad cookie)" % addr)
    version, size, header_size = struct.unpack_from("<III", head, 8)
    pointer_size, byte_order = head[20], head[21]
    self_addr, registry = struct.unpack_from("<QQ", head, 24)
    if version != VERSION:
        raise InspectError("the process uses debug offsets format %d; this script reads format %d"
                           % (version, VERSION))
    if pointer_size != 8 or byte_order != 1:
        raise InspectError("only 64-bit little-endian processes are supported")
    if self_addr != addr:
        raise InspectError("the table at 0x%x says it lives at 0x%x" % (addr, self_addr))
    if size > 65536 or header_size > size:
        raise InspectError("debug offsets table has a bad size")
    raw = mem.read(addr, size, "debug offsets table")
    t = {"registry_addr": registry}
    pos = header_size
    for name, fields in SUBTABLES:
        if pos + 8 > size:
            raise InspectError("debug offsets sub-table %s is missing" % name)
        table_size = u64_at(raw, pos)
        if table_size < 8 * (len(fields) + 1) or table_size > size - pos:
            raise InspectError("debug offsets sub-table %s is truncated" % name)
        t[name] = {f: u64_at(raw, pos + 8 * (i + 1)) for i, f in enumerate(fields)}
        pos += table_size
    return t


class Walker:
    """The registry, task lists, coroutine chains and awaiters (the same
    walk as Sources/CAsyncioInspect/snapshot.c)."""

    def __init__(self, mem, t):
        self.mem, self.t = mem, t
        self.type_kinds = {}
        self.chains = {}
        self.listed = set()

    def is_subtype(self, type_addr, root):
        key = (type_addr, root)
        if key not in self.type_kinds:
            cur, depth, ok = type_addr, 0, False
            while cur and depth < 16:
                if cur == root:
                    ok = True
                    break
                cur = self.mem.u64(cur + self.t["type"]["tp_base"], "type object")
                depth += 1
            self.type_kinds[key] = ok
        return self.type_kinds[key]

    def frames(self, coro):
        co = self.t["coro"]
        out = []
        while coro:
            if len(out) == MAX_DEPTH:
                raise InspectError("await chain longer than %d coroutines" % MAX_DEPTH)
            blob = self.mem.read(coro, co["size"], "coroutine")
            if not self.is_subtype(u64_at(blob, self.t["object"]["ob_type"]), self.t["type"]["coro_type"]):
                raise InspectError("0x%x is not a coroutine" % coro)
            if blob[co["state"]] == 3:
                break
            name = u64_at(blob, co["name"])
            fname = u64_at(blob, co["filename"])
            lineno = struct.unpack_from("<i", blob, co["lineno"])[0]
            if lineno == 0:  # no await line recorded (a Swift body): its first line
                lineno = struct.unpack_from("<i", blob, co["firstlineno"])[0]
            out.append((self.mem.cstring(name, "coroutine name") if name else "",
                        self.mem.cstring(fname, "coroutine file name") if fname else "",
                        lineno))
            coro = u64_at(blob, co["awaiting"])
        out.reverse()  # innermost first
        return out

    def task_frames(self, task, coro):
        if task not in self.chains:
            self.chains[task] = self.frames(coro)
        return self.chains[task]

    def awaiter(self, addr):
        fo = self.t["future"]
        blob = self.mem.read(addr, fo["size"], "awaiter")
        typ = u64_at(blob, self.t["object"]["ob_type"])
        if not self.is_subtype(typ, self.t["type"]["future_type"]):
            raise InspectError("awaiter 0x%x is not a future" % addr)
        if not blob[fo["is_task"]]:
            return (addr, False, [])
        tblob = self.mem.read(addr, self.t["task"]["size"], "awaiting task")
        return (addr, True, self.task_frames(addr, u64_at(tblob, self.t["task"]["coro"])))

    def awaiters(self, awaited_by, is_set):
        fo = self.t["future"]
        if not awaited_by:
            return []
        if not is_set:
            return [self.awaiter(awaited_by)]
        blob = self.mem.read(awaited_by, fo["ptrset_size"], "awaited_by set")
        used, mask = u64_at(blob, fo["ptrset_used"]), u64_at(blob, fo["ptrset_mask"])
        if mask >= MAX_AWAITERS or (mask + 1) & mask or used > mask + 1:
            raise InspectError("awaited_by set 0x%x has a bad size" % awaited_by)
        slots = struct.unpack("<%dQ" % (mask + 1),
                              self.mem.read(u64_at(blob, fo["ptrset_table"]), 8 * (mask + 1), "set table"))
        out = []
        for s in slots:
            if len(out) == used:
                break
            if s and s != fo["ptrset_dummy"]:
                out.append(self.awaiter(s))
        return out

    def task(self, addr, blob, thread_id, running_task):
        t, fo = self.t["task"], self.t["future"]
        name = u64_at(blob, t["name"])
        if name:
            name = self.mem.cstring(name, "task name")
        else:
            name = "Task-%d" % u64_at(blob, t["name_id"])
        return {
            "id": addr,
            "name": name,
            "thread_id": thread_id,
            "stack": self.task_frames(addr, u64_at(blob, t["coro"])),
            "awaited_by": self.awaiters(u64_at(blob, fo["awaited_by"]), blob[fo["awaited_by_is_set"]]),
            "running": addr == running_task,
            "waiting_on": u64_at(blob, t["fut_waiter"]),
        }

    def task_list(self, head, thread_id, running_task, total):
        t = self.t["task"]
        out = []
        prev = head
        cur = self.mem.u64(head + t["node_next"], "task list head")
        if cur == 0:
            return out
        while cur != head:
            if total + len(out) >= MAX_TASKS:
                raise InspectError("more than %d tasks (a corrupted list?)" % MAX_TASKS)
            if cur % 8 or cur < t["node"]:
                raise InspectError("task list of thread %d has a bad link 0x%x" % (thread_id, cur))
            addr = cur - t["node"]
            if addr in self.listed:
                raise InspectError("task 0x%x is listed twice" % addr)
            self.listed.add(addr)
            blob = self.mem.read(addr, t["size"], "task")
            if u64_at(blob, self.t["object"]["ob_type"]) != self.t["type"]["task_type"] \
                    or blob[self.t["future"]["is_task"]] != 1:
                raise InspectError("0x%x on the task list of thread %d is not a Task" % (addr, thread_id))
            if u64_at(blob, t["node"] + t["node_prev"]) != prev:
                raise InspectError("task list of thread %d changed while being read" % thread_id)
            out.append(self.task(addr, blob, thread_id, running_task))
            prev, cur = cur, u64_at(blob, t["node"] + t["node_next"])
        return out

    def threads(self):
        """[(thread_id, [task, ...])], registration order, orphans (0) last."""
        r, ts = self.t["registry"], self.t["tstate"]
        reg = self.t["registry_addr"]
        out, total = [], 0
        node = self.mem.u64(reg + r["threads"], "registry")
        while node:
            if len(out) == MAX_THREADS:
                raise InspectError("more than %d threads" % MAX_THREADS)
            tstate = self.mem.u64(node + r["thread_node_tstate"], "registry thread node")
            blob = self.mem.read(tstate, ts["size"], "thread state")
            tid = u64_at(blob, ts["thread_id"])
            tasks = self.task_list(tstate + ts["tasks_head"], tid, u64_at(blob, ts["running_task"]), total)
            total += len(tasks)
            out.append((tid, tasks))
            node = self.mem.u64(node + r["thread_node_next"], "registry thread node")
        orphans = self.task_list(reg + r["orphans"], 0, 0, total)
        if orphans:
            out.append((0, orphans))
        return out


def snapshot():
    mem = Memory()
    threads = []
    for addr in find_tables():
        threads += Walker(mem, load_table(mem, addr)).threads()
    return threads


# MARK: - Output (Lib/asyncio/tools.py's formats)

def stack_entry(frame):
    name, filename, lineno = frame
    return name if lineno == 0 and filename == "" else "%s %s:%d" % (name, filename, lineno)


def table_text(threads):
    names = {task["id"]: task["name"] for _, tasks in threads for task in tasks}
    widths = [10, 20, 20, 50, 50, 15, 15]

    def row(cells):
        return " ".join(cell.ljust(w) for cell, w in zip(cells, widths))

    lines = [row(["tid", "task id", "task name", "coroutine stack", "awaiter chain", "awaiter name",
                  "awaiter id"]), "-" * 180]
    for tid, tasks in threads:
        for task in tasks:
            stack = " -> ".join(stack_entry(f).split(" ")[0] for f in task["stack"])
            if not task["awaited_by"]:
                lines.append(row([str(tid), hex(task["id"]), task["name"], stack, "", "", "0x0"]))
            for addr, _, frames in task["awaited_by"]:
                chain = " -> ".join(stack_entry(f).split(" ")[0] for f in frames)
                lines.append(row([str(tid), hex(task["id"]), task["name"], stack, chain,
                                  names.get(addr, "Unknown"), hex(addr)]))
    return "\n".join(lines)


def tree_text(threads):
    """The tree, or raises InspectError with the cycle report."""
    names, stacks, awaits = {}, {}, []
    for _, tasks in threads:
        for task in tasks:
            names[task["id"]] = task["name"]
            stacks[task["id"]] = [stack_entry(f) for f in task["stack"]]
            for addr, _, frames in task["awaited_by"]:
                awaits.append((addr, [stack_entry(f) for f in frames], task["id"]))

    graph = {}
    for parent, _, child in awaits:
        kids = graph.setdefault(parent, [])
        if child not in kids:
            kids.append(child)
    color, path, cycles = {}, [], []
    for root in list(graph):
        if color.get(root):
            continue
        color[root] = 1
        path.append(root)
        stack = [(root, 0)]
        while stack:
            node, i = stack[-1]
            kids = graph.get(node, [])
            if i < len(kids):
                stack[-1] = (node, i + 1)
                kid = kids[i]
                if not color.get(kid):
                    color[kid] = 1
                    path.append(kid)
                    stack.append((kid, 0))
                elif color[kid] == 1:
                    cycles.append(path[path.index(kid):] + [kid])
            else:
                color[node] = 2
                path.pop()
                stack.pop()
    if cycles:
        lines = ["ERROR: await-graph contains cycles - cannot print a tree!", ""]
        for c in cycles:
            lines.append("cycle: " + " \u2192 ".join(names.get(t, hex(t)) for t in c))
        raise InspectError("\n".join(lines))

    labels = {("T", tid): name for tid, name in names.items()}
    order = list(labels)
    children, frame_nodes, counter = {}, {}, [0]

    def frame_node(parent, frame):
        nodes = frame_nodes.setdefault(parent, {})
        if frame not in nodes:
            counter[0] += 1
            key = ("C", counter[0])
            labels[key] = frame
            order.append(key)
            children.setdefault(parent, []).append(key)
            nodes[frame] = key
        return nodes[frame]

    for parent, stack, child in awaits:
        cur = ("T", parent)
        for frame in reversed(stack):
            cur = frame_node(cur, frame)
        kids = children.setdefault(cur, [])
        if ("T", child) not in kids:
            kids.append(("T", child))
    awaiting = {parent for parent, _, _ in awaits}
    for tid in names:
        if tid not in awaiting:
            cur = ("T", tid)
            for frame in reversed(stacks[tid]):
                cur = frame_node(cur, frame)

    all_children = {k for kids in children.values() for k in kids}
    out = []
    for root in (n for n in order if n not in all_children):
        todo = [(root, "", True)]
        while todo:
            node, prefix, last = todo.pop()
            flag = "(T)" if node[0] == "T" else ""
            out.append(prefix + ("\u2514\u2500\u2500 " if last else "\u251c\u2500\u2500 ") + flag + " " + labels[node])
            kids = children.get(node, [])
            for i in reversed(range(len(kids))):
                todo.append((kids[i], prefix + ("    " if last else "\u2502   "), i == len(kids) - 1))
    return "\n".join(out)


class AsyncioPs(gdb.Command):
    """Print the asyncio tasks as a table (asyncio-inspect ps)."""

    def __init__(self):
        super().__init__("asyncio-ps", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        try:
            gdb.write(table_text(snapshot()) + "\n")
        except InspectError as e:
            gdb.write("Error retrieving tasks: %s\n" % e)


class AsyncioPstree(gdb.Command):
    """Print the asyncio await tree (asyncio-inspect pstree)."""

    def __init__(self):
        super().__init__("asyncio-pstree", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        try:
            text = tree_text(snapshot())
        except InspectError as e:
            gdb.write(str(e) + "\n")
            return
        if text:
            gdb.write(text + "\n")


AsyncioPs()
AsyncioPstree()
