import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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
            self.writeEnd(
                requestID: requestID, appStatus: appStatus, lastPayload: nil, context: context, promise: promise)
        case .stdoutThenEnd(let payload, let keepsConnection):
            let appStatus = keepsConnection ? Self.keptConnectionAppStatus : 0
            if payload.readableBytes <= Self.endCoalescingLimit {
                self.writeEnd(
                    requestID: requestID, appStatus: appStatus, lastPayload: payload, context: context, promise: promise
                )
            } else {
                self.writeStream(.stdout, requestID: requestID, payload: payload, context: context, promise: nil)
                self.writeEnd(
                    requestID: requestID, appStatus: appStatus, lastPayload: nil, context: context, promise: promise)
            }
        case .overloaded, .slotNotice:
            break // written above: they need no open request
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
