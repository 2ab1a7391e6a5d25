import NIOCore
import NIOHTTP1

/// The inbound parts of one connection of the standalone HTTP server, shared by its request loop
/// and the body being read.
final class HTTPRequestParts: GatewayRequestBodySource, @unchecked Sendable {
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
