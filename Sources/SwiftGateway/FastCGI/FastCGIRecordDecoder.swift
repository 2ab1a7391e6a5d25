import NIOCore

/// Splits a FastCGI byte stream into records, so everything above it deals in records, and hands
/// request bodies on as they arrive instead of reassembling them.
///
/// A record's content is handed out as a slice of the input, not a copy, whenever the input holds
/// all of it; padding is skipped. `FCGI_STDIN` content is handed out piece by piece, as slices of
/// each input buffer, as soon as it arrives: one record may come out as several `stdin` records
/// whose contents, joined, are the record's content (never an empty piece, so an empty `stdin`
/// record still means the end of the stream). Reassembling it would copy every byte of an upload,
/// since reads end in the middle of records. Other records come out whole; the few bytes of a
/// header or of a short record that straddle two inputs are copied.
///
/// Rejects a version other than 1 as soon as the first byte of a header arrives. Lengths need no
/// further check: the 16-bit content length and 8-bit padding length cannot exceed what the
/// protocol allows. At the end of the input, a partial record throws ``FastCGIError/truncatedRecord``.
public struct FastCGIRecordDecoder: Sendable {
    /// The header of the record being read.
    private struct Header {
        var type: FastCGIRecordType
        var requestID: UInt16
        var contentLength: Int
        var paddingLength: Int
    }

    /// Bytes of a header that straddles two inputs (fewer than 8).
    private var headerBytes: ByteBuffer?
    private var header: Header?
    /// Of the current record: content not yet read, then padding not yet skipped.
    private var contentLeft = 0
    private var paddingLeft = 0
    /// The content so far of a record other than `stdin` that straddles inputs.
    private var content: ByteBuffer?

    public init() {}

    /// True between inputs that end inside a record (its header, content or padding).
    public var isInsideRecord: Bool {
        self.headerBytes != nil || self.header != nil
    }

    /// Hands every record (or `stdin` piece) that `input` completes to `receive`, in order.
    public mutating func decode(_ input: ByteBuffer, _ receive: (FastCGIRecord) throws -> Void) throws {
        var input = input
        while true {
            let header: Header
            if let current = self.header {
                header = current
            } else {
                guard let next = try self.readHeader(from: &input) else {
                    return
                }
                header = next
                self.header = next
                self.contentLeft = next.contentLength
                self.paddingLeft = next.paddingLength
            }
            if self.contentLeft > 0 {
                let length = min(self.contentLeft, input.readableBytes)
                guard length > 0, let piece = input.readSlice(length: length) else {
                    return
                }
                self.contentLeft -= length
                if header.type == .stdin {
                    try receive(FastCGIRecord(type: .stdin, requestID: header.requestID, content: piece))
                } else if self.content == nil {
                    self.content = piece
                } else {
                    self.content?.writeImmutableBuffer(piece)
                }
                if self.contentLeft > 0 {
                    return
                }
            }
            if self.paddingLeft > 0 {
                let length = min(self.paddingLeft, input.readableBytes)
                input.moveReaderIndex(forwardBy: length)
                self.paddingLeft -= length
                if self.paddingLeft > 0 {
                    return
                }
            }
            let content = self.content
            self.header = nil
            self.content = nil
            // A `stdin` record with content went out in its pieces already.
            if header.type != .stdin || header.contentLength == 0 {
                try receive(
                    FastCGIRecord(type: header.type, requestID: header.requestID, content: content ?? ByteBuffer()))
            }
        }
    }

    /// The input ended: throws if it ended inside a record.
    public func finish() throws {
        if let bytes = self.headerBytes {
            throw FastCGIError.truncatedRecord.withDetail(
                "\(bytes.readableBytes) of a record header's 8 bytes left over")
        }
        if let header = self.header {
            let missing = self.contentLeft + self.paddingLeft
            throw FastCGIError.truncatedRecord.withDetail(
                "\(header.type) for request \(header.requestID) ended \(missing) bytes short of its "
                    + "\(header.contentLength + header.paddingLength)"
            )
        }
    }

    /// The next header, read straight from `input` when it is there whole, else put together across inputs.
    private mutating func readHeader(from input: inout ByteBuffer) throws -> Header? {
        if self.headerBytes == nil, input.readableBytes >= FastCGIRecord.headerLength {
            return try Self.parseHeader(from: &input)
        }
        var bytes = self.headerBytes ?? ByteBuffer()
        let wanted = FastCGIRecord.headerLength - bytes.readableBytes
        guard var taken = input.readSlice(length: min(wanted, input.readableBytes)), taken.readableBytes > 0 else {
            return nil
        }
        if bytes.readableBytes == 0 {
            try Self.checkVersion(of: taken) // at the header's first byte, not its eighth
        }
        bytes.writeBuffer(&taken)
        guard bytes.readableBytes == FastCGIRecord.headerLength else {
            self.headerBytes = bytes
            return nil
        }
        self.headerBytes = nil
        return try Self.parseHeader(from: &bytes)
    }

    private static func checkVersion(of buffer: ByteBuffer) throws {
        if let version = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), version != FastCGIRecord.version {
            throw FastCGIError.unsupportedVersion.withDetail("version \(version)")
        }
    }

    private static func parseHeader(from buffer: inout ByteBuffer) throws -> Header? {
        try self.checkVersion(of: buffer)
        guard
            let (_, typeByte, requestID, contentLength, paddingLength, _) = buffer.readMultipleIntegers(
                as: (UInt8, UInt8, UInt16, UInt16, UInt8, UInt8).self
            )
        else {
            return nil // unreachable: callers pass 8 bytes or more
        }
        return Header(
            type: FastCGIRecordType(rawValue: typeByte),
            requestID: requestID,
            contentLength: Int(contentLength),
            paddingLength: Int(paddingLength)
        )
    }
}
