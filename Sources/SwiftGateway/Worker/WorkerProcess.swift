import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwiftGatewayLinux

/// One worker process: adopts fd 3, builds the application, serves connections until SIGTERM.
struct WorkerProcess {
    let settings: GroupSettings
    let environment: [String: String]
    let logger: Logger

    static let listenerDescriptor: CInt = 3

    func run(makeResponder: @escaping @Sendable () async throws -> any GatewayResponder) async throws {
        self.adoptParentLifetime()
        self.checkListener()
        // The application must never see the group secret, not even in its own environment.
        unsetenv("SWIFT_GATEWAY_TOKEN")
        // print() reaches Apache's error log like stderr does, as in mod_wsgi.
        dup2(2, 1)
        do {
            // SIGUSR2: the supervisor gave up on requests (request-timeout), named on the scoreboard.
            try SignalPipe.install([SIGTERM, SIGINT, SIGHUP, SIGUSR2])
        } catch {
            self.logger.critical("SG1101: cannot install signal handlers: \(error)")
            exit(1)
        }
        signal(SIGPIPE, SIG_IGN)

        let responder: any GatewayResponder
        do {
            responder = try await makeResponder()
        } catch {
            self.logger.critical("SG1102: the application failed to start: \(error)")
            exit(3)
        }

        let eventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (slots, markAccepting) = self.makeSlots()
        let onTheLoop = self.settings.executor == .eventLoop
        let affinity = self.makeOwnSocket()
        func makeRunner(routeCookie: RouteCookie?) -> FastCGIApplicationRunner {
            FastCGIApplicationRunner(
                responder: responder, group: self.settings.group, token: self.settings.token, logger: self.logger,
                executor: onTheLoop ? EventLoopTaskExecutor(eventLoop: eventLoopGroup.next()) : nil,
                startsOnGlobalPool: !onTheLoop, queueTimeout: self.settings.queueTimeout,
                requestLogLevel: self.settings.logLevel, routeCookie: routeCookie
            )
        }
        // The group socket's requests carried no valid route to this worker: their responses
        // set one. Those of its own socket did (Apache checked it): theirs set none.
        let runner = makeRunner(routeCookie: affinity?.cookie)
        let routedRunner = affinity.map { _ in makeRunner(routeCookie: nil) }
        let routedRequests = RoutedRequestCount()
        // A bootstrap is not Sendable: each accept thread builds its own, once.
        let makeBootstrap: @Sendable (_ routed: Bool) -> ClientBootstrap = { routed in
            ClientBootstrap(group: eventLoopGroup)
                // Room for a few 64 KiB body chunks before a streaming writer has to wait.
                .channelOption(.writeBufferWaterMark, value: .init(low: 128 * 1024, high: 512 * 1024))
                // Reads may grow to 256 KiB (NIO's default stops at 64): the STDIN records Apache
                // sends three at a time then arrive in one read and one pipeline pass, not three.
                .channelOption(
                    .recvAllocator,
                    value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: 256 * 1024)
                )
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            FastCGIServerCodec(),
                            FastCGIRequestHandler(
                                runner: routed ? routedRunner ?? runner : runner, slots: slots,
                                connectionID: slots.makeConnectionID(), routedRequests: routed ? routedRequests : nil)
                        )
                    }
                }
        }
        let acceptor = ConnectionAcceptor(
            listener: Self.listenerDescriptor, slots: slots, allowedPeerUID: self.settings.peerUID, logger: self.logger
        )
        let logger = self.logger
        let acceptThread = NIOThreadPool(numberOfThreads: 1)
        acceptThread.start()
        self.logger.debug(
            "worker accepting",
            metadata: ["threads": "\(self.settings.threads)", "executor": "\(self.settings.executor.rawValue)"])
        // From now on the supervisor counts this worker as serving (a recycle waits for it).
        markAccepting()
        let routedAcceptor = affinity.map {
            RoutedConnectionAcceptor(
                listener: $0.listener, slots: slots, allowedPeerUID: self.settings.peerUID, logger: self.logger)
        }
        let routedThread = NIOThreadPool(numberOfThreads: 1)
        if let routedAcceptor {
            routedThread.start()
            routedThread.submit { _ in
                let bootstrap = makeBootstrap(true)
                routedAcceptor.run { descriptor in
                    bootstrap.withConnectedSocket(descriptor).whenFailure { error in
                        logger.error("SG1103: cannot set up an accepted connection: \(error)")
                        close(descriptor)
                        slots.release()
                    }
                }
            }
        }
        // Returns when a termination signal arrives, and the worker is draining: idle connections
        // are closed (each telling Apache its next request was not run), requests in flight get
        // graceful-timeout to finish, then their connections close. Draining begins on the accept
        // thread, as the signal is seen: until then kept connections still take new requests,
        // and the task's resumption may wait for a busy cooperative pool.
        // The supervisor may still give up on a request (SIGUSR2): looked for every 1 ms.
        let idleConnections = try await acceptThread.runIfActive {
            let bootstrap = makeBootstrap(false)
            acceptor.run { descriptor in
                bootstrap.withConnectedSocket(descriptor).whenFailure { error in
                    logger.error("SG1103: cannot set up an accepted connection: \(error)")
                    close(descriptor)
                    slots.release()
                }
            }
            return slots.beginDraining()
        }
        routedAcceptor?.stop()
        for idle in idleConnections {
            idle.pipeline.fireUserInboundEventTriggered(ReclaimIdleConnection())
        }
        let deadline = monotonicSeconds() + self.settings.gracefulTimeout
        // Requests given up on (SG1122) are not waited for: they ignore cancellation, or never
        // suspend, and the group's next recycle waits for this worker to exit.
        while slots.heldCountToDrain > 0 {
            guard monotonicSeconds() < deadline else {
                self.logger.warning(
                    "SG1104: \(slots.runningCount) requests still running after graceful-timeout \(self.settings.gracefulTimeout)s: exiting anyway"
                )
                exit(0)
            }
            // Short: a recycled worker's replacement already runs, and the next recycle of the
            // group waits for this one to exit.
            try? await Task.sleep(for: .milliseconds(1))
            acceptor.cancelRequestsIfSignalled()
        }
        let abandoned = slots.abandonedCount
        if abandoned > 0 {
            self.logger.warning(
                "SG1123: drained but for \(abandoned) requests given up on (request-timeout) whose code still runs: exiting without them"
            )
        }
        self.logger.debug("worker drained")
        exit(0)
    }

    /// With `affinity-cookie=`: this worker's route, and its own socket listening
    /// (`RoutedConnectionAcceptor`); nil without affinity, or when the socket cannot be made
    /// (logged: the worker then serves through the group socket only, and sets no cookie).
    private func makeOwnSocket() -> (cookie: RouteCookie, listener: CInt)? {
        guard let name = self.settings.affinityCookie else { return nil }
        guard let token = self.settings.token else {
            self.logger.error("SG1126: affinity-cookie=\(name) without the group's token: no affinity")
            return nil
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let start = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec / 1_000)
        let route = WorkerRoute(token: token, socketPath: self.settings.socketPath, pid: getpid(), start: start)
        guard
            let listener = RoutedConnectionAcceptor.listen(
                name: route.socketName, backlog: self.settings.listenBacklog, logger: self.logger)
        else { return nil }
        self.logger.debug("worker route", metadata: ["route": "\(route.text)"])
        return (RouteCookie(name: name, route: route), listener)
    }

    /// Connections a worker keeps open at most: room for every Apache thread that sends it
    /// requests to keep its own while requests queue at saturation (reclaiming idle ones costs a
    /// connection per request), within half the descriptor limit, and never fewer than slots.
    static func connectionCapacity(threads: Int) -> Int {
        var limit = rlimit()
        let descriptors =
            getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur < rlim_t(Int.max)
            ? Int(clamping: limit.rlim_cur) / 2 : Int.max
        return max(threads, min(max(4 * threads, 256), descriptors))
    }

    /// How long a sibling must have had a free slot before a full worker turns requests away to it.
    static let siblingRoomPatience: Int64 = 1_000_000

    /// The request slots, telling the siblings their room and the supervisor their requests
    /// through the group's scoreboard; and what tells the supervisor that the worker accepts.
    private func makeSlots() -> (ConnectionSlots, markAccepting: @Sendable () -> Void) {
        let index = self.environment[GroupScoreboard.entryEnvironmentVariable].flatMap(Int.init) ?? 0
        var board: GroupScoreboard?
        if self.environment[GroupScoreboard.environmentVariable] != nil {
            board = GroupScoreboard.adopt(
                descriptor: GroupScoreboard.workerDescriptor,
                workers: GroupScoreboard.entryCount(maximumProcesses: self.settings.maximumProcesses),
                requestSlots: self.settings.threads)
            if board == nil {
                self.logger.error(
                    "SG1119: fd \(GroupScoreboard.workerDescriptor) is not the group's scoreboard (not the supervisor's shared memory, or mmap failed): while its slots are full this worker turns away every request on a kept connection"
                )
            }
        }
        let siblingRoom: (@Sendable () -> Int)?
        if let board {
            siblingRoom = { board.roomOfSiblings(of: index, heldFor: Self.siblingRoomPatience) }
        } else if self.settings.maximumProcesses > 1 {
            siblingRoom = { 1 } // unknown: assume a sibling has room, as the backlog would
        } else {
            siblingRoom = nil
        }
        var publishRoom: (@Sendable (Int) -> Void)?
        var recordRequest: (@Sendable (ConnectionSlots.RequestEvent, Int, Int) -> Void)?
        var isCancelled: (@Sendable (Int) -> Bool)?
        var acknowledgeCancel: (@Sendable (Int) -> Void)?
        if let board {
            publishRoom = { room in board.setRoom(room, ofWorker: index) }
            recordRequest = { event, slot, inFlight in
                switch event {
                case .started:
                    board.requestStarted(slot: slot, inFlight: inFlight, ofWorker: index)
                case .finished:
                    board.requestFinished(slot: slot, inFlight: inFlight, ofWorker: index)
                case .handedOver:
                    board.requestFinished(slot: slot, inFlight: inFlight, ofWorker: index)
                    board.requestStarted(slot: slot, inFlight: inFlight, ofWorker: index)
                }
            }
            isCancelled = { slot in board.cancelRequested(slot: slot, ofWorker: index) }
            acknowledgeCancel = { slot in
                // Only here, rarely: the start is read back rather than kept for every request.
                if let request = board.runningRequests(ofWorker: index).first(where: { $0.slot == slot }) {
                    board.acknowledgeCancel(slot: slot, started: request.started, ofWorker: index)
                }
            }
        }
        let slots = ConnectionSlots(
            capacity: self.settings.threads,
            connectionCapacity: Self.connectionCapacity(threads: self.settings.threads),
            connectionsWaiting: { ConnectionAcceptor.hasWaitingConnection(Self.listenerDescriptor) },
            siblingRoom: siblingRoom,
            publishRoom: publishRoom,
            recordRequest: recordRequest,
            isCancelled: isCancelled,
            acknowledgeCancel: acknowledgeCancel
        )
        let acceptingBoard = board
        return (slots, { acceptingBoard?.markAccepting(ofWorker: index) })
    }

    /// A worker must not outlive its supervisor: the kernel sends SIGTERM when it dies (set up on
    /// the main thread at program start, see CSwiftGatewayLinux), unless it died even earlier.
    private func adoptParentLifetime() {
        if let expected = self.environment["SWIFT_GATEWAY_SUPERVISOR_PID"].flatMap(Int32.init), getppid() != expected {
            self.logger.error("SG1105: supervisor (pid \(expected)) exited before this worker started")
            exit(1)
        }
    }

    /// fd 3 must be the group's listening socket, handed down as LISTEN_FDS says.
    private func checkListener() {
        var status = stat()
        guard self.environment["LISTEN_FDS"] == "1", fstat(Self.listenerDescriptor, &status) == 0,
            (status.st_mode & S_IFMT) == S_IFSOCK
        else {
            self.logger.critical(
                "SG1106: fd 3 is not a listening socket (LISTEN_FDS=\(self.environment["LISTEN_FDS"] ?? "unset")): start this program through Apache"
            )
            exit(1)
        }
    }
}
