// The FIFO behind the accept queue and the datagram inbox.

@testable import Asyncio
import Testing

@Suite("FIFO")
struct FIFOTests {
    @Test("pops come out in the order of the appends")
    func order() {
        var q = FIFO<Int>()
        for i in 0..<200 { q.append(i) }
        var out: [Int] = []
        while let x = q.popFirst() { out.append(x) }
        #expect(out == Array(0..<200))
        #expect(q.remaining.isEmpty)
    }

    @Test("a reader that stays one element behind does not make the queue grow")
    func laggingReaderStaysBounded() {
        var q = FIFO<Int>()
        q.append(0)
        for i in 1...10_000 {
            q.append(i)
            #expect(q.popFirst() == i - 1)
        }
        #expect(q.storedCount <= 130, "\(q.storedCount) elements held for 1 waiting")
        #expect(Array(q.remaining) == [10_000])
    }

    @Test("removeAll hands back what was not popped and empties the queue")
    func removeAllReturnsTheRest() {
        var q = FIFO<Int>()
        for i in 0..<5 { q.append(i) }
        _ = q.popFirst()
        #expect(Array(q.removeAll()) == [1, 2, 3, 4])
        #expect(q.popFirst() == nil)
    }
}
