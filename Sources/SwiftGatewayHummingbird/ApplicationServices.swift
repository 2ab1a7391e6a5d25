import Hummingbird
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An application's services (database clients, caches, …) running in a worker beside the
/// gateway, as `Application.run` runs them beside its server.
enum ApplicationServices {
    /// Starts `services` in a group of their own, without signal handlers: the signals are the
    /// gateway's. They run as long as the process; should they end, the worker drains (SIGTERM
    /// to itself) and its group starts another.
    static func start(_ services: [any Service], logger: Logger) {
        guard !services.isEmpty else { return }
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        Task {
            do {
                try await group.run()
                logger.error("SG1301: the application's services ended: the worker stops")
            } catch {
                logger.error("SG1302: an application service failed: \(error): the worker stops")
            }
            kill(getpid(), SIGTERM)
        }
    }
}
