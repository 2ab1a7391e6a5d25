#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension UnsafeRawBufferPointer {
    /// Whether these bytes are exactly `text`'s: lengths first, then one `memcmp`. Comparing with
    /// a `String.UTF8View` instead steps an iterator through a protocol witness per byte.
    func hasSameBytes(as text: StaticString) -> Bool {
        self.count == text.utf8CodeUnitCount && self.startsWithBytes(of: text)
    }

    /// Whether these bytes begin with `text`'s.
    func startsWithBytes(of text: StaticString) -> Bool {
        let length = text.utf8CodeUnitCount
        guard self.count >= length else { return false }
        guard length > 0, let start = self.baseAddress else { return true }
        return memcmp(start, text.utf8Start, length) == 0
    }

    /// Whether these bytes are exactly `bytes`.
    func hasSameBytes(as bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { self.hasSameBytes(as: $0) }
    }

    /// Whether these bytes are exactly `other`'s.
    func hasSameBytes(as other: UnsafeRawBufferPointer) -> Bool {
        guard self.count == other.count else { return false }
        guard let left = self.baseAddress, let right = other.baseAddress else { return true }
        return memcmp(left, right, other.count) == 0
    }
}
