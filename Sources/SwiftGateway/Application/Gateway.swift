import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The entry point of a program served by mod_swift_gateway.
///
/// The same binary plays every role: Apache's parent starts it as the group's supervisor,
/// the supervisor starts it again as each worker. Only workers build and run the application.
public enum Gateway {
    /// Serves `handler` in every worker of the group.
    public static func run(
        _ handler: @escaping @Sendable (GatewayRequest, GatewayContext) async throws -> GatewayResponse
    ) async throws {
        try await self.run(makeResponder: { GatewayClosureResponder(handler) })
    }

    /// Builds the application with `makeResponder` in each worker only (never in the
    /// supervisor), so database pools and caches exist only where requests are served.
    public static func run<Responder: GatewayResponder>(
        makeResponder: @escaping @Sendable () async throws -> Responder
    ) async throws {
        let environment = processEnvironment()
        let role = GatewayRole.current(environment: environment)
        let group = environment["SWIFT_GATEWAY_GROUP"] ?? "-"
        let logger = Logger(label: "swift-gateway") { label in
            StandardErrorLogHandler(label: label, group: group, role: "\(role)")
        }
        let settings: GroupSettings
        do {
            settings = try GroupSettings(environment: environment)
        } catch {
            logger.critical("cannot start: \(error)")
            exit(1)
        }
        switch role {
        case .supervisor:
            let spawner = WorkerSpawner(
                executablePath: currentExecutablePath(),
                processTitle: (settings.displayName ?? CommandLine.arguments.first ?? "swift-gateway") + " worker",
                arguments: Array(CommandLine.arguments.dropFirst()),
                environment: environment
            )
            Supervisor(settings: settings, spawner: spawner, logger: logger).run()
        case .worker:
            try await WorkerProcess(settings: settings, environment: environment, logger: logger)
                .run(makeResponder: makeResponder)
        case .unmanaged:
            let program = CommandLine.arguments.first ?? "program"
            var message = "\(program) is a SwiftGateway application: Apache's mod_swift_gateway starts it.\n"
            message += "Declare it in httpd.conf, e.g.:\n"
            message += "    SwiftDaemonProcess site processes=2 threads=15\n"
            message += "    SwiftScriptAlias / \(program) process-group=site\n"
            FileDescriptorOutput.standardError.write(message)
            exit(64)
        }
    }
}
