import NIOCore

/// One FastCGI record without its header and padding, as the decoder produces it.
public struct FastCGIRecord: Sendable, Equatable {
    public var type: FastCGIRecordType
    public var requestID: UInt16
    public var content: ByteBuffer

    public init(type: FastCGIRecordType, requestID: UInt16, content: ByteBuffer) {
        self.type = type
        self.requestID = requestID
        self.content = content
    }

    /// The largest content one record can carry (the header's length field is 16 bits).
    public static let maximumContentLength = 65535

    /// The fixed size of a record header.
    public static let headerLength = 8

    /// The only protocol version there is.
    public static let version: UInt8 = 1

    /// The request id of management records (`FCGI_GET_VALUES` and friends).
    public static let managementRequestID: UInt16 = 0
}
