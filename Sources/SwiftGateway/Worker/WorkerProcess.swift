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

    func run<Responder: GatewayResponder>(makeResponder: @escaping @Sendable () async throws -> Responder) async throws {
        self.adoptParentLifetime()
        self.checkListener()
        // The application must never see the group secret, not even in its own environment.
        unsetenv("SWIFT_GATEWAY_TOKEN")
        // print() reaches Apache's error log like stderr does, as in mod_wsgi.
        dup2(2, 1)
        do {
            try SignalPipe.install([SIGTERM, SIGINT, SIGHUP])
        } catch {
            self.logger.critical("cannot install signal handlers: \(error)")
            exit(1)
        }
        signal(SIGPIPE, SIG_IGN)

        let responder: Responder
        do {
            responder = try await makeResponder()
        } catch {
            self.logger.critical("the application failed to start: \(error)")
            exit(3)
        }

        let eventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = FastCGIConnectionServer(
            responder: responder, settings: self.settings, eventLoopGroup: eventLoopGroup, logger: self.logger
        )
        let slots = RequestSlots(count: self.settings.threads)
        let acceptor = ConnectionAcceptor(
            listener: Self.listenerDescriptor, slots: slots, allowedPeerUID: self.settings.peerUID, logger: self.logger
        )
        let (connections, continuation) = AsyncStream.makeStream(of: CInt.self)
        let acceptThread = NIOThreadPool(numberOfThreads: 1)
        acceptThread.start()
        acceptThread.submit { _ in
            acceptor.run { continuation.yield($0) }
            continuation.finish()
        }
        self.logger.debug("worker accepting", metadata: ["threads": "\(self.settings.threads)"])

        await withDiscardingTaskGroup { group in
            for await descriptor in connections {
                group.addTask {
                    await server.serve(descriptor: descriptor)
                    slots.release()
                }
            }
            // Draining: requests in flight get graceful-timeout to finish.
            let gracefulTimeout = self.settings.gracefulTimeout
            let logger = self.logger
            Task.detached {
                try? await Task.sleep(for: .seconds(gracefulTimeout))
                logger.warning("requests still running after graceful-timeout \(gracefulTimeout)s: exiting anyway")
                exit(0)
            }
        }
        self.logger.debug("worker drained")
        exit(0)
    }

    /// A worker must not outlive its supervisor: the kernel sends SIGTERM when it dies.
    private func adoptParentLifetime() {
        _ = sg_set_parent_death_signal(SIGTERM)
        if let expected = self.environment["SWIFT_GATEWAY_SUPERVISOR_PID"].flatMap(Int32.init), getppid() != expected {
            self.logger.error("supervisor (pid \(expected)) exited before this worker started")
            exit(1)
        }
    }

    /// fd 3 must be the group's listening socket, handed down as LISTEN_FDS says.
    private func checkListener() {
        var status = stat()
        guard self.environment["LISTEN_FDS"] == "1", fstat(Self.listenerDescriptor, &status) == 0,
              (status.st_mode & S_IFMT) == S_IFSOCK
        else {
            self.logger.critical("fd 3 is not a listening socket (LISTEN_FDS=\(self.environment["LISTEN_FDS"] ?? "unset")): start this program through Apache")
            exit(1)
        }
    }
}
