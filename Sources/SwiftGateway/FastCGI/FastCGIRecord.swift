import NIOCore

/// The type byte of a FastCGI record; a struct rather than an enum so unknown types stay representable.
public struct FastCGIRecordType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// `FCGI_BEGIN_REQUEST`: the web server starts a request.
    public static let beginRequest = FastCGIRecordType(rawValue: 1)
    /// `FCGI_ABORT_REQUEST`: the web server gives up on a request.
    public static let abortRequest = FastCGIRecordType(rawValue: 2)
    /// `FCGI_END_REQUEST`: the application finished a request.
    public static let endRequest = FastCGIRecordType(rawValue: 3)
    /// `FCGI_PARAMS`: the stream of CGI variables.
    public static let params = FastCGIRecordType(rawValue: 4)
    /// `FCGI_STDIN`: the stream of the request body.
    public static let stdin = FastCGIRecordType(rawValue: 5)
    /// `FCGI_STDOUT`: the stream of the response (CGI headers, then body).
    public static let stdout = FastCGIRecordType(rawValue: 6)
    /// `FCGI_STDERR`: the stream of the request's log lines.
    public static let stderr = FastCGIRecordType(rawValue: 7)
    /// `FCGI_DATA`: the filter role's extra stream; never valid for a responder.
    public static let data = FastCGIRecordType(rawValue: 8)
    /// `FCGI_GET_VALUES`: a management query for the application's limits.
    public static let getValues = FastCGIRecordType(rawValue: 9)
    /// `FCGI_GET_VALUES_RESULT`: the answer to `FCGI_GET_VALUES`.
    public static let getValuesResult = FastCGIRecordType(rawValue: 10)
    /// `FCGI_UNKNOWN_TYPE`: the answer to a management record the application does not understand.
    public static let unknownType = FastCGIRecordType(rawValue: 11)
    /// SwiftGateway's own: the request waits for one of the worker's request slots. Its content is
    /// the worker's pid (four bytes, big-endian), which Apache's SG0518 names. mod_swift_gateway
    /// may send a request that waited again if the connection ends before `requestStarted`;
    /// other FastCGI web servers never see it (only a worker queues).
    public static let requestWaiting = FastCGIRecordType(rawValue: 0x57)
    /// SwiftGateway's own, empty: the request that waited now runs.
    public static let requestStarted = FastCGIRecordType(rawValue: 0x53)
}

extension FastCGIRecordType: CustomStringConvertible {
    /// The spec's name without the `FCGI_` prefix, so log lines read like the spec.
    public var description: String {
        switch self.rawValue {
        case 1: return "BEGIN_REQUEST"
        case 2: return "ABORT_REQUEST"
        case 3: return "END_REQUEST"
        case 4: return "PARAMS"
        case 5: return "STDIN"
        case 6: return "STDOUT"
        case 7: return "STDERR"
        case 8: return "DATA"
        case 9: return "GET_VALUES"
        case 10: return "GET_VALUES_RESULT"
        case 11: return "UNKNOWN_TYPE"
        case 0x57: return "REQUEST_WAITING"
        case 0x53: return "REQUEST_STARTED"
        default: return "type \(self.rawValue)"
        }
    }
}

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

/// The `role` field of `FCGI_BEGIN_REQUEST`.
public enum FastCGIRole: UInt16, Sendable {
    case responder = 1
    case authorizer = 2
    case filter = 3
}

/// The `protocolStatus` field of `FCGI_END_REQUEST`.
public enum FastCGIProtocolStatus: UInt8, Sendable {
    case requestComplete = 0
    case cantMultiplexConnection = 1
    case overloaded = 2
    case unknownRole = 3
}

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
