import NIOCore

/// Where `CollectingResponseBodyWriter` puts what it is given: the writer itself is consumed by
/// the body it writes (`finish` takes it), so what it collected has to live outside it.
final class CollectedResponseBody: @unchecked Sendable {
    // Written only by the one task that writes the body, read by it afterwards.
    var buffer: ByteBuffer

    init(capacity: Int) {
        self.buffer = ByteBuffer()
        self.buffer.reserveCapacity(capacity)
    }
}
