import Logging
import NIOCore
import NIOPosix

/// The program as a plain FastCGI server (`--fastcgi`), for mod_proxy_fcgi or nginx:
/// the same codec and request handling as a worker, without Apache's supervisor.
struct StandaloneFastCGIServer: Sendable {
    let address: ListenAddress
    let responder: any GatewayResponder
    let logger: Logger

    func run() async throws {
        let runner = FastCGIApplicationRunner(
            responder: self.responder, group: "standalone", token: nil, logger: self.logger, executor: nil
        )
        // No slot limit here: the web server in front decides how many connections to open.
        let slots = ConnectionSlots(capacity: .max)
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
