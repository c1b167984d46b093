// Loop confinement: a member that reads or changes an object's C state,
// used from a thread that does not run the object's loop while the loop
// runs, traps (checkConfined) instead of racing with the loop thread.

@testable import Asyncio
import CAsyncio
import Testing

/// Makes an object with `make` inside a callback of a running loop, then
/// hands it to `use` on another thread while the loop is still inside that
/// callback (so it runs). Returns normally when `use` did not trap.
func useOffLoopThread<Object>(_ make: @escaping @Sendable (EventLoop) throws -> Object,
                              _ use: @escaping @Sendable (Object) throws -> Void) throws {
    let loop = try EventLoop()
    let used = Shared<Bool>(false)
    try loop.callSoon {
        let object = UncheckedBox(try! make(loop))
        onThreadJoined {
            _ = try? use(object.value)
            used.value = true
        }
        loop.stop()
    }
    try loop.runForever()
    precondition(used.value)
    try loop.close()
}

/// Carries a value of a non-Sendable type to the thread that misuses it.
///
/// Safety of `@unchecked Sendable`: the value is handed over once, and the
/// handing thread blocks (in `onThreadJoined`) until the other is done.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A member of the public surface that reads or changes loop-confined state.
enum ConfinedMember: String, CaseIterable, Codable, Sendable, CustomTestStringConvertible {
    case loopTaskName = "LoopTask.name"
    case loopTaskCancelling = "LoopTask.cancelling"
    case loopTaskErased = "LoopTask.erased"
    case loopTaskDescription = "LoopTask.description"
    case anyLoopTaskName = "AnyLoopTask.name"
    case anyLoopTaskIsDone = "AnyLoopTask.isDone"
    case anyLoopTaskIsCancelled = "AnyLoopTask.isCancelled"
    case anyLoopTaskCancelling = "AnyLoopTask.cancelling"
    case anyLoopTaskTyped = "AnyLoopTask.typed(as:)"
    case anyLoopTaskDescription = "AnyLoopTask.description"
    case futureException = "Future.exception()"
    case semaphoreDescription = "Semaphore.description"
    case eventLoopIsDebug = "EventLoop.isDebug"
    case eventLoopSetDebug = "EventLoop.setDebug(_:)"
    case eventLoopForeignSuspensionCount = "EventLoop.foreignSuspensionCount"
    case shield = "shield(_:)"
    case asCompleted = "asCompleted(_:timeout:)"
    case gatherFuture = "gatherFuture(_:returnExceptions:)"
    case gatheredResults = "gatheredResults(_:as:)"

    var testDescription: String { rawValue }

    /// Uses the member from a thread that does not run its object's loop.
    func run() throws {
        switch self {
        case .loopTaskName: try Self.onTask { _ = $0.name }
        case .loopTaskCancelling: try Self.onTask { _ = $0.cancelling }
        case .loopTaskErased: try Self.onTask { _ = $0.erased }
        case .loopTaskDescription: try Self.onTask { _ = $0.description }
        case .anyLoopTaskName: try Self.onAnyTask { _ = $0.name }
        case .anyLoopTaskIsDone: try Self.onAnyTask { _ = $0.isDone }
        case .anyLoopTaskIsCancelled: try Self.onAnyTask { _ = $0.isCancelled }
        case .anyLoopTaskCancelling: try Self.onAnyTask { _ = $0.cancelling }
        case .anyLoopTaskTyped: try Self.onAnyTask { _ = $0.typed(as: Int.self) }
        case .anyLoopTaskDescription: try Self.onAnyTask { _ = $0.description }
        case .futureException: try Self.onFuture { _ = try $0.exception() }
        case .semaphoreDescription:
            try useOffLoopThread({ loop in
                // A waiter that waits binds the semaphore to the loop.
                let semaphore = try Semaphore(value: 0)
                try loop.createTask(eagerStart: true) { try await semaphore.acquire() }
                return semaphore
            }, { _ = $0.description })
        case .eventLoopIsDebug: try useOffLoopThread({ $0 }, { _ = $0.isDebug })
        case .eventLoopSetDebug: try useOffLoopThread({ $0 }, { $0.setDebug(true) })
        case .eventLoopForeignSuspensionCount:
            try useOffLoopThread({ $0 }, { _ = $0.foreignSuspensionCount })
        case .shield: try Self.onFuture { _ = try Asyncio.shield($0) }
        case .asCompleted: try Self.onFuture { _ = try Asyncio.asCompleted([$0]) }
        case .gatherFuture: try Self.onFuture { _ = try Asyncio.gatherFuture([$0]) }
        case .gatheredResults:
            try useOffLoopThread({ loop in
                let f = loop.createFuture(of: Int.self)
                try f.setResult(1)
                return try Asyncio.gatherFuture([f])
            }, { _ = try Asyncio.gatheredResults($0, as: Int.self) })
        }
    }

    private static func onTask(_ use: @escaping @Sendable (LoopTask<Int>) throws -> Void) throws {
        try useOffLoopThread({ loop in try loop.createTask { 0 } }, use)
    }

    private static func onAnyTask(_ use: @escaping @Sendable (AnyLoopTask) throws -> Void) throws {
        try useOffLoopThread({ loop in try loop.createTask { 0 }.erased }, use)
    }

    private static func onFuture(_ use: @escaping @Sendable (Future<Int>) throws -> Void) throws {
        try useOffLoopThread({ loop in loop.createFuture(of: Int.self) }, use)
    }
}

@Suite("Loop confinement")
struct ConfinementTests {
    @Test("a member reading or changing loop-confined state traps off its loop's thread while the loop runs",
          arguments: ConfinedMember.allCases)
    func trapsOffLoopThread(_ member: ConfinedMember) async {
        await #expect(processExitsWith: .failure) { [member] in
            try member.run()
        }
    }
}
