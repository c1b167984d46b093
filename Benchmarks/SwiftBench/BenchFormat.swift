// How bench writes its figures, shared by its tables and JSON lines and by
// the comparison verdict (Comparison.swift).

/// The number formats of bench's output.
public enum BenchFormat {
    /// `x` with exactly `digits` decimals (x finite and non-negative).
    public static func fixed(_ x: Double, digits: Int) -> String {
        var scale: UInt64 = 1
        for _ in 0..<digits { scale *= 10 }
        let scaled = UInt64((x * Double(scale)).rounded())
        let whole = String(scaled / scale)
        guard digits > 0 else { return whole }
        let frac = String(scaled % scale)
        return whole + "." + String(repeating: "0", count: digits - frac.count) + frac
    }

    /// Allocations per op: exact when whole, else six decimals (1 per batch
    /// of 1000 shows as 0.001000).
    public static func allocs(_ x: Double) -> String {
        x == x.rounded() ? String(Int64(x)) : fixed(x, digits: 6)
    }

    /// A ratio with three significant figures or so: 123, 12.3, 1.23.
    public static func ratio(_ r: Double) -> String {
        r >= 100 ? fixed(r, digits: 0) : r >= 10 ? fixed(r, digits: 1) : fixed(r, digits: 2)
    }
}
