import HTTPTypes
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
/// A request the supervisor gave up on (`CancelRequest`) has its task cancelled and is answered
/// 504, or its connection aborted when the response had begun; either way the connection closes,
/// and nothing its application writes afterwards reaches it.
///
/// Plain channel handlers instead of `NIOAsyncChannel` keep the per-connection set-up to two
/// handler allocations.
final class FastCGIRequestHandler: ChannelDuplexHandler {
    typealias InboundIn = FastCGIRequestPart
    typealias OutboundIn = FastCGIResponsePart
    typealias OutboundOut = FastCGIResponsePart

    /// One request, from its head until both its input and its response are done.
    ///
    /// Plain values only: its body stream is the handler's `body`, and the variables of a queued
    /// request are held by its start closure. The request path reads the request out of `state`
    /// at every step; with a reference inside, each read was an outlined copy with a retain and a
    /// release (callgrind counted some 700 instructions more per request).
    private struct Request {
        enum Phase {
            /// Every slot runs: it waits in the slots' queue (whose start closure holds the
            /// variables its application will start with).
            case queued
            /// Its application runs (or has returned); the response has not ended.
            case running
            /// END_REQUEST reached the socket before the input ended: the rest of the input is
            /// read and dropped, then the connection is kept or closed as END_REQUEST told Apache.
            case draining(keepConnection: Bool)
        }

        let id: UInt16
        /// `FCGI_KEEP_CONN`: Apache asked to keep the connection after this request.
        let keepConnection: Bool
        let announcedBody: AnnouncedBody
        var phase: Phase
        var bodyBytesReceived = 0
        /// The empty STDIN record arrived: the request's input is complete.
        var inputEnded = false
        /// STDIN data came although no body was announced, and SG1121 said so (once per request).
        var reportedUnannouncedBody = false

        /// Whether the application may still read the body: while it waits for a slot or runs,
        /// not once the response ended.
        var waitsForTheApplication: Bool {
            if case .draining = self.phase { return false }
            return true
        }
    }

    /// The application task of the connection's latest request, until it returns.
    private struct RunningApplication {
        /// The request slot it holds (its scoreboard cell).
        let slot: Int
        /// The request's variables, for the log line should it be given up on.
        let environment: CGIEnvironment
        /// Its task, to cancel it.
        let task: Task<Void, Never>
    }

    private enum State {
        /// Before the first request, or between two on a kept-alive connection. `listedIdle`:
        /// listed in `slots` as idle since the last request; only such a connection may be reclaimed.
        case waitingForHead(listedIdle: Bool)
        /// A request is in progress.
        case serving(Request)
        /// Refused or failed: the connection is closing, input is ignored.
        case closing
        /// The channel is inactive.
        case closed
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
    /// Set for a connection to the worker's own socket (a routed one, `affinity-cookie=`):
    /// counts its requests, which are never turned away to a sibling.
    private let routedRequests: RoutedRequestCount?
    private var state = State.waitingForHead(listedIdle: false)
    /// The body stream of the request being served; nil when it announced no body (most
    /// requests), and outside `.serving`.
    private var body: FastCGIRequestBodyStream?
    /// The id of the request that came last; `FCGI_OVERLOADED` refuses the next under it.
    private var lastRequestID: UInt16 = 1
    private var requestsServed = 0
    /// Application tasks started on this connection that have not returned yet: a request's task
    /// may still be returning when the next request starts, or when the connection closes.
    private var applicationsRunning = 0
    /// The latest request's application while it runs; nil once it returned.
    private var application: RunningApplication?
    /// The latest request's response has begun: a STDOUT record went out.
    private var responseStarted = false
    /// The request was given up on: nothing more from its application reaches the connection,
    /// which is closing.
    private var applicationCutOff = false

    /// - Parameters:
    ///   - slots: The worker's slots; the caller has taken one for this connection.
    ///   - routedRequests: Given for a connection to the worker's own socket.
    init(
        runner: FastCGIApplicationRunner, slots: ConnectionSlots, connectionID: Int,
        routedRequests: RoutedRequestCount? = nil
    ) {
        self.runner = runner
        self.slots = slots
        self.connectionID = connectionID
        self.routedRequests = routedRequests
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (self.unwrapInboundIn(data), self.state) {
        case (.head(let head), .waitingForHead(let listedIdle)):
            self.start(head, listedIdle: listedIdle, context: context)
        case (.body(let chunk), .serving(var request)):
            request.bodyBytesReceived += chunk.readableBytes
            if let body = self.body {
                body.append(chunk) // ignored once the body was finished
            } else if !request.reportedUnannouncedBody {
                // The application was given an empty body: the data is read and dropped.
                request.reportedUnannouncedBody = true
                self.runner.logger.warning(
                    "SG1121: request body data for a request without CONTENT_LENGTH or Transfer-Encoding: ignored, the application saw an empty body"
                )
            }
            self.state = .serving(request)
        case (.end, .serving(var request)):
            self.body?.finish()
            if case .draining(let keepConnection) = request.phase {
                self.requestCompleted(keepConnection: keepConnection, context: context)
            } else {
                request.inputEnded = true
                self.state = .serving(request)
            }
        case (_, .closing), (_, .closed):
            break
        case (.head, _), (.body, _), (.end, _):
            self.runner.logger.error("SG1113: FastCGI request parts out of order: closing the connection")
            self.beginClosing()
            context.close(promise: nil)
        }
    }

    private func start(_ head: FastCGIRequestHead, listedIdle: Bool, context: ChannelHandlerContext) {
        if listedIdle {
            self.slots.connectionLeftIdle(id: self.connectionID)
            self.state = .waitingForHead(listedIdle: false)
        }
        guard let environment = self.runner.environment(for: head) else {
            self.beginClosing()
            context.close(promise: nil)
            return
        }
        let announcedBody = AnnouncedBody(environment)
        self.lastRequestID = head.requestID
        self.routedRequests?.increment()

        let channel = context.channel
        // The closures a waiting request needs are made only when every slot runs.
        let admission =
            self.slots.tryStartRequest(on: channel).map { .start(slot: $0) }
            ?? self.admitWhileFull(environment: environment, channel: channel)
        if admission == .turnAway {
            self.refuseNextRequestAndClose(context: context)
            return
        }
        self.responseStarted = false
        // A waiting request's body is buffered (up to the stream's watermark) while it waits.
        let body = announcedBody == .none ? nil : FastCGIRequestBodyStream(channel: channel)
        self.body = body
        var request = Request(
            id: head.requestID, keepConnection: head.keepConnection, announcedBody: announcedBody, phase: .running
        )
        if case .start(let slot) = admission {
            self.state = .serving(request)
            self.launch(environment: environment, body: body, channel: channel, slot: slot, immediately: true)
            return
        }
        request.phase = .queued
        self.state = .serving(request)
        // Apache may then send it again should this worker exit before it starts.
        context.writeAndFlush(
            self.wrapOutboundOut(.slotNotice(.requestWaiting, requestID: head.requestID)), promise: nil)
        self.slots.watchQueue(on: channel.eventLoop)
    }

    /// Every slot ran a moment ago: start, wait for a slot, or be turned away to a sibling.
    private func admitWhileFull(environment: CGIEnvironment, channel: any Channel) -> ConnectionSlots.Admission {
        let handler = NIOLoopBound(self, eventLoop: channel.eventLoop)
        return self.slots.admit(
            // Apache sends a request again only when it came on a kept connection; a routed one
            // waits for this worker, whose own socket it came through.
            connectionID: self.connectionID, channel: channel,
            mayTurnAway: self.routedRequests == nil && self.requestsServed > 0,
            start: { slot in
                if channel.eventLoop.inEventLoop {
                    handler.value.startQueued(environment: environment, channel: channel, slot: slot)
                } else {
                    channel.eventLoop.execute {
                        handler.value.startQueued(environment: environment, channel: channel, slot: slot)
                    }
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
                self =
                    bytes == 0
                    ? .none : bytes > FastCGIRequestHandler.maximumBodyBytesOfAKeptConnection ? .long : .short
            } else {
                self = .none
            }
        }
    }

    /// A queued request got slot `slot`.
    private func startQueued(environment: CGIEnvironment, channel: any Channel, slot: Int) {
        guard case .serving(var request) = self.state, case .queued = request.phase else {
            self.slots.requestFinished(slot: slot) // its connection closed meanwhile: the slot goes on
            return
        }
        request.phase = .running
        self.state = .serving(request)
        channel.writeResponsePart(.slotNotice(.requestStarted, requestID: request.id), promise: nil)
        self.launch(environment: environment, body: self.body, channel: channel, slot: slot, immediately: false)
    }

    private func launch(
        environment: CGIEnvironment, body: FastCGIRequestBodyStream?, channel: any Channel, slot: Int,
        immediately: Bool
    ) {
        self.applicationsRunning += 1
        let running = self.applicationsRunning
        let runner = self.runner
        let handler = NIOLoopBound(self, eventLoop: channel.eventLoop)
        let task: Task<Void, Never>
        if runner.startsOnGlobalPool {
            // executor=thread-pool: never on the event loop's thread, so an application that does
            // not suspend holds a pool thread and the loop goes on (and can answer 504 for it).
            task = Task { @Sendable in
                await FastCGIRequestHandler.run(
                    runner, environment: environment, body: body, channel: channel, slot: slot, handler: handler)
            }
        } else if immediately {
            // A request read just now starts on this thread (the event loop) and runs until it
            // first suspends: a response ready without waiting is written before this returns,
            // with no hop through the loop's task queue. A queued one is started from another
            // request's end, so it is enqueued instead: queued requests that finish at once must
            // not nest their starts. Either resumes on the loop after a suspension
            // (EventLoopTaskExecutor).
            task = Task.immediate(executorPreference: runner.executor) { @Sendable in
                await FastCGIRequestHandler.run(
                    runner, environment: environment, body: body, channel: channel, slot: slot, handler: handler)
            }
        } else {
            task = Task(executorPreference: runner.executor) { @Sendable in
                await FastCGIRequestHandler.run(
                    runner, environment: environment, body: body, channel: channel, slot: slot, handler: handler)
            }
        }
        // Kept unless it returned already: a response that needed no waiting (only this task can
        // return while this function runs on the loop) costs nothing more.
        if self.applicationsRunning == running {
            self.application = RunningApplication(slot: slot, environment: environment, task: task)
        }
    }

    private nonisolated(nonsending) static func run(
        _ runner: FastCGIApplicationRunner, environment: CGIEnvironment, body: FastCGIRequestBodyStream?,
        channel: any Channel, slot: Int, handler: NIOLoopBound<FastCGIRequestHandler>
    ) async {
        await runner.run(environment: environment, body: body, channel: channel)
        if channel.eventLoop.inEventLoop {
            handler.value.applicationReturned(slot: slot)
        } else {
            channel.eventLoop.execute { handler.value.applicationReturned(slot: slot) }
        }
    }

    /// Both directions of a request are done: keep the connection for the next one, or close.
    /// `keepConnection`: what END_REQUEST told Apache.
    private func requestCompleted(keepConnection: Bool, context: ChannelHandlerContext) {
        self.requestsServed += 1
        self.body = nil
        guard keepConnection else {
            // Apache was told in END_REQUEST: it does not send another request on this one.
            self.beginClosing()
            context.close(promise: nil)
            return
        }
        if self.slots.connectionBecameIdle(id: self.connectionID, channel: context.channel) {
            self.state = .waitingForHead(listedIdle: true)
        } else {
            self.refuseNextRequestAndClose(context: context)
        }
    }

    /// Closes a kept-alive connection, telling Apache its next (or waiting) request was not run.
    private func refuseNextRequestAndClose(context: ChannelHandlerContext) {
        self.beginClosing()
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.overloaded(requestID: self.lastRequestID))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// The connection is closing (unless it is closed already): it leaves the slots' idle list or
    /// queue if it is on one, and drops the request's body stream.
    private func beginClosing() {
        switch self.state {
        case .waitingForHead(listedIdle: true):
            self.slots.connectionLeftIdle(id: self.connectionID)
        case .serving(let request):
            if case .queued = request.phase { self.slots.cancelQueued(connectionID: self.connectionID) }
        case .closed:
            return
        case .waitingForHead(listedIdle: false), .closing:
            break
        }
        self.state = .closing
        self.body = nil
    }

    private func applicationReturned(slot: Int) {
        self.applicationsRunning -= 1
        if self.application?.slot == slot { self.application = nil }
        self.slots.requestFinished(slot: slot)
        self.releaseSlotIfDone()
    }

    /// The connection leaves `slots` once it is closed and its last application has returned.
    private func releaseSlotIfDone() {
        guard case .closed = self.state, self.applicationsRunning == 0 else { return }
        self.slots.release()
    }

    /// Marks END_REQUEST with whether this connection will be kept for another request
    /// (`FastCGIServerCodec.keptConnectionAppStatus`, which Apache looks for).
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if self.applicationCutOff {
            promise?.fail(Self.requestGivenUp)
            return
        }
        let part = self.unwrapOutboundIn(data)
        guard part.endsResponse else {
            if case .stdout = part { self.responseStarted = true }
            context.write(data, promise: promise)
            return
        }
        var keepConnection = false
        if case .serving(let request) = self.state {
            keepConnection =
                request.keepConnection
                && self.requestsServed + 1 < Self.maximumRequestsPerConnection
                && request.announcedBody != .long && request.bodyBytesReceived <= Self.maximumBodyBytesOfAKeptConnection
                && self.slots.shouldKeepFinishedConnection()
        }
        let ending = part.ending(keepingConnection: keepConnection)
        guard !keepConnection else {
            // Nothing waits for this write: the connection stays, and a failed write closes it.
            context.write(self.wrapOutboundOut(ending), promise: promise)
            self.responseDidEnd(keepConnection: true, context: context)
            return
        }
        // Closing drops writes still queued: close once END_REQUEST reached the socket.
        let written = promise ?? context.eventLoop.makePromise(of: Void.self)
        context.write(self.wrapOutboundOut(ending), promise: written)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { result in
            switch result {
            case .success: handler.value.responseDidEnd(keepConnection: false, context: boundContext.value)
            case .failure: boundContext.value.close(promise: nil)
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        if case .serving(let request) = self.state, request.waitsForTheApplication, let body = self.body,
            body.isReadingPaused
        {
            return // the stream calls `channel.read()` again when the application caught up
        }
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ReclaimIdleConnection:
            // A request may have arrived since the connection was listed as idle: it runs.
            if case .waitingForHead(listedIdle: true) = self.state {
                self.refuseNextRequestAndClose(context: context)
            }
        case is TurnAwayQueuedRequest:
            // The slots no longer list it; it may have started or closed since.
            if case .serving(let request) = self.state, case .queued = request.phase {
                self.body?.finish(
                    FastCGIConnectionError(description: "the request was turned away to a sibling worker"))
                self.refuseNextRequestAndClose(context: context)
            }
        case let cancel as CancelRequest:
            self.giveUp(slot: cancel.slot, context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// What a write of an application that was given up on fails with, and its body stream ends with.
    private static let requestGivenUp: any Error = FastCGIConnectionError(
        description: "the supervisor gave up on the request (request-timeout)"
    )

    /// The supervisor gave up on the request holding `slot` (request-timeout). When that is this
    /// connection's running application, its task is cancelled and the supervisor told so (the
    /// loop is not blocked); and unless its response has ended, the request is answered 504 (no
    /// STDOUT sent yet) or its connection closed without END_REQUEST (Apache then aborts the
    /// client's connection). The connection closes either way, so whatever the application still
    /// writes never reaches a later request. Its slot stays held until the task returns: one that
    /// never does keeps it, and the supervisor recycles the worker.
    private func giveUp(slot: Int, context: ChannelHandlerContext) {
        guard let application = self.application, application.slot == slot,
            self.slots.acknowledgeCancel(slot: slot)
        else { return } // it returned meanwhile
        guard case .serving(let request) = self.state, case .running = request.phase else {
            application.task.cancel()
            return // its response has ended: the task is only returning
        }
        // First: cancelling runs the application's cancellation handlers here, which may write.
        self.applicationCutOff = true
        application.task.cancel()
        self.slots.requestAbandoned(slot: slot)
        self.body?.finish(Self.requestGivenUp)
        let answered = !self.responseStarted
        self.logGivenUp(application.environment, answered: answered)
        self.beginClosing()
        guard answered else {
            context.close(promise: nil)
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(
            self.wrapOutboundOut(
                .stdoutThenEnd(Self.gatewayTimeout(allocator: context.channel.allocator), keepsConnection: false)),
            promise: written)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in boundContext.value.close(promise: nil) }
    }

    /// SG1122: which request, how long since Apache received it, and what the client got.
    private func logGivenUp(_ environment: CGIEnvironment, answered: Bool) {
        let method = environment["REQUEST_METHOD"] ?? "?"
        let uri = environment["REQUEST_URI"] ?? "?"
        let age = FastCGIApplicationRunner.secondsWaited(
            since: environment.decimalValue(named: "SWIFT_GATEWAY_REQUEST_START"))
        let since = age.map { " \(formatSeconds($0)) after Apache received it" } ?? ""
        let outcome =
            answered
            ? "answered 504, connection closed"
            : "its response had begun: connection aborted without END_REQUEST"
        self.runner.logger.warning(
            "SG1122: the supervisor gave up on \(method) \(uri)\(since) (request-timeout): task cancelled, \(outcome)"
        )
    }

    /// The CGI response of a request given up on: 504 and a short text.
    private static func gatewayTimeout(allocator: ByteBufferAllocator) -> ByteBuffer {
        let body = "Gateway Timeout\n"
        let response = GatewayResponse(
            status: .gatewayTimeout, headerFields: [.contentType: "text/plain; charset=utf-8"],
            body: .init(string: body))
        var buffer = CGIResponseHead.serialize(
            response, contentLength: body.utf8.count, allocator: allocator, reservingBody: body.utf8.count)
        buffer.writeString(body)
        return buffer
    }

    /// Boxed once: a short response usually ends before its request's last STDIN is read.
    private static let responseCompletedFirst: any Error = FastCGIConnectionError(
        description: "the response was complete before the request body ended"
    )

    /// END_REQUEST reached the socket: finish now if the client finished sending, else read and
    /// discard the rest of its input first, so its last write does not fail.
    private func responseDidEnd(keepConnection: Bool, context: ChannelHandlerContext) {
        guard case .serving(var request) = self.state else { return }
        if request.inputEnded {
            self.requestCompleted(keepConnection: keepConnection, context: context)
            return
        }
        self.body?.finish(Self.responseCompletedFirst)
        request.phase = .draining(keepConnection: keepConnection)
        self.state = .serving(request)
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.body?.finish(error)
        self.runner.logger.notice("SG1114: FastCGI connection failed: \(error)")
        self.beginClosing()
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.body?.finish(
            FastCGIConnectionError(description: "Apache closed the connection before the request body ended"))
        self.beginClosing()
        self.state = .closed
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
