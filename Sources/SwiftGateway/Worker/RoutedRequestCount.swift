import Synchronization

/// The requests that reached this worker through its own socket: with a valid route
/// (`affinity-cookie=`). The status page shows it per worker.
final class RoutedRequestCount: Sendable {
    private let count = Atomic<Int>(0)

    /// One more routed request (`FastCGIRequestHandler`, as each request of a routed connection starts).
    func increment() {
        self.count.add(1, ordering: .relaxed)
    }

    var value: Int { self.count.load(ordering: .relaxed) }
}
