import Synchronization

/// The requests that reached this worker through its own socket: with a valid route
/// (`affinity-cookie=`). The status page shows it per worker.
final class RoutedRequestCount: Sendable {
    private let count = Atomic<Int>(0)
    private let publish: @Sendable () -> Void

    /// - Parameter publish: tells the group's scoreboard of each one.
    init(publish: @escaping @Sendable () -> Void = {}) {
        self.publish = publish
    }

    /// One more routed request (`FastCGIRequestHandler`, as each request of a routed connection starts).
    func increment() {
        self.count.add(1, ordering: .relaxed)
        self.publish()
    }

    var value: Int { self.count.load(ordering: .relaxed) }
}
