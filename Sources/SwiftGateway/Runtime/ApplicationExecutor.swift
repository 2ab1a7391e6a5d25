/// Where a worker runs its application's request tasks (`executor=`).
enum ApplicationExecutor: String, Sendable, Equatable {
    /// On the event loop of the request's connection, started at once: the fastest, but code
    /// that never suspends holds up every request of the worker until it ends.
    case eventLoop = "event-loop"
    /// On Swift's global thread pool: a request that never suspends holds one of its threads,
    /// and the others go on; each request costs a hop between threads each way.
    case threadPool = "thread-pool"
}
