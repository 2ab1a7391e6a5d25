import NIOCore

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
