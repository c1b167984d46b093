// A first-in first-out queue for the loop-confined inboxes (accepted
// connections, received datagrams).

/// A FIFO on an array: a pop advances a head index, and the array drops its
/// popped prefix once that is at least half of it, so a reader that keeps
/// lagging a few elements behind does not make the array (and the elements it
/// already handed out) grow without bound.
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    /// Elements held, popped ones not yet dropped included.
    var storedCount: Int { items.count }

    /// The elements not popped yet, oldest first.
    var remaining: ArraySlice<Element> { items[head...] }

    mutating func append(_ element: Element) { items.append(element) }

    /// The oldest element, or nil when the queue is empty.
    mutating func popFirst() -> Element? {
        guard head < items.count else { return nil }
        let element = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Empties the queue, returning what was left in it.
    mutating func removeAll() -> ArraySlice<Element> {
        let left = remaining
        items = []
        head = 0
        return left
    }
}
