import NIOCore

/// Where body chunks come from: the FastCGI connection, or a standalone HTTP server.
protocol GatewayRequestBodySource: Sendable {
    /// The next chunk, or nil at the end of the body.
    nonisolated(nonsending) func nextChunk() async throws -> ByteBuffer?
}
