import HTTPTypes
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs the application for one FastCGI request and writes its response to the connection.
///
/// One per worker, shared by its connections: a class, so that each request's task captures a
/// reference rather than a copy of every field.
final class FastCGIApplicationRunner: Sendable {
    let responder: any GatewayResponder
    let group: String
    /// The group's secret; nil for a standalone FastCGI server, which has none.
    private let token: [UInt8]?
    let logger: Logger
    /// Where the application's tasks run: the event loop of the connections (nil: the global pool).
    let executor: EventLoopTaskExecutor?
    /// `queue-timeout`: a request that waited longer since Apache read it (its
    /// `SWIFT_GATEWAY_REQUEST_START`) is answered 503 without running; nil or 0: no limit.
    let queueTimeout: Double?

    init(
        responder: any GatewayResponder, group: String, token: String?, logger: Logger,
        executor: EventLoopTaskExecutor?, queueTimeout: Double? = nil
    ) {
        self.responder = responder
        self.group = group
        self.token = token.map { Array($0.utf8) }
        self.logger = logger
        self.executor = executor
        self.queueTimeout = queueTimeout
    }

    /// The CGI variables of a request, or nil when it lacks the group's token (logged).
    func environment(for head: FastCGIRequestHead) -> CGIEnvironment? {
        if let token = self.token, !head.environment.presentedToken(equals: token) {
            self.logger.error("SG1115: refused a request without the group's token (SWIFT_GATEWAY_TOKEN)")
            return nil
        }
        return head.environment
    }

    /// - Parameter body: nil when the request announced no body.
    nonisolated(nonsending) func run(environment: CGIEnvironment, body: FastCGIRequestBodyStream?, channel: any Channel) async {
        // The request's logger is made only if something logs (GatewayContext.logger).
        let context = GatewayContext(channel: channel, group: self.group, requestID: environment["SWIFT_GATEWAY_REQUEST_ID"] ?? "")

        let response: GatewayResponse
        if let limit = self.queueTimeout, limit > 0, let waited = Self.secondsWaited(since: environment.decimalValue(named: "SWIFT_GATEWAY_REQUEST_START")), waited > limit {
            context.logger.warning("SG1120: the request waited \(formatSeconds(waited)) for a request slot, longer than queue-timeout \(formatSeconds(limit)): answered 503 without running it")
            await FastCGIResponseWriter(channel: channel).write(Self.queueTimedOut(retryAfter: limit), context: context)
            return
        }
        do {
            let head = try HTTPRequest(cgiEnvironment: environment)
            let request = GatewayRequest(head: head, environment: environment, body: body.map(GatewayRequestBody.init(source:)) ?? GatewayRequestBody())
            response = try await self.responder.respond(to: request, context: context)
        } catch let error as GatewayRequestError {
            self.logger.error("SG1116: bad request from Apache: \(error)")
            response = GatewayResponse(status: .badRequest, body: .init(string: "Bad Request\n"))
        } catch {
            context.logger.error("SG1117: the application threw: \(error)")
            response = GatewayResponse(status: .internalServerError, body: .init(string: "Internal Server Error\n"))
        }
        await FastCGIResponseWriter(channel: channel).write(response, context: context)
    }
}

extension FastCGIApplicationRunner {
    /// Seconds since `start` (microseconds since the epoch, Apache's request time); nil when
    /// absent or malformed. The value is read as a number: its 16 digits would make a string
    /// too long to be stored inline, an allocation per request.
    static func secondsWaited(since start: Int64?) -> Double? {
        guard let microseconds = start, microseconds > 0 else { return nil }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let nowMicroseconds = Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
        return Double(nowMicroseconds - microseconds) / 1_000_000
    }

    /// 503 for a request that waited past queue-timeout: retry once as long has passed.
    static func queueTimedOut(retryAfter seconds: Double) -> GatewayResponse {
        var fields: HTTPFields = [.contentType: "text/plain; charset=utf-8"]
        fields[.retryAfter] = String(Int(seconds.rounded(.up)))
        return GatewayResponse(status: .serviceUnavailable, headerFields: fields, body: .init(string: "Service Unavailable\n"))
    }
}

/// Writes a response as STDOUT records and END_REQUEST.
///
/// The connection closes only after END_REQUEST reached the socket: a NIO close drops queued writes.
struct FastCGIResponseWriter: Sendable {
    let channel: any Channel

    /// Bodies up to this size travel in the same record as the headers.
    static let coalescingLimit = 16 * 1024

    /// `context` gives the request's logger, should the body fail.
    nonisolated(nonsending) func write(_ response: GatewayResponse, context: GatewayContext) async {
        let channel = self.channel
        switch response.body.content {
        case .buffer(let body):
            let coalesce = body.readableBytes <= Self.coalescingLimit
            var headers = CGIResponseHead.serialize(
                response, contentLength: body.readableBytes, allocator: channel.allocator,
                reservingBody: coalesce ? body.readableBytes : 0
            )
            if coalesce { headers.writeImmutableBuffer(body) }
            let head = headers
            // At most one hop to the event loop for the whole response, none (and no closure)
            // when already on it; a short one leaves as one pipeline write and one buffer.
            if channel.eventLoop.inEventLoop {
                self.endBuffered(head: head, body: body, coalesced: coalesce)
            } else {
                channel.eventLoop.execute { self.endBuffered(head: head, body: body, coalesced: coalesce) }
            }
        case .stream(let produce):
            let headers = CGIResponseHead.serialize(response, contentLength: nil, allocator: channel.allocator, reservingBody: 0)
            do {
                try await self.writeChunk(headers)
                try await produce(GatewayResponseBodyWriter { chunk in try await self.writeChunk(chunk) })
            } catch {
                // Closing without END_REQUEST makes Apache abort the client connection.
                context.logger.error("SG1118: the response body failed after headers were sent: \(error)")
                channel.close(promise: nil)
                return
            }
            if channel.eventLoop.inEventLoop {
                self.end()
            } else {
                channel.eventLoop.execute { self.end() }
            }
        }
    }

    /// On the event loop: the headers (with the body when `coalesced`), then the end.
    private func endBuffered(head: ByteBuffer, body: ByteBuffer, coalesced: Bool) {
        if coalesced {
            self.end(last: head)
        } else {
            self.channel.writeResponsePart(.stdout(head), flush: false, promise: nil)
            self.end(last: body)
        }
    }

    /// Queues a chunk; waits for it to reach the socket only while the connection is congested.
    private nonisolated(nonsending) func writeChunk(_ chunk: ByteBuffer) async throws {
        let written = self.channel.eventLoop.makePromise(of: Void.self)
        self.channel.writeResponsePart(.stdout(chunk), promise: written)
        if !self.channel.isWritable { try await written.futureResult.get() }
    }

    /// On the event loop: the last bytes if any, then END_REQUEST; the request handler sees it
    /// written and keeps or closes the connection.
    private func end(last: ByteBuffer? = nil) {
        let part = last.map { FastCGIResponsePart.stdoutThenEnd($0, keepsConnection: false) } ?? .end(appStatus: 0)
        self.channel.writeResponsePart(part, promise: nil)
    }
}

/// Compares secrets in time independent of where they differ (only their lengths may leak).
func constantTimeEquals(_ lhs: some Collection<UInt8>, _ rhs: some Collection<UInt8>) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for (left, right) in zip(lhs, rhs) { difference |= left ^ right }
    return difference == 0
}

func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
    constantTimeEquals(lhs.utf8, rhs.utf8)
}
