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
    /// The FastCGI specification's name without the `FCGI_` prefix, so log lines read like it.
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
