/// Why a FastCGI connection cannot go on; compare with `==` against the static members, read `description` in logs.
///
/// Equality and hashing look only at the kind of failure, never at ``detail``, so
/// `error as? FastCGIError == .unexpectedRecord` holds whatever record triggered it.
public struct FastCGIError: Error, Hashable, CustomStringConvertible, Sendable {
    private enum Kind: Hashable, Sendable {
        case unsupportedVersion
        case contentTooLong
        case truncatedRecord
        case malformedBeginRequest
        case unknownRole
        case unexpectedRecord
        case wrongRequestID
        case paramsTooLarge
        case malformedNameValuePair
        case invalidUTF8
        case requestAborted
        case noActiveRequest
    }

    private var kind: Kind

    /// Facts about this occurrence (record type, lengths, ids) for logs; ignored by `==`.
    public private(set) var detail: String?

    private init(_ kind: Kind) {
        self.kind = kind
        self.detail = nil
    }

    /// A record header carried a version other than 1.
    public static let unsupportedVersion = FastCGIError(.unsupportedVersion)
    /// A record to be written has more than 65535 bytes of content.
    public static let contentTooLong = FastCGIError(.contentTooLong)
    /// The input ended in the middle of a record.
    public static let truncatedRecord = FastCGIError(.truncatedRecord)
    /// `FCGI_BEGIN_REQUEST` content was not exactly 8 bytes.
    public static let malformedBeginRequest = FastCGIError(.malformedBeginRequest)
    /// `FCGI_BEGIN_REQUEST` asked for a role other than responder; the codec already answered `FCGI_UNKNOWN_ROLE`.
    public static let unknownRole = FastCGIError(.unknownRole)
    /// A record arrived that the request's state does not allow (wrong order, wrong type).
    public static let unexpectedRecord = FastCGIError(.unexpectedRecord)
    /// A record named a request other than the active one; this application does not multiplex.
    public static let wrongRequestID = FastCGIError(.wrongRequestID)
    /// The `FCGI_PARAMS` stream grew beyond the configured limit.
    public static let paramsTooLarge = FastCGIError(.paramsTooLarge)
    /// A name-value pair was truncated or its lengths ran past the end of the stream.
    public static let malformedNameValuePair = FastCGIError(.malformedNameValuePair)
    /// A parameter name was not valid UTF-8.
    public static let invalidUTF8 = FastCGIError(.invalidUTF8)
    /// The web server sent `FCGI_ABORT_REQUEST`: the client went away.
    public static let requestAborted = FastCGIError(.requestAborted)
    /// A response part was written while no request was waiting for one.
    public static let noActiveRequest = FastCGIError(.noActiveRequest)

    /// The same failure with facts about this occurrence attached.
    func withDetail(_ detail: String) -> FastCGIError {
        var copy = self
        copy.detail = detail
        return copy
    }

    public static func == (lhs: FastCGIError, rhs: FastCGIError) -> Bool {
        lhs.kind == rhs.kind
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.kind)
    }

    public var description: String {
        let sentence: String
        switch self.kind {
        case .unsupportedVersion:
            sentence = "The FastCGI peer sent a record whose version is not 1, the only version this server speaks"
        case .contentTooLong:
            sentence = "A FastCGI record cannot carry more than 65535 bytes of content"
        case .truncatedRecord:
            sentence = "The FastCGI connection ended in the middle of a record"
        case .malformedBeginRequest:
            sentence = "The FastCGI BEGIN_REQUEST record does not have the required 8 bytes of content"
        case .unknownRole:
            sentence =
                "The FastCGI BEGIN_REQUEST asked for a role other than responder, the only role this server plays"
        case .unexpectedRecord:
            sentence = "The FastCGI peer sent a record that is not allowed at this point of the request"
        case .wrongRequestID:
            sentence =
                "The FastCGI peer sent a record for a request other than the active one, "
                + "but this server handles one request per connection at a time"
        case .paramsTooLarge:
            sentence = "The FastCGI PARAMS stream is larger than this server accepts"
        case .malformedNameValuePair:
            sentence = "A FastCGI name-value pair is truncated or its lengths run past the end of the stream"
        case .invalidUTF8:
            sentence = "A FastCGI parameter name is not valid UTF-8"
        case .requestAborted:
            sentence = "The web server aborted the FastCGI request because its client went away"
        case .noActiveRequest:
            sentence = "A FastCGI response part was written while no request was waiting for a response"
        }
        if let detail = self.detail {
            return "\(sentence): \(detail)."
        }
        return "\(sentence)."
    }
}
