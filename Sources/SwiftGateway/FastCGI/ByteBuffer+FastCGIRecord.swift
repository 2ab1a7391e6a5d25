import NIOCore

extension ByteBuffer {
    /// Appends one 8-byte record header, so callers can send the content as a separate buffer without copying it.
    ///
    /// The caller appends `contentLength` bytes of content and `paddingLength` bytes of padding.
    ///
    /// This project never pads the records it writes (padding is optional in FastCGI 1.0 and only aligns
    /// for the reader's convenience); the decoder skips whatever padding it is sent.
    ///
    /// - Precondition: `contentLength` is in `0...65535` and `paddingLength` is in `0...255`. Callers holding
    ///   arbitrary amounts of data split it first (``FastCGIServerCodec`` does), or use
    ///   ``writeFastCGIRecord(_:)``, which throws instead.
    @discardableResult
    public mutating func writeFastCGIRecordHeader(
        type: FastCGIRecordType,
        requestID: UInt16,
        contentLength: Int,
        paddingLength: Int = 0
    ) -> Int {
        guard let contentLength16 = UInt16(exactly: contentLength), let padding8 = UInt8(exactly: paddingLength) else {
            preconditionFailure(
                "FastCGI record lengths out of range: content \(contentLength) (max 65535), "
                    + "padding \(paddingLength) (max 255)"
            )
        }
        // The eight bytes as one big-endian integer: one capacity check and one store per header.
        let header =
            UInt64(FastCGIRecord.version) << 56 | UInt64(type.rawValue) << 48 | UInt64(requestID) << 32
            | UInt64(contentLength16) << 16 | UInt64(padding8) << 8
        return self.writeInteger(header)
    }

    /// Appends a whole record (header and content, no padding); throws rather than traps on oversized content.
    @discardableResult
    public mutating func writeFastCGIRecord(_ record: FastCGIRecord) throws -> Int {
        guard record.content.readableBytes <= FastCGIRecord.maximumContentLength else {
            throw FastCGIError.contentTooLong.withDetail(
                "\(record.type) content of \(record.content.readableBytes) bytes"
            )
        }
        let headerLength = self.writeFastCGIRecordHeader(
            type: record.type,
            requestID: record.requestID,
            contentLength: record.content.readableBytes
        )
        return headerLength + self.writeImmutableBuffer(record.content)
    }
}
