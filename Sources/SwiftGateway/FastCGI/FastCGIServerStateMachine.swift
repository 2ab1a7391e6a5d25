import NIOCore

/// The inbound protocol rules of one connection, kept apart from the channel so each rule is one `case`.
struct FastCGIServerStateMachine {
    /// What the codec does about one record.
    enum Action {
        case none
        case emit(FastCGIRequestPart)
        case reply(Reply)
        case replyAndFail(Reply, FastCGIError)
        case fail(FastCGIError)
    }

    /// A record the codec answers on its own.
    enum Reply {
        case getValuesResult([(name: String, value: String)])
        case unknownType(FastCGIRecordType)
        case endRequest(requestID: UInt16, status: FastCGIProtocolStatus)
    }

    struct Request {
        var id: UInt16
        var keepConnection: Bool
    }

    enum State {
        /// Waiting for `FCGI_BEGIN_REQUEST`.
        case awaitingBegin
        /// The `FCGI_PARAMS` stream is open; its content so far.
        case receivingParams(Request, ByteBuffer?)
        /// The head went out; the `FCGI_STDIN` stream is open.
        case receivingStdin(Request)
        /// The request's input is complete; waiting for the response to end.
        case inputComplete(Request)
        /// The response ended before the input did: the rest of the input is dropped.
        case drainingInput(Request)
        /// The connection's only request (no `FCGI_KEEP_CONN`) is done; nothing more may arrive.
        case finished
        /// A protocol error was reported; input is ignored.
        case failed
    }

    private(set) var state: State = .awaitingBegin
    /// A params stream in a read buffer larger than this is copied out of it.
    private static let largestKeptReadBuffer = 16 * 1024
    /// The request a response may be written for: set by `FCGI_BEGIN_REQUEST`, cleared by the response's end.
    private(set) var responseRequestID: UInt16?
    private let maximumParamsLength: Int
    private let maximumConnections: Int

    init(maximumParamsLength: Int, maximumConnections: Int) {
        self.maximumParamsLength = maximumParamsLength
        self.maximumConnections = maximumConnections
    }

    var isFailed: Bool {
        if case .failed = self.state {
            return true
        }
        return false
    }

    mutating func fail() {
        self.state = .failed
    }

    /// The worker wrote the end of its response.
    mutating func responseEnded() {
        self.responseRequestID = nil
        switch self.state {
        case .inputComplete(let request):
            self.state = request.keepConnection ? .awaitingBegin : .finished
        case .receivingParams(let request, _), .receivingStdin(let request):
            self.state = .drainingInput(request)
        case .awaitingBegin, .drainingInput, .finished, .failed:
            break
        }
    }

    mutating func receive(_ record: FastCGIRecord) -> Action {
        if record.requestID == FastCGIRecord.managementRequestID {
            return self.receiveManagement(record)
        }
        switch self.state {
        case .awaitingBegin:
            switch record.type {
            case .beginRequest:
                return self.begin(record)
            case .abortRequest:
                // A late abort for a request that already ended.
                return .none
            default:
                return .fail(Self.unexpected(record, "before BEGIN_REQUEST"))
            }

        case .receivingParams(let request, var soFar):
            guard record.requestID == request.id else {
                return self.wrongRequest(record, active: request)
            }
            switch record.type {
            case .params:
                // Leave `soFar` as the only reference to the stream, so appending does not copy it.
                self.state = .failed
                return self.receiveParams(record.content, request: request, soFar: &soFar)
            case .abortRequest:
                return .fail(Self.aborted(request))
            default:
                return .fail(Self.unexpected(record, "while the PARAMS stream is open"))
            }

        case .receivingStdin(let request):
            guard record.requestID == request.id else {
                return self.wrongRequest(record, active: request)
            }
            switch record.type {
            case .stdin where record.content.readableBytes == 0:
                self.state = .inputComplete(request)
                return .emit(.end)
            case .stdin:
                return .emit(.body(record.content))
            case .abortRequest:
                return .fail(Self.aborted(request))
            default:
                return .fail(Self.unexpected(record, "while the STDIN stream is open"))
            }

        case .inputComplete(let request):
            guard record.requestID == request.id else {
                return self.wrongRequest(record, active: request)
            }
            switch record.type {
            case .abortRequest:
                return .fail(Self.aborted(request))
            default:
                return .fail(Self.unexpected(record, "after the STDIN stream ended"))
            }

        case .drainingInput(let request):
            if record.type == .beginRequest, request.keepConnection {
                return self.begin(record)
            }
            guard record.requestID == request.id else {
                return self.wrongRequest(record, active: request)
            }
            switch record.type {
            case .stdin where record.content.readableBytes == 0:
                // Still reported: a server may close only once the client finished sending,
                // or the client's last write (mod_proxy_fcgi's empty STDIN) fails.
                self.state = request.keepConnection ? .awaitingBegin : .finished
                return .emit(.end)
            case .abortRequest:
                self.state = request.keepConnection ? .awaitingBegin : .finished
                return .none
            case .params, .stdin:
                return .none
            default:
                return .fail(Self.unexpected(record, "after the response ended"))
            }

        case .finished:
            if record.type == .abortRequest {
                return .none
            }
            return .fail(Self.unexpected(record, "after the connection's only request finished"))

        case .failed:
            return .none
        }
    }

    private mutating func begin(_ record: FastCGIRecord) -> Action {
        var content = record.content
        guard content.readableBytes == 8,
            let (role, flags) = content.readMultipleIntegers(as: (UInt16, UInt8).self)
        else {
            return .fail(
                FastCGIError.malformedBeginRequest.withDetail(
                    "request \(record.requestID) has \(record.content.readableBytes) bytes"
                )
            )
        }
        guard FastCGIRole(rawValue: role) == .responder else {
            return .replyAndFail(
                .endRequest(requestID: record.requestID, status: .unknownRole),
                FastCGIError.unknownRole.withDetail("request \(record.requestID) asked for role \(role)")
            )
        }
        let request = Request(id: record.requestID, keepConnection: flags & 1 != 0)
        self.state = .receivingParams(request, nil)
        self.responseRequestID = request.id
        return .none
    }

    /// Called with the state set to `.failed`; only the success paths put a live state back.
    private mutating func receiveParams(_ content: ByteBuffer, request: Request, soFar: inout ByteBuffer?) -> Action {
        guard content.readableBytes > 0 else {
            let environment: CGIEnvironment
            do {
                var stream = soFar ?? ByteBuffer()
                // A request keeps its variables' bytes while it runs, not a large read buffer with them.
                if stream.storageCapacity > Self.largestKeptReadBuffer { stream = ByteBuffer(buffer: stream) }
                environment = try CGIEnvironment(parameterStream: stream)
            } catch let error as FastCGIError {
                return .fail(error)
            } catch {
                return .fail(FastCGIError.malformedNameValuePair.withDetail("\(error)"))
            }
            self.state = .receivingStdin(request)
            let head = FastCGIRequestHead(
                requestID: request.id,
                keepConnection: request.keepConnection,
                environment: environment
            )
            return .emit(.head(head))
        }
        let length = (soFar?.readableBytes ?? 0) + content.readableBytes
        guard length <= self.maximumParamsLength else {
            return .fail(
                FastCGIError.paramsTooLarge.withDetail(
                    "request \(request.id) sent more than the limit of \(self.maximumParamsLength) bytes"
                )
            )
        }
        if soFar == nil {
            // The first record's content is kept as the slice it is.
            soFar = content
        } else {
            soFar?.writeImmutableBuffer(content)
        }
        self.state = .receivingParams(request, soFar)
        return .none
    }

    private func receiveManagement(_ record: FastCGIRecord) -> Action {
        guard record.type == .getValues else {
            return .reply(.unknownType(record.type))
        }
        let query: [(name: String, value: String)]
        do {
            query = try FastCGINameValuePairs.decode(record.content)
        } catch let error as FastCGIError {
            return .fail(error)
        } catch {
            return .fail(FastCGIError.malformedNameValuePair.withDetail("\(error)"))
        }
        let known: [String: String] = [
            "FCGI_MAX_CONNS": String(self.maximumConnections),
            "FCGI_MAX_REQS": String(self.maximumConnections),
            "FCGI_MPXS_CONNS": "0",
        ]
        // The FastCGI specification: names the application does not know are left out of the answer.
        let answer = query.compactMap { pair in known[pair.name].map { (name: pair.name, value: $0) } }
        return .reply(.getValuesResult(answer))
    }

    private func wrongRequest(_ record: FastCGIRecord, active: Request) -> Action {
        let error = FastCGIError.wrongRequestID.withDetail(
            "\(record.type) for request \(record.requestID) while request \(active.id) is active"
        )
        if record.type == .beginRequest {
            return .replyAndFail(.endRequest(requestID: record.requestID, status: .cantMultiplexConnection), error)
        }
        return .fail(error)
    }

    private static func unexpected(_ record: FastCGIRecord, _ when: String) -> FastCGIError {
        FastCGIError.unexpectedRecord.withDetail("\(record.type) for request \(record.requestID) \(when)")
    }

    private static func aborted(_ request: Request) -> FastCGIError {
        FastCGIError.requestAborted.withDetail("request \(request.id)")
    }
}
