import Hummingbird
import NIOCore
import SwiftGateway

/// Hands what a Hummingbird body writes to the gateway's writer, which sends each chunk on as it
/// comes and suspends the writer while the client is slower.
struct GatewayResponseBodyWriterAdapter: ResponseBodyWriter {
    let writer: GatewayResponseBodyWriter

    init(_ writer: GatewayResponseBodyWriter) {
        self.writer = writer
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        try await self.writer.write(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
