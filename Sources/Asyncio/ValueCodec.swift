// How a Swift value rides in a C future's result (a ca_value): integers,
// doubles and Void without any allocation, everything else in a box that
// the C core shares by reference count.

import CAsyncio
import CAsyncioShim

/// The root of the Swift objects a `cas_box` retains.
@usableFromInline
class AnyValueBox {
    /// The order of two boxed priority-queue items (see ComparableBox).
    func compare(to other: AnyValueBox) -> Int32 { 0 }
}

/// A boxed value of type `T`.
@usableFromInline
class ValueBox<T>: AnyValueBox {
    @usableFromInline let value: T
    @usableFromInline init(_ value: T) { self.value = value }
}

/// Encodes and decodes values of type `T` as `ca_value`s.
@usableFromInline
enum ValueCodec<T> {
    /// The tag a box of `T` carries: `T`'s metadata pointer.
    @inlinable @inline(__always)
    static var tag: UnsafeRawPointer { unsafeBitCast(T.self as Any.Type, to: UnsafeRawPointer.self) }

    /// An owned value holding `value`.
    @inlinable @inline(__always)
    static func encode(_ value: T) -> ca_value {
        if T.self == Int.self { return ca_int(Int64(unsafeBitCast(value, to: Int.self))) }
        if T.self == Void.self { return ca_none() }
        if T.self == Double.self { return ca_double(unsafeBitCast(value, to: Double.self)) }
        if T.self == Int64.self { return ca_int(unsafeBitCast(value, to: Int64.self)) }
        if T.self == Int32.self { return ca_int(Int64(unsafeBitCast(value, to: Int32.self))) }
        if T.self == Bool.self { return ca_int(unsafeBitCast(value, to: Bool.self) ? 1 : 0) }
        return encodeBox(ValueBox(value))
    }

    /// True for the types stored inline (no box).
    static var isInline: Bool {
        T.self == Int.self || T.self == Void.self || T.self == Double.self || T.self == Int64.self
            || T.self == Int32.self || T.self == Bool.self
    }

    /// An owned value holding `box`.
    @usableFromInline
    static func encodeBox(_ box: ValueBox<T>) -> ca_value {
        let object = Unmanaged<AnyValueBox>.passRetained(box).toOpaque()
        guard let b = cas_box_new(object, tag) else { fatalError("out of memory boxing a value") }
        return cas_obj_value(UnsafeMutableRawPointer(b))
    }

    /// Reads a borrowed value as `T` (copying it out of its box). Throws
    /// `AsyncioError` (TypeError) when the value does not hold a `T`, as a
    /// C coroutine's result read with the wrong Swift type would.
    @inlinable @inline(__always)
    static func decode(_ v: UnsafePointer<ca_value>) throws -> T {
        let kind = v.pointee.kind
        if T.self == Int.self, kind == CA_VALUE_INT { return unsafeBitCast(Int(v.pointee.u.i), to: T.self) }
        if T.self == Void.self { return unsafeBitCast((), to: T.self) }
        if T.self == Double.self {
            if kind == CA_VALUE_DOUBLE { return unsafeBitCast(v.pointee.u.d, to: T.self) }
            if kind == CA_VALUE_INT { return unsafeBitCast(Double(v.pointee.u.i), to: T.self) }
        }
        if T.self == Int64.self, kind == CA_VALUE_INT { return unsafeBitCast(v.pointee.u.i, to: T.self) }
        if T.self == Int32.self, kind == CA_VALUE_INT, let i = Int32(exactly: v.pointee.u.i) {
            return unsafeBitCast(i, to: T.self)
        }
        if T.self == Bool.self, kind == CA_VALUE_INT { return unsafeBitCast(v.pointee.u.i != 0, to: T.self) }
        if let object = cas_box_object(v, tag) {
            return Unmanaged<ValueBox<T>>.fromOpaque(object).takeUnretainedValue().value
        }
        throw mismatch(v)
    }

    /// Reads an owned value as `T` and releases it.
    @inlinable @inline(__always)
    static func take(_ v: inout ca_value) throws -> T {
        defer { ca_value_clear(&v) }
        return try decode(&v)
    }

    /// The TypeError of a value that does not hold a `T`.
    @usableFromInline
    static func mismatch(_ v: UnsafePointer<ca_value>) -> any Error {
        AsyncioError(typeName: "TypeError", message: "a \(describe(v)) result cannot be read as \(T.self)")
    }

    private static func describe(_ v: UnsafePointer<ca_value>) -> String {
        switch v.pointee.kind {
        case CA_VALUE_NONE: return "None"
        case CA_VALUE_INT: return "int"
        case CA_VALUE_DOUBLE: return "float"
        case CA_VALUE_PTR: return "pointer"
        default:
            if let o = v.pointee.u.obj { return String(cString: o.pointee.ob_type.pointee.tp_name) }
            return "object"
        }
    }
}
