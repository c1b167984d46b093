// bench's tables for people: columns padded to their widest cell, numbers
// right-aligned so that their digits line up, names and notes left-aligned.

/// The lines of a plain-text table.
public enum TextTable {
    /// `header` then one line per row, cells two spaces apart and trailing
    /// blanks trimmed. Columns before `leftColumns` and from `leftAfter` on
    /// are left-aligned (names, notes), the others right-aligned (numbers).
    /// Every row has as many cells as `header`.
    public static func lines(header: [String], rows: [[String]], leftColumns: Int,
                             leftAfter: Int = .max) -> [String] {
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max()!
        }
        func line(_ cells: [String]) -> String {
            var text = cells.indices.map { i in
                let pad = String(repeating: " ", count: widths[i] - cells[i].count)
                return i < leftColumns || i >= leftAfter ? cells[i] + pad : pad + cells[i]
            }.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        return [line(header)] + rows.map(line)
    }
}
