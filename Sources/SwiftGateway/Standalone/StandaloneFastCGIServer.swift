import Logging
import NIOCore
import NIOPosix

/// The program as a plain FastCGI server (`--fastcgi`), for mod_proxy_fcgi or nginx:
/// the same codec and request handling as a worker, without Apache's supervisor.
struct StandaloneFastCGIServer<Responder: GatewayResponder>: Sendable {
    let address: ListenAddress
    let responder: Responder
    let logger: Logger

    func run() async throws {
        let eventLoopGroup = MultiThreadedEventLoopGroup.singleton
        let server = FastCGIConnectionServer(
            responder: self.responder, settings: try GroupSettings(environment: ["SWIFT_GATEWAY_GROUP": "standalone"]),
            eventLoopGroup: eventLoopGroup, logger: self.logger
        )
        let bootstrap = ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        let listener: NIOAsyncChannel<FastCGIConnectionServer<Responder>.Connection, Never>
        switch self.address {
        case .unix(let path):
            listener = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture { try FastCGIConnectionServer<Responder>.makeConnection(channel) }
            }
        case .tcp(let host, let port):
            listener = try await bootstrap.bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try FastCGIConnectionServer<Responder>.makeConnection(channel) }
            }
        }
        self.logger.notice("serving FastCGI on \(self.address)")
        try await listener.executeThenClose { connections in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in connections {
                    group.addTask { await server.serve(connection) }
                }
            }
        }
    }
}
