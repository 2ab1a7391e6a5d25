import Hummingbird
import SwiftGateway

extension Gateway {
    /// Serves a Hummingbird application under the gateway, or as a plain Hummingbird server.
    ///
    /// Started by Apache (or by hand with `--fastcgi` or `--http`), each worker serves the
    /// application's responder (its router) through the gateway, after running its services and
    /// its `beforeServerStarts` processes; the supervisor never touches the application. Started
    /// by hand without either option, the program is the application's own server, as
    /// `application.runService()` makes it (its address, SIGTERM and SIGINT shutting it down).
    public static func run<Application: ApplicationProtocol>(_ application: Application) async throws {
        try await self.run(makeApplication: { application })
    }

    /// The same, with the application built only where it serves: in each worker, or in the
    /// program started by hand (never in the supervisor). For applications whose construction
    /// connects to databases or reads much.
    public static func run<Application: ApplicationProtocol>(
        makeApplication: @escaping @Sendable () async throws -> Application
    ) async throws {
        guard Gateway.shouldRun else {
            try await makeApplication().runService()
            return
        }
        try await self.run(makeResponder: {
            let application = try await makeApplication()
            ApplicationServices.start(application.services, logger: application.logger)
            for process in application.processesRunBeforeServerStart {
                try await process()
            }
            return HummingbirdResponder(try await application.responder)
        })
    }
}
