// How bench writes what it measured (Benchmarks/SwiftBench: BenchFormat,
// JSONLine, TextTable): the number formats, the JSON lines
// tools read, and the aligned table people read. The figures here are made
// up; nothing is measured.

import Foundation
import SwiftBench
import Testing

@Suite("bench's number formats")
struct BenchFormatTests {

    @Test("fixed writes exactly the decimals asked for, rounding half away from zero")
    func fixedDecimals() {
        #expect(BenchFormat.fixed(2.5, digits: 3) == "2.500")
        #expect(BenchFormat.fixed(0.05, digits: 1) == "0.1")
        #expect(BenchFormat.fixed(1.04, digits: 2) == "1.04")
        #expect(BenchFormat.fixed(3.5, digits: 0) == "4")
    }

    @Test("a whole allocation count is written as an integer, a fraction with six decimals")
    func allocs() {
        #expect(BenchFormat.allocs(0) == "0")
        #expect(BenchFormat.allocs(4) == "4")
        #expect(BenchFormat.allocs(0.001) == "0.001000")
    }

    @Test("a ratio keeps about three significant figures", arguments: [(123.4, "123"), (12.34, "12.3"), (1.234, "1.23")])
    func ratio(value: Double, text: String) {
        #expect(BenchFormat.ratio(value) == text)
    }
}

@Suite("bench's JSON lines")
struct BenchJSONLineTests {

    @Test("an object keeps its keys in the order given, values as they are")
    func objectOrder() {
        #expect(JSONLine.object([("b", "1"), ("a", "null"), ("c", "[1,2]")]) == #"{"b":1,"a":null,"c":[1,2]}"#)
    }

    @Test("a string's quotes, backslashes and control characters are escaped")
    func quotedEscapes() throws {
        let text = "say \"hi\"\\\n\té"
        let quoted = JSONLine.quoted(text)
        #expect(quoted == #""say \"hi\"\\\u000a\u0009é""#)
        let back = try JSONSerialization.jsonObject(with: Data(quoted.utf8), options: .fragmentsAllowed) as? String
        #expect(back == text)
    }
}

@Suite("bench's tables")
struct BenchTextTableTests {

    @Test("numbers are right-aligned, names and notes left-aligned, columns two spaces apart, no trailing blanks")
    func alignment() {
        let lines = TextTable.lines(header: ["workload", "ns", "note"],
                                    rows: [["sleep0", "14.1", ""], ["ping_pong", "304.5", "slow round"]],
                                    leftColumns: 1, leftAfter: 2)
        #expect(lines == ["workload      ns  note",
                          "sleep0      14.1",
                          "ping_pong  304.5  slow round"])
    }
}
