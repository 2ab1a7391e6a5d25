import NIOCore

/// Splits a FastCGI byte stream into records, so everything above it deals in whole records.
///
/// Reads the 8-byte header, the content (handed out as a slice of the input, not a copy) and the
/// padding (skipped). Rejects a version other than 1 as soon as the first byte of a header arrives.
/// Lengths need no further check: the 16-bit content length and 8-bit padding length cannot exceed
/// what the protocol allows. At the end of the input, leftover bytes of a partial record throw
/// ``FastCGIError/truncatedRecord``.
public struct FastCGIRecordDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    public typealias InboundOut = FastCGIRecord

    public init() {}

    public mutating func decode(buffer: inout ByteBuffer) throws -> FastCGIRecord? {
        guard let version = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else {
            return nil
        }
        guard version == FastCGIRecord.version else {
            throw FastCGIError.unsupportedVersion.withDetail("version \(version)")
        }
        guard
            let (_, typeByte, requestID, contentLength, paddingLength, _) = buffer.getMultipleIntegers(
                at: buffer.readerIndex,
                as: (UInt8, UInt8, UInt16, UInt16, UInt8, UInt8).self
            )
        else {
            return nil
        }
        let recordLength = FastCGIRecord.headerLength + Int(contentLength) + Int(paddingLength)
        guard buffer.readableBytes >= recordLength else {
            return nil
        }
        buffer.moveReaderIndex(forwardBy: FastCGIRecord.headerLength)
        guard let content = buffer.readSlice(length: Int(contentLength)) else {
            // Unreachable: the length was checked above.
            return nil
        }
        buffer.moveReaderIndex(forwardBy: Int(paddingLength))
        return FastCGIRecord(type: FastCGIRecordType(rawValue: typeByte), requestID: requestID, content: content)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> FastCGIRecord? {
        if let record = try self.decode(buffer: &buffer) {
            return record
        }
        guard buffer.readableBytes == 0 else {
            throw FastCGIError.truncatedRecord.withDetail("\(buffer.readableBytes) bytes of a partial record left over")
        }
        return nil
    }
}
