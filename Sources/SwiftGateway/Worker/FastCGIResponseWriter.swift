import NIOCore

/// Writes a response as STDOUT records and END_REQUEST.
///
/// The connection closes only after END_REQUEST reached the socket: a NIO close drops queued writes.
struct FastCGIResponseWriter: Sendable {
    let channel: any Channel

    /// Bodies up to this size travel in the same record as the headers.
    static let coalescingLimit = 16 * 1024

    /// `context` gives the request's logger, should the body fail.
    nonisolated(nonsending) func write(_ response: GatewayResponse, context: GatewayContext) async {
        let channel = self.channel
        switch response.body.content {
        case .buffer(let body):
            let coalesce = body.readableBytes <= Self.coalescingLimit
            var headers = CGIResponseHead.serialize(
                response, contentLength: body.readableBytes, allocator: channel.allocator,
                reservingBody: coalesce ? body.readableBytes : 0
            )
            if coalesce { headers.writeImmutableBuffer(body) }
            let head = headers
            // At most one hop to the event loop for the whole response, none (and no closure)
            // when already on it; a short one leaves as one pipeline write and one buffer.
            if channel.eventLoop.inEventLoop {
                self.endBuffered(head: head, body: body, coalesced: coalesce)
            } else {
                channel.eventLoop.execute { self.endBuffered(head: head, body: body, coalesced: coalesce) }
            }
        case .stream(let produce):
            let headers = CGIResponseHead.serialize(
                response, contentLength: nil, allocator: channel.allocator, reservingBody: 0)
            do {
                try await self.writeChunk(headers)
                try await produce(GatewayResponseBodyWriter { chunk in try await self.writeChunk(chunk) })
            } catch {
                // Closing without END_REQUEST makes Apache abort the client connection.
                context.logger.error("SG1118: the response body failed after headers were sent: \(error)")
                channel.close(promise: nil)
                return
            }
            if channel.eventLoop.inEventLoop {
                self.end()
            } else {
                channel.eventLoop.execute { self.end() }
            }
        }
    }

    /// On the event loop: the headers (with the body when `coalesced`), then the end.
    private func endBuffered(head: ByteBuffer, body: ByteBuffer, coalesced: Bool) {
        if coalesced {
            self.end(last: head)
        } else {
            self.channel.writeResponsePart(.stdout(head), flush: false, promise: nil)
            self.end(last: body)
        }
    }

    /// Queues a chunk; waits for it to reach the socket only while the connection is congested.
    private nonisolated(nonsending) func writeChunk(_ chunk: ByteBuffer) async throws {
        let written = self.channel.eventLoop.makePromise(of: Void.self)
        self.channel.writeResponsePart(.stdout(chunk), promise: written)
        if !self.channel.isWritable { try await written.futureResult.get() }
    }

    /// On the event loop: the last bytes if any, then END_REQUEST; the request handler sees it
    /// written and keeps or closes the connection.
    private func end(last: ByteBuffer? = nil) {
        let part = last.map { FastCGIResponsePart.stdoutThenEnd($0, keepsConnection: false) } ?? .end(appStatus: 0)
        self.channel.writeResponsePart(part, promise: nil)
    }
}
