// The `swift` engine of asyncio-conformance: scenario JSON, values and their
// rendering (SPEC.md sections 1.3, 3.2, 3.3).

import Asyncio

/// A JSON value, with object keys in file order.
indirect enum JSON {
    case null, bool(Bool), int(Int64), num(Double), str(String), list([JSON]), obj([(String, JSON)])

    subscript(_ key: String) -> JSON? {
        if case .obj(let kv) = self { return kv.last(where: { $0.0 == key })?.1 }
        return nil
    }
    var string: String? { if case .str(let s) = self { return s }; return nil }
    var int: Int64? { if case .int(let i) = self { return i }; return nil }
    var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    var list: [JSON] { if case .list(let l) = self { return l }; return [] }
}

struct JSONError: Error { let message: String }

/// A small strict JSON reader.
struct JSONReader {
    let b: [UInt8]
    var i = 0
    init(_ bytes: [UInt8]) { b = bytes }

    mutating func ws() { while i < b.count, b[i] == 32 || b[i] == 9 || b[i] == 10 || b[i] == 13 { i += 1 } }
    func fail(_ m: String) -> JSONError { JSONError(message: "JSON: \(m) at byte \(i)") }

    mutating func document() throws -> JSON {
        let v = try value()
        ws()
        if i != b.count { throw fail("trailing data") }
        return v
    }

    mutating func lit(_ s: String) -> Bool {
        let u = Array(s.utf8)
        if i + u.count <= b.count, Array(b[i..<i + u.count]) == u { i += u.count; return true }
        return false
    }

    mutating func value() throws -> JSON {
        ws()
        guard i < b.count else { throw fail("unexpected end") }
        switch b[i] {
        case UInt8(ascii: "n"): if lit("null") { return .null }
        case UInt8(ascii: "t"): if lit("true") { return .bool(true) }
        case UInt8(ascii: "f"): if lit("false") { return .bool(false) }
        case UInt8(ascii: "\""): return .str(try string())
        case UInt8(ascii: "["):
            i += 1; ws()
            var items: [JSON] = []
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .list(items) }
            while true {
                items.append(try value()); ws()
                guard i < b.count else { throw fail("unterminated list") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .list(items) }
                throw fail("bad list")
            }
        case UInt8(ascii: "{"):
            i += 1; ws()
            var kv: [(String, JSON)] = []
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .obj(kv) }
            while true {
                ws()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("bad key") }
                let k = try string(); ws()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("missing colon") }
                i += 1
                kv.append((k, try value())); ws()
                guard i < b.count else { throw fail("unterminated object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .obj(kv) }
                throw fail("bad object")
            }
        default:
            let start = i
            while i < b.count, "+-0123456789.eE".utf8.contains(b[i]) { i += 1 }
            let text = String(decoding: b[start..<i], as: UTF8.self)
            if let v = Int64(text) { return .int(v) }
            if let d = Double(text) { return .num(d) }
        }
        throw fail("bad value")
    }

    mutating func string() throws -> String {
        i += 1
        var out: [UInt8] = []
        while i < b.count {
            let c = b[i]; i += 1
            if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if c == UInt8(ascii: "\\") {
                guard i < b.count else { break }
                let e = b[i]; i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(10)
                case UInt8(ascii: "t"): out.append(9)
                case UInt8(ascii: "r"): out.append(13)
                case UInt8(ascii: "b"): out.append(8)
                case UInt8(ascii: "f"): out.append(12)
                case UInt8(ascii: "u"):
                    guard i + 4 <= b.count, let u = UInt32(String(decoding: b[i..<i + 4], as: UTF8.self), radix: 16)
                    else { throw fail("bad escape") }
                    i += 4
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(u) ?? "?")).utf8))
                default: out.append(e)
                }
            } else {
                out.append(c)
            }
        }
        throw fail("unterminated string")
    }
}

/// A scenario value as it travels through the Swift layer.
///
/// Safety of `@unchecked Sendable`: the future pointers and errors a value
/// carries are only used on the thread of the ``Run`` that made it (see
/// ``Run``); the conformance is what lets it be the result type of the
/// run's futures and tasks (`Future<V>`).
indirect enum V: @unchecked Sendable, Comparable {
    case null, bool(Bool), int(Int64), str(String), list([V])
    case fut(UnsafeMutableRawPointer)          // a future or task (its ca_future)
    case set([UnsafeMutableRawPointer])
    case err(any Error)

    init(_ j: JSON?) {
        switch j {
        case .bool(let b)?: self = .bool(b)
        case .int(let i)?: self = .int(i)
        case .num(let d)?: self = .int(Int64(d))
        case .str(let s)?: self = .str(s)
        case .list(let l)?: self = .list(l.map { V($0) })
        default: self = .null
        }
    }

    private var rank: Int {
        switch self {
        case .null: return 0
        case .bool, .int: return 1
        case .str: return 2
        case .list: return 3
        default: return 4
        }
    }
    private var number: Int64 {
        switch self { case .bool(let b): return b ? 1 : 0; case .int(let i): return i; default: return 0 }
    }

    static func < (a: V, b: V) -> Bool {
        if a.rank != b.rank { return a.rank < b.rank }
        switch (a, b) {
        case (.str(let x), .str(let y)): return Array(x.utf8).lexicographicallyPrecedes(Array(y.utf8))
        case (.list(let x), .list(let y)):
            for (p, q) in zip(x, y) where p != q { return p < q }
            return x.count < y.count
        default: return a.number < b.number
        }
    }

    static func == (a: V, b: V) -> Bool { !(a < b) && !(b < a) }
}

/// A value rendered as a string (SPEC 3.2): `"` and `\` escaped.
func quote(_ s: String) -> String {
    var o = "\""
    for c in s {
        if c == "\"" || c == "\\" { o.append("\\") }
        o.append(c)
    }
    return o + "\""
}

func fmtJSON(_ j: JSON?) -> String {
    switch j {
    case nil, .null?: return "null"
    case .bool(let b)?: return b ? "true" : "false"
    case .int(let i)?: return String(i)
    case .num(let d)?: return String(d)
    case .str(let s)?: return quote(s)
    case .list(let l)?: return "[" + l.map { fmtJSON($0) }.joined(separator: ",") + "]"
    case .obj?: return "{}"
    }
}

/// The errors rendered by name only, their message never printed (SPEC 3.3).
let namelessErrors: Set<String> = ["InvalidStateError", "RuntimeError", "ValueError", "TypeError"]

/// A new error of `name` whose message is the rendered `msg` value (nil: no args).
func makeError(_ name: String, _ msg: String?) -> any Error {
    switch name {
    case "CancelledError": return CancelledError(message: msg)
    case "TimeoutError": return TimeoutError(message: msg)
    case "InvalidStateError": return InvalidStateError(message: msg)
    case "QueueEmpty": return QueueEmpty(message: msg)
    case "QueueFull": return QueueFull(message: msg)
    case "QueueShutDown": return QueueShutDown(message: msg)
    default: return AsyncioError(typeName: name, message: msg)
    }
}

func errorName(_ e: any Error) -> String {
    if let a = e as? any AsyncioErrorProtocol { return a.typeName }
    if e is CancellationError { return "CancelledError" }
    return "RuntimeError"
}

func errorMessage(_ e: any Error) -> String? {
    if let a = e as? any AsyncioErrorProtocol { return a.message }
    return nil
}

/// Does a handler naming `name` catch `e`?
func errorMatches(_ e: any Error, _ name: String) -> Bool {
    let n = errorName(e)
    let isGroup = e is ExceptionGroup
    switch name {
    case "BaseException": return true
    case "Exception": return n != "CancelledError" && n != "BaseExceptionGroup"
    case "BaseExceptionGroup": return isGroup
    case "ExceptionGroup": return isGroup && n == "ExceptionGroup"
    default: return !isGroup && n == name
    }
}
