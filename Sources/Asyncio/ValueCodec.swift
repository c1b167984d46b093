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

/// The Swift types stored inline in a `ca_value`, without a box (see
/// ``ValueCodec/inlineKind``).
@usableFromInline
enum InlineValueKind {
    case int, void, double, int64, int32, bool
}

/// Encodes and decodes values of type `T` as `ca_value`s.
@usableFromInline
enum ValueCodec<T> {
    /// The tag a box of `T` carries: `T`'s metadata pointer.
    @inlinable @inline(__always)
    static var tag: UnsafeRawPointer { unsafeBitCast(T.self as Any.Type, to: UnsafeRawPointer.self) }

    /// How `T` is stored inline; `nil` when it is boxed. The one list of
    /// the inline types: ``encode(_:)`` and ``decode(_:)`` switch over it
    /// exhaustively, so a kind added to ``InlineValueKind`` does not compile
    /// until both handle it. Specialized for a concrete `T`, it folds to a
    /// constant and each switch to one case.
    @inlinable @inline(__always)
    static var inlineKind: InlineValueKind? {
        if T.self == Int.self { return .int }
        if T.self == Void.self { return .void }
        if T.self == Double.self { return .double }
        if T.self == Int64.self { return .int64 }
        if T.self == Int32.self { return .int32 }
        if T.self == Bool.self { return .bool }
        return nil
    }

    /// True for the types stored inline (no box).
    static var isInline: Bool { inlineKind != nil }

    /// An owned value holding `value`.
    @inlinable @inline(__always)
    static func encode(_ value: T) -> ca_value {
        switch inlineKind {
        case .int?: return ca_int(Int64(unsafeBitCast(value, to: Int.self)))
        case .void?: return ca_none()
        case .double?: return ca_double(unsafeBitCast(value, to: Double.self))
        case .int64?: return ca_int(unsafeBitCast(value, to: Int64.self))
        case .int32?: return ca_int(Int64(unsafeBitCast(value, to: Int32.self)))
        case .bool?: return ca_int(unsafeBitCast(value, to: Bool.self) ? 1 : 0)
        case nil: return encodeBox(ValueBox(value))
        }
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
        switch inlineKind {
        case .int?:
            if kind == CA_VALUE_INT { return unsafeBitCast(Int(v.pointee.u.i), to: T.self) }
        case .void?:
            return unsafeBitCast((), to: T.self)
        case .double?:
            if kind == CA_VALUE_DOUBLE { return unsafeBitCast(v.pointee.u.d, to: T.self) }
            if kind == CA_VALUE_INT { return unsafeBitCast(Double(v.pointee.u.i), to: T.self) }
        case .int64?:
            if kind == CA_VALUE_INT { return unsafeBitCast(v.pointee.u.i, to: T.self) }
        case .int32?:
            if kind == CA_VALUE_INT, let i = Int32(exactly: v.pointee.u.i) { return unsafeBitCast(i, to: T.self) }
        case .bool?:
            if kind == CA_VALUE_INT { return unsafeBitCast(v.pointee.u.i != 0, to: T.self) }
        case nil:
            break
        }
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
