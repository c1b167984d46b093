// A stream connection (TCP or Unix socket) for Swift: asyncio's StreamReader
// and StreamWriter pair over one C transport, with reads that copy straight
// from the reader's buffer and waits that allocate nothing but a loop future.

import CAsyncio
import CAsyncioShim

/// A connected stream socket, TCP or Unix-domain: asyncio's
/// `(StreamReader, StreamWriter)` pair as one object.
///
/// Get one from a ``TCPServer`` (iterate it) or from
/// ``EventLoop/openConnection(host:port:limit:)`` /
/// ``EventLoop/openUnixConnection(path:limit:)``:
///
/// ```swift
/// let conn = try await loop.openConnection(host: "127.0.0.1", port: 8888)
/// try conn.write(Array("ping\n".utf8))
/// try await conn.drain()
/// let line = try await conn.readLine()
/// conn.close()
/// try await conn.waitClosed()
/// ```
///
/// The loop's transport reads the socket as data comes and buffers it in
/// the connection's reader (up to twice its limit, then reading pauses);
/// the `read` methods take from that buffer and wait only while it is
/// empty. Writes are buffered by the transport and never wait: call
/// ``drain()`` after writing to wait while the transport's write buffer is
/// above its high-water mark (flow control).
///
/// Cancelling a task while it waits in a read loses nothing: bytes that
/// arrived meanwhile stay buffered for the next read.
///
/// A connection belongs to its loop's thread: use it from task bodies and
/// callbacks of that loop. Dropping the last reference closes it.
///
/// Errors are the core's, bridged: ``OSError`` (see ``OSError/kind`` —
/// `.connectionReset` for a reset peer), ``IncompleteReadError``,
/// ``LimitOverrunError``, ``CancelledError``, ``AsyncioError``
/// (`RuntimeError` for two reads waiting at once or a write after
/// ``writeEOF()``, `ValueError` for bad arguments).
///
/// Safety of `@unchecked Sendable`: the stored properties are immutable;
/// the C objects they point to are confined to the loop's thread (every
/// method checks it runs there, or that the loop is not running), and
/// `deinit` closes and releases them on that thread.
public final class TCPConnection: @unchecked Sendable, CustomStringConvertible {
    /// The C StreamWriter (this object owns one reference). Its transport
    /// is ``unsafeRawTransport``, its reader ``unsafeRawReader``.
    public let unsafeRawWriter: OpaquePointer
    /// The C StreamReader (borrowed from the writer, which holds it).
    public let unsafeRawReader: OpaquePointer
    /// The loop the connection belongs to.
    let loop: OpaquePointer

    /// The local address (`get_extra_info('sockname')`), read when the
    /// connection was handed out; `nil` if the socket was already closed.
    public let localAddress: SocketAddress?
    /// The peer's address (`get_extra_info('peername')`), read when the
    /// connection was handed out; `nil` if the socket was already closed.
    public let peerAddress: SocketAddress?

    /// Wraps a C StreamWriter made with a reader, taking over the caller's
    /// reference (call on the loop's thread).
    public init(unsafeTakingOwnershipOf writer: OpaquePointer) {
        unsafeRawWriter = writer
        guard let reader = ca_stream_writer_reader(writer) else {
            preconditionFailure("a TCPConnection needs a StreamWriter made with its reader")
        }
        unsafeRawReader = reader
        let t = ca_stream_writer_transport(writer)!
        loop = ca_transport_get_loop(t)!
        localAddress = SocketAddress.read { ca_transport_get_sockname(t, $0, $1) }
        peerAddress = SocketAddress.read { ca_transport_get_peername(t, $0, $1) }
    }

    deinit {
        runOnLoopThread(loop, closeAndReleaseWriter, UnsafeMutableRawPointer(unsafeRawWriter))
    }

    /// The C transport (borrowed: valid while this object lives).
    public var unsafeRawTransport: OpaquePointer { ca_stream_writer_transport(unsafeRawWriter)! }

    // MARK: Reading

    /// `read(n)`: waits until data is buffered (or the stream ended) and
    /// copies up to `buffer.count` bytes into `buffer`.
    ///
    /// The allocation-free read: the bytes go from the reader's buffer
    /// straight into yours.
    ///
    /// - Returns: the number of bytes copied; 0 at the end of the stream
    ///   (or for an empty `buffer`).
    /// - Throws: the error the connection was lost with (``OSError``, e.g.
    ///   `.connectionReset`); ``CancelledError``; ``AsyncioError``
    ///   (`RuntimeError`) while another read waits.
    @inlinable
    nonisolated(nonsending) public func read(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
        // Inlinable, and only the wait out of line: each async call costs a
        // frame from the task allocator, and this is the per-request path.
        if try isReadable(wanting: buffer.count) { return copyBuffered(into: buffer) }
        return try await readWaiting(into: buffer)
    }

    /// `read(n)`: waits until data is buffered (or the stream ended) and
    /// returns up to `maxBytes` bytes.
    ///
    /// - Returns: the bytes; empty at the end of the stream (or when
    ///   `maxBytes` is 0).
    /// - Throws: as ``read(into:)``; ``AsyncioError`` (`ValueError`) for a
    ///   negative `maxBytes`.
    nonisolated(nonsending) public func read(maxBytes: Int = 65536) async throws -> [UInt8] {
        guard maxBytes >= 0 else {
            throw AsyncioError(typeName: "ValueError", message: "maxBytes must not be negative")
        }
        guard maxBytes > 0 else {
            try reader.checkException()
            return []
        }
        return try await Await.steps(loop: loop, (reader, maxBytes)) { context, afterWait in
            // One `_wait_for_data`, then what is buffered (as CPython,
            // which checks nothing again after the wait).
            if !afterWait, let waiter = try context.0.dataWaiter("read") { return .wait(waiter) }
            return .done(context.0.take(upTo: context.1))
        } settle: { context, waiter in
            context.0.waitDone(waiter)
        }
    }

    /// Waits until data is buffered (or the stream ended), then calls `body`
    /// with up to `maxBytes` of the buffered bytes in place, and consumes
    /// them once `body` returns.
    ///
    /// No copy at all: an echo server can write what it read without an
    /// intermediate buffer (`try await conn.readInPlace { try conn.write($0) }`).
    /// The bytes are valid during the call only, and `body` must not read
    /// from this connection. If `body` throws, nothing is consumed.
    ///
    /// Awaited outside a task body of the connection's loop (from a plain
    /// Swift task, say, begun while the loop was idle), a read that has to
    /// wait shows `body` a copy instead, made on the loop's thread, and
    /// consumes the bytes there once `body` returned: `body` runs on the
    /// caller's isolation, where the reader's buffer may not be touched.
    ///
    /// - Parameters:
    ///   - maxBytes: the most bytes `body` is shown.
    ///   - body: called once, with the bytes (empty at the end of the stream).
    /// - Returns: what `body` returns.
    /// - Throws: what `body` throws; as ``read(into:)``.
    nonisolated(nonsending) public func readInPlace<R>(maxBytes: Int = 65536,
                                                       _ body: (UnsafeRawBufferPointer) throws -> R)
        async throws -> R {
        guard maxBytes >= 0 else {
            throw AsyncioError(typeName: "ValueError", message: "maxBytes must not be negative")
        }
        let reader = reader
        try reader.checkException()
        if maxBytes > 0 && !reader.hasData {
            guard Await.ownCoroutine != nil else { return try await readCopy(maxBytes: maxBytes, body) }
            try await Await.steps(loop: loop, reader) { reader, afterWait throws -> LoopStep<Void> in
                if !afterWait, let waiter = try reader.dataWaiter("read") { return .wait(waiter) }
                return .done(())
            } settle: { reader, waiter in
                reader.waitDone(waiter)
            }
        }
        var len = 0
        let data = ca_stream_reader_peek(unsafeRawReader, &len)
        let n = min(len, maxBytes)
        let result = try body(UnsafeRawBufferPointer(start: n > 0 ? data : nil, count: n))
        if n > 0 { ca_stream_reader_consume(unsafeRawReader, n) }
        return result
    }

    /// `read(-1)`: every byte until the end of the stream.
    ///
    /// - Throws: as ``read(into:)``.
    nonisolated(nonsending) public func readToEnd() async throws -> [UInt8] {
        checkConfined(loop: loop)
        return try await bytesResult(unsafeRawReader) { ca_stream_reader_read($0, -1) }
    }

    /// `readexactly(n)`: exactly `count` bytes, waiting for as many as needed.
    ///
    /// - Throws: ``IncompleteReadError`` when the stream ends first (its
    ///   ``IncompleteReadError/partial`` holds the bytes that came, which are
    ///   consumed); ``AsyncioError`` (`ValueError`) for a negative count; as
    ///   ``read(into:)``.
    nonisolated(nonsending) public func readExactly(_ count: Int) async throws -> [UInt8] {
        guard count >= 0 else {
            throw AsyncioError(typeName: "ValueError", message: "readexactly size can not be less than zero")
        }
        return try await Await.steps(loop: loop, (reader, count)) { context, afterWait in
            if let waiter = try context.0.exactWaiter(context.1, afterWait: afterWait) { return .wait(waiter) }
            return .done(context.0.take(upTo: context.1))
        } settle: { context, waiter in
            context.0.waitDone(waiter)
        }
    }

    /// `readexactly(n)` into `buffer`: fills all of it.
    ///
    /// - Throws: as ``readExactly(_:)``; nothing of `buffer` is meaningful
    ///   then.
    nonisolated(nonsending) public func readExactly(into buffer: UnsafeMutableRawBufferPointer) async throws {
        try await Await.steps(loop: loop, (reader, buffer)) { context, afterWait throws -> LoopStep<Void> in
            if let waiter = try context.0.exactWaiter(context.1.count, afterWait: afterWait) { return .wait(waiter) }
            _ = context.0.copy(into: context.1)
            return .done(())
        } settle: { context, waiter in
            context.0.waitDone(waiter)
        }
    }

    /// `readuntil(separator)`: the bytes up to and including `separator`.
    ///
    /// - Throws: ``IncompleteReadError`` at the end of the stream (with the
    ///   bytes that came, consumed); ``LimitOverrunError`` when no separator
    ///   shows up within the limit (the bytes stay buffered);
    ///   ``AsyncioError`` (`ValueError`) for an empty separator; as
    ///   ``read(into:)``.
    nonisolated(nonsending) public func readUntil(_ separator: [UInt8] = [0x0A]) async throws -> [UInt8] {
        checkConfined(loop: loop)
        return try await bytesResult((unsafeRawReader, separator)) { context in
            context.1.withUnsafeBytes { ca_stream_reader_readuntil(context.0, $0.baseAddress, $0.count) }
        }
    }

    /// `readline()`: the bytes up to and including `"\n"`, or what is left
    /// at the end of the stream (empty once it is all read).
    ///
    /// - Throws: ``AsyncioError`` (`ValueError`) for a line longer than the
    ///   limit (its bytes are dropped); as ``read(into:)``.
    nonisolated(nonsending) public func readLine() async throws -> [UInt8] {
        checkConfined(loop: loop)
        return try await bytesResult(unsafeRawReader) { ca_stream_reader_readline($0) }
    }

    /// `at_eof()`: the stream ended and every byte was read.
    public var isAtEOF: Bool {
        checkConfined(loop: loop)
        return ca_stream_reader_at_eof(unsafeRawReader)
    }

    /// How many bytes are buffered, ready to be read without waiting.
    public var bufferedByteCount: Int {
        checkConfined(loop: loop)
        return ca_stream_reader_buffered(unsafeRawReader)
    }

    // MARK: Writing

    /// `write(data)`: queues a copy of `bytes` on the transport; never waits.
    ///
    /// Writes after the connection is lost are dropped, as asyncio does
    /// (``drain()`` reports the loss). Follow a run of writes with
    /// ``drain()`` so a peer that does not read cannot make the buffer grow
    /// without bound.
    ///
    /// - Throws: ``AsyncioError`` (`RuntimeError`) after ``writeEOF()``,
    ///   (`MemoryError`) when the buffer cannot grow.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        checkConfined(loop: loop)
        guard bytes.count > 0 else { return }
        try ErrorBridge.check(ca_stream_writer_write(unsafeRawWriter, bytes.baseAddress, bytes.count))
    }

    /// `write(data)` for any byte sequence (`[UInt8]`, a slice,
    /// `String.UTF8View`, ...); as ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write<Bytes: Sequence>(_ bytes: Bytes) throws where Bytes.Element == UInt8 {
        if let done: Void = try bytes.withContiguousStorageIfAvailable({ try write(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        try Array(bytes).withUnsafeBytes { try write($0) }
    }

    /// `drain()`: waits while the transport's write buffer is above its
    /// high-water mark, until it is back to the low-water mark; returns at
    /// once otherwise.
    ///
    /// - Throws: the error the connection was lost with; ``OSError``
    ///   (`.connectionReset`, "Connection lost") once it is gone;
    ///   ``CancelledError``.
    @inlinable
    nonisolated(nonsending) public func drain() async throws {
        // Inlinable with the wait out of line, as read(into:).
        if !isDrained { try await drainSlowly() }
    }

    /// `write_eof()`: shuts down the sending side once the write buffer is
    /// flushed (a half-close); the connection can still be read.
    ///
    /// - Throws: ``OSError`` from `shutdown(2)`.
    public func writeEOF() throws {
        checkConfined(loop: loop)
        try ErrorBridge.check(ca_stream_writer_write_eof(unsafeRawWriter))
    }

    /// The bytes written and not yet taken by the kernel
    /// (`transport.get_write_buffer_size()`).
    public var writeBufferSize: Int {
        checkConfined(loop: loop)
        return ca_transport_get_write_buffer_size(unsafeRawTransport)
    }

    /// The transport's write-buffer limits (`get_write_buffer_limits()`).
    public var writeBufferLimits: (low: Int, high: Int) {
        checkConfined(loop: loop)
        var low = 0, high = 0
        ca_transport_get_write_buffer_limits(unsafeRawTransport, &low, &high)
        return (low, high)
    }

    /// `set_write_buffer_limits(high, low)`: ``drain()`` waits once more
    /// than `high` bytes are buffered, until at most `low` are. `nil`
    /// means asyncio's default: 64 KiB high when both are `nil`, a quarter
    /// of `high` for `low`, four times `low` for `high`.
    ///
    /// - Throws: ``AsyncioError`` (`ValueError`) unless high ≥ low ≥ 0 (the
    ///   limits stay as they were).
    public func setWriteBufferLimits(high: Int? = nil, low: Int? = nil) throws {
        checkConfined(loop: loop)
        try ErrorBridge.check(ca_transport_set_write_buffer_limits(
            unsafeRawTransport, high.map(Int64.init) ?? CA_WRITE_LIMIT_DEFAULT, low.map(Int64.init) ?? CA_WRITE_LIMIT_DEFAULT))
    }

    // MARK: Closing

    /// `close()`: stops reading, sends what is buffered, then closes the
    /// socket. Idempotent; ``waitClosed()`` waits for the end.
    public func close() {
        checkConfined(loop: loop)
        ca_stream_writer_close(unsafeRawWriter)
    }

    /// `transport.abort()`: closes at once, dropping buffered data.
    public func abort() {
        checkConfined(loop: loop)
        ca_transport_abort(unsafeRawTransport)
    }

    /// `is_closing()`: ``close()`` or ``abort()`` was called, or the
    /// connection was lost.
    public var isClosing: Bool {
        checkConfined(loop: loop)
        return ca_stream_writer_is_closing(unsafeRawWriter)
    }

    /// `wait_closed()`: waits until the connection is gone.
    ///
    /// - Throws: the error it was lost with, if any; ``CancelledError``.
    nonisolated(nonsending) public func waitClosed() async throws {
        checkConfined(loop: loop)
        try await Await.coroutine(loop: loop, unsafeRawWriter) { ca_stream_writer_wait_closed($0) }
    }

    /// The socket (`get_extra_info('socket').fileno()`), for socket
    /// options; -1 once closed. Do not read, write or close it.
    public var fileDescriptor: Int32 {
        checkConfined(loop: loop)
        return ca_transport_get_fd(unsafeRawTransport)
    }

    /// `<TCPConnection ('127.0.0.1', 50000) -> ('127.0.0.1', 8888)>`.
    public var description: String {
        "<TCPConnection \(localAddress.map(String.init(describing:)) ?? "?") -> "
            + "\(peerAddress.map(String.init(describing:)) ?? "?")\(isClosing ? " closing" : "")>"
    }

    // MARK: Internals

    /// True when a read of `count` bytes can go on without waiting: data
    /// is buffered, the stream ended, or `count` is 0. Throws the error the
    /// connection was lost with.
    @usableFromInline
    func isReadable(wanting count: Int) throws -> Bool {
        try reader.checkException()
        return count == 0 || reader.hasData
    }

    /// read(into:) once it has to wait: the wait, then the copy, stepped
    /// on the loop's thread when awaited from elsewhere (a wait begun while
    /// the loop was idle ends while it runs, and the reader is the loop's).
    @usableFromInline
    nonisolated(nonsending) func readWaiting(into buffer: UnsafeMutableRawBufferPointer) async throws -> Int {
        try await Await.steps(loop: loop, (reader, buffer)) { context, afterWait in
            if !afterWait, let waiter = try context.0.dataWaiter("read") { return .wait(waiter) }
            return .done(context.0.copy(into: context.1))
        } settle: { context, waiter in
            context.0.waitDone(waiter)
        }
    }

    /// Copies up to `buffer.count` buffered bytes into `buffer` and
    /// consumes them; returns how many.
    @usableFromInline
    func copyBuffered(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        reader.copy(into: buffer)
    }

    /// drain() would return at once.
    @usableFromInline
    var isDrained: Bool {
        checkConfined(loop: loop)
        return ca_stream_writer_drain_ready(unsafeRawWriter)
    }

    /// drain()'s coroutine, for when it may wait or fail.
    @usableFromInline
    nonisolated(nonsending) func drainSlowly() async throws {
        try await Await.coroutine(loop: loop, unsafeRawWriter) { ca_stream_writer_drain($0) }
    }

    /// The reader, as a read's steps see it.
    private var reader: ReaderRef { ReaderRef(raw: unsafeRawReader, loop: loop) }

    /// readInPlace(maxBytes:_:) outside the body's task, once it has to
    /// wait: waits on the loop's thread, which copies up to `maxBytes`
    /// bytes and leaves them buffered; `body` gets the copy here, and the
    /// bytes are consumed on the loop's thread once it returned.
    nonisolated(nonsending) private func readCopy<R>(maxBytes: Int, _ body: (UnsafeRawBufferPointer) throws -> R)
        async throws -> R {
        let bytes: [UInt8] = try await Await.steps(loop: loop, (reader, maxBytes)) { context, afterWait in
            if !afterWait, let waiter = try context.0.dataWaiter("read") { return .wait(waiter) }
            return .done(context.0.peek(upTo: context.1))
        } settle: { context, waiter in
            context.0.waitDone(waiter)
        }
        let result = try bytes.withUnsafeBytes { try body($0) }
        if !bytes.isEmpty {
            try await Await.onLoop(loop, (unsafeRawReader, bytes.count)) { (context) -> Void in
                ca_stream_reader_consume(context.0, context.1)
            }
        }
        return result
    }

    /// Runs the read coroutine `make(context)` creates and returns its bytes.
    nonisolated(nonsending) private func bytesResult<Context>(
        _ context: Context, _ make: @escaping (Context) -> UnsafeMutablePointer<ca_coro>?
    ) async throws -> [UInt8] {
        try await Await.coroutine(loop: loop, context, make) { v in
            guard v.kind == CA_VALUE_OBJECT, let obj = v.u.obj, ca_bytes_check(obj) else { return [] }
            let b = UnsafeMutableRawPointer(obj).assumingMemoryBound(to: ca_bytes.self)
            return Array(UnsafeBufferPointer(start: b.pointee.data, count: b.pointee.len))
        }
    }
}

// MARK: - The reader as a read's steps see it

/// A connection's C StreamReader and its loop: what the steps of a read
/// (``Await/steps(loop:_:_:settle:)``) work on. Two pointers, borrowed: the
/// connection holds the reader, and a reading caller keeps the connection
/// alive until the read returns, which is after its last step. A read's
/// frame keeps this across each wait instead of the connection itself, so
/// waiting costs no retain and release of the connection.
private struct ReaderRef {
    let raw: OpaquePointer
    let loop: OpaquePointer

    /// Throws the error the reader holds (the connection's loss), if any.
    @inline(__always)
    func checkException() throws {
        checkConfined(loop: loop)
        if let e = ca_stream_reader_exception(raw) { throw ErrorBridge.swiftError(e) }
    }

    /// Data is buffered, or the stream ended: a read can go on at once.
    var hasData: Bool { ca_stream_reader_buffered(raw) > 0 || ca_stream_reader_at_eof(raw) }

    /// A read's step before it can take data: throws the error the
    /// connection was lost with; else nil once data is buffered or the
    /// stream ended, or the waiter of one `await self._wait_for_data(name)`
    /// (the step's reference is the caller's).
    @inline(__always)
    func dataWaiter(_ name: StaticString) throws -> UnsafeMutablePointer<ca_future>? {
        try checkException()
        return hasData ? nil : try waiter(name)
    }

    /// A readexactly's step before it can take `count` bytes: as
    /// ``dataWaiter(_:)``, nil once `count` bytes are buffered; at the end
    /// of the stream first, throws IncompleteReadError with what is
    /// buffered (taken). After a wait the error is not checked again (a
    /// loss while waiting fails the wait itself), as in CPython.
    func exactWaiter(_ count: Int, afterWait: Bool) throws -> UnsafeMutablePointer<ca_future>? {
        if !afterWait { try checkException() }
        if ca_stream_reader_buffered(raw) >= count { return nil }
        if ca_stream_reader_eof_received(raw) {
            throw IncompleteReadError(partial: take(upTo: Int.max), expected: count)
        }
        return try waiter("readexactly")
    }

    /// The reader's new waiter (`_wait_for_data(name)`): one reference for
    /// the caller. Throws RuntimeError while another read waits.
    @inline(__always)
    private func waiter(_ name: StaticString) throws -> UnsafeMutablePointer<ca_future> {
        var out: UnsafeMutablePointer<ca_future>?
        try ErrorBridge.check(ca_stream_reader_wait_for_data(raw, staticCString(name), &out))
        return out!
    }

    /// After a wait on `waiter` (woken, cancelled or abandoned): the reader
    /// forgets it if it is still its waiter (`finally: self._waiter =
    /// None`), and the step's reference goes.
    @inline(__always)
    func waitDone(_ waiter: UnsafeMutablePointer<ca_future>) {
        ca_stream_reader_wait_done(raw, waiter)
        ca_decref(UnsafeMutableRawPointer(waiter))
    }

    /// Copies up to `buffer.count` buffered bytes into `buffer` and
    /// consumes them; returns how many.
    @inline(__always)
    func copy(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var len = 0
        guard let data = ca_stream_reader_peek(raw, &len), len > 0, buffer.count > 0 else { return 0 }
        let n = Swift.min(len, buffer.count)
        buffer.baseAddress!.copyMemory(from: data, byteCount: n)
        ca_stream_reader_consume(raw, n)
        return n
    }

    /// Takes up to `max` buffered bytes as an array.
    func take(upTo max: Int) -> [UInt8] {
        let bytes = peek(upTo: max)
        if !bytes.isEmpty { ca_stream_reader_consume(raw, bytes.count) }
        return bytes
    }

    /// Up to `max` buffered bytes as an array, left buffered.
    func peek(upTo max: Int) -> [UInt8] {
        var len = 0
        guard let data = ca_stream_reader_peek(raw, &len), len > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: Swift.min(len, max)))
    }
}

/// Closes a StreamWriter's transport and drops a reference to it (loop thread).
private func closeAndReleaseWriter(_ arg: UnsafeMutableRawPointer?) {
    ca_stream_writer_close(OpaquePointer(arg!))
    ca_decref(arg)
}
