import NIOCore

/// Drives one FastCGI connection on its event loop: starts the application in a task of its
/// own when the parameters are complete, feeds it the body, and holds off reading while the
/// application has not caught up with the upload.
///
/// Plain channel handlers instead of `NIOAsyncChannel` keep the per-connection set-up to two
/// handler allocations: this runs once per request.
final class FastCGIRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = FastCGIRequestPart
    typealias OutboundIn = FastCGIResponsePart
    typealias OutboundOut = FastCGIResponsePart

    private enum State {
        case waitingForHead
        case running(FastCGIRequestBodyStream)
        case closed
    }

    private let runner: FastCGIApplicationRunner
    /// Called once when this connection no longer holds a request slot.
    private let releaseSlot: @Sendable () -> Void
    private var state = State.waitingForHead
    private var inputEnded = false
    private var responseEnded = false

    init(runner: FastCGIApplicationRunner, releaseSlot: @escaping @Sendable () -> Void) {
        self.runner = runner
        self.releaseSlot = releaseSlot
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.unwrapInboundIn(data), self.state) {
        case (.head(let head), .waitingForHead):
            guard let environment = self.runner.environment(for: head) else {
                self.state = .closed
                self.releaseSlot()
                context.close(promise: nil)
                return
            }
            let channel = context.channel
            let body = FastCGIRequestBodyStream(channel: channel)
            self.state = .running(body)
            let runner = self.runner
            let releaseSlot = self.releaseSlot
            Task(executorPreference: runner.executor) {
                await runner.run(environment: environment, body: body, channel: channel)
                releaseSlot()
            }
        case (.body(let chunk), .running(let body)):
            body.append(chunk)  // ignored once the body was finished
        case (.end, .running(let body)):
            body.finish()
            self.inputEnded = true
            if self.responseEnded { context.close(promise: nil) }
        case (.head, _), (.body, _), (.end, _):
            self.runner.logger.error("SG1113: FastCGI request parts out of order: closing the connection")
            context.close(promise: nil)
        }
    }

    func read(context: ChannelHandlerContext) {
        if !self.responseEnded, case .running(let body) = self.state, body.isReadingPaused {
            return  // the stream calls `channel.read()` again when the application caught up
        }
        context.read()
    }

    /// END_REQUEST reached the socket: close now if the client finished sending, else read
    /// and discard the rest of its input first, so its last write does not fail.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is FastCGIResponseEnded else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        self.responseEnded = true
        if self.inputEnded {
            context.close(promise: nil)
            return
        }
        if case .running(let body) = self.state {
            body.finish(FastCGIConnectionError(description: "the response was complete before the request body ended"))
        }
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .running(let body) = self.state { body.finish(error) }
        self.runner.logger.notice("SG1114: FastCGI connection failed: \(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch self.state {
        case .waitingForHead:
            self.releaseSlot()
        case .running(let body):
            body.finish(FastCGIConnectionError(description: "Apache closed the connection before the request body ended"))
        case .closed:
            break
        }
        self.state = .closed
        context.fireChannelInactive()
    }
}

/// Fired by `FastCGIResponseWriter` once END_REQUEST was written.
struct FastCGIResponseEnded: Sendable {}

/// A FastCGI connection that does not follow the protocol.
struct FastCGIConnectionError: Error, CustomStringConvertible {
    var description: String
}
