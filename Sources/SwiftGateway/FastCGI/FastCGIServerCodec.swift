import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the worker sees of one request, in order: one head, any number of body parts, one end.
public enum FastCGIRequestPart: Sendable, Equatable {
    /// `FCGI_BEGIN_REQUEST` arrived and the `FCGI_PARAMS` stream ended.
    case head(FastCGIRequestHead)
    /// Request body bytes as they arrived: part or all of one `FCGI_STDIN` record's content, never
    /// empty (a slice of the input, not a copy).
    case body(ByteBuffer)
    /// The `FCGI_STDIN` stream ended: the request body is complete.
    case end
}

/// The request line of FastCGI: who asked, and the CGI variables.
public struct FastCGIRequestHead: Sendable, Equatable {
    public var requestID: UInt16
    /// `FCGI_KEEP_CONN`: the web server keeps the connection open after this request.
    public var keepConnection: Bool
    /// The CGI variables in the order the web server sent them (names may repeat).
    public var environment: CGIEnvironment

    public init(requestID: UInt16, keepConnection: Bool, environment: CGIEnvironment) {
        self.requestID = requestID
        self.keepConnection = keepConnection
        self.environment = environment
    }

    public init(requestID: UInt16, keepConnection: Bool, parameters: [(name: String, value: String)]) {
        self.init(requestID: requestID, keepConnection: keepConnection, environment: CGIEnvironment(parameters))
    }

    /// The CGI variables as pairs, in order.
    public var parameters: [(name: String, value: String)] {
        get { self.environment.map { (name: $0.key, value: $0.value) } }
        set { self.environment = CGIEnvironment(newValue) }
    }

    /// The value of the variable `name` (the last, should it repeat).
    public func parameter(_ name: String) -> String? {
        self.environment[name]
    }
}

/// What the worker writes back for the request in progress.
public enum FastCGIResponsePart: Sendable, Equatable {
    /// Response bytes (CGI headers, then body) of any size; empty buffers write nothing.
    case stdout(ByteBuffer)
    /// Log bytes of any size for the web server's error log; empty buffers write nothing.
    case stderr(ByteBuffer)
    /// Ends the response: an empty `FCGI_STDOUT` then `FCGI_END_REQUEST` (request complete) with `appStatus`.
    case end(appStatus: UInt32)
    /// The last response bytes, then the end: what `.stdout(bytes)` and `.end(appStatus:)` write,
    /// but one pipeline write, and for a short response one buffer (one iovec for the socket).
    /// The `appStatus` is 0, or ``FastCGIServerCodec/keptConnectionAppStatus`` when
    /// `keepsConnection`: a flag rather than the number keeps the part within NIOAny's inline
    /// storage, so the response's last write allocates no box.
    case stdoutThenEnd(ByteBuffer, keepsConnection: Bool)
    /// `FCGI_END_REQUEST` with `FCGI_OVERLOADED` for a request the worker will not run, whether or
    /// not it has arrived: written on an idle kept-alive connection just before closing it.
    case overloaded(requestID: UInt16)
    /// A `requestWaiting` record (with this process's pid) or an empty `requestStarted` one: the
    /// request waits for a slot, or no longer does.
    case slotNotice(FastCGIRecordType, requestID: UInt16)
}

/// Server side of one FastCGI connection, so the worker deals in request and response parts rather than records.
///
/// Inbound, it expects `FCGI_BEGIN_REQUEST` (role responder), the `FCGI_PARAMS` stream, then the
/// `FCGI_STDIN` stream, and emits ``FastCGIRequestPart/head(_:)``, ``FastCGIRequestPart/body(_:)``
/// and ``FastCGIRequestPart/end``. Management records (request id 0) are answered by the codec
/// itself. Any violation is reported with `fireErrorCaught(FastCGIError)`, after which the codec
/// ignores all further input; it never closes the channel, the next handler decides.
///
/// Outbound, it turns ``FastCGIResponsePart`` values into `FCGI_STDOUT`, `FCGI_STDERR` and
/// `FCGI_END_REQUEST` records for the request in progress. It does not flush them.
public final class FastCGIServerCodec: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = FastCGIRequestPart
    public typealias OutboundIn = FastCGIResponsePart
    public typealias OutboundOut = ByteBuffer

    /// `appStatus` of an `FCGI_END_REQUEST` after which the worker keeps the connection ("SGKA").
    /// Apache reuses only connections acknowledged this way, so a program built before
    /// connection reuse (which closes after every request) is never sent a second request.
    public static let keptConnectionAppStatus: UInt32 = 0x5347_4B41

    /// Payloads below this size are copied behind their header so they leave as one buffer.
    private static let coalescingThreshold = 512
    /// The last payload up to this size is copied between its header and the end records.
    private static let endCoalescingLimit = 16 * 1024

    private var decoder = FastCGIRecordDecoder()
    private var stateMachine: FastCGIServerStateMachine
    /// True while records are being handed out, so re-entrant reads and EOFs wait their turn.
    private var isProcessing = false
    private var pendingInput = CircularBuffer<ByteBuffer>()
    private var pendingEOF = false
    private var inputEnded = false

    /// - Parameters:
    ///   - maximumParamsLength: The largest `FCGI_PARAMS` stream accepted, in bytes.
    ///   - maximumConnections: What `FCGI_GET_VALUES` reports as `FCGI_MAX_CONNS` and `FCGI_MAX_REQS`.
    public init(maximumParamsLength: Int = 1 << 20, maximumConnections: Int = 1) {
        self.stateMachine = FastCGIServerStateMachine(
            maximumParamsLength: maximumParamsLength,
            maximumConnections: maximumConnections
        )
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        guard !self.stateMachine.isFailed, !self.inputEnded else {
            return
        }
        if self.isProcessing {
            self.pendingInput.append(buffer)
            return
        }
        self.isProcessing = true
        var next: ByteBuffer? = buffer
        while let input = next, !self.stateMachine.isFailed {
            do {
                try self.decoder.decode(input) { record in
                    try self.handle(record, context: context)
                }
            } catch {
                self.fail(error, context: context)
            }
            next = self.pendingInput.popFirst()
        }
        // Input left after a failure is dropped; removing nothing would still allocate.
        if !self.pendingInput.isEmpty { self.pendingInput.removeAll(keepingCapacity: true) }
        self.isProcessing = false
        if self.pendingEOF {
            self.pendingEOF = false
            self.finishInput(context: context)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.inputDidEnd(context: context)
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            self.inputDidEnd(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func inputDidEnd(context: ChannelHandlerContext) {
        guard !self.inputEnded else {
            return
        }
        self.inputEnded = true
        if self.isProcessing {
            self.pendingEOF = true
        } else {
            self.finishInput(context: context)
        }
    }

    /// Reports a partial record left at the end of the input.
    private func finishInput(context: ChannelHandlerContext) {
        guard !self.stateMachine.isFailed else {
            return
        }
        do {
            try self.decoder.finish()
        } catch {
            self.fail(error, context: context)
        }
    }

    private func handle(_ record: FastCGIRecord, context: ChannelHandlerContext) throws {
        switch self.stateMachine.receive(record) {
        case .none:
            break
        case .emit(let part):
            context.fireChannelRead(self.wrapInboundOut(part))
        case .reply(let reply):
            self.send(reply, context: context)
        case .replyAndFail(let reply, let error):
            self.send(reply, context: context)
            throw error
        case .fail(let error):
            throw error
        }
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        self.stateMachine.fail()
        context.fireErrorCaught(error)
    }

    private func send(_ reply: FastCGIServerStateMachine.Reply, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        switch reply {
        case .getValuesResult(let pairs):
            var content = context.channel.allocator.buffer(capacity: 64)
            FastCGINameValuePairs.encode(pairs, into: &content)
            // A handful of short names and digits: far below the record limit.
            buffer.writeFastCGIRecordHeader(
                type: .getValuesResult,
                requestID: FastCGIRecord.managementRequestID,
                contentLength: content.readableBytes
            )
            buffer.writeBuffer(&content)
        case .unknownType(let type):
            buffer.writeFastCGIRecordHeader(
                type: .unknownType,
                requestID: FastCGIRecord.managementRequestID,
                contentLength: 8
            )
            buffer.writeMultipleIntegers(type.rawValue, UInt32(0), UInt16(0), UInt8(0))
        case .endRequest(let requestID, let status):
            buffer.writeFastCGIEndRequest(requestID: requestID, appStatus: 0, protocolStatus: status)
        }
        context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = Self.unwrapOutboundIn(data)
        switch part {
        case .overloaded(let requestID):
            var buffer = context.channel.allocator.buffer(capacity: 2 * FastCGIRecord.headerLength)
            buffer.writeFastCGIEndRequest(requestID: requestID, appStatus: 0, protocolStatus: .overloaded)
            context.write(self.wrapOutboundOut(buffer), promise: promise)
            return
        case .slotNotice(let type, let requestID):
            var buffer = context.channel.allocator.buffer(capacity: FastCGIRecord.headerLength + 4)
            if type == .requestWaiting {
                buffer.writeFastCGIRecordHeader(type: type, requestID: requestID, contentLength: 4)
                buffer.writeInteger(UInt32(truncatingIfNeeded: getpid()))
            } else {
                buffer.writeFastCGIRecordHeader(type: type, requestID: requestID, contentLength: 0)
            }
            context.write(self.wrapOutboundOut(buffer), promise: promise)
            return
        case .stdout, .stderr, .end, .stdoutThenEnd:
            break
        }
        guard let requestID = self.stateMachine.responseRequestID else {
            let error = FastCGIError.noActiveRequest.withDetail("\(part.kindDescription) written with no request open")
            promise?.fail(error)
            return
        }
        switch part {
        case .stdout(let payload):
            self.writeStream(.stdout, requestID: requestID, payload: payload, context: context, promise: promise)
        case .stderr(let payload):
            self.writeStream(.stderr, requestID: requestID, payload: payload, context: context, promise: promise)
        case .end(let appStatus):
            self.writeEnd(requestID: requestID, appStatus: appStatus, lastPayload: nil, context: context, promise: promise)
        case .stdoutThenEnd(let payload, let keepsConnection):
            let appStatus = keepsConnection ? Self.keptConnectionAppStatus : 0
            if payload.readableBytes <= Self.endCoalescingLimit {
                self.writeEnd(requestID: requestID, appStatus: appStatus, lastPayload: payload, context: context, promise: promise)
            } else {
                self.writeStream(.stdout, requestID: requestID, payload: payload, context: context, promise: nil)
                self.writeEnd(requestID: requestID, appStatus: appStatus, lastPayload: nil, context: context, promise: promise)
            }
        case .overloaded, .slotNotice:
            break  // written above: they need no open request
        }
    }

    /// Writes the empty `FCGI_STDOUT` and `FCGI_END_REQUEST` that end the response, behind the last
    /// `FCGI_STDOUT` record when `lastPayload` has bytes, all in one buffer.
    private func writeEnd(
        requestID: UInt16,
        appStatus: UInt32,
        lastPayload: ByteBuffer?,
        context: ChannelHandlerContext,
        promise: EventLoopPromise<Void>?
    ) {
        let lastLength = lastPayload?.readableBytes ?? 0
        var buffer = context.channel.allocator.buffer(
            capacity: (lastLength > 0 ? FastCGIRecord.headerLength + lastLength : 0) + 3 * FastCGIRecord.headerLength
        )
        if let lastPayload, lastLength > 0 {
            buffer.writeFastCGIRecordHeader(type: .stdout, requestID: requestID, contentLength: lastLength)
            buffer.writeImmutableBuffer(lastPayload)
        }
        buffer.writeFastCGIRecordHeader(type: .stdout, requestID: requestID, contentLength: 0)
        buffer.writeFastCGIEndRequest(requestID: requestID, appStatus: appStatus, protocolStatus: .requestComplete)
        self.stateMachine.responseEnded()
        context.write(self.wrapOutboundOut(buffer), promise: promise)
    }

    /// Writes `payload` as records of at most 65535 bytes; large pieces go out as slices, never copied.
    private func writeStream(
        _ type: FastCGIRecordType,
        requestID: UInt16,
        payload: ByteBuffer,
        context: ChannelHandlerContext,
        promise: EventLoopPromise<Void>?
    ) {
        guard payload.readableBytes > 0 else {
            // An empty record would end the stream; there is nothing to write.
            promise?.succeed()
            return
        }
        var remaining = payload
        while remaining.readableBytes > 0 {
            let length = min(remaining.readableBytes, FastCGIRecord.maximumContentLength)
            let chunk = remaining.readSlice(length: length) ?? ByteBuffer()
            let chunkPromise = remaining.readableBytes == 0 ? promise : nil
            if length < Self.coalescingThreshold {
                var buffer = context.channel.allocator.buffer(capacity: FastCGIRecord.headerLength + length)
                buffer.writeFastCGIRecordHeader(type: type, requestID: requestID, contentLength: length)
                buffer.writeImmutableBuffer(chunk)
                context.write(self.wrapOutboundOut(buffer), promise: chunkPromise)
            } else {
                var header = context.channel.allocator.buffer(capacity: FastCGIRecord.headerLength)
                header.writeFastCGIRecordHeader(type: type, requestID: requestID, contentLength: length)
                context.write(self.wrapOutboundOut(header), promise: nil)
                context.write(self.wrapOutboundOut(chunk), promise: chunkPromise)
            }
        }
    }
}

@available(*, unavailable)
extension FastCGIServerCodec: Sendable {}

extension FastCGIResponsePart {
    fileprivate var kindDescription: String {
        switch self {
        case .stdout: return "STDOUT"
        case .stderr: return "STDERR"
        case .end: return "END_REQUEST"
        case .stdoutThenEnd: return "STDOUT and END_REQUEST"
        case .overloaded: return "END_REQUEST (overloaded)"
        case .slotNotice(let type, _): return "\(type)"
        }
    }
}

extension ByteBuffer {
    /// Appends a whole `FCGI_END_REQUEST` record.
    fileprivate mutating func writeFastCGIEndRequest(
        requestID: UInt16,
        appStatus: UInt32,
        protocolStatus: FastCGIProtocolStatus
    ) {
        self.writeFastCGIRecordHeader(type: .endRequest, requestID: requestID, contentLength: 8)
        self.writeInteger(UInt64(appStatus) << 32 | UInt64(protocolStatus.rawValue) << 24)
    }
}

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
        // The spec: names the application does not know are left out of the answer.
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
