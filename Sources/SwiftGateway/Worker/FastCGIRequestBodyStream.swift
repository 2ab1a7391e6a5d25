import NIOCore
import Synchronization

/// The request body between the event loop (which appends STDIN chunks) and the application
/// (which pulls them), with back-pressure: above `highWatermark` buffered bytes the connection
/// stops reading, below `lowWatermark` it reads again, so an upload never piles up in memory.
final class FastCGIRequestBodyStream: GatewayRequestBodySource, Sendable {
    static let highWatermark = 256 * 1024
    static let lowWatermark = 64 * 1024

    private enum Next {
        case chunk(ByteBuffer, resumeReading: Bool)
        case end(Result<Void, any Error>)
        case wait
    }

    /// What the event loop and the application share.
    private struct State {
        /// Made by the first chunk that has to wait: most requests have no body.
        var chunks: CircularBuffer<ByteBuffer>?
        var bufferedBytes = 0
        var end: Result<Void, any Error>?
        var waiter: CheckedContinuation<ByteBuffer?, any Error>?
        var readingPaused = false

        mutating func takeNext() -> Next {
            if let chunk = self.chunks?.popFirst() {
                self.bufferedBytes -= chunk.readableBytes
                let resume = self.readingPaused && self.bufferedBytes <= FastCGIRequestBodyStream.lowWatermark
                if resume { self.readingPaused = false }
                return .chunk(chunk, resumeReading: resume)
            }
            if let end = self.end { return .end(end) }
            return .wait
        }
    }

    private let channel: any Channel
    /// Inside the object, not an object of its own: one allocation per request fewer.
    private let state = Mutex(State())

    init(channel: any Channel) { self.channel = channel }

    /// Whether the connection should hold off reading (asked on the event loop).
    var isReadingPaused: Bool { self.state.withLock { $0.readingPaused } }

    /// A STDIN chunk arrived (on the event loop).
    func append(_ chunk: ByteBuffer) {
        let waiter: CheckedContinuation<ByteBuffer?, any Error>? = self.state.withLock { state in
            guard state.end == nil else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            if state.chunks == nil { state.chunks = CircularBuffer(initialCapacity: 4) }
            state.chunks?.append(chunk)
            state.bufferedBytes += chunk.readableBytes
            if state.bufferedBytes >= Self.highWatermark { state.readingPaused = true }
            return nil
        }
        waiter?.resume(returning: chunk)
    }

    /// The body ended (nil) or the connection failed (an error); later calls change nothing.
    func finish(_ error: (any Error)? = nil) {
        let waiter: CheckedContinuation<ByteBuffer?, any Error>? = self.state.withLock { state in
            guard state.end == nil else { return nil }
            state.end = error.map { .failure($0) } ?? .success(())
            defer { state.waiter = nil }
            return state.waiter
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    nonisolated(nonsending) func nextChunk() async throws -> ByteBuffer? {
        switch self.state.withLock({ $0.takeNext() }) {
        case .chunk(let chunk, let resumeReading):
            if resumeReading { self.channel.read() }
            return chunk
        case .end(let result):
            try result.get()
            return nil
        case .wait:
            return try await withCheckedThrowingContinuation { continuation in
                let next: Next = self.state.withLock { state in
                    let next = state.takeNext()
                    if case .wait = next { state.waiter = continuation }
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
}
