import NIOCore

/// The FastCGI name-value pair encoding, used by the `FCGI_PARAMS` stream and the `FCGI_GET_VALUES` records.
///
/// Each length is one byte when below 128, otherwise four bytes big-endian with the high bit set.
public enum FastCGINameValuePairs {
    /// Decodes a complete `FCGI_PARAMS` stream (all record contents concatenated) into pairs in stream order.
    ///
    /// Names must be valid UTF-8 (they are looked up by the application, so a mangled name is an error:
    /// ``FastCGIError/invalidUTF8``). Values are decoded with U+FFFD replacing invalid sequences, because
    /// CGI values such as `HTTP_*` headers or `REQUEST_URI` may legitimately carry non-UTF-8 bytes and
    /// refusing the whole request for them would be worse. A truncated pair or a length running past
    /// the end throws ``FastCGIError/malformedNameValuePair``.
    public static func decode(_ buffer: ByteBuffer) throws -> [(name: String, value: String)] {
        var pairs: [(name: String, value: String)] = []
        try buffer.withUnsafeReadableBytes { bytes in
            try Self.scan(bytes) { name, value in
                pairs.append((name: Self.string(bytes, name), value: Self.string(bytes, value)))
            }
        }
        return pairs
    }

    /// Finds the pairs of a complete `FCGI_PARAMS` stream without building a string: the byte
    /// ranges of each name and value, in stream order, checked as `decode(_:)` checks them.
    static func scan(
        _ bytes: UnsafeRawBufferPointer, _ body: (_ name: Range<Int>, _ value: Range<Int>) throws -> Void
    ) throws {
        var cursor = 0
        while cursor < bytes.count {
            let offset = cursor
            let nameLength = try Self.readLength(bytes, at: &cursor, pairOffset: offset)
            let valueLength = try Self.readLength(bytes, at: &cursor, pairOffset: offset)
            let remaining = bytes.count - cursor
            guard nameLength <= remaining, valueLength <= remaining - nameLength else {
                throw FastCGIError.malformedNameValuePair.withDetail(
                    "the pair at offset \(offset) declares \(nameLength) + \(valueLength) bytes "
                        + "but only \(remaining) remain"
                )
            }
            let name = cursor..<(cursor + nameLength)
            let value = name.upperBound..<(name.upperBound + valueLength)
            cursor = value.upperBound
            guard Self.isValidUTF8(UnsafeRawBufferPointer(rebasing: bytes[name])) else {
                throw FastCGIError.invalidUTF8.withDetail("the name of the pair at offset \(offset)")
            }
            try body(name, value)
        }
    }

    /// Encodes pairs in order, with 1-byte lengths below 128 and 4-byte lengths otherwise.
    ///
    /// - Precondition: no name or value is longer than 2³¹ − 1 bytes of UTF-8 (the format's limit).
    public static func encode<S: Sequence>(
        _ pairs: S,
        into buffer: inout ByteBuffer
    ) where S.Element == (name: String, value: String) {
        for (name, value) in pairs {
            Self.writeLength(name.utf8.count, into: &buffer)
            Self.writeLength(value.utf8.count, into: &buffer)
            buffer.writeString(name)
            buffer.writeString(value)
        }
    }

    private static let longLengthFlag: UInt32 = 0x8000_0000

    private static func readLength(_ bytes: UnsafeRawBufferPointer, at cursor: inout Int, pairOffset: Int) throws -> Int
    {
        guard cursor < bytes.count else {
            throw FastCGIError.malformedNameValuePair.withDetail(
                "the pair at offset \(pairOffset) ends inside its lengths")
        }
        let first = bytes[cursor]
        if first & 0x80 == 0 {
            cursor += 1
            return Int(first)
        }
        guard bytes.count - cursor >= 4 else {
            throw FastCGIError.malformedNameValuePair.withDetail(
                "the pair at offset \(pairOffset) ends inside its lengths")
        }
        let long = bytes[cursor..<(cursor + 4)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        cursor += 4
        return Int(long & ~Self.longLengthFlag)
    }

    private static func writeLength(_ length: Int, into buffer: inout ByteBuffer) {
        if length < 0x80 {
            buffer.writeInteger(UInt8(length))
        } else {
            guard let long = UInt32(exactly: length), long & Self.longLengthFlag == 0 else {
                preconditionFailure("FastCGI name-value lengths are limited to 2^31 - 1 bytes, got \(length)")
            }
            buffer.writeInteger(long | Self.longLengthFlag)
        }
    }

    /// The bytes in `range` as a string, invalid UTF-8 replaced by U+FFFD.
    static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    private static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        // CGI names are ASCII: the check that builds a string is for the rare other case.
        bytes.allSatisfy({ $0 < 0x80 }) || String(validating: bytes, as: UTF8.self) != nil
    }
}
