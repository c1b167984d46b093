// inspect-fixture-swift — the known task tree of inspect-fixture, built from
// Swift bodies (LoopTask) and C coroutines side by side, for
// asyncio-inspect's tests:
//
//     inspect-fixture-swift tree
//
// Main loop: task "main" (Swift) runs a LoopTaskGroup with "alpha" (Swift)
// and "beta" (C: c_nested -> c_waiter); alpha gathers an unnamed Swift task
// ("gathered") and "delta" (Swift); gathered shields "epsilon" (C, waits for
// the gate); delta and beta await the same plain future. A second loop on
// its own thread runs "remote-main" (Swift) awaiting "remote-child" (C).
// "reporter" (Swift) is the running task while the tree is at rest: it
// prints the report line (inspect_fixture.h) and waits for a line or EOF on
// stdin; then everything is torn down and the process exits 0.
//
// A Swift body's coroutine is named after the `function:` its task was
// created with, and shows the line that created it.

import Asyncio
import CAsyncio
import InspectFixtureSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The tasks by role, from both threads, and what the threads share.
final class Tree: Sendable {
    private let roles = Mutex<[(role: StaticString, task: UInt)]>([])
    let otherReady = Atomic<Bool>(false)
    let otherThread = Atomic<UInt64>(0)
    let otherLoop = Mutex<EventLoop?>(nil)
    let otherGate = Mutex<Future<Void>?>(nil)
    let mainThread = if_gettid()
    let shared: Future<Void>
    let gate: Future<Void>

    init(shared: Future<Void>, gate: Future<Void>) {
        self.shared = shared
        self.gate = gate
    }

    func add(_ role: StaticString, _ task: UnsafeMutablePointer<ca_task>) {
        roles.withLock { $0.append((role, UInt(bitPattern: task))) }
    }

    func add<T>(_ role: StaticString, _ task: LoopTask<T>) { add(role, task.unsafeRawTask) }

    /// Prints the report and waits for the test to let go (inside the
    /// reporter's step: nothing moves meanwhile).
    func reportAndWait() {
        var sc = if_scenario()
        sc.main_thread = mainThread
        sc.other_thread = otherThread.load(ordering: .acquiring)
        sc.shared = shared.unsafeRaw
        let all = roles.withLock { $0 }
        for (role, task) in all {
            let name = UnsafeRawPointer(role.utf8Start).assumingMemoryBound(to: CChar.self)
            if_scenario_add_role(&sc, name, UnsafeMutablePointer(bitPattern: task))
        }
        sc.ntasks = all.count
        if_report_and_wait(&sc)
    }
}

/// A task of the C coroutine `coro` (taken) named `name` on `loop`, or in
/// `group` when given.
func spawnC(_ coro: UnsafeMutablePointer<ca_coro>?, name: String, loop: EventLoop,
            group: LoopTaskGroup? = nil) throws -> LoopTask<Void> {
    guard let coro else { throw FixtureError("out of memory") }
    var opts = ca_task_options()
    var out: UnsafeMutablePointer<ca_task>?
    let err = name.withCString { cname in
        opts.name = cname
        if let group { return ca_taskgroup_create_task(group.unsafeRaw, coro, &opts, &out) }
        return ca_loop_create_task(loop.unsafeRaw, coro, &opts, &out)
    }
    if let err {
        defer { ca_decref(UnsafeMutableRawPointer(err)) }
        throw FixtureError(String(cString: ca_error_message(err)))
    }
    return LoopTask(unsafeTakingOwnershipOf: out!)
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - The second loop's thread

/// Runs "remote-main" on a loop of its own until its gate opens.
func runOtherLoop(_ tree: Tree) throws {
    let loop = try EventLoop()
    let gate = loop.createFuture(of: Void.self)
    tree.otherThread.store(if_gettid(), ordering: .releasing)
    let remoteMain = try loop.createTask(name: "remote-main", function: "remoteMain()") {
        let child = try spawnC(if_waiter_new(gate.unsafeRaw), name: "remote-child", loop: loop)
        tree.add("remote-child", child)
        // runs after the child's first step, when both are suspended
        try loop.callLater(0.001) { tree.otherReady.store(true, ordering: .releasing) }
        try await child.value
    }
    tree.add("remote-main", remoteMain)
    tree.otherGate.withLock { $0 = gate }
    tree.otherLoop.withLock { $0 = loop }
    try loop.runUntilComplete(remoteMain)
    try loop.close()
}

private func otherThreadMain(_ arg: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let tree = Unmanaged<Tree>.fromOpaque(arg!).takeRetainedValue()
    do {
        try runOtherLoop(tree)
    } catch {
        print("inspect-fixture-swift: second loop: \(error)")
        exit(1)
    }
    return nil
}

// MARK: - The main loop

func runTree() throws {
    _ = ca_get_running_loop()  // registers this thread first: the inspector lists threads in that order
    let loop = try EventLoop()
    let tree = Tree(shared: loop.createFuture(of: Void.self), gate: loop.createFuture(of: Void.self))
    let shared = tree.shared, gate = tree.gate

    var thread = pthread_t()
    guard pthread_create(&thread, nil, otherThreadMain, Unmanaged.passRetained(tree).toOpaque()) == 0 else {
        throw FixtureError("pthread_create failed")
    }
    while tree.otherLoop.withLock({ $0 == nil }) { usleep(100) }

    let main = try loop.createTask(name: "main", function: "mainBody()") {
        try await withLoopTaskGroup { group in
            let alpha = try group.createTask(name: "alpha", function: "alpha()") {
                let delta = try createTask(name: "delta", function: "delta()") {
                    try await shared.value
                }
                tree.add("delta", delta)
                let gathered = try createTask(function: "gathered()") {
                    let epsilon = try spawnC(if_waiter_new(gate.unsafeRaw), name: "epsilon", loop: loop)
                    tree.add("epsilon", epsilon)
                    tree.add("gathered", currentTask()!.unsafeRawTask)
                    try await shield(epsilon).value
                }
                _ = try await gather(gathered, delta)
            }
            let beta = try spawnC(if_nested_waiter_new(shared.unsafeRaw), name: "beta", loop: loop, group: group)
            tree.add("alpha", alpha)
            tree.add("beta", beta)
        }
    }
    tree.add("main", main)
    let reporter = try loop.createTask(name: "reporter", function: "reporter()") {
        // a few iterations let every task reach its await; then wait for
        // the other thread (a sleep, so the loop does not spin)
        for _ in 0..<16 { try await sleep(0) }
        while !tree.otherReady.load(ordering: .acquiring) { try await sleep(0.001) }
        tree.reportAndWait()
    }
    tree.add("reporter", reporter)
    try loop.runUntilComplete(reporter)

    // teardown: open every gate and let both trees finish
    try gate.setResult(())
    try shared.setResult(())
    try loop.runUntilComplete(main)
    let other = tree.otherLoop.withLock { $0! }
    let otherGate = tree.otherGate.withLock { $0! }
    try other.callSoonThreadsafe { try? otherGate.setResult(()) }
    pthread_join(thread, nil)
    try loop.close()
}

@main
enum SwiftFixture {
    static func main() {
        let mode = CommandLine.arguments.dropFirst().first ?? "tree"
        guard mode == "tree" else {
            print("usage: inspect-fixture-swift tree")
            exit(2)
        }
        do {
            try runTree()
        } catch {
            print("inspect-fixture-swift: \(error)")
            exit(1)
        }
        exit(0)
    }
}
