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
            logger.critical("SG1011: cannot start: \(error)")
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
            Supervisor(
                settings: settings, spawner: spawner, handover: SupervisorHandover(environment: environment),
                logger: logger
            ).run()
        case .worker:
            try await WorkerProcess(settings: settings, environment: environment, logger: logger)
                .run(makeResponder: { try await makeResponder() })
        case .unmanaged:
            try await self.runStandalone(makeResponder: { try await makeResponder() }, logger: logger)
        }
    }

    /// Whether `run` serves in this process: Apache started it (a group's supervisor or worker),
    /// or its command line asks for `--fastcgi` or `--http` (a malformed one too, which `run`
    /// reports). False for a program started by hand without either, where `run` prints its
    /// usage: an adapter for another framework runs that framework's own server instead.
    public static var shouldRun: Bool {
        guard GatewayRole.current(environment: processEnvironment()) == .unmanaged else { return true }
        let arguments = CommandLine.arguments.dropFirst()
        return arguments.contains("--fastcgi") || arguments.contains("--http")
    }

    /// Started by hand: `--fastcgi` or `--http`, else a usage message and exit status 64.
    private static func runStandalone(
        makeResponder: @escaping @Sendable () async throws -> any GatewayResponder, logger: Logger
    ) async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let options: StandaloneOptions?
        do {
            options = try StandaloneOptions.parse(arguments)
        } catch {
            FileDescriptorOutput.standardError.write("error: \(error)\n\(StandaloneOptions.usage)\n")
            exit(64)
        }
        guard let options else {
            let wantsHelp = arguments.contains("--help") || arguments.contains("-h")
            FileDescriptorOutput.standardError.write(StandaloneOptions.usage + "\n")
            exit(wantsHelp ? 0 : 64)
        }
        signal(SIGPIPE, SIG_IGN)
        let responder = try await makeResponder()
        switch options.mode {
        case .fastCGI(let address):
            try await StandaloneFastCGIServer(address: address, responder: responder, logger: logger).run()
        case .http(.tcp(let host, let port)):
            try await StandaloneHTTPServer(host: host, port: port, responder: responder, logger: logger).run()
        case .http(.unix):
            FileDescriptorOutput.standardError.write("error: --http takes HOST:PORT\n")
            exit(64)
        }
    }
}
