import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded

@testable import SwiftGateway

/// A request body that hands out its chunks one by one and counts how many were asked for.
final class CountingBodySource: GatewayRequestBodySource {
    private let state: NIOLockedValueBox<(chunks: [ByteBuffer], pulled: Int)>

    init(_ chunks: [ByteBuffer]) { self.state = .init((chunks, 0)) }

    var pulled: Int { self.state.withLockedValue { $0.pulled } }

    nonisolated(nonsending) func nextChunk() async throws -> ByteBuffer? {
        self.state.withLockedValue { state in
            guard !state.chunks.isEmpty else { return nil }
            state.pulled += 1
            return state.chunks.removeFirst()
        }
    }
}

/// A gateway request as the worker makes it.
func gatewayRequest(
    _ method: HTTPRequest.Method = .get, _ path: String, headers: HTTPFields = [:], body: [ByteBuffer]? = nil,
    environment: CGIEnvironment = [:]
) -> (GatewayRequest, CountingBodySource?) {
    let source = body.map(CountingBodySource.init)
    let request = GatewayRequest(
        head: HTTPRequest(method: method, scheme: "http", authority: "localhost", path: path, headerFields: headers),
        environment: environment,
        body: source.map { GatewayRequestBody(source: $0) } ?? GatewayRequestBody())
    return (request, source)
}

/// A context with a connection, as the gateway's have. The responder only hands the channel on:
/// it is finished at once, since an `EmbeddedChannel` and its pipeline hold each other until then.
func gatewayContext(requestID: String = "req-1") -> GatewayContext {
    let channel = EmbeddedChannel()
    _ = try? channel.finish()
    return GatewayContext(logger: Logger(label: "test"), group: "site", requestID: requestID, channel: channel)
}

/// The body's bytes and the chunks they came in; a streamed body is written through a gateway writer.
func bodyChunks(of response: GatewayResponse) async throws -> (streamed: Bool, chunks: [ByteBuffer]) {
    switch response.body.content {
    case .buffer(let buffer):
        return (false, [buffer])
    case .stream(let write):
        let chunks = NIOLockedValueBox<[ByteBuffer]>([])
        try await write(GatewayResponseBodyWriter { chunk in chunks.withLockedValue { $0.append(chunk) } })
        return (true, chunks.withLockedValue { $0 })
    }
}

func text(_ chunks: [ByteBuffer]) -> String {
    chunks.map { String(buffer: $0) }.joined()
}
