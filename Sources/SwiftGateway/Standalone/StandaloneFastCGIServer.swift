import Logging
import NIOCore
import NIOPosix

/// The program as a plain FastCGI server (`--fastcgi`), for mod_proxy_fcgi or nginx:
/// the same codec and request handling as a worker, without Apache's supervisor.
struct StandaloneFastCGIServer: Sendable {
    let address: ListenAddress
    let responder: any GatewayResponder
    let logger: Logger

    /// Requests at once: as many as a worker's `threads=` may be.
    static let requestCapacity = 10_000

    func run() async throws {
        let runner = FastCGIApplicationRunner(
            responder: self.responder, group: "standalone", token: nil, logger: self.logger, executor: nil
        )
        // The web server in front decides how many connections to open; the slots only number
        // the requests (each has a cell), so their count is bounded, as large as `threads=` allows.
        let slots = ConnectionSlots(capacity: Self.requestCapacity)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = slots.tryTake()
                    try channel.pipeline.syncOperations.addHandlers(
                        FastCGIServerCodec(),
                        FastCGIRequestHandler(runner: runner, slots: slots, connectionID: slots.makeConnectionID())
                    )
                }
            }
        let listener: any Channel
        switch self.address {
        case .unix(let path):
            listener = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        case .tcp(let host, let port):
            listener = try await bootstrap.bind(host: host, port: port).get()
        }
        self.logger.notice("SG1201: serving FastCGI on \(self.address)")
        try await listener.closeFuture.get()
    }
}
