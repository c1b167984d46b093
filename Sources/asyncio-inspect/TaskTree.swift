/// `pstree`: the await tree of `build_async_tree` in CPython 3.14's
/// Lib/asyncio/tools.py. Tasks are joined to the tasks that await them
/// through the awaiter's coroutine frames (outermost first); a task that
/// awaits no task gets its own stack hung beneath it; an await cycle makes
/// a tree impossible and is reported instead. Nodes are array indices, not
/// hashed labels: 100,000 tasks stay linear.

/// The await edges (awaiter id, awaiter's frames innermost first, awaited
/// id), task names and stacks, in discovery order (`_index`).
struct AwaitIndex {
    var names: [(id: UInt64, name: String)] = []
    var nameOf: [UInt64: String] = [:]
    var stacks: [UInt64: [String]] = [:]
    var awaits: [(parent: UInt64, stack: [String], child: UInt64)] = []

    init(_ snapshot: ProcessSnapshot) {
        var position: [UInt64: Int] = [:]
        for thread in snapshot.threads {
            for task in thread.tasks {
                if let i = position[task.id] {
                    names[i].name = task.name  // a dict update keeps the first place
                } else {
                    position[task.id] = names.count
                    names.append((task.id, task.name))
                }
                nameOf[task.id] = task.name
                stacks[task.id] = task.coroutineStack.map(formatStackEntry)
                for awaiter in task.awaitedBy {
                    awaits.append((awaiter.id, awaiter.callStack.map(formatStackEntry), task.id))
                }
            }
        }
    }
}

/// The await graph's cycles (`_find_cycles`): a depth-first search from each
/// awaiter in discovery order; each back edge closes a cycle. Children are
/// visited in discovery order (CPython iterates a set, whose order is
/// arbitrary; with a single cycle the output is the same).
func findCycles(_ index: AwaitIndex) -> [[UInt64]] {
    var ids: [UInt64] = []
    var number: [UInt64: Int] = [:]
    func node(_ id: UInt64) -> Int {
        if let n = number[id] { return n }
        number[id] = ids.count
        ids.append(id)
        return ids.count - 1
    }
    var graph: [[Int]] = []
    var roots: [Int] = []  // awaiters in discovery order (the graph dict's keys)
    var isRoot = Set<Int>()
    var edges = Set<UInt64>()
    for edge in index.awaits {
        let p = node(edge.parent), c = node(edge.child)
        while graph.count < ids.count { graph.append([]) }
        if isRoot.insert(p).inserted { roots.append(p) }
        if edges.insert(UInt64(p) << 32 | UInt64(c)).inserted { graph[p].append(c) }
    }
    enum Color { case white, grey, black }
    var color = [Color](repeating: .white, count: ids.count)
    var onPath = [Int](repeating: -1, count: ids.count)  // position on the path while grey
    var path: [Int] = []
    var cycles: [[UInt64]] = []
    // An explicit stack: a corrupt target could make the recursion deep.
    for root in roots where color[root] == .white {
        var stack: [(node: Int, next: Int)] = [(root, 0)]
        color[root] = .grey
        onPath[root] = path.count
        path.append(root)
        while let top = stack.last {
            let children = graph[top.node]
            if top.next < children.count {
                stack[stack.count - 1].next += 1
                let child = children[top.next]
                switch color[child] {
                case .white:
                    color[child] = .grey
                    onPath[child] = path.count
                    path.append(child)
                    stack.append((child, 0))
                case .grey:
                    cycles.append((path[onPath[child]...] + [child]).map { ids[$0] })
                case .black:
                    break
                }
            } else {
                color[top.node] = .black
                path.removeLast()
                stack.removeLast()
            }
        }
    }
    return cycles
}

/// The tree (`_build_tree`): labels and children, in creation order.
struct AwaitTree {
    enum Kind { case task, coroutine }
    var kinds: [Kind] = []
    var labels: [String] = []
    var taskIDs: [UInt64] = []          // 0 for coroutine nodes
    var children: [[Int]] = []
    private var taskNode: [UInt64: Int] = [:]

    private mutating func add(_ kind: Kind, _ label: String, _ id: UInt64) -> Int {
        kinds.append(kind)
        labels.append(label)
        taskIDs.append(id)
        children.append([])
        return kinds.count - 1
    }

    /// The node of a task; an awaiter that is not a listed task (a plain
    /// future) gets a node without a label, never printed, like CPython's.
    private mutating func node(ofTask id: UInt64) -> Int {
        if let n = taskNode[id] { return n }
        let n = add(.task, "", id)
        taskNode[id] = n
        unlabelled.insert(n)
        return n
    }
    private var unlabelled = Set<Int>()

    init(_ index: AwaitIndex) {
        for (id, name) in index.names { taskNode[id] = add(.task, name, id) }
        var frameNodes: [Int: [String: Int]] = [:]
        func frameNode(under parent: Int, _ frame: String) -> Int {
            if let existing = frameNodes[parent]?[frame] { return existing }
            let n = add(.coroutine, frame, 0)
            children[parent].append(n)
            frameNodes[parent, default: [:]][frame] = n
            return n
        }
        var attached = Set<UInt64>()
        for edge in index.awaits {
            var cur = node(ofTask: edge.parent)
            for frame in edge.stack.reversed() { cur = frameNode(under: cur, frame) }
            let child = node(ofTask: edge.child)
            if attached.insert(UInt64(cur) << 32 | UInt64(child)).inserted { children[cur].append(child) }
        }
        let awaiting = Set(index.awaits.map(\.parent))
        for (id, _) in index.names where !awaiting.contains(id) {
            guard let stack = index.stacks[id] else { continue }
            var cur = taskNode[id]!
            for frame in stack.reversed() { cur = frameNode(under: cur, frame) }
        }
    }

    /// Labelled nodes nobody points at, in creation order (`_roots`).
    var roots: [Int] {
        var isChild = [Bool](repeating: false, count: kinds.count)
        for kids in children { for k in kids { isChild[k] = true } }
        return kinds.indices.filter { !isChild[$0] && !unlabelled.contains($0) }
    }

    func label(_ n: Int) -> String { (kinds[n] == .task ? "(T)" : "") + " " + labels[n] }

    /// One root's lines (`render`).
    func render(_ root: Int) -> [String] {
        var lines: [String] = []
        var stack: [(node: Int, prefix: String, last: Bool)] = [(root, "", true)]
        while let (node, prefix, last) = stack.popLast() {
            lines.append(prefix + (last ? "└── " : "├── ") + label(node))
            let kids = children[node]
            let childPrefix = prefix + (last ? "    " : "│   ")
            for (i, kid) in kids.enumerated().reversed() {
                stack.append((kid, childPrefix, i == kids.count - 1))
            }
        }
        return lines
    }
}

/// The tree text, or the cycle report (for stderr) when there are cycles.
enum TreeOutput {
    case trees([[String]])
    case cycles([[UInt64]], names: [UInt64: String])
}

func buildAsyncTree(_ snapshot: ProcessSnapshot) -> TreeOutput {
    let index = AwaitIndex(snapshot)
    let cycles = findCycles(index)
    if !cycles.isEmpty { return .cycles(cycles, names: index.nameOf) }
    let tree = AwaitTree(index)
    return .trees(tree.roots.map(tree.render))
}

/// `_print_cycle_exception`'s text.
func renderCycles(_ cycles: [[UInt64]], names: [UInt64: String]) -> String {
    var out = "ERROR: await-graph contains cycles - cannot print a tree!\n\n"
    for cycle in cycles {
        out += "cycle: " + cycle.map { names[$0] ?? hex($0) }.joined(separator: " → ") + "\n"
    }
    return out
}
