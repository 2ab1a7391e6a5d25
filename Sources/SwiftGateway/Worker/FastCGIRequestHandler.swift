import NIOCore

/// Drives one FastCGI connection on its event loop, one request after another: starts the
/// application in a task of its own when the parameters are complete, feeds it the body, holds
/// off reading while the application has not caught up with the upload, and keeps the
/// connection for the next request when the web server asked for `FCGI_KEEP_CONN`.
///
/// The connection is counted in the worker's `ConnectionSlots` until it is closed and its last
/// application task has returned; each request asks them for a slot and runs, waits for one, or
/// is turned away to a sibling. Between requests the connection is listed as idle; reclaiming it
/// (to make room for a new connection, or when draining) or turning away its request first
/// writes `FCGI_OVERLOADED`, so Apache can tell "not run" from "crashed while running".
///
/// Plain channel handlers instead of `NIOAsyncChannel` keep the per-connection set-up to two
/// handler allocations.
final class FastCGIRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = FastCGIRequestPart
    typealias OutboundIn = FastCGIResponsePart
    typealias OutboundOut = FastCGIResponsePart

    private enum State {
        /// Before the first request, or between two on a kept-alive connection.
        case waitingForHead
        /// With the request's body stream, or nil when it announced no body (most requests).
        case running(FastCGIRequestBodyStream?)
        /// Refused or failed: the connection is closing, input is ignored.
        case closing
    }

    /// Requests one connection serves before it is closed, so that Apache's kept connections
    /// spread again over all workers, a restarted one included (nginx's `keepalive_requests`).
    static let maximumRequestsPerConnection = 100

    /// A connection whose request body is longer (announced by `CONTENT_LENGTH`, of unknown
    /// length, or received) is closed after it, even when the application did not read it: its
    /// reads grow the receive buffers NIO keeps per connection (up to 4 of up to 256 KiB), which
    /// it would hold while idle. Apache sends a body this long on a new connection anyway.
    static let maximumBodyBytesOfAKeptConnection = 64 * 1024

    private let runner: FastCGIApplicationRunner
    private let slots: ConnectionSlots
    private let connectionID: Int
    private var state = State.waitingForHead
    private var keepConnection = false
    private var lastRequestID: UInt16 = 1
    private var requestsServed = 0
    private var bodyBytesReceived = 0
    /// The request announced a body over `maximumBodyBytesOfAKeptConnection`, or one of unknown length.
    private var announcedLongBody = false
    private var reportedUnannouncedBody = false
    /// Decided when END_REQUEST is written, and told to Apache in its `appStatus`.
    private var keepAfterResponse = false
    private var inputEnded = false
    private var responseEnded = false
    private var applicationRunning = false
    private var channelClosed = false
    private var slotReleased = false
    /// Listed in `slots` as idle since the last request: only such a connection may be reclaimed.
    private var listedIdle = false
    /// The variables of the request waiting in the slots' queue, if any.
    private var queuedEnvironment: CGIEnvironment?

    /// - Parameters:
    ///   - slots: The worker's slots; the caller has taken one for this connection.
    init(runner: FastCGIApplicationRunner, slots: ConnectionSlots, connectionID: Int) {
        self.runner = runner
        self.slots = slots
        self.connectionID = connectionID
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.unwrapInboundIn(data), self.state) {
        case (.head(let head), .waitingForHead):
            self.start(head, context: context)
        case (.body(let chunk), .running(let body)):
            self.bodyBytesReceived += chunk.readableBytes
            guard let body else {
                self.unannouncedBody()
                return
            }
            body.append(chunk)  // ignored once the body was finished
        case (.end, .running(let body)):
            body?.finish()
            self.inputEnded = true
            if self.responseEnded { self.requestCompleted(context: context) }
        case (_, .closing):
            break
        case (.head, _), (.body, _), (.end, _):
            self.runner.logger.error("SG1113: FastCGI request parts out of order: closing the connection")
            self.state = .closing
            context.close(promise: nil)
        }
    }

    private func start(_ head: FastCGIRequestHead, context: ChannelHandlerContext) {
        if self.listedIdle {
            self.slots.connectionLeftIdle(id: self.connectionID)
            self.listedIdle = false
        }
        guard let environment = self.runner.environment(for: head) else {
            self.state = .closing
            context.close(promise: nil)
            return
        }
        self.keepConnection = head.keepConnection
        self.keepAfterResponse = false
        self.bodyBytesReceived = 0
        let announcedBody = AnnouncedBody(environment)
        self.announcedLongBody = announcedBody == .long
        self.reportedUnannouncedBody = false
        self.lastRequestID = head.requestID
        self.inputEnded = false
        self.responseEnded = false

        let channel = context.channel
        // The closures a waiting request needs are made only when every slot runs.
        let admission = self.slots.tryStartRequest() ? .start : self.admitWhileFull(channel: channel)
        if admission == .turnAway {
            self.refuseNextRequestAndClose(context: context)
            return
        }
        // A waiting request's body is buffered (up to the stream's watermark) while it waits.
        let body = announcedBody == .none ? nil : FastCGIRequestBodyStream(channel: channel)
        self.state = .running(body)
        if admission == .start {
            self.launch(environment: environment, body: body, channel: channel, immediately: true)
            return
        }
        self.queuedEnvironment = environment
        // Apache may then send it again should this worker exit before it starts.
        context.writeAndFlush(self.wrapOutboundOut(.slotNotice(.requestWaiting, requestID: head.requestID)), promise: nil)
        self.slots.watchQueue(on: channel.eventLoop)
    }

    /// Every slot ran a moment ago: start, wait for a slot, or be turned away to a sibling.
    private func admitWhileFull(channel: any Channel) -> ConnectionSlots.Admission {
        let handler = NIOLoopBound(self, eventLoop: channel.eventLoop)
        return self.slots.admit(
            // Apache sends a request again only when it came on a kept connection.
            connectionID: self.connectionID, mayTurnAway: self.requestsServed > 0,
            start: {
                if channel.eventLoop.inEventLoop {
                    handler.value.startQueued(channel: channel)
                } else {
                    channel.eventLoop.execute { handler.value.startQueued(channel: channel) }
                }
            },
            turnAway: { channel.pipeline.fireUserInboundEventTriggered(TurnAwayQueuedRequest()) }
        )
    }

    /// What a request's variables say of its body (RFC 3875 4.1.2: `CONTENT_LENGTH` is set if
    /// and only if there is one; a chunked one is announced by its `Transfer-Encoding`).
    enum AnnouncedBody {
        /// No `CONTENT_LENGTH` (or 0) and no `Transfer-Encoding`: the application gets an empty
        /// body without a stream, one allocation and two locks fewer for most requests.
        case none
        case short
        /// Chunked (no length known in advance) or a `CONTENT_LENGTH` over `maximumBodyBytesOfAKeptConnection`.
        case long

        init(_ environment: CGIEnvironment) {
            if environment["HTTP_TRANSFER_ENCODING"] != nil {
                self = .long
            } else if let length = environment["CONTENT_LENGTH"] {
                let bytes = Int(length) ?? Int.max
                self = bytes == 0 ? .none : bytes > FastCGIRequestHandler.maximumBodyBytesOfAKeptConnection ? .long : .short
            } else {
                self = .none
            }
        }
    }

    /// STDIN data for a request whose variables announced no body: the application was given an
    /// empty one, so the data is read and dropped (said once per request).
    private func unannouncedBody() {
        guard !self.reportedUnannouncedBody else { return }
        self.reportedUnannouncedBody = true
        self.runner.logger.warning("SG1121: request body data for a request without CONTENT_LENGTH or Transfer-Encoding: ignored, the application saw an empty body")
    }

    /// A queued request got its slot.
    private func startQueued(channel: any Channel) {
        guard let environment = self.queuedEnvironment, case .running(let body) = self.state, !self.channelClosed else {
            self.slots.requestFinished()  // its connection closed meanwhile: the slot goes on
            return
        }
        self.queuedEnvironment = nil
        channel.writeResponsePart(.slotNotice(.requestStarted, requestID: self.lastRequestID), promise: nil)
        self.launch(environment: environment, body: body, channel: channel, immediately: false)
    }

    private func launch(environment: CGIEnvironment, body: FastCGIRequestBodyStream?, channel: any Channel, immediately: Bool) {
        self.applicationRunning = true
        let runner = self.runner
        let handler = NIOLoopBound(self, eventLoop: channel.eventLoop)
        // A request read just now starts on this thread (the event loop) and runs until it first
        // suspends: a response ready without waiting is written before this returns, with no hop
        // through the loop's task queue. A queued one is started from another request's end, so
        // it is enqueued instead: queued requests that finish at once must not nest their starts.
        // Either resumes on the loop after a suspension (EventLoopTaskExecutor).
        if immediately {
            Task.immediate(executorPreference: runner.executor) { @Sendable in
                await FastCGIRequestHandler.run(runner, environment: environment, body: body, channel: channel, handler: handler)
            }
        } else {
            Task(executorPreference: runner.executor) { @Sendable in
                await FastCGIRequestHandler.run(runner, environment: environment, body: body, channel: channel, handler: handler)
            }
        }
    }

    private nonisolated(nonsending) static func run(
        _ runner: FastCGIApplicationRunner, environment: CGIEnvironment, body: FastCGIRequestBodyStream?,
        channel: any Channel, handler: NIOLoopBound<FastCGIRequestHandler>
    ) async {
        await runner.run(environment: environment, body: body, channel: channel)
        if channel.eventLoop.inEventLoop {
            handler.value.applicationReturned()
        } else {
            channel.eventLoop.execute { handler.value.applicationReturned() }
        }
    }

    /// Both directions of a request are done: keep the connection for the next one, or close.
    private func requestCompleted(context: ChannelHandlerContext) {
        guard case .running = self.state else { return }
        self.state = .waitingForHead
        self.requestsServed += 1
        guard self.keepAfterResponse else {
            // Apache was told in END_REQUEST: it does not send another request on this one.
            self.state = .closing
            context.close(promise: nil)
            return
        }
        self.listedIdle = self.slots.connectionBecameIdle(id: self.connectionID, channel: context.channel)
        if !self.listedIdle {
            self.refuseNextRequestAndClose(context: context)
        }
    }

    /// Closes a kept-alive connection, telling Apache its next (or waiting) request was not run.
    private func refuseNextRequestAndClose(context: ChannelHandlerContext) {
        self.state = .closing
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.overloaded(requestID: self.lastRequestID))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    private func applicationReturned() {
        self.applicationRunning = false
        self.slots.requestFinished()
        self.releaseSlotIfDone()
    }

    private func releaseSlotIfDone() {
        guard self.channelClosed, !self.applicationRunning, !self.slotReleased else { return }
        self.slotReleased = true
        self.slots.release()
    }

    /// Marks END_REQUEST with whether this connection will be kept for another request
    /// (`FastCGIServerCodec.keptConnectionAppStatus`, which Apache looks for).
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = self.unwrapOutboundIn(data)
        guard part.endsResponse else {
            context.write(data, promise: promise)
            return
        }
        self.keepAfterResponse = self.keepConnection
            && self.requestsServed + 1 < Self.maximumRequestsPerConnection
            && !self.announcedLongBody && self.bodyBytesReceived <= Self.maximumBodyBytesOfAKeptConnection
            && self.slots.shouldKeepFinishedConnection()
        let ending = part.ending(keepingConnection: self.keepAfterResponse)
        guard !self.keepAfterResponse else {
            // Nothing waits for this write: the connection stays, and a failed write closes it.
            context.write(self.wrapOutboundOut(ending), promise: promise)
            self.responseDidEnd(context: context)
            return
        }
        // Closing drops writes still queued: close once END_REQUEST reached the socket.
        let written = promise ?? context.eventLoop.makePromise(of: Void.self)
        context.write(self.wrapOutboundOut(ending), promise: written)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { result in
            switch result {
            case .success: handler.value.responseDidEnd(context: boundContext.value)
            case .failure: boundContext.value.close(promise: nil)
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        if !self.responseEnded, case .running(let body?) = self.state, body.isReadingPaused {
            return  // the stream calls `channel.read()` again when the application caught up
        }
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ReclaimIdleConnection:
            // A request may have arrived since the connection was listed as idle: it runs.
            if self.listedIdle, case .waitingForHead = self.state, !self.channelClosed {
                self.refuseNextRequestAndClose(context: context)
            }
        case is TurnAwayQueuedRequest:
            // The slots no longer list it; it may have started or closed since.
            if self.queuedEnvironment != nil, case .running(let body) = self.state, !self.channelClosed {
                self.queuedEnvironment = nil
                body?.finish(FastCGIConnectionError(description: "the request was turned away to a sibling worker"))
                self.refuseNextRequestAndClose(context: context)
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Boxed once: a short response usually ends before its request's last STDIN is read.
    private static let responseCompletedFirst: any Error = FastCGIConnectionError(
        description: "the response was complete before the request body ended"
    )

    /// END_REQUEST reached the socket: finish now if the client finished sending, else read and
    /// discard the rest of its input first, so its last write does not fail.
    private func responseDidEnd(context: ChannelHandlerContext) {
        self.responseEnded = true
        if self.inputEnded {
            self.requestCompleted(context: context)
            return
        }
        if case .running(let body?) = self.state {
            body.finish(Self.responseCompletedFirst)
        }
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .running(let body?) = self.state { body.finish(error) }
        self.runner.logger.notice("SG1114: FastCGI connection failed: \(error)")
        self.state = .closing
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .running(let body?) = self.state {
            body.finish(FastCGIConnectionError(description: "Apache closed the connection before the request body ended"))
        }
        self.state = .closing
        self.channelClosed = true
        if self.queuedEnvironment != nil {
            self.queuedEnvironment = nil
            self.slots.cancelQueued(connectionID: self.connectionID)
        }
        if self.listedIdle { self.slots.connectionLeftIdle(id: self.connectionID) }
        self.releaseSlotIfDone()
        context.fireChannelInactive()
    }
}

extension FastCGIResponsePart {
    /// Whether this part ends the response.
    fileprivate var endsResponse: Bool {
        switch self {
        case .end, .stdoutThenEnd: true
        case .stdout, .stderr, .overloaded, .slotNotice: false
        }
    }

    /// This ending part telling Apache whether the connection is kept.
    fileprivate func ending(keepingConnection keep: Bool) -> FastCGIResponsePart {
        switch self {
        case .stdoutThenEnd(let bytes, _): .stdoutThenEnd(bytes, keepsConnection: keep)
        case .end(let appStatus): .end(appStatus: keep ? FastCGIServerCodec.keptConnectionAppStatus : appStatus)
        case .stdout, .stderr, .overloaded, .slotNotice: self
        }
    }
}
