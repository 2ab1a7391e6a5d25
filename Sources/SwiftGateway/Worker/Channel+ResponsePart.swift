import NIOCore

extension Channel {
    /// Writes a response part into the pipeline, flushed unless `flush` is false.
    ///
    /// On the event loop the part is wrapped here, where its type is known: NIO's generic
    /// `write(_:promise:)` is not specialized for it in this build, and its unspecialized
    /// wrapping tests the value against four types at run time on every write.
    func writeResponsePart(_ part: FastCGIResponsePart, flush: Bool = true, promise: EventLoopPromise<Void>?) {
        guard self.eventLoop.inEventLoop else {
            if flush { self.writeAndFlush(part, promise: promise) } else { self.write(part, promise: promise) }
            return
        }
        let operations = self.pipeline.syncOperations
        if flush {
            operations.writeAndFlush(NIOAny(part), promise: promise)
        } else {
            operations.write(NIOAny(part), promise: promise)
        }
    }
}
