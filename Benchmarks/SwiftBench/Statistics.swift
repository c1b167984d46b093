// The statistics bench reports, in one place so that every table and JSON
// line means the same by "median".

/// The median of `values`: the middle one, or the mean of the two middle
/// ones when the count is even; nil when `values` is empty.
public func median(_ values: [Double]) -> Double? {
    guard !values.isEmpty else { return nil }
    let s = values.sorted()
    let mid = s.count / 2
    return s.count % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}
