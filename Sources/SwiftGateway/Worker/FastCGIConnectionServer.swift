import HTTPTypes
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Serves the one request of an accepted FastCGI connection with the application.
struct FastCGIConnectionServer<Responder: GatewayResponder>: Sendable {
    typealias Connection = NIOAsyncChannel<FastCGIRequestPart, FastCGIResponsePart>

    let responder: Responder
    let settings: GroupSettings
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger

    /// Serves `descriptor` (which it owns from now on) until the response is complete.
    func serve(descriptor: CInt) async {
        let connection: Connection
        do {
            connection = try await ClientBootstrap(group: self.eventLoopGroup)
                .withConnectedSocket(descriptor) { channel in
                    channel.eventLoop.makeCompletedFuture { try Self.makeConnection(channel) }
                }
        } catch {
            self.logger.error("cannot set up an accepted connection: \(error)")
            return
        }
        await self.serve(connection)
    }

    /// Puts the FastCGI codec on a new channel and wraps it for async use (on its event loop).
    static func makeConnection(_ channel: any Channel) throws -> Connection {
        try channel.pipeline.syncOperations.addHandler(FastCGIServerCodec())
        return try Connection(wrappingChannelSynchronously: channel)
    }

    /// Serves one FastCGI connection until its response is complete, then closes it.
    func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                try await self.serveRequest(inbound: inbound, outbound: outbound, channel: connection.channel)
            }
        } catch {
            self.logger.notice("connection ended early: \(error)")
        }
    }

    private func serveRequest(
        inbound: NIOAsyncChannelInboundStream<FastCGIRequestPart>,
        outbound: NIOAsyncChannelOutboundWriter<FastCGIResponsePart>,
        channel: any Channel
    ) async throws {
        var parts = inbound.makeAsyncIterator()
        guard let first = try await parts.next() else { return }
        guard case .head(let head) = first else {
            throw FastCGIConnectionError(description: "the request did not start with its parameters")
        }
        var environment = [String: String](minimumCapacity: head.parameters.count)
        for parameter in head.parameters { environment[parameter.name] = parameter.value }
        let presentedToken = environment.removeValue(forKey: "SWIFT_GATEWAY_TOKEN")
        if let token = self.settings.token {
            guard let presentedToken, constantTimeEquals(presentedToken, token) else {
                self.logger.error("refused a request without the group's token (SWIFT_GATEWAY_TOKEN)")
                return
            }
        }
        let requestID = environment["SWIFT_GATEWAY_REQUEST_ID"] ?? ""
        var requestLogger = Logger(label: "app") { _ in FastCGIStandardErrorLogHandler(channel: channel) }
        requestLogger[metadataKey: "request"] = "\(requestID)"
        let context = GatewayContext(
            logger: requestLogger, allocator: channel.allocator, group: self.settings.group, requestID: requestID
        )

        let response: GatewayResponse
        do {
            let head = try HTTPRequest(cgiEnvironment: environment)
            let body = GatewayRequestBody(source: FastCGIRequestBodySource(parts))
            response = try await self.responder.respond(
                to: GatewayRequest(head: head, environment: environment, body: body), context: context
            )
        } catch let error as GatewayRequestError {
            self.logger.error("bad request from Apache: \(error)")
            response = GatewayResponse(status: .badRequest, body: .init(string: "Bad Request\n"))
        } catch {
            requestLogger.error("the application threw: \(error)")
            response = GatewayResponse(status: .internalServerError, body: .init(string: "Internal Server Error\n"))
        }
        try await self.write(response, to: outbound, channel: channel, logger: requestLogger)
    }

    /// CGI header block, then the body, then END_REQUEST.
    ///
    /// The last part is written on the channel itself and awaited: closing a NIO channel drops
    /// writes still queued, so the connection may close only once END_REQUEST is in the kernel.
    private func write(
        _ response: GatewayResponse,
        to outbound: NIOAsyncChannelOutboundWriter<FastCGIResponsePart>,
        channel: any Channel,
        logger: Logger
    ) async throws {
        switch response.body.content {
        case .buffer(let body):
            var headers = CGIResponseHead.serialize(
                response, contentLength: body.readableBytes, allocator: channel.allocator,
                reservingBody: body.readableBytes <= Self.coalescingLimit ? body.readableBytes : 0
            )
            let parts: [FastCGIResponsePart]
            if body.readableBytes <= Self.coalescingLimit {
                headers.writeImmutableBuffer(body)
                parts = [.stdout(headers), .end(appStatus: 0)]
            } else {
                parts = [.stdout(headers), .stdout(body), .end(appStatus: 0)]
            }
            try await Self.writeFinalParts(parts, to: channel)
        case .stream(let produce):
            let headers = CGIResponseHead.serialize(response, contentLength: nil, allocator: channel.allocator, reservingBody: 0)
            try await outbound.write(.stdout(headers))
            do {
                try await produce(GatewayResponseBodyWriter { chunk in try await outbound.write(.stdout(chunk)) })
            } catch {
                // Headers are gone already: closing without END_REQUEST makes Apache abort the response.
                logger.error("the response body failed after headers were sent: \(error)")
                throw error
            }
            // Everything the writer accepted is already queued on the event loop, so this comes after it.
            try await Self.writeFinalParts([.end(appStatus: 0)], to: channel)
        }
    }

    /// Bodies up to this size travel in the same record as the headers.
    private static var coalescingLimit: Int { 16 * 1024 }

    /// Writes `parts` in one event-loop hop and waits until the last one has reached the socket.
    private static func writeFinalParts(_ parts: [FastCGIResponsePart], to channel: any Channel) async throws {
        try await channel.eventLoop.flatSubmit {
            let last = parts.count - 1
            for part in parts[..<last] { channel.write(part, promise: nil) }
            return channel.writeAndFlush(parts[last])
        }.get()
    }
}

/// Body chunks straight from the connection's inbound parts; single consumer by contract.
private final class FastCGIRequestBodySource: GatewayRequestBodySource, @unchecked Sendable {
    private var parts: NIOAsyncChannelInboundStream<FastCGIRequestPart>.AsyncIterator
    private var finished = false

    init(_ parts: NIOAsyncChannelInboundStream<FastCGIRequestPart>.AsyncIterator) {
        self.parts = parts
    }

    func nextChunk() async throws -> ByteBuffer? {
        guard !self.finished else { return nil }
        while let part = try await self.parts.next() {
            switch part {
            case .body(let chunk):
                return chunk
            case .end:
                self.finished = true
                return nil
            case .head:
                throw FastCGIConnectionError(description: "a second parameter block arrived inside the body")
            }
        }
        self.finished = true
        throw FastCGIConnectionError(description: "the connection closed before the request body ended")
    }
}

/// A FastCGI connection that does not follow the protocol.
struct FastCGIConnectionError: Error, CustomStringConvertible {
    var description: String
}

/// Compares secrets in time independent of where they differ.
func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
    let left = Array(lhs.utf8)
    let right = Array(rhs.utf8)
    guard left.count == right.count else { return false }
    var difference: UInt8 = 0
    for index in left.indices { difference |= left[index] ^ right[index] }
    return difference == 0
}
