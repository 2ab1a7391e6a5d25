import NIOConcurrencyHelpers
import NIOCore

/// The request body between the event loop (which appends STDIN chunks) and the application
/// (which pulls them), with back-pressure: above `highWatermark` buffered bytes the connection
/// stops reading, below `lowWatermark` it reads again, so an upload never piles up in memory.
final class FastCGIRequestBodyStream: GatewayRequestBodySource, @unchecked Sendable {
    static let highWatermark = 256 * 1024
    static let lowWatermark = 64 * 1024

    private enum Next {
        case chunk(ByteBuffer, resumeReading: Bool)
        case end(Result<Void, any Error>)
        case wait
    }

    private let channel: any Channel
    private let lock = NIOLock()
    // Everything below is guarded by `lock`.
    /// Made by the first chunk that has to wait: most requests have no body.
    private var chunks: CircularBuffer<ByteBuffer>?
    private var bufferedBytes = 0
    private var end: Result<Void, any Error>?
    private var waiter: CheckedContinuation<ByteBuffer?, any Error>?
    private var readingPaused = false

    init(channel: any Channel) { self.channel = channel }

    /// Whether the connection should hold off reading (asked on the event loop).
    var isReadingPaused: Bool { self.lock.withLock { self.readingPaused } }

    /// A STDIN chunk arrived (on the event loop).
    func append(_ chunk: ByteBuffer) {
        let waiter: CheckedContinuation<ByteBuffer?, any Error>? = self.lock.withLock {
            guard self.end == nil else { return nil }
            if let waiter = self.waiter {
                self.waiter = nil
                return waiter
            }
            if self.chunks == nil { self.chunks = CircularBuffer(initialCapacity: 4) }
            self.chunks?.append(chunk)
            self.bufferedBytes += chunk.readableBytes
            if self.bufferedBytes >= Self.highWatermark { self.readingPaused = true }
            return nil
        }
        waiter?.resume(returning: chunk)
    }

    /// The body ended (nil) or the connection failed (an error); later calls change nothing.
    func finish(_ error: (any Error)? = nil) {
        let waiter: CheckedContinuation<ByteBuffer?, any Error>? = self.lock.withLock {
            guard self.end == nil else { return nil }
            self.end = error.map { .failure($0) } ?? .success(())
            defer { self.waiter = nil }
            return self.waiter
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    nonisolated(nonsending) func nextChunk() async throws -> ByteBuffer? {
        switch self.lock.withLock({ self.takeNext() }) {
        case .chunk(let chunk, let resumeReading):
            if resumeReading { self.channel.read() }
            return chunk
        case .end(let result):
            try result.get()
            return nil
        case .wait:
            return try await withCheckedThrowingContinuation { continuation in
                let next: Next = self.lock.withLock {
                    let next = self.takeNext()
                    if case .wait = next { self.waiter = continuation }
                    return next
                }
                switch next {
                case .chunk(let chunk, let resumeReading):
                    if resumeReading { self.channel.read() }
                    continuation.resume(returning: chunk)
                case .end(let result):
                    continuation.resume(with: result.map { nil })
                case .wait:
                    break
                }
            }
        }
    }

    /// Must hold `lock`.
    private func takeNext() -> Next {
        if let chunk = self.chunks?.popFirst() {
            self.bufferedBytes -= chunk.readableBytes
            let resume = self.readingPaused && self.bufferedBytes <= Self.lowWatermark
            if resume { self.readingPaused = false }
            return .chunk(chunk, resumeReading: resume)
        }
        if let end = self.end { return .end(end) }
        return .wait
    }
}
