// bench's --json output: one JSON object per line, for tools and CI. The
// values are written by the caller (numbers with BenchFormat, strings with
// `quoted`), so every line keeps its keys in the order bench promises.

/// The text of one JSON object on one line.
public enum JSONLine {
    /// `fields` as one object, in their order; each value is already JSON
    /// (a number, `null`, a `quoted` string, an array or an object).
    public static func object(_ fields: [(key: String, value: String)]) -> String {
        "{" + fields.map { "\(quoted($0.key)):\($0.value)" }.joined(separator: ",") + "}"
    }

    /// `s` as a JSON string literal: quotes, backslashes and control
    /// characters escaped, everything else as it is.
    public static func quoted(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where ch.value < 0x20:
                let hex = String(ch.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "\""
    }

    /// `values` as a JSON array of numbers with `digits` decimals.
    public static func numbers(_ values: [Double], digits: Int) -> String {
        "[" + values.map { BenchFormat.fixed($0, digits: digits) }.joined(separator: ",") + "]"
    }

    /// `values` as a JSON array of strings.
    public static func strings(_ values: [String]) -> String {
        "[" + values.map(quoted).joined(separator: ",") + "]"
    }
}
