// The getting-started article's code, verbatim: the blocks between the
// markers below are the ```swift blocks of
// Sources/Asyncio/Asyncio.docc/GettingStarted.md, in order. The test at the
// end checks the article still says exactly this, then runs every example.

// BEGIN GettingStarted.md
import Asyncio

func hello() throws -> String {
    try EventLoop.run {
        try await sleep(0.01)
        return "hello from the loop"
    }
}

func fetchBoth() throws -> (Int, String) {
    try EventLoop.run {
        let count = try createTask(name: "count") { () async throws -> Int in
            try await sleep(0.02)
            return 42
        }
        let label = try createTask { () async throws -> String in
            try await sleep(0.01)
            return "answer"
        }
        return try await gather(count, label)
    }
}

func cancelAndTimeOut() throws -> [String] {
    try EventLoop.run {
        var log: [String] = []
        let sleeper = try createTask { () async throws -> String in
            do {
                try await sleep(3600)
                return "woke up"
            } catch is CancelledError {
                return "cancelled"
            }
        }
        try await sleep(0.01)
        sleeper.cancel()
        log.append(try await sleeper.value)
        do {
            try await timeout(0.01) { try await sleep(3600) }
        } catch is TimeoutError {
            log.append("timed out")
        }
        return log
    }
}

func futureFromCallback() throws -> Double {
    try EventLoop.run {
        let loop = EventLoop.current!
        let reading = loop.createFuture(of: Double.self)
        try loop.callLater(0.01) {
            try? reading.setResult(21.5)
        }
        return try await reading.value
    }
}

func producerConsumer() throws -> Int {
    try EventLoop.run {
        let queue = AsyncQueue<Int>(maxsize: 2)
        let producer = try createTask {
            for i in 1...5 { try await queue.put(i) }
            try await queue.put(0)
        }
        var total = 0
        while true {
            let item = try await queue.get()
            if item == 0 { break }
            total += item
        }
        try await producer.value
        return total
    }
}

struct ParseError: Error {
    var line: Int
}

func errorsComeBack() throws -> Int {
    try EventLoop.run {
        let parser = try createTask { () async throws -> Int in
            throw ParseError(line: 7)
        }
        do {
            return try await parser.value
        } catch let error as ParseError {
            return error.line
        }
    }
}

func foreignSuspension() throws -> Bool {
    try EventLoop.run {
        try await Task.sleep(nanoseconds: 1_000_000)
        try await sleep(0)
        return currentTask() != nil
    }
}

func shout() throws -> String {
    try EventLoop.run {
        let loop = EventLoop.current!
        let server = try await loop.startServer(host: "127.0.0.1", port: 0)
        try createTask {
            for try await conn in server {
                try createTask {
                    while let line = try? await conn.readLine(), !line.isEmpty {
                        try conn.write(line.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 32 : $0 })
                        try await conn.drain()
                    }
                    conn.close()
                }
            }
        }
        let client = try await loop.openConnection(host: "localhost", port: server.port)
        try client.write(Array("hello, loop\n".utf8))
        let reply = try await client.readLine()
        client.close()
        server.close()
        return String(decoding: reply, as: UTF8.self)
    }
}
// END GettingStarted.md

import Testing

@Suite("Getting started article")
struct GettingStartedTests {
    @Test("the article's code blocks are the ones compiled here")
    func articleMatches() throws {
        let here = #filePath
        let root = parts(here, "/Tests/AsyncioTests/")[0]
        let article = try readFile(root + "/Sources/Asyncio/Asyncio.docc/GettingStarted.md")
        let source = try readFile(here)
        let blocks = parts(article, "```swift\n").dropFirst().map { parts($0, "```")[0] }
        let compiled = parts(parts(source, "// BEGIN GettingStarted.md\n")[1], "// END GettingStarted.md")[0]
        #expect(blocks.joined(separator: "\n") == compiled)
    }

    @Test("every example runs and prints what the article says")
    func examplesRun() async throws {
        try await onThread {
            #expect(try hello() == "hello from the loop")
            let (count, label) = try fetchBoth()
            #expect(count == 42 && label == "answer")
            #expect(try cancelAndTimeOut() == ["cancelled", "timed out"])
            #expect(try futureFromCallback() == 21.5)
            #expect(try producerConsumer() == 15)
            #expect(try errorsComeBack() == 7)
            #expect(try foreignSuspension())
            #expect(try shout() == "HELLO, LOOP\n")
        }
    }
}

/// `s` split at every occurrence of `separator` (empty pieces kept).
private func parts(_ s: String, _ separator: String) -> [String] {
    var pieces: [String] = []
    var rest = Substring(s)
    while let r = rest.firstRange(of: separator) {
        pieces.append(String(rest[..<r.lowerBound]))
        rest = rest[r.upperBound...]
    }
    pieces.append(String(rest))
    return pieces
}
