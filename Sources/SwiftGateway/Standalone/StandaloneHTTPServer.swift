import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The program as its own HTTP/1.1 server (`--http HOST:PORT`), for development and
/// debugging without Apache. The application sees the same CGI variables it gets under Apache.
struct StandaloneHTTPServer: Sendable {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let host: String
    let port: Int
    let responder: any GatewayResponder
    let logger: Logger

    func run() async throws {
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: self.host, port: self.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        self.logger.notice("SG1202: serving HTTP on \(self.host):\(listener.channel.localAddress?.port ?? self.port)")
        try await listener.executeThenClose { connections in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in connections {
                    group.addTask { await self.serve(connection) }
                }
            }
        }
    }

    /// Serves the requests of one keep-alive connection, one after another.
    private func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                let parts = HTTPRequestParts(inbound.makeAsyncIterator())
                let channel = connection.channel
                while let head = try await parts.nextHead() {
                    let environment = StandaloneCGIVariables.make(
                        for: head, local: channel.localAddress, remote: channel.remoteAddress
                    )
                    let context = GatewayContext(
                        logger: self.logger, allocator: channel.allocator, group: "standalone",
                        requestID: environment["SWIFT_GATEWAY_REQUEST_ID"] ?? "", channel: channel
                    )
                    let response: GatewayResponse
                    do {
                        let request = GatewayRequest(
                            head: try HTTPRequest(cgiEnvironment: environment), environment: environment,
                            body: GatewayRequestBody(source: parts)
                        )
                        response = try await self.responder.respond(to: request, context: context)
                    } catch {
                        self.logger.error("SG1203: the application threw: \(error)")
                        response = GatewayResponse(
                            status: .internalServerError, body: .init(string: "Internal Server Error\n"))
                    }
                    try await self.write(
                        response, keepAlive: head.isKeepAlive, version: head.version, outbound: outbound,
                        channel: channel)
                    // The next request starts after this one's body, read or not.
                    while try await parts.nextChunk() != nil {}
                    guard head.isKeepAlive else { return }
                }
            }
        } catch {
            self.logger.debug("HTTP connection ended: \(error)")
        }
    }

    private func write(
        _ response: GatewayResponse, keepAlive: Bool, version: HTTPVersion,
        outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, channel: any Channel
    ) async throws {
        var headers = HTTPHeaders()
        for field in response.headerFields { headers.add(name: field.name.rawName, value: field.value) }
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: response.status.code, reasonPhrase: response.status.reasonPhrase)
        switch response.body.content {
        case .buffer(let body):
            if !headers.contains(name: "content-length") {
                headers.add(name: "content-length", value: String(body.readableBytes))
            }
            try await outbound.write(.head(HTTPResponseHead(version: version, status: status, headers: headers)))
            if body.readableBytes > 0 { try await outbound.write(.body(.byteBuffer(body))) }
        case .stream(let produce):
            try await outbound.write(.head(HTTPResponseHead(version: version, status: status, headers: headers)))
            try await produce(
                GatewayResponseBodyWriter { chunk in try await outbound.write(.body(.byteBuffer(chunk))) })
        }
        // Awaited on the channel: a close right after must not drop queued bytes.
        try await channel.writeAndFlush(HTTPServerResponsePart.end(nil)).get()
    }
}
