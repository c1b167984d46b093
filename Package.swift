// swift-tools-version:6.0
import PackageDescription

/// Warnings are errors in our own C; the flags are applied to every C target we own.
let strictC: [CSetting] = [
    .unsafeFlags(["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]),
    .define("_GNU_SOURCE"),
]

let package = Package(
    name: "swift-asyncio",
    products: [
        .library(name: "CAsyncio", targets: ["CAsyncio"]),
        .library(name: "Asyncio", targets: ["Asyncio"]),
        .executable(name: "bench", targets: ["bench"]),
        .executable(name: "asyncio-inspect", targets: ["asyncio-inspect"]),
        .executable(name: "asyncio-conformance", targets: ["asyncio-conformance"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Latency percentiles in `bench` (wakeup_latency, timer_lateness, echo).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // The C core: futures, tasks, the event loop and the I/O backends.
        .target(
            name: "CAsyncio",
            path: ".",
            sources: ["CSources/CAsyncio"],
            publicHeadersPath: "Include",
            cSettings: strictC + [.headerSearchPath("CSources/CAsyncio")],
            linkerSettings: [.linkedLibrary("uring"), .linkedLibrary("m")]
        ),
        // The benchmark workloads written against the C API.
        .target(
            name: "CAsyncioBench",
            dependencies: ["CAsyncio"],
            path: "Benchmarks/CBench",
            cSettings: strictC
        ),
        // The C side of the Swift layer: the Swift coroutine type, per-thread
        // windows, value boxes, and two Swift runtime entry points.
        .target(
            name: "CAsyncioShim",
            dependencies: ["CAsyncio"],
            path: "Sources/CAsyncioShim",
            cSettings: strictC
        ),
        // The Swift layer: EventLoop, Future, LoopTask, combinators, sync
        // primitives and queues over the C core.
        .target(
            name: "Asyncio",
            dependencies: ["CAsyncio", "CAsyncioShim"],
            path: "Sources/Asyncio",
            swiftSettings: [
                // The glue's hot state lives in C structs and loop-confined
                // classes; dynamic exclusivity checks would cost on every await.
                .unsafeFlags(["-enforce-exclusivity=unchecked"]),
            ]
        ),
        // The workloads written against the Swift layer (bench, and the
        // allocation gates in CAsyncioTests), and bench compare's verdict
        // logic (ratios, bars, missing peers), which CAsyncioTests also tests.
        .target(
            name: "SwiftBench",
            dependencies: ["Asyncio", "CAsyncio", "CAsyncioBench"],
            path: "Benchmarks/SwiftBench"
        ),
        // Counting malloc wrappers for the bench process: allocations per op
        // of the Swift layer, whose runtime allocates with malloc.
        .target(
            name: "CBenchMalloc",
            path: "Benchmarks/CBenchMalloc",
            cSettings: strictC
        ),
        .executableTarget(
            name: "bench",
            dependencies: [
                "CAsyncio", "CAsyncioBench", "Asyncio", "SwiftBench", "CBenchMalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/bench"
        ),
        // The `c` engine of the conformance runner: scenario bodies as
        // coroutines of the core's protocol (../shared/conformance).
        .target(
            name: "CConformance",
            dependencies: ["CAsyncio"],
            path: "Sources/CConformance",
            cSettings: strictC
        ),
        // The `swift` engine: scenario bodies as Swift async functions on the
        // Swift layer.
        .target(
            name: "SwiftConformance",
            dependencies: ["Asyncio", "CAsyncio", "CConformance"],
            path: "Sources/SwiftConformance"
        ),
        .executableTarget(
            name: "asyncio-conformance",
            dependencies: ["CConformance", "SwiftConformance"],
            path: "Sources/asyncio-conformance"
        ),
        // C coroutines and helpers the Swift tests drive the C API with.
        .target(
            name: "CAsyncioTestSupport",
            dependencies: ["CAsyncio"],
            path: "Tests/CAsyncioTestSupport",
            cSettings: strictC
        ),
        // C helpers the Swift layer's tests need (malloc_trim, RSS, the
        // core's allocations failing on demand).
        .target(
            name: "AsyncioTestSupport",
            dependencies: ["CAsyncio"],
            path: "Tests/AsyncioTestSupport",
            cSettings: strictC
        ),
        .testTarget(
            name: "AsyncioTests",
            dependencies: ["Asyncio", "CAsyncio", "CAsyncioShim", "CAsyncioTestSupport", "AsyncioTestSupport",
                           "CBenchMalloc"],
            path: "Tests/AsyncioTests"
        ),
        .testTarget(
            name: "CAsyncioTests",
            // SwiftBench and CBenchMalloc: the Swift layer's allocation gates
            // (CBenchMalloc's counting malloc wrappers then serve the whole
            // test process; they forward to glibc and stand aside under ASan).
            dependencies: ["CAsyncio", "CAsyncioTestSupport", "CAsyncioBench", "SwiftBench", "CBenchMalloc"],
            path: "Tests/CAsyncioTests"
        ),
        // The whole public conformance corpus through the `c` engine, in-process.
        .testTarget(
            name: "ConformanceTests",
            dependencies: ["CConformance", "SwiftConformance"],
            path: "Tests/ConformanceTests"
        ),
        // asyncio-inspect: lists the tasks of another process from outside, through the
        // debug offsets table (Include/casyncio/debug.h, docs/debug-offsets.md).
        .target(
            name: "CAsyncioInspect",
            path: "Sources/CAsyncioInspect",
            cSettings: strictC + [.headerSearchPath("../../Include")]
        ),
        .executableTarget(
            name: "asyncio-inspect",
            dependencies: [
                "CAsyncioInspect",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/asyncio-inspect"
        ),
        // Known task trees for asyncio-inspect's tests, in a child process or in-process.
        .target(
            name: "InspectFixtureSupport",
            dependencies: ["CAsyncio"],
            path: "Tests/InspectFixtureSupport",
            cSettings: strictC
        ),
        .executableTarget(
            name: "inspect-fixture",
            dependencies: ["InspectFixtureSupport"],
            path: "Tests/InspectFixture",
            cSettings: strictC,
            linkerSettings: [.linkedLibrary("m")]  // a C executable: no Swift runtime pulls libm in
        ),
        // The same tree with Swift-bodied tasks (LoopTask) beside C ones.
        .executableTarget(
            name: "inspect-fixture-swift",
            dependencies: ["Asyncio", "CAsyncio", "InspectFixtureSupport"],
            path: "Tests/InspectFixtureSwift"
        ),
        .testTarget(
            name: "InspectTests",
            dependencies: ["CAsyncio", "CAsyncioInspect", "InspectFixtureSupport"],
            path: "Tests/InspectTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
