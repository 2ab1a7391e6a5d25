import HTTPTypes
import NIOCore

/// What the application answers: status, header fields and a body.
public struct GatewayResponse: Sendable {
    public var status: HTTPResponse.Status
    public var headerFields: HTTPFields
    public var body: GatewayResponseBody

    public init(status: HTTPResponse.Status = .ok, headerFields: HTTPFields = [:], body: GatewayResponseBody = .init()) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }
}

/// A response body: bytes known up front, or a closure that writes them as they are produced.
public struct GatewayResponseBody: Sendable {
    enum Content: Sendable {
        case buffer(ByteBuffer)
        case stream(@Sendable (GatewayResponseBodyWriter) async throws -> Void)
    }

    let content: Content

    /// An empty body.
    public init() { self.content = .buffer(ByteBuffer()) }

    public init(byteBuffer: ByteBuffer) { self.content = .buffer(byteBuffer) }

    public init(string: String) { self.content = .buffer(ByteBuffer(string: string)) }

    /// A streamed body: `write` sends each chunk to the client as it is written,
    /// suspending while the client is slower than the application.
    public static func stream(_ write: @escaping @Sendable (GatewayResponseBodyWriter) async throws -> Void) -> Self {
        Self(content: .stream(write))
    }

    private init(content: Content) { self.content = content }
}

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
