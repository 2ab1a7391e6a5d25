import Hummingbird
import NIOCore

/// Collects a short response body into one buffer (`GatewayResponse.init(_:)`).
struct CollectingResponseBodyWriter: ResponseBodyWriter {
    let collected: CollectedResponseBody

    init(into collected: CollectedResponseBody) {
        self.collected = collected
    }

    mutating func write(_ buffer: ByteBuffer) async throws {
        self.collected.append(buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
