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
        var buffer = buffer
        var pairs: [(name: String, value: String)] = []
        while buffer.readableBytes > 0 {
            let offset = buffer.readerIndex
            let nameLength = try Self.readLength(&buffer, offset: offset)
            let valueLength = try Self.readLength(&buffer, offset: offset)
            guard nameLength <= buffer.readableBytes,
                valueLength <= buffer.readableBytes - nameLength,
                let nameBytes = buffer.readSlice(length: nameLength),
                let valueBytes = buffer.readSlice(length: valueLength)
            else {
                throw FastCGIError.malformedNameValuePair.withDetail(
                    "the pair at offset \(offset) declares \(nameLength) + \(valueLength) bytes "
                        + "but only \(buffer.readableBytes) remain"
                )
            }
            guard let name = Self.validatedUTF8(nameBytes) else {
                throw FastCGIError.invalidUTF8.withDetail("the name of the pair at offset \(offset)")
            }
            let value = String(decoding: valueBytes.readableBytesView, as: UTF8.self)
            pairs.append((name: name, value: value))
        }
        return pairs
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

    private static func readLength(_ buffer: inout ByteBuffer, offset: Int) throws -> Int {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else {
            throw FastCGIError.malformedNameValuePair.withDetail("the pair at offset \(offset) ends inside its lengths")
        }
        if first & 0x80 == 0 {
            buffer.moveReaderIndex(forwardBy: 1)
            return Int(first)
        }
        guard let long = buffer.readInteger(as: UInt32.self) else {
            throw FastCGIError.malformedNameValuePair.withDetail("the pair at offset \(offset) ends inside its lengths")
        }
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

    /// The bytes as a string, or `nil` when they are not valid UTF-8.
    private static func validatedUTF8(_ bytes: ByteBuffer) -> String? {
        String(validating: bytes.readableBytesView, as: UTF8.self)
    }
}
