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
    /// `executor=thread-pool`: each task starts on Swift's global pool, not at once on the event
    /// loop's thread (`Task.immediate`), so code that never suspends leaves the loop free.
    let startsOnGlobalPool: Bool
    /// `queue-timeout`: a request that waited longer since Apache read it (its
    /// `SWIFT_GATEWAY_REQUEST_START`) is answered 503 without running; nil or 0: no limit.
    let queueTimeout: Double?
    /// The lowest level of the requests' log lines that is sent to Apache (its `LogLevel`).
    let requestLogLevel: Logger.Level
    /// Set on every response (`affinity-cookie=`): given to the runner of the group socket's
    /// connections, whose requests carried no valid route to this worker; nil otherwise.
    let routeCookie: RouteCookie?

    init(
        responder: any GatewayResponder, group: String, token: String?, logger: Logger,
        executor: EventLoopTaskExecutor?, startsOnGlobalPool: Bool = false, queueTimeout: Double? = nil,
        requestLogLevel: Logger.Level = .info, routeCookie: RouteCookie? = nil
    ) {
        precondition(!startsOnGlobalPool || executor == nil, "a task on the global pool has no executor preference")
        self.responder = responder
        self.group = group
        self.token = token.map { Array($0.utf8) }
        self.logger = logger
        self.executor = executor
        self.startsOnGlobalPool = startsOnGlobalPool
        self.queueTimeout = queueTimeout
        self.requestLogLevel = requestLogLevel
        self.routeCookie = routeCookie
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
    nonisolated(nonsending) func run(
        environment: CGIEnvironment, body: FastCGIRequestBodyStream?, channel: any Channel
    ) async {
        // The request's logger is made only if something logs (GatewayContext.logger).
        let context = GatewayContext(
            channel: channel, group: self.group, requestID: environment["SWIFT_GATEWAY_REQUEST_ID"] ?? "",
            logLevel: self.requestLogLevel)

        var response: GatewayResponse
        if let limit = self.queueTimeout, limit > 0,
            let waited = Self.secondsWaited(since: environment.decimalValue(named: "SWIFT_GATEWAY_REQUEST_START")),
            waited > limit
        {
            context.logger.warning(
                "SG1120: the request waited \(formatSeconds(waited)) for a request slot, longer than queue-timeout \(formatSeconds(limit)): answered 503 without running it"
            )
            response = Self.queueTimedOut(retryAfter: limit)
            if let routeCookie = self.routeCookie { response.headerFields.append(routeCookie.field(for: environment)) }
            await FastCGIResponseWriter(channel: channel).write(response, context: context)
            return
        }
        do {
            let head = try HTTPRequest(cgiEnvironment: environment)
            let request = GatewayRequest(
                head: head, environment: environment,
                body: body.map(GatewayRequestBody.init(source:)) ?? GatewayRequestBody())
            response = try await self.responder.respond(to: request, context: context)
        } catch is CancellationError where Task.isCancelled {
            // Given up on (request-timeout): the connection is closing, the 504 was written.
            return
        } catch let error as GatewayRequestError {
            self.logger.error("SG1116: bad request from Apache: \(error)")
            response = GatewayResponse(status: .badRequest, body: .init(string: "Bad Request\n"))
        } catch {
            context.logger.error("SG1117: the application threw: \(error)")
            response = GatewayResponse(status: .internalServerError, body: .init(string: "Internal Server Error\n"))
        }
        if let routeCookie = self.routeCookie { response.headerFields.append(routeCookie.field(for: environment)) }
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
        return GatewayResponse(
            status: .serviceUnavailable, headerFields: fields, body: .init(string: "Service Unavailable\n"))
    }
}
