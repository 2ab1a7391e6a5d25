import NIOCore

/// Where `CollectingResponseBodyWriter` puts what it is given: the writer itself is consumed by
/// the body it writes (`finish` takes it), so what it collected has to live outside it.
final class CollectedResponseBody: @unchecked Sendable {
    // Written only by the one task that writes the body, read by it afterwards.
    private var collected: ByteBuffer?

    init() {}

    /// A body of one buffer (most are) is kept as it is, not copied.
    func append(_ buffer: ByteBuffer) {
        if self.collected == nil {
            self.collected = buffer
        } else {
            self.collected?.writeImmutableBuffer(buffer)
        }
    }

    var buffer: ByteBuffer { self.collected ?? ByteBuffer() }
}
