import HTTPTypes
import Logging
import NIOConcurrencyHelpers
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
                        requestID: environment["SWIFT_GATEWAY_REQUEST_ID"] ?? ""
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
                        response = GatewayResponse(status: .internalServerError, body: .init(string: "Internal Server Error\n"))
                    }
                    try await self.write(response, keepAlive: head.isKeepAlive, version: head.version, outbound: outbound, channel: channel)
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
            try await produce(GatewayResponseBodyWriter { chunk in try await outbound.write(.body(.byteBuffer(chunk))) })
        }
        // Awaited on the channel: a close right after must not drop queued bytes.
        try await channel.writeAndFlush(HTTPServerResponsePart.end(nil)).get()
    }
}

/// The inbound parts of one connection, shared by the request loop and the body being read.
private final class HTTPRequestParts: GatewayRequestBodySource, @unchecked Sendable {
    private var iterator: NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator
    private var insideBody = false

    init(_ iterator: NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator) {
        self.iterator = iterator
    }

    /// The next request's head, or nil when the client closed the connection.
    func nextHead() async throws -> HTTPRequestHead? {
        while let part = try await self.iterator.next() {
            if case .head(let head) = part {
                self.insideBody = true
                return head
            }
        }
        return nil
    }

    nonisolated(nonsending) func nextChunk() async throws -> ByteBuffer? {
        guard self.insideBody else { return nil }
        guard let part = try await self.iterator.next() else {
            self.insideBody = false
            throw StandaloneOptionsError("the client closed the connection inside a request body")
        }
        switch part {
        case .body(let chunk):
            return chunk
        case .end:
            self.insideBody = false
            return nil
        case .head:
            self.insideBody = false
            throw StandaloneOptionsError("a request head arrived inside a request body")
        }
    }
}

/// CGI/1.1 variables for a request Apache did not see, built the way Apache builds them.
enum StandaloneCGIVariables {
    static func make(for head: HTTPRequestHead, local: SocketAddress?, remote: SocketAddress?) -> CGIEnvironment {
        var environment: [String: String] = [
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "SwiftGateway",
            "SERVER_PROTOCOL": "HTTP/\(head.version.major).\(head.version.minor)",
            "REQUEST_METHOD": head.method.rawValue,
            "REQUEST_URI": head.uri,
            "SCRIPT_NAME": "",
        ]
        let path: Substring
        if let question = head.uri.firstIndex(of: "?") {
            path = head.uri[..<question]
            environment["QUERY_STRING"] = String(head.uri[head.uri.index(after: question)...])
        } else {
            path = Substring(head.uri)
            environment["QUERY_STRING"] = ""
        }
        environment["PATH_INFO"] = percentDecoded(path)
        for (name, value) in head.headers {
            // Like Apache: names with '_' could pose as other headers, and Proxy is httpoxy.
            guard !name.contains("_"), name.lowercased() != "proxy" else { continue }
            let key: String
            switch name.lowercased() {
            case "content-type": key = "CONTENT_TYPE"
            case "content-length": key = "CONTENT_LENGTH"
            case "authorization": continue
            default: key = "HTTP_" + String(name.uppercased().map { $0 == "-" ? "_" : $0 })
            }
            environment[key] = environment[key].map { $0 + ", " + value } ?? value
        }
        if let remote {
            environment["REMOTE_ADDR"] = remote.ipAddress ?? "unix"
            environment["REMOTE_PORT"] = remote.port.map(String.init) ?? ""
        }
        if let local {
            environment["SERVER_ADDR"] = local.ipAddress ?? ""
            environment["SERVER_PORT"] = local.port.map(String.init) ?? ""
        }
        environment["SERVER_NAME"] = head.headers.first(name: "host").map { host in
            String(host.split(separator: ":").first ?? Substring(host))
        } ?? environment["SERVER_ADDR"]
        environment["SWIFT_GATEWAY_REQUEST_ID"] = String(Self.nextRequestNumber())
        return CGIEnvironment(environment.sorted(by: { $0.key < $1.key }).lazy.map { (name: $0.key, value: $0.value) })
    }

    private static let lock = NIOLockedValueBox(0)

    private static func nextRequestNumber() -> Int {
        lock.withLockedValue { value in
            value += 1
            return value
        }
    }

    /// `%2F` → `/`; malformed escapes stay as they are, like Apache's `ap_unescape_url` would refuse them.
    static func percentDecoded(_ text: Substring) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let high = hexValue(iterator[iterator.startIndex]),
               let low = hexValue(iterator[iterator.startIndex + 1]) {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
