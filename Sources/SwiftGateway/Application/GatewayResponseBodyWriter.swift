import NIOCore

/// Writes chunks of a streamed response body.
public struct GatewayResponseBodyWriter: Sendable {
    private let writeChunk: @Sendable (ByteBuffer) async throws -> Void

    init(_ writeChunk: @escaping @Sendable (ByteBuffer) async throws -> Void) {
        self.writeChunk = writeChunk
    }

    /// Sends `buffer` to the client; returns once the connection can take more.
    public nonisolated(nonsending) func write(_ buffer: ByteBuffer) async throws {
        guard buffer.readableBytes > 0 else { return }
        try await self.writeChunk(buffer)
    }

    public nonisolated(nonsending) func write(_ string: String) async throws {
        try await self.write(ByteBuffer(string: string))
    }
}
