import NIOCore

/// The request body: an `AsyncSequence` of `ByteBuffer` chunks in arrival order.
///
/// It can be iterated once. Chunks are pulled from the worker's socket only as the
/// application asks for them, so a slow consumer slows the upload instead of filling memory.
public struct GatewayRequestBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    private let source: (any GatewayRequestBodySource)?

    /// An empty body.
    public init() { self.source = nil }

    init(source: any GatewayRequestBodySource) { self.source = source }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let source: (any GatewayRequestBodySource)?

        public nonisolated(nonsending) mutating func next() async throws -> ByteBuffer? {
            try await self.source?.nextChunk()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self.source) }

    /// Reads the whole body into one buffer; throws when it is longer than `maximumLength`.
    public nonisolated(nonsending) func collect(upTo maximumLength: Int) async throws -> ByteBuffer {
        var result = ByteBuffer()
        for try await chunk in self {
            guard result.readableBytes + chunk.readableBytes <= maximumLength else {
                throw GatewayRequestBodyTooLarge(maximumLength: maximumLength)
            }
            var chunk = chunk
            result.writeBuffer(&chunk)
        }
        return result
    }
}
